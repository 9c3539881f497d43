//! Vulkan: the physical devices the Vulkan loader finds (`vulkaninfo
//! --summary`, or plain `vulkaninfo` where `--summary` is missing), which is
//! what llama.cpp's and ollama's Vulkan backends enumerate.
//!
//! Layouts the parser reads (fixtures/outputs/vulkaninfo/):
//! - `--summary` (Vulkan-Tools 1.2.148+, KhronosGroup/Vulkan-Tools PR #433):
//!   a `Devices:` section with `GPU<n>:` blocks of `key = value` rows
//!   (`apiVersion = 1.3.230`, `deviceType = PHYSICAL_DEVICE_TYPE_CPU`,
//!   `driverID`, `driverName`, `driverInfo = Mesa 22.3.6 (LLVM 15.0.6)`),
//!   indented by a tab or by spaces.
//! - the full text layout: `GPU<n>:` then `VkPhysicalDeviceProperties:` with
//!   versions as `4206828 (1.3.236)` (older) or `1.3.230 (4206822)` (1.3.2xx+),
//!   a packed `driverVersion = 2307752832 (0x898d8380)`, driver properties in
//!   `VkPhysicalDeviceDriverProperties` / `VkPhysicalDeviceVulkan12Properties`,
//!   and `pciDomain`/`pciBus`/`pciDevice`/`pciFunction` where the driver has
//!   VK_EXT_pci_bus_info. Vulkan-Tools before 1.2.148 ignores `--summary` and
//!   prints this layout, so both layouts are read whatever was asked.
//! - Mesa's device-select layer list (`MESA_VK_DEVICE_SELECT=list`, which
//!   makes vulkaninfo print only `GPU 0: 1002:7550 "name" discrete GPU
//!   0000:03:00.0` lines and exit).
//!
//! Loader and driver warnings (`WARNING: [Loader Message] ...`, `MESA: error`,
//! `'DISPLAY' environment variable not set`) come on stderr or interleaved on
//! stdout in pastes; they are kept as messages, never taken for devices.
//! Joining devices to the PCI bus is derive's job (derive/vulkan.rs).

use std::sync::LazyLock;
use std::time::Duration;

use regex::Regex;

use crate::rig::{ProbeReport, Vulkan, VulkanDevice};
use crate::source::{CmdOutput, CmdSpec, CmdStatus, Source};
use crate::text::{regex, strip_ansi};

static GPU_HEADER: LazyLock<Regex> = LazyLock::new(|| regex(r"^GPU(\d{1,4}):$"));
static KV: LazyLock<Regex> = LazyLock::new(|| regex(r"^([A-Za-z][A-Za-z0-9]*)\s*=\s*(.*)$"));
static DOTTED: LazyLock<Regex> =
    LazyLock::new(|| regex(r"\b(\d{1,4}\.\d{1,5}(?:\.\d{1,5}){0,2})\b"));
static RAW_THEN_HEX: LazyLock<Regex> =
    LazyLock::new(|| regex(r"^(\d{1,10})\s*\(0x[0-9a-fA-F]{1,8}\)$"));
static INSTANCE: LazyLock<Regex> =
    LazyLock::new(|| regex(r"^Vulkan Instance Version:\s*(\d+\.\d+\.\d+)"));
static MESA: LazyLock<Regex> = LazyLock::new(|| regex(r"\bMesa (\d{1,3}\.\d{1,3}(?:\.\d{1,3})?)"));
static SELECT_LIST: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r#"^GPU (\d{1,4}): ([0-9a-fA-F]{1,5}):([0-9a-fA-F]{1,4}) "(.*)" (discrete GPU|integrated GPU|CPU|virtual GPU|other)\s*([0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7])?$"#,
    )
});

/// Vendor IDs (PCI, or Khronos-registered for non-PCI vendors: 0x10005 is
/// VK_VENDOR_ID_MESA, used by lavapipe).
const MESA_VENDOR: &str = "0x10005";

