//! The Intel tool probes on the live face: fake `sycl-ls`, `xpu-smi` and
//! `clinfo` on a test PATH print real corpus outputs; the probes run the fixed
//! command lines, a capture records them under their fixed names, and replay
//! gives the same facts.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly on purpose"
)]

mod common;

use std::path::Path;

use common::*;

fn corpus(tool: &str, file: &str) -> String {
    root()
        .join("fixtures/outputs")
        .join(tool)
        .join(file)
        .display()
        .to_string()
}

/// Fake tools printing corpus bodies (`tail -n +4` drops the 3-line header).
/// sycl-ls answers `--verbose` with a verbose fragment, and reports the
/// selector it was given, which must be none.
fn tools(dir: &Path) -> String {
    let bin = dir.join("bin");
    fake_tools(
        &bin,
        &[
            (
                "sycl-ls",
                &format!(
                    "if [ \"$1\" = --verbose ]; then tail -n +4 '{}'; else tail -n +4 '{}'; fi\necho \"ODS=${{ONEAPI_DEVICE_SELECTOR-unset}}\" >&2",
                    corpus(
                        "sycl-ls-verbose",
                        "oracle-2026.2.0-pocl-intel-cpu-baseline.txt"
                    ),
                    corpus(
                        "sycl-ls",
                        "llamacpp-sycl-doc-2025-a770-uhd730-ur-over-l0.txt"
                    ),
                ),
            ),
            (
                "xpu-smi",
                &format!(
                    "[ \"$1\" = discovery ] || exit 2\ntail -n +4 '{}'",
                    corpus("xpu-smi", "doc-smi-guide-discovery-d-bdf-detailed.txt")
                ),
            ),
            (
                "clinfo",
                &format!(
                    "[ \"$1\" = -l ] || exit 2\ntail -n +4 '{}'",
                    corpus("clinfo", "cr832-nvidia-plus-uhd750-clinfo-l.txt")
                ),
            ),
        ],
    );
    format!("{}:/usr/bin:/bin", bin.display())
}

fn json(args: &[&str], path: &str) -> serde_json::Value {
    let r = run_with(args, |c| {
        c.env("PATH", path)
            .env("ONEAPI_DEVICE_SELECTOR", "level_zero:0");
    });
    assert!(r.code == 0 || r.code == 1, "{}", r.stderr);
    serde_json::from_str(&r.stdout).unwrap()
}

