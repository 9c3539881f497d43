//! `sycl-ls --verbose`: the platforms and devices with the fields the concise
//! listing leaves out (UUID, PCI device id, sub-devices, aspects, architecture),
//! and which device the runtime's own selectors pick.
//!
//! Format (intel/llvm `sycl/tools/sycl-ls/sycl-ls.cpp`; domain.md §4): the
//! concise listing, a blank line, `Platforms: N`, then per platform
//! `Platform [#k]:` with `Version/Name/Vendor/Devices` (4-space indent), per
//! device `Device [#n]:` (absent while a selector variable is set, and in some
//! pastes) and `Type/Version/Name/Vendor/Driver/UUID/DeviceID/Num SubDevices/
//! Num SubSubDevices/Aspects/info::device::sub_group_sizes/Architecture`
//! (8-space indent; the padding widened over the years), then one line per
//! selector: `default_selector()      : gpu, <platform>, <name> <version> [<driver>]`
//! or the exception text cut at 50 characters.
//!
//! Real outputs come as fragments (a paste that starts mid-device), with
//! GitHub Actions line links pasted inside a value (`59[14](https://...)74`),
//! PI trace lines and prompts; the parser takes what is there and says whether
//! the listing was complete. It owns no opinion on the devices: derive and the
//! rules do.
//!
//! The probe runs only when `sycl-ls` itself ran and exited (a missing, hung
//! or crashing sycl-ls would only do the same again), with the same selector
//! variables removed from its environment.

use std::sync::LazyLock;

use regex::Regex;

use crate::rig::{
    ProbeReport, SelectorChoice, SyclDevice, SyclPlatform, SyclVerbose, SyclVerboseDevice,
};
use crate::source::{CmdOutput, CmdSpec, CmdStatus};
use crate::text::{excerpt, regex, strip_ansi};

use super::sycl_ls::{self, SELECTOR_VARS};

static PLATFORM: LazyLock<Regex> = LazyLock::new(|| regex(r"^Platform \[#(\d+)\]:?$"));
static DEVICE: LazyLock<Regex> = LazyLock::new(|| regex(r"^Device \[#(\d+)\]:?$"));
static SELECTOR: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"^(default|accelerator|cpu|gpu|host)_selector\(\)\s*:\s*(.*)$|^custom_selector\((gpu|cpu|acc)\)\s*:\s*(.*)$",
    )
});
static CHOICE: LazyLock<Regex> =
    LazyLock::new(|| regex(r"^(cpu|gpu|fpga|acc|host|unknown), (.*)$"));
/// A GitHub Actions log line link pasted into a value: `[14](https://...)`.
static MD_LINK: LazyLock<Regex> = LazyLock::new(|| regex(r"\[(\d+)\]\([^)\s]*\)"));

#[derive(Clone, Copy, PartialEq)]
enum State {
    /// Before any platform header (a fragment may start with device fields).
    Top,
    /// Between `Platform [#k]:` and `Devices :`: Version/Name/Vendor are the platform's.
    PlatformHeader,
    Devices,
}

fn is_noise(t: &str) -> bool {
    t.starts_with('$')
        || t.starts_with('#')
        || t.starts_with("SYCL_PI_TRACE")
        || t.starts_with("SYCL_UR_TRACE")
        || t == "..."
        || t.contains("sycl-ls")
}

fn device_id(v: &str) -> Option<String> {
    let v = v.trim();
    let n = if let Some(h) = v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        u32::from_str_radix(h, 16).ok()?
    } else {
        v.parse::<u32>().ok()?
    };
    Some(format!("0x{n:04x}"))
}

fn opt_text(v: &str) -> Option<String> {
    let v = v.trim();
    (!v.is_empty() && v != "..." && !v.eq_ignore_ascii_case("unknown")).then(|| v.to_string())
}

/// The backend a platform name or version implies, when the concise listing
/// cannot say.
fn backend_from_platform(name: &str, version: &str) -> Option<String> {
    let n = name.to_ascii_lowercase();
    let b = if n.contains("level-zero") || n.contains("level_zero") {
        "level_zero"
    } else if version.starts_with("OpenCL") || n.contains("opencl") {
        "opencl"
    } else if n.contains("cuda") {
        "cuda"
    } else if n.contains("hip") {
        "hip"
    } else if n.contains("native cpu") || n.contains("native_cpu") {
        "native_cpu"
    } else {
        return None;
    };
    Some(b.to_string())
}

fn choice(value: &str) -> SelectorChoice {
    match CHOICE.captures(value) {
        Some(c) => {
            let (platform, name, version, driver) = sycl_ls::split_rest(&c[2]);
            SelectorChoice {
                kind: Some(c[1].to_string()),
                platform,
                name,
                version,
                driver,
                error: None,
            }
        }
        None => SelectorChoice {
            error: Some(value.to_string()),
            ..Default::default()
        },
    }
}

