//! `rigdoctor fit --engine ollama` end to end: ollama 0.30+ runs
//! llama.cpp's llama-server with `-c num_ctx × OLLAMA_NUM_PARALLEL`, its KV
//! cache type and no `-ngl` (llama.cpp `--fit` places the layers, 1 GiB kept
//! free per GPU). Models: the real shapes of a Llama 3.1 70B Q4_K
//! (fixtures/gguf/mkheads.py) as a sparse file; a real ollama manifest
//! (fixtures/ollama/README.md) naming a generated GGUF blob.

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
use std::process::Command;

const OLLAMA_VARS: &[&str] = &[
    "OLLAMA_MODELS",
    "OLLAMA_CONTEXT_LENGTH",
    "OLLAMA_NUM_PARALLEL",
    "OLLAMA_KV_CACHE_TYPE",
    "OLLAMA_GPU_OVERHEAD",
    "LLAMA_ARG_FIT_TARGET",
];

/// The environment of a fresh shell: none of ollama's variables, HOME in `dir`.
fn clean(c: &mut Command, dir: &Path) {
    for v in OLLAMA_VARS {
        c.env_remove(v);
    }
    c.env("HOME", dir).current_dir(dir);
}

/// `fit MODEL --engine ollama --replay RIG --format json` with `env` set.
fn fit(dir: &Path, model: &str, rig: &str, extra: &[&str], env: &[(&str, &str)]) -> (i32, Value) {
    let r = rigs_dir().join(rig).display().to_string();
    let mut args = vec![
        "fit", model, "--engine", "ollama", "--replay", &r, "--format", "json",
    ];
    args.extend_from_slice(extra);
    let out = run_with(&args, |c| {
        clean(c, dir);
        for (k, v) in env {
            c.env(k, v);
        }
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

fn layers(v: &Value) -> Vec<u64> {
    v["facts"]["fit"]["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["layers"].as_u64().unwrap())
        .collect()
}

fn fix(v: &Value) -> String {
    v["diagnoses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["fix"].as_str().unwrap().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

fn seventy_b(dir: &Path) -> String {
    let p = dir.join("llama-70b-q4_k.gguf");
    sparse_model(&p, "llama-70b-q4_k");
    p.display().to_string()
}

#[test]
fn ollamas_default_context_on_two_3090s_spills_layers_and_the_fix_is_the_context() {
    let t = tempfile::tempdir().unwrap();
    let m = seventy_b(t.path());
    // 2 × 24 GiB is ollama's top tier (262144), capped at the model's 131072:
    // 40 GiB of KV cache next to 37.2 GiB of weights.
    let (code, v) = fit(t.path(), &m, "nv-2x3090-nvlink", &[], &[]);
    let f = &v["facts"]["fit"];
    assert_eq!(code, 1);
    assert_eq!(f["engine"], "ollama");
    assert_eq!(f["verdict"], "partial");
    let o = &f["settings"]["ollama"];
    assert_eq!(
        (
            o["num_ctx"].as_u64(),
            o["num_ctx_source"].as_str(),
            o["n_ctx_train"].as_u64()
        ),
        (Some(131_072), Some("default"), Some(131_072))
    );
    assert_eq!(
        o["fit_margin_bytes"],
        serde_json::json!([1u64 << 30, 1u64 << 30])
    );
    assert_eq!(
        f["model"]["kv_bytes"].as_u64(),
        Some(80 * 131_072 * 2 * 8 * 128 * 2)
    );
    // --fit fills from the back: the last GPU (with the output layer) first.
    // Checked by hand with gguf-py's tensor sizes and the same greedy fill.
    assert_eq!(layers(&v), [24, 23]);
    assert_eq!(f["gpu_layers"], 47);
    let fx = fix(&v);
    assert!(fx.contains("sudo systemctl edit ollama.service"), "{fx}");
    assert!(
        fx.contains("Environment=\"OLLAMA_CONTEXT_LENGTH=28416\""),
        "{fx}"
    );
    assert!(
        !fx.contains("OLLAMA_KV_CACHE_TYPE"),
        "q8_0 does not make it fit: {fx}"
    );
    assert!(!fx.contains("-ngl"), "no llama.cpp flags for ollama: {fx}");

    // The fix is the largest context that fits: at it every layer is on the
    // GPUs, 256 more and one is not.
    let (code, v) = fit(
        t.path(),
        &m,
        "nv-2x3090-nvlink",
        &[],
        &[("OLLAMA_CONTEXT_LENGTH", "28416")],
    );
    assert_eq!(
        (code, v["facts"]["fit"]["verdict"].as_str()),
        (0, Some("fits"))
    );
    assert_eq!(
        v["facts"]["fit"]["settings"]["ollama"]["num_ctx_source"],
        "OLLAMA_CONTEXT_LENGTH"
    );
    let notes = v["facts"]["fit"]["notes"].to_string();
    assert!(
        notes.contains("OLLAMA_CONTEXT_LENGTH=28416 from this shell"),
        "{notes}"
    );
    assert!(
        notes.contains("systemctl show ollama -p Environment"),
        "{notes}"
    );
    let (code, _) = fit(t.path(), &m, "nv-2x3090-nvlink", &["--ctx", "28672"], &[]);
    assert_eq!(code, 1);
}

#[test]
fn parallel_slots_and_the_kv_type_come_from_ollamas_variables() {
    let t = tempfile::tempdir().unwrap();
    let m = seventy_b(t.path());
    let (_, one) = fit(t.path(), &m, "nv-2x3090-nvlink", &["--ctx", "4096"], &[]);
    let kv1 = one["facts"]["fit"]["model"]["kv_bytes"].as_u64().unwrap();
    assert_eq!(kv1, 80 * 4096 * 2 * 8 * 128 * 2);
    // OLLAMA_NUM_PARALLEL=4: llama-server -c 16384 -np 4, four times the KV.
    let (_, four) = fit(
        t.path(),
        &m,
        "nv-2x3090-nvlink",
        &["--ctx", "4096"],
        &[("OLLAMA_NUM_PARALLEL", "4")],
    );
    let s = &four["facts"]["fit"]["settings"];
    assert_eq!(
        (s["ctx_cells"].as_u64(), s["parallel"].as_u64()),
        (Some(16_384), Some(4))
    );
    assert_eq!(
        four["facts"]["fit"]["model"]["kv_bytes"].as_u64(),
        Some(4 * kv1)
    );
    // A flag wins over the variable.
    let (_, two) = fit(
        t.path(),
        &m,
        "nv-2x3090-nvlink",
        &["--ctx", "4096", "--parallel", "2"],
        &[("OLLAMA_NUM_PARALLEL", "4")],
    );
    assert_eq!(two["facts"]["fit"]["settings"]["parallel"], 2);
    // q8_0: 34 bytes per 32 values where f16 takes 64.
    let (_, q8) = fit(
        t.path(),
        &m,
        "nv-2x3090-nvlink",
        &["--ctx", "4096"],
        &[("OLLAMA_KV_CACHE_TYPE", "q8_0")],
    );
    assert_eq!(q8["facts"]["fit"]["settings"]["kv_type"], "q8_0");
    assert_eq!(
        q8["facts"]["fit"]["model"]["kv_bytes"].as_u64(),
        Some(kv1 / 64 * 34)
    );
    // Unreadable values keep ollama's defaults, and say so.
    let (_, bad) = fit(
        t.path(),
        &m,
        "nv-2x3090-nvlink",
        &["--ctx", "4096"],
        &[("OLLAMA_NUM_PARALLEL", "lots")],
    );
    assert_eq!(bad["facts"]["fit"]["settings"]["parallel"], 1);
    assert!(
        bad["facts"]["fit"]["notes"]
            .to_string()
            .contains("OLLAMA_NUM_PARALLEL=lots is not a value ollama reads")
    );
}

/// An ollama store in `root` holding the real gemma:2b manifest, its model
/// blob a generated GGUF.
fn store(root: &Path) -> u64 {
    let man = root.join("manifests/registry.ollama.ai/library/gemma");
    std::fs::create_dir_all(&man).unwrap();
    std::fs::copy(root_fixture("gemma-2b.manifest"), man.join("2b")).unwrap();
    std::fs::create_dir_all(root.join("blobs")).unwrap();
    sparse_model(
        &root.join("blobs/sha256-c1864a5eb19305c40519da12cc543519e48a0697ecd30e15d5ac228644957d12"),
        "qwen2-q8_0",
    )
}

fn root_fixture(name: &str) -> PathBuf {
    root().join("fixtures/ollama").join(name)
}

#[test]
fn model_names_resolve_through_ollamas_store() {
    let t = tempfile::tempdir().unwrap();
    // OLLAMA_MODELS first.
    let models = t.path().join("elsewhere");
    let weights = store(&models);
    let (code, v) = fit(
        t.path(),
        "gemma:2b",
        "nv-2x3090-nvlink",
        &[],
        &[("OLLAMA_MODELS", models.to_str().unwrap())],
    );
    assert_eq!(code, 0);
    assert_eq!(v["facts"]["fit"]["model"]["path"], "gemma:2b");
    assert_eq!(
        v["facts"]["fit"]["model"]["weights_bytes"].as_u64(),
        Some(weights)
    );
    // Then ~/.ollama/models.
    let home = tempfile::tempdir().unwrap();
    store(&home.path().join(".ollama/models"));
    let (code, _) = fit(home.path(), "gemma:2b", "nv-2x3090-nvlink", &[], &[]);
    assert_eq!(code, 0);

    let r = rigs_dir().join("nv-2x3090-nvlink").display().to_string();
    let bad = |name: &str, models: &Path| {
        run_with(&["fit", name, "--engine", "ollama", "--replay", &r], |c| {
            clean(c, t.path());
            c.env("OLLAMA_MODELS", models);
        })
    };
    let out = bad("nosuch:7b", &models);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("ollama pull nosuch:7b"),
        "{}",
        out.stderr
    );
    let out = bad("lib/../x", &models);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("not a valid ollama model name"),
        "{}",
        out.stderr
    );
    // A manifest whose digest walks out of the store is refused.
    let hostile = t.path().join("hostile");
    let man = hostile.join("manifests/registry.ollama.ai/library/evil");
    std::fs::create_dir_all(&man).unwrap();
    std::fs::write(
        man.join("latest"),
        r#"{"layers":[{"mediaType":"application/vnd.ollama.image.model","digest":"sha256:../../../etc/passwd"}]}"#,
    )
    .unwrap();
    let out = bad("evil", &hostile);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("is not sha256:<64 hex>"),
        "{}",
        out.stderr
    );
    // llama.cpp's split flags do not apply to ollama.
    let out = run_with(
        &[
            "fit",
            "gemma:2b",
            "--engine",
            "ollama",
            "--split-mode",
            "none",
            "--replay",
            &r,
        ],
        |c| clean(c, t.path()),
    );
    assert_eq!(out.code, 2);
}

#[test]
fn human_page() {
    let t = tempfile::tempdir().unwrap();
    seventy_b(t.path());
    let r = rigs_dir().join("nv-2x3090-nvlink").display().to_string();
    let out = run_with(
        &[
            "fit",
            "llama-70b-q4_k.gguf",
            "--engine",
            "ollama",
            "--replay",
            &r,
        ],
        |c| clean(c, t.path()),
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    insta::assert_snapshot!("fit_human__ollama-70b-2x3090", out.stdout);
}
