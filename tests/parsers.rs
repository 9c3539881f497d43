//! Parsers on every real output they cover (fixtures/outputs, copied from the
//! developer corpus with their source line): no panic, sensible facts.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly on purpose"
)]

mod common;

use common::*;
use rigdoctor::probe::{clinfo, python_deep, sycl_ls, sycl_ls_verbose, xpu_smi};

/// A corpus file without its 3-line header (`# source`, `# context`, `# ---`).
fn body(path: &std::path::Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    match text.split_once("# ---\n") {
        Some((_, b)) => b.to_string(),
        None => text,
    }
}

#[test]
fn sycl_ls_every_corpus_file() {
    // file -> (devices, GPU devices, generation)
    let want: &[(&str, usize, usize, Option<&str>)] = &[
        (
            "blog-mtl-165h-generic-0x7d55-neo-23.43.txt",
            3,
            2,
            Some("2024.1+"),
        ),
        (
            "cr714-a750-arch-old-format-no-gpu.txt",
            2,
            0,
            Some("pre-2024.1"),
        ),
        (
            "doc-win-mtl-arc-ur-over-l0-first-12.71.4.txt",
            2,
            2,
            Some("unified-runtime"),
        ),
        (
            "dpctl1283-ryzen-a770-dup-fpga-2023.txt",
            5,
            2,
            Some("pre-2024.1"),
        ),
        (
            "llamacpp-sycl-doc-2025-a770-uhd730-ur-over-l0.txt",
            5,
            4,
            Some("unified-runtime"),
        ),
        (
            "llamacpp-sycl-doc-a770-i7-13700k-acc.txt",
            4,
            2,
            Some("2024.1+"),
        ),
        (
            "llamacpp5513-win-a770-uhd770-oldformat.txt",
            6,
            4,
            Some("pre-2024.1"),
        ),
        (
            "llvm13999-verbose-max1550-uuid-subdevices-example.txt",
            0,
            0,
            None,
        ),
        (
            "llvm19305-verbose-cpu-fragment-gha-link-artifact.txt",
            0,
            0,
            None,
        ),
        ("llvm22555-verbose-b580-fragment.txt", 0, 0, None),
        (
            "llvm8433-verbose-max1550-pi-trace-unified-runtime.txt",
            3,
            3,
            Some("pre-2024.1"),
        ),
        (
            "llvmproject217155-liboffload-terse-ze-affinity-mask.txt",
            2,
            2,
            Some("liboffload"),
        ),
        (
            "llvmproject217155-oneapi2026-l0v2-b580-uhd770.txt",
            4,
            3,
            Some("unified-runtime-v2"),
        ),
        (
            "oneapicontainers84-a770-single-line-1.6.txt",
            1,
            1,
            Some("pre-2024.1"),
        ),
        (
            "oneapisamples-max1550-2tiles-dup-cpu-runtimes-indented.txt",
            7,
            4,
            Some("2024.1+"),
        ),
        (
            "openeuler-doc-a770-uhd750-l0-1.3.txt",
            5,
            4,
            Some("2024.1+"),
        ),
        (
            "oracle-2025.0.4-pocl-intel-cpu-baseline.txt",
            2,
            0,
            Some("2024.1+"),
        ),
        (
            "oracle-2026.1.2-pocl-intel-cpu-baseline.txt",
            2,
            0,
            Some("2024.1+"),
        ),
        (
            "oracle-2026.2.0-pocl-intel-cpu-baseline.txt",
            2,
            0,
            Some("2024.1+"),
        ),
        (
            "torchxpuops5164-dual-arc-pro-b70-l0v2-20.2.0.txt",
            5,
            4,
            Some("unified-runtime-v2"),
        ),
    ];
    let dir = root().join("fixtures/outputs/sycl-ls");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let listed: Vec<&str> = want.iter().map(|w| w.0).collect();
    assert_eq!(files, listed, "every corpus file has an expectation");
    for (file, devices, gpus, generation) in want {
        let l = sycl_ls::parse(&body(&dir.join(file)), "");
        assert_eq!(l.devices.len(), *devices, "{file}: {:#?}", l.devices);
        assert_eq!(
            l.devices.iter().filter(|d| d.kind == "gpu").count(),
            *gpus,
            "{file}"
        );
        assert_eq!(l.generation.as_deref(), *generation, "{file}");
        for d in &l.devices {
            assert!(!d.name.is_empty() && !d.backend.is_empty(), "{file}: {d:?}");
            assert!(
                !d.name.contains('[') || d.name.contains("[0x"),
                "{file}: driver leaked into name: {d:?}"
            );
            assert!(!d.backend.starts_with("ext_oneapi_"), "{file}: {d:?}");
        }
    }
}