#[test]
fn intel_tools_are_probed_recorded_and_replayed() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tools(tmp.path());
    let sys = rigs_dir().join("dual-a770/root/sys").display().to_string();
    let live = json(&["--sysfs", &sys, "check", "--format", "json"], &path);
    let f = &live["facts"];
    // sycl-ls --verbose: both platforms, the selectors, run without the user's selector.
    let v = &f["sycl"]["verbose"];
    assert_eq!(v["platforms"].as_array().unwrap().len(), 2);
    assert_eq!(v["complete"], true);
    assert_eq!(v["selectors"]["default"]["type"], "cpu");
    assert!(
        v["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m == "ODS=unset"),
        "{v:#}"
    );
    // xpu-smi discovery and clinfo -l.
    assert_eq!(f["xpu_smi"]["devices"][0]["pci_bdf"], "0000:4d:00.0");
    assert_eq!(f["xpu_smi"]["layout"], "table");
    assert_eq!(f["clinfo"]["platforms"].as_array().unwrap().len(), 2);
    for name in ["sycl-ls-verbose", "xpu-smi-discovery", "clinfo"] {
        let p = live["probes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap();
        assert_eq!(p["status"], "ok", "{p}");
    }

    let cap = tmp.path().join("cap");
    let r = run_with(
        &["--sysfs", &sys, "capture", "-o", cap.to_str().unwrap()],
        |c| {
            c.env("PATH", &path)
                .env("ONEAPI_DEVICE_SELECTOR", "level_zero:0");
        },
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    for name in ["sycl-ls-verbose", "xpu-smi-discovery", "clinfo"] {
        assert!(cap.join(format!("cmd/{name}.out")).exists(), "{name}");
        assert_eq!(
            std::fs::read_to_string(cap.join(format!("cmd/{name}.status"))).unwrap(),
            "0\n"
        );
    }
    let replayed = json(
        &[
            "check",
            "--replay",
            cap.to_str().unwrap(),
            "--format",
            "json",
        ],
        &path,
    );
    assert_eq!(live["facts"], replayed["facts"]);
    assert_eq!(live["verdict"], replayed["verdict"]);
}

/// A fake sycl-ls that logs its arguments to `log`; `--verbose` runs
/// `verbose`, plain runs print the concise corpus list.
fn logging_sycl_ls(dir: &Path, verbose: &str) -> (String, std::path::PathBuf) {
    let bin = dir.join("bin");
    let log = dir.join("sycl-ls.log");
    fake_tools(
        &bin,
        &[(
            "sycl-ls",
            &format!(
                "echo \"run $*\" >> '{log}'\nif [ \"$1\" = --verbose ]; then {verbose}; else tail -n +4 '{}'; fi",
                corpus(
                    "sycl-ls",
                    "llamacpp-sycl-doc-2025-a770-uhd730-ur-over-l0.txt"
                ),
                log = log.display(),
            ),
        )],
    );
    (format!("{}:/usr/bin:/bin", bin.display()), log)
}

fn names(devices: &serde_json::Value) -> Vec<String> {
    devices
        .as_array()
        .unwrap()
        .iter()
        .map(|d| format!("{}:{}", d["backend"], d["name"]))
        .collect()
}

/// Issue 15, item 3: one SYCL runtime start-up per check. `sycl-ls
/// --verbose` carries the concise list; the capture records what ran, under
/// its own name, and replays to the same facts.
#[test]
fn one_sycl_runtime_start_up_per_check() {
    let tmp = tempfile::tempdir().unwrap();
    let verbose = format!(
        "tail -n +4 '{}'",
        corpus(
            "sycl-ls-verbose",
            "oracle-2026.2.0-pocl-intel-cpu-baseline.txt"
        )
    );
    let (path, log) = logging_sycl_ls(tmp.path(), &verbose);
    let sys = rigs_dir().join("dual-a770/root/sys").display().to_string();
    let live = json(&["--sysfs", &sys, "check", "--format", "json"], &path);
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "run --verbose\n");
    // The concise facts are the verbose run's head: its two OpenCL CPUs.
    let devices = &live["facts"]["sycl"]["devices"];
    assert_eq!(names(devices).len(), 2, "{devices:#}");
    assert!(
        devices
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["backend"] == "opencl")
    );
    let probe = |v: &serde_json::Value, name: &str| {
        v["probes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .cloned()
            .unwrap()
    };
    assert_eq!(probe(&live, "sycl-ls")["status"], "ok");
    assert_eq!(probe(&live, "sycl-ls-verbose")["status"], "ok");

    std::fs::remove_file(&log).unwrap();
    let cap = tmp.path().join("cap");
    let r = run_with(
        &["--sysfs", &sys, "capture", "-o", cap.to_str().unwrap()],
        |c| {
            c.env("PATH", &path)
                .env("ONEAPI_DEVICE_SELECTOR", "level_zero:0");
        },
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "run --verbose\n");
    assert!(cap.join("cmd/sycl-ls-verbose.out").exists());
    assert!(
        !cap.join("cmd/sycl-ls.status").exists(),
        "plain sycl-ls did not run"
    );
    let replayed = json(
        &[
            "check",
            "--replay",
            cap.to_str().unwrap(),
            "--format",
            "json",
        ],
        &path,
    );
    assert_eq!(live["facts"]["sycl"], replayed["facts"]["sycl"]);
}

/// A verbose run that fails is followed by the plain one, and both are recorded.
#[test]
fn plain_sycl_ls_when_the_verbose_run_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let (path, log) = logging_sycl_ls(tmp.path(), "echo 'terminate called' >&2; exit 134");
    let sys = rigs_dir().join("dual-a770/root/sys").display().to_string();
    let cap = tmp.path().join("cap");
    let r = run_with(
        &["--sysfs", &sys, "capture", "-o", cap.to_str().unwrap()],
        |c| {
            c.env("PATH", &path);
        },
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "run --verbose\nrun \n"
    );
    assert_eq!(
        std::fs::read_to_string(cap.join("cmd/sycl-ls-verbose.status")).unwrap(),
        "134\n"
    );
    assert_eq!(
        std::fs::read_to_string(cap.join("cmd/sycl-ls.status")).unwrap(),
        "0\n"
    );
    let v = json(
        &[
            "check",
            "--replay",
            cap.to_str().unwrap(),
            "--format",
            "json",
        ],
        &path,
    );
    let devices = names(&v["facts"]["sycl"]["devices"]);
    assert!(
        devices.iter().any(|d| d.contains("level_zero")),
        "{devices:?}"
    );
}

