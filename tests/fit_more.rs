//! `rigdoctor fit` on large real models without their weights: headers
//! written by gguf-py with the real tensor shapes (fixtures/gguf/mkheads.py)
//! grown to their real length as sparse files, on replayed rigs. Every
//! expected number is computed here by hand from the shapes in the comments
//! (ggml block sizes: Q4_K 144 bytes per 256, Q6_K 210 per 256, Q8_0 34 per
//! 32, Q3_K 110 per 256, Q5_K 176 per 256), not by the code under test.
//!
//! Shapes (config.json of each model):
//! - Llama 3.1 8B, Q8_0: 32 blocks, n_embd 4096, 32 heads, 8 KV heads,
//!   n_ff 14336, vocab 128256. A block: q and o 4352 × 4096 = 17,825,792
//!   each, k and v 4352 × 1024 = 4,456,448 each, gate, up, down 62,390,272
//!   each, two norms 32,768: 231,768,064. token_embd and output 4352 ×
//!   128256 = 558,170,112 each (+ output_norm 16,384).
//! - Mixtral 8x7B, Q4_K (output Q6_K): 32 blocks, n_embd 4096, 32 heads,
//!   8 KV heads, n_ff 14336 per expert, 8 experts, 2 used, vocab 32000. A
//!   block: q and o 2304 × 4096 = 9,437,184 each, k and v 2304 × 1024 =
//!   2,359,296 each, norms 32,768, ffn_gate_inp (F32) 131,072, and the
//!   experts: gate and up 2304 × 14336 × 8, down 8064 × 4096 × 8, each
//!   264,241,152, together 792,723,456; the block 816,480,256. token_embd
//!   2304 × 32000 = 73,728,000; output 3360 × 32000 = 107,520,000 (+ norm
//!   16,384).
//! - Qwen2.5 32B, Q4_K (output Q6_K): 64 blocks, n_embd 5120, 40 heads, 8
//!   KV heads, n_ff 27648, vocab 152064.
//!
//! KV (f16) per block: cells × 8 heads × 128 × 2 bytes × 2 = 16 MiB at
//! 4096 cells for all three. Compute (rigdoctor's estimate, docs/fit.md):
//! 512 × 4 × (n_vocab + max(3 × n_ff × experts_used, 2 × n_embd + n_embd)).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly on purpose"
)]

mod common;

use common::schema::Validator;
use common::*;
use rigdoctor::schema::Output;
use serde_json::Value;
use std::path::Path;

const MIB: u64 = 1 << 20;
const KV_4K: u64 = 16 * MIB;

fn model(dir: &Path, name: &str) {
    sparse_model(&dir.join(format!("{name}.gguf")), name);
}

fn fit(dir: &Path, model: &str, rig: &str, extra: &[&str]) -> (i32, Value) {
    let r = if rig.starts_with('/') {
        rig.to_string()
    } else {
        rigs_dir().join(rig).display().to_string()
    };
    let m = format!("{model}.gguf");
    let mut args = vec!["fit", &m, "--replay", &r, "--format", "json"];
    args.extend_from_slice(extra);
    let out = run_with(&args, |c| {
        c.current_dir(dir);
    });
    assert!(out.code == 0 || out.code == 1, "{args:?}: {}", out.stderr);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    Validator::new(Output::Fit).check(&format!("{args:?}"), &v);
    (out.code, v)
}

fn ids(v: &Value) -> Vec<String> {
    diagnosis_ids(v)
}

fn fixes(v: &Value) -> String {
    v["diagnoses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["fix"].as_str().unwrap().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// A copy of a bundled rig whose /proc/meminfo also says MemAvailable.
fn rig_with_available(dir: &Path, rig: &str, kb: u64) -> String {
    let to = dir.join(format!("{rig}-avail"));
    copy_dir(&rigs_dir().join(rig), &to);
    let mi = to.join("root/proc/meminfo");
    let mut text = std::fs::read_to_string(&mi).unwrap();
    text.push_str(&format!("MemAvailable:   {kb} kB\n"));
    std::fs::write(&mi, text).unwrap();
    to.display().to_string()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let p = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &p);
        } else if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), &p).unwrap();
        }
    }
}