#[test]
fn sycl_ls_names_versions_and_indices_on_real_lines() {
    let dir = root().join("fixtures/outputs/sycl-ls");
    let l = sycl_ls::parse(
        &body(&dir.join("oneapisamples-max1550-2tiles-dup-cpu-runtimes-indented.txt")),
        "",
    );
    let cpus: Vec<_> = l.devices.iter().filter(|d| d.kind == "cpu").collect();
    // Two OpenCL CPU platforms from different releases: a stale ICD registration.
    assert_eq!(cpus.len(), 2);
    assert_eq!(cpus[0].driver, "2024.18.6.0.02_160000");
    assert_eq!(cpus[1].driver, "2023.16.7.0.21_160000");
    assert_eq!(l.devices[2].name, "Intel(R) Data Center GPU Max 1550");
    assert_eq!(l.devices[4].kind, "fpga");
    let l = sycl_ls::parse(
        &body(&dir.join("blog-mtl-165h-generic-0x7d55-neo-23.43.txt")),
        "",
    );
    assert_eq!(l.devices[1].name, "Intel(R) Graphics [0x7d55]");
    assert_eq!(l.devices[1].driver, "23.43.027642");
    assert_eq!(l.devices[2].version, "1.3");
    let l = sycl_ls::parse(
        &body(&dir.join("llvm8433-verbose-max1550-pi-trace-unified-runtime.txt")),
        "",
    );
    assert_eq!(l.devices[1].backend, "unified_runtime");
}

#[test]
fn sycl_ls_survives_mangled_input() {
    let dir = root().join("fixtures/outputs/sycl-ls");
    for e in std::fs::read_dir(&dir).unwrap() {
        let text = body(&e.unwrap().path());
        // Truncated at every byte, CRLF line ends, and interleaved with stderr noise.
        for cut in (0..text.len()).step_by(7) {
            if text.is_char_boundary(cut) {
                let _ = sycl_ls::parse(&text[..cut], &text[cut..]);
            }
        }
        let crlf = text.replace('\n', "\r\n");
        assert_eq!(
            sycl_ls::parse(&crlf, "").devices.len(),
            sycl_ls::parse(&text, "").devices.len()
        );
    }
}

/// The files under fixtures/outputs/<tool>, sorted, checked against the expectations' file list.
fn corpus(tool: &str, listed: &[&str]) -> Vec<(String, String)> {
    let dir = root().join("fixtures/outputs").join(tool);
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let mut want: Vec<&str> = listed.to_vec();
    want.sort();
    assert_eq!(files, want, "{tool}: every corpus file has an expectation");
    files
        .into_iter()
        .map(|f| {
            let b = body(&dir.join(&f));
            (f, b)
        })
        .collect()
}

/// Truncated at many points, CRLF line ends, ANSI colour: never a panic, and
/// CRLF/ANSI change nothing.
fn mangle<T: PartialEq + std::fmt::Debug>(text: &str, parse: impl Fn(&str) -> T) {
    for cut in (0..text.len()).step_by(5) {
        if text.is_char_boundary(cut) {
            let _ = parse(&text[..cut]);
        }
    }
    let plain = parse(text);
    assert_eq!(
        parse(&text.replace('\n', "\r\n")),
        plain,
        "CRLF changed the result"
    );
    let coloured: String = text
        .lines()
        .map(|l| format!("\u{1b}[1;32m{l}\u{1b}[0m\n"))
        .collect();
    assert_eq!(parse(&coloured), plain, "ANSI colour changed the result");
}

