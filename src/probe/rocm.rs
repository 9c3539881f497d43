//! AMD GPUs through ROCm: `rocminfo` (the HSA agents the runtime sees, with
//! their gfx targets) and `rocm-smi` (the devices the SMI library lists), plus
//! the installed release from `/opt/rocm/.info/version`. amdgpu's own sysfs
//! attributes (VRAM, busy %, link, BARs) are read by probe/pci.rs.
//!
//! Shapes (corpus nvidia-amd/INDEX.md, "Format notes" 8): rocminfo lists the
//! CPU agents first, pads lines with trailing spaces (ROCm 5) or not, repeats
//! `Name:` inside each agent's ISA block, may start with `ROCk module
//! [version X] is loaded`, and is often pasted as `rocminfo | grep Name`.
//! Marketing names come from a device-ID table and can be wrong (an RX 6700S
//! reads as PRO W6600); the gfx target is what decides which kernels run.
//! rocm-smi has three table layouts (ROCm 1-4, `Concise Info` 5-6, ROCm 7 with
//! `Node`/`IDs`), `GPU[n] : key: value` lines, and `--showtopo` matrices.

use std::collections::BTreeMap;
use std::sync::LazyLock;
use std::time::Duration;

use regex::Regex;

use crate::rig::{Amd, AmdAgent, ProbeReport, RocmSmiDevice};
use crate::source::{CmdOutput, CmdSpec, CmdStatus, Source};
use crate::text::{excerpt, regex, strip_ansi};

pub const ROCM_VERSION_FILE: &str = "/opt/rocm/.info/version";

static AGENT: LazyLock<Regex> = LazyLock::new(|| regex(r"^Agent (\d{1,4})$"));
static ROCK: LazyLock<Regex> =
    LazyLock::new(|| regex(r"ROCk module(?: version ([0-9][0-9A-Za-z.\-]*))? is loaded"));
static HEX_IN_PARENS: LazyLock<Regex> = LazyLock::new(|| regex(r"\((0x[0-9a-fA-F]+)\)"));
static GPU_KV: LazyLock<Regex> = LazyLock::new(|| regex(r"^GPU\[(\d{1,4})\]\s*:\s*(.+?):\s*(.*)$"));
static DID: LazyLock<Regex> = LazyLock::new(|| regex(r"\[?(0x[0-9a-fA-F]{4})\b"));
static PCI_ADDR: LazyLock<Regex> =
    LazyLock::new(|| regex(r"\b([0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7])\b"));
static PCT: LazyLock<Regex> = LazyLock::new(|| regex(r"^(\d{1,3})(?:\.\d+)?%$"));

/// What `rocminfo` says.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RocmInfo {
    pub runtime_version: Option<String>,
    pub kfd_version: Option<String>,
    /// GPU agents only, in order.
    pub agents: Vec<AmdAgent>,
    /// CPU agents seen (they come first).
    pub cpu_agents: u32,
}

fn clean(raw: &str) -> String {
    let s = strip_ansi(raw);
    let mut t = s.trim();
    while let Some(r) = t.strip_prefix('>') {
        t = r.trim_start();
    }
    t.trim_matches('`').trim().to_string()
}

/// `BDFID: 768` -> `0000:03:00.0` (bus << 8 | device << 3 | function).
pub fn bdfid_to_pci(bdfid: u32) -> Option<String> {
    if bdfid == 0 || bdfid > 0xffff {
        return None;
    }
    Some(format!(
        "0000:{:02x}:{:02x}.{}",
        bdfid >> 8,
        (bdfid >> 3) & 0x1f,
        bdfid & 0x7
    ))
}

#[derive(Default)]
struct RawAgent {
    agent: Option<u32>,
    fields: BTreeMap<String, String>,
}