/// The short driver name from `driverID` (VkDriverId in the Vulkan registry).
fn driver_from_id(id: &str) -> Option<&'static str> {
    Some(match id.trim_start_matches("DRIVER_ID_") {
        "MESA_RADV" => "radv",
        "INTEL_OPEN_SOURCE_MESA" => "anv",
        "MESA_LLVMPIPE" => "llvmpipe",
        "NVIDIA_PROPRIETARY" => "nvidia",
        "AMD_OPEN_SOURCE" => "amdvlk",
        "AMD_PROPRIETARY" => "amd-proprietary",
        "INTEL_PROPRIETARY_WINDOWS" => "intel-windows",
        "MESA_NVK" => "nvk",
        "MESA_DOZEN" => "dozen",
        "MESA_VENUS" => "venus",
        "MESA_TURNIP" => "turnip",
        "MESA_V3DV" => "v3dv",
        "MESA_PANVK" => "panvk",
        "MESA_HONEYKRISP" => "honeykrisp",
        "MOLTENVK" => "moltenvk",
        "QUALCOMM_PROPRIETARY" => "qualcomm",
        "ARM_PROPRIETARY" => "arm",
        "GOOGLE_SWIFTSHADER" => "swiftshader",
        _ => return None,
    })
}

/// What a driver name, device name or vendor says when `driverID` is absent
/// (Vulkan-Tools summaries before 1.2.162 print no driver rows).
fn driver_from_names(
    driver_name: Option<&str>,
    device_name: &str,
    vendor: Option<&str>,
) -> Option<String> {
    let n = device_name.to_ascii_lowercase();
    if let Some(d) = driver_name {
        let d = d.trim();
        let l = d.to_ascii_lowercase();
        return Some(match l.as_str() {
            "radv" => "radv".into(),
            "llvmpipe" => "llvmpipe".into(),
            "nvidia" => "nvidia".into(),
            "intel open-source mesa driver" => "anv".into(),
            "amd open-source driver" => "amdvlk".into(),
            "amd proprietary driver" => "amd-proprietary".into(),
            _ => l,
        });
    }
    if n.contains("llvmpipe") {
        return Some("llvmpipe".into());
    }
    if n.contains("(radv ") || n.starts_with("amd radv") {
        return Some("radv".into());
    }
    if vendor == Some("0x10de") && !n.contains("nvk") {
        return Some("nvidia".into());
    }
    None
}

fn kind_of(device_type: &str) -> &'static str {
    let t = device_type
        .trim()
        .trim_start_matches("PHYSICAL_DEVICE_TYPE_");
    match t {
        "DISCRETE_GPU" | "discrete GPU" => "discrete",
        "INTEGRATED_GPU" | "integrated GPU" => "integrated",
        "CPU" => "cpu",
        "VIRTUAL_GPU" | "virtual GPU" => "virtual",
        "OTHER" | "other" => "other",
        _ => "unknown",
    }
}

/// `0x1002` from `0x1002`, `4098` or `1002` (device-select list prints bare hex).
fn hex_id(v: &str, bare_hex: bool) -> Option<String> {
    let v = v.trim();
    let n = if let Some(h) = v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        u32::from_str_radix(h, 16).ok()?
    } else if bare_hex {
        u32::from_str_radix(v, 16).ok()?
    } else {
        v.split_whitespace().next()?.parse().ok()?
    };
    Some(format!("0x{n:04x}"))
}

/// NVIDIA packs its driver version as 10.8.8.6 bits (Vulkan-Tools
/// vulkaninfo.h, `VkVersionString` for vendor 0x10de).
fn nvidia_driver_version(packed: u32) -> String {
    format!(
        "{}.{}.{}",
        packed >> 22,
        (packed >> 14) & 0xff,
        (packed >> 6) & 0xff
    )
}

/// A version row: the dotted form wherever it is printed (`1.3.230`,
/// `1.3.230 (4206822)`, `4206828 (1.3.236)`).
fn dotted(v: &str) -> Option<String> {
    DOTTED.captures(v).map(|c| c[1].to_string())
}

#[derive(Default)]
struct Raw {
    index: u32,
    fields: Vec<(String, String)>,
}

impl Raw {
    fn get(&self, k: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }
}

