//! Issue 10, item 6 (first half): `capture -o rig.tar.gz` writes a gzip
//! tarball and `check --replay rig.tar.gz` reads it, with the same facts as
//! the directory form; a hostile tarball (absolute paths, `..`, links out,
//! devices, a file far over the bound) is unpacked only as far as it is safe.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly on purpose"
)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::{rigs_dir, run, run_with};

const MARKER: &str = "TARBALL-OUTSIDE-MARKER-91c2";

fn replay_json(cap: &Path) -> (i32, serde_json::Value, String) {
    let r = run(&[
        "check",
        "--format",
        "json",
        "--replay",
        cap.to_str().unwrap(),
    ]);
    assert!(!r.stdout.contains(MARKER) && !r.stderr.contains(MARKER));
    let v = if r.code == 2 {
        serde_json::Value::Null
    } else {
        serde_json::from_str(&r.stdout).unwrap()
    };
    (r.code, v, r.stderr)
}

fn facts_and_verdict(v: &serde_json::Value) -> (serde_json::Value, serde_json::Value) {
    (v["facts"].clone(), v["verdict"].clone())
}

#[test]
fn capture_to_a_tarball_replays_like_the_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let bin = tmp.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let rig = rigs_dir().join("igpu-second/root");
    let (sys, proc_) = (
        rig.join("sys").display().to_string(),
        rig.join("proc").display().to_string(),
    );
    let dir = tmp.path().join("cap");
    let tgz = tmp.path().join("rig.tar.gz");
    for out in [&dir, &tgz] {
        let r = run_with(
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
                c.env("PATH", &bin)
                    .env("ONEAPI_DEVICE_SELECTOR", "level_zero:0");
            },
        );
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert!(
            r.stdout.contains(&format!("--replay {}", out.display())),
            "{}",
            r.stdout
        );
    }
    let meta = std::fs::symlink_metadata(&tgz).unwrap();
    assert!(meta.is_file());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let head = std::fs::read(&tgz).unwrap();
    assert_eq!(&head[..2], &[0x1f, 0x8b], "not gzip");
    let (c1, from_dir, _) = replay_json(&dir);
    let (c2, from_tgz, e2) = replay_json(&tgz);
    assert_eq!(c1, c2, "{e2}");
    assert_eq!(facts_and_verdict(&from_dir), facts_and_verdict(&from_tgz));
    // The bridge walk worked on the unpacked copy: links came through as links.
    assert_eq!(
        from_tgz["facts"]["gpus"][1]["effective_link"]["at"],
        "0000:01:00.0"
    );
    // An existing file is never overwritten.
    let again = run_with(
        &[
            "--sysfs",
            &sys,
            "--procfs",
            &proc_,
            "capture",
            "-o",
            tgz.to_str().unwrap(),
        ],
        |c| {
            c.env("PATH", &bin);
        },
    );
    assert_eq!(again.code, 2);
    assert_eq!(std::fs::read(&tgz).unwrap(), head);
}

#[test]
fn a_tarball_made_by_hand_of_a_fixture_replays() {
    // What the README told users before: tar czf x.tar.gz -C DIR .
    // and the other habit: a tarball holding the directory itself.
    let tmp = tempfile::tempdir().unwrap();
    for (name, args) in [
        ("flat.tar.gz", vec!["-C", "fixtures/rigs/igpu-first", "."]),
        ("nested.tgz", vec!["-C", "fixtures/rigs", "igpu-first"]),
    ] {
        let out = tmp.path().join(name);
        let ok = std::process::Command::new("tar")
            .current_dir(common::root())
            .arg("czf")
            .arg(&out)
            .args(&args)
            .status()
            .unwrap()
            .success();
        assert!(ok);
        let (code, v, e) = replay_json(&out);
        assert_ne!(code, 2, "{name}: {e}");
        let (_, want, _) = replay_json(&rigs_dir().join("igpu-first"));
        assert_eq!(facts_and_verdict(&v), facts_and_verdict(&want), "{name}");
    }
}

/// A gzip tarball built entry by entry, hostile entries included.
fn hostile_tarball(out: &Path, outside: &Path) {
    let f = std::fs::File::create(out).unwrap();
    let gz = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
    let mut b = tar::Builder::new(gz);
    let fixture = rigs_dir().join("igpu-first");
    b.follow_symlinks(false);
    b.append_dir_all(".", &fixture).unwrap();
    let raw = |b: &mut tar::Builder<_>,
               path: &str,
               kind: tar::EntryType,
               data: &[u8],
               link: Option<&str>| {
        let mut h = tar::Header::new_old();
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        // Write the name bytes directly: the builder refuses `..` and `/`
        // itself, which is exactly what a hostile archive does not do.
        let name = &mut h.as_old_mut().name;
        name[..path.len()].copy_from_slice(path.as_bytes());
        if let Some(l) = link {
            let ln = &mut h.as_old_mut().linkname;
            ln[..l.len()].copy_from_slice(l.as_bytes());
        }
        h.set_cksum();
        b.append(&h, data).unwrap();
    };
    let outside_s = outside.display().to_string();
    raw(
        &mut b,
        "../escape.txt",
        tar::EntryType::Regular,
        MARKER.as_bytes(),
        None,
    );
    raw(
        &mut b,
        "/tmp/rigdoctor-abs-escape.txt",
        tar::EntryType::Regular,
        MARKER.as_bytes(),
        None,
    );
    raw(
        &mut b,
        "root/etc/os-release",
        tar::EntryType::Symlink,
        b"",
        Some(&outside_s),
    );
    raw(
        &mut b,
        "env",
        tar::EntryType::Symlink,
        b"",
        Some("../../../../proc/self/environ"),
    );
    raw(
        &mut b,
        "cmd/sycl-ls.out",
        tar::EntryType::Link,
        b"",
        Some(&outside_s),
    );
    raw(&mut b, "root/proc/cpuinfo", tar::EntryType::Fifo, b"", None);
    raw(&mut b, "root/dev-zero", tar::EntryType::Char, b"", None);
    let gz = b.into_inner().unwrap();
    gz.finish().unwrap();
}

#[test]
fn a_hostile_tarball_is_unpacked_only_as_far_as_it_is_safe() {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside.txt");
    std::fs::write(&outside, format!("PRETTY_NAME=\"{MARKER}\"\n")).unwrap();
    let tgz = tmp.path().join("sub/hostile.tar.gz");
    std::fs::create_dir(tmp.path().join("sub")).unwrap();
    hostile_tarball(&tgz, &outside);
    let (code, v, e) = replay_json(&tgz);
    assert_ne!(code, 2, "{e}");
    assert!(!tmp.path().join("escape.txt").exists());
    assert!(!tmp.path().join("sub/escape.txt").exists());
    assert!(!Path::new("/tmp/rigdoctor-abs-escape.txt").exists());
    let cap = v["probes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "capture")
        .unwrap_or_else(|| panic!("no capture probe: {:#}", v["probes"]));
    assert_eq!(cap["status"], "failed");
    let detail = cap["detail"].as_str().unwrap();
    assert!(detail.contains("archive: "), "{detail}");
}

#[test]
fn garbage_named_like_a_tarball_is_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("rig.tar.gz");
    std::fs::write(&p, b"this is not gzip at all").unwrap();
    let (code, _, e) = replay_json(&p);
    assert_eq!(code, 2);
    assert!(e.contains("rig.tar.gz"), "{e}");
}