/// Parse `rocminfo` (also excerpts and `rocminfo | grep Name`).
pub fn parse_rocminfo(text: &str) -> RocmInfo {
    let mut info = RocmInfo::default();
    let lines: Vec<String> = text.lines().map(clean).collect();
    let has_headers = lines.iter().any(|l| AGENT.is_match(l));
    let mut raw: Vec<RawAgent> = Vec::new();
    let mut in_agent = false;
    for line in &lines {
        if let Some(c) = ROCK.captures(line) {
            info.kfd_version = c.get(1).map(|m| m.as_str().to_string());
            continue;
        }
        if let Some(c) = AGENT.captures(line) {
            raw.push(RawAgent {
                agent: c[1].parse().ok(),
                fields: BTreeMap::new(),
            });
            in_agent = true;
            continue;
        }
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        if !in_agent {
            if k == "Runtime Version" {
                info.runtime_version = Some(v.to_string());
                continue;
            }
            if has_headers {
                continue;
            }
            // `rocminfo | grep Name`: every gfx `Name:` starts a GPU agent.
            if k == "Name" && v.starts_with("gfx") {
                raw.push(RawAgent::default());
            }
        }
        let Some(a) = raw.last_mut() else { continue };
        // The agent's own fields come first; its ISA block repeats `Name:`.
        a.fields
            .entry(k.to_string())
            .or_insert_with(|| v.to_string());
    }
    for a in raw {
        let name = a.fields.get("Name").cloned().unwrap_or_default();
        let is_gpu = match a.fields.get("Device Type").map(String::as_str) {
            Some("GPU") => true,
            Some(_) => false,
            None => name.starts_with("gfx"),
        };
        if !is_gpu {
            if a.fields.get("Device Type").map(String::as_str) == Some("CPU") {
                info.cpu_agents += 1;
            }
            continue;
        }
        let gfx = name
            .starts_with("gfx")
            .then(|| name.split(':').next().unwrap_or(&name).to_string());
        let chip_id = a
            .fields
            .get("Chip ID")
            .and_then(|v| HEX_IN_PARENS.captures(v))
            .map(|c| c[1].to_ascii_lowercase());
        let pci = a
            .fields
            .get("BDFID")
            .and_then(|v| v.parse::<u32>().ok())
            .and_then(bdfid_to_pci);
        info.agents.push(AmdAgent {
            index: info.agents.len() as u32,
            agent: a.agent,
            name: name.clone(),
            reported_gfx: gfx.clone(),
            gfx,
            marketing_name: a
                .fields
                .get("Marketing Name")
                .filter(|m| !m.is_empty())
                .cloned(),
            uuid: a
                .fields
                .get("Uuid")
                .filter(|u| u.starts_with("GPU-") && *u != "GPU-XX")
                .cloned(),
            chip_id,
            pci,
            compute_units: a.fields.get("Compute Unit").and_then(|v| v.parse().ok()),
            ..AmdAgent::default()
        });
    }
    info
}

/// Parse `rocm-smi` output (default table of any era, `--showhw`,
/// `--showmeminfo vram`, `-u`); topology matrices are skipped.
pub fn parse_rocm_smi(text: &str) -> Vec<RocmSmiDevice> {
    let mut devs: BTreeMap<u32, RocmSmiDevice> = BTreeMap::new();
    let mut showhw = false;
    // `GPU[n] : ...` lines name their device whatever the key.
    let mut named = std::collections::BTreeSet::new();
    for raw in text.lines() {
        let line = clean(raw);
        if line.starts_with("GPU ") && line.contains("DID") && line.contains("BUS") {
            showhw = true;
            continue;
        }
        if line.starts_with('=') {
            showhw = false;
            continue;
        }
        if let Some(c) = GPU_KV.captures(&line) {
            let Ok(i) = c[1].parse::<u32>() else { continue };
            named.insert(i);
            let d = devs.entry(i).or_insert_with(|| RocmSmiDevice {
                index: i,
                ..RocmSmiDevice::default()
            });
            let v = c[3].trim();
            match c[2].trim() {
                "VRAM Total Memory (B)" => d.vram_bytes = v.parse().ok(),
                "VRAM Total Used Memory (B)" => d.vram_used_bytes = v.parse().ok(),
                "GPU use (%)" => d.gpu_pct = v.parse().ok(),
                "PCI Bus" => d.pci = PCI_ADDR.captures(v).map(|c| c[1].to_ascii_lowercase()),
                _ => {}
            }
            continue;
        }
        let tokens: Vec<&str> = line.split_whitespace().collect();
        let Some(Ok(i)) = tokens.first().map(|t| t.parse::<u32>()) else {
            continue;
        };
        if i > 1024 || tokens.len() < 3 {
            continue;
        }
        let d = devs.entry(i).or_insert_with(|| RocmSmiDevice {
            index: i,
            ..RocmSmiDevice::default()
        });
        if showhw {
            // GPU DID GFX-RAS SDMA-RAS UMC-RAS VBIOS BUS
            if let Some(did) = tokens
                .get(1)
                .filter(|t| t.len() == 4 && t.bytes().all(|b| b.is_ascii_hexdigit()))
            {
                d.device_id = Some(format!("0x{}", did.to_ascii_lowercase()));
            }
            d.pci = PCI_ADDR
                .captures(&line)
                .map(|c| c[1].to_ascii_lowercase())
                .or(d.pci.take());
            continue;
        }
        let pcts: Vec<u32> = tokens
            .iter()
            .filter_map(|t| PCT.captures(t).and_then(|c| c[1].parse().ok()))
            .collect();
        if pcts.len() < 2 {
            continue;
        }
        if let Some(c) = DID.captures(&line) {
            d.device_id = Some(c[1].to_ascii_lowercase());
        }
        d.gpu_pct = pcts.last().copied();
        d.vram_pct = pcts.get(pcts.len() - 2).copied();
    }
    // A line that only starts with a number (`3 foo bar`) named no device.
    devs.into_values()
        .filter(|d| {
            named.contains(&d.index)
                || d.device_id.is_some()
                || d.gpu_pct.is_some()
                || d.vram_pct.is_some()
                || d.vram_bytes.is_some()
                || d.vram_used_bytes.is_some()
                || d.pci.is_some()
        })
        .collect()
}