fn is_message(t: &str) -> bool {
    let l = t.to_ascii_lowercase();
    t.starts_with("WARNING")
        || t.starts_with("ERROR")
        || t.starts_with("MESA")
        || t.starts_with("TU:")
        || l.starts_with("error:")
        || l.starts_with("warning:")
        || l.contains("environment variable not set")
        || l.contains("vkenumeratephysicaldevices failed")
        || l.contains("vkcreateinstance failed")
        || l.contains("cannot create vulkan instance")
}

/// The loader found no physical device at all: vulkaninfo's own words
/// (vulkaninfo.h `THROW_VK_ERR("vkEnumeratePhysicalDevices", ...)`) or the
/// loader's (`Failed to detect any valid GPUs in the current config`).
fn says_no_device(t: &str) -> bool {
    let l = t.to_ascii_lowercase();
    l.contains("failed to detect any valid gpus")
        || l.contains("vkenumeratephysicaldevices failed")
        || l.contains("error_initialization_failed")
        || l.contains("cannot create vulkan instance")
        || l.contains("error_incompatible_driver")
}

fn device_from(raw: &Raw) -> VulkanDevice {
    let name = raw.get("deviceName").unwrap_or("").trim().to_string();
    let vendor_id = raw.get("vendorID").and_then(|v| hex_id(v, false));
    let device_id = raw.get("deviceID").and_then(|v| hex_id(v, false));
    let kind = raw.get("deviceType").map(kind_of).unwrap_or("unknown");
    let driver_id = raw.get("driverID").map(|s| s.trim().to_string());
    let driver_name = raw.get("driverName").map(|s| s.trim().to_string());
    let driver_info = raw.get("driverInfo").map(|s| s.trim().to_string());
    let driver = driver_id
        .as_deref()
        .and_then(driver_from_id)
        .map(String::from)
        .or_else(|| driver_from_names(driver_name.as_deref(), &name, vendor_id.as_deref()));
    let raw_driver_version = raw.get("driverVersion").unwrap_or("");
    let driver_version = if vendor_id.as_deref() == Some("0x10de") {
        // The full layout prints NVIDIA's packed number; summaries decode it.
        match RAW_THEN_HEX.captures(raw_driver_version.trim()) {
            Some(c) => c[1].parse().ok().map(nvidia_driver_version),
            None => dotted(raw_driver_version),
        }
    } else {
        dotted(raw_driver_version)
    };
    let api_version = raw.get("apiVersion").and_then(dotted);
    let is_mesa = driver_id.as_deref().is_some_and(|d| d.contains("MESA"))
        || matches!(driver.as_deref(), Some("radv" | "anv" | "llvmpipe" | "nvk"));
    let mesa_version = driver_info
        .as_deref()
        .and_then(|i| MESA.captures(i).map(|c| c[1].to_string()))
        // Mesa drivers report the Mesa release as their driverVersion.
        .or_else(|| {
            (is_mesa && vendor_id.as_deref() != Some(MESA_VENDOR))
                .then(|| driver_version.clone())
                .flatten()
        });
    let software = kind == "cpu"
        || matches!(driver.as_deref(), Some("llvmpipe" | "swiftshader"))
        || name.to_ascii_lowercase().contains("llvmpipe");
    let pci = match (
        raw.get("pciDomain"),
        raw.get("pciBus"),
        raw.get("pciDevice"),
        raw.get("pciFunction"),
    ) {
        (Some(d), Some(b), Some(dev), Some(f)) => {
            let n = |s: &str| {
                s.split_whitespace()
                    .next()
                    .and_then(|x| x.parse::<u32>().ok())
            };
            match (n(d), n(b), n(dev), n(f)) {
                (Some(d), Some(b), Some(dev), Some(f))
                    if b < 256 && dev < 32 && f < 8 && d <= 0xffff =>
                {
                    Some(format!("{d:04x}:{b:02x}:{dev:02x}.{f}"))
                }
                _ => None,
            }
        }
        _ => None,
    };
    VulkanDevice {
        index: raw.index,
        name,
        kind: kind.to_string(),
        vendor_id,
        device_id,
        driver,
        driver_id,
        driver_name,
        driver_info,
        driver_version,
        api_version,
        mesa_version,
        software,
        pci_from: pci.as_ref().map(|_| "bus-info".to_string()),
        pci,
    }
}