// Mixtral by hand.
const MIX_BLOCK: u64 = 816_480_256;
const MIX_EXPERTS: u64 = 792_723_456;
const MIX_OUTPUT: u64 = 107_536_384;
const MIX_EMBD: u64 = 73_728_000;
/// 512 × 4 × 32000 logits + 512 × 4 × (3 × 14336 × 2) activations.
const MIX_COMPUTE: u64 = 65_536_000 + 176_160_768;
/// One 3090 with CUDA_VISIBLE_DEVICES=0: 24576 − 2 MiB free.
const ONE_3090: u64 = (24576 - 2) * MIB;

#[test]
fn mixtral_on_one_3090_needs_two_layers_of_experts_on_the_host() {
    let t = tempfile::tempdir().unwrap();
    model(t.path(), "mixtral-8x7b-q4_k");
    assert_eq!(32 * MIX_BLOCK + MIX_OUTPUT + MIX_EMBD, 26_308_632_576);
    let (code, v) = fit(t.path(), "mixtral-8x7b-q4_k", "nv-3090-3070-cvd-index", &[]);
    let f = &v["facts"]["fit"];
    assert_eq!(code, 1);
    assert_eq!(f["model"]["weights_bytes"], 26_308_632_576u64);
    assert_eq!(f["model"]["compute_bytes"], MIX_COMPUTE);
    // Everything: 32 × (block + KV) + output + compute = 27,013,472,256 >
    // 25,767,706,624. Layers: the output (with the compute) and n blocks
    // with 349,233,152 + n × 833,257,472 <= free: n = 30, so 31 layers.
    let all = 32 * (MIX_BLOCK + KV_4K) + MIX_OUTPUT + MIX_COMPUTE;
    assert_eq!(all, 27_013_472_256);
    assert!(all > ONE_3090);
    let n = (ONE_3090 - MIX_OUTPUT - MIX_COMPUTE) / (MIX_BLOCK + KV_4K);
    assert_eq!(n, 30);
    assert_eq!(f["gpu_layers"], 31);
    // --n-cpu-moe N: all − N × experts <= free: N >= 1.57, so 2.
    assert!(all - MIX_EXPERTS > ONE_3090 && all - 2 * MIX_EXPERTS <= ONE_3090);
    assert_eq!(f["n_cpu_moe_fix"], 2);
    let fx = fixes(&v);
    assert!(fx.contains("-ngl 33 --n-cpu-moe 2 "), "{fx}");
    // The placement llama.cpp makes with it: all 33 layers on the card,
    // blocks 0 and 1's experts and token_embd in host memory.
    let (code, v) = fit(
        t.path(),
        "mixtral-8x7b-q4_k",
        "nv-3090-3070-cvd-index",
        &["--n-cpu-moe", "2"],
    );
    let f = &v["facts"]["fit"];
    assert_eq!((code, f["verdict"].as_str()), (0, Some("fits")));
    assert_eq!(f["settings"]["n_cpu_moe"], 2);
    let d = &f["devices"][0];
    assert_eq!(d["need_bytes"], all - 2 * MIX_EXPERTS);
    assert_eq!(f["host"]["weights_bytes"], MIX_EMBD + 2 * MIX_EXPERTS);
    assert_eq!(f["host"]["experts_bytes"], 2 * MIX_EXPERTS);
    assert_eq!(f["host"]["kv_bytes"], 0);
    // --cpu-moe: every block's experts on the host.
    let (_, v) = fit(
        t.path(),
        "mixtral-8x7b-q4_k",
        "nv-3090-3070-cvd-index",
        &["--cpu-moe"],
    );
    let f = &v["facts"]["fit"];
    assert_eq!(f["host"]["weights_bytes"], MIX_EMBD + 32 * MIX_EXPERTS);
    assert_eq!(f["devices"][0]["need_bytes"], all - 32 * MIX_EXPERTS);
}