pub(crate) fn report(name: &str, out: &CmdOutput, ok_detail: String) -> ProbeReport {
    let secs = out.duration_ms as f64 / 1000.0;
    let (status, detail) = match &out.status {
        CmdStatus::Exit(0) => ("ok", ok_detail),
        CmdStatus::Missing => ("missing", format!("{name} is not on PATH")),
        CmdStatus::Timeout => ("timeout", format!("{name} did not answer in {secs:.1} s")),
        CmdStatus::Failed(e) => ("failed", format!("{name} could not start: {e}")),
        CmdStatus::Signal(s) => ("failed", format!("{name} was killed by signal {s}")),
        CmdStatus::Exit(c) => {
            let said = out
                .stderr_text()
                .lines()
                .chain(out.stdout_text().lines())
                .map(str::trim)
                // The banner says nothing about the failure; the next line does.
                .find(|l| {
                    let banner = l.starts_with("ROCk module") && l.ends_with("is loaded");
                    !(l.is_empty() || l.starts_with('=') || banner)
                })
                .map(|l| l.chars().take(200).collect::<String>());
            (
                "failed",
                match said {
                    Some(s) => format!("{name} exited with {c}: {s}"),
                    None => format!("{name} exited with {c}"),
                },
            )
        }
    };
    ProbeReport::new(name, status, out.duration_ms, detail)
}