/// Parse what vulkaninfo printed (either layout, or the device-select list).
pub fn parse(stdout: &str, stderr: &str) -> Vulkan {
    let mut out = Vulkan::default();
    let mut raws: Vec<Raw> = Vec::new();
    let mut full = false;
    let mut summary = false;
    for raw_line in stdout.lines().chain(stderr.lines()) {
        let line = strip_ansi(raw_line);
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        if is_message(t) {
            if says_no_device(t) {
                out.no_device = true;
            }
            if out.messages.len() < 50 && !out.messages.iter().any(|m| m == t) {
                out.messages.push(t.to_string());
            }
            continue;
        }
        if let Some(c) = INSTANCE.captures(t) {
            out.instance_version = Some(c[1].to_string());
            continue;
        }
        if t == "Devices:" {
            summary = true;
            continue;
        }
        if t.starts_with("VkPhysicalDeviceProperties") || t == "Device Properties and Extensions:" {
            full = true;
        }
        if let Some(c) = SELECT_LIST.captures(t) {
            let vendor_id = hex_id(&c[2], true);
            let name = c[4].to_string();
            let kind = kind_of(&c[5]);
            let pci = c
                .get(6)
                .map(|m| m.as_str().to_ascii_lowercase())
                // The layer prints 0000:00:00.0 for devices without a bus (lavapipe).
                .filter(|p| p != "0000:00:00.0" || kind != "cpu");
            let driver = driver_from_names(None, &name, vendor_id.as_deref());
            out.devices.push(VulkanDevice {
                index: c[1].parse().unwrap_or(out.devices.len() as u32),
                software: kind == "cpu" || driver.as_deref() == Some("llvmpipe"),
                kind: kind.to_string(),
                device_id: hex_id(&c[3], true),
                vendor_id,
                driver,
                name,
                pci_from: pci.as_ref().map(|_| "bus-info".to_string()),
                pci,
                ..Default::default()
            });
            out.layout = Some("device-select".into());
            continue;
        }
        if let Some(c) = GPU_HEADER.captures(t) {
            let index: u32 = c[1].parse().unwrap_or(u32::MAX);
            // The full layout names each GPU once in its properties section;
            // a repeated header (another section) continues the same device.
            if !raws.iter().any(|r| r.index == index) {
                raws.push(Raw {
                    index,
                    fields: Vec::new(),
                });
            }
            let pos = raws.iter().position(|r| r.index == index);
            if let Some(p) = pos {
                let r = raws.remove(p);
                raws.push(r);
            }
            continue;
        }
        if let Some(c) = KV.captures(t) {
            let Some(r) = raws.last_mut() else { continue };
            let (k, v) = (c[1].to_string(), c[2].trim().to_string());
            // First value wins: later sections repeat driver rows unchanged.
            if !r.fields.iter().any(|(key, _)| *key == k) && r.fields.len() < 2000 {
                r.fields.push((k, v));
            }
            continue;
        }
        // `driverInfo` with nothing after it (a paste cut there) has no `=`.
        if let Some(r) = raws.last_mut() {
            if let Some(k) = t.split_whitespace().next() {
                if t == k && k.chars().all(|ch| ch.is_ascii_alphanumeric()) && k.len() < 40 {
                    r.fields.push((k.to_string(), String::new()));
                }
            }
        }
    }
    raws.sort_by_key(|r| r.index);
    for r in &raws {
        let d = device_from(r);
        // A header without a single device row (a cut paste) is not a device.
        if d.name.is_empty() && d.vendor_id.is_none() && d.driver.is_none() {
            continue;
        }
        out.devices.push(d);
    }
    if out.layout.is_none() && !out.devices.is_empty() {
        out.layout = Some(if summary && !full { "summary" } else { "full" }.into());
    }
    out.mesa_version = out.devices.iter().find_map(|d| d.mesa_version.clone());
    out
}

