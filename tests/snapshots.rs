//! Snapshots of the human and JSON output of every rig fixture. A snapshot is
//! an assertion: read every .snap.new diff before accepting it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly on purpose"
)]

mod common;

use common::*;

fn human(rig: &str) -> String {
    let dir = rigs_dir().join(rig);
    let r = run(&[
        "check",
        "--replay",
        dir.to_str().unwrap(),
        "--color",
        "never",
    ]);
    assert!(r.code == 0 || r.code == 1, "{rig}: {}", r.stderr);
    r.stdout.replace(
        concat!("rigdoctor ", env!("CARGO_PKG_VERSION")),
        "rigdoctor [version]",
    )
}

fn json(rig: &str) -> String {
    static SCHEMA: std::sync::OnceLock<common::schema::Validator> = std::sync::OnceLock::new();
    let mut v = replay_json(rig);
    // The report as it comes out, validated against docs/schema/check.json
    // here, where every rig is replayed anyway (tests/schema.rs says why).
    SCHEMA
        .get_or_init(|| common::schema::Validator::new(rigdoctor::schema::Output::Check))
        .check(rig, &v);
    // Durations of file probes are measured at replay time.
    for p in v["probes"].as_array_mut().unwrap() {
        p["duration_ms"] = 0.into();
    }
    serde_json::to_string_pretty(&v).unwrap()
}

#[test]
fn human_output_of_every_rig() {
    for rig in rigs() {
        insta::assert_snapshot!(format!("human__{rig}"), human(&rig));
    }
}

#[test]
fn json_output_of_every_rig() {
    for rig in rigs() {
        insta::assert_snapshot!(format!("json__{rig}"), json(&rig));
    }
}

#[test]
fn quiet_output_is_problems_and_summary_only() {
    let dir = rigs_dir().join("a770-rebar-off");
    let r = run(&[
        "check",
        "--replay",
        dir.to_str().unwrap(),
        "--quiet",
        "--color",
        "never",
    ]);
    insta::assert_snapshot!("quiet__a770-rebar-off", r.stdout);
    let dir = rigs_dir().join("bnb-mask");
    let r = run(&["check", "--replay", dir.to_str().unwrap(), "--quiet"]);
    assert_eq!(
        r.stdout,
        "Summary: 0 errors, 0 warnings, 0 notes — verdict: ok\n"
    );
}
