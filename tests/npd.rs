//! `--format npd`: node-problem-detector's custom plugin protocol, with real
//! processes (the binary, fake tools on a test PATH): exit 0 OK / 1 NonOK /
//! 2 Unknown, one stdout line of at most 80 bytes, and the run bounded by
//! its deadline even when a tool hangs, leaving no process behind.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly on purpose"
)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

fn npd(rig: &str, extra: &[&str]) -> Run {
    let d = rigs_dir().join(rig);
    let mut args = vec!["check", "--replay", d.to_str().unwrap(), "--format", "npd"];
    args.extend_from_slice(extra);
    run(&args)
}

/// The protocol's shape: exactly one line, at most 80 bytes, nothing on stderr.
fn one_line(rig: &str, r: &Run) -> String {
    assert!(r.stdout.ends_with('\n'), "{rig}: {:?}", r.stdout);
    let body = &r.stdout[..r.stdout.len() - 1];
    assert!(
        !body.contains('\n'),
        "{rig}: more than one line: {:?}",
        r.stdout
    );
    assert!(body.len() <= 80, "{rig}: {} bytes: {body:?}", body.len());
    assert!(!body.is_empty(), "{rig}: empty message");
    assert!(r.stderr.is_empty(), "{rig}: stderr {:?}", r.stderr);
    body.to_string()
}

#[test]
fn exit_codes_and_messages_on_known_rigs() {
    // OK: a healthy dual A770.
    let r = npd("dual-a770", &[]);
    assert_eq!(
        (r.code, one_line("dual-a770", &r).as_str()),
        (0, "ok: no node problem found")
    );
    // NonOK: no GPU at all.
    let r = npd("no-gpu", &[]);
    assert_eq!((r.code, one_line("no-gpu", &r).as_str()), (1, "GPU-NONE"));
    // Unknown: nvidia-smi hung. The GPU may be gone or fine; nothing was seen.
    let r = npd("nv-smi-timeout", &[]);
    let l = one_line("nv-smi-timeout", &r);
    assert_eq!(r.code, 2, "{l}");
    assert!(
        l.starts_with("could not look:") && l.contains("nvidia-smi (timeout)"),
        "{l}"
    );
    // Unknown: no sysfs (a container without /sys): the GPUs cannot be seen.
    let r = npd("container-no-sysfs", &[]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    // A user's selector is NonOK for the user-env condition, not for the node's.
    let r = npd("selector-triple", &["--class", "user-env"]);
    assert_eq!(
        (r.code, one_line("selector-triple", &r).as_str()),
        (1, "SYCL-SELECTOR-PARSE")
    );
    let r = npd("selector-triple", &["--class", "hardware,node-config"]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    // A degraded link is a warning: NonOK for the hardware condition at --fail-on warn.
    let r = npd(
        "b580-x4-degraded",
        &["--class", "hardware", "--fail-on", "warn"],
    );
    assert_eq!(
        (r.code, one_line("b580", &r).as_str()),
        (1, "PCI-LINK-DEGRADED")
    );
    let r = npd("b580-x4-degraded", &["--class", "hardware"]);
    assert_eq!(r.code, 0, "{}", r.stdout);
}

/// Every rig, in-process (the binary's edge is covered above): the line
/// fits, and the answer agrees with the diagnoses (NonOK exactly when a
/// finding at the level is not "could not look"; the most severe id first).
#[test]
fn every_rig_answers_in_one_line_consistent_with_its_diagnoses() {
    use rigdoctor::diagnose::report::{Health, health};
    use rigdoctor::diagnose::{RuleClass, Severity};
    use rigdoctor::render::npd;
    let rules = rigdoctor::diagnose::rules::load(None).unwrap();
    for rig in rigs() {
        let src = rigdoctor::source::replay::Replay::open(&rigs_dir().join(&rig)).unwrap();
        let report = rigdoctor::check(&src, &rigdoctor::probe::ProbeOptions::default(), &rules);
        let h = health(&report, Severity::Warn, &RuleClass::ALL);
        let l = npd::line(&h);
        assert!(
            l.len() <= 80 && !l.is_empty() && !l.contains('\n'),
            "{rig}: {l:?}"
        );
        let problems: Vec<&str> = report
            .diagnoses
            .iter()
            .filter(|d| d.severity >= Severity::Warn && !d.could_not_look)
            .map(|d| d.id.as_str())
            .collect();
        match problems.first() {
            None => assert_ne!(h.health, Health::Problem, "{rig}: {l}"),
            Some(first) => {
                assert_eq!(h.health, Health::Problem, "{rig}: {l}");
                assert_eq!(npd::exit_code(&h), 1);
                assert!(l.starts_with(first), "{rig}: {l} should start with {first}");
            }
        }
        let blind = rigdoctor::diagnose::report::blind(&report.probes).count();
        if problems.is_empty() && blind > 0 {
            assert_eq!(h.health, Health::Unknown, "{rig}: {l}");
        }
    }
}

/// The fake tool records its pid and its child's, so the test can tell
/// whether anything was left running.
fn hung_tool(pids: &Path) -> String {
    format!(
        "echo $$ >> {p}\nsleep 60 &\necho $! >> {p}\nwait",
        p = pids.display()
    )
}

fn alive(pid: &str) -> bool {
    // A zombie has ended; only its parent's reaping is left (in a container
    // without an init that reaps, an orphan stays a zombie).
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, r)| r.trim_start().starts_with('Z'))
        })
        .is_some_and(|zombie| !zombie)
}