const SUMMARY: &str = "vulkaninfo-summary";
const PLAIN: &str = "vulkaninfo";

/// Did vulkaninfo refuse `--summary`? Releases before 1.2.148 print their
/// usage for an unknown flag or ignore it; a usage text without devices is
/// the sign to ask again without the flag.
fn refused_summary(out: &CmdOutput, parsed: &Vulkan) -> bool {
    if !parsed.devices.is_empty() || parsed.no_device {
        return false;
    }
    let text = format!("{}{}", out.stdout_text(), out.stderr_text()).to_ascii_lowercase();
    matches!(out.status, CmdStatus::Exit(c) if c != 0)
        && (text.contains("usage") || text.contains("unknown") || text.contains("unrecognized"))
}

fn report(name: &str, out: &CmdOutput, v: &mut Vulkan) -> ProbeReport {
    let (status, detail) = match &out.status {
        CmdStatus::Missing => (
            "missing",
            "vulkaninfo is not on PATH (Debian/Ubuntu: vulkan-tools)".to_string(),
        ),
        CmdStatus::Timeout => (
            "timeout",
            format!(
                "vulkaninfo did not answer in {:.1} s",
                out.duration_ms as f64 / 1000.0
            ),
        ),
        CmdStatus::Failed(e) => ("failed", format!("vulkaninfo could not start: {e}")),
        CmdStatus::Signal(s) => ("failed", format!("vulkaninfo was killed by signal {s}")),
        CmdStatus::Exit(code) => {
            if !v.devices.is_empty() {
                v.listed = true;
                let hw = v.devices.iter().filter(|d| !d.software).count();
                (
                    "ok",
                    format!(
                        "{} devices ({} hardware, {} software)",
                        v.devices.len(),
                        hw,
                        v.devices.len() - hw
                    ),
                )
            } else if v.no_device {
                // The loader looked and found nothing: a fact, not a failure to look.
                v.listed = true;
                ("ok", "the Vulkan loader found no device".to_string())
            } else if *code != 0 {
                let why = v.messages.last().cloned().unwrap_or_default();
                (
                    "failed",
                    format!("vulkaninfo exited with {code} {why}")
                        .trim()
                        .to_string(),
                )
            } else {
                (
                    "unparsed",
                    "vulkaninfo printed no device section".to_string(),
                )
            }
        }
    };
    ProbeReport::new(name, status, out.duration_ms, detail)
}

