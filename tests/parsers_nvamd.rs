//! The NVIDIA and AMD parsers on every real output they cover
//! (fixtures/outputs/<tool>/, copied from the developer corpus and from
//! thamada/nvidia-smi with their source line): no panic, sensible facts.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly on purpose"
)]

mod common;

use std::path::Path;

use common::*;
use rigdoctor::probe::{amd_smi, nvidia_nvlink, nvidia_smi, nvidia_topo, rocm};

/// A corpus file without its 3-line header (`# source`, `# context`, `# ---`).
fn body(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    match text.split_once("# ---\n") {
        Some((_, b)) => b.to_string(),
        None => text,
    }
}

/// Every file of `fixtures/outputs/<tool>`, and a check that each has an expectation.
fn files(tool: &str, expected: &[&str]) -> Vec<(String, String)> {
    let dir = root().join("fixtures/outputs").join(tool);
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut want: Vec<&str> = expected.to_vec();
    want.sort();
    assert_eq!(names, want, "{tool}: every output has an expectation");
    names
        .into_iter()
        .map(|n| {
            let b = body(&dir.join(&n));
            (n, b)
        })
        .collect()
}

#[test]
fn nvidia_smi_table_every_output() {
    // file -> (GPUs, driver version, CUDA version)
    let want: &[(&str, usize, Option<&str>, Option<&str>)] = &[
        (
            "autodl-2x2080ti-550-container-no-processes.txt",
            2,
            Some("550.90.07"),
            Some("12.4"),
        ),
        // Only the header row: the versions must still be read.
        (
            "bellperson-227-470-header.txt",
            0,
            Some("470.57.02"),
            Some("11.4"),
        ),
        (
            "club3090-441-2x3090-kmd-version-610.txt",
            2,
            Some("610.43.02"),
            Some("13.3"),
        ),
        (
            "dexbotic-41-8xa800-zsh-prompt-partial.txt",
            2,
            Some("535.86.10"),
            Some("12.2"),
        ),
        (
            "h2ogpt-620-win-536-laptop-4060-truncated-name.txt",
            1,
            Some("536.67"),
            Some("12.2"),
        ),
        (
            "localgpt-14-win-531-gtx1080ti-blockquote-prefixed.txt",
            1,
            Some("531.14"),
            Some("12.1"),
        ),
        (
            "ollama-12722-win-573-quadro-rtx3000-broken-separator.txt",
            1,
            Some("573.44"),
            Some("12.8"),
        ),
        (
            "stelline-4x-rtx6000ada-575-truncated-names.txt",
            4,
            Some("575.51.03"),
            Some("12.9"),
        ),
        (
            "thamada-2x4060ti-550-p0-idle.txt",
            2,
            Some("550.54.14"),
            Some("12.4"),
        ),
        (
            "thamada-gls-2x3090-560-idle-no-nvlink.txt",
            2,
            Some("560.35.03"),
            Some("12.6"),
        ),
        (
            "thamada-gls-8x4090-550-idle.txt",
            8,
            Some("550.127.05"),
            Some("12.4"),
        ),
        (
            "theano-6023-mixed-1080-titanx-driver375-no-cuda-version.txt",
            3,
            Some("375.26"),
            None,
        ),
    ];
    let names: Vec<&str> = want.iter().map(|w| w.0).collect();
    for (file, text) in files("nvidia-smi-table", &names) {
        let (_, n, drv, cuda) = want.iter().find(|w| w.0 == file).unwrap();
        let t = nvidia_smi::parse_table(&text);
        assert_eq!(t.gpus.len(), *n, "{file}: {t:#?}");
        assert_eq!(t.driver_version.as_deref(), *drv, "{file}");
        assert_eq!(t.cuda_version.as_deref(), *cuda, "{file}");
        for (i, g) in t.gpus.iter().enumerate() {
            assert_eq!(g.index as usize, i, "{file}");
            assert!(
                g.pci.as_deref().is_some_and(|p| p.len() == 12),
                "{file}: {g:?}"
            );
            assert!(!g.name.is_empty() && !g.name.contains('|'), "{file}: {g:?}");
        }
    }
    // Names are kept as printed, truncation and all.
    let t = nvidia_smi::parse_table(&body(&root().join(
        "fixtures/outputs/nvidia-smi-table/stelline-4x-rtx6000ada-575-truncated-names.txt",
    )));
    assert_eq!(t.gpus[2].name, "NVIDIA RTX 6000 Ada Gene...");
    assert_eq!(t.gpus[2].pci.as_deref(), Some("0000:c1:00.0"));
    assert_eq!(t.gpus[2].memory_total_mib, Some(49140));
}

