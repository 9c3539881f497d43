//! `xpu-smi discovery`: the GPUs Intel's management tool (Level Zero Sysman)
//! sees, with their PCI addresses and ids.
//!
//! xpu-smi has printed its device list in several shapes (corpus
//! intel/INDEX.md "xpu-smi"; intel/xpumanager `doc/smi_user_guide.md`):
//! - 1.x: a 100-column ASCII table, `| Device ID | Device Information |`, one
//!   `Key: Value` per row, the device id in the first column of its first row;
//! - 2.x: the same keys without borders (`  0             Device Type: Discrete GPU`),
//!   lines padded to 66 columns;
//! - `-j`: JSON, `{"device_list": [{"device_id": 0, "pci_device_id": "0x20a", ...}]}`;
//! - `--dump`: CSV with a `Device ID,Device Name,...` header and quoted values;
//! - 2.x bare `xpu-smi`: an nvidia-smi-like summary table (name wrapped over rows).
//!
//! Missing values come as an empty cell, `N/A` or `-1`; all become null. The
//! `stats`, `dump` (metrics) and `topology` tables are not device lists and
//! yield no device. `No device discovered` is a fact of its own: xpu-smi ran
//! and saw nothing (too old for the card, or the user cannot open the GPU).

use std::collections::BTreeMap;
use std::sync::LazyLock;

use regex::Regex;

use crate::rig::{ProbeReport, XpuSmi, XpuSmiDevice};
use crate::source::{CmdSpec, CmdStatus, Source};
use crate::text::{excerpt, regex, strip_ansi};

/// A device's fields under normalized keys (`pci_bdf_address`, `device_name`).
type Fields = BTreeMap<String, String>;

static BORDERLESS_ROW: LazyLock<Regex> = LazyLock::new(|| regex(r"^(\d+)\s{2,}(\S.*)$"));
static SUMMARY_ROW: LazyLock<Regex> =
    LazyLock::new(|| regex(r"^(\d+)\s+(.*?)(?:\s+(?:On|Off|N/A))?$"));
static BDF: LazyLock<Regex> =
    LazyLock::new(|| regex(r"^([0-9a-fA-F]{4}:)?[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$"));
static MEM_USAGE: LazyLock<Regex> = LazyLock::new(|| regex(r"(\d+)\s*MiB\s*/\s*(\d+)\s*MiB"));
static GENERIC_ID: LazyLock<Regex> = LazyLock::new(|| regex(r"\[0x([0-9a-fA-F]{1,4})\]"));

/// `PCI BDF Address` -> `pci_bdf_address`; `DeviceId` -> `deviceid`.
fn norm_key(k: &str) -> String {
    let mut out = String::new();
    for c in k.trim().chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    out.trim_matches('_').to_string()
}

/// Empty, `N/A` and `-1` mean "no value" in every xpu-smi version.
fn clean(v: &str) -> Option<String> {
    let v = v.trim().trim_matches('"').trim();
    if v.is_empty() || v.eq_ignore_ascii_case("n/a") || v == "-1" {
        None
    } else {
        Some(v.to_string())
    }
}

/// `0x20a` -> `0x020a` (the way sysfs writes PCI ids).
fn pci_id(v: &str) -> Option<String> {
    let h = v.trim();
    let h = h
        .strip_prefix("0x")
        .or_else(|| h.strip_prefix("0X"))
        .unwrap_or(h);
    let n = u32::from_str_radix(h, 16).ok()?;
    (n <= 0xffff).then(|| format!("0x{n:04x}"))
}

/// `32768.00 MiB` -> bytes; a bare number is bytes.
fn bytes(v: &str) -> Option<u64> {
    let v = v.trim();
    let (num, unit) = match v.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => (v[..i].trim(), v[i..].trim()),
        None => (v, "B"),
    };
    let n: f64 = num.parse().ok()?;
    let mul = match unit.to_ascii_lowercase().as_str() {
        "b" | "byte" | "bytes" => 1.0,
        "kib" | "kb" => 1024.0,
        "mib" | "mb" => 1024.0 * 1024.0,
        "gib" | "gb" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    (n >= 0.0 && n.is_finite()).then(|| (n * mul).round() as u64)
}

fn first<'a>(f: &'a Fields, keys: &[&str]) -> Option<&'a String> {
    keys.iter().find_map(|k| f.get(*k))
}

