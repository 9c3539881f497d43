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

/// `fallback.jsonl` with its sample times rewritten by `edit(index, t)`.
fn edited_trace(dir: &std::path::Path, edit: impl Fn(usize, f64) -> f64) -> std::path::PathBuf {
    let text = std::fs::read_to_string(fixture("traces/fallback.jsonl")).unwrap();
    let mut i = 0;
    let out: Vec<String> = text
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            if v["type"] == "sample" || v.get("t").is_some() {
                let t = v["t"].as_f64().unwrap();
                v["t"] = serde_json::json!(edit(i, t));
                i += 1;
            }
            v.to_string()
        })
        .collect();
    let p = dir.join("edited.jsonl");
    std::fs::write(&p, out.join("\n") + "\n").unwrap();
    p
}

/// Issue 8, item 9: a negative time (on the last sample: the summary then
/// asked for 225 GB and aborted) or a time that goes backwards is a trace
/// rigdoctor cannot replay: exit 2, saying which line.
#[test]
fn a_negative_or_backward_sample_time_is_exit_2() {
    let d = tempfile::tempdir().unwrap();
    let n = std::fs::read_to_string(fixture("traces/fallback.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| l.contains("\"t\":"))
        .count();
    for (what, edit) in [
        (
            "negative",
            Box::new(move |i: usize, t: f64| if i + 1 == n { -5.0 } else { t })
                as Box<dyn Fn(usize, f64) -> f64>,
        ),
        ("backward", Box::new(|i, t| if i == 3 { 1e300 } else { t })),
    ] {
        let p = edited_trace(d.path(), edit);
        let o = run(
            &["watch", "--replay", p.to_str().unwrap()],
            &path_with(None),
        );
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{what}: {err}");
        assert!(
            err.contains("edited.jsonl, line ") && err.contains("sample time"),
            "{what}: {err}"
        );
    }
}

