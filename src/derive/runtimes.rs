//! The Intel GPUs on the PCI bus set against what the runtimes list
//! (sycl-ls, sycl-ls --verbose, clinfo, xpu-smi), for the cross-check rules
//! in rules/intel_runtime.toml. Pure: reads the probed [`Rig`], writes
//! `rig.intel_runtime`.
//!
//! Matching a listed device to a bus GPU, best first:
//! - `device-id`: `sycl-ls --verbose` prints each device's PCI device id
//!   (`DeviceID : 57867` = 0xe20b, intel/llvm PR #13999 era and later);
//! - `name`: a generic `Intel(R) Graphics [0xe20b]` carries its id, a marketing
//!   name matches the catalog name (`Intel(R) Arc(TM) A770 Graphics` = `Intel Arc A770`);
//! - `count`: discrete Level Zero GPUs against discrete Intel GPUs on the bus.
//!
//! The PCI address is not printed by sycl-ls (the `ext_intel_pci_address`
//! aspect only says it could be asked for), so when two cards share an id the
//! one that is missing cannot be named; all candidates are listed.

use std::collections::BTreeMap;

use crate::derive::catalog;
use crate::diagnose::vercmp;
use crate::rig::{CpuRuntime, GenericName, Gpu, IcdRegistration, Rig, UnlistedGpu};