#[test]
fn the_next_smaller_quant_of_mixtral_that_fits_one_3090() {
    let t = tempfile::tempdir().unwrap();
    model(t.path(), "mixtral-8x7b-q4_k");
    // llama-quant.cpp's Q3_K_M on 8 experts: attn_k and attn_v Q8_0 (4352
    // × 1024 each), attn_q Q3_K (1760 × 4096), attn_output Q5_K (2816 ×
    // 4096), gate and up experts Q3_K (1760 × 14336 × 8 each), down experts
    // Q5_K on the first 32/16 = 2 blocks (9856 × 4096 × 8), Q4_K on the
    // others (8064 × 4096 × 8); norms and ffn_gate_inp stay F32.
    let small = 2 * 4_456_448 + 7_208_960 + 11_534_336 + 2 * 201_850_880 + 32_768 + 131_072;
    let block = small + 264_241_152;
    let first = small + 322_961_408;
    // token_embd Q3_K 1760 × 32000; output Q6_K as before.
    let q3 = 30 * block + 2 * first + 56_320_000 + MIX_OUTPUT;
    assert_eq!(q3, 22_545_711_104);
    // On the card: every block, KV, output, compute.
    assert!(q3 - 56_320_000 + 32 * KV_4K + MIX_COMPUTE <= ONE_3090);
    // IQ4_XS (136 bytes per 256; attn_output Q5_K, k/v Q8_0, down Q5_K on
    // the first 4 blocks) is 25,196,232,704 + output + token_embd: with KV
    // and compute over the card, so Q3_K_M is the largest that fits.
    let iq4 = 32 * (2 * 4_456_448 + 8_912_896 + 11_534_336 + 3 * 249_561_088 + 163_840)
        + 4 * (322_961_408 - 249_561_088);
    assert!(iq4 + MIX_OUTPUT + 32 * KV_4K + MIX_COMPUTE > ONE_3090);
    let (_, v) = fit(t.path(), "mixtral-8x7b-q4_k", "nv-3090-3070-cvd-index", &[]);
    let sq = &v["facts"]["fit"]["smaller_quant"];
    assert_eq!(sq["mix"], "Q3_K_M");
    assert_eq!(sq["weights_bytes"], q3);
    assert!(fixes(&v).contains("a Q3_K_M of this model, about 21 GiB"));
}

#[test]
fn host_memory_counts_what_stays_on_the_cpu() {
    let t = tempfile::tempdir().unwrap();
    model(t.path(), "mixtral-8x7b-q4_k");
    // 1 GiB available for 1.55 GiB of host weights (token_embd and two
    // blocks of experts): an error, exit 1, even though the GPU side fits.
    let r = rig_with_available(t.path(), "nv-3090-3070-cvd-index", 1 << 20);
    let (code, v) = fit(t.path(), "mixtral-8x7b-q4_k", &r, &["--n-cpu-moe", "2"]);
    let f = &v["facts"]["fit"];
    assert_eq!(code, 1);
    assert_eq!(f["verdict"], "fits");
    assert_eq!(v["verdict"], "error");
    assert_eq!(f["host"]["available_bytes"], 1u64 << 30);
    assert_eq!(f["host"]["need_bytes"], MIX_EMBD + 2 * MIX_EXPERTS);
    assert_eq!(f["host"]["fits"], false);
    assert!(ids(&v).contains(&"FIT-HOST-MEMORY".to_string()));
    // 4 GiB: fine.
    let r = rig_with_available(t.path(), "nv-3090-3070-cvd-index", 4 << 20);
    let (code, v) = fit(t.path(), "mixtral-8x7b-q4_k", &r, &["--n-cpu-moe", "2"]);
    assert_eq!(code, 0);
    assert_eq!(v["facts"]["fit"]["host"]["fits"], true);
    // No MemAvailable in the capture: unknown, never "fits".
    let (_, v) = fit(
        t.path(),
        "mixtral-8x7b-q4_k",
        "nv-3090-3070-cvd-index",
        &["--n-cpu-moe", "2"],
    );
    assert_eq!(v["facts"]["fit"]["host"]["fits"], Value::Null);
    assert!(
        v["facts"]["fit"]["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n
                .as_str()
                .unwrap()
                .contains("MemAvailable could not be read"))
    );
}

// Llama 3.1 8B Q8_0 by hand.
const L8_BLOCK: u64 = 231_768_064;
const L8_OUTPUT: u64 = 558_186_496;
/// 512 × 4 × 128256 + 512 × 4 × 3 × 14336.
const L8_COMPUTE: u64 = 262_668_288 + 88_080_384;

