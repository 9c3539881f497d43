//! Helpers shared by the end-to-end tests: run the real binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub mod schema;

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_rigdoctor")
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn rigs_dir() -> PathBuf {
    root().join("fixtures/rigs")
}

/// Every rig fixture, by name.
pub fn rigs() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(rigs_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("capture.json").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn run_with(args: &[&str], setup: impl FnOnce(&mut Command)) -> Run {
    let mut c = Command::new(bin());
    // The page's width is 80 when piped unless COLUMNS says otherwise.
    c.args(args)
        .stdin(Stdio::null())
        .env_remove("NO_COLOR")
        .env_remove("COLUMNS");
    setup(&mut c);
    let Output {
        status,
        stdout,
        stderr,
    } = c.output().unwrap();
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

pub fn run(args: &[&str]) -> Run {
    run_with(args, |_| {})
}

/// `check --replay` of a rig as JSON, run in-process (the same code as the
/// binary; tests that need the binary's edges run it instead).
pub fn replay_json(rig: &str) -> serde_json::Value {
    static RULES: std::sync::OnceLock<Vec<rigdoctor::diagnose::rules::Rule>> =
        std::sync::OnceLock::new();
    let rules = RULES.get_or_init(|| rigdoctor::diagnose::rules::load(None).unwrap());
    let src = rigdoctor::source::replay::Replay::open(&rigs_dir().join(rig))
        .unwrap_or_else(|e| panic!("{rig}: {e}"));
    let report = rigdoctor::check(&src, &rigdoctor::probe::ProbeOptions::default(), rules);
    serde_json::to_value(&report).unwrap()
}

pub fn diagnosis_ids(report: &serde_json::Value) -> Vec<String> {
    report["diagnoses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_string())
        .collect()
}

/// A directory with executable scripts named like tools, for a test PATH.
pub fn fake_tools(dir: &Path, tools: &[(&str, &str)]) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).unwrap();
    for (name, script) in tools {
        let p = dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{script}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

/// fixtures/gguf/NAME.head grown to the model's length as a sparse file at
/// `path` (fit reads only the header); the model's weights bytes.
pub fn sparse_model(path: &Path, name: &str) -> u64 {
    let g = root().join("fixtures/gguf");
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(g.join(format!("{name}.json"))).unwrap())
            .unwrap();
    std::fs::copy(g.join(format!("{name}.head")), path).unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.set_len(meta["file_len"].as_u64().unwrap()).unwrap();
    meta["weights_bytes"].as_u64().unwrap()
}
