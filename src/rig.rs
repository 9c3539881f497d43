//! The facts about one machine: what probes found and what derive computed.
//! Facts, not opinions: a rule decides what is wrong; this only says what is.
//!
//! Serialized as `facts` in the JSON output. The names listed under "Stable
//! facts" in design.md (`gpus`, `sycl.devices`, `sycl.visible`,
//! `sycl.selector_error`, `env`, `python.packages`, `nvidia.*`, `amd.*`) are an
//! interface: scripts and tests read them. Everything else may grow.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct Rig {
    pub host: Host,
    /// Allowlisted environment variables only (probe::env).
    pub env: BTreeMap<String, String>,
    pub gpus: Vec<Gpu>,
    pub sycl: Sycl,
    pub python: Python,
    pub oneapi: OneApi,
    /// `xpu-smi discovery` (probe::xpu_smi).
    pub xpu_smi: XpuSmi,
    /// `clinfo -l` and the OpenCL ICD registrations (probe::clinfo).
    pub clinfo: Clinfo,
    /// Derived: the Intel GPUs on the bus against what the runtimes list (derive::runtimes).
    pub intel_runtime: IntelRuntime,
    /// NVIDIA: nvidia-smi (table, `-q`, `topo -m`, `topo -p2p r`, `nvlink -s`).
    pub nvidia: Nvidia,
    /// AMD: rocminfo, rocm-smi, the installed ROCm release.
    pub amd: Amd,
    /// Vulkan: `vulkaninfo --summary` (probe::vulkan), joined to the bus (derive::vulkan).
    pub vulkan: Vulkan,
    /// Can this user open the device nodes the runtimes open (probe::devnodes,
    /// derive::access)?
    pub access: DeviceAccess,
    /// Is rigdoctor running inside a container, and what was not passed into
    /// it (probe::container, derive::container)?
    pub container: Container,
    /// ollama's systemd service and the environment it runs with
    /// (probe::ollama_service, derive::ollama); null when there is no unit.
    pub ollama_service: Option<OllamaService>,
    /// Derived: the VRAM of the discrete compute GPUs on the bus, for rules
    /// that compare cards without comparing every pair.
    pub vram: VramSpread,
}

/// ollama's service: its unit, drop-ins, the allowlisted variables they
/// set, and those of the running `ollama serve` when this user may read it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct OllamaService {
    /// The unit file read, e.g. `/etc/systemd/system/ollama.service`.
    pub unit: String,
    /// Its drop-ins, in the order systemd applies them.
    pub dropins: Vec<String>,
    /// `EnvironmentFile=` paths (named, never read).
    pub environment_files: Vec<String>,
    /// Drop-ins this user may not read.
    pub unreadable: Vec<String>,
    /// The allowlisted variables the unit and drop-ins set.
    pub env: BTreeMap<String, String>,
    /// The running `ollama serve`, if any.
    pub process_pid: Option<u32>,
    /// Its allowlisted variables; null when not running or not readable.
    pub process_env: Option<BTreeMap<String, String>>,
    /// Derived: variables ollama's server reads that this shell sets and
    /// the service runs without, or with another value.
    #[serde(default)]
    pub shell_only: Vec<ShellOnlyVar>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct ShellOnlyVar {
    pub name: String,
    /// The value in this shell.
    pub shell: String,
    /// The service's value, null when it has none.
    pub service: Option<String>,
    /// `process` (the running server's environment) or `unit`.
    pub seen_in: String,
}

/// The smallest and largest VRAM among the discrete compute GPUs whose VRAM
/// is known (derive).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct VramSpread {
    /// Discrete compute GPUs with a known VRAM size.
    pub gpus: u32,
    pub min_bytes: Option<u64>,
    pub max_bytes: Option<u64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
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
    /// `MemAvailable` of /proc/meminfo: for `fit`'s host-memory check, not
    /// part of check's facts.
    #[serde(skip)]
    #[schemars(skip)]
    pub mem_available_bytes: Option<u64>,
    pub numa_nodes: Option<u32>,
}

/// One PCIe link as seen from one device.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct Link {
    pub speed_gts: Option<f64>,
    pub width: Option<u32>,
    pub max_speed_gts: Option<f64>,
    pub max_width: Option<u32>,
}