#[test]
fn xpu_smi_every_corpus_file() {
    // file -> (layout, devices, no_device)
    let want: &[(&str, Option<&str>, usize, bool)] = &[
        (
            "doc-smi-guide-discovery-d-bdf-detailed.txt",
            Some("table"),
            1,
            false,
        ),
        (
            "doc-smi-guide-discovery-dump-csv-flex.txt",
            Some("csv"),
            2,
            false,
        ),
        ("doc-smi-guide-discovery-json.txt", Some("json"), 1, false),
        ("doc-smi-guide-dump-d0-m012.txt", None, 0, false),
        ("doc-smi-guide-stats-d0-flex.txt", None, 0, false),
        ("doc-smi-guide-topology-d0-and-matrix.txt", None, 0, false),
        (
            "ipexllm-readme-env-check-linux-a770-older-5.19-kernel.txt",
            Some("table"),
            1,
            false,
        ),
        (
            "ipexllm13108-b580-env-check-xpu-smi-no-device-discovered.txt",
            None,
            0,
            true,
        ),
        ("ipexllm9594-a770-stats-sudo-partial.txt", None, 0, false),
        (
            "llamacpp28725-a770-discovery-d0-borderless-v2.txt",
            Some("borderless"),
            1,
            false,
        ),
        ("nvtop414-b580-ubuntu2510-stats-partial.txt", None, 0, false),
        ("xpum111-arc-pro-b50-stats-na.txt", None, 0, false),
        (
            "xpum126-b60-creator-generic-name-0xe211-partial.txt",
            Some("table"),
            1,
            false,
        ),
        (
            "xpum158-b570-xpu-smi-v2.1-summary-table.txt",
            Some("summary"),
            1,
            false,
        ),
        (
            "xpum33-a770-0x56a0-stats-fragment-freq0.txt",
            None,
            0,
            false,
        ),
        ("xpum62-a380-stats-all-blank.txt", None, 0, false),
        (
            "xpum69-flex170-discovery-d0-partial.txt",
            Some("table"),
            1,
            false,
        ),
        (
            "xpum98-max1550-aurora-dump-6dev-util-na.txt",
            None,
            0,
            false,
        ),
    ];
    let files = corpus("xpu-smi", &want.iter().map(|w| w.0).collect::<Vec<_>>());
    for ((file, text), (_, layout, n, no_device)) in files.iter().zip(want) {
        let x = xpu_smi::parse(text, "");
        assert_eq!(x.layout.as_deref(), *layout, "{file}");
        assert_eq!(x.devices.len(), *n, "{file}: {:#?}", x.devices);
        assert_eq!(x.no_device, *no_device, "{file}");
        for d in &x.devices {
            assert!(
                d.name.as_deref().is_some_and(|n| !n.is_empty()),
                "{file}: {d:?}"
            );
            if let Some(id) = &d.pci_device_id {
                assert!(id.starts_with("0x") && id.len() == 6, "{file}: {id}");
            }
        }
        mangle(text, |t| xpu_smi::parse(t, ""));
    }
}