#[test]
fn nvidia_smi_q_every_output() {
    // file -> (GPU records, (gen current, gen max, width current, width max) of the first)
    type Pcie = (Option<u32>, Option<u32>, Option<u32>, Option<u32>);
    let want: &[(&str, usize, Pcie)] = &[
        (
            "gnome-applet-356-q-d-memory-utilization-driver375.txt",
            1,
            (None, None, None, None),
        ),
        (
            "kubeflow-68-grep-A8-clocks-throttle-2018.txt",
            1,
            (None, None, None, None),
        ),
        (
            "l4rz-c4130-v100-sxm2-power-brake-excerpt.txt",
            1,
            (None, None, None, None),
        ),
        (
            "mangohud-636-q-d-performance-495-idle-active-p0.txt",
            1,
            (None, None, None, None),
        ),
        (
            "microway-tesla-m2090-driver270-2011.txt",
            1,
            (None, None, None, None),
        ),
        (
            "microway-v100-pcie-driver410-throttle-reasons.txt",
            1,
            (Some(3), Some(3), Some(16), Some(16)),
        ),
        (
            "rtx2070-second-gpu-gen1-x4-of-x16-sw-power-cap-idle.txt",
            1,
            (Some(1), Some(3), Some(4), Some(16)),
        ),
        (
            "thamada-gls-2x3090-560-idle-gen1-x16.txt",
            2,
            (Some(1), Some(4), Some(16), Some(16)),
        ),
        (
            "thamada-gls-2x4060ti-550-gpu0-x4-of-x8.txt",
            2,
            (Some(4), Some(4), Some(4), Some(8)),
        ),
        (
            "thamada-gls-8x4090-550-idle-gen1.txt",
            8,
            (Some(1), Some(4), Some(16), Some(16)),
        ),
    ];
    let names: Vec<&str> = want.iter().map(|w| w.0).collect();
    for (file, text) in files("nvidia-smi-q", &names) {
        let (_, n, pcie) = want.iter().find(|w| w.0 == file).unwrap();
        let q = nvidia_smi::parse_query(&text);
        assert_eq!(q.gpus.len(), *n, "{file}: {q:#?}");
        let p = &q.gpus[0].pcie;
        assert_eq!(
            (p.gen_current, p.gen_max, p.width_current, p.width_max),
            *pcie,
            "{file}"
        );
    }
    let dir = root().join("fixtures/outputs/nvidia-smi-q");
    // Old section name, power brake asserted.
    let q = nvidia_smi::parse_query(&body(
        &dir.join("l4rz-c4130-v100-sxm2-power-brake-excerpt.txt"),
    ));
    assert_eq!(
        q.gpus[0].reasons,
        vec!["HW Slowdown", "HW Power Brake Slowdown"]
    );
    // 2011: `GPU 0:2:0`, `Mb`, an 8-hex-digit device id without 0x.
    let q = nvidia_smi::parse_query(&body(&dir.join("microway-tesla-m2090-driver270-2011.txt")));
    assert_eq!(q.gpus[0].pci.as_deref(), Some("0000:02:00.0"));
    assert_eq!(q.gpus[0].device_id.as_deref(), Some("0x1091"));
    assert_eq!(q.gpus[0].vram_bytes, Some(5375 << 20));
    let q = nvidia_smi::parse_query(&body(&dir.join("thamada-gls-2x3090-560-idle-gen1-x16.txt")));
    assert_eq!(q.driver_version.as_deref(), Some("560.35.03"));
    assert_eq!(
        q.gpus[1].uuid.as_deref(),
        Some("GPU-74e6e433-5193-b31f-b8b5-7a54c8b4623e")
    );
    assert_eq!(q.gpus[1].bar1_bytes, Some(256 << 20));
    assert_eq!(q.gpus[1].reasons, vec!["Idle"]);
}