struct Parser {
    out: SyclVerbose,
    state: State,
    in_verbose: bool,
}

impl Parser {
    fn platform(&mut self) -> &mut SyclPlatform {
        if self.out.platforms.is_empty() {
            self.out.platforms.push(SyclPlatform::default());
        }
        let last = self.out.platforms.len() - 1;
        &mut self.out.platforms[last]
    }

    fn new_device(&mut self, index: Option<u32>) {
        self.state = State::Devices;
        self.platform().devices.push(SyclVerboseDevice {
            index,
            ..Default::default()
        });
    }

    /// The device fields go to; a new one when `starts` (a `Type` line) and
    /// the current one already has that field.
    fn device(&mut self, starts_new: bool) -> &mut SyclVerboseDevice {
        let need_new = match self.out.platforms.last().and_then(|p| p.devices.last()) {
            None => true,
            Some(d) => starts_new && d.kind.is_some(),
        };
        if need_new {
            self.new_device(None);
        }
        self.state = State::Devices;
        let p = self.platform();
        let last = p.devices.len() - 1;
        &mut p.devices[last]
    }

    fn field(&mut self, key: &str, value: &str) -> bool {
        let platform_field = self.state == State::PlatformHeader;
        match key {
            "Version" if platform_field => self.platform().version = value.to_string(),
            "Name" if platform_field => self.platform().name = value.to_string(),
            "Vendor" if platform_field => self.platform().vendor = value.to_string(),
            "Devices" => {
                self.platform().declared_devices = value.parse().ok();
                self.state = State::Devices;
            }
            "Version" => self.device(false).version = value.to_string(),
            "Name" => self.device(false).name = value.to_string(),
            "Vendor" => self.device(false).vendor = value.to_string(),
            "Type" => self.device(true).kind = opt_text(value),
            "Driver" => self.device(false).driver = value.to_string(),
            "UUID" => self.device(false).uuid = opt_text(value),
            "DeviceID" => self.device(false).device_id = device_id(value),
            "Num SubDevices" => self.device(false).sub_devices = value.parse().ok(),
            "Num SubSubDevices" => self.device(false).sub_sub_devices = value.parse().ok(),
            "Aspects" => {
                self.device(false).aspects = value
                    .split_whitespace()
                    .filter(|a| *a != "...")
                    .map(String::from)
                    .collect()
            }
            "info::device::sub_group_sizes" => {
                self.device(false).sub_group_sizes = value
                    .split_whitespace()
                    .filter_map(|s| s.parse().ok())
                    .collect()
            }
            "Architecture" => self.device(false).architecture = opt_text(value),
            _ => return false,
        }
        true
    }

    fn line(&mut self, t: &str) {
        if let Some(n) = t.strip_prefix("Platforms:") {
            self.out.declared_platforms = n.trim().parse().ok();
            self.in_verbose = true;
            self.state = State::Top;
            return;
        }
        if let Some(c) = PLATFORM.captures(t) {
            self.in_verbose = true;
            self.out.platforms.push(SyclPlatform {
                number: c[1].parse().ok(),
                ..Default::default()
            });
            self.state = State::PlatformHeader;
            return;
        }
        if let Some(c) = DEVICE.captures(t) {
            self.in_verbose = true;
            self.new_device(c[1].parse().ok());
            return;
        }
        if let Some(c) = SELECTOR.captures(t) {
            self.in_verbose = true;
            let (key, value) = match (c.get(1), c.get(2), c.get(3), c.get(4)) {
                (Some(k), Some(v), _, _) => (k.as_str().to_string(), v.as_str()),
                (_, _, Some(k), Some(v)) => (format!("custom_{}", k.as_str()), v.as_str()),
                _ => return,
            };
            self.out.selectors.insert(key, choice(value.trim()));
            return;
        }
        // The concise listing at the head (sycl_ls::parse reads it).
        if t.starts_with('[') && !self.in_verbose {
            return;
        }
        if let Some(v) = t.strip_prefix("info::device::sub_group_sizes:") {
            self.in_verbose = true;
            self.field("info::device::sub_group_sizes", v.trim());
            return;
        }
        if let Some((k, v)) = t.split_once(':') {
            if self.field(k.trim(), v.trim()) {
                self.in_verbose = true;
                return;
            }
        }
        if !is_noise(t) && self.out.messages.len() < 50 {
            self.out.messages.push(t.to_string());
        }
    }
}

