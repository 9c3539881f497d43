//! Issue 8, item 8: `capture -o DIR` cannot be turned against the user who
//! runs it (often root): DIR is created by rigdoctor or must be an empty
//! directory of the caller's own, never a link; nothing inside it is followed;
//! only what a probe should read is copied (an ICD registration linked to a
//! shadow file copies nothing); files are 0600 and directories 0700.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly on purpose"
)]

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::Path;
use std::process::Command;

use common::{rigs_dir, run_with};

const MARKER: &str = "SHADOW-MARKER-5e1d";

/// `capture -o DIR` on the igpu-second fixture's sysfs/procfs with no tools.
fn capture(tmp: &Path, out: &Path, env: &[(&str, &Path)]) -> common::Run {
    let bin = tmp.join("empty-bin");
    std::fs::create_dir_all(&bin).unwrap();
    let rig = rigs_dir().join("igpu-second/root");
    let (sys, proc_) = (
        rig.join("sys").display().to_string(),
        rig.join("proc").display().to_string(),
    );
    run_with(
        &[
            "--sysfs",
            &sys,
            "--procfs",
            &proc_,
            "capture",
            "-o",
            out.to_str().unwrap(),
        ],
        |c| {
            c.env("PATH", &bin);
            for (k, v) in env {
                c.env(k, v);
            }
        },
    )
}

#[test]
fn capture_refuses_a_symlink_at_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().join("elsewhere");
    std::fs::create_dir(&target).unwrap();
    let link = tmp.path().join("cap");
    symlink(&target, &link).unwrap();
    let r = capture(tmp.path(), &link, &[]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("symbolic link"), "{}", r.stderr);
    assert_eq!(std::fs::read_dir(&target).unwrap().count(), 0);
}

#[test]
fn capture_refuses_a_non_empty_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let cap = tmp.path().join("cap");
    std::fs::create_dir(&cap).unwrap();
    std::fs::write(cap.join("keep"), "mine").unwrap();
    let r = capture(tmp.path(), &cap, &[]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert_eq!(std::fs::read_to_string(cap.join("keep")).unwrap(), "mine");
}

/// A user other than the one running the test: created with useradd when the
/// test runs as root.
fn other_user() -> Option<u32> {
    if !nix::unistd::geteuid().is_root() {
        return None;
    }
    let name = "rigdoctor-test";
    if let Ok(Some(u)) = nix::unistd::User::from_name(name) {
        return Some(u.uid.as_raw());
    }
    let ok = Command::new("useradd")
        .args([
            "--system",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            name,
        ])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    // Another test may have created it meanwhile.
    let _ = ok;
    nix::unistd::User::from_name(name)
        .ok()
        .flatten()
        .map(|u| u.uid.as_raw())
}

#[test]
fn capture_refuses_an_empty_directory_of_another_user() {
    let Some(uid) = other_user() else {
        eprintln!(
            "SKIPPED capture_refuses_an_empty_directory_of_another_user: needs root to create and chown to another user"
        );
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let cap = tmp.path().join("cap");
    std::fs::create_dir(&cap).unwrap();
    std::fs::set_permissions(&cap, std::fs::Permissions::from_mode(0o777)).unwrap();
    nix::unistd::chown(&cap, Some(nix::unistd::Uid::from_raw(uid)), None).unwrap();
    let r = capture(tmp.path(), &cap, &[]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("belongs to uid"), "{}", r.stderr);
    assert_eq!(std::fs::read_dir(&cap).unwrap().count(), 0);
    assert_eq!(std::fs::metadata(&cap).unwrap().uid(), uid);
}

fn walk(dir: &Path, f: &mut dyn FnMut(&Path, &std::fs::Metadata)) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let m = std::fs::symlink_metadata(&p).unwrap();
        f(&p, &m);
        if m.is_dir() {
            walk(&p, f);
        }
    }
}

#[test]
fn capture_copies_an_icd_registration_but_not_a_file_it_links_to() {
    let tmp = tempfile::tempdir().unwrap();
    let vendors = tmp.path().join("vendors");
    std::fs::create_dir(&vendors).unwrap();
    let shadow = tmp.path().join("shadow");
    std::fs::write(&shadow, format!("root:$6${MARKER}:19000:0:99999:7:::\n")).unwrap();
    std::fs::write(vendors.join("intel.icd"), "libigdrcl.so\n").unwrap();
    symlink(&shadow, vendors.join("evil.icd")).unwrap();
    nix::unistd::mkfifo(
        &vendors.join("fifo.icd"),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .unwrap();
    let cap = tmp.path().join("cap");
    let r = capture(tmp.path(), &cap, &[("OCL_ICD_VENDORS", &vendors)]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let mut hits = Vec::new();
    let mut modes = Vec::new();
    walk(&cap, &mut |p, m| {
        if m.is_file() && String::from_utf8_lossy(&std::fs::read(p).unwrap()).contains(MARKER) {
            hits.push(p.display().to_string());
        }
        let mode = m.permissions().mode() & 0o777;
        if (m.is_file() && mode != 0o600) || (m.is_dir() && mode != 0o700) {
            modes.push(format!("{} {mode:o}", p.display()));
        }
    });
    assert!(hits.is_empty(), "the linked file was copied: {hits:?}");
    assert!(
        modes.is_empty(),
        "files not 0600 / dirs not 0700: {modes:?}"
    );
    assert_eq!(
        std::fs::metadata(&cap).unwrap().permissions().mode() & 0o777,
        0o700
    );
    let icd = cap
        .join("root")
        .join(vendors.strip_prefix("/").unwrap())
        .join("intel.icd");
    assert_eq!(std::fs::read_to_string(icd).unwrap(), "libigdrcl.so\n");
    // Replay shows the real registration and not the other one.
    let replay = run_with(
        &[
            "check",
            "--format",
            "json",
            "--replay",
            cap.to_str().unwrap(),
        ],
        |_| {},
    );
    assert!(!replay.stdout.contains(MARKER));
    let v: serde_json::Value = serde_json::from_str(&replay.stdout).unwrap();
    let icds = v["facts"]["clinfo"]["icds"].as_array().unwrap();
    assert_eq!(icds.len(), 1, "{icds:?}");
    assert_eq!(icds[0]["library"], "libigdrcl.so");
}