#[test]
fn nvidia_smi_topo_every_output() {
    // file -> (GPUs, GPU pairs read, kind of GPU0-GPU1)
    let want: &[(&str, usize, usize, &str)] = &[
        (
            "aikitoria-ogkm-12-2x5070-phb-header-on-command-line.txt",
            2,
            1,
            "PHB",
        ),
        ("autodl-2x2080ti-pix-numa1-container.txt", 2, 1, "PIX"),
        ("club3090-1229-2x5090-phb-tabs.txt", 2, 1, "PHB"),
        ("club3090-178-2x3090-sys-numa-affinity-na.txt", 2, 1, "SYS"),
        ("cuda-samples-284-2xl4-sys-numa0-numa2.txt", 2, 1, "SYS"),
        ("deepep-137-8xh20-nv18-5nic-two-numa.txt", 8, 28, "NV18"),
        // `topo -mp`: NVLink hidden; the stored excerpt ends in the GPU4 row.
        ("deepep-60-8gpu-topo-mp-pci-only-14nic.txt", 8, 25, "NODE"),
        ("microway-dgx1-v100-nv1-nv2-mlx5-rows.txt", 8, 28, "NV1"),
        ("nccl-1608-3xh100nvl-nv12-pair-plus-sys.txt", 3, 3, "NV12"),
        ("nccl-557-2x3090-nv3-partial-bridge.txt", 2, 1, "NV3"),
        ("nccl-667-4gpu-pxb-pix-sys-no-legend.txt", 4, 6, "PXB"),
        ("nccl-707-a100-nv12-mlx5-0-to-17-header.txt", 8, 25, "NV12"),
        ("prism-4xa100-sxm4-nv12-rocep-nic-tabs.txt", 4, 6, "NV12"),
        ("stelline-4x-rtx6000ada-2numa-4nic.txt", 4, 6, "NODE"),
        ("tensorflow-gdr-readme-4xk40-soc-mlx4.txt", 4, 6, "PHB"),
        ("vllm-19607-2gpu-nv12-8nic-empty-affinity.txt", 2, 1, "NV12"),
        // Whitespace lost in the paste: only GPU0's row survives whole.
        (
            "vllm-8691-8gpu-nv18-10nic-collect-env-mangled.txt",
            8,
            7,
            "NV18",
        ),
    ];
    let names: Vec<&str> = want.iter().map(|w| w.0).collect();
    for (file, text) in files("nvidia-smi-topo", &names) {
        let (_, n, pairs, kind) = want.iter().find(|w| w.0 == file).unwrap();
        let t = nvidia_topo::parse_topo(&text);
        assert_eq!(t.matrix.gpu_count(), *n, "{file}");
        let p = t.pairs();
        assert_eq!(p.len(), *pairs, "{file}: {p:?}");
        assert_eq!(p[0].2, *kind, "{file}");
        // A pair is one code; the diagonal never leaks in.
        assert!(p.iter().all(|(a, b, k)| a < b && k != "X"), "{file}");
    }
    let dir = root().join("fixtures/outputs/nvidia-smi-topo");
    let t = nvidia_topo::parse_topo(&body(
        &dir.join("club3090-178-2x3090-sys-numa-affinity-na.txt"),
    ));
    assert_eq!(t.affinity[&0].cpu_affinity.as_deref(), Some("0-7,16-23"));
    assert_eq!(t.affinity[&0].numa_affinity, None, "N/A is unknown");
    assert_eq!(t.affinity[&1].numa_affinity.as_deref(), Some("1"));
    let t = nvidia_topo::parse_topo(&body(
        &dir.join("nccl-1608-3xh100nvl-nv12-pair-plus-sys.txt"),
    ));
    assert_eq!(t.matrix.cell(1, 2), Some("SYS"));
    assert_eq!(t.affinity[&2].cpu_affinity.as_deref(), Some("16-31,48-63"));
    let t = nvidia_topo::parse_topo(&body(
        &dir.join("vllm-19607-2gpu-nv12-8nic-empty-affinity.txt"),
    ));
    assert_eq!(t.affinity[&0].cpu_affinity, None, "empty cells in a VM");
}

