//! Device access as a real unprivileged user (issue 13, item 3): a user made
//! with `useradd` for this test runs rigdoctor through `setpriv` against a
//! devfs root whose render node the test owns and modes, so the kernel's own
//! `access(2)` answer and the user's real `/proc/self/status` are what
//! rigdoctor judges. Needs root to create the user; elsewhere it says so
//! and skips, except with RIGDOCTOR_CI=1 (CI runs as root), where it fails.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly on purpose"
)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::*;

/// The test's user and group, removed when the test ends (also on panic).
struct TestUser {
    name: String,
    group: String,
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.name).output();
        let _ = Command::new("groupdel").arg(&self.name).output();
        let _ = Command::new("groupdel").arg(&self.group).output();
    }
}

fn sh(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn id_of(flag: &str, name: &str) -> u32 {
    let out = Command::new("id").args([flag, name]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// `None` (after saying why) when this machine cannot run the test.
fn root_or_skip() -> Option<()> {
    if nix::unistd::geteuid().is_root() {
        return Some(());
    }
    assert!(
        std::env::var_os("RIGDOCTOR_CI").is_none(),
        "RIGDOCTOR_CI=1: the unprivileged-user test needs root to create its user (CI runs as root)"
    );
    eprintln!("SKIPPED access_user: not root, cannot create a test user with useradd");
    None
}

fn check_as(user: &TestUser, init_groups: bool, sysfs: &Path, devfs: &Path) -> serde_json::Value {
    let uid = id_of("-u", &user.name).to_string();
    let gid = id_of("-g", &user.name).to_string();
    let groups = if init_groups {
        "--init-groups"
    } else {
        "--clear-groups"
    };
    let out = Command::new("setpriv")
        .args(["--reuid", &uid, "--regid", &gid, groups, "--", bin()])
        .args(["check", "--format", "json", "--timeout", "5"])
        .arg("--sysfs")
        .arg(sysfs)
        .arg("--devfs")
        .arg(devfs)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .current_dir("/")
        .output()
        .unwrap();
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "rigdoctor as {}: {:?} {}",
        user.name,
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_user_outside_the_nodes_group_is_told_to_join_it() {
    if root_or_skip().is_none() {
        return;
    }
    // Unique per run: a leftover from a killed run cannot collide.
    let tag = format!("{}{}", std::process::id() % 100000, nix::unistd::getppid());
    let user = TestUser {
        name: format!("rdu{tag}"),
        group: format!("rdg{tag}"),
    };
    sh("groupadd", &[&user.group]);
    sh("useradd", &["-M", "-U", "-s", "/bin/sh", &user.name]);
    let gpu_gid = nix::unistd::Group::from_name(&user.group)
        .unwrap()
        .unwrap()
        .gid;

    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    // The B580 box's sysfs: xe bound to 03:00.0 with drm/card0 and drm/renderD128.
    let sysfs = tmp.path().join("sys");
    sh(
        "cp",
        &[
            "-a",
            rigs_dir().join("b580-no-oneapi/root/sys").to_str().unwrap(),
            sysfs.to_str().unwrap(),
        ],
    );
    sh("chmod", &["-R", "a+rX", sysfs.to_str().unwrap()]);
    // A devfs root with the render node: a real character device (226:128)
    // where mknod is allowed, else a regular file; either way owned
    // root:<group> 0660, so only the kernel's permission check decides.
    let dri = tmp.path().join("dev/dri");
    std::fs::create_dir_all(&dri).unwrap();
    let node = dri.join("renderD128");
    let made = nix::sys::stat::mknod(
        &node,
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o660),
        nix::sys::stat::makedev(226, 128),
    );
    if made.is_err() {
        std::fs::write(&node, b"").unwrap();
    }
    nix::unistd::chown(&node, Some(nix::unistd::Uid::from_raw(0)), Some(gpu_gid)).unwrap();
    std::fs::set_permissions(&node, std::fs::Permissions::from_mode(0o660)).unwrap();
    for d in [tmp.path().join("dev"), dri.clone()] {
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let devfs = tmp.path().join("dev");
    let blocked = |r: &serde_json::Value| -> Vec<serde_json::Value> {
        r["diagnoses"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["id"] == "ACCESS-NOT-IN-GROUP")
            .cloned()
            .collect()
    };

    // 1. Not in the group: refused, and told to join it.
    let r = check_as(&user, true, &sysfs, &devfs);
    assert_eq!(
        r["facts"]["access"]["uid"],
        id_of("-u", &user.name),
        "{}",
        r["facts"]["access"]
    );
    let node_fact = &r["facts"]["access"]["nodes"][0];
    assert_eq!(node_fact["path"], "/dev/dri/renderD128", "{node_fact}");
    assert_eq!(node_fact["read"], false, "{node_fact}");
    let d = blocked(&r);
    assert_eq!(d.len(), 1, "{}", r["diagnoses"]);
    let fix = d[0]["fix"].as_str().unwrap();
    assert!(
        fix.contains(&format!("sudo usermod -aG {} $USER", user.group)),
        "{fix}"
    );
    assert!(
        d[0]["evidence"].as_str().unwrap().contains(&user.name),
        "{}",
        d[0]["evidence"]
    );

    // 2. Added to the group, but this "session" started before: still
    //    refused, and the words say a new login is what is missing.
    sh("usermod", &["-aG", &user.group, &user.name]);
    let r = check_as(&user, false, &sysfs, &devfs);
    let d = blocked(&r);
    assert_eq!(d.len(), 1, "{}", r["diagnoses"]);
    assert!(
        d[0]["evidence"]
            .as_str()
            .unwrap()
            .contains("added after this session started"),
        "{}",
        d[0]["evidence"]
    );

    // 3. A new login (the groups of /etc/group): granted by the group, silent.
    let r = check_as(&user, true, &sysfs, &devfs);
    assert!(blocked(&r).is_empty(), "{}", r["diagnoses"]);
    let node_fact = &r["facts"]["access"]["nodes"][0];
    assert_eq!(node_fact["granted_by"], "group", "{node_fact}");
}