fn device(f: &Fields) -> XpuSmiDevice {
    let text = |keys: &[&str]| first(f, keys).and_then(|v| clean(v));
    let num = |keys: &[&str]| text(keys).and_then(|v| v.split_whitespace().next()?.parse().ok());
    let name = text(&["device_name", "name"]);
    let pci_device_id = text(&["pci_device_id"])
        .and_then(|v| pci_id(&v))
        // A runtime that predates the card names it `Intel(R) Graphics [0x56c0]`.
        .or_else(|| {
            name.as_deref()
                .and_then(|n| GENERIC_ID.captures(n))
                .and_then(|c| pci_id(&c[1]))
        });
    let memory_bytes = text(&["memory_physical_size_byte"])
        .and_then(|v| v.parse().ok())
        .or_else(|| text(&["memory_physical_size"]).and_then(|v| bytes(&v)));
    XpuSmiDevice {
        id: num(&["device_id", "deviceid"]),
        name,
        kind: text(&["device_type"]),
        vendor: text(&["vendor_name"]),
        pci_bdf: text(&["pci_bdf_address", "pci_bdf", "bus_id"]),
        pci_device_id,
        uuid: text(&["soc_uuid", "uuid"]),
        driver_version: text(&["driver_version"]),
        memory_bytes,
        link_gen: num(&["pcie_generation"]),
        link_width: num(&["pcie_max_link_width"]),
        tiles: num(&["number_of_tiles"]),
        drm_device: text(&["drm_device"]),
        state: text(&["device_state"]),
    }
}

/// Split one CSV line; quotes protect commas.
fn csv_fields(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out
}