#[test]
fn nvidia_smi_p2p_every_output() {
    // file -> (GPUs, code of GPU0-GPU1)
    let want: &[(&str, usize, &str)] = &[
        ("aikitoria-ogkm-13-5gpu-p2p-p-all-ok.txt", 5, "OK"),
        ("autodl-2x2080ti-p2p-p-ns-on-pix.txt", 2, "NS"),
        ("club3090-1125-2x3090-node-p2p-ns-indented.txt", 2, "NS"),
        ("club3090-1130-2x5090-x8-rw-gns-spaces.txt", 2, "GNS"),
        ("club3090-922-2x3090-patched-p2p-rw-ok-phb.txt", 2, "OK"),
        ("ml-engineering-2xl4-p2p-r-cns.txt", 2, "CNS"),
        ("ml-engineering-8xh100-p2p-r-all-ok.txt", 8, "OK"),
    ];
    let names: Vec<&str> = want.iter().map(|w| w.0).collect();
    for (file, text) in files("nvidia-smi-p2p", &names) {
        let (_, n, code) = want.iter().find(|w| w.0 == file).unwrap();
        let m = nvidia_topo::parse_p2p(&text);
        assert_eq!(m.gpu_count(), *n, "{file}");
        let p = nvidia_topo::p2p_pairs(&m);
        assert_eq!(p.len(), n * (n - 1) / 2, "{file}");
        assert!(p.iter().all(|x| x.2 == *code), "{file}: {p:?}");
    }
}

#[test]
fn nvidia_smi_nvlink_every_output() {
    // file -> (GPUs, (active, inactive, all inactive) of the first)
    let want: &[(&str, usize, (u32, u32, bool))] = &[
        (
            "azhpc-diagnostics-73-v100-inactive-links.txt",
            1,
            (4, 2, false),
        ),
        ("club3090-441-2x3090-nvlink-s-14gbps.txt", 2, (4, 0, false)),
        (
            "dcgm-exporter-576-dcgmi-nvlink-s-8xh100.txt",
            8,
            (18, 0, false),
        ),
        (
            "gpud-1085-b200-all-links-inactive-nvml-message.txt",
            1,
            (0, 0, true),
        ),
        // The normal H100 NVL bridge pattern; the excerpt ends at GPU 1's header.
        (
            "nccl-1608-h100nvl-nvlink-s-inactive-pattern.txt",
            2,
            (12, 6, false),
        ),
        (
            "prism-4xa100-nvlink-s-12-links-tab-indent.txt",
            4,
            (12, 0, false),
        ),
        ("vllm-8303-2x3090-wsl-nvlink-status.txt", 2, (4, 0, false)),
    ];
    let names: Vec<&str> = want.iter().map(|w| w.0).collect();
    for (file, text) in files("nvidia-smi-nvlink", &names) {
        let (_, n, first) = want.iter().find(|w| w.0 == file).unwrap();
        let m = nvidia_nvlink::parse(&text);
        assert_eq!(m.len(), *n, "{file}: {m:?}");
        let s = &m.values().next().unwrap().status;
        assert_eq!((s.active, s.inactive, s.all_inactive), *first, "{file}");
    }
    let m = nvidia_nvlink::parse(&body(
        &root().join("fixtures/outputs/nvidia-smi-nvlink/club3090-441-2x3090-nvlink-s-14gbps.txt"),
    ));
    assert_eq!(m[&1].status.speed_gbs, Some(14.062));
    assert_eq!(
        m[&1].uuid.as_deref(),
        Some("GPU-fef3f583-99bd-ac7f-c761-eddb679067e0")
    );
}