#[test]
fn xpu_smi_fields_on_real_outputs() {
    let dir = root().join("fixtures/outputs/xpu-smi");
    let x = xpu_smi::parse(
        &body(&dir.join("doc-smi-guide-discovery-d-bdf-detailed.txt")),
        "",
    );
    let d = &x.devices[0];
    assert_eq!(d.pci_bdf.as_deref(), Some("0000:4d:00.0"));
    assert_eq!(d.pci_device_id.as_deref(), Some("0x020a"));
    assert_eq!(d.memory_bytes, Some(32768 * 1024 * 1024));
    assert_eq!(
        (d.link_gen, d.link_width, d.tiles),
        (Some(4), Some(16), Some(2))
    );
    assert_eq!(
        d.uuid.as_deref(),
        Some("00000000-0000-0000-0000-020a00008086")
    );
    // JSON prints the id without its leading zero; sysfs writes 0x020a.
    let j = xpu_smi::parse(&body(&dir.join("doc-smi-guide-discovery-json.txt")), "");
    assert_eq!(j.devices[0].pci_device_id.as_deref(), Some("0x020a"));
    let b = xpu_smi::parse(
        &body(&dir.join("llamacpp28725-a770-discovery-d0-borderless-v2.txt")),
        "",
    );
    let d = &b.devices[0];
    assert_eq!(d.kind.as_deref(), Some("Discrete GPU"));
    assert_eq!(d.state.as_deref(), Some("normal"));
    assert_eq!(d.driver_version.as_deref(), Some("17013219"));
    let s = xpu_smi::parse(
        &body(&dir.join("xpum158-b570-xpu-smi-v2.1-summary-table.txt")),
        "",
    );
    // The name wraps over two rows in the 2.x summary.
    assert_eq!(
        s.devices[0].name.as_deref(),
        Some("Intel(R) Arc(TM) B570 Graphics")
    );
    assert_eq!(s.devices[0].memory_bytes, Some(10172 * 1024 * 1024));
    // -1 (broken telemetry, xpumanager #69) and N/A are null, never a number.
    let m = xpu_smi::parse(
        "| Device ID | Device Information |\n| 0 | Device Name: Intel(R) Data Center GPU Flex 170 |\n|   | PCIe Generation: -1 |\n|   | PCIe Max Link Width: -1 |\n|   | PCI BDF Address: N/A |\n",
        "",
    );
    assert_eq!(
        (m.devices[0].link_gen, m.devices[0].link_width),
        (None, None)
    );
    assert_eq!(m.devices[0].pci_bdf, None);
}

#[test]
fn clinfo_every_corpus_file() {
    // file -> (platforms, devices, no_platform)
    let want: &[(&str, usize, usize, bool)] = &[
        (
            "babelstream99-iris-xe-clinfo-l-truncated-names.txt",
            3,
            3,
            false,
        ),
        (
            "cr657-clinfo-abort-built-ins-igc-mismatch-fish.txt",
            0,
            0,
            false,
        ),
        ("cr714-a750-arch-number-of-platforms-0.txt", 0, 0, true),
        ("cr788-b580-clinfo-l-graphics-0xe20b.txt", 1, 1, false),
        ("cr832-nvidia-plus-uhd750-clinfo-l.txt", 2, 2, false),
        ("itex56-arc-clinfo-extensions-line-wrapped.txt", 0, 0, false),
        (
            "openvino20012-win-a750-clinfo-tail-null-platform.txt",
            0,
            0,
            false,
        ),
    ];
    let files = corpus("clinfo", &want.iter().map(|w| w.0).collect::<Vec<_>>());
    for ((file, text), (_, np, nd, none)) in files.iter().zip(want) {
        let c = clinfo::parse(text, "");
        assert_eq!(c.platforms.len(), *np, "{file}: {:#?}", c.platforms);
        assert_eq!(
            c.platforms.iter().map(|p| p.devices.len()).sum::<usize>(),
            *nd,
            "{file}"
        );
        assert_eq!(c.no_platform, *none, "{file}");
        mangle(text, |t| clinfo::parse(t, ""));
    }
    let dir = root().join("fixtures/outputs/clinfo");
    let c = clinfo::parse(
        &body(&dir.join("cr788-b580-clinfo-l-graphics-0xe20b.txt")),
        "",
    );
    assert_eq!(c.platforms[0].name, "Intel(R) OpenCL Graphics");
    assert_eq!(c.platforms[0].devices[0].name, "Intel(R) Graphics [0xe20b]");
    // A name cut short in the paste stays as printed.
    let c = clinfo::parse(
        &body(&dir.join("babelstream99-iris-xe-clinfo-l-truncated-names.txt")),
        "",
    );
    assert_eq!(
        c.platforms[2].devices[0].name,
        "Intel(R) Iris(R) Xe Graphic"
    );
    // `clinfo -l` with no platform prints nothing.
    assert!(clinfo::parse("", "").no_platform);
}

