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
use rigdoctor::probe::sycl_ls;

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