#[test]
fn rocminfo_every_output() {
    // file -> (GPU agents, CPU agents, gfx of the first GPU agent)
    let want: &[(&str, usize, u32, Option<&str>)] = &[
        (
            "gpufetch-69-7700s-agent2-gfx1102.txt",
            1,
            0,
            Some("gfx1102"),
        ),
        (
            "gpufetch-72-7900gre-agent2-gfx1100-padded.txt",
            1,
            0,
            Some("gfx1100"),
        ),
        (
            "legacy-rocm-build-1756-rx6700s-reported-as-pro-w6600.txt",
            1,
            0,
            Some("gfx1032"),
        ),
        // Excerpts that end inside the CPU agent: no GPU agent to report.
        (
            "ollama-11420-7900xtx-arch-header-agent1-cpu.txt",
            0,
            1,
            None,
        ),
        (
            "ollama-14927-rocminfo-grep-name-gfx1201.txt",
            1,
            0,
            Some("gfx1201"),
        ),
        (
            "ollama-3158-2x7900xtx-agent3-gfx1100.txt",
            1,
            0,
            Some("gfx1100"),
        ),
        (
            "ollama-9999-890m-gfx1150-header-rock-module-cpu-agent.txt",
            0,
            0,
            None,
        ),
        (
            "rocm-hip-2187-rx5700-gfx1010-agent2.txt",
            1,
            0,
            Some("gfx1010"),
        ),
        ("thamada-gls-4xmi300x-full.txt", 4, 2, Some("gfx942")),
    ];
    let names: Vec<&str> = want.iter().map(|w| w.0).collect();
    for (file, text) in files("rocminfo", &names) {
        let (_, n, cpus, gfx) = want.iter().find(|w| w.0 == file).unwrap();
        let i = rocm::parse_rocminfo(&text);
        assert_eq!(i.agents.len(), *n, "{file}: {i:#?}");
        assert_eq!(i.cpu_agents, *cpus, "{file}");
        assert_eq!(
            i.agents.first().and_then(|a| a.gfx.as_deref()),
            *gfx,
            "{file}"
        );
        for a in &i.agents {
            assert!(
                a.gfx.as_deref().is_some_and(|g| !g.contains("amdgcn")),
                "{file}: the ISA block's Name leaked: {a:?}"
            );
        }
    }
    let dir = root().join("fixtures/outputs/rocminfo");
    let i = rocm::parse_rocminfo(&body(
        &dir.join("legacy-rocm-build-1756-rx6700s-reported-as-pro-w6600.txt"),
    ));
    // The marketing name is wrong on this laptop; the chip ID and gfx are right.
    assert_eq!(
        i.agents[0].marketing_name.as_deref(),
        Some("AMD Radeon PRO W6600")
    );
    assert_eq!(i.agents[0].chip_id.as_deref(), Some("0x73e3"));
    assert_eq!(i.agents[0].pci.as_deref(), Some("0000:03:00.0"));
    let i = rocm::parse_rocminfo(&body(
        &dir.join("ollama-9999-890m-gfx1150-header-rock-module-cpu-agent.txt"),
    ));
    assert_eq!(i.kfd_version.as_deref(), Some("6.10.5"));
    assert_eq!(i.runtime_version.as_deref(), Some("1.14"));
    let i = rocm::parse_rocminfo(&body(&dir.join("thamada-gls-4xmi300x-full.txt")));
    assert_eq!(i.agents[3].agent, Some(6));
    assert_eq!(i.agents[3].index, 3);
}

