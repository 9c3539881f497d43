//! Issue 8, item 4: a replay stays inside its capture. Each test plants a real
//! link, FIFO or sparse file in a copy of a fixture capture and replays it with
//! the real binary: nothing from outside shows up as data, nothing blocks, and
//! the refusal is reported as the `capture` probe (and in the status of the
//! probe that asked).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly on purpose"
)]

mod common;

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{bin, rigs_dir};

/// A marker that must never appear in a replay's output.
const MARKER: &str = "RIGDOCTOR-OUTSIDE-MARKER-7f3a";

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let (src, dst) = (e.path(), to.join(e.file_name()));
        let ft = e.file_type().unwrap();
        if ft.is_symlink() {
            symlink(std::fs::read_link(&src).unwrap(), &dst).unwrap();
        } else if ft.is_dir() {
            copy_tree(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

struct Case {
    _tmp: tempfile::TempDir,
    cap: PathBuf,
    outside: PathBuf,
}

/// A copy of a fixture capture, and next to it (outside it) a file holding
/// the marker.
fn case(rig: &str) -> Case {
    let tmp = tempfile::tempdir().unwrap();
    let cap = tmp.path().join("cap");
    copy_tree(&rigs_dir().join(rig), &cap);
    let outside = tmp.path().join("outside.txt");
    std::fs::write(
        &outside,
        format!("NAME=\"{MARKER}\"\nPRETTY_NAME=\"{MARKER}\"\nONEAPI_DEVICE_SELECTOR={MARKER}\n"),
    )
    .unwrap();
    Case {
        _tmp: tmp,
        cap,
        outside,
    }
}

fn replace_with_link(at: &Path, target: &Path) {
    let _ = std::fs::remove_file(at);
    let _ = std::fs::remove_dir_all(at);
    symlink(target, at).unwrap();
}

fn replace_with_fifo(at: &Path) {
    let _ = std::fs::remove_file(at);
    nix::unistd::mkfifo(at, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
}

/// Replay as JSON with the real binary. The watchdog only turns a hang into a
/// failure instead of a stuck test run; no assertion depends on time.
fn replay(cap: &Path) -> (i32, serde_json::Value, String) {
    replay_with(cap, &[])
}

fn replay_with(cap: &Path, env: &[(&str, &str)]) -> (i32, serde_json::Value, String) {
    let child = Command::new(bin())
        .envs(env.iter().copied())
        .args(["check", "--format", "json", "--replay"])
        .arg(cap)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(Duration::from_secs(300)) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            panic!("replay of {} hung", cap.display());
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !stdout.contains(MARKER) && !stderr.contains(MARKER),
        "bytes from outside the capture in the output:\n{stdout}{stderr}"
    );
    let code = out.status.code().unwrap_or(-1);
    let json = if code == 2 {
        serde_json::Value::Null
    } else {
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
    };
    (code, json, stderr)
}

fn probe<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["probes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no probe {name}: {report:#}"))
}

fn assert_refused(report: &serde_json::Value, what: &str) {
    let cap = probe(report, "capture");
    assert_eq!(cap["status"], "failed", "{cap:#}");
    let detail = cap["detail"].as_str().unwrap();
    assert!(detail.contains(what), "{what} not in {detail}");
}

#[test]
fn replay_refuses_a_root_file_linked_outside() {
    let c = case("igpu-first");
    replace_with_link(&c.cap.join("root/etc/os-release"), &c.outside);
    let (code, report, _) = replay(&c.cap);
    assert_ne!(code, 2);
    assert_refused(&report, "root/etc/os-release");
}

#[test]
fn replay_refuses_a_relative_link_climbing_out_of_root() {
    let c = case("igpu-first");
    // root/etc/os-release -> ../../../outside.txt: above root/ and the capture.
    replace_with_link(
        &c.cap.join("root/etc/os-release"),
        Path::new("../../../outside.txt"),
    );
    let (_, report, _) = replay(&c.cap);
    assert_refused(&report, "root/etc/os-release");
    // And one that climbs out of root/ into the capture itself: still not root/.
    replace_with_link(&c.cap.join("root/etc/os-release"), Path::new("../../env"));
    let (_, report, _) = replay(&c.cap);
    assert_refused(&report, "root/etc/os-release");
}