/// A verbose listing without the concise head (sycl-ls before 2023 printed
/// `Platforms: N` first in verbose mode) is no `sycl-ls` listing: the plain
/// run follows, rather than a SYCL area with no devices.
#[test]
fn plain_sycl_ls_when_the_verbose_run_has_no_concise_head() {
    let tmp = tempfile::tempdir().unwrap();
    // The oracle's 2026.2.0 verbose run from its `Platforms:` line on: the
    // fixture's 3 header lines, then 2 device lines and a blank line.
    let verbose = format!(
        "tail -n +7 '{}'",
        corpus(
            "sycl-ls-verbose",
            "oracle-2026.2.0-pocl-intel-cpu-baseline.txt"
        )
    );
    let (path, log) = logging_sycl_ls(tmp.path(), &verbose);
    let sys = rigs_dir().join("dual-a770/root/sys").display().to_string();
    let cap = tmp.path().join("cap");
    let r = run_with(
        &["--sysfs", &sys, "capture", "-o", cap.to_str().unwrap()],
        |c| {
            c.env("PATH", &path);
        },
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "run --verbose\nrun \n"
    );
    assert!(cap.join("cmd/sycl-ls.out").exists());
    let v = json(
        &[
            "check",
            "--replay",
            cap.to_str().unwrap(),
            "--format",
            "json",
        ],
        &path,
    );
    // The plain run's devices (the concise corpus list), and the verbose
    // sections still read.
    let devices = names(&v["facts"]["sycl"]["devices"]);
    assert!(
        devices.iter().any(|d| d.contains("level_zero")),
        "{devices:?}"
    );
    assert_eq!(
        v["facts"]["sycl"]["verbose"]["platforms"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // Without the plain run's files the listing is unknown, not empty.
    for ext in ["out", "err", "status"] {
        let _ = std::fs::remove_file(cap.join(format!("cmd/sycl-ls.{ext}")));
    }
    let v = json(
        &[
            "check",
            "--replay",
            cap.to_str().unwrap(),
            "--format",
            "json",
        ],
        &path,
    );
    let sycl_ls = v["probes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "sycl-ls")
        .unwrap();
    assert_eq!(sycl_ls["status"], "missing", "{sycl_ls:#}");
    assert!(
        sycl_ls["detail"].as_str().unwrap().contains("not recorded"),
        "{sycl_ls:#}"
    );
    assert_eq!(v["facts"]["sycl"]["listed"], false);
}

#[test]
fn one_attempt_when_sycl_ls_is_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let bin = tmp.path().join("bin");
    fake_tools(&bin, &[("xpu-smi", "echo 'No device discovered'")]);
    let path = format!("{}:/usr/bin:/bin", bin.display());
    let sys = rigs_dir()
        .join("b580-no-oneapi/root/sys")
        .display()
        .to_string();
    let cap = tmp.path().join("cap");
    let r = run_with(
        &["--sysfs", &sys, "capture", "-o", cap.to_str().unwrap()],
        |c| {
            c.env("PATH", &path);
        },
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    // One attempt, recorded under the command line that was tried.
    assert_eq!(
        std::fs::read_to_string(cap.join("cmd/sycl-ls-verbose.status")).unwrap(),
        "missing\n"
    );
    assert!(!cap.join("cmd/sycl-ls.status").exists());
    let v = json(
        &[
            "check",
            "--replay",
            cap.to_str().unwrap(),
            "--format",
            "json",
        ],
        &path,
    );
    assert!(v["facts"]["sycl"]["verbose"].is_null());
    let sycl_ls = v["probes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "sycl-ls")
        .unwrap();
    assert_eq!(sycl_ls["status"], "missing");
    assert_eq!(v["facts"]["xpu_smi"]["no_device"], true);
    assert!(diagnosis_ids(&v).contains(&"XPU-SMI-NO-DEVICE".to_string()));
}