#[test]
fn rocm_smi_every_output() {
    // file -> devices listed
    let want: &[(&str, usize)] = &[
        // --showtopo matrices name GPUs but no device rows.
        ("hpc-docs-4gpu-xgmi-showtopo-old-gpu-space-format.txt", 0),
        ("legacy-rocm-build-4740-8gpu-showtoponuma.txt", 8),
        ("ms-swift-8gpu-showtopo-xgmi-lowpower-warning.txt", 8),
        ("ms-swift-8gpu-use-and-vram-bytes.txt", 8),
        ("roc-smi-100-7900xtx-plus-raphael-igpu-default.txt", 2),
        ("roc-smi-100-7900xtx-plus-raphael-igpu-showhw.txt", 2),
        ("rocm-1503-2xmi100-link-type-collapsed-whitespace.txt", 0),
        ("rocm-4750-mi300x-qpx-4-partitions-full-vram-each.txt", 4),
        ("rocm-smi-lib-108-4gpu-showtopo-pcie-hops3.txt", 0),
        ("sglang-env-rocm-single-gpu-amd-topology-kvm.txt", 0),
        ("thamada-4xmi300x-concise-info-partitions.txt", 4),
    ];
    let names: Vec<&str> = want.iter().map(|w| w.0).collect();
    for (file, text) in files("rocm-smi", &names) {
        let (_, n) = want.iter().find(|w| w.0 == file).unwrap();
        let d = rocm::parse_rocm_smi(&text);
        assert_eq!(d.len(), *n, "{file}: {d:#?}");
    }
    let dir = root().join("fixtures/outputs/rocm-smi");
    let d = rocm::parse_rocm_smi(&body(
        &dir.join("roc-smi-100-7900xtx-plus-raphael-igpu-showhw.txt"),
    ));
    assert_eq!(d[0].device_id.as_deref(), Some("0x164e"));
    assert_eq!(d[1].pci.as_deref(), Some("0000:03:00.0"));
    let d = rocm::parse_rocm_smi(&body(
        &dir.join("rocm-4750-mi300x-qpx-4-partitions-full-vram-each.txt"),
    ));
    // Every partition reports the whole card's VRAM (ROCm/ROCm #4750): kept as printed.
    assert!(d.iter().all(|x| x.vram_bytes == Some(206141652992)));
    assert_eq!(d[3].device_id.as_deref(), Some("0x74a1"));
    let d = rocm::parse_rocm_smi(&body(
        &dir.join("thamada-4xmi300x-concise-info-partitions.txt"),
    ));
    assert_eq!((d[0].gpu_pct, d[0].vram_pct), (Some(0), Some(0)));
}