fn parse_json(text: &str) -> Option<Vec<Fields>> {
    let start = text.find('{')?;
    let end = text.rfind('}')?;
    if end <= start {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(&text[start..=end]).ok()?;
    let fields = |o: &serde_json::Map<String, serde_json::Value>| -> Fields {
        o.iter()
            .filter_map(|(k, v)| {
                let s = match v {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Number(n) => n.to_string(),
                    serde_json::Value::Bool(b) => b.to_string(),
                    _ => return None,
                };
                Some((norm_key(k), s))
            })
            .collect()
    };
    match v.get("device_list") {
        Some(serde_json::Value::Array(a)) => {
            Some(a.iter().filter_map(|d| d.as_object().map(fields)).collect())
        }
        _ => {
            let o = v.as_object()?;
            o.contains_key("device_id").then(|| vec![fields(o)])
        }
    }
}

#[derive(PartialEq, Clone, Copy)]
enum Mode {
    None,
    Table,
    Borderless,
    Csv,
    Summary,
}

/// Parse the output of `xpu-smi discovery` in any of its shapes.
pub fn parse(stdout: &str, stderr: &str) -> XpuSmi {
    let mut out = XpuSmi::default();
    let text: String = stdout
        .lines()
        .map(|l| strip_ansi(l).trim_end().to_string())
        .collect::<Vec<_>>()
        .join("\n");
    for l in text.lines().chain(stderr.lines()) {
        if l.contains("No device discovered") {
            out.no_device = true;
        }
    }
    if let Some(list) = parse_json(&text) {
        out.layout = Some("json".into());
        out.devices = list.iter().map(device).collect();
        return out;
    }

    let mut mode = Mode::None;
    let mut devs: Vec<Fields> = Vec::new();
    let mut last_key: Option<String> = None;
    let mut csv_header: Vec<String> = Vec::new();
    for line in text.lines() {
        let t = line.trim();
        if t.is_empty() {
            if mode == Mode::Csv {
                mode = Mode::None;
            }
            continue;
        }
        if t.starts_with('+') && t.chars().all(|c| matches!(c, '+' | '-' | '=')) {
            continue;
        }
        if t.starts_with('|') {
            let cells: Vec<&str> = t.trim_matches('|').split('|').map(str::trim).collect();
            if cells.len() < 2 {
                continue;
            }
            let (c0, c1) = (cells[0], cells[1]);
            if c0 == "Device ID" {
                // `| Device ID | Device Information |` starts a device list;
                // `| Device ID | 0 |` (stats) and `Topology Information` do not.
                mode = if c1 == "Device Information" {
                    out.layout = Some("table".into());
                    Mode::Table
                } else {
                    Mode::None
                };
                continue;
            }
            // xpu-smi 2.x copies nvidia-smi's summary box; nvidia-smi's own
            // box is not an xpu-smi listing.
            if c0.starts_with("GPU") && c0.contains("Name") && !text.contains("NVIDIA-SMI") {
                out.layout = Some("summary".into());
                mode = Mode::Summary;
                continue;
            }
            match mode {
                Mode::Table => {
                    if !c0.is_empty() {
                        let mut f = Fields::new();
                        f.insert("device_id".into(), c0.to_string());
                        devs.push(f);
                        last_key = None;
                    }
                    let Some(cur) = devs.last_mut() else { continue };
                    match c1.split_once(':') {
                        // A wrapped path continues with `/0000:4d:00.0/...`.
                        Some((k, v)) if !k.trim().is_empty() && !k.trim().starts_with('/') => {
                            let k = norm_key(k);
                            cur.insert(k.clone(), v.trim().to_string());
                            last_key = Some(k);
                        }
                        _ if !c1.is_empty() => {
                            // A value wrapped onto the next row.
                            if let Some(k) = &last_key {
                                if let Some(v) = cur.get_mut(k) {
                                    v.push_str(c1);
                                }
                            }
                        }
                        _ => {}
                    }
                }
                Mode::Summary => {
                    if let Some(c) = SUMMARY_ROW.captures(c0) {
                        let mut f = Fields::new();
                        f.insert("device_id".into(), c[1].to_string());
                        f.insert("device_name".into(), c[2].trim().to_string());
                        if let Some(bdf) = c1.split_whitespace().next() {
                            if BDF.is_match(bdf) {
                                f.insert("pci_bdf_address".into(), bdf.to_string());
                            }
                        }
                        devs.push(f);
                    } else if let Some(cur) = devs.last_mut() {
                        if let Some(m) = MEM_USAGE.captures(c1) {
                            cur.insert("memory_physical_size".into(), format!("{} MiB", &m[2]));
                        } else if c1.is_empty()
                            && !c0.is_empty()
                            && !c0.contains('%')
                            && !c0.starts_with("Fan")
                        {
                            // The name wrapped onto the next row.
                            if let Some(n) = cur.get_mut("device_name") {
                                n.push(' ');
                                n.push_str(c0);
                            }
                        }
                    }
                }
                _ => {}
            }
            continue;
        }
        if t.starts_with("Device ID") && t.contains("Device Information") {
            out.layout = Some("borderless".into());
            mode = Mode::Borderless;
            continue;
        }
        if (t.starts_with("Device ID,") || t.starts_with("DeviceId,")) && !t.contains("Timestamp") {
            out.layout = Some("csv".into());
            mode = Mode::Csv;
            csv_header = csv_fields(t).iter().map(|h| norm_key(h)).collect();
            continue;
        }
        match mode {
            Mode::Borderless => {
                let kv = match BORDERLESS_ROW.captures(t) {
                    Some(c) => {
                        let mut f = Fields::new();
                        f.insert("device_id".into(), c[1].to_string());
                        devs.push(f);
                        c.get(2).map(|m| m.as_str().to_string()).unwrap_or_default()
                    }
                    None => t.to_string(),
                };
                if let (Some(cur), Some((k, v))) = (devs.last_mut(), kv.split_once(':')) {
                    cur.insert(norm_key(k), v.trim().to_string());
                }
            }
            Mode::Csv => {
                let f: Fields = csv_header
                    .iter()
                    .cloned()
                    .zip(csv_fields(t).into_iter().map(|v| v.trim().to_string()))
                    .collect();
                if f.get("device_id").is_some_and(|v| v.parse::<u32>().is_ok()) {
                    devs.push(f);
                }
            }
            _ => {
                if !t.contains("No device discovered")
                    && !t.starts_with('$')
                    && !t.contains("xpu-smi")
                    && out.messages.len() < 50
                {
                    out.messages.push(t.to_string());
                }
            }
        }
    }
    out.devices = devs.iter().map(device).collect();
    for l in stderr.lines() {
        let t = strip_ansi(l);
        let t = t.trim();
        if !t.is_empty() && out.messages.len() < 50 {
            out.messages.push(t.to_string());
        }
    }
    out
}

pub fn probe(src: &dyn Source, timeout: std::time::Duration) -> (XpuSmi, ProbeReport) {
    const NAME: &str = "xpu-smi-discovery";
    let out = src.run(&CmdSpec::new(NAME, &["xpu-smi", "discovery"], timeout));
    let (x, status, detail) = match &out.status {
        CmdStatus::Missing => (
            XpuSmi::default(),
            "missing",
            "xpu-smi is not on PATH".to_string(),
        ),
        CmdStatus::Timeout => (
            XpuSmi::default(),
            "timeout",
            format!(
                "xpu-smi discovery did not answer in {:.1} s",
                out.duration_ms as f64 / 1000.0
            ),
        ),
        CmdStatus::Failed(e) => (
            XpuSmi::default(),
            "failed",
            format!("xpu-smi could not start: {e}"),
        ),
        CmdStatus::Signal(s) => (
            XpuSmi::default(),
            "failed",
            format!("xpu-smi discovery was killed by signal {s}"),
        ),
        CmdStatus::Exit(code) => {
            let mut x = parse(&out.stdout_text(), &out.stderr_text());
            let n = x.devices.len();
            if x.no_device {
                // Not a failure of the probe: xpu-smi answered, and saw nothing.
                x.listed = true;
                (x, "ok", "xpu-smi: No device discovered".to_string())
            } else if n > 0 {
                x.listed = true;
                (x, "ok", format!("{n} devices"))
            } else if *code != 0 {
                let why = x.messages.first().cloned().unwrap_or_default();
                (
                    x,
                    "failed",
                    format!("xpu-smi discovery exited with {code} {why}")
                        .trim()
                        .to_string(),
                )
            } else {
                (
                    x,
                    "unparsed",
                    format!(
                        "xpu-smi discovery printed no device list rigdoctor could read: {}",
                        excerpt(&out.stdout_text())
                    ),
                )
            }
        }
    };
    (x, ProbeReport::new(NAME, status, out.duration_ms, detail))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_rows_become_fields() {
        let x = parse(
            "+---+---+\n| Device ID | Device Information |\n+---+---+\n| 0 | Device Name: Intel(R) Arc(TM) A770 Graphics |\n|   | PCI BDF Address: 0000:03:00.0 |\n|   | PCIe Generation: -1 |\n|   | PCIe Max Link Width: 16 |\n|   | Memory Physical Size: 16288.00 MiB |\n| 1 | Device Name: Intel(R) Graphics [0xe211] |\n|   | PCI Device ID: N/A |\n+---+---+\n",
            "",
        );
        assert_eq!(x.layout.as_deref(), Some("table"));
        assert_eq!(x.devices.len(), 2);
        let d = &x.devices[0];
        assert_eq!(d.id, Some(0));
        assert_eq!(d.pci_bdf.as_deref(), Some("0000:03:00.0"));
        assert_eq!(d.link_gen, None);
        assert_eq!(d.link_width, Some(16));
        assert_eq!(d.memory_bytes, Some(16288 * 1024 * 1024));
        // The id of a generic name stands in for a missing PCI Device ID.
        assert_eq!(x.devices[1].pci_device_id.as_deref(), Some("0xe211"));
    }

    #[test]
    fn csv_and_json_shapes() {
        let x = parse(
            "Device ID,Device Name,Vendor Name\n0,\"Intel(R) Graphics [0x56c0]\",\"Intel(R) Corporation\"\n1,\"Intel(R) Graphics [0x56c0]\",\n",
            "",
        );
        assert_eq!(x.layout.as_deref(), Some("csv"));
        assert_eq!(x.devices.len(), 2);
        assert_eq!(x.devices[1].vendor, None);
        let j = parse(
            "{\"device_list\": [{\"device_id\": 0, \"pci_device_id\": \"0x20a\", \"pci_bdf_address\": \"0000:4d:00.0\"}]}",
            "",
        );
        assert_eq!(j.layout.as_deref(), Some("json"));
        assert_eq!(j.devices[0].pci_device_id.as_deref(), Some("0x020a"));
        assert_eq!(j.devices[0].id, Some(0));
    }

    #[test]
    fn no_device_and_metric_tables() {
        let x = parse("No device discovered\n", "");
        assert!(x.no_device);
        assert!(x.devices.is_empty());
        let s = parse(
            "| Device ID | 0 |\n| GPU Utilization (%) | 0 |\nTimestamp, DeviceId, GPU Utilization (%)\n06:14:46.000,    0, 0.00\n",
            "",
        );
        assert!(s.devices.is_empty());
        assert_eq!(s.layout, None);
    }

    #[test]
    fn garbage_does_not_panic() {
        for s in [
            "|",
            "||||",
            "| Device ID | Device Information |\n|  | : |\n| x | a:b |",
            "Device ID     Device Information\n  99999999999999999999   Device Type: x\n",
            "Device ID,\n,,,,\n\"\n",
            "{\"device_list\": 5}",
            "{ broken",
            "| GPU  Name | Bus |\n|   0 | |\n| | 5MiB / |",
            "Memory Physical Size: 1e400 MiB",
        ] {
            let _ = parse(s, s);
        }
        assert_eq!(bytes("1e400 MiB"), None);
        assert_eq!(pci_id("0x123456"), None);
    }
}