/// Issue 8, item 9: duplicated sample times replay (the window stays
/// bounded; watcher.rs counts the work) instead of taking minutes.
#[test]
fn duplicated_sample_times_replay() {
    let d = tempfile::tempdir().unwrap();
    let p = edited_trace(d.path(), |_, _| 4.0);
    let o = run(
        &["watch", "--replay", p.to_str().unwrap(), "--format", "json"],
        &path_with(None),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let lines = json_lines(&String::from_utf8_lossy(&o.stdout));
    assert_eq!(summary(&lines)["rule_errors"], serde_json::json!([]));
}

/// Issue 12: never advise a flag the user already passed. The same partial
/// offload (LM Studio's `offloaded 20/49 layers`) with and without `-ngl 99`
/// on the recorded process's command line.
#[test]
fn issue12_no_ngl_advice_when_ngl_was_passed() {
    let fix_of = |trace: &str| -> String {
        let s = replay(trace);
        let d = s["diagnoses"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["id"] == "WATCH-PARTIAL-OFFLOAD")
            .unwrap_or_else(|| panic!("{trace}: no WATCH-PARTIAL-OFFLOAD"))
            .clone();
        d["fix"].as_str().unwrap().to_string()
    };
    let advises_ngl = |fix: &str| {
        fix.lines()
            .any(|l| !l.trim_start().starts_with('#') && l.contains("-ngl 99"))
    };
    let without = fix_of("traces/partial-offload.jsonl");
    assert!(advises_ngl(&without), "{without}");
    let with = fix_of("traces/ngl-passed.jsonl");
    assert!(!advises_ngl(&with), "{with}");
    assert!(
        with.contains("`-ngl 99` is already on the command line"),
        "{with}"
    );
    let s = replay("traces/ngl-passed.jsonl");
    let tree = &s["facts"]["watch"]["tree"];
    assert_eq!(tree["gpu_runtime"], "loaded");
    assert_eq!(tree["runtimes"], serde_json::json!(["libggml-vulkan"]));
    // The engine log's own fix goes through the same filter.
    let logfix = s["facts"]["watch"]["log"]["fix"].as_str().unwrap();
    assert!(!advises_ngl(logfix), "{logfix}");
}

/// Issue 12: the pinned-loops trace, replayed with the default thresholds it
/// was recorded with: 0.6 cores got, two wanted, CPU-bound.
#[test]
fn issue12_pinned_loops_are_cpu_bound_by_demand() {
    let s = replay("traces/pinned-loops.jsonl");
    let w = &s["facts"]["watch"];
    assert_eq!(w["thresholds"]["fallback_cores"], 3.0, "default thresholds");
    assert!(w["process"]["cores_max"].as_f64().unwrap() < 1.2);
    assert!(w["process"]["demand_mean"].as_f64().unwrap() > 1.5);
    assert!(w["verdicts"]["cpu-fallback"].as_f64().unwrap() > 0.0);
    assert_eq!(w["verdicts"]["partial-offload"], 0.0);
    assert_eq!(w["verdicts"]["idle"], 0.0);
}

/// Issue 12: a recorded run whose program advanced the energy counters by
/// known amounts replays to the exact joules, J/token and engine figures.
#[test]
fn issue12_speed_and_energy_replay_exactly() {
    let s = replay("traces/speed-energy.jsonl");
    let w = &s["facts"]["watch"];
    assert_eq!(w["throughput"]["decode_tps"], 57.04);
    assert_eq!(w["throughput"]["prompt_tps"], 102.0);
    assert_eq!(w["throughput"]["decode_tokens"], 127);
    let e = &w["energy"];
    assert_eq!(e["gpus"][0]["joules"], 1000.0, "{e}");
    assert_eq!(e["gpus"][0]["source"], "hwmon-energy");
    assert_eq!(e["cpu_joules"], 500.0, "{e}");
    // (1000 J + 500 J) / 127 tokens = 11.81102..., to four decimals.
    assert_eq!(e["joules_per_token"], 11.811);
    assert_eq!(e["per_token_of"], "gpus+cpu");
}

/// Issue 12 item 2: the decode bound of a recorded run from the buffer
/// sizes its (real) llama.cpp lines printed. (4095.05 + 128) MiB =
/// 4,428,188,877 B on an Arc A770 at 512 GB/s = 8.649 ms per token, bound
/// 1000 / 8.649 = 115.6 tok/s: 4.43 tok/s with the GPU 90 % busy is 3.8 %
/// of it (below-bound), 57.04 tok/s is 49.3 % (not).
#[test]
fn issue12_below_bound_replays_with_its_arithmetic() {
    let s = replay("traces/below-bound.jsonl");
    let b = &s["facts"]["watch"]["bound"];
    assert_eq!(b["decode_tps"], 115.6, "{b}");
    assert_eq!(b["ms_per_token"], 8.649);
    assert_eq!(b["bytes_source"], "engine-log");
    assert_eq!(b["devices"][1]["device"], "SYCL0");
    assert_eq!(b["devices"][1]["model_bytes"], 4293971149u64);
    assert_eq!(b["devices"][1]["kv_bytes"], 134217728u64);
    assert_eq!(b["devices"][1]["gbps"], 512.0);
    assert_eq!(
        b["devices"][0]["counted"], false,
        "CPU_Mapped: the token embeddings"
    );
    assert_eq!(
        (b["measured_tps"].clone(), b["percent"].clone()),
        (4.43.into(), 3.8.into())
    );
    assert_eq!(b["verdict"], "below-bound");
    assert!(
        b["causes"][0].as_str().unwrap().starts_with("Level Zero"),
        "{b}"
    );
    assert!(diagnosis_ids(&s).contains(&"WATCH-BELOW-BOUND".to_string()));
    let s = replay("traces/near-bound.jsonl");
    let b = &s["facts"]["watch"]["bound"];
    assert_eq!(
        (b["percent"].clone(), b["verdict"].clone()),
        (49.3.into(), "near-bound".into())
    );
    assert!(!diagnosis_ids(&s).contains(&"WATCH-BELOW-BOUND".to_string()));
}

/// Unknown stays unknown: the same slow run without the line that names
/// the GPU (so no bandwidth) has no bound and no below-bound.
#[test]
fn issue12_no_bound_without_a_known_bandwidth() {
    let d = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(fixture("traces/below-bound.jsonl")).unwrap();
    let out: Vec<String> = text
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            if let Some(log) = v.get_mut("log").and_then(|x| x.as_array_mut()) {
                log.retain(|e| e["kind"] != "device-name");
            }
            v.to_string()
        })
        .collect();
    assert_ne!(
        out.join("\n"),
        text.trim_end(),
        "the trace names its device"
    );
    let p = d.path().join("no-name.jsonl");
    std::fs::write(&p, out.join("\n") + "\n").unwrap();
    let o = run(
        &["watch", "--replay", p.to_str().unwrap(), "--format", "json"],
        &path_with(None),
    );
    assert!(o.status.success());
    let s = summary(&json_lines(&String::from_utf8_lossy(&o.stdout)));
    let b = &s["facts"]["watch"]["bound"];
    assert_eq!(
        (b["decode_tps"].clone(), b["verdict"].clone()),
        (serde_json::Value::Null, "unknown".into())
    );
    assert!(
        b["unknown_why"]
            .as_str()
            .unwrap()
            .contains("did not name the GPU behind SYCL0"),
        "{b}"
    );
    assert!(!diagnosis_ids(&s).contains(&"WATCH-BELOW-BOUND".to_string()));
}

/// The human summary says the speed limit beside the engine's speed, or
/// why it is unknown.
#[test]
fn issue12_the_human_summary_names_the_speed_limit() {
    let human = |t: &str| {
        let o = run(
            &[
                "watch",
                "--replay",
                fixture(t).to_str().unwrap(),
                "--color",
                "never",
            ],
            &path_with(None),
        );
        String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    let h = human("traces/below-bound.jsonl");
    assert!(
        h.contains("speed limit 115.6 tok/s (memory bandwidth, 8.649 ms per token at least): this run 3.8 % of it"),
        "{h}"
    );
    let h = human("traces/speed-energy.jsonl");
    assert!(
        h.contains("speed limit unknown: the engine printed no model buffer sizes"),
        "{h}"
    );
}
