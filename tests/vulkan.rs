//! Vulkan: the parser on every real vulkaninfo output in
//! fixtures/outputs/vulkaninfo (with their source lines), and the real
//! `vulkaninfo` of Debian's vulkan-tools with mesa-vulkan-drivers (lavapipe)
//! on this machine: live facts, and capture -> replay giving the same facts.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly on purpose"
)]

mod common;

use common::*;
use rigdoctor::probe::vulkan;

/// A fixture output without its 3-line header (`# source`, `# context`, `# ---`).
fn body(name: &str) -> String {
    let path = root().join("fixtures/outputs/vulkaninfo").join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    match text.split_once("# ---\n") {
        Some((_, b)) => b.to_string(),
        None => text,
    }
}

/// (file, devices as (type, driver, software, vendor id), layout, Mesa version)
type Want<'a> = (
    &'a str,
    &'a [(&'a str, Option<&'a str>, bool, Option<&'a str>)],
    Option<&'a str>,
    Option<&'a str>,
);

#[test]
fn every_vulkaninfo_output() {
    let want: &[Want] = &[
        (
            "debian12-lavapipe-summary.txt",
            &[("cpu", Some("llvmpipe"), true, Some("0x10005"))],
            Some("summary"),
            Some("22.3.6"),
        ),
        // stderr only: warnings, no device section.
        ("debian12-lavapipe-summary.err.txt", &[], None, None),
        (
            "debian12-lavapipe-full.txt",
            &[("cpu", Some("llvmpipe"), true, Some("0x10005"))],
            Some("full"),
            Some("22.3.6"),
        ),
        (
            "nixgl-153-rx6600xt-amd-proprietary-summary.txt",
            &[("discrete", Some("amd-proprietary"), false, Some("0x1002"))],
            Some("summary"),
            None,
        ),
        (
            "vulkan-tools-801-hd530-r9-380-summary-truncated.txt",
            &[
                ("integrated", Some("intel-windows"), false, Some("0x8086")),
                ("discrete", Some("amd-proprietary"), false, Some("0x1002")),
            ],
            Some("summary"),
            None,
        ),
        (
            "ncnn-4831-rtx3070-laptop-full-excerpt.txt",
            &[("discrete", Some("nvidia"), false, Some("0x10de"))],
            Some("full"),
            None,
        ),
        (
            "sapien-194-rtx3090-full-excerpt.txt",
            &[("discrete", Some("nvidia"), false, Some("0x10de"))],
            Some("full"),
            None,
        ),
        (
            "clvk-537-pi400-llvmpipe-only-full-excerpt.txt",
            &[("cpu", Some("llvmpipe"), true, Some("0x10005"))],
            Some("full"),
            None,
        ),
        // An excerpt without its GPU0 header: driver rows with no device to
        // hang them on are not invented into one.
        (
            "dslcad-9-nvidia-icd-rejected-llvmpipe-vulkan12-excerpt.txt",
            &[],
            None,
            None,
        ),
        (
            "amdvlk-401-9070xt-raphael-device-select-list.txt",
            &[
                ("discrete", Some("radv"), false, Some("0x1002")),
                ("integrated", Some("radv"), false, Some("0x1002")),
            ],
            Some("device-select"),
            None,
        ),
        (
            "gpu-t-33-r5m465-uhd620-device-select-list.txt",
            &[
                ("discrete", Some("radv"), false, Some("0x1002")),
                ("integrated", None, false, Some("0x8086")),
                ("cpu", Some("llvmpipe"), true, Some("0x10005")),
            ],
            Some("device-select"),
            None,
        ),
    ];
    let dir = root().join("fixtures/outputs/vulkaninfo");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut listed: Vec<&str> = want.iter().map(|w| w.0).collect();
    listed.sort();
    assert_eq!(names, listed, "every output has an expectation");
    for (file, devices, layout, mesa) in want {
        let v = vulkan::parse(&body(file), "");
        let got: Vec<(&str, Option<&str>, bool, Option<&str>)> = v
            .devices
            .iter()
            .map(|d| {
                (
                    d.kind.as_str(),
                    d.driver.as_deref(),
                    d.software,
                    d.vendor_id.as_deref(),
                )
            })
            .collect();
        assert_eq!(&got[..], *devices, "{file}");
        assert_eq!(v.layout.as_deref(), *layout, "{file}");
        assert_eq!(v.mesa_version.as_deref(), *mesa, "{file}");
        for d in &v.devices {
            assert!(!d.name.is_empty(), "{file}: a device without a name");
        }
    }
}

#[test]
fn versions_as_each_layout_prints_them() {
    let v = vulkan::parse(&body("debian12-lavapipe-full.txt"), "");
    assert_eq!(v.devices[0].api_version.as_deref(), Some("1.3.230"));
    assert_eq!(
        v.devices[0].driver_info.as_deref(),
        Some("Mesa 22.3.6 (LLVM 15.0.6)")
    );
    assert_eq!(v.instance_version.as_deref(), Some("1.3.239"));
    let v = vulkan::parse(&body("ncnn-4831-rtx3070-laptop-full-excerpt.txt"), "");
    assert_eq!(v.devices[0].api_version.as_deref(), Some("1.3.236"));
    // 0x848a40c0 in NVIDIA's 10.8.8.6 packing.
    assert_eq!(v.devices[0].driver_version.as_deref(), Some("530.41.3"));
    assert_eq!(v.devices[0].device_id.as_deref(), Some("0x24dd"));
    // The interleaved conformance warning is a message, not a device row.
    assert!(
        v.messages
            .iter()
            .any(|m| m.contains("lavapipe is not a conformant"))
    );
    let v = vulkan::parse(
        &body("vulkan-tools-801-hd530-r9-380-summary-truncated.txt"),
        "",
    );
    assert_eq!(v.devices[0].driver_version.as_deref(), Some("101.1340"));
    assert_eq!(v.devices[1].name, "AMD Radeon (TM) R9 380 Series");
    assert_eq!(
        v.devices[1].driver_info, None,
        "cut after the key: no value"
    );
    let v = vulkan::parse(
        &body("amdvlk-401-9070xt-raphael-device-select-list.txt"),
        "",
    );
    assert_eq!(v.devices[0].pci.as_deref(), Some("0000:03:00.0"));
    assert_eq!(v.devices[1].pci.as_deref(), Some("0000:19:00.0"));
    let v = vulkan::parse("", &body("debian12-lavapipe-summary.err.txt"));
    assert!(!v.no_device, "display warnings are not 'no device'");
    assert_eq!(v.messages.len(), 2, "{:?}", v.messages);
}