/// Issue 10: a hung nvidia-smi used to make a run take 5.1 s, past NPD's
/// 5 s plugin timeout. With `--format npd` the run has a deadline under it
/// (4 s unless `--deadline` says otherwise), the hung tool and its child are
/// killed, and the answer is Unknown.
///
/// What this test holds cannot depend on how much CPU the run gets: the
/// run ends at its deadline, not at the hung tool's 30 s `--timeout` (the
/// wall time stays far under it), and `--deadline 1` is the one applied: the
/// probe, timed by rigdoctor's own clock, was stopped after about 1 s, not
/// after the default 4 s (the stop is a timer wake-up, which a loaded machine
/// delays by milliseconds, where the CPU work around it stretches by seconds:
/// at a load of 16 a debug build's run with the 4 s deadline took 8.2 s).
/// The acceptance line (wall <= deadline + 0.5 s) is a speed target
/// and lives in `bench/npd.sh`, measured on a quiet machine.
#[test]
fn a_hung_tool_is_unknown_within_the_deadline_and_leaves_nothing_running() {
    let tmp = tempfile::tempdir().unwrap();
    let tools = tmp.path().join("bin");
    let pids = tmp.path().join("pids");
    fake_tools(&tools, &[("nvidia-smi", &hung_tool(&pids))]);
    let path = format!("{}:/usr/local/bin:/usr/bin:/bin", tools.display());
    // A machine with NVIDIA GPUs on the bus: a fixture's sysfs, read live.
    let sys = rigs_dir().join("nv-2x3090-nvlink/root/sys");
    let base = [
        "--sysfs",
        sys.to_str().unwrap(),
        "check",
        "--timeout",
        "30",
        "--class",
        "hardware,node-config",
    ];
    let run = |extra: &[&str]| {
        let mut args = base.to_vec();
        args.extend(extra);
        let t = Instant::now();
        let r = run_with(&args, |c| {
            c.env("PATH", &path);
        });
        (r, t.elapsed())
    };
    let no_orphans = || {
        let recorded = std::fs::read_to_string(&pids).unwrap_or_default();
        let left: Vec<&str> = recorded.lines().filter(|p| alive(p)).collect();
        assert!(left.is_empty(), "still running after the run: {left:?}");
        std::fs::remove_file(&pids).ok();
    };
    for extra in [
        &["--format", "npd"][..],
        &["--format", "npd", "--deadline", "1"],
    ] {
        let (r, wall) = run(extra);
        let l = one_line("live", &r);
        assert_eq!(r.code, 2, "{l}");
        assert!(l.contains("nvidia-smi (timeout)"), "{l}");
        assert!(
            wall < Duration::from_secs(25),
            "{extra:?}: the run took {wall:?}, as if it had waited for the tool's 30 s timeout"
        );
        no_orphans();
    }
    let (r, _) = run(&["--format", "json", "--deadline", "1"]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let smi = v["probes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "nvidia-smi")
        .unwrap_or_else(|| panic!("no nvidia-smi probe in {}", r.stdout));
    assert_eq!(smi["status"], "timeout", "{smi}");
    let ms = smi["duration_ms"].as_u64().unwrap();
    assert!(
        ms < 3000,
        "--deadline 1: nvidia-smi was stopped after {ms} ms, as if by the default 4 s deadline"
    );
    no_orphans();
}

/// contrib/npd: the plugin config holds what NPD's own validation checks
/// (plugin "custom", a default condition for every permanent rule, rule
/// timeouts within the global one), its conditions are named for the node
/// problem classes, and each rule's command, run as NPD runs it, speaks
/// the protocol within its timeout.
#[test]
fn the_npd_plugin_config_is_valid_and_its_commands_speak_the_protocol() {
    let text =
        std::fs::read_to_string(root().join("contrib/npd/rigdoctor-plugin-monitor.json")).unwrap();
    let c: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(c["plugin"], "custom");
    assert_eq!(c["pluginConfig"]["max_output_length"], 80);
    let secs = |v: &serde_json::Value| -> f64 {
        v.as_str()
            .unwrap()
            .strip_suffix('s')
            .unwrap()
            .parse()
            .unwrap()
    };
    let global = secs(&c["pluginConfig"]["timeout"]);
    let conditions: Vec<&str> = c["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["type"].as_str().unwrap())
        .collect();
    assert_eq!(conditions, ["GPUHardwareProblem", "GPUNodeConfigProblem"]);
    let rules = c["rules"].as_array().unwrap();
    let mut classes = Vec::new();
    for r in rules {
        assert_eq!(r["type"], "permanent");
        assert!(conditions.contains(&r["condition"].as_str().unwrap()));
        assert_eq!(r["path"], "/usr/local/bin/rigdoctor");
        let timeout = secs(&r["timeout"]);
        assert!(
            timeout <= global,
            "NPD refuses a rule timeout over the global one"
        );
        let args: Vec<&str> = r["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        let at = |flag: &str| args[args.iter().position(|a| *a == flag).unwrap() + 1];
        let deadline: f64 = at("--deadline").parse().unwrap();
        assert!(deadline < timeout, "the run must end before NPD kills it");
        classes.push(at("--class").to_string());
        // As NPD runs it, against a rig where the hardware is at fault.
        let rig = rigs_dir().join("b580-x4-degraded");
        let mut full = args.clone();
        full.extend(["--replay", rig.to_str().unwrap()]);
        let out = run(&full);
        let l = one_line("b580-x4-degraded", &out);
        match at("--class") {
            "hardware" => assert_eq!((out.code, l.as_str()), (1, "PCI-LINK-DEGRADED")),
            "node-config" => assert_eq!(out.code, 0, "{l}"),
            other => panic!("unexpected class {other}"),
        }
    }
    // Named for the classes a cluster hook acts on.
    assert_eq!(classes, ["hardware", "node-config"]);
}