#[test]
fn sycl_ls_verbose_every_corpus_file() {
    // file -> (platforms, devices, GPU devices with a PCI id, complete, selector lines)
    let want: &[(&str, usize, usize, usize, bool, usize)] = &[
        (
            "llvm13999-verbose-max1550-uuid-subdevices-example.txt",
            1,
            1,
            0,
            false,
            0,
        ),
        (
            "llvm19305-verbose-cpu-fragment-gha-link-artifact.txt",
            2,
            2,
            0,
            false,
            0,
        ),
        ("llvm22555-verbose-b580-fragment.txt", 2, 2, 1, false, 0),
        (
            "llvm8433-verbose-max1550-pi-trace-unified-runtime.txt",
            1,
            1,
            0,
            false,
            0,
        ),
        (
            "oracle-2025.0.4-pocl-intel-cpu-baseline.txt",
            1,
            1,
            0,
            false,
            0,
        ),
        (
            "oracle-2026.1.2-pocl-intel-cpu-baseline.txt",
            2,
            2,
            0,
            true,
            7,
        ),
        (
            "oracle-2026.2.0-pocl-intel-cpu-baseline.txt",
            2,
            2,
            0,
            true,
            7,
        ),
    ];
    let files = corpus(
        "sycl-ls-verbose",
        &want.iter().map(|w| w.0).collect::<Vec<_>>(),
    );
    for ((file, text), (_, np, nd, ids, complete, sel)) in files.iter().zip(want) {
        let v = sycl_ls_verbose::parse(text, "");
        assert_eq!(v.platforms.len(), *np, "{file}: {:#?}", v.platforms);
        assert_eq!(sycl_ls_verbose::device_count(&v), *nd, "{file}");
        assert_eq!(
            v.platforms
                .iter()
                .flat_map(|p| &p.devices)
                .filter(|d| d.device_id.is_some() && d.aspects.iter().any(|a| a == "gpu"))
                .count(),
            *ids,
            "{file}"
        );
        assert_eq!(v.complete, *complete, "{file}");
        assert_eq!(v.selectors.len(), *sel, "{file}");
        // The concise head is sycl_ls's; no device line leaks into messages.
        assert!(
            v.messages.iter().all(|m| !m.starts_with('[')),
            "{file}: {:?}",
            v.messages
        );
        mangle(text, |t| sycl_ls_verbose::parse(t, ""));
    }
}

/// Issue 15, item 3: the check reads the `sycl-ls` facts from the head of
/// `sycl-ls --verbose`. For every release the oracle ran upstream sycl-ls
/// against (2025.0.4, 2026.1.2, 2026.2.0; 2024.2.1 wheels ship no headers
/// to build it), the head gives the same devices -- backend, type, index,
/// platform, name, version, driver -- and format generation as the plain
/// run of the same runtime; 2025.0.4 aborts inside the sections, after a
/// complete head. Without its head (sycl-ls before 2023 printed no concise
/// list in verbose mode) the output is not taken as a listing.
#[test]
fn the_verbose_head_of_each_release_is_its_concise_listing() {
    for rel in ["2025.0.4", "2026.1.2", "2026.2.0"] {
        let file = format!("oracle-{rel}-pocl-intel-cpu-baseline.txt");
        let plain = sycl_ls::parse(
            &body(&root().join("fixtures/outputs/sycl-ls").join(&file)),
            "",
        );
        let text = body(&root().join("fixtures/outputs/sycl-ls-verbose").join(&file));
        let v = sycl_ls_verbose::parse(&text, "");
        let head = sycl_ls_verbose::concise_head(&text).unwrap();
        assert!(sycl_ls::head_lists_every_device(head, &v), "{rel}");
        let from_head = sycl_ls::parse(head, "");
        assert_eq!(plain.devices.len(), 2, "{rel}");
        assert_eq!(from_head.devices, plain.devices, "{rel}");
        assert_eq!(from_head.generation, plain.generation, "{rel}");
        // The sections name the same devices, in the same order.
        let names: Vec<&str> = v
            .platforms
            .iter()
            .flat_map(|p| &p.devices)
            .map(|d| d.name.as_str())
            .collect();
        assert!(
            plain.devices.iter().zip(&names).all(|(c, n)| c.name == *n),
            "{rel}: {names:?}"
        );
        let sections = &text[head.len()..];
        let v = sycl_ls_verbose::parse(sections, "");
        let head = sycl_ls_verbose::concise_head(sections).unwrap_or_default();
        assert!(head.trim().is_empty(), "{rel}");
        assert!(!sycl_ls::head_lists_every_device(head, &v), "{rel}");
    }
}

