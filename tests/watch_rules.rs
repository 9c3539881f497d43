//! Every watch rule fires on the traces it names in `fires_on` and stays
//! silent on its `silent_on` traces, through `rigdoctor watch --replay`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers: a failed setup must fail the test loudly"
)]

mod watch_support;

use std::collections::{BTreeMap, BTreeSet};

use watch_support::*;

fn replay(trace: &str) -> serde_json::Value {
    let path = fixture(trace);
    assert!(path.exists(), "{trace} is named by a rule but missing");
    let o = run(
        &[
            "watch",
            "--replay",
            path.to_str().unwrap(),
            "--format",
            "json",
        ],
        &path_with(None),
    );
    assert!(
        o.status.success(),
        "{trace}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let lines = json_lines(&String::from_utf8_lossy(&o.stdout));
    let s = summary(&lines);
    assert_eq!(s["rule_errors"], serde_json::json!([]), "{trace}");
    s
}

#[test]
fn watch_rules_fire_and_stay_silent_on_their_traces() {
    let rules = rigdoctor::diagnose::rules::load(None).unwrap();
    let watch: Vec<_> = rules.iter().filter(|r| r.spec.area == "watch").collect();
    assert!(watch.len() >= 7);
    let mut cache: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut named: BTreeSet<String> = BTreeSet::new();
    for r in &watch {
        assert!(
            !r.spec.fires_on.is_empty(),
            "{} names no trace it fires on",
            r.spec.id
        );
        for (list, want) in [(&r.spec.fires_on, true), (&r.spec.silent_on, false)] {
            for t in list {
                assert!(t.starts_with("traces/"), "{}: {t}", r.spec.id);
                named.insert(t.clone());
                let ids = cache
                    .entry(t.clone())
                    .or_insert_with(|| diagnosis_ids(&replay(t)))
                    .clone();
                assert_eq!(
                    ids.contains(&r.spec.id),
                    want,
                    "{} on {t}: diagnoses {ids:?}",
                    r.spec.id
                );
            }
        }
    }
    // Every trace is some rule's fixture.
    for e in std::fs::read_dir(fixture("traces")).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        if name.ends_with(".jsonl") {
            assert!(
                named.contains(&format!("traces/{name}")),
                "{name} is no rule's fixture"
            );
        }
    }
}

#[test]
fn healthy_idle_and_loading_runs_raise_nothing() {
    for t in [
        "traces/gpu-bound.jsonl",
        "traces/idle.jsonl",
        "traces/loading.jsonl",
    ] {
        let s = replay(t);
        assert_eq!(s["verdict"], "ok", "{t}");
        assert!(diagnosis_ids(&s).is_empty(), "{t}");
        assert_eq!(s["facts"]["watch"]["fallback"], false, "{t}");
    }
}

#[test]
fn fail_on_levels_on_replays() {
    let code = |t: &str, level: &str| {
        run(
            &[
                "watch",
                "--replay",
                fixture(t).to_str().unwrap(),
                "--fail-on",
                level,
            ],
            &path_with(None),
        )
        .status
        .code()
    };
    assert_eq!(code("traces/fallback.jsonl", "fallback"), Some(1));
    assert_eq!(code("traces/fallback.jsonl", "error"), Some(1));
    assert_eq!(code("traces/gpu-bound.jsonl", "fallback"), Some(0));
    assert_eq!(
        code("traces/dispatch-bound.jsonl", "fallback"),
        Some(0),
        "launch overhead is not fallback"
    );
    assert_eq!(code("traces/dispatch-bound.jsonl", "warn"), Some(1));
    assert_eq!(code("traces/dispatch-bound.jsonl", "error"), Some(0));
    assert_eq!(code("traces/partial-offload.jsonl", "fallback"), Some(1));
    assert_eq!(code("traces/idle.jsonl", "warn"), Some(0));
}

#[test]
fn the_human_summary_has_timeline_time_and_fixes() {
    let o = run(
        &[
            "watch",
            "--replay",
            fixture("traces/fallback.jsonl").to_str().unwrap(),
        ],
        &path_with(None),
    );
    let text = String::from_utf8_lossy(&o.stdout);
    for want in [
        "Timeline",
        "cpu cores",
        "card0 busy",
        "nvidia0 busy",
        "Time in each verdict",
        "cpu-fallback",
        "WATCH-CPU-FALLBACK",
        "fix",
        "rigdoctor check",
        "CPU FALLBACK",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }
    assert!(text.chars().any(|c| "▁▂▃▄▅▆▇█".contains(c)), "sparklines");
}

#[test]
fn summary_snapshot() {
    // The human summary of a fixed trace, colour off (not a terminal).
    let o = run(
        &[
            "watch",
            "--replay",
            fixture("traces/fallback.jsonl").to_str().unwrap(),
        ],
        &path_with(None),
    );
    let text = String::from_utf8_lossy(&o.stdout).replace(env!("CARGO_PKG_VERSION"), "<version>");
    insta::assert_snapshot!(text);
}