#[test]
fn an_8b_q8_0_on_a_b580() {
    let t = tempfile::tempdir().unwrap();
    model(t.path(), "llama-8b-q8_0");
    let b580: u64 = 12 << 30;
    // -c 32768: KV 32 × 128 MiB = 4 GiB; 7,416,578,048 + 558,186,496 +
    // 4 GiB + 350,748,672 = 12,620,480,512 <= 12 GiB: fits.
    let need = 32 * L8_BLOCK + L8_OUTPUT + 4 * (1 << 30) + L8_COMPUTE;
    assert_eq!(need, 12_620_480_512);
    assert!(need <= b580);
    let (code, v) = fit(
        t.path(),
        "llama-8b-q8_0",
        "b580-x4-slot",
        &["--ctx", "32768"],
    );
    assert_eq!(code, 0);
    assert_eq!(v["facts"]["fit"]["devices"][0]["need_bytes"], need);
    // -c 65536: 8 GiB of KV; the largest context with every layer on the
    // card: (12 GiB − weights − compute) / (32 × 2 × 8 × 128 × 2 bytes per
    // cell = 131072) = 34,785.4 cells, 34,560 as a multiple of 256.
    let (code, v) = fit(
        t.path(),
        "llama-8b-q8_0",
        "b580-x4-slot",
        &["--ctx", "65536"],
    );
    assert_eq!(code, 1);
    let room = b580 - 32 * L8_BLOCK - L8_OUTPUT - L8_COMPUTE;
    let best = room / 131_072 / 256 * 256;
    assert_eq!(best, 34_560);
    assert!(fixes(&v).contains(&format!("-c {best} ")), "{}", fixes(&v));
    // A Q6_K of it fits at 65536? 8 GiB of KV + 6.6 GB: no; a Q4_K_M does
    // not either (5 GB + 8 GiB + compute > 12 GiB), so IQ4_XS or smaller
    // is offered, or nothing: whatever is offered is smaller than Q8_0.
    if let Some(w) = v["facts"]["fit"]["smaller_quant"]["weights_bytes"].as_u64() {
        assert!(w < 8_532_934_656);
    }
}

#[test]
fn a_32b_q4_k_on_a_7900_xtx_and_row_split_on_cuda_is_refused() {
    let t = tempfile::tempdir().unwrap();
    model(t.path(), "qwen2-32b-q4_k");
    // 18,634,252,288 bytes of weights (gguf-py); the 7900 XTX has 23 GiB
    // free (24560 MiB total, 1 GiB in use in the capture).
    let (code, v) = fit(t.path(), "qwen2-32b-q4_k", "amd-7900xtx", &[]);
    let f = &v["facts"]["fit"];
    assert_eq!(f["model"]["weights_bytes"], 18_634_252_288u64);
    // KV at 4096: 64 blocks × 16 MiB = 1 GiB.
    assert_eq!(f["model"]["kv_bytes"], 1u64 << 30);
    assert_eq!((code, f["verdict"].as_str()), (0, Some("fits")));
    // --split-mode row on two 3090s: placed, but this llama.cpp refuses.
    model(t.path(), "llama-70b-q4_k");
    let (code, v) = fit(
        t.path(),
        "llama-70b-q4_k",
        "nv-2x3090-nvlink",
        &["--split-mode", "row"],
    );
    assert_eq!(code, 1);
    assert_eq!(v["facts"]["fit"]["settings"]["split_mode"], "row");
    assert!(ids(&v).contains(&"FIT-ROW-UNSUPPORTED".to_string()));
}