/// Parse the output of `sycl-ls --verbose` (or any fragment of it).
pub fn parse(stdout: &str, stderr: &str) -> SyclVerbose {
    let mut p = Parser {
        out: SyclVerbose::default(),
        state: State::Top,
        in_verbose: false,
    };
    for raw in stdout.lines() {
        let line = strip_ansi(raw);
        let line = MD_LINK.replace_all(&line, "$1");
        let t = line.trim();
        if !t.is_empty() {
            p.line(t);
        }
    }
    for raw in stderr.lines() {
        let line = strip_ansi(raw);
        let t = line.trim();
        if !t.is_empty() && !is_noise(t) && p.out.messages.len() < 50 {
            p.out.messages.push(t.to_string());
        }
    }
    let mut out = p.out;
    join_concise(&mut out, &sycl_ls::parse(stdout, "").devices);
    out.complete = out.declared_platforms == Some(out.platforms.len() as u32)
        && !out.platforms.is_empty()
        && out
            .platforms
            .iter()
            .all(|p| p.number.is_some() && p.declared_devices == Some(p.devices.len() as u32))
        && out.selectors.contains_key("default");
    out
}

/// The concise head lists the same devices in the same order: take the
/// backend and per-backend index from it where the names agree.
fn join_concise(out: &mut SyclVerbose, concise: &[SyclDevice]) {
    let mut k = 0;
    for p in &mut out.platforms {
        for d in &mut p.devices {
            if let Some(c) = concise.get(k) {
                if c.name == d.name.trim() {
                    if p.backend.is_none() {
                        p.backend = Some(c.backend.clone());
                    }
                    if d.index.is_none() {
                        d.index = c.index;
                    }
                }
            }
            k += 1;
        }
        if p.backend.is_none() {
            p.backend = backend_from_platform(&p.name, &p.version);
        }
    }
}

/// The number of devices the verbose section lists.
pub fn device_count(v: &SyclVerbose) -> usize {
    v.platforms.iter().map(|p| p.devices.len()).sum()
}

const NAME: &str = "sycl-ls-verbose";

/// `sycl-ls --verbose`, without the selector variables (it lists every device).
pub fn spec(timeout: std::time::Duration) -> CmdSpec {
    let mut spec = CmdSpec::new(NAME, &["sycl-ls", "--verbose"], timeout);
    spec.env_remove = SELECTOR_VARS.iter().map(|s| s.to_string()).collect();
    spec
}

/// The concise device list `sycl-ls --verbose` prints first: every line
/// before `Platforms: N` (intel/llvm sycl-ls.cpp prints the same list as
/// plain `sycl-ls`, then the platform section). Empty when the output has
/// no platform section, i.e. is not a verbose listing we can cut.
pub fn concise_head(stdout: &str) -> Option<&str> {
    let mut at = 0;
    for line in stdout.split_inclusive('\n') {
        let t = line.trim_start();
        if t.starts_with("Platforms:") {
            return Some(&stdout[..at]);
        }
        if t.starts_with("Platform [#") {
            return None;
        }
        at += line.len();
    }
    None
}

