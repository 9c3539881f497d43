//! `rigdoctor fit` end to end: real GGUF headers written by the `gguf`
//! package (fixtures/gguf/mkgguf.py: small models llama.cpp loaded;
//! fixtures/gguf/mkheads.py: a Llama 3.1 70B's real shapes) made whole
//! again as sparse files of their real length (fit reads only the header),
//! against replayed rigs: two 3090s, a 3090 + 3070, and the same with
//! CUDA_VISIBLE_DEVICES=0.

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
use std::path::{Path, PathBuf};

const GIB: u64 = 1 << 30;

/// NAME.head grown to the model's length as a sparse file in `dir`.
fn model(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(format!("{name}.gguf"));
    sparse_model(&path, name);
    path
}

fn rig(name: &str) -> String {
    rigs_dir().join(name).display().to_string()
}

/// `fit --format json` in `dir` (the model named relative to it).
fn fit_json(dir: &Path, model: &str, rig_name: &str, extra: &[&str]) -> (i32, Value) {
    let r = rig(rig_name);
    let mut args = vec!["fit", model, "--replay", &r, "--format", "json"];
    args.extend_from_slice(extra);
    let out = run_with(&args, |c| {
        c.current_dir(dir);
    });
    assert!(
        out.code == 0 || out.code == 1,
        "{args:?}: {} {}",
        out.code,
        out.stderr
    );
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    Validator::new(Output::Fit).check(&format!("{args:?}"), &v);
    (out.code, v)
}

fn devices(v: &Value) -> &Vec<Value> {
    v["facts"]["fit"]["devices"].as_array().unwrap()
}

#[test]
fn a_70b_q4_k_fits_two_3090s_at_4k_and_32k() {
    let t = tempfile::tempdir().unwrap();
    model(t.path(), "llama-70b-q4_k");
    let (code, v) = fit_json(t.path(), "llama-70b-q4_k.gguf", "nv-2x3090-nvlink", &[]);
    let f = &v["facts"]["fit"];
    assert_eq!(code, 0);
    assert_eq!(f["verdict"], "fits");
    assert_eq!(f["gpu_layers"], 81);
    assert_eq!(f["model"]["layers"], 80);
    // gguf-py's sum of the tensors' bytes (llama-70b-q4_k.json).
    assert_eq!(f["model"]["weights_bytes"], 39_961_870_336u64);
    let d = devices(&v);
    assert_eq!(d.len(), 2);
    // 81 layers over two equal cards: 41 on CUDA0, 40 and the output on
    // CUDA1 (llama.cpp: layer 40 of 81 is at 0.494 < 0.5).
    assert_eq!(
        (d[0]["layers"].as_u64(), d[1]["layers"].as_u64()),
        (Some(41), Some(40))
    );
    // KV: per layer 4096 cells x 8 heads x 128 x 2 bytes x (K + V) = 16 MiB.
    assert_eq!(d[0]["kv_bytes"], 41 * 16 * 1024 * 1024u64);
    assert_eq!(d[1]["kv_bytes"], 39 * 16 * 1024 * 1024u64);
    assert_eq!(d[0]["free_bytes"], (24576 - 2) * 1024 * 1024u64);
    for x in d {
        let sum = ["weights_bytes", "kv_bytes", "compute_bytes"]
            .iter()
            .map(|k| x[k].as_u64().unwrap())
            .sum::<u64>();
        assert_eq!(x["need_bytes"].as_u64().unwrap(), sum);
        assert!(sum <= x["free_bytes"].as_u64().unwrap());
    }
    // At 32k the KV cache is 10 GiB: 23.7 of 24 GiB, still fits.
    let (code, v) = fit_json(
        t.path(),
        "llama-70b-q4_k.gguf",
        "nv-2x3090-nvlink",
        &["--ctx", "32768"],
    );
    assert_eq!(
        (code, v["facts"]["fit"]["verdict"].as_str()),
        (0, Some("fits"))
    );
    assert_eq!(v["facts"]["fit"]["model"]["kv_bytes"], 10 * GIB);
}

#[test]
fn a_70b_on_one_3090_is_partial_with_pasteable_fixes() {
    let t = tempfile::tempdir().unwrap();
    model(t.path(), "llama-70b-q4_k");
    let (code, v) = fit_json(
        t.path(),
        "llama-70b-q4_k.gguf",
        "nv-3090-3070-cvd-index",
        &[],
    );
    let f = &v["facts"]["fit"];
    assert_eq!(code, 1);
    assert_eq!(f["verdict"], "partial");
    assert_eq!(f["selector"], "CUDA_VISIBLE_DEVICES=0");
    assert_eq!(f["gpus_on_rig"], 2);
    assert_eq!(devices(&v).len(), 1, "the app sees one GPU");
    let n = f["gpu_layers"].as_u64().unwrap();
    // 24 GiB over about 0.47 GiB per layer (weights + 16 MiB KV), the
    // output layer (0.8 GiB with its logits) first.
    assert!((45..=50).contains(&n), "{n}");
    assert!(
        devices(&v)[0]["need_bytes"].as_u64().unwrap()
            <= devices(&v)[0]["free_bytes"].as_u64().unwrap()
    );
    assert_eq!(v["verdict"], "warn");
    let ids = diagnosis_ids(&v);
    assert_eq!(ids, vec!["FIT-PARTIAL", "FIT-SELECTOR"]);
    let fix = v["diagnoses"][0]["fix"].as_str().unwrap();
    assert!(fix.contains(&format!("-ngl {n} ")), "{fix}");
}