#[test]
fn replay_refuses_env_linked_to_proc_self_environ() {
    let c = case("igpu-first");
    replace_with_link(&c.cap.join("env"), Path::new("/proc/self/environ"));
    // The replaying user's own environment must not become the capture's.
    let (_, report, _) = replay_with(&c.cap, &[("ONEAPI_DEVICE_SELECTOR", MARKER)]);
    let env = probe(&report, "env");
    assert_eq!(env["status"], "failed", "{env:#}");
    assert!(report["facts"]["env"].as_object().unwrap().is_empty());
    assert_refused(&report, "env");
}

#[test]
fn replay_refuses_cmd_output_linked_outside_and_to_dev_zero() {
    let c = case("igpu-first");
    replace_with_link(&c.cap.join("cmd/sycl-ls.out"), &c.outside);
    replace_with_link(
        &c.cap.join("cmd/python-packages.out"),
        Path::new("/dev/zero"),
    );
    let (_, report, _) = replay(&c.cap);
    assert_eq!(probe(&report, "sycl-ls")["status"], "failed");
    assert_eq!(probe(&report, "python-packages")["status"], "failed");
    assert_refused(&report, "cmd/sycl-ls.out");
    assert_refused(&report, "cmd/python-packages.out");
}

#[test]
fn replay_refuses_fifos_without_blocking() {
    let c = case("igpu-first");
    replace_with_fifo(&c.cap.join("cmd/sycl-ls.out"));
    replace_with_fifo(&c.cap.join("root/proc/cpuinfo"));
    replace_with_fifo(&c.cap.join("env"));
    let (_, report, _) = replay(&c.cap);
    assert_eq!(probe(&report, "sycl-ls")["status"], "failed");
    assert_refused(&report, "FIFO");
    assert_refused(&report, "root/proc/cpuinfo");
    // capture.json as a FIFO: not a capture at all, and no hang.
    replace_with_fifo(&c.cap.join("capture.json"));
    let (code, _, stderr) = replay(&c.cap);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("FIFO"), "{stderr}");
}

#[test]
fn replay_refuses_capture_json_linked_outside() {
    let c = case("igpu-first");
    let fake = c.cap.parent().unwrap().join("fake.json");
    std::fs::write(&fake, format!("{{\"format\": \"{MARKER}\"}}")).unwrap();
    replace_with_link(&c.cap.join("capture.json"), &fake);
    let (code, _, stderr) = replay(&c.cap);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("refused"), "{stderr}");
}

#[test]
fn replay_refuses_root_itself_being_a_link_out() {
    let c = case("igpu-first");
    std::fs::remove_dir_all(c.cap.join("root")).unwrap();
    symlink("/", c.cap.join("root")).unwrap();
    let (_, report, _) = replay(&c.cap);
    assert_refused(&report, "root");
    // The replaying machine's own /etc/os-release is not the capture's.
    assert!(
        report["facts"]["host"]["os_name"].is_null(),
        "{:#}",
        report["facts"]["host"]
    );
}

#[test]
fn replay_bounds_a_sparse_huge_output() {
    let c = case("igpu-first");
    let out = c.cap.join("cmd/sycl-ls.out");
    let keep = std::fs::read(&out).unwrap();
    let f = std::fs::OpenOptions::new().append(true).open(&out).unwrap();
    // 64 GiB of holes after the real output: read only up to the bound.
    f.set_len(64 << 30).unwrap();
    drop(f);
    let (code, report, _) = replay(&c.cap);
    assert_ne!(code, 2);
    assert!(!keep.is_empty());
    assert!(report["probes"].is_array());
}

#[test]
fn replay_follows_links_that_stay_inside() {
    // Every fixture rig's sysfs copy is made of relative links; they still work
    // and nothing is refused.
    let c = case("igpu-first");
    let (code, report, _) = replay(&c.cap);
    assert_ne!(code, 2);
    assert!(
        !report["probes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "capture"),
        "{:#}",
        report["probes"]
    );
    assert!(!report["facts"]["gpus"].as_array().unwrap().is_empty());
}