#[test]
fn row_split_on_dual_a770() {
    let t = tempfile::tempdir().unwrap();
    model(t.path(), "llama-8b-q8_0");
    model(t.path(), "mixtral-8x7b-q4_k");
    // The 8B on two 16 GiB A770s, rows by total VRAM (half each): every
    // Q8_0 matrix's rows split at nrows/2 rounded down to 64, so each card
    // holds half of each matrix exactly (4096, 1024, 14336 and 128256 rows
    // are multiples of 128). The norms (32 KiB per block), KV and compute
    // stay with the layer: 17 layers on SYCL0, 15 blocks and the output on
    // SYCL1.
    let (code, v) = fit(
        t.path(),
        "llama-8b-q8_0",
        "dual-a770",
        &["--split-mode", "row"],
    );
    assert_eq!(code, 0);
    let d = v["facts"]["fit"]["devices"].as_array().unwrap();
    let mats = 32 * (L8_BLOCK - 32_768) + 558_170_112;
    assert_eq!(
        d[0]["weights_bytes"].as_u64().unwrap(),
        mats / 2 + 17 * 32_768
    );
    assert_eq!(
        d[1]["weights_bytes"].as_u64().unwrap(),
        mats / 2 + 15 * 32_768 + 16_384
    );
    assert_eq!(d[0]["kv_bytes"], 17 * KV_4K);
    // A MoE model: the experts' MUL_MAT_ID does not take a split weight.
    let (code, v) = fit(
        t.path(),
        "mixtral-8x7b-q4_k",
        "dual-a770",
        &["--split-mode", "row"],
    );
    assert_eq!(code, 1);
    assert!(ids(&v).contains(&"FIT-ROW-MOE".to_string()));
    let (_, v) = fit(
        t.path(),
        "mixtral-8x7b-q4_k",
        "dual-a770",
        &["--split-mode", "row", "--cpu-moe"],
    );
    assert!(!ids(&v).contains(&"FIT-ROW-MOE".to_string()));
}

#[test]
fn moe_flags_are_llama_cpp_only() {
    let out = run(&["fit", "x.gguf", "--engine", "ollama", "--cpu-moe"]);
    assert_eq!(out.code, 2);
    let out = run(&["fit", "x.gguf", "--cpu-moe", "--n-cpu-moe", "3"]);
    assert_eq!(out.code, 2);
}

#[test]
fn a_70b_q4_k_on_a_3090_and_a_4090() {
    let t = tempfile::tempdir().unwrap();
    model(t.path(), "llama-70b-q4_k");
    // Llama 3.1 70B Q4_K (output Q6_K): 80 blocks, n_embd 8192, 64 heads,
    // 8 KV heads, n_ff 28672, vocab 128256. A block: q and o 4608 × 8192 =
    // 37,748,736 each, k and v 4608 × 1024 = 4,718,592 each, gate, up and
    // down 132,120,576 each, norms 65,536: 481,361,920. Output 6720 ×
    // 128256 + 32,768 = 861,913,088.
    let block = 481_361_920u64;
    let output = 861_913_088u64;
    assert_eq!(80 * block + output + 4608 * 128_256, 39_961_870_336);
    // 24574 and 24562 MiB free: the split point 24574 / 49136 = 0.5001, so
    // layers 0-40 (41) on CUDA0, 41-79 and the output (40) on CUDA1.
    let (f0, f1) = ((24576 - 2) * MIB, (24564 - 2) * MIB);
    let logits = 2048 * 128_256u64;
    let act = 2048 * 3 * 28_672u64;
    for (ctx, kv) in [("4096", KV_4K), ("32768", 8 * KV_4K)] {
        let (code, v) = fit(
            t.path(),
            "llama-70b-q4_k",
            "nv-3090-4090-mixed",
            &["--ctx", ctx],
        );
        let d = v["facts"]["fit"]["devices"].as_array().unwrap();
        assert_eq!(d[1]["name"], "NVIDIA GeForce RTX 4090");
        assert_eq!(d[1]["free_bytes"], f1);
        assert_eq!(
            (d[0]["layers"].as_u64(), d[1]["layers"].as_u64()),
            (Some(41), Some(40))
        );
        let n0 = 41 * (block + kv) + act;
        let n1 = 39 * (block + kv) + output + logits + act;
        assert_eq!(d[0]["need_bytes"], n0, "-c {ctx}");
        assert_eq!(d[1]["need_bytes"], n1, "-c {ctx}");
        // -c 32768: 25,414,926,336 of 25,767,706,624 and 25,308,348,416 of
        // 25,755,389,952: still fits.
        assert!(n0 <= f0 && n1 <= f1);
        assert_eq!(code, 0);
    }
}
