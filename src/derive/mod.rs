//! Computed facts: what is awkward in a rule language. Catalog joins, the
//! PCIe bridge walk, Resizable BAR, which SYCL devices an app sees, and the
//! oneAPI release in use. Pure functions of the probed [`Rig`].

pub mod access;
pub mod amd;
pub mod catalog;
pub mod container;
pub mod intel;
pub mod link;
pub mod nvidia;
pub mod ollama;
pub mod pci_names;
pub mod pins;
pub mod runtimes;
pub mod selector;
pub mod vulkan;

use crate::probe::oneapi::{release_in_path, year_of};
use crate::rig::{OneApiRelease, Rig, SelectorInfo, SyclDevice, VramSpread};

const GIB: f64 = (1u64 << 30) as f64;

/// The pip wheels that carry the oneAPI runtime (domain.md §5.3).
const RUNTIME_WHEELS: &[&str] = &["intel-sycl-rt", "intel-cmplr-lib-rt", "dpcpp-cpp-rt"];

pub fn derive(rig: &mut Rig) {
    for g in &mut rig.gpus {
        g.catalog = catalog::lookup(&g.vendor_id, &g.device_id);
        if let Some(c) = &g.catalog {
            g.name = c.name.clone();
        } else if let Some(n) = pci_names::lookup(
            &g.vendor_id,
            &g.device_id,
            g.subsystem_vendor_id.as_deref(),
            g.subsystem_device_id.as_deref(),
        ) {
            g.name = n;
        } else if g.vendor != "other" {
            g.name = format!("{} GPU {}", vendor_label(&g.vendor), g.device_id);
        } else {
            g.name = format!("display adapter {}:{}", g.vendor_id, g.device_id);
        }
        g.discrete = match (&g.catalog, g.vendor.as_str()) {
            (Some(c), _) => Some(c.kind == "discrete"),
            // Intel puts its integrated GPU at 00:02.0 on every platform.
            (None, "intel") => Some(!g.pci.ends_with(":00:02.0")),
            (None, "nvidia") => Some(true),
            _ => None,
        };
        if g.vram_bytes.is_none() && g.discrete == Some(true) {
            g.vram_bytes = g
                .catalog
                .as_ref()
                .and_then(|c| c.vram_gb)
                .map(|gb| (gb * GIB) as u64);
        }
        g.effective_link = link::effective_link(g);
        g.rebar = link::rebar(g);
        g.largest_bar_bytes = g.bars.iter().map(|b| b.size_bytes).max();
    }
    nvidia::derive(rig);
    amd::derive(rig);
    intel::derive(rig);
    vulkan::derive(rig);
    access::derive(rig);
    container::derive(rig);
    ollama::derive(rig);
    rig.vram = vram_spread(&rig.gpus);
    for d in &mut rig.sycl.devices {
        d.integrated = integrated(d);
    }
    rig.sycl.gpu_devices = rig.sycl.devices.iter().filter(|d| d.kind == "gpu").count() as u32;
    derive_oneapi(rig);
    rig.python.pins = pins::derive(&rig.python, &rig.oneapi);
    derive_sycl(rig);
    runtimes::derive(rig);
    unreported(rig);
    nvidia::lost_on_bus(rig);
}

/// Mark each GPU whose driver is bound but whose vendor tool, which listed
/// GPUs, leaves it out (a card the driver gave up on, issue 8 item 5).
/// NVIDIA joins on the PCI address nvidia-smi prints; AMD on rocminfo's
/// BDFID, and only when every agent has one (a grep paste may not).
fn unreported(rig: &mut Rig) {
    let nv: std::collections::BTreeSet<&str> =
        rig.nvidia.gpus.iter().map(|g| g.pci.as_str()).collect();
    let amd_pci: Option<std::collections::BTreeSet<&str>> = (!rig.amd.agents.is_empty())
        .then(|| rig.amd.agents.iter().map(|a| a.pci.as_deref()).collect())
        .flatten();
    for g in &mut rig.gpus {
        if !g.compute || g.discrete == Some(false) {
            continue;
        }
        g.unreported_by = match (g.vendor.as_str(), g.driver.as_deref()) {
            ("nvidia", Some("nvidia")) if rig.nvidia.listed && !nv.contains(g.pci.as_str()) => {
                Some("nvidia-smi".into())
            }
            ("amd", Some("amdgpu"))
                if amd_pci
                    .as_ref()
                    .is_some_and(|s| !s.contains(g.pci.as_str())) =>
            {
                Some("rocminfo".into())
            }
            _ => None,
        };
    }
}

/// The VRAM range of the discrete compute GPUs (after nvidia::derive, which
/// fills NVIDIA VRAM in from nvidia-smi).
fn vram_spread(gpus: &[crate::rig::Gpu]) -> VramSpread {
    let sizes: Vec<u64> = gpus
        .iter()
        .filter(|g| g.compute && g.discrete == Some(true))
        .filter_map(|g| g.vram_bytes)
        .collect();
    VramSpread {
        gpus: sizes.len() as u32,
        min_bytes: sizes.iter().copied().min(),
        max_bytes: sizes.iter().copied().max(),
    }
}

