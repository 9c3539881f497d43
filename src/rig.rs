//! The facts about one machine: what probes found and what derive computed.
//! Facts, not opinions: a rule decides what is wrong; this only says what is.
//!
//! Serialized as `facts` in the JSON output. The names listed under "Stable
//! facts" in design.md (`gpus`, `sycl.devices`, `sycl.visible`,
//! `sycl.selector_error`, `env`, `python.packages`, `nvidia.*`, `amd.*`) are an
//! interface: scripts and tests read them. Everything else may grow.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Rig {
    pub host: Host,
    /// Allowlisted environment variables only (probe::env).
    pub env: BTreeMap<String, String>,
    pub gpus: Vec<Gpu>,
    pub sycl: Sycl,
    pub python: Python,
    pub oneapi: OneApi,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Host {
    pub kernel: Option<String>,
    /// `ID` of os-release, e.g. `ubuntu`.
    pub os_id: Option<String>,
    /// `PRETTY_NAME` of os-release.
    pub os_name: Option<String>,
    pub os_version_id: Option<String>,
    pub cpu_model: Option<String>,
    /// Logical CPUs (threads).
    pub cpus: Option<u32>,
    /// Physical cores (distinct physical id/core id pairs).
    pub cores: Option<u32>,
    pub mem_total_bytes: Option<u64>,
    pub numa_nodes: Option<u32>,
}

/// One PCIe link as seen from one device.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Link {
    pub speed_gts: Option<f64>,
    pub width: Option<u32>,
    pub max_speed_gts: Option<f64>,
    pub max_width: Option<u32>,
}

/// The link that limits the card: after walking past an on-card switch.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct EffectiveLink {
    pub speed_gts: Option<f64>,
    pub width: Option<u32>,
    /// What the card side of that link can do.
    pub max_speed_gts: Option<f64>,
    pub max_width: Option<u32>,
    /// The PCI address whose attributes were judged.
    pub at: String,
    /// Why that device: `device` (the GPU function itself) or `card-upstream-port`
    /// (the upstream port of the card's own PCIe switch).
    pub judged: String,
    /// What the host side (root port or upstream switch port above the card) can do.
    pub host_max_speed_gts: Option<f64>,
    pub host_max_width: Option<u32>,
    /// PCIe generation of `speed_gts` (1 = 2.5 GT/s ... 6 = 64 GT/s).
    pub pcie_gen: Option<u32>,
    pub max_pcie_gen: Option<u32>,
}