pub fn probe(src: &dyn Source, timeout: Duration) -> (Vulkan, ProbeReport) {
    let out = src.run(&CmdSpec::new(
        SUMMARY,
        &["vulkaninfo", "--summary"],
        timeout,
    ));
    let mut v = parse(&out.stdout_text(), &out.stderr_text());
    if refused_summary(&out, &v) {
        let plain = src.run(&CmdSpec::new(PLAIN, &["vulkaninfo"], timeout));
        let mut pv = parse(&plain.stdout_text(), &plain.stderr_text());
        pv.command = Some(PLAIN.into());
        let mut r = report(PLAIN, &plain, &mut pv);
        r.duration_ms += out.duration_ms;
        return (pv, r);
    }
    v.command = Some(SUMMARY.into());
    let r = report(SUMMARY, &out, &mut v);
    (v, r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_block() {
        let v = parse(
            "Devices:\n========\nGPU0:\n\tapiVersion         = 1.3.230\n\tdriverVersion      = 0.0.1\n\tvendorID           = 0x10005\n\tdeviceID           = 0x0000\n\tdeviceType         = PHYSICAL_DEVICE_TYPE_CPU\n\tdeviceName         = llvmpipe (LLVM 15.0.6, 256 bits)\n\tdriverID           = DRIVER_ID_MESA_LLVMPIPE\n\tdriverName         = llvmpipe\n\tdriverInfo         = Mesa 22.3.6 (LLVM 15.0.6)\n",
            "",
        );
        assert_eq!(v.devices.len(), 1);
        let d = &v.devices[0];
        assert_eq!(d.kind, "cpu");
        assert!(d.software);
        assert_eq!(d.driver.as_deref(), Some("llvmpipe"));
        assert_eq!(d.vendor_id.as_deref(), Some("0x10005"));
        assert_eq!(d.mesa_version.as_deref(), Some("22.3.6"));
        assert_eq!(v.mesa_version.as_deref(), Some("22.3.6"));
        assert_eq!(v.layout.as_deref(), Some("summary"));
    }

    #[test]
    fn full_layout_versions_and_bus_info() {
        let v = parse(
            "Device Properties and Extensions:\n=================================\nGPU0:\nVkPhysicalDeviceProperties:\n---------------------------\n\tapiVersion     = 4206869 (1.3.277)\n\tdriverVersion  = 2307752832 (0x898d8380)\n\tvendorID       = 0x10de\n\tdeviceID       = 0x2204\n\tdeviceType     = PHYSICAL_DEVICE_TYPE_DISCRETE_GPU\n\tdeviceName     = NVIDIA GeForce RTX 3090\nVkPhysicalDevicePCIBusInfoPropertiesEXT:\n\tpciDomain   = 0\n\tpciBus      = 65\n\tpciDevice   = 0\n\tpciFunction = 0\n",
            "",
        );
        let d = &v.devices[0];
        assert_eq!(d.api_version.as_deref(), Some("1.3.277"));
        assert_eq!(d.driver_version.as_deref(), Some("550.54.14"));
        assert_eq!(d.driver.as_deref(), Some("nvidia"));
        assert_eq!(d.pci.as_deref(), Some("0000:41:00.0"));
        assert_eq!(v.layout.as_deref(), Some("full"));
    }

    #[test]
    fn no_device_is_a_fact() {
        let v = parse(
            "",
            "ERROR: [Loader Message] Code 0 : setup_loader_term_phys_devs:  Failed to detect any valid GPUs in the current config\nERROR at /build/vulkaninfo/./vulkaninfo.h:247:vkEnumeratePhysicalDevices failed with ERROR_INITIALIZATION_FAILED\n",
        );
        assert!(v.no_device);
        assert!(v.devices.is_empty());
        assert_eq!(v.messages.len(), 2);
    }

    #[test]
    fn device_select_list() {
        let v = parse(
            "selectable devices:\n  GPU 0: 1002:7550 \"AMD Radeon Graphics (RADV GFX1201)\" discrete GPU 0000:03:00.0\n  GPU 1: 10005:0 \"llvmpipe (LLVM 21.1.8, 256 bits)\" CPU 0000:00:00.0\n",
            "",
        );
        assert_eq!(v.devices.len(), 2);
        assert_eq!(v.devices[0].pci.as_deref(), Some("0000:03:00.0"));
        assert_eq!(v.devices[0].device_id.as_deref(), Some("0x7550"));
        assert_eq!(v.devices[0].driver.as_deref(), Some("radv"));
        assert_eq!(v.devices[1].pci, None);
        assert!(v.devices[1].software);
    }

    #[test]
    fn crlf_ansi_and_garbage_do_not_panic() {
        let v = parse(
            "GPU0:\r\n\tdeviceName = \u{1b}[1mIntel(R) Arc(tm) A770 Graphics (DG2)\u{1b}[0m\r\n\tvendorID = 0x8086\r\n\tdeviceType = PHYSICAL_DEVICE_TYPE_DISCRETE_GPU\r\n",
            "",
        );
        assert_eq!(v.devices[0].name, "Intel(R) Arc(tm) A770 Graphics (DG2)");
        assert_eq!(v.devices[0].kind, "discrete");
        for s in [
            "GPU99999999999999:",
            "GPU0:\npciBus = 99999999999\npciDomain = 0\npciDevice = 0\npciFunction = 0\ndeviceName = x",
            "GPU0:\ndriverVersion = 99999999999 (0xffffffffff)\nvendorID = 0x10de",
            "GPU 0: zz:zz \"x\" CPU",
            "\u{0}\u{ff}=",
        ] {
            let _ = parse(s, s);
        }
    }
}