/// Which SYCL devices an app started from this environment sees.
fn derive_sycl(rig: &mut Rig) {
    let env = |k: &str| rig.env.get(k).map(String::as_str);
    let inputs = selector::Inputs {
        selector: env("ONEAPI_DEVICE_SELECTOR"),
        filter: env("SYCL_DEVICE_FILTER"),
        allowlist: env("SYCL_DEVICE_ALLOWLIST"),
        mask: env("ZE_AFFINITY_MASK"),
        hierarchy: env("ZE_FLAT_DEVICE_HIERARCHY"),
    };
    let model =
        selector::Model::from_release(rig.oneapi.active.as_deref(), rig.sycl.generation.as_deref());
    let outcome = selector::evaluate(&rig.sycl.devices, inputs, model);
    let suggested = selector::suggest(&rig.sycl.devices, inputs);
    let s = &mut rig.sycl;
    s.model = model.label().to_string();
    s.selector = inputs.selector.map(String::from);
    s.visible = outcome.visible;
    s.first_gpu = s
        .visible
        .iter()
        .find(|v| v.kind == "gpu" && v.backend == "level_zero")
        .or_else(|| s.visible.iter().find(|v| v.kind == "gpu"))
        .cloned();
    s.selector_error = outcome.failure.as_ref().map(|f| f.error.message.clone());
    s.selector_error_variable = outcome.failure.as_ref().map(|f| f.variable.to_string());
    s.selector_fix = outcome.failure.and_then(|f| f.error.fix);
    s.selector_info = outcome.selector.map(|sel| SelectorInfo {
        accept_terms: sel.accept.len(),
        discard_terms: sel.discard.len(),
        duplicate_backends: sel.duplicate_backends(),
        index_discard: sel.has_index_discard(),
        level_zero_indices: sel.accept.iter().any(|t| {
            t.backend == "level_zero"
                && t.devices
                    .iter()
                    .any(|d| matches!(d, selector::DevSpec::Index(_)))
        }),
    });
    s.mask = outcome.mask;
    s.filter_ignored = outcome.filter_ignored;
    s.suggested_selector = suggested;
    s.filter_as_selector = inputs.filter.and_then(selector::translate_filter);
}

fn vendor_label(v: &str) -> &str {
    match v {
        "intel" => "Intel",
        "nvidia" => "NVIDIA",
        "amd" => "AMD",
        _ => "unknown",
    }
}

/// Is a SYCL GPU device integrated? From its name: marketing names of
/// integrated parts, or the PCI ID in a generic `Intel(R) Graphics [0x7d55]`.
pub fn integrated(d: &SyclDevice) -> Option<bool> {
    if d.kind != "gpu" {
        return None;
    }
    let n = d.name.as_str();
    if let Some(id) = n.split("[0x").nth(1).and_then(|r| r.split(']').next()) {
        if let Some(c) = catalog::lookup("0x8086", &format!("0x{id}")) {
            return Some(c.kind == "integrated");
        }
    }
    if n.contains("UHD Graphics")
        || n.contains("Iris")
        || n.contains("HD Graphics")
        || n.ends_with("Arc(TM) Graphics")
    {
        return Some(true);
    }
    if n.contains("Arc(TM) A")
        || n.contains("Arc(TM) B")
        || n.contains("Arc(TM) Pro")
        || n.contains("Data Center GPU")
        || n.contains("GeForce")
        || n.contains("NVIDIA")
        || n.contains("Radeon RX")
    {
        return Some(false);
    }
    None
}

/// Releases from the runtime wheels, and the one an app most likely loads:
/// a sourced setvars.sh (CMPLR_ROOT) first, then the wheels (PyTorch `+xpu`
/// brings its own runtime), then the install tree's `latest`.
fn derive_oneapi(rig: &mut Rig) {
    let mut pip_version = None;
    for w in RUNTIME_WHEELS {
        if let Some(v) = rig.python.packages.get(*w) {
            rig.oneapi.releases.push(OneApiRelease {
                version: v.clone(),
                source: format!("pip:{w}"),
                path: None,
            });
            pip_version.get_or_insert_with(|| v.clone());
        }
    }
    let sourced = rig.env.get("CMPLR_ROOT").and_then(|p| release_in_path(p));
    rig.oneapi.active = sourced.or(pip_version).or(rig.oneapi.active.take());
    rig.oneapi.active_year = rig.oneapi.active.as_deref().and_then(year_of);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpu_dev(name: &str) -> SyclDevice {
        SyclDevice {
            kind: "gpu".into(),
            name: name.into(),
            ..Default::default()
        }
    }

    #[test]
    fn integrated_from_names() {
        assert_eq!(
            integrated(&gpu_dev("Intel(R) UHD Graphics 770")),
            Some(true)
        );
        assert_eq!(
            integrated(&gpu_dev("Intel(R) Arc(TM) Graphics")),
            Some(true)
        );
        assert_eq!(
            integrated(&gpu_dev("Intel(R) Graphics [0x7d55]")),
            Some(true)
        );
        assert_eq!(
            integrated(&gpu_dev("Intel(R) Graphics [0xe20b]")),
            Some(false)
        );
        assert_eq!(
            integrated(&gpu_dev("Intel(R) Arc(TM) A770 Graphics")),
            Some(false)
        );
        assert_eq!(
            integrated(&gpu_dev("Intel(R) Arc(TM) Pro B70 Graphics")),
            Some(false)
        );
        assert_eq!(
            integrated(&gpu_dev("Intel(R) Data Center GPU Max 1550")),
            Some(false)
        );
        assert_eq!(integrated(&gpu_dev("Something Else")), None);
        let cpu = SyclDevice {
            kind: "cpu".into(),
            name: "Intel(R) UHD Graphics".into(),
            ..Default::default()
        };
        assert_eq!(integrated(&cpu), None);
    }
}