/// Read a `sycl-ls --verbose` run (live or replayed).
pub fn from_output(out: &CmdOutput) -> (Option<SyclVerbose>, ProbeReport) {
    let parsed = || parse(&out.stdout_text(), &out.stderr_text());
    let (verbose, status, detail) = match &out.status {
        CmdStatus::Missing => (
            None,
            "missing",
            "sycl-ls --verbose was not recorded".to_string(),
        ),
        CmdStatus::Timeout => (
            None,
            "timeout",
            format!(
                "sycl-ls --verbose did not answer in {:.1} s",
                out.duration_ms as f64 / 1000.0
            ),
        ),
        CmdStatus::Failed(e) => (
            None,
            "failed",
            format!("sycl-ls --verbose could not start: {e}"),
        ),
        CmdStatus::Signal(s) => (
            Some(parsed()),
            "failed",
            format!("sycl-ls --verbose was killed by signal {s}"),
        ),
        CmdStatus::Exit(code) => {
            let v = parsed();
            let n = device_count(&v);
            if *code != 0 {
                (
                    Some(v),
                    "failed",
                    format!("sycl-ls --verbose exited with {code}"),
                )
            } else if v.declared_platforms.is_none()
                && !v.platforms.iter().any(|p| p.number.is_some())
                && v.selectors.is_empty()
            {
                // No `Platforms: N`, no `Platform [#k]:`, no selector line:
                // keys like `Name:` or `Version:` alone are another tool's.
                let why = v
                    .messages
                    .iter()
                    .find(|m| m.contains("Exception") || m.contains("error"))
                    .cloned();
                match why {
                    Some(m) => (Some(v), "failed", format!("sycl-ls --verbose stopped: {m}")),
                    None => (
                        Some(v),
                        "unparsed",
                        format!(
                            "sycl-ls --verbose printed no platform section: {}",
                            excerpt(&out.stdout_text())
                        ),
                    ),
                }
            } else if !v.complete {
                let why = v
                    .messages
                    .iter()
                    .find(|m| m.contains("Exception"))
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default();
                (
                    Some(v),
                    "ok",
                    format!("{n} devices; the listing stopped early{why}"),
                )
            } else {
                let np = v.platforms.len();
                (Some(v), "ok", format!("{np} platforms, {n} devices"))
            }
        }
    };
    (
        verbose,
        ProbeReport::new(NAME, status, out.duration_ms, detail),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARC_B580: &str = "
        Name              : Intel(R) Arc(TM) B580 Graphics
        Vendor            : Intel(R) Corporation
        Driver            : 26.22.38646.4
        UUID              : 86800be2-0000-0000-0600-000000000000
        DeviceID          : 57867
        Num SubDevices    : 0
        Num SubSubDevices : 0
        Aspects           : gpu fp16 fp64 ext_intel_pci_address
        info::device::sub_group_sizes: 16 32
        Architecture: intel_gpu_bmg_g21
Platform [#2]:
    Version  : OpenCL 3.0 LINUX
    Name     : Intel(R) OpenCL
    Vendor   : Intel(R) Corporation
    Devices  : 1
        Device [#1]:
        Type              : cpu
";

    #[test]
    fn a_fragment_starting_mid_device_keeps_its_fields() {
        let v = parse(ARC_B580, "");
        assert_eq!(v.platforms.len(), 2);
        let d = &v.platforms[0].devices[0];
        assert_eq!(d.name, "Intel(R) Arc(TM) B580 Graphics");
        assert_eq!(d.device_id.as_deref(), Some("0xe20b"));
        assert_eq!(d.architecture.as_deref(), Some("intel_gpu_bmg_g21"));
        assert_eq!(d.sub_group_sizes, vec![16, 32]);
        assert!(d.aspects.iter().any(|a| a == "ext_intel_pci_address"));
        assert_eq!(v.platforms[0].number, None);
        let p = &v.platforms[1];
        assert_eq!(p.number, Some(2));
        assert_eq!(p.name, "Intel(R) OpenCL");
        assert_eq!(p.backend.as_deref(), Some("opencl"));
        assert_eq!(p.devices[0].index, Some(1));
        assert_eq!(p.devices[0].kind.as_deref(), Some("cpu"));
        assert!(!v.complete);
    }

    #[test]
    fn selector_lines_are_picks_or_errors() {
        let v = parse(
            "Platforms: 0\ndefault_selector()      : gpu, Intel(R) oneAPI Unified Runtime over Level-Zero, Intel(R) Arc(TM) A770 Graphics 12.55.8 [1.3.29735+27]\n\
             gpu_selector()          : No device of requested type available. Please chec...\n\
             custom_selector(acc)    : No device of requested type available. Please chec...\n",
            "",
        );
        let d = &v.selectors["default"];
        assert_eq!(d.kind.as_deref(), Some("gpu"));
        assert_eq!(d.name, "Intel(R) Arc(TM) A770 Graphics");
        assert_eq!(d.driver, "1.3.29735+27");
        assert!(
            v.selectors["gpu"]
                .error
                .as_deref()
                .unwrap()
                .starts_with("No device")
        );
        assert!(v.selectors.contains_key("custom_acc"));
    }

    #[test]
    fn link_junk_inside_a_value_is_removed() {
        let v = parse(
            "        DeviceID          : 59[14](https://github.com/intel/llvm/actions/runs/1/job/2?pr=3#step:14:15)74\n",
            "",
        );
        assert_eq!(
            v.platforms[0].devices[0].device_id.as_deref(),
            Some("0x90672")
        );
    }

    #[test]
    fn devices_without_device_lines_split_on_type() {
        let v = parse(
            "Platforms: 1\nPlatform [#1]:\n    Version  : 1.3\n    Name     : Intel(R) Level-Zero\n    Vendor   : Intel(R) Corporation\n    Devices  : 2\n        Type       : gpu\n        Name       : A\n        Type       : gpu\n        Name       : B\n",
            "",
        );
        let p = &v.platforms[0];
        assert_eq!(p.backend.as_deref(), Some("level_zero"));
        assert_eq!(p.version, "1.3");
        assert_eq!(p.devices.len(), 2);
        assert_eq!(p.devices[1].name, "B");
        assert_eq!(p.declared_devices, Some(2));
        // No selector lines: not complete.
        assert!(!v.complete);
    }

    #[test]
    fn garbage_does_not_panic() {
        for s in [
            "Platform [#",
            "Platform [#99999999999999999999]:",
            "Device [#1]:\nDevices : x\n:::\n: :",
            "DeviceID : 0xzz\nDeviceID: 99999999999999\n",
            "default_selector() :\ncustom_selector(gpu) : gpu, \n",
            "\u{0}\u{ff}",
        ] {
            let _ = parse(s, s);
        }
    }
}