#[test]
fn amd_smi_every_output() {
    // file -> (GPUs from static, pairs from topology)
    let want: &[(&str, usize, usize)] = &[
        // The tool refuses without a listed GPU: nothing read, and the probe says unparsed.
        ("amdsmi-172-builtin-amdgpu-not-found-errors.txt", 0, 0),
        ("amdsmi-changelog-610-topology-text-8gpu-xgmi.txt", 0, 28),
        (
            "amdsmi-changelog-611-topology-json-links-2gpu-pcie.txt",
            0,
            1,
        ),
        ("amdsmi-changelog-611-topology-json-old-2gpu-pcie.txt", 0, 1),
        // Truncated inside the JSON: unreadable, not guessed at.
        ("ajean-39-rx7800xt-static-json-gpu-data-truncated.txt", 0, 0),
        ("gpunotes-rx6600-metric-json-x8-trimmed.txt", 0, 0),
        ("gpunotes-rx6600-static-json-no-gfx.txt", 1, 0),
        // One GPU: only its SELF entry, no pair.
        ("gpunotes-rx6600-topology-json-single-gpu.txt", 0, 0),
        ("oci-hpc-oke-8xmi300x-amd-smi-version-and-list.txt", 0, 0),
        ("rocm-systems-2987-mi350x-static-text-gpu0.txt", 1, 0),
    ];
    let names: Vec<&str> = want.iter().map(|w| w.0).collect();
    for (file, text) in files("amd-smi", &names) {
        let (_, gpus, pairs) = want.iter().find(|w| w.0 == file).unwrap();
        let g = amd_smi::parse_static(&text);
        assert_eq!(g.len(), *gpus, "{file}: {g:#?}");
        let l = amd_smi::parse_topology(&text, "t");
        assert_eq!(l.len(), *pairs, "{file}: {l:#?}");
    }
    let dir = root().join("fixtures/outputs/amd-smi");
    let read = |f: &str| body(&dir.join(f));
    let g = amd_smi::parse_static(&read("gpunotes-rx6600-static-json-no-gfx.txt"));
    assert_eq!(g[0].pci.as_deref(), Some("0000:0b:00.0"));
    assert_eq!(g[0].device_id.as_deref(), Some("0x73ff"));
    assert_eq!(
        g[0].gfx, None,
        "this release prints no target_graphics_version"
    );
    assert_eq!(g[0].vram_bytes, Some(8176 << 20));
    assert_eq!(
        (g[0].pcie_max_width, g[0].pcie_max_speed_gts),
        (Some(16), Some(16.0))
    );
    assert_eq!(g[0].driver_version.as_deref(), Some("7.0.0-3-pve"));
    assert_eq!(g[0].slot_type.as_deref(), Some("CEM"));
    assert_eq!(g[0].numa_node, Some(0));
    let m = amd_smi::parse_metric(&read("gpunotes-rx6600-metric-json-x8-trimmed.txt"));
    assert_eq!(
        (m[0].pcie_width, m[0].pcie_speed_gts),
        (Some(8), Some(16.0))
    );
    assert_eq!(m[0].vram_used_bytes, Some(202 << 20));
    let g = amd_smi::parse_static(&read("rocm-systems-2987-mi350x-static-text-gpu0.txt"));
    assert_eq!(g[0].gfx.as_deref(), Some("gfx950"));
    assert_eq!(g[0].slot_type.as_deref(), Some("OAM"));
    assert_eq!(g[0].pcie_max_speed_gts, Some(32.0));
    let text = read("oci-hpc-oke-8xmi300x-amd-smi-version-and-list.txt");
    let l = amd_smi::parse_list(&text);
    assert_eq!(l.len(), 8);
    assert_eq!(l[7].1.as_deref(), Some("0000:da:00.0"));
    assert_eq!(
        l[0].2.as_deref(),
        Some("d4ff74a1-0000-1000-80b1-dbb1e6a69543")
    );
    assert_eq!(amd_smi::parse_version(&text).1.as_deref(), Some("6.1.2"));
    let v = amd_smi::parse_version(&read("amdsmi-172-builtin-amdgpu-not-found-errors.txt"));
    assert_eq!(v, (Some("26.1.0+b5522cc8".into()), None));
    let t = amd_smi::parse_topology(
        &read("amdsmi-changelog-610-topology-text-8gpu-xgmi.txt"),
        "t",
    );
    assert!(
        t.iter().all(|p| p.kind.as_deref() == Some("XGMI")
            && p.hops == Some(1)
            && p.weight == Some(15))
    );
    assert_eq!(t[0].a_pci.as_deref(), Some("0000:0c:00.0"));
    assert_eq!(t[27].b_pci.as_deref(), Some("0000:df:00.0"));
    let t = amd_smi::parse_topology(
        &read("amdsmi-changelog-611-topology-json-old-2gpu-pcie.txt"),
        "t",
    );
    assert_eq!(
        (t[0].kind.as_deref(), t[0].hops, t[0].weight),
        (Some("PCIE"), Some(2), Some(40))
    );
    let t = amd_smi::parse_topology(
        &read("amdsmi-changelog-611-topology-json-links-2gpu-pcie.txt"),
        "t",
    );
    assert_eq!((t[0].kind.as_deref(), t[0].hops), (Some("PCIE"), None));
    assert_eq!(t[0].b_pci.as_deref(), Some("0000:44:00.0"));
}