/// `Intel(R) Arc(TM) A770 Graphics` and `Intel Arc A770` -> `arc a770`.
fn model(name: &str) -> String {
    let cleaned = name
        .replace("(R)", " ")
        .replace("(TM)", " ")
        .replace("(r)", " ")
        .replace("(tm)", " ");
    cleaned
        .split_whitespace()
        .filter(|w| !w.eq_ignore_ascii_case("intel") && !w.eq_ignore_ascii_case("graphics"))
        .map(|w| w.to_ascii_lowercase())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The PCI id inside a generic runtime name: `Intel(R) Graphics [0xe20b]` -> `0xe20b`.
pub fn generic_id(name: &str) -> Option<String> {
    let rest = name.split("[0x").nth(1)?;
    let hex = rest.split(']').next()?;
    let n = u32::from_str_radix(hex, 16).ok()?;
    (n <= 0xffff && name.contains("Graphics [0x")).then(|| format!("0x{n:04x}"))
}

/// `2024.18.6.0.02_160000` -> `2024.18`.
fn cpu_release(driver: &str) -> Option<String> {
    let mut parts = driver.split('.');
    let year = parts.next()?;
    let minor = parts.next()?;
    (year.len() == 4 && year.bytes().all(|b| b.is_ascii_digit()) && !minor.is_empty())
        .then(|| format!("{year}.{minor}"))
}

pub fn derive(rig: &mut Rig) {
    let bus: Vec<&Gpu> = rig
        .gpus
        .iter()
        .filter(|g| {
            g.vendor == "intel" && g.compute && g.discrete == Some(true) && g.driver.is_some()
        })
        .collect();
    let mut out = std::mem::take(&mut rig.intel_runtime);
    out.discrete_on_bus = bus.len() as u32;

    // --- bus GPUs the Level Zero runtime does not list
    let mut groups: BTreeMap<&str, Vec<&Gpu>> = BTreeMap::new();
    for g in &bus {
        groups.entry(g.device_id.as_str()).or_default().push(g);
    }
    out.unlisted.clear();
    out.level_zero_listed.clear();
    if rig.sycl.listed {
        let l0: Vec<_> = rig
            .sycl
            .devices
            .iter()
            .filter(|d| d.backend == "level_zero" && d.kind == "gpu")
            .collect();
        let discrete: Vec<_> = l0.iter().filter(|d| d.integrated != Some(true)).collect();
        out.level_zero_gpus = Some(l0.len() as u32);
        out.level_zero_discrete = Some(discrete.len() as u32);
        // "Some listed, this one missing": none listed is SYCL-NO-GPU-DEVICE / SYCL-L0-MISSING.
        if !l0.is_empty() && !bus.is_empty() {
            let verbose_ids: Option<Vec<String>> = rig.sycl.verbose.as_ref().and_then(|v| {
                let ids: Option<Vec<String>> = v
                    .platforms
                    .iter()
                    .filter(|p| p.backend.as_deref() == Some("level_zero"))
                    .flat_map(|p| &p.devices)
                    .filter(|d| d.kind.as_deref() == Some("gpu"))
                    .map(|d| d.device_id.clone())
                    .collect();
                ids.filter(|ids| ids.len() == l0.len())
            });
            let by_name: Option<Vec<String>> = discrete
                .iter()
                .map(|d| {
                    generic_id(&d.name).or_else(|| {
                        let m = model(&d.name);
                        bus.iter()
                            .find(|g| g.catalog.as_ref().is_some_and(|c| model(&c.name) == m))
                            .map(|g| g.device_id.clone())
                    })
                })
                .collect();
            let (how, ids) = match (verbose_ids, by_name) {
                (Some(ids), _) => ("device-id", Some(ids)),
                (None, Some(ids)) => ("name", Some(ids)),
                (None, None) => ("count", None),
            };
            out.matched_by = Some(how.to_string());
            let entry = |id: &str, gs: &[&Gpu], listed: usize| UnlistedGpu {
                device_id: id.to_string(),
                name: gs.first().map(|g| g.name.clone()).unwrap_or_default(),
                on_bus: gs.len() as u32,
                listed: listed as u32,
                pci: gs.iter().map(|g| g.pci.clone()).collect(),
                no_render_node: gs
                    .iter()
                    .filter(|g| g.drm_render.is_none())
                    .map(|g| g.pci.clone())
                    .collect(),
                driver: gs.first().and_then(|g| g.driver.clone()),
            };
            let unlisted_before = out.unlisted.len();
            match ids {
                Some(ids) => {
                    for (id, gs) in &groups {
                        let listed = ids.iter().filter(|x| x.eq_ignore_ascii_case(id)).count();
                        if listed < gs.len() {
                            out.unlisted.push(entry(id, gs, listed));
                        }
                    }
                }
                None => {
                    if discrete.len() < bus.len() {
                        let all: Vec<&Gpu> = bus.clone();
                        let mut e = entry("", &all, discrete.len());
                        let mut names: Vec<String> = all.iter().map(|g| g.name.clone()).collect();
                        names.dedup();
                        e.name = names.join(" / ");
                        out.unlisted.push(e);
                    }
                }
            }
            if out.unlisted.len() > unlisted_before {
                out.level_zero_listed = l0
                    .iter()
                    .map(|d| match d.index {
                        Some(i) => format!("level_zero:{i} {}", d.name),
                        None => format!("level_zero:? {}", d.name),
                    })
                    .collect();
            }
        }
    } else {
        out.level_zero_gpus = None;
        out.level_zero_discrete = None;
    }

    // --- generic names: the runtime predates the card
    let mut generic: Vec<GenericName> = Vec::new();
    let mut add = |source: &str, name: &str| {
        let Some(id) = generic_id(name) else { return };
        if generic
            .iter()
            .any(|g| g.source == source && g.device_id == id)
        {
            return;
        }
        let on_bus = rig
            .gpus
            .iter()
            .any(|g| g.vendor == "intel" && g.device_id.eq_ignore_ascii_case(&id));
        generic.push(GenericName {
            source: source.to_string(),
            name: name.to_string(),
            catalog_name: catalog::lookup("0x8086", &id).map(|c| c.name),
            device_id: id,
            on_bus,
        });
    };
    for d in rig.sycl.devices.iter().filter(|d| d.kind == "gpu") {
        add("sycl-ls", &d.name);
    }
    for p in &rig.clinfo.platforms {
        for d in &p.devices {
            add("clinfo", &d.name);
        }
    }
    for d in &rig.xpu_smi.devices {
        if let Some(n) = &d.name {
            add("xpu-smi", n);
        }
    }
    out.generic_names = generic;

    // --- Intel OpenCL CPU runtimes: one per release
    let mut cpu: Vec<CpuRuntime> = Vec::new();
    for d in rig
        .sycl
        .devices
        .iter()
        .filter(|d| d.backend == "opencl" && d.kind == "cpu" && d.platform == "Intel(R) OpenCL")
    {
        let Some(release) = cpu_release(&d.driver) else {
            continue;
        };
        if !cpu.iter().any(|c| c.release == release) {
            cpu.push(CpuRuntime {
                driver: d.driver.clone(),
                release,
                platform: d.platform.clone(),
            });
        }
    }
    out.opencl_cpu_runtimes = cpu;

    // --- where the CPU runtime is registered: ICD files and OCL_ICD_FILENAMES
    let mut regs: Vec<IcdRegistration> = rig
        .clinfo
        .icds
        .iter()
        .filter(|i| i.library.contains("libintelocl"))
        .map(|i| IcdRegistration {
            source: i.path.clone(),
            library: i.library.clone(),
            release: i.release.clone(),
            stale: false,
        })
        .collect();
    if let Some(list) = rig.env.get("OCL_ICD_FILENAMES") {
        for lib in list.split(':').filter(|l| l.contains("libintelocl")) {
            regs.push(IcdRegistration {
                source: "OCL_ICD_FILENAMES".into(),
                library: lib.to_string(),
                release: crate::probe::oneapi::release_in_path(lib),
                stale: false,
            });
        }
    }
    let newest = regs
        .iter()
        .filter_map(|r| r.release.clone())
        .max_by(|a, b| vercmp(a, b));
    if let Some(newest) = newest {
        for r in &mut regs {
            r.stale = r
                .release
                .as_deref()
                .is_some_and(|v| vercmp(v, &newest).is_lt());
        }
    }
    out.cpu_icds = regs;
    rig.intel_runtime = out;

    // Older torch/IPEX do not say which XPU device is integrated; the name does.
    if let Some(deep) = &mut rig.python.deep {
        for d in &mut deep.xpu_devices {
            if d.integrated.is_none() {
                d.integrated = d.name.as_ref().and_then(|n| {
                    crate::derive::integrated(&crate::rig::SyclDevice {
                        kind: "gpu".into(),
                        name: n.clone(),
                        ..Default::default()
                    })
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rig::{SyclDevice, SyclPlatform, SyclVerbose, SyclVerboseDevice};

    fn gpu(pci: &str, id: &str) -> Gpu {
        Gpu {
            pci: pci.into(),
            vendor: "intel".into(),
            vendor_id: "0x8086".into(),
            device_id: id.into(),
            driver: Some("xe".into()),
            discrete: Some(true),
            compute: true,
            drm_render: Some("renderD128".into()),
            catalog: catalog::lookup("0x8086", id),
            name: catalog::lookup("0x8086", id)
                .map(|c| c.name)
                .unwrap_or_default(),
            ..Default::default()
        }
    }

    fn l0(name: &str) -> SyclDevice {
        SyclDevice {
            backend: "level_zero".into(),
            kind: "gpu".into(),
            name: name.into(),
            integrated: crate::derive::integrated(&SyclDevice {
                kind: "gpu".into(),
                name: name.into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn names_reduce_to_models() {
        assert_eq!(model("Intel(R) Arc(TM) A770 Graphics"), "arc a770");
        assert_eq!(model("Intel Arc A770"), "arc a770");
        assert_eq!(
            generic_id("Intel(R) Graphics [0xe20b]").as_deref(),
            Some("0xe20b")
        );
        assert_eq!(
            generic_id("Intel(R) Graphics [0x56c0]").as_deref(),
            Some("0x56c0")
        );
        assert_eq!(generic_id("Something [0xzz]"), None);
        assert_eq!(
            cpu_release("2024.18.6.0.02_160000").as_deref(),
            Some("2024.18")
        );
        assert_eq!(cpu_release("3.1+debian"), None);
    }

    #[test]
    fn one_of_two_cards_missing_by_name() {
        let mut rig = Rig {
            gpus: vec![gpu("0000:03:00.0", "0x56a0"), gpu("0000:0a:00.0", "0x56a0")],
            ..Default::default()
        };
        rig.sycl.listed = true;
        rig.sycl.devices = vec![l0("Intel(R) Arc(TM) A770 Graphics")];
        derive(&mut rig);
        let r = &rig.intel_runtime;
        assert_eq!(r.matched_by.as_deref(), Some("name"));
        assert_eq!(r.unlisted.len(), 1);
        assert_eq!((r.unlisted[0].on_bus, r.unlisted[0].listed), (2, 1));
        assert_eq!(r.unlisted[0].pci.len(), 2);
    }

    #[test]
    fn verbose_device_ids_win_over_names() {
        let mut rig = Rig {
            gpus: vec![gpu("0000:03:00.0", "0x56a0"), gpu("0000:07:00.0", "0xe20b")],
            ..Default::default()
        };
        rig.sycl.listed = true;
        rig.sycl.devices = vec![l0("Intel(R) Arc(TM) A770 Graphics")];
        rig.sycl.verbose = Some(SyclVerbose {
            platforms: vec![SyclPlatform {
                backend: Some("level_zero".into()),
                devices: vec![SyclVerboseDevice {
                    kind: Some("gpu".into()),
                    device_id: Some("0x56a0".into()),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        });
        derive(&mut rig);
        let r = &rig.intel_runtime;
        assert_eq!(r.matched_by.as_deref(), Some("device-id"));
        assert_eq!(r.unlisted.len(), 1);
        assert_eq!(r.unlisted[0].device_id, "0xe20b");
        assert_eq!(r.unlisted[0].pci, vec!["0000:07:00.0".to_string()]);
    }

    #[test]
    fn unknown_names_fall_back_to_counts_and_all_listed_is_quiet() {
        let mut rig = Rig {
            gpus: vec![gpu("0000:03:00.0", "0x56a0"), gpu("0000:0a:00.0", "0x56a0")],
            ..Default::default()
        };
        rig.sycl.listed = true;
        rig.sycl.devices = vec![l0("Some Future GPU"), l0("Some Future GPU")];
        derive(&mut rig);
        assert_eq!(rig.intel_runtime.matched_by.as_deref(), Some("count"));
        assert!(rig.intel_runtime.unlisted.is_empty());
        // No Level Zero GPU at all is another rule's finding.
        rig.sycl.devices.clear();
        derive(&mut rig);
        assert!(rig.intel_runtime.unlisted.is_empty());
        assert_eq!(rig.intel_runtime.level_zero_gpus, Some(0));
    }

    #[test]
    fn stale_cpu_icd_is_the_older_release() {
        let mut rig = Rig::default();
        rig.clinfo.icds = vec![
            crate::rig::IcdFile {
                path: "/etc/OpenCL/vendors/intel64.icd".into(),
                library: "/opt/intel/oneapi/compiler/2023.2.0/linux/lib/x64/libintelocl.so".into(),
                release: Some("2023.2.0".into()),
            },
            crate::rig::IcdFile {
                path: "/etc/OpenCL/vendors/intel.icd".into(),
                library: "/usr/lib/x86_64-linux-gnu/intel-opencl/libigdrcl.so".into(),
                release: None,
            },
        ];
        rig.env.insert(
            "OCL_ICD_FILENAMES".into(),
            "/opt/intel/oneapi/compiler/2024.2/lib/libintelocl.so".into(),
        );
        derive(&mut rig);
        let regs = &rig.intel_runtime.cpu_icds;
        assert_eq!(regs.len(), 2);
        assert!(regs[0].stale);
        assert!(!regs[1].stale);
    }
}
