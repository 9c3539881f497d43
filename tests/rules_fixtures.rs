//! Every rule parses, ids are unique, and every rule fires on the fixtures it
//! names and stays silent on the close ones it names.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly on purpose"
)]

mod common;

use std::collections::BTreeSet;

use common::*;
use rigdoctor::diagnose::rules;

#[test]
fn every_rule_file_is_compiled_in() {
    let on_disk: BTreeSet<String> = std::fs::read_dir(root().join("rules"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| format!("rules/{}", e.file_name().to_string_lossy()))
        .filter(|n| n.ends_with(".toml"))
        .collect();
    let built_in: BTreeSet<String> = rules::BUILTIN.iter().map(|(n, _)| n.to_string()).collect();
    assert_eq!(on_disk, built_in, "rules/ and rules::BUILTIN differ");
}

#[test]
fn rules_parse_with_unique_ids() {
    let rules = rules::load(None).expect("built-in rules load");
    assert!(rules.len() >= 12, "only {} rules", rules.len());
    let ids: BTreeSet<&str> = rules.iter().map(|r| r.spec.id.as_str()).collect();
    assert_eq!(ids.len(), rules.len(), "duplicate ids");
}

#[test]
fn every_rule_fires_on_its_fixture_and_not_on_its_near_miss() {
    let rules = rules::load(None).unwrap();
    let rigs = rigs();
    let mut reports = std::collections::BTreeMap::new();
    for r in &rigs {
        reports.insert(r.clone(), replay_json(r));
    }
    let mut failures = Vec::new();
    for rule in rules.iter().filter(|r| r.spec.area != "watch") {
        let id = &rule.spec.id;
        if rule.spec.fires_on.is_empty() || rule.spec.silent_on.is_empty() {
            failures.push(format!("{id}: needs fires_on and silent_on fixtures"));
            continue;
        }
        for (names, want) in [(&rule.spec.fires_on, true), (&rule.spec.silent_on, false)] {
            for name in names {
                let Some(report) = reports.get(name) else {
                    failures.push(format!("{id}: no fixture {name}"));
                    continue;
                };
                let fired = diagnosis_ids(report).contains(id);
                if fired != want {
                    failures.push(format!(
                        "{id}: {} on {name}",
                        if want { "did not fire" } else { "fired" }
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn no_rule_errors_on_any_fixture() {
    for rig in rigs() {
        let report = replay_json(&rig);
        let errs = report["rule_errors"].as_array().unwrap();
        assert!(errs.is_empty(), "{rig}: {errs:?}");
    }
}

#[test]
fn healthy_rigs_raise_nothing_alarming() {
    // Healthy rigs: nothing above a note (IPEX's end of life is a note).
    for rig in [
        "dual-a770",
        "selector-ok",
        "selector-list",
        "torch-xpu-ok",
        "bnb-mask",
    ] {
        let report = replay_json(rig);
        assert_eq!(report["verdict"], "ok", "{rig}");
        let loud: Vec<_> = report["diagnoses"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["severity"] != "info")
            .collect();
        assert!(loud.is_empty(), "{rig}: {loud:?}");
    }
    // The Arc endpoint's fake 2.5 GT/s x1 must not read as a slow link.
    let report = replay_json("b580-bogus-x1-endpoint");
    assert_eq!(report["verdict"], "ok");
    let gpu = report["facts"]["gpus"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["device_id"] == "0xe20b")
        .unwrap()
        .clone();
    assert_eq!(gpu["link"]["width"], 1);
    assert_eq!(gpu["effective_link"]["width"], 8);
    assert_eq!(gpu["effective_link"]["at"], "0000:01:00.0");
    assert_eq!(gpu["effective_link"]["judged"], "card-upstream-port");
}

#[test]
fn fixtures_are_built_from_their_specs() {
    // fixtures/mkrig.py needs Python 3.11+ (tomllib); skip where it is missing.
    let ok = std::process::Command::new("python3")
        .args(["-c", "import tomllib"])
        .output()
        .map(|o| o.status.success());
    if !matches!(ok, Ok(true)) {
        eprintln!("skipped: python3 with tomllib not available");
        return;
    }
    let out = std::process::Command::new("python3")
        .arg(root().join("fixtures/mkrig.py"))
        .arg("--check")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn fixtures_have_no_empty_directories() {
    // git does not keep empty directories, so a fresh clone would lose them.
    fn walk(d: &std::path::Path, empty: &mut Vec<String>) {
        let entries: Vec<_> = std::fs::read_dir(d)
            .unwrap()
            .filter_map(|e| e.ok())
            .collect();
        if entries.is_empty() {
            empty.push(d.display().to_string());
        }
        for e in entries {
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                walk(&e.path(), empty);
            }
        }
    }
    let mut empty = Vec::new();
    walk(&rigs_dir(), &mut empty);
    assert!(empty.is_empty(), "empty directories: {empty:?}");
}

/// Issue 15: rules stay linear in the GPUs. A scan of `gpus`, `nvidia.gpus`
/// or `nvidia.links` inside another (or per item of an `each` over one)
/// is refused; the per-pair and per-GPU facts it wants belong in derive.
#[test]
fn no_rule_nests_scans_over_the_gpus() {
    let rules = rules::load(None).unwrap();
    let nested: Vec<String> = rules.iter().flat_map(rules::nested_scans).collect();
    assert!(nested.is_empty(), "{}", nested.join("\n"));
}