/// The link that limits the card: after walking past an on-card switch.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
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
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct PciPort {
    pub pci: String,
    pub vendor_id: Option<String>,
    pub device_id: Option<String>,
    pub class: Option<String>,
    pub link: Link,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct Bar {
    pub index: u32,
    pub size_bytes: u64,
    pub prefetchable: bool,
    pub is_64bit: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct Gpu {
    pub pci: String,
    /// `intel`, `nvidia`, `amd`, or `other` (BMC and virtual display adapters).
    pub vendor: String,
    pub vendor_id: String,
    pub device_id: String,
    pub subsystem_vendor_id: Option<String>,
    pub subsystem_device_id: Option<String>,
    pub class: String,
    /// The catalog's name (checks/devices.toml), else the PCI ID Repository's
    /// (pci.ids, embedded at build time), else a generic `vendor device` string.
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
    /// amdgpu `gpu_busy_percent` at the moment of the probe.
    pub busy_percent: Option<u32>,
    /// amdgpu `mem_info_vram_used`.
    pub vram_used_bytes: Option<u64>,
    /// Derived: the vendor's tool (`nvidia-smi`, `rocminfo`) read fine and
    /// lists other GPUs, but not this one although its driver is bound.
    /// Absent from the JSON when not the case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unreported_by: Option<String>,
    /// Derived (Intel, checks/intel-kmd.toml): which kernel driver this
    /// generation runs compute on, and whether the bound one is it.
    pub kmd: Option<Kmd>,
}

/// An Intel GPU's kernel driver (KMD) facts.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct Kmd {
    /// `Alchemist (DG2: Arc A-series, Arc Pro A, Flex)`.
    pub platform: String,
    /// Drivers compute-runtime supports on it, the supported one first.
    pub compute: Vec<String>,
    /// The bound driver is one of them; None without a driver.
    pub on_compute_driver: Option<bool>,
    /// The first kernel whose `compute[0]` binds the card by itself.
    pub default_since: Option<String>,
    /// The running kernel is at least `default_since`.
    pub kernel_default: Option<bool>,
    /// The first kernel whose xe knows the card behind xe.force_probe.
    pub xe_force_probe: Option<String>,
    /// The running kernel is at least `xe_force_probe`.
    pub kernel_force_probe: Option<bool>,
    /// The PCI id as force_probe takes it (`56a0`).
    pub probe_id: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct CatalogEntry {
    pub name: String,
    /// `discrete` or `integrated`.
    pub kind: String,
    pub vram_gb: Option<f64>,
    pub family: Option<String>,
    /// NVIDIA: `bridge` (an NVLink bridge pairs two cards), `nvswitch` (SXM
    /// boards on an NVSwitch baseboard), `mesh` (SXM boards wired directly,
    /// DGX-1), `none` (no NVLink connector).
    pub nvlink: Option<String>,
    /// NVIDIA: links a healthy bridge or baseboard gives each pair (`NV4` on a 3090).
    pub nvlink_links: Option<u32>,
    /// NVIDIA: peer-to-peer over PCIe enabled by the stock driver (false on GeForce).
    pub p2p: Option<bool>,
    /// AMD: the LLVM target (`gfx1100`).
    pub gfx: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
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

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
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

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct Sycl {
    /// sycl-ls ran and its output parsed.
    pub listed: bool,
    /// As listed with no selector applied.
    pub devices: Vec<SyclDevice>,
    /// Derived: how many of `devices` are GPUs (any backend).
    pub gpu_devices: u32,
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
    /// Which behaviour the runtime release (`oneapi.active`) has: `before 2025`, `2025.0-2025.1`, `2025.2 and later`.
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
    /// `sycl-ls --verbose`, when it ran and printed something (null otherwise).
    pub verbose: Option<SyclVerbose>,
}

/// What `sycl-ls --verbose` says beyond the concise listing (probe::sycl_ls_verbose).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct SyclVerbose {
    /// `Platforms: N` as printed; None in a fragment that lacks the line.
    pub declared_platforms: Option<u32>,
    pub platforms: Vec<SyclPlatform>,
    /// What the runtime's own selectors picked, by selector: `default`, `gpu`,
    /// `cpu`, `accelerator`, `host`, `custom_gpu`, `custom_cpu`, `custom_acc`.
    pub selectors: BTreeMap<String, SelectorChoice>,
    /// Every declared platform and device was printed, and the selector lines follow.
    pub complete: bool,
    /// Lines that are neither fields nor noise (warnings, exceptions).
    pub messages: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct SyclPlatform {
    /// The `k` of `Platform [#k]:` (1-based); None for a fragment without the line.
    pub number: Option<u32>,
    /// `level_zero`, `opencl`, ...: from the concise listing of the same run, else from the name.
    pub backend: Option<String>,
    pub name: String,
    pub vendor: String,
    pub version: String,
    /// `Devices : N` as printed.
    pub declared_devices: Option<u32>,
    pub devices: Vec<SyclVerboseDevice>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct SyclVerboseDevice {
    /// The per-backend index (`Device [#n]:`, or the concise line of the same device).
    pub index: Option<u32>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub name: String,
    pub vendor: String,
    pub version: String,
    pub driver: String,
    pub uuid: Option<String>,
    /// PCI device id as sysfs writes it (`0xe20b`); sycl-ls prints it in decimal (57867).
    pub device_id: Option<String>,
    pub sub_devices: Option<u32>,
    pub sub_sub_devices: Option<u32>,
    pub aspects: Vec<String>,
    pub sub_group_sizes: Vec<u32>,
    /// `intel_gpu_bmg_g21`, `x86_64`, ...
    pub architecture: Option<String>,
}

/// One `xxx_selector() : ...` line: the device picked, or the runtime's error.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct SelectorChoice {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub platform: String,
    pub name: String,
    pub version: String,
    pub driver: String,
    /// The runtime's words (cut at 50 characters by sycl-ls) when nothing was picked.
    pub error: Option<String>,
}

/// `xpu-smi discovery` (probe::xpu_smi). Missing values (empty, `N/A`, `-1`) are null.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct XpuSmi {
    /// xpu-smi ran and its output was read.
    pub listed: bool,
    pub devices: Vec<XpuSmiDevice>,
    /// xpu-smi said `No device discovered`.
    pub no_device: bool,
    /// `table`, `borderless` (2.x), `json` (`-j`), `csv` (`--dump`), `summary` (2.x bare `xpu-smi`).
    pub layout: Option<String>,
    pub messages: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct XpuSmiDevice {
    /// xpu-smi's own device id (0, 1, ...).
    pub id: Option<u32>,
    pub name: Option<String>,
    /// `GPU`, `Discrete GPU`, `Integrated GPU`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub vendor: Option<String>,
    /// `0000:03:00.0`.
    pub pci_bdf: Option<String>,
    /// As sysfs writes it: `0x56a0`, `0x020a`.
    pub pci_device_id: Option<String>,
    pub uuid: Option<String>,
    pub driver_version: Option<String>,
    pub memory_bytes: Option<u64>,
    pub link_gen: Option<u32>,
    pub link_width: Option<u32>,
    pub tiles: Option<u32>,
    pub drm_device: Option<String>,
    /// `normal`, `survivability`, ... (2.x `Device State`).
    pub state: Option<String>,
}

/// `clinfo -l` (probe::clinfo) and the ICD files under `/etc/OpenCL/vendors`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct Clinfo {
    /// clinfo ran and its output was read.
    pub listed: bool,
    pub platforms: Vec<ClPlatform>,
    /// clinfo found no OpenCL platform at all (`Number of platforms 0`, or `-l` printing nothing).
    pub no_platform: bool,
    /// The OpenCL ICD registrations: which library each `*.icd` file loads.
    pub icds: Vec<IcdFile>,
    pub messages: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct ClPlatform {
    pub index: Option<u32>,
    pub name: String,
    pub devices: Vec<ClDevice>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct ClDevice {
    pub index: Option<u32>,
    pub name: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct IcdFile {
    /// `/etc/OpenCL/vendors/intel64.icd`.
    pub path: String,
    /// The library it names (its first line).
    pub library: String,
    /// The oneAPI release in the library path (`2024.2`), when there is one.
    pub release: Option<String>,
}

/// Derived (derive::runtimes): the Intel GPUs on the PCI bus set against what
/// the runtimes list.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct IntelRuntime {
    /// Intel discrete GPUs with a kernel driver bound.
    pub discrete_on_bus: u32,
    /// Level Zero GPUs sycl-ls lists (all, and those not known to be integrated);
    /// None when sycl-ls did not list.
    pub level_zero_gpus: Option<u32>,
    pub level_zero_discrete: Option<u32>,
    /// How the listing was matched to the bus: `device-id` (sycl-ls --verbose
    /// DeviceID) or `count`; None when there was nothing to match.
    pub matched_by: Option<String>,
    /// Bus GPUs (by PCI device id) the Level Zero runtime lists fewer of than there are.
    pub unlisted: Vec<UnlistedGpu>,
    /// Only next to `unlisted`: the Level Zero GPUs sycl-ls lists, as
    /// `level_zero:<index> <name>` (`?` for an index it did not print).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub level_zero_listed: Vec<String>,
    /// Devices a runtime names only generically (`Intel(R) Graphics [0xe20b]`):
    /// the runtime predates the card.
    pub generic_names: Vec<GenericName>,
    /// Distinct Intel OpenCL CPU runtimes the SYCL runtime lists, one per release line.
    pub opencl_cpu_runtimes: Vec<CpuRuntime>,
    /// Where an Intel OpenCL CPU runtime (`libintelocl.so`) is registered: ICD
    /// files and `OCL_ICD_FILENAMES` entries; `stale` for an older release than another.
    pub cpu_icds: Vec<IcdRegistration>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct IcdRegistration {
    /// The `.icd` file, or `OCL_ICD_FILENAMES`.
    pub source: String,
    pub library: String,
    pub release: Option<String>,
    pub stale: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct UnlistedGpu {
    pub device_id: String,
    pub name: String,
    /// How many GPUs with this id are on the bus, and how many Level Zero lists.
    pub on_bus: u32,
    pub listed: u32,
    /// The bus addresses of the GPUs with this id (which of them is missing is
    /// not known when several share the id).
    pub pci: Vec<String>,
    /// Those of them without a DRM render node (the driver did not finish probing).
    pub no_render_node: Vec<String>,
    pub driver: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct GenericName {
    /// `sycl-ls`, `sycl-ls-verbose`, `clinfo`, `xpu-smi`.
    pub source: String,
    pub name: String,
    /// The id inside the name, as sysfs writes it (`0xe20b`).
    pub device_id: String,
    /// A GPU with this id is on the bus.
    pub on_bus: bool,
    /// Catalog name of that id, if known.
    pub catalog_name: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct CpuRuntime {
    /// The driver version sycl-ls prints (`2024.18.6.0.02_160000`).
    pub driver: String,
    /// Its release line: `2024.18` (year and minor of the CPU runtime).
    pub release: String,
    pub platform: String,
}

/// What the mask does, as a fact (`facts.sycl.mask`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
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
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
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

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct Python {
    pub interpreter: Option<String>,
    pub version: Option<String>,
    /// The `python3` found on PATH is a shell-script shim that starts a
    /// shell and a version manager before the interpreter. Null when not.
    pub shim: Option<PythonShim>,
    /// Normalized distribution name -> version.
    pub packages: BTreeMap<String, String>,
    /// Version pins of the XPU stack (derive/pins.rs).
    pub pins: crate::derive::pins::Pins,
    /// `--deep` only: what importing torch (and IPEX) said (probe::python_deep);
    /// null when the import check did not run.
    pub deep: Option<PythonDeep>,
    /// Derived (checks/vllm.toml): the torch release the installed vLLM was built against.
    pub vllm_torch: Option<String>,
}

/// A script in front of the interpreter (probe::python, issue 15: pyenv's
/// shim made the Python probe 193 ms against 58 ms for the interpreter).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct PythonShim {
    /// `pyenv`, `asdf`, `conda`, or `script` for another wrapper.
    pub kind: String,
    /// The script PATH finds as `python3` (or the `--python` given).
    pub path: String,
}

/// The import check of `check --deep`. Every field is null when its step did not run or failed.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct PythonDeep {
    /// The script reached its end (an import that kills the interpreter stops it early).
    pub completed: bool,
    pub python_version: Option<String>,
    pub torch_version: Option<String>,
    /// `torch.version.xpu`: the oneAPI compiler the wheel was built with.
    pub torch_xpu_build: Option<String>,
    /// `torch.version.cuda`.
    pub cuda_build: Option<String>,
    pub cuda_available: Option<bool>,
    pub cuda_device_count: Option<u32>,
    /// intel_extension_for_pytorch is importable (found on sys.path).
    pub ipex_installed: Option<bool>,
    pub ipex_version: Option<String>,
    pub xpu_available: Option<bool>,
    pub xpu_device_count: Option<u32>,
    pub xpu_devices: Vec<TorchXpuDevice>,
    /// Every step that raised, with the exception text.
    pub errors: Vec<DeepError>,
    /// The most telling error: `abi-mismatch`, `oneccl-missing`, `not-linked-xpu`,
    /// `ipex-torch-mismatch`, `no-module`, `other`.
    pub error_kind: Option<String>,
    pub error_step: Option<String>,
    pub error_text: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct TorchXpuDevice {
    pub index: u32,
    pub name: Option<String>,
    pub platform: Option<String>,
    pub total_memory_bytes: Option<u64>,
    pub driver_version: Option<String>,
    /// As sysfs writes it (`0xe20b`), when torch reports it.
    pub device_id: Option<String>,
    pub integrated: Option<bool>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct DeepError {
    /// `torch`, `ipex`, `xpu`, `xpu_tensor`, `cuda`, `interpreter`.
    pub step: String,
    pub text: String,
    pub kind: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct OneApiRelease {
    /// `2024.0`, `2025.0.4`.
    pub version: String,
    /// `install` (a toolkit tree) or `pip:<distribution>`.
    pub source: String,
    pub path: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct OneApi {
    pub root: Option<String>,
    pub releases: Vec<OneApiRelease>,
    /// The release an app started from this environment most likely loads:
    /// the sourced one (CMPLR_ROOT), else pip runtime wheels, else `latest`.
    pub active: Option<String>,
    /// Year of `active` (2025 for 2025.0.4), for rules.
    pub active_year: Option<u32>,
}

/// NVIDIA GPUs as nvidia-smi reports them (design.md "Stable facts":
/// `nvidia.gpus[]` and `nvidia.links[]` are an interface).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct Nvidia {
    /// nvidia-smi answered and its table parsed.
    pub listed: bool,
    /// Kernel driver version (`Driver Version`, `KMD Version` on 610+).
    pub driver_version: Option<String>,
    /// The newest CUDA the driver supports (`CUDA Version`).
    pub cuda_version: Option<String>,
    pub gpus: Vec<NvidiaGpu>,
    /// Each GPU pair once (`a < b`), from `topo -m` and `topo -p2p r`.
    pub links: Vec<NvidiaLink>,
    /// `topo -m` answered and named at least one GPU pair.
    pub topology_listed: bool,
    /// `topo -p2p r` answered and named at least one GPU pair.
    pub p2p_listed: bool,
    /// `nvlink -s` answered (an empty answer means no NVLink at all).
    pub nvlink_listed: bool,
    /// Derived: what CUDA applications see after CUDA_VISIBLE_DEVICES.
    pub visible: CudaVisible,
    /// Derived: the GPUs are not all the same model.
    pub mixed_models: bool,
    /// Derived: torch's CUDA build (`12.4` for `+cu124`), if torch is a CUDA wheel.
    pub torch_cuda: Option<String>,
    /// Derived: the PyTorch wheel index (`cu121`) that suits the driver's CUDA version.
    pub driver_torch_index: Option<String>,
    /// What nvidia-smi said instead of (or next to) its table, by class;
    /// absent when it said nothing of the kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<NvidiaFailure>,
    /// PCI addresses nvidia-smi could not get a handle for ("Unknown
    /// Error", "GPU is lost"); absent when none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lost: Vec<String>,
    /// Derived, only when a GPU is lost or in a fault state: the listed GPUs
    /// with no fault mark that are not lost, as `GPU <index> (<name> at <pci>)`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sound: Vec<String>,
    /// Derived: the nvidia-smi indexes of `sound`, comma-separated
    /// (`CUDA_DEVICE_ORDER=PCI_BUS_ID` numbering); empty when none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sound_index: String,
    /// Derived, only when a GPU is lost: the lost ones on the PCI bus, as
    /// `<name> at <pci>`; absent when none of them is on the bus.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lost_on_bus: Vec<String>,
    /// Derived, only when a GPU is lost: the NVIDIA compute GPUs on the PCI
    /// bus that are not; absent when there is none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub others_on_bus: Vec<BusGpu>,
}

/// A GPU on the PCI bus, by address and name.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct BusGpu {
    pub pci: String,
    pub name: String,
}

/// One of nvidia-smi's failure texts (probe/nvidia_smi.rs `classify_failure`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct NvidiaFailure {
    /// `driver-mismatch`, `no-driver`, `permissions`, `nvml-unknown`, `no-devices`, `gpu-lost`.
    pub class: String,
    /// The line as nvidia-smi printed it.
    pub line: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct NvidiaGpu {
    /// nvidia-smi's index (PCI bus order).
    pub index: u32,
    pub name: String,
    /// `0000:41:00.0` (nvidia-smi prints an 8-digit domain; normalized to sysfs form).
    pub pci: String,
    pub uuid: Option<String>,
    /// PCI device ID (`0x2204`), from `nvidia-smi -q`.
    pub device_id: Option<String>,
    pub vram_bytes: Option<u64>,
    pub vram_used_bytes: Option<u64>,
    pub driver_version: Option<String>,
    pub cuda_version: Option<String>,
    /// `Utilization > Gpu` (or GPU-Util of the table) at the moment of the probe.
    pub utilization_pct: Option<u32>,
    /// `P0` .. `P12`.
    pub pstate: Option<String>,
    /// Derived: busy enough that the PCIe link should be at full speed
    /// (utilization of 20 % or more). None when unknown.
    pub busy: Option<bool>,
    pub pcie: NvidiaPcie,
    /// `Clocks Event Reasons` (`Clocks Throttle Reasons` before 535) that are
    /// `Active`, e.g. `Idle`, `HW Power Brake Slowdown`.
    pub clocks_event_reasons: Vec<String>,
    /// MIG mode is enabled.
    pub mig: Option<bool>,
    /// BAR1: the CPU and peer window onto VRAM.
    pub bar1_bytes: Option<u64>,
    /// From `nvidia-smi nvlink -s`; None when not listed.
    pub nvlink: Option<NvlinkStatus>,
    /// From `topo -m`: `CPU Affinity` and `NUMA Affinity` as printed.
    pub cpu_affinity: Option<String>,
    pub numa_affinity: Option<String>,
    /// Derived: checks/devices.toml entry for this PCI ID.
    pub catalog: Option<CatalogEntry>,
    /// Derived: GPUs this one reaches over NVLink (`topo -m` NV<n>).
    pub nvlink_peers: Vec<u32>,
    /// Derived: fewer NVLinks up than the card's bridge or baseboard gives
    /// (`nvlink -s` or `topo -m` NV<n> below `catalog.nvlink_links`).
    pub nvlink_degraded: bool,
    /// Derived: visible to CUDA apps after CUDA_VISIBLE_DEVICES.
    pub visible: bool,
    /// The table's cells that say the GPU is in a fault state (`fan, temp,
    /// perf: ERR!`, `[GPU requires reset]`, `Unknown Error`); absent when none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct NvidiaPcie {
    /// `PCIe Generation > Current` (drops at idle by design).
    pub gen_current: Option<u32>,
    /// `PCIe Generation > Max`: what the GPU and the system can both do.
    pub gen_max: Option<u32>,
    pub gen_device_max: Option<u32>,
    pub gen_host_max: Option<u32>,
    pub width_current: Option<u32>,
    pub width_max: Option<u32>,
    pub replays: Option<u64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct NvlinkStatus {
    pub active: u32,
    pub inactive: u32,
    /// Per-link speed of the active links, GB/s.
    pub speed_gbs: Option<f64>,
    /// nvidia-smi said `all links are inActive` (or listed no link).
    pub all_inactive: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct NvidiaLink {
    pub a: u32,
    pub b: u32,
    /// `topo -m`: `NV4`, `PIX`, `PXB`, `PHB`, `NODE`, `SYS`, `SOC`; None when not listed.
    pub kind: Option<String>,
    /// Number of bonded NVLinks (`NV4` -> 4); 0 for PCIe paths.
    pub nvlinks: Option<u32>,
    /// `topo -p2p r`: `OK`, `NS`, `CNS`, `GNS`, `TNS`, `DR`, `U`; None when not listed.
    pub p2p_read: Option<String>,
    /// Derived: the names of the two GPUs.
    pub a_name: String,
    pub b_name: String,
    /// Derived: both GPUs are the same catalog model.
    pub same_model: bool,
    /// Derived: the two are the same model with an NVLink bridge connector.
    pub bridgeable: bool,
    /// Derived: NVLinks a healthy bridge or baseboard gives this pair (catalog), if any.
    pub expected_nvlinks: Option<u32>,
    /// Derived: both are GeForce-class cards whose stock driver disables P2P over PCIe.
    pub consumer: bool,
    /// Derived: GPU `a` / `b` has an NVLink to some GPU (any pair).
    pub a_has_nvlink: bool,
    pub b_has_nvlink: bool,
    /// Derived: a bridgeable pair listed by `topo -m` over PCIe, neither of
    /// whose GPUs has an NVLink to anyone: a bridge that is missing or not
    /// making contact (not a third card beside a bridged pair).
    pub unbridged: bool,
}

/// CUDA_VISIBLE_DEVICES applied to the nvidia-smi list (CUDA Programming
/// Guide, "CUDA Environment Variables").
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct CudaVisible {
    /// The variable is set (possibly to the empty string).
    pub set: bool,
    pub value: Option<String>,
    /// nvidia-smi indices of the GPUs CUDA exposes, in CUDA's order.
    pub indices: Vec<u32>,
    /// Entries that name no GPU here (an index past the end, an unknown UUID).
    pub invalid: Vec<String>,
    /// Entries after the first invalid one: CUDA ignores them.
    pub ignored: Vec<String>,
    /// The list hides every GPU on purpose (`""`, `-1`, or starting with a negative index).
    pub hides_all: bool,
    /// The list uses numeric indices (which follow CUDA_DEVICE_ORDER), not UUIDs.
    pub numeric: bool,
}

/// AMD GPUs as the ROCm runtime sees them (design.md "Stable facts":
/// `amd.agents[]` is an interface).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct Amd {
    /// rocminfo answered and its output parsed.
    pub listed: bool,
    /// `Runtime Version` of the HSA runtime.
    pub runtime_version: Option<String>,
    /// `ROCk module version ... is loaded` (the amdgpu-dkms driver), if printed.
    pub kfd_version: Option<String>,
    /// The installed ROCm release (`/opt/rocm/.info/version`, else the one
    /// `amd-smi version` names).
    pub rocm_version: Option<String>,
    /// GPU agents, in ROCr's order (the order of ROCR_VISIBLE_DEVICES / HIP indices).
    pub agents: Vec<AmdAgent>,
    /// Devices `rocm-smi` lists.
    pub smi_devices: Vec<RocmSmiDevice>,
    /// Derived: HSA_OVERRIDE_GFX_VERSION checks.
    pub override_value: Option<String>,
    /// Derived: the value is `x.y.z`.
    pub override_valid: Option<bool>,
    /// Derived: the gfx target the override claims (`10.3.0` -> `gfx1030`).
    pub override_gfx: Option<String>,
    /// Derived: torch's ROCm build (`6.2` for `+rocm6.2`), if torch is a ROCm wheel.
    pub torch_rocm: Option<String>,
    /// Derived: torch's ROCm build and the installed ROCm agree on major.minor.
    pub torch_rocm_matches: Option<bool>,
    /// Derived: ROCR_VISIBLE_DEVICES / HIP_VISIBLE_DEVICES applied.
    pub visible: AmdVisible,
    /// Derived: every AMD GPU, from the PCI bus joined with rocminfo's
    /// agents (or from the agents alone when the bus is not visible), so
    /// rules can reason when rocminfo is missing or failed.
    pub cards: Vec<AmdCard>,
    /// What `amd-smi` (ROCm 6+, rocm-smi's successor) says about the GPUs.
    #[serde(default)]
    pub smi: AmdSmi,
    /// How each GPU pair is connected (XGMI or PCIe), from `amd-smi topology`
    /// or, where amd-smi is missing, `rocm-smi --showtopo`; one entry per
    /// pair, `a < b`.
    #[serde(default)]
    pub links: Vec<AmdLink>,
}

/// `amd-smi static`, `list`, `metric` and `version`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct AmdSmi {
    /// amd-smi answered and its output parsed.
    pub listed: bool,
    /// `json`, or `text` for a release without `--json`.
    pub layout: Option<String>,
    /// `AMDSMI Tool` version (`24.5.1+c5106a9`).
    pub tool_version: Option<String>,
    /// `ROCm version` as amd-smi reports it (None when it says N/A).
    pub rocm_version: Option<String>,
    /// In amd-smi's order (by PCI address since ROCm 6.0).
    pub gpus: Vec<AmdSmiGpu>,
}

/// One GPU as amd-smi reports it; values it prints as N/A are None.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct AmdSmiGpu {
    pub index: u32,
    pub pci: Option<String>,
    pub uuid: Option<String>,
    /// `asic.market_name`.
    pub name: Option<String>,
    pub device_id: Option<String>,
    /// `asic.target_graphics_version` (`gfx90a`); absent before ROCm 6.1.
    pub gfx: Option<String>,
    pub compute_units: Option<u32>,
    pub vram_bytes: Option<u64>,
    pub vram_used_bytes: Option<u64>,
    pub vram_type: Option<String>,
    /// `amdgpu` and its version (the kernel's, or the DKMS driver's).
    pub driver: Option<String>,
    pub driver_version: Option<String>,
    /// The link as negotiated now (`metric`).
    pub pcie_width: Option<u32>,
    pub pcie_speed_gts: Option<f64>,
    /// What the card supports (`static`).
    pub pcie_max_width: Option<u32>,
    pub pcie_max_speed_gts: Option<f64>,
    /// `CEM` (a card in a slot), `OAM` (an accelerator module on a baseboard).
    pub slot_type: Option<String>,
    pub numa_node: Option<i64>,
}

/// One GPU pair of the topology, `a < b` (GPU indices of the tool).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct AmdLink {
    pub a: u32,
    pub b: u32,
    pub a_pci: Option<String>,
    pub b_pci: Option<String>,
    /// `XGMI` or `PCIE` as the tool prints it.
    pub kind: Option<String>,
    /// 1: XGMI; 2: through one CPU socket; 3: across two sockets (AMD's
    /// definition; rocm-systems #5763).
    pub hops: Option<u32>,
    /// The driver's cost of the path (15 per XGMI hop, 20 per PCIe segment).
    pub weight: Option<u32>,
    /// `amd-smi-topology` or `rocm-smi-showtopo`.
    pub source: String,
    /// Derived: the GPU names, from the bus or amd-smi.
    pub a_name: String,
    pub b_name: String,
    pub same_model: bool,
    /// Derived: both are Instinct accelerators (MI50 onwards) made to be
    /// joined by XGMI / Infinity Fabric links.
    pub xgmi_capable: bool,
    /// Derived: both are Radeon (consumer or workstation) cards: no XGMI,
    /// peer-to-peer goes over PCIe through the host.
    pub consumer: bool,
    /// Derived: the path crosses from one CPU socket to the other (hops 3).
    pub cross_socket: bool,
}

/// One AMD GPU: its own gfx target (from the PCI id) and what the installed
/// PyTorch ROCm wheel ships for it (checks/torch-rocm.toml).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct AmdCard {
    pub pci: Option<String>,
    pub name: String,
    pub device_id: Option<String>,
    /// The card's own target (`gfx1031`), from the PCI id when known.
    pub gfx: Option<String>,
    /// `pci-id` or `rocminfo`.
    pub gfx_source: Option<String>,
    /// What rocminfo reported for it, when it has an agent.
    pub reported_gfx: Option<String>,
    /// Its rocminfo GPU index (what ROCR_VISIBLE_DEVICES counts).
    pub agent_index: Option<u32>,
    pub integrated: Option<bool>,
    /// Visible to ROCm programs (always true without rocminfo: unknown is
    /// not hidden).
    pub visible: bool,
    /// HSA_OVERRIDE_GFX_VERSION(_<index>) that applies to it.
    pub override_value: Option<String>,
    /// The target the runtime loads kernels for: the override's when it
    /// parses, else the card's own.
    pub effective_gfx: Option<String>,
    /// The installed torch wheel's targets (checks/torch-rocm.toml); empty
    /// when torch is not a ROCm wheel the table knows.
    pub torch_targets: Vec<String>,
    /// The installed torch ships kernels for `effective_gfx`. None: unknown.
    pub torch_kernels: Option<bool>,
    /// The override that makes this torch load kernels of a same-family
    /// target it ships (`10.3.0` for gfx1031 on any wheel).
    pub torch_override: Option<String>,
    /// A wheel series that ships the card's own target.
    pub torch_fix: Option<TorchWheel>,
    /// An integrated GPU while a discrete card is visible; rules about the
    /// discrete card speak for the rig and leave this one out.
    pub igpu_beside_discrete: bool,
}

/// A PyTorch ROCm wheel series: `pip install torch==2.6.* --index-url ...`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct TorchWheel {
    /// The torch minor line (`2.6`).
    pub torch: String,
    /// The ROCm series of the index (`6.1`).
    pub rocm: String,
    pub index_url: String,
    pub nightly: bool,
}

/// ROCR_VISIBLE_DEVICES then HIP_VISIBLE_DEVICES (or CUDA_VISIBLE_DEVICES,
/// which HIP also reads) applied to the GPU agents: HIP indices count what
/// ROCr left visible (ROCm docs, "GPU isolation techniques").
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct AmdVisible {
    pub rocr: Option<String>,
    /// HIP_VISIBLE_DEVICES, else CUDA_VISIBLE_DEVICES.
    pub hip: Option<String>,
    /// The HIP-level variable's name when set.
    pub hip_var: Option<String>,
    /// Agent indices apps see, in order.
    pub indices: Vec<u32>,
    /// Entries that name nothing (an index past the end, an unknown UUID).
    pub invalid: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct AmdAgent {
    /// Index among GPU agents (what ROCR_VISIBLE_DEVICES and HIP count).
    pub index: u32,
    /// rocminfo's `Agent N` (the CPU agents come first).
    pub agent: Option<u32>,
    /// rocminfo `Name` (the gfx target for GPU agents).
    pub name: String,
    /// The card's own gfx target: from its PCI id (`Chip ID`, or the bus
    /// device at its BDFID) when known, else what rocminfo reported.
    pub gfx: Option<String>,
    /// The target rocminfo reported. Under HSA_OVERRIDE_GFX_VERSION that is
    /// the overridden one (10.3.0 makes a gfx1031 read as gfx1030).
    pub reported_gfx: Option<String>,
    /// Derived: where `gfx` came from, `pci-id` or `rocminfo`.
    pub gfx_source: Option<String>,
    pub marketing_name: Option<String>,
    pub uuid: Option<String>,
    /// `0x744c`, from `Chip ID`.
    pub chip_id: Option<String>,
    /// From `BDFID` (bus << 8 | device << 3 | function), domain 0.
    pub pci: Option<String>,
    pub compute_units: Option<u32>,
    /// Derived: an integrated GPU (APU), from the catalog or the PCI join.
    pub integrated: Option<bool>,
    /// Derived (checks/amd-gfx.toml): ROCm libraries ship kernels for this target.
    pub supported: Option<bool>,
    /// Derived: the HSA_OVERRIDE_GFX_VERSION value that works for this target.
    pub override_suggested: Option<String>,
    /// Derived: the first ROCm release with kernels for this target, when known.
    pub native_since: Option<String>,
    /// Derived: the gfx family of the override matches this target's (`10.3` for gfx103x)
    /// and the target it claims ships kernels.
    pub override_fits: Option<bool>,
    /// Derived: an HSA_OVERRIDE_GFX_VERSION(_<index>) applies to this agent.
    pub override_value: Option<String>,
    /// Derived: visible after ROCR_VISIBLE_DEVICES / HIP_VISIBLE_DEVICES.
    pub visible: bool,
    /// Derived: an integrated GPU while a discrete agent is visible; rules
    /// about the discrete card speak for the rig and leave this one out.
    pub igpu_beside_discrete: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct RocmSmiDevice {
    pub index: u32,
    /// `0x744c` when the layout prints it.
    pub device_id: Option<String>,
    pub gpu_pct: Option<u32>,
    pub vram_pct: Option<u32>,
    pub vram_bytes: Option<u64>,
    pub vram_used_bytes: Option<u64>,
    pub pci: Option<String>,
}

/// The Vulkan physical devices (design.md "Stable facts": `vulkan.devices[]`
/// with `name`, `type`, `driver`, `pci` is an interface).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct Vulkan {
    /// vulkaninfo answered: it listed devices, or the loader said it found none.
    pub listed: bool,
    /// Which command answered: `vulkaninfo-summary`, or `vulkaninfo` where
    /// `--summary` is missing.
    pub command: Option<String>,
    /// `summary`, `full` (the plain text layout) or `device-select` (Mesa's
    /// `MESA_VK_DEVICE_SELECT=list`).
    pub layout: Option<String>,
    pub instance_version: Option<String>,
    /// In the loader's order: the order of llama.cpp's `Vulkan0`, `Vulkan1`
    /// and of `GGML_VK_VISIBLE_DEVICES` indices.
    pub devices: Vec<VulkanDevice>,
    /// The loader found no physical device (`vkEnumeratePhysicalDevices
    /// failed`, `Failed to detect any valid GPUs`).
    pub no_device: bool,
    /// The Mesa release of any Mesa driver listed (lavapipe included).
    pub mesa_version: Option<String>,
    /// Loader and driver warnings and errors, as printed.
    pub messages: Vec<String>,
    /// Derived: every listed device is a software rasterizer (lavapipe) while
    /// a compute GPU with a kernel driver is on the bus.
    pub software_only: bool,
    /// Derived: compute GPUs on the bus, with a kernel driver, that no Vulkan device stands for.
    pub missing: Vec<VulkanMissing>,
    /// Derived: GPUs whose Mesa driver needs a newer Mesa than the one installed (checks/vulkan.toml).
    pub mesa_too_old: Vec<MesaTooOld>,
    /// Derived, only next to `missing` or `mesa_too_old`: the listed devices
    /// as `GPU<index> <name>[ at <pci>]`, and their names (empty otherwise).
    pub listed_as: Vec<String>,
    pub listed_names: Vec<String>,
    /// Derived: the first hardware device is integrated while a discrete one is listed after it.
    pub igpu_first: bool,
    /// Derived: the indices of the discrete hardware devices (what `GGML_VK_VISIBLE_DEVICES` should name).
    pub discrete_indices: Vec<u32>,
    /// Derived: `GGML_VK_VISIBLE_DEVICES` (ggml-vulkan: comma-separated
    /// indices into the loader's list) and what it selects.
    pub ggml_visible: Option<String>,
    pub ggml_visible_indices: Vec<u32>,
    /// Selected entries that are integrated GPUs while a discrete one is listed.
    pub ggml_visible_integrated: Vec<u32>,
    /// Entries that name no listed device.
    pub ggml_visible_invalid: Vec<String>,
    /// Derived: the packages that bring a Vulkan driver for the GPUs on the
    /// bus on this distribution, as a command.
    pub install: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct VulkanDevice {
    /// `GPU<n>` of vulkaninfo.
    pub index: u32,
    pub name: String,
    /// `discrete`, `integrated`, `cpu`, `virtual`, `other` or `unknown`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short driver name from `driverID`: `radv`, `anv`, `nvidia`, `llvmpipe`,
    /// `amdvlk`, `amd-proprietary`, `nvk`, ...; None when vulkaninfo did not say.
    pub driver: Option<String>,
    /// The PCI address: from VK_EXT_pci_bus_info when printed, else joined by
    /// vendor/device id (derive::vulkan). None for software devices.
    pub pci: Option<String>,
    /// How `pci` was found: `bus-info`, `device-id` (one GPU with that id),
    /// `device-id-order` (several: matched in bus order, a guess).
    pub pci_from: Option<String>,
    pub vendor_id: Option<String>,
    pub device_id: Option<String>,
    /// `DRIVER_ID_MESA_RADV` as printed.
    pub driver_id: Option<String>,
    pub driver_name: Option<String>,
    pub driver_info: Option<String>,
    /// Decoded (NVIDIA's packed number becomes `550.54.14`).
    pub driver_version: Option<String>,
    pub api_version: Option<String>,
    /// The Mesa release, for Mesa drivers.
    pub mesa_version: Option<String>,
    /// A CPU rasterizer (lavapipe/llvmpipe, SwiftShader).
    pub software: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct VulkanMissing {
    pub pci: String,
    pub name: String,
    pub vendor: String,
    /// The kernel driver bound.
    pub driver: Option<String>,
    /// The package command that brings its Vulkan driver on this distribution.
    pub install: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct MesaTooOld {
    pub pci: String,
    pub name: String,
    pub family: String,
    /// The Mesa Vulkan driver for it (`anv`, `radv`).
    pub driver: String,
    pub mesa: String,
    pub minimum: String,
    /// The card is listed by Vulkan anyway (an old Mesa may list it with missing features).
    pub listed: bool,
}

/// The device nodes GPU runtimes open (`/dev/dri/renderD*`, `/dev/kfd`,
/// `/dev/nvidia*`) against this process's user and groups.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct DeviceAccess {
    /// The nodes were looked at (live, or a capture that recorded them).
    pub looked: bool,
    /// Real uid and gid of this process (`/proc/self/status`).
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// The user's name (`/etc/passwd`).
    pub user: Option<String>,
    /// Supplementary groups of this process: what a program started from
    /// this session gets (`Groups:` of `/proc/self/status`), with their
    /// names (`/etc/group`) where known.
    pub groups: Vec<u32>,
    pub group_names: Vec<String>,
    pub root: bool,
    pub nodes: Vec<DevNode>,
    /// `/usr/bin/nvidia-modprobe` is installed setuid root: the first CUDA
    /// program creates `/dev/nvidia-uvm` itself. None when not looked at.
    pub nvidia_modprobe_setuid: Option<bool>,
    /// `/sys/module/nvidia_uvm/initstate` reads `live`.
    pub nvidia_uvm_loaded: Option<bool>,
    /// Derived: nodes of GPUs on the bus this user may not open because the
    /// node's group is not one of the session's groups.
    pub blocked: Vec<BlockedNode>,
    /// Derived: nodes a bound driver should have created, absent.
    pub missing: Vec<MissingNode>,
    /// Derived: an NVIDIA GPU is bound to nvidia, `/dev/nvidia-uvm` is absent,
    /// and no setuid nvidia-modprobe will create it on first use.
    pub uvm_missing: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct DevNode {
    pub path: String,
    /// `render`, `card`, `kfd`, `nvidia`, `nvidiactl` or `nvidia-uvm`.
    pub role: String,
    pub present: bool,
    /// `char`, `file`, `link`, ... (`lstat`).
    pub kind: Option<String>,
    /// As `ls -l` prints it: `crw-rw----`.
    pub perms: Option<String>,
    pub owner: Option<u32>,
    pub group: Option<u32>,
    pub group_name: Option<String>,
    /// `/etc/group` lists the user in the node's group (None: unknown).
    pub user_listed: Option<bool>,
    /// `access(2)` for this process: it counts ACLs too.
    pub read: Option<bool>,
    pub write: Option<bool>,
    /// Derived: what lets this user read and write it: `root`, `owner`,
    /// `group`, `other`, or `acl` (the kernel says yes though the mode does
    /// not: an ACL such as systemd-logind's `uaccess`).
    pub granted_by: Option<String>,
    /// The GPU it belongs to (a DRM node joined through sysfs `drm/`).
    pub pci: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct BlockedNode {
    pub path: String,
    pub role: String,
    pub perms: String,
    pub group: u32,
    /// The group's name, or its number when /etc/group does not name it.
    pub group_name: String,
    /// The GPUs the node serves (`Arc B580 at 0000:03:00.0`).
    pub gpus: String,
    /// `/etc/group` lists the user in that group, but this session does not
    /// have it: added after logging in.
    pub listed_in_group: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct MissingNode {
    pub path: String,
    pub role: String,
    pub pci: String,
    pub name: String,
    pub vendor: String,
    pub driver: String,
}

/// Where this process runs: a container or not, judged from its mounts
/// (`/proc/self/mountinfo`: the filesystems of `/`, `/dev` and `/dev/shm`),
/// `/proc/self/cgroup`, the engines' marker files and the `container`
/// variable. Unknown (`inside: null`) when the mounts could not be read.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct Container {
    /// Derived: true inside a container, false on a host (or a VM), null
    /// when it cannot be told.
    pub inside: Option<bool>,
    /// Derived: `docker`, `podman`, `kubernetes`, `lxc`, or what the
    /// `container` variable names; null when unknown or not in a container.
    pub engine: Option<String>,
    /// Derived: what the verdict rests on, one plain sentence each.
    pub evidence: Vec<String>,
    /// Filesystem type mounted at `/` (`overlay` in Docker and Podman).
    pub root_fs: Option<String>,
    /// Filesystem type mounted at `/dev`: `devtmpfs` on a host, `tmpfs` in
    /// a container that got its own `/dev`.
    pub dev_fs: Option<String>,
    /// Size of `/dev/shm` from its mount options (`size=65536k`: Docker's
    /// default 64 MiB); null when not mounted or not given in bytes.
    pub shm_bytes: Option<u64>,
    /// `/.dockerenv` exists (null: not looked at).
    pub dockerenv: Option<bool>,
    /// `/run/.containerenv` (Podman) exists (null: not looked at).
    pub containerenv: Option<bool>,
    /// The engine `/proc/self/cgroup` names (`/docker/<id>`,
    /// `docker-<id>.scope`, `kubepods`, `libpod-<id>`, `lxc`), if any.
    pub cgroup_engine: Option<String>,
    /// Derived: discrete compute GPUs on the bus (NCCL/oneCCL run one rank
    /// per GPU and exchange data through `/dev/shm`).
    pub discrete_gpus: u32,
    /// Derived: inside a container, GPUs whose driver is bound (sysfs) but
    /// whose device nodes are absent: not passed in.
    pub gpus_without_nodes: Vec<UnpassedGpu>,
    /// Derived: the vendors of `gpus_without_nodes`, sorted, each once.
    pub unpassed_vendors: Vec<String>,
    /// Derived: the absent nodes of `gpus_without_nodes`, each once.
    pub missing_nodes: Vec<String>,
    /// `nvidia-container-cli info`: what the NVIDIA Container Toolkit on
    /// this machine sees, the view every `docker run --gpus` gets. Null when
    /// it was not run (no NVIDIA GPU bound, nvidia-smi hung) or is not installed.
    pub nvidia_toolkit: Option<NvidiaToolkit>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct NvidiaToolkit {
    /// `NVRM version:` (the kernel driver).
    pub nvrm_version: Option<String>,
    /// `CUDA version:` (what the driver supports).
    pub cuda_version: Option<String>,
    pub devices: Vec<ToolkitDevice>,
    /// The CLI's own error (`initialization error: ...`) when it failed.
    pub error: Option<String>,
    /// The error's class: `nvml-library-missing`, `driver-not-loaded`,
    /// `no-cuda-device`, or `other`.
    pub error_kind: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct ToolkitDevice {
    pub index: Option<u32>,
    pub model: Option<String>,
    pub uuid: Option<String>,
    /// `Bus Location:` as a sysfs address (`0000:41:00.0`).
    pub pci: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct UnpassedGpu {
    pub pci: String,
    pub name: String,
    pub vendor: String,
    pub driver: String,
    /// The nodes its runtimes open that are absent.
    pub missing: Vec<String>,
}

/// The outcome of one probe. `status` is itself a fact rules can read.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct ProbeReport {
    pub name: String,
    /// `ok`, `missing`, `timeout`, `failed`, `unparsed`, `denied`, or `skipped`
    /// (not run because an earlier command showed it would hang).
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