#[test]
fn unequal_cards_get_a_balancing_tensor_split() {
    let t = tempfile::tempdir().unwrap();
    model(t.path(), "llama-70b-q4_k");
    // 3090 + 3070: 32 GiB for 37 GiB of weights: partial whatever the
    // split; at -ngl 64 the free-memory split (3:1) fits.
    let (code, v) = fit_json(t.path(), "llama-70b-q4_k.gguf", "nv-3090-3070-mixed", &[]);
    assert_eq!(code, 1);
    assert_eq!(v["facts"]["fit"]["gpu_layers"], 64);
    // A model that fits both only with the split moved off the small card:
    // the 70B at --ngl 60 with --tensor-split 1,1 overfills the 3070.
    let (code, v) = fit_json(
        t.path(),
        "llama-70b-q4_k.gguf",
        "nv-3090-3070-mixed",
        &["--ngl", "60", "--tensor-split", "1,1"],
    );
    assert_eq!(code, 1);
    let f = &v["facts"]["fit"];
    assert!(f["gpu_layers"].as_u64().unwrap() < 60);
    let fix = v["diagnoses"][0]["fix"].as_str().unwrap();
    assert!(fix.contains("-ngl "), "{fix}");
}

#[test]
fn small_models_fit_and_kv_type_and_split_mode_apply() {
    let t = tempfile::tempdir().unwrap();
    model(t.path(), "qwen2-q8_0");
    model(t.path(), "llama-gqa-q4_0");
    let (code, v) = fit_json(t.path(), "qwen2-q8_0.gguf", "nv-2x3090-nvlink", &[]);
    assert_eq!(code, 0);
    let f = &v["facts"]["fit"];
    assert_eq!(f["model"]["weights_bytes"], 67_315_200u64);
    assert_eq!(f["model"]["tied_output"], true);
    // llama.cpp logged 8.00 MiB of KV for qwen2-q8_0 at -c 4096
    // (fixtures/gguf/llama-cpp/qwen2-q8_0-c4096-f16-np1.log).
    assert_eq!(f["model"]["kv_bytes"], 8 * 1024 * 1024u64);
    let (_, q8) = fit_json(
        t.path(),
        "llama-gqa-q4_0.gguf",
        "nv-2x3090-nvlink",
        &["--ctx", "8192", "--kv-type", "q8_0", "--split-mode", "none"],
    );
    // llama.cpp: 12.75 MiB at -c 8192 -ctk q8_0 -ctv q8_0.
    assert_eq!(
        q8["facts"]["fit"]["model"]["kv_bytes"],
        12 * 1024 * 1024 + 768 * 1024u64
    );
    assert_eq!(devices(&q8).len(), 1, "split-mode none uses the main GPU");
    assert_eq!(q8["facts"]["fit"]["gpu_layers"], 7);
}

#[test]
fn unreadable_models_and_other_engines_exit_2() {
    let t = tempfile::tempdir().unwrap();
    let head = std::fs::read(root().join("fixtures/gguf/qwen2-q8_0.head")).unwrap();
    let r = rig("nv-2x3090-nvlink");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated.gguf", head[..1000].to_vec()),
        // The header alone: its tensors point past the end of the file.
        ("headonly.gguf", head.clone()),
        ("notgguf.gguf", b"PK\x03\x04 not a model".to_vec()),
        ("hostile.gguf", {
            let mut b = head.clone();
            b[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
            b
        }),
    ];
    for (name, bytes) in cases {
        let p = t.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        let out = run(&["fit", p.to_str().unwrap(), "--replay", &r]);
        assert_eq!(out.code, 2, "{name}: {}", out.stderr);
        assert!(
            out.stderr.contains("cannot read the model"),
            "{name}: {}",
            out.stderr
        );
        assert!(out.stdout.is_empty());
    }
    let out = run(&["fit", "/nonexistent.gguf", "--engine", "ipex-llm"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("not modelled yet"), "{}", out.stderr);
    let out = run(&["fit", "x.gguf", "--tensor-split", "1,-1"]);
    assert_eq!(out.code, 2);
}

#[test]
fn human_page() {
    let t = tempfile::tempdir().unwrap();
    model(t.path(), "llama-70b-q4_k");
    let r = rig("nv-3090-3070-cvd-index");
    let out = run_with(&["fit", "llama-70b-q4_k.gguf", "--replay", &r], |c| {
        c.current_dir(t.path());
    });
    assert_eq!(out.code, 1, "{}", out.stderr);
    insta::assert_snapshot!("fit_human__70b-cvd-index", out.stdout);
}
