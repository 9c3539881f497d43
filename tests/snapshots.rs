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

/// Can this over-long line stand: one word (a path, a quoted string, a URL)
/// alone after the indent, and a shell continuation ` \` at most?
fn lone_word(line: &str) -> bool {
    // A list item's dash (a long URL in explain's references) goes with its word.
    let w = line.trim().trim_start_matches("- ").trim_end_matches(" \\");
    let mut quote = None;
    for c in w.chars() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, ' ') => return false,
            _ => {}
        }
    }
    true
}

/// Issue 14: no line of the page is wider than the terminal, except a word
/// that is wider by itself, alone on its line.
fn assert_fits(what: &str, page: &str, width: usize) {
    for line in page.lines() {
        let n = line.chars().count();
        assert!(
            n <= width || lone_word(line),
            "{what}: a line of {n} columns on a {width}-column page:\n{line}"
        );
    }
}

fn page_at(rig: &str, width: usize) -> String {
    page_with(rig, width, rigdoctor::render::human::Detail::Normal)
}

fn page_with(rig: &str, width: usize, detail: rigdoctor::render::human::Detail) -> String {
    static RULES: std::sync::OnceLock<Vec<rigdoctor::diagnose::rules::Rule>> =
        std::sync::OnceLock::new();
    let rules = RULES.get_or_init(|| rigdoctor::diagnose::rules::load(None).unwrap());
    let src = rigdoctor::source::replay::Replay::open(&rigs_dir().join(rig)).unwrap();
    let report = rigdoctor::check(&src, &rigdoctor::probe::ProbeOptions::default(), rules);
    rigdoctor::render::human::page(
        &report,
        rigdoctor::render::human::Style::plain(width),
        detail,
    )
    .replace(
        concat!("rigdoctor ", env!("CARGO_PKG_VERSION")),
        "rigdoctor [version]",
    )
}

#[test]
fn every_page_fits_80_and_120_columns() {
    for rig in rigs() {
        // The binary, piped: not a terminal, so 80 columns.
        assert_fits(&rig, &human(&rig), 80);
        assert_fits(&rig, &page_at(&rig, 120), 120);
    }
}

/// `COLUMNS` sets the width of the binary's page (a pipe is 80 without it),
/// and the page at that width is the renderer's at that width.
#[test]
fn columns_sets_the_width_of_check_explain_and_watch() {
    for rig in ["b580-x4-slot", "nv-2x3090-nvlink"] {
        let dir = rigs_dir().join(rig);
        let r = run_with(
            &[
                "check",
                "--replay",
                dir.to_str().unwrap(),
                "--color",
                "never",
            ],
            |c| {
                c.env("COLUMNS", "120");
            },
        );
        let page = r.stdout.replace(
            concat!("rigdoctor ", env!("CARGO_PKG_VERSION")),
            "rigdoctor [version]",
        );
        assert_eq!(page, page_at(rig, 120), "{rig}");
        assert_ne!(page, human(rig), "{rig}: the 80-column page is another");
    }
    let wide = |args: &[&str]| {
        run_with(args, |c| {
            c.env("COLUMNS", "200");
        })
        .stdout
    };
    let explain = wide(&["explain", "PCI-LINK-SLOT"]);
    assert!(explain.lines().any(|l| l.chars().count() > 80), "{explain}");
    let trace = root().join("fixtures/traces/fallback.jsonl");
    let watch = wide(&[
        "watch",
        "--replay",
        trace.to_str().unwrap(),
        "--color",
        "never",
    ]);
    assert!(watch.lines().any(|l| l.chars().count() > 80), "{watch}");
}

/// The same pages on a wide terminal: the renderer takes the width.
#[test]
fn pages_at_120_columns() {
    for rig in [
        "a770-rebar-off",
        "nv-2x3090-nvlink",
        "b580-x4-slot",
        "nv-smi-timeout",
    ] {
        insta::assert_snapshot!(format!("human120__{rig}"), page_at(rig, 120));
    }
}

#[test]
fn watch_summaries_fit_80_columns() {
    for e in std::fs::read_dir(root().join("fixtures/traces")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "jsonl") {
            let r = run(&["watch", "--replay", p.to_str().unwrap(), "--color", "never"]);
            assert_fits(&p.display().to_string(), &r.stdout, 80);
            assert!(!r.stdout.is_empty(), "{}", p.display());
        }
    }
}

/// `explain` at 80 and 120 columns: a rig rule and a watch rule.
#[test]
fn explain_pages() {
    for id in ["PCI-LINK-SLOT", "WATCH-CPU-FALLBACK"] {
        for width in ["80", "120"] {
            let r = run_with(&["explain", id], |c| {
                c.env("COLUMNS", width);
            });
            insta::assert_snapshot!(format!("explain{width}__{id}"), r.stdout);
        }
    }
}

#[test]
fn explain_fits_80_columns() {
    let rules = rigdoctor::diagnose::rules::load(None).unwrap();
    for r in &rules {
        let out = run(&["explain", &r.spec.id]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert_fits(&r.spec.id, &out.stdout, 80);
    }
}

/// A probe's time in the verbose page's fixed column (`   17 ms`): measured
/// at replay time for what the capture did not record, so not asserted.
fn without_times(page: &str) -> String {
    let re = regex::Regex::new(r"[ 0-9]{5} ms").unwrap();
    let page = re.replace_all(page, "    N ms");
    regex::Regex::new(r"\(slowest: [^)]*\)")
        .unwrap()
        .replace_all(&page, "(slowest: ...)")
        .into_owned()
}

/// Issue 14: `-v` adds what each area saw, every GPU's facts and the probes
/// with their times, and still fits the terminal.
#[test]
fn verbose_pages() {
    use rigdoctor::render::human::Detail;
    for rig in rigs() {
        assert_fits(&rig, &page_with(&rig, 80, Detail::Verbose), 80);
    }
    for rig in ["nv-2x2060-bus-only", "nv-smi-timeout"] {
        let dir = rigs_dir().join(rig);
        let r = run(&["check", "--replay", dir.to_str().unwrap(), "-v"]);
        assert!(r.code == 0 || r.code == 1, "{rig}: {}", r.stderr);
        let page = r.stdout.replace(
            concat!("rigdoctor ", env!("CARGO_PKG_VERSION")),
            "rigdoctor [version]",
        );
        insta::assert_snapshot!(format!("verbose__{rig}"), without_times(&page));
    }
    insta::assert_snapshot!(
        "verbose120__nv-2x2060-bus-only",
        without_times(&page_with("nv-2x2060-bus-only", 120, Detail::Verbose))
    );
}