#[test]
fn rocm_smi_showtopo_pairs() {
    // file -> (pairs, link type of every pair, hops of every pair)
    let want: &[(&str, usize, Option<&str>, Option<u32>)] = &[
        (
            "hpc-docs-4gpu-xgmi-showtopo-old-gpu-space-format.txt",
            6,
            Some("XGMI"),
            Some(1),
        ),
        (
            "ms-swift-8gpu-showtopo-xgmi-lowpower-warning.txt",
            28,
            Some("XGMI"),
            Some(1),
        ),
        // Whitespace collapsed by the paste; only the link-type matrix.
        (
            "rocm-1503-2xmi100-link-type-collapsed-whitespace.txt",
            1,
            Some("PCIE"),
            None,
        ),
        (
            "rocm-smi-lib-108-4gpu-showtopo-pcie-hops3.txt",
            6,
            Some("PCIE"),
            Some(3),
        ),
        // One GPU: a 1x1 matrix, no pair.
        (
            "sglang-env-rocm-single-gpu-amd-topology-kvm.txt",
            0,
            None,
            None,
        ),
        // Device tables, not topology.
        (
            "thamada-4xmi300x-concise-info-partitions.txt",
            0,
            None,
            None,
        ),
        (
            "legacy-rocm-build-4740-8gpu-showtoponuma.txt",
            0,
            None,
            None,
        ),
    ];
    let dir = root().join("fixtures/outputs/rocm-smi");
    for (file, n, kind, hops) in want {
        let t = amd_smi::parse_topology(&body(&dir.join(file)), "rocm-smi-showtopo");
        assert_eq!(t.len(), *n, "{file}: {t:#?}");
        assert!(
            t.iter()
                .all(|p| p.kind.as_deref() == *kind && p.hops == *hops),
            "{file}: {t:#?}"
        );
    }
}

#[test]
fn every_parser_survives_mangled_input() {
    for tool in [
        "nvidia-smi-table",
        "nvidia-smi-q",
        "nvidia-smi-topo",
        "nvidia-smi-p2p",
        "nvidia-smi-nvlink",
        "rocminfo",
        "rocm-smi",
        "amd-smi",
    ] {
        let dir = root().join("fixtures/outputs").join(tool);
        for e in std::fs::read_dir(&dir).unwrap() {
            let text = body(&e.unwrap().path());
            let all = |s: &str| {
                let _ = nvidia_smi::parse_table(s);
                let _ = nvidia_smi::parse_query(s);
                let _ = nvidia_topo::parse_topo(s).pairs();
                let _ = nvidia_topo::p2p_pairs(&nvidia_topo::parse_p2p(s));
                let _ = nvidia_nvlink::parse(s);
                let _ = rocm::parse_rocminfo(s);
                let _ = rocm::parse_rocm_smi(s);
                let _ = amd_smi::parse_static(s);
                let _ = amd_smi::parse_list(s);
                let _ = amd_smi::parse_metric(s);
                let _ = amd_smi::parse_version(s);
                let _ = amd_smi::parse_topology(s, "t");
            };
            // Cut at ~50 points (every parser on every tool's output).
            for cut in (0..text.len()).step_by((text.len() / 50).max(7)) {
                if text.is_char_boundary(cut) {
                    all(&text[..cut]);
                }
            }
            // CRLF line ends read the same.
            let crlf = text.replace('\n', "\r\n");
            assert_eq!(
                nvidia_smi::parse_table(&crlf),
                nvidia_smi::parse_table(&text),
                "{tool}"
            );
            assert_eq!(
                nvidia_topo::parse_topo(&crlf).pairs(),
                nvidia_topo::parse_topo(&text).pairs(),
                "{tool}"
            );
            assert_eq!(
                rocm::parse_rocminfo(&crlf).agents.len(),
                rocm::parse_rocminfo(&text).agents.len(),
                "{tool}"
            );
            assert_eq!(
                amd_smi::parse_static(&crlf),
                amd_smi::parse_static(&text),
                "{tool}"
            );
            assert_eq!(
                amd_smi::parse_topology(&crlf, "t"),
                amd_smi::parse_topology(&text, "t"),
                "{tool}"
            );
        }
    }
}