#[test]
fn broken_outputs_do_not_panic() {
    let full = body("debian12-lavapipe-full.txt");
    for cut in [0, 1, 100, 1000, 4000, full.len() / 2, full.len() - 1] {
        let mut end = cut.min(full.len());
        while !full.is_char_boundary(end) {
            end -= 1;
        }
        let _ = vulkan::parse(&full[..end], "");
    }
    let crlf = body("debian12-lavapipe-summary.txt").replace('\n', "\r\n");
    assert_eq!(vulkan::parse(&crlf, "").devices.len(), 1);
    let colored = body("nixgl-153-rx6600xt-amd-proprietary-summary.txt")
        .replace("GPU0:", "\u{1b}[1mGPU0:\u{1b}[0m");
    assert_eq!(vulkan::parse(&colored, "").devices.len(), 1);
}

fn vulkaninfo_present() -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("vulkaninfo").is_file()))
        .unwrap_or(false)
}

/// `.ci/run` installs vulkan-tools and mesa-vulkan-drivers and sets
/// RIGDOCTOR_CI=1, so on CI a missing vulkaninfo fails here instead of
/// skipping quietly.
fn have_real_vulkaninfo() -> bool {
    if vulkaninfo_present() {
        return true;
    }
    assert!(
        std::env::var_os("RIGDOCTOR_CI").is_none(),
        "vulkaninfo is not on PATH; .ci/run installs vulkan-tools and mesa-vulkan-drivers"
    );
    eprintln!(
        "SKIPPED: vulkaninfo is not installed (apt-get install vulkan-tools mesa-vulkan-drivers); the real-lavapipe tests did not run"
    );
    false
}

#[test]
fn real_vulkaninfo_lists_lavapipe_live() {
    if !have_real_vulkaninfo() {
        return;
    }
    let r = run(&["check", "--format", "json"]);
    assert!(r.code == 0 || r.code == 1, "exit {}: {}", r.code, r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let probe = v["probes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "vulkaninfo-summary")
        .expect("the vulkaninfo probe ran")
        .clone();
    assert_eq!(probe["status"], "ok", "{probe}");
    let vk = &v["facts"]["vulkan"];
    assert_eq!(vk["listed"], true);
    assert_eq!(
        vk["layout"], "summary",
        "Debian 12's vulkaninfo has --summary"
    );
    let devices = vk["devices"].as_array().unwrap();
    let lavapipe = devices
        .iter()
        .find(|d| d["driver"] == "llvmpipe")
        .unwrap_or_else(|| panic!("mesa-vulkan-drivers gives a lavapipe device: {vk}"));
    assert_eq!(lavapipe["type"], "cpu");
    assert_eq!(lavapipe["software"], true);
    assert_eq!(lavapipe["pci"], serde_json::Value::Null);
    assert!(
        lavapipe["name"].as_str().unwrap().starts_with("llvmpipe"),
        "{lavapipe}"
    );
    let mesa = vk["mesa_version"].as_str().unwrap();
    assert!(mesa.split('.').count() >= 2, "{mesa}");
    // Stable names (design.md): name, type, driver, pci on every device.
    for d in devices {
        for k in ["name", "type", "driver", "pci"] {
            assert!(d.get(k).is_some(), "{k} missing in {d}");
        }
    }
    // No GPU here, so no Vulkan finding may claim one is missing.
    let gpu_on_bus = v["facts"]["gpus"]
        .as_array()
        .unwrap()
        .iter()
        .any(|g| g["compute"] == true && !g["driver"].is_null());
    if !gpu_on_bus {
        let ids = diagnosis_ids(&v);
        assert!(!ids.iter().any(|i| i.starts_with("VULKAN-")), "{ids:?}");
    }
}

#[test]
fn real_vulkaninfo_capture_replays_to_the_same_vulkan_facts() {
    if !have_real_vulkaninfo() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let cap = tmp.path().join("cap");
    let r = run(&["capture", "-o", cap.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let out = std::fs::read_to_string(cap.join("cmd/vulkaninfo-summary.out")).unwrap();
    assert!(out.contains("VULKANINFO"), "stdout stored byte for byte");
    assert_eq!(
        std::fs::read_to_string(cap.join("cmd/vulkaninfo-summary.status"))
            .unwrap()
            .trim(),
        "0"
    );
    let replayed: serde_json::Value = serde_json::from_str(
        &run(&[
            "check",
            "--replay",
            cap.to_str().unwrap(),
            "--format",
            "json",
        ])
        .stdout,
    )
    .unwrap();
    let reparsed = vulkan::parse(&out, "");
    let devices = replayed["facts"]["vulkan"]["devices"].as_array().unwrap();
    assert_eq!(devices.len(), reparsed.devices.len());
    assert_eq!(devices[0]["name"], reparsed.devices[0].name.as_str());
}