/// A PCI bridge on the path from the root port down to a GPU.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct PciPort {
    pub pci: String,
    pub vendor_id: Option<String>,
    pub device_id: Option<String>,
    pub class: Option<String>,
    pub link: Link,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Bar {
    pub index: u32,
    pub size_bytes: u64,
    pub prefetchable: bool,
    pub is_64bit: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Gpu {
    pub pci: String,
    /// `intel`, `nvidia`, `amd`, or `other` (BMC and virtual display adapters).
    pub vendor: String,
    pub vendor_id: String,
    pub device_id: String,
    pub subsystem_vendor_id: Option<String>,
    pub subsystem_device_id: Option<String>,
    pub class: String,
    /// Catalog name, or a generic `vendor device` string.
    pub name: String,
    /// Kernel driver bound, if any.
    pub driver: Option<String>,
    pub discrete: Option<bool>,
    pub vram_bytes: Option<u64>,
    pub numa_node: Option<i64>,
    pub link: Link,
    pub effective_link: Option<EffectiveLink>,
    /// Resizable BAR active: largest memory BAR covers VRAM. None when unknown.
    pub rebar: Option<bool>,
    /// Size of the largest memory BAR (the CPU's window onto VRAM).
    pub largest_bar_bytes: Option<u64>,
    pub bars: Vec<Bar>,
    /// Bridges from the root port (first) down to the GPU's parent (last).
    pub chain: Vec<PciPort>,
    /// `card0`, `renderD128`.
    pub drm_card: Option<String>,
    pub drm_render: Option<String>,
    /// From checks/devices.toml, when the PCI ID is known.
    pub catalog: Option<CatalogEntry>,
    /// True for display adapters that cannot run inference (BMC VGA, virtual GPUs).
    pub compute: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct CatalogEntry {
    pub name: String,
    /// `discrete` or `integrated`.
    pub kind: String,
    pub vram_gb: Option<f64>,
    pub family: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SyclDevice {
    pub backend: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub index: Option<u32>,
    pub platform: String,
    pub name: String,
    pub version: String,
    pub driver: String,
    /// Derived: true for an integrated GPU, false for a discrete one, None otherwise/unknown.
    pub integrated: Option<bool>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct VisibleDevice {
    pub backend: String,
    /// The index an app sees (renumbered after ZE_AFFINITY_MASK).
    pub index: u32,
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub integrated: Option<bool>,
    /// Index of this device in `sycl.devices`.
    pub listed_as: usize,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Sycl {
    /// sycl-ls ran and its output parsed.
    pub listed: bool,
    /// As listed with no selector applied.
    pub devices: Vec<SyclDevice>,
    /// What an app sees after ZE_AFFINITY_MASK and ONEAPI_DEVICE_SELECTOR, in order.
    pub visible: Vec<VisibleDevice>,
    /// The GPU SYCL's default selector picks: the first visible Level Zero GPU,
    /// else the first visible GPU (intel/llvm scores GPUs first and prefers Level Zero).
    pub first_gpu: Option<VisibleDevice>,
    /// The ONEAPI_DEVICE_SELECTOR value, if set.
    pub selector: Option<String>,
    /// The runtime's own words when the device selection fails before any
    /// device is seen (a selector that does not parse, a conflicting filter).
    pub selector_error: Option<String>,
    /// Which variable that error is about (`ONEAPI_DEVICE_SELECTOR`, `SYCL_DEVICE_FILTER`, `SYCL_DEVICE_ALLOWLIST`).
    pub selector_error_variable: Option<String>,
    pub selector_info: Option<SelectorInfo>,
    /// ZE_AFFINITY_MASK as the driver applies it.
    pub mask: Option<MaskFacts>,
    /// SYCL_DEVICE_FILTER is set and this runtime release does not read it.
    pub filter_ignored: bool,
    /// The runtime release the selection was modelled on (`2025.0.4`), if known.
    pub release: Option<String>,
    /// Which behaviour that release has: `before 2025`, `2025.0-2025.1`, `2025.2 and later`.
    pub model: String,
    /// A corrected selector, when one can be proposed.
    pub selector_fix: Option<String>,
    /// A selector that keeps the discrete GPUs on Level Zero (`level_zero:0,1`),
    /// or None when there is none to keep.
    pub suggested_selector: Option<String>,
    /// SYCL_DEVICE_FILTER translated to ONEAPI_DEVICE_SELECTOR syntax.
    pub filter_as_selector: Option<String>,
    /// The output format generation, which dates the runtime: `2021`, `pre-2024.1`,
    /// `2024.1+`, `unified-runtime`, `unified-runtime-v2`, `liboffload`.
    pub generation: Option<String>,
    /// Lines sycl-ls printed that were not device lines (warnings, errors).
    pub messages: Vec<String>,
}

/// What the mask does, as a fact (`facts.sycl.mask`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MaskFacts {
    pub value: String,
    /// `FLAT`, `COMPOSITE` or `COMBINED`.
    pub hierarchy: String,
    /// The hierarchy came from the product default, not ZE_FLAT_DEVICE_HIERARCHY.
    pub hierarchy_default: bool,
    /// Device ordinals (as listed, before renumbering) the mask keeps.
    pub kept: Vec<u32>,
    /// `X.Y` entries ignored because the hierarchy is FLAT or COMBINED.
    pub ignored_tiles: Vec<String>,
    /// Entries naming a device that does not exist.
    pub unknown: Vec<String>,
    /// Entries that are not numbers.
    pub invalid: Vec<String>,
    /// How many GPUs the driver lists without the mask.
    pub gpus: u32,
    /// When the entries look counted from 1 (the largest equals the device
    /// count), the same mask counted from 0.
    pub counted_from_one_fix: Option<String>,
}

/// The parsed ONEAPI_DEVICE_SELECTOR, for rules.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SelectorInfo {
    pub accept_terms: usize,
    pub discard_terms: usize,
    /// Backends named by several accepting terms (`level_zero:0;level_zero:1`).
    pub duplicate_backends: Vec<String>,
    /// A discarding term names a device number (`!opencl:0`).
    pub index_discard: bool,
    /// An accepting Level Zero term names device numbers (`level_zero:1`).
    pub level_zero_indices: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Python {
    pub interpreter: Option<String>,
    pub version: Option<String>,
    /// Normalized distribution name -> version.
    pub packages: BTreeMap<String, String>,
    /// Version pins of the XPU stack (derive/pins.rs).
    pub pins: crate::derive::pins::Pins,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct OneApiRelease {
    /// `2024.0`, `2025.0.4`.
    pub version: String,
    /// `install` (a toolkit tree) or `pip:<distribution>`.
    pub source: String,
    pub path: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct OneApi {
    pub root: Option<String>,
    pub releases: Vec<OneApiRelease>,
    /// The release an app started from this environment most likely loads:
    /// the sourced one (CMPLR_ROOT), else pip runtime wheels, else `latest`.
    pub active: Option<String>,
    /// Year of `active` (2025 for 2025.0.4), for rules.
    pub active_year: Option<u32>,
}

/// The outcome of one probe. `status` is itself a fact rules can read.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProbeReport {
    pub name: String,
    /// `ok`, `missing`, `timeout`, `failed`, `unparsed`, `denied`.
    pub status: String,
    pub duration_ms: u64,
    pub detail: String,
}

impl ProbeReport {
    pub fn new(
        name: &str,
        status: &str,
        duration_ms: u64,
        detail: impl Into<String>,
    ) -> ProbeReport {
        ProbeReport {
            name: name.into(),
            status: status.into(),
            duration_ms,
            detail: detail.into(),
        }
    }
}
