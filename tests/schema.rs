//! The JSON Schemas in docs/schema/ (issue 10 §5): the committed files are
//! the ones generated from the types, and every JSON output we have, the
//! snapshots and live runs, validates against them. Regenerate with
//! `UPDATE_DOCS=1 cargo test --test schema` (or `rigdoctor schema NAME`).
//!
//! The validator is boon (JSON Schema 2020-12, passes the official test
//! suite, meta-schemas built in: no network). Rules are compiled once and
//! the rigs replayed in-process, so the test stays well under a second of
//! work per hundred rigs on a loaded CI box.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly on purpose"
)]

mod common;

use common::schema::Validator;
use common::*;
use rigdoctor::schema::{Output, generate};
use serde_json::Value;

#[test]
fn committed_schemas_are_the_generated_ones() {
    for out in Output::ALL {
        let path = root().join(out.path());
        let generated = generate(out);
        if std::env::var_os("UPDATE_DOCS").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &generated).unwrap();
            continue;
        }
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            on_disk == generated,
            "{} is out of date; run `UPDATE_DOCS=1 cargo test --test schema`",
            out.path()
        );
    }
}

#[test]
fn the_hidden_subcommand_prints_them() {
    for out in Output::ALL {
        let r = run(&["schema", out.name()]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert_eq!(r.stdout, generate(out), "rigdoctor schema {}", out.name());
    }
}

/// The body of an insta snapshot (after its `---` header).
fn snapshot_body(text: &str) -> &str {
    let rest = text.strip_prefix("---\n").unwrap();
    let end = rest.find("\n---\n").unwrap();
    &rest[end + 5..]
}

#[test]
fn every_json_snapshot_validates() {
    let check = Validator::new(Output::Check);
    let watch = Validator::new(Output::Watch);
    let mut n = 0;
    let mut entries: Vec<_> = std::fs::read_dir(root().join("tests/snapshots"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.ends_with(".snap") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let body = snapshot_body(&text);
        let Ok(doc) = serde_json::from_str::<Value>(body) else {
            continue; // a human, markdown or quiet page
        };
        match doc["schema"].as_str() {
            Some("rigdoctor/check/1") => check.check(&name, &doc),
            Some("rigdoctor/watch/1") => watch.check(&name, &doc),
            Some("rigdoctor/fit/1") => Validator::new(Output::Fit).check(&name, &doc),
            _ => panic!("{name} is JSON but names no schema this test knows"),
        }
        n += 1;
    }
    // Every rig has a JSON snapshot; an empty count means this test went blind.
    assert!(
        n >= rigs().len(),
        "{n} JSON snapshots for {} rigs",
        rigs().len()
    );
}

#[test]
fn check_output_validates() {
    // Every rig's report is validated where it is already made, in
    // tests/snapshots.rs (json_output_of_every_rig): replaying 140 rigs
    // twice would double the slowest test on CI. Here: through the binary,
    // flags and all, for a rig with diagnoses and one whose probes failed.
    let check = Validator::new(Output::Check);
    for rig in ["a770-rebar-off", "nv-smi-timeout"] {
        let dir = rigs_dir().join(rig);
        let r = run(&[
            "check",
            "--replay",
            dir.to_str().unwrap(),
            "--format",
            "json",
        ]);
        assert!(r.code == 0 || r.code == 1, "{rig}: {}", r.stderr);
        check.check_text(&format!("check --replay {rig} --format json"), &r.stdout);
    }
}

#[test]
fn rules_listing_validates() {
    let v = Validator::new(Output::Rules);
    let r = run(&["rules", "--format", "json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    v.check_text("rules --format json", &r.stdout);
    let doc: Value = serde_json::from_str(&r.stdout).unwrap();
    assert!(doc.as_array().unwrap().len() > 50, "the listing went empty");
}

#[test]
fn watch_outputs_and_traces_validate() {
    let v = Validator::new(Output::Watch);
    let dir = root().join("fixtures/traces");
    let mut traces: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    traces.sort();
    assert!(!traces.is_empty());
    let mut kinds = std::collections::BTreeSet::new();
    for t in &traces {
        let name = t.file_name().unwrap().to_string_lossy().into_owned();
        // A recorded trace is JSON Lines of the same format (start, gpu, source, sample).
        let text = std::fs::read_to_string(t).unwrap();
        v.check_lines(&name, &text);
        let r = run(&["watch", "--replay", t.to_str().unwrap(), "--format", "json"]);
        assert!(r.code == 0 || r.code == 1, "{name}: {}", r.stderr);
        let n = v.check_lines(&format!("watch --replay {name} --format json"), &r.stdout);
        assert!(n >= 2, "{name}: {n} lines");
        for l in text.lines().chain(r.stdout.lines()) {
            if let Ok(doc) = serde_json::from_str::<Value>(l) {
                if let Some(k) = doc["type"].as_str() {
                    kinds.insert(k.to_string());
                }
            }
        }
    }
    // Every kind of line was seen and checked.
    for k in ["start", "gpu", "source", "sample", "verdict", "summary"] {
        assert!(kinds.contains(k), "no {k} line in any trace or replay");
    }
}

#[test]
fn the_schemas_are_not_vacuous() {
    // A schema that accepts anything would pass every test above.
    let check = Validator::new(Output::Check);
    let good = replay_json("a770-rebar-off");
    assert!(check.accepts(&good));
    let mut doc = good.clone();
    doc["verdict"] = "fine".into();
    assert!(!check.accepts(&doc), "a verdict outside ok/warn/error");
    let mut doc = good.clone();
    doc["diagnoses"][0]["class"] = "whatever".into();
    assert!(!check.accepts(&doc), "an unknown class");
    let mut doc = good;
    doc["facts"].as_object_mut().unwrap().remove("gpus");
    assert!(!check.accepts(&doc), "facts without gpus");

    let watch = Validator::new(Output::Watch);
    let line: Value = serde_json::json!({"type": "verdict", "t": 1.0, "verdict": "melting"});
    assert!(!watch.accepts(&line), "an unknown watch verdict");
}