#[test]
fn sycl_ls_verbose_fields_on_real_outputs() {
    let dir = root().join("fixtures/outputs/sycl-ls-verbose");
    let v = sycl_ls_verbose::parse(&body(&dir.join("llvm22555-verbose-b580-fragment.txt")), "");
    let b580 = &v.platforms[0].devices[0];
    assert_eq!(b580.device_id.as_deref(), Some("0xe20b")); // DeviceID 57867
    assert_eq!(
        b580.uuid.as_deref(),
        Some("86800be2-0000-0000-0600-000000000000")
    );
    assert_eq!(b580.architecture.as_deref(), Some("intel_gpu_bmg_g21"));
    assert_eq!((b580.sub_devices, b580.sub_sub_devices), (Some(0), Some(0)));
    assert_eq!(b580.sub_group_sizes, vec![16, 32]);
    let v = sycl_ls_verbose::parse(
        &body(&dir.join("llvm13999-verbose-max1550-uuid-subdevices-example.txt")),
        "",
    );
    let max = &v.platforms[0].devices[0];
    assert_eq!((max.sub_devices, max.sub_sub_devices), (Some(2), Some(8)));
    assert_eq!(max.uuid.as_deref(), Some("1341282141147000580000000"));
    assert_eq!(v.platforms[0].backend.as_deref(), Some("level_zero"));
    // The GitHub Actions link inside the CPU's DeviceID is removed, not parsed as junk.
    let v = sycl_ls_verbose::parse(
        &body(&dir.join("llvm19305-verbose-cpu-fragment-gha-link-artifact.txt")),
        "",
    );
    assert_eq!(
        v.platforms[1].devices[0].device_id.as_deref(),
        Some("0x90672")
    );
    let v = sycl_ls_verbose::parse(
        &body(&dir.join("oracle-2026.2.0-pocl-intel-cpu-baseline.txt")),
        "",
    );
    let d = &v.selectors["default"];
    assert_eq!(d.kind.as_deref(), Some("cpu"));
    assert_eq!(d.platform, "Portable Computing Language");
    assert!(
        v.selectors["gpu"]
            .error
            .as_deref()
            .unwrap()
            .starts_with("No device of requested type")
    );
    assert_eq!(v.platforms[1].devices[0].index, Some(1));
    // Aborted inside the first device's aspects (UR_RESULT_ERROR_INVALID_VALUE on stderr).
    let v = sycl_ls_verbose::parse(
        &body(&dir.join("oracle-2025.0.4-pocl-intel-cpu-baseline.txt")),
        "SYCL Exception encountered: Native API failed. Native API returns: 4 (UR_RESULT_ERROR_INVALID_VALUE)\n",
    );
    assert!(!v.complete);
    assert_eq!(v.declared_platforms, Some(2));
    assert!(
        v.messages
            .iter()
            .any(|m| m.contains("UR_RESULT_ERROR_INVALID_VALUE"))
    );
}

#[test]
fn python_deep_error_texts_from_the_corpus() {
    let dir = root().join("fixtures/outputs/python-deep");
    let last = |f: &str| {
        body(&dir.join(f))
            .lines()
            .last()
            .unwrap()
            .replace("**", "")
            .trim()
            .to_string()
    };
    for (file, kind) in [
        (
            "oneapisamples1596-max-ipex-undefined-symbol-abi-mismatch.txt",
            "abi-mismatch",
        ),
        ("ipex820-oneccl-import-error.txt", "oneccl-missing"),
        ("lcm71-not-linked-xpu-traceback.txt", "not-linked-xpu"),
        ("ipexllm9768-torch-no-attribute-xpu.txt", "other"),
    ] {
        assert_eq!(python_deep::classify(&last(file)), kind, "{file}");
    }
}
