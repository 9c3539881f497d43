//! Captures written by hand from the documented layout (docs/capture-format.md),
//! the way a bug report may arrive: plain directories instead of sysfs links,
//! no capture metadata beyond the format, missing files.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly on purpose"
)]

mod common;

use std::path::Path;

use common::*;

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn device(root: &Path, addr: &str, attrs: &[(&str, &str)]) {
    for (k, v) in attrs {
        write(
            root,
            &format!("root/sys/bus/pci/devices/{addr}/{k}"),
            &format!("{v}\n"),
        );
    }
}

/// A B580 behind its card switch in an x4 slot, with plain directories.
fn b580_x4(dir: &Path) {
    write(dir, "capture.json", r#"{"format": "rigdoctor-capture/1"}"#);
    write(dir, "env", "ONEAPI_DEVICE_SELECTOR=level_zero:gpu:0\n");
    let link = |s: &'static str, w: &'static str, ms: &'static str, mw: &'static str| {
        [
            ("current_link_speed", s),
            ("current_link_width", w),
            ("max_link_speed", ms),
            ("max_link_width", mw),
        ]
    };
    device(
        dir,
        "0000:00:1c.4",
        &[
            ("class", "0x060400"),
            ("vendor", "0x8086"),
            ("device", "0x7a3c"),
            ("secondary_bus_number", "1"),
            ("subordinate_bus_number", "4"),
        ],
    );
    device(
        dir,
        "0000:00:1c.4",
        &link("16.0 GT/s PCIe", "4", "16.0 GT/s PCIe", "4"),
    );
    device(
        dir,
        "0000:01:00.0",
        &[
            ("class", "0x060400"),
            ("vendor", "0x8086"),
            ("device", "0xe2ff"),
            ("secondary_bus_number", "2"),
            ("subordinate_bus_number", "4"),
        ],
    );
    device(
        dir,
        "0000:01:00.0",
        &link("16.0 GT/s PCIe", "4", "16.0 GT/s PCIe", "8"),
    );
    device(
        dir,
        "0000:02:01.0",
        &[
            ("class", "0x060400"),
            ("vendor", "0x8086"),
            ("device", "0xe2f0"),
            ("secondary_bus_number", "3"),
            ("subordinate_bus_number", "3"),
        ],
    );
    device(
        dir,
        "0000:02:01.0",
        &link("2.5 GT/s PCIe", "1", "2.5 GT/s PCIe", "1"),
    );
    device(
        dir,
        "0000:03:00.0",
        &[
            ("class", "0x030000"),
            ("vendor", "0x8086"),
            ("device", "0xe20b"),
        ],
    );
    device(
        dir,
        "0000:03:00.0",
        &link("2.5 GT/s PCIe", "1", "2.5 GT/s PCIe", "1"),
    );
    std::fs::create_dir_all(dir.join("root/sys/bus/pci/drivers/xe")).unwrap();
    std::os::unix::fs::symlink(
        "../../drivers/xe",
        dir.join("root/sys/bus/pci/devices/0000:03:00.0/driver"),
    )
    .unwrap();
    write(
        dir,
        "cmd/sycl-ls.out",
        "[level_zero:gpu][level_zero:0] Intel(R) oneAPI Unified Runtime over Level-Zero V2, Intel(R) Arc(TM) B580 Graphics 20.1.0 [1.15.38308+1]\n",
    );
    write(dir, "cmd/sycl-ls.status", "0\n");
}

#[test]
fn a_hand_written_capture_is_judged_like_a_recorded_one() {
    let tmp = tempfile::tempdir().unwrap();
    b580_x4(tmp.path());
    let r = run(&[
        "check",
        "--replay",
        tmp.path().to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert!(r.code == 1, "{}\n{}", r.stdout, r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let gpu = &v["facts"]["gpus"][0];
    assert_eq!(gpu["name"], "Intel Arc B580");
    assert_eq!(gpu["driver"], "xe");
    // The bridge chain comes from bus numbers when there are no links.
    assert_eq!(gpu["effective_link"]["at"], "0000:01:00.0");
    let ids = diagnosis_ids(&v);
    for want in ["PCI-LINK-SLOT", "SYCL-SELECTOR-PARSE"] {
        assert!(ids.contains(&want.to_string()), "{ids:?}");
    }
    assert!(v["rule_errors"].as_array().unwrap().is_empty());
    // Nothing recorded about Python: unknown, not a crash.
    let py = v["probes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "python-packages")
        .unwrap()
        .clone();
    assert_eq!(py["status"], "missing");
}

#[test]
fn garbage_in_a_capture_is_not_a_crash() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write(
        d,
        "capture.json",
        r#"{"format": "rigdoctor-capture/1", "denied": 7, "durations_ms": "x"}"#,
    );
    write(
        d,
        "env",
        "no equals sign\n=empty name\nONEAPI_DEVICE_SELECTOR\n",
    );
    device(
        d,
        "0000:03:00.0",
        &[
            ("class", "0x030000"),
            ("vendor", "0x8086"),
            ("device", "\u{0}\u{ff}"),
            ("current_link_width", "lots"),
            ("resource", "0xzz 0x1"),
        ],
    );
    write(
        d,
        "root/sys/bus/pci/devices/not-an-address/class",
        "0x030000\n",
    );
    write(d, "root/proc/cpuinfo", "processor : x\n\n\n");
    write(d, "root/proc/meminfo", "MemTotal: -5 kB\n");
    write(
        d,
        "cmd/sycl-ls.out",
        "[level_zero:gpu][level_zero:99999999999999999999] x, y 1 [",
    );
    write(d, "cmd/sycl-ls.status", "what\n");
    write(d, "cmd/python-packages.out", "==\n\u{feff}torch==\n");
    write(d, "cmd/python-packages.status", "0\n");
    let r = run(&["check", "--replay", d.to_str().unwrap(), "--format", "json"]);
    assert!(r.code == 0 || r.code == 1, "{}", r.stderr);
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert!(
        v["rule_errors"].as_array().unwrap().is_empty(),
        "{}",
        v["rule_errors"]
    );
}