/// Run rocminfo and rocm-smi (in parallel: rocminfo can hang in HSA
/// discovery, ROCm/ROCm #5812) and read the installed release.
pub fn probe(src: &dyn Source, timeout: Duration) -> (Amd, Vec<ProbeReport>) {
    let (info_out, smi_out) = std::thread::scope(|s| {
        let a = s.spawn(|| src.run(&CmdSpec::new("rocminfo", &["rocminfo"], timeout)));
        let b = s.spawn(|| src.run(&CmdSpec::new("rocm-smi", &["rocm-smi"], timeout)));
        let crashed = || CmdOutput::with_status(CmdStatus::Failed("the probe crashed".into()));
        (
            a.join().unwrap_or_else(|_| crashed()),
            b.join().unwrap_or_else(|_| crashed()),
        )
    });
    let mut amd = Amd::default();
    let mut info_report = report("rocminfo", &info_out, String::new());
    if info_out.status == CmdStatus::Exit(0) {
        let info = parse_rocminfo(&info_out.stdout_text());
        amd.listed = true;
        amd.runtime_version = info.runtime_version;
        amd.kfd_version = info.kfd_version;
        info_report.detail = format!(
            "{} GPU agents, {} CPU agents",
            info.agents.len(),
            info.cpu_agents
        );
        if info.agents.is_empty() && info.cpu_agents == 0 {
            info_report.status = "unparsed".into();
            info_report.detail = format!(
                "rocminfo exited 0 but printed no agent rigdoctor could read: {}",
                excerpt(&info_out.stdout_text())
            );
        }
        amd.agents = info.agents;
    }
    let mut smi_report = report("rocm-smi", &smi_out, String::new());
    if smi_out.status == CmdStatus::Exit(0) {
        let text = smi_out.stdout_text();
        amd.smi_devices = parse_rocm_smi(&text);
        smi_report.detail = format!("{} devices", amd.smi_devices.len());
        // rocm-smi without a GPU says so; anything else without a device row
        // is output we cannot read, not "no GPUs".
        if amd.smi_devices.is_empty() && !text.contains("No AMD GPUs") {
            smi_report.status = "unparsed".into();
            smi_report.detail = format!(
                "rocm-smi exited 0 but printed no GPU row rigdoctor could read: {}",
                excerpt(&text)
            );
        }
    }
    amd.rocm_version = src
        .read(ROCM_VERSION_FILE)
        .trimmed()
        .filter(|v| !v.is_empty())
        .map(|v| v.split('-').next().unwrap_or(&v).to_string());
    (amd, vec![info_report, smi_report])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agents_skip_cpus_and_isa_names() {
        let i = parse_rocminfo(
            "ROCk module version 6.10.5 is loaded\nRuntime Version:         1.14\n*******\nAgent 1\n*******\n  Name:                    AMD Ryzen 7 7800X3D\n  Device Type:             CPU\n*******\nAgent 2\n*******\n  Name:                    gfx1100\n  Uuid:                    GPU-e56b237e725ec427\n  Marketing Name:          AMD Radeon RX 7900 GRE\n  Device Type:             GPU\n  Chip ID:                 29772(0x744c)\n  BDFID:                   768\n  Compute Unit:            80\n  ISA Info:\n    ISA 1\n      Name:                    amdgcn-amd-amdhsa--gfx1100\n",
        );
        assert_eq!(i.kfd_version.as_deref(), Some("6.10.5"));
        assert_eq!(i.runtime_version.as_deref(), Some("1.14"));
        assert_eq!(i.cpu_agents, 1);
        assert_eq!(i.agents.len(), 1);
        let a = &i.agents[0];
        assert_eq!((a.index, a.agent), (0, Some(2)));
        assert_eq!(a.gfx.as_deref(), Some("gfx1100"));
        assert_eq!(a.marketing_name.as_deref(), Some("AMD Radeon RX 7900 GRE"));
        assert_eq!(a.chip_id.as_deref(), Some("0x744c"));
        assert_eq!(a.pci.as_deref(), Some("0000:03:00.0"));
        assert_eq!(a.compute_units, Some(80));
    }

    #[test]
    fn grep_paste_without_headers() {
        let i = parse_rocminfo("Name: gfx1201\nMarketing Name: AMD Radeon RX 9060 XT\n");
        assert_eq!(i.agents.len(), 1);
        assert_eq!(i.agents[0].gfx.as_deref(), Some("gfx1201"));
        assert_eq!(
            i.agents[0].marketing_name.as_deref(),
            Some("AMD Radeon RX 9060 XT")
        );
    }

    #[test]
    fn bdfid() {
        assert_eq!(bdfid_to_pci(2304).as_deref(), Some("0000:09:00.0"));
        assert_eq!(bdfid_to_pci(0), None);
    }

    #[test]
    fn rocm_smi_layouts() {
        let d = parse_rocm_smi(
            "GPU  Temp   AvgPwr  SCLK    MCLK     Fan    Perf  PwrCap  VRAM%  GPU%  \n0    42.0c  39.02W  600Mhz  2700Mhz  None%  auto  N/A       5%   0%    \n1    50.0c  89.0W   27Mhz   1249Mhz  29.8%  auto  315.0W    3%   3%    \n",
        );
        assert_eq!(d.len(), 2);
        assert_eq!((d[0].vram_pct, d[0].gpu_pct), (Some(5), Some(0)));
        let d = parse_rocm_smi(
            "GPU  DID   GFX RAS  SDMA RAS  UMC RAS  VBIOS            BUS           \n0    164e  N/A      N/A       N/A      102-RAPHAEL-008  0000:12:00.0  \n====\n",
        );
        assert_eq!(d[0].device_id.as_deref(), Some("0x164e"));
        assert_eq!(d[0].pci.as_deref(), Some("0000:12:00.0"));
        let d = parse_rocm_smi("GPU[3]\t\t: VRAM Total Memory (B): 206141652992\n");
        assert_eq!(d[0].vram_bytes, Some(206141652992));
    }

    #[test]
    fn garbage_does_not_panic() {
        for s in [
            "",
            "Agent",
            "Agent 99999999999",
            "Name:",
            "0 % %",
            "GPU[x]: a: b",
            "\u{0}",
        ] {
            let _ = parse_rocminfo(s);
            let _ = parse_rocm_smi(s);
        }
    }
}
