//! NVIDIA GPUs through `nvidia-smi`: the default table, `-q`, `topo -m`,
//! `topo -p2p r` and `nvlink -s` (design.md, fixed command names).
//!
//! `nvidia-smi` runs first. When it is not installed nothing else runs; when
//! it hangs (a GPU that fell off the bus makes every NVML call hang, NVIDIA
//! Xid 79) the other four are not started and are reported as `skipped`, so a
//! dead GPU costs one timeout, not five. When it answers, the other four run
//! in parallel, each under the timeout (`topo -m` has been seen taking
//! 112 s, NVIDIA/nccl #557).
//!
//! The parsers are pure and take what people paste (corpus nvidia-amd,
//! "Format notes" 4 and 5): driver eras 375 to 610 (`KMD Version` /
//! `CUDA UMD Version` on 610), Windows `WDDM` rows, names cut to the column
//! width, a markdown `> ` on every line, separators cut short.

use std::collections::BTreeMap;
use std::sync::LazyLock;
use std::time::Duration;

use regex::Regex;

use super::{nvidia_nvlink, nvidia_topo};
use crate::rig::{Nvidia, NvidiaFailure, NvidiaGpu, NvidiaLink, NvidiaPcie, ProbeReport};
use crate::source::{CmdOutput, CmdSpec, CmdStatus, Source};
use crate::text::{excerpt, regex, strip_ansi};

/// The five commands, by their fixed capture names.
pub const COMMANDS: &[(&str, &[&str])] = &[
    ("nvidia-smi", &["nvidia-smi"]),
    ("nvidia-smi-q", &["nvidia-smi", "-q"]),
    ("nvidia-smi-topo-m", &["nvidia-smi", "topo", "-m"]),
    ("nvidia-smi-topo-p2p", &["nvidia-smi", "topo", "-p2p", "r"]),
    ("nvidia-smi-nvlink", &["nvidia-smi", "nvlink", "-s"]),
];

static VERSIONS: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?:Driver|KMD) Version:\s*([0-9][0-9.]*)(?:.*?CUDA(?: UMD)? Version:\s*([0-9][0-9.]*))?",
    )
});
static ROW_ID: LazyLock<Regex> =
    LazyLock::new(|| regex(r"^\s*(\d{1,3})\s+(.+?)\s+(On|Off|WDDM|TCC|N/A)\s*$"));
static BUS: LazyLock<Regex> = LazyLock::new(|| {
    regex(r"^\s*([0-9A-Fa-f]{1,8}):([0-9A-Fa-f]{1,2}):([0-9A-Fa-f]{1,2})(?:\.([0-7]))?\b")
});
static MEM: LazyLock<Regex> = LazyLock::new(|| regex(r"(\d+)\s*MiB\s*/\s*(\d+)\s*MiB"));
static PCT: LazyLock<Regex> = LazyLock::new(|| regex(r"(\d{1,3})\s*%"));
static PSTATE: LazyLock<Regex> = LazyLock::new(|| regex(r"\b(P\d{1,2})\b"));

/// A PCI address as nvidia-smi prints it (`00000000:41:00.0`, `0000:02:00.0`,
/// `0:2:0`) in sysfs form (`0000:41:00.0`).
pub fn normalize_pci(s: &str) -> Option<String> {
    let c = BUS.captures(s.trim())?;
    let dom = u32::from_str_radix(&c[1], 16).ok()?;
    let bus = u32::from_str_radix(&c[2], 16).ok()?;
    let dev = u32::from_str_radix(&c[3], 16).ok()?;
    let func: u32 = c.get(4).and_then(|f| f.as_str().parse().ok()).unwrap_or(0);
    if dom > 0xffff || bus > 0xff || dev > 0x1f {
        return None;
    }
    Some(format!("{dom:04x}:{bus:02x}:{dev:02x}.{func}"))
}

/// Remove what a paste adds: ANSI colour, markdown quote markers, backticks.
fn clean(raw: &str) -> String {
    let s = strip_ansi(raw);
    let mut t = s.trim_end();
    loop {
        let l = t.trim_start();
        if let Some(r) = l.strip_prefix('>') {
            t = r;
        } else if let Some(r) = l.strip_prefix('`') {
            t = r;
        } else {
            break;
        }
    }
    t.trim_end_matches('`').to_string()
}

/// One GPU of the default table.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TableGpu {
    pub index: u32,
    pub name: String,
    pub pci: Option<String>,
    pub memory_used_mib: Option<u64>,
    pub memory_total_mib: Option<u64>,
    pub utilization_pct: Option<u32>,
    pub pstate: Option<String>,
    pub mig: Option<bool>,
    /// Cells that say the GPU is in a fault state (see [`cell_errors`]).
    pub errors: Vec<String>,
}

/// The fault marks in one GPU's lines of the table. `ERR!` in the fan,
/// temperature or performance-state cells means NVML cannot read the GPU
/// at all; `ERR!` as the power draw alone is a transient sensor read
/// (Azure/azhpc-diagnostics #77: "no action to be taken") and is not one.
/// `[GPU requires reset]` and `Unknown Error` are faults wherever they are.
fn cell_errors(cells: &[&str], fan_row: bool) -> Vec<String> {
    let mut out = Vec::new();
    let line = cells.join("|");
    if line.contains("GPU requires reset") {
        out.push("[GPU requires reset]".to_string());
    }
    if line.contains("Unknown Error") {
        out.push("Unknown Error".to_string());
    }
    if fan_row {
        // `| Fan  Temp  Perf  Pwr:Usage/Cap |`: the tokens before the power `a / b`.
        if let Some(c) = cells.get(1) {
            let before_power = c.split('/').next().unwrap_or(c);
            let mut tokens: Vec<&str> = before_power.split_whitespace().collect();
            // The last token before `/` is the power draw.
            tokens.pop();
            if tokens.contains(&"ERR!") {
                out.push("fan/temperature/performance state read ERR!".to_string());
            }
        }
    }
    out
}

/// What the default `nvidia-smi` table says.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    pub driver_version: Option<String>,
    pub cuda_version: Option<String>,
    pub gpus: Vec<TableGpu>,
}

/// Parse the default `nvidia-smi` table.
pub fn parse_table(text: &str) -> Table {
    let mut t = Table::default();
    // (position in t.gpus, lines seen after the GPU's first row)
    let mut open: Option<(usize, u32)> = None;
    for raw in text.lines() {
        let line = clean(raw);
        let line = line.trim();
        if t.driver_version.is_none() {
            if let Some(c) = VERSIONS.captures(line) {
                t.driver_version = Some(c[1].to_string());
                t.cuda_version = c.get(2).map(|m| m.as_str().to_string());
                continue;
            }
        }
        if !line.starts_with('|') {
            // A separator (`+---+`) or prose ends a GPU block.
            if !line.starts_with('+') {
                open = None;
            }
            continue;
        }
        let cells: Vec<&str> = line.split('|').collect();
        // `| id name persistence | bus disp | ecc |` -> ["", c1, c2, c3, ""]
        if cells.len() >= 3 {
            if let (Some(id), Some(bus)) = (ROW_ID.captures(cells[1]), BUS.captures(cells[2])) {
                let _ = bus;
                let Ok(index) = id[1].parse::<u32>() else {
                    continue;
                };
                let mut errors = cell_errors(&cells, false);
                let mut name = id[2].trim().to_string();
                // A crashed GPU's row can read ERR! even in its name
                // (gpu-operator #559): the name then comes from the bus.
                if name == "ERR!" {
                    name.clear();
                    errors.push("product name read ERR!".to_string());
                }
                t.gpus.push(TableGpu {
                    index,
                    name,
                    pci: normalize_pci(cells[2]),
                    errors,
                    ..TableGpu::default()
                });
                open = Some((t.gpus.len() - 1, 0));
                continue;
            }
        }
        let Some((pos, seen)) = open else {
            continue;
        };
        let Some(g) = t.gpus.get_mut(pos) else {
            continue;
        };
        for e in cell_errors(&cells, seen == 0) {
            if !g.errors.contains(&e) {
                g.errors.push(e);
            }
        }
        match seen {
            0 => {
                // | Fan Temp Perf Pwr | Memory-Usage | GPU-Util Compute M. |
                if let Some(c) = cells.get(1).and_then(|c| PSTATE.captures(c)) {
                    g.pstate = Some(c[1].to_string());
                }
                if let Some(c) = cells.get(2).and_then(|c| MEM.captures(c)) {
                    g.memory_used_mib = c[1].parse().ok();
                    g.memory_total_mib = c[2].parse().ok();
                }
                if let Some(c) = cells.get(3).and_then(|c| PCT.captures(c)) {
                    g.utilization_pct = c[1].parse().ok();
                }
            }
            1 => {
                // |  | | MIG M. |
                match cells.get(3).map(|c| c.trim()) {
                    Some("Enabled") => g.mig = Some(true),
                    Some("Disabled") => g.mig = Some(false),
                    _ => {}
                }
            }
            _ => {}
        }
        open = Some((pos, seen + 1));
    }
    t
}

/// One GPU of `nvidia-smi -q`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueryGpu {
    pub pci: Option<String>,
    pub name: Option<String>,
    pub uuid: Option<String>,
    pub device_id: Option<String>,
    pub vram_bytes: Option<u64>,
    pub vram_used_bytes: Option<u64>,
    pub bar1_bytes: Option<u64>,
    pub utilization_pct: Option<u32>,
    pub pstate: Option<String>,
    pub pcie: NvidiaPcie,
    pub reasons: Vec<String>,
    pub mig: Option<bool>,
}

/// What `nvidia-smi -q` says.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Query {
    pub driver_version: Option<String>,
    pub cuda_version: Option<String>,
    pub gpus: Vec<QueryGpu>,
}

/// `24576 MiB`, `5375 Mb` (2011 drivers mean MiB), `256 MiB` -> bytes.
fn size_bytes(v: &str) -> Option<u64> {
    let mut it = v.split_whitespace();
    let n: u64 = it.next()?.parse().ok()?;
    let mult: u64 = match it.next()? {
        "KiB" => 1 << 10,
        "MiB" | "Mb" | "MB" => 1 << 20,
        "GiB" | "GB" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(mult)
}

fn first_number<T: std::str::FromStr>(v: &str) -> Option<T> {
    let digits: String = v
        .trim()
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

/// Parse `nvidia-smi -q` (also `-a`, `-q -d ...` and `grep -A` excerpts).
pub fn parse_query(text: &str) -> Query {
    let mut q = Query::default();
    let mut stack: Vec<(usize, String)> = Vec::new();
    let mut cur: Option<usize> = None;
    for raw in text.lines() {
        let line = clean(raw);
        if line.trim().is_empty() {
            continue;
        }
        let expanded = line.replace('\t', "    ");
        let indent = expanded.len() - expanded.trim_start().len();
        let body = expanded.trim();
        if let Some(pci) = body.strip_prefix("GPU ").and_then(normalize_pci) {
            q.gpus.push(QueryGpu {
                pci: Some(pci),
                ..QueryGpu::default()
            });
            cur = Some(q.gpus.len() - 1);
            stack.clear();
            stack.push((indent, "GPU".into()));
            continue;
        }
        while stack.last().is_some_and(|(i, _)| *i >= indent) {
            stack.pop();
        }
        let Some((key, value)) = body.split_once(':') else {
            stack.push((indent, body.to_string()));
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        let under = |name: &str| stack.iter().any(|(_, s)| s == name);
        let top = stack.last().map(|(_, s)| s.as_str()).unwrap_or("");
        // Top-level lines, before any GPU block.
        match key {
            // `N/A` (and anything else that is not a version) stays unknown.
            "Driver Version" => {
                q.driver_version = value
                    .starts_with(|c: char| c.is_ascii_digit())
                    .then(|| value.to_string());
                continue;
            }
            "CUDA Version" => {
                q.cuda_version = value
                    .starts_with(|c: char| c.is_ascii_digit())
                    .then(|| value.to_string());
                continue;
            }
            "Timestamp" | "Attached GPUs" => continue,
            _ => {}
        }
        // A per-GPU line in an excerpt without its `GPU <bus>` header.
        let idx = match cur {
            Some(i) => i,
            None => {
                q.gpus.push(QueryGpu::default());
                cur = Some(q.gpus.len() - 1);
                q.gpus.len() - 1
            }
        };
        let Some(g) = q.gpus.get_mut(idx) else {
            continue;
        };
        let active = value == "Active";
        if under("Clocks Event Reasons") || under("Clocks Throttle Reasons") {
            if active {
                g.reasons.push(key.to_string());
            }
            continue;
        }
        match (top, key) {
            ("PCIe Generation", "Max") => g.pcie.gen_max = first_number(value),
            ("PCIe Generation", "Current") => g.pcie.gen_current = first_number(value),
            ("PCIe Generation", "Device Max") => g.pcie.gen_device_max = first_number(value),
            ("PCIe Generation", "Host Max") => g.pcie.gen_host_max = first_number(value),
            ("Link Width", "Max") => g.pcie.width_max = first_number(value),
            ("Link Width", "Current") => g.pcie.width_current = first_number(value),
            ("FB Memory Usage" | "Memory Usage", "Total") => g.vram_bytes = size_bytes(value),
            ("FB Memory Usage" | "Memory Usage", "Used") => g.vram_used_bytes = size_bytes(value),
            ("BAR1 Memory Usage", "Total") => g.bar1_bytes = size_bytes(value),
            ("Utilization", "Gpu") => g.utilization_pct = first_number(value),
            ("MIG Mode", "Current") => {
                g.mig = match value {
                    "Enabled" => Some(true),
                    "Disabled" => Some(false),
                    _ => None,
                }
            }
            ("PCI", "Device Id") => {
                // `0x220410DE` (device, vendor); 2011: `109110DE`.
                let hex = value.trim_start_matches("0x").trim_start_matches("0X");
                if hex.len() == 8 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    g.device_id = Some(format!("0x{}", hex[..4].to_ascii_lowercase()));
                }
            }
            ("PCI", "Bus Id") if g.pci.is_none() => g.pci = normalize_pci(value),
            (_, "Product Name") => g.name = Some(value.to_string()),
            (_, "GPU UUID") => g.uuid = Some(value.to_string()),
            (_, "Performance State") | ("Power Readings", "Power State") => {
                g.pstate = PSTATE.captures(value).map(|c| c[1].to_string())
            }
            (_, k) if k.eq_ignore_ascii_case("Replays Since Reset") => {
                g.pcie.replays = first_number(value)
            }
            _ => {}
        }
    }
    // An excerpt that named nothing about a GPU leaves an empty record.
    q.gpus.retain(|g| *g != QueryGpu::default());
    q
}

static HANDLE: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?i)Unable to determine the device handle for GPU\s*([0-9A-Fa-f]{1,8}:[0-9A-Fa-f]{1,2}:[0-9A-Fa-f]{1,2}(?:\.[0-7])?)",
    )
});

/// nvidia-smi's failure texts, each a different fault with a different fix
/// (issue 9 §1; exit codes from the nvidia-smi manual page: 4 no permission,
/// 6 not found, 9 driver not loaded, 15 GPU fallen off the bus, 255 other).
/// They come on stdout or stderr, alone or after part of the table, and are
/// read whatever the exit status. Returns the class of the first one and
/// every PCI address nvidia-smi could not get a handle for.
pub fn classify_failure(text: &str) -> (Option<NvidiaFailure>, Vec<String>) {
    const CLASSES: &[(&str, &str)] = &[
        ("driver/library version mismatch", "driver-mismatch"),
        ("couldn't communicate with the nvidia driver", "no-driver"),
        ("insufficient permissions", "permissions"),
        // In a container: it lost its device access (a systemd daemon-reload
        // rewrote the cgroup, NVIDIA/nvidia-docker #1730).
        ("failed to initialize nvml: unknown error", "nvml-unknown"),
        ("no devices were found", "no-devices"),
        ("unable to determine the device handle", "gpu-lost"),
        ("gpu is lost", "gpu-lost"),
    ];
    let mut failure = None;
    let mut lost = Vec::new();
    for raw in text.lines() {
        let line = clean(raw);
        let line = line.trim();
        let lower = line.to_ascii_lowercase();
        if let Some(c) = HANDLE.captures(line) {
            if let Some(pci) = normalize_pci(&c[1]) {
                if !lost.contains(&pci) {
                    lost.push(pci);
                }
            }
        }
        if failure.is_none() {
            if let Some((_, class)) = CLASSES.iter().find(|(m, _)| lower.contains(m)) {
                failure = Some(NvidiaFailure {
                    class: class.to_string(),
                    line: line.chars().take(300).collect(),
                });
            }
        }
    }
    (failure, lost)
}

fn status_of(name: &str, out: &CmdOutput) -> ProbeReport {
    let secs = out.duration_ms as f64 / 1000.0;
    let (status, detail) = match &out.status {
        CmdStatus::Exit(0) => ("ok", String::new()),
        CmdStatus::Missing => ("missing", "nvidia-smi is not on PATH".to_string()),
        CmdStatus::Timeout => ("timeout", format!("{name} did not answer in {secs:.1} s")),
        CmdStatus::Failed(e) => ("failed", format!("{name} could not start: {e}")),
        CmdStatus::Signal(s) => ("failed", format!("{name} was killed by signal {s}")),
        CmdStatus::Exit(c) => {
            // nvidia-smi says why on stdout: "NVIDIA-SMI has failed because it
            // couldn't communicate with the NVIDIA driver", "Failed to
            // initialize NVML: Driver/library version mismatch".
            let said = out
                .stdout_text()
                .lines()
                .chain(out.stderr_text().lines())
                .map(str::trim)
                .find(|l| !l.is_empty())
                .unwrap_or("")
                .to_string();
            let said = said.chars().take(200).collect::<String>();
            (
                "failed",
                if said.is_empty() {
                    format!("{name} exited with {c}")
                } else {
                    format!("{name} exited with {c}: {said}")
                },
            )
        }
    };
    ProbeReport::new(name, status, out.duration_ms, detail)
}

/// A `topo` matrix is readable when it has a GPU row, and names every pair
/// once it speaks of two GPUs or more (the `-p2p` matrix read as `-m`, or
/// the other way round, has rows but no cell of the right kind).
fn matrix_readable(m: &nvidia_topo::Matrix, pairs: usize) -> bool {
    !m.rows.is_empty() && (m.gpu_count() < 2 || pairs > 0)
}

/// Join what the five commands said into the facts. Pure, for tests.
pub fn assemble(
    table: Option<&Table>,
    query: Option<&Query>,
    topo: Option<&nvidia_topo::Topology>,
    p2p: Option<&nvidia_topo::Matrix>,
    nvlink: Option<&BTreeMap<u32, nvidia_nvlink::NvlinkGpu>>,
) -> Nvidia {
    let mut nv = Nvidia::default();
    if let Some(t) = table {
        // A header without GPU rows (a paste cut after "CUDA Version") still
        // says which driver and CUDA the machine has.
        nv.listed = !t.gpus.is_empty();
        nv.driver_version = t.driver_version.clone();
        nv.cuda_version = t.cuda_version.clone();
        for g in &t.gpus {
            nv.gpus.push(NvidiaGpu {
                index: g.index,
                name: g.name.clone(),
                pci: g.pci.clone().unwrap_or_default(),
                vram_bytes: g.memory_total_mib.map(|m| m << 20),
                vram_used_bytes: g.memory_used_mib.map(|m| m << 20),
                utilization_pct: g.utilization_pct,
                pstate: g.pstate.clone(),
                mig: g.mig,
                errors: g.errors.clone(),
                ..NvidiaGpu::default()
            });
        }
    }
    if let Some(q) = query {
        if nv.driver_version.is_none() {
            nv.driver_version = q.driver_version.clone();
        }
        if nv.cuda_version.is_none() {
            nv.cuda_version = q.cuda_version.clone();
        }
        for (i, qg) in q.gpus.iter().enumerate() {
            let pos = match qg
                .pci
                .as_ref()
                .and_then(|p| nv.gpus.iter().position(|g| &g.pci == p))
            {
                Some(p) => p,
                None if table.is_none() || nv.gpus.is_empty() => {
                    nv.gpus.push(NvidiaGpu {
                        index: i as u32,
                        pci: qg.pci.clone().unwrap_or_default(),
                        ..NvidiaGpu::default()
                    });
                    nv.gpus.len() - 1
                }
                None => continue,
            };
            let Some(g) = nv.gpus.get_mut(pos) else {
                continue;
            };
            if let Some(n) = &qg.name {
                // `-q` has the full name; the table cuts it to the column.
                g.name = n.clone();
            }
            g.uuid = qg.uuid.clone().or(g.uuid.take());
            g.device_id = qg.device_id.clone();
            g.vram_bytes = qg.vram_bytes.or(g.vram_bytes);
            g.vram_used_bytes = qg.vram_used_bytes.or(g.vram_used_bytes);
            g.bar1_bytes = qg.bar1_bytes;
            g.utilization_pct = qg.utilization_pct.or(g.utilization_pct);
            g.pstate = qg.pstate.clone().or(g.pstate.take());
            g.pcie = qg.pcie.clone();
            g.clocks_event_reasons = qg.reasons.clone();
            g.mig = qg.mig.or(g.mig);
        }
    }
    let (driver, cuda) = (nv.driver_version.clone(), nv.cuda_version.clone());
    for g in &mut nv.gpus {
        g.driver_version = driver.clone();
        g.cuda_version = cuda.clone();
    }
    if let Some(l) = nvlink {
        nv.nvlink_listed = true;
        for g in &mut nv.gpus {
            if let Some(s) = l.get(&g.index) {
                g.nvlink = Some(s.status.clone());
                if g.uuid.is_none() {
                    g.uuid = s.uuid.clone();
                }
            }
        }
    }
    let mut links: BTreeMap<(u32, u32), NvidiaLink> = BTreeMap::new();
    if let Some(t) = topo {
        for (a, b, kind) in t.pairs() {
            nv.topology_listed = true;
            let l = links.entry((a, b)).or_default();
            l.a = a;
            l.b = b;
            l.nvlinks = Some(nvidia_topo::nvlinks_of(&kind));
            l.kind = Some(kind);
        }
        for g in &mut nv.gpus {
            if let Some(r) = t.affinity.get(&g.index) {
                g.cpu_affinity = r.cpu_affinity.clone();
                g.numa_affinity = r.numa_affinity.clone();
            }
        }
    }
    if let Some(m) = p2p {
        for (a, b, code) in nvidia_topo::p2p_pairs(m) {
            nv.p2p_listed = true;
            let l = links.entry((a, b)).or_default();
            l.a = a;
            l.b = b;
            l.p2p_read = Some(code);
        }
    }
    nv.links = links.into_values().collect();
    nv.listed = nv.listed || !nv.gpus.is_empty();
    nv
}

/// Run the five commands (see the module doc for the order) and join them.
pub fn probe(src: &dyn Source, timeout: Duration) -> (Nvidia, Vec<ProbeReport>) {
    let spec = |i: usize| {
        let (name, argv) = COMMANDS[i];
        CmdSpec::new(name, argv, timeout)
    };
    let first = src.run(&spec(0));
    let mut reports = vec![status_of("nvidia-smi", &first)];
    let (failure, lost) =
        classify_failure(&format!("{}\n{}", first.stdout_text(), first.stderr_text()));
    match first.status {
        CmdStatus::Missing => return (Nvidia::default(), reports),
        CmdStatus::Exit(0) => {}
        _ => {
            // What it printed before failing still counts: a partial table
            // names the GPUs that answer, a header the driver version.
            let table = parse_table(&first.stdout_text());
            let mut nv = assemble(
                Some(&table).filter(|t| !t.gpus.is_empty() || t.driver_version.is_some()),
                None,
                None,
                None,
                None,
            );
            nv.failure = failure;
            nv.lost = lost;
            // Do not touch the GPUs again: the next call would hang too.
            let why = match first.status {
                CmdStatus::Timeout => "nvidia-smi did not answer",
                _ => "nvidia-smi failed",
            };
            for (name, _) in &COMMANDS[1..] {
                reports.push(ProbeReport::new(
                    name,
                    "skipped",
                    0,
                    format!("not run: {why}"),
                ));
            }
            return (nv, reports);
        }
    }
    let table = parse_table(&first.stdout_text());
    if let (true, Some(f)) = (table.gpus.is_empty(), &failure) {
        // Exit 0 and a failure text instead of a table: it said what is wrong.
        if let Some(r) = reports.first_mut() {
            r.status = "failed".into();
            r.detail = format!("nvidia-smi exited 0: {}", f.line);
        }
    } else if table.gpus.is_empty() {
        if let Some(r) = reports.first_mut() {
            // Exit 0 and no GPU row is not "no GPUs" (nvidia-smi says "No
            // devices were found" and exits 6 for that): it is output we
            // cannot read, and what it would have said is unknown.
            r.status = "unparsed".into();
            let header = match (&table.driver_version, &table.cuda_version) {
                (Some(d), Some(c)) => format!(" (only the header: driver {d}, CUDA {c})"),
                (Some(d), None) => format!(" (only the header: driver {d})"),
                _ => String::new(),
            };
            r.detail = format!(
                "nvidia-smi exited 0 but printed no GPU row rigdoctor could read{header}: {}",
                excerpt(&first.stdout_text())
            );
        }
    } else if let Some(r) = reports.first_mut() {
        r.detail = format!("{} GPUs", table.gpus.len());
    }
    let outs: Vec<CmdOutput> = std::thread::scope(|s| {
        let handles: Vec<_> = (1..COMMANDS.len())
            .map(|i| {
                let sp = spec(i);
                s.spawn(move || src.run(&sp))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    CmdOutput::with_status(CmdStatus::Failed("the probe crashed".into()))
                })
            })
            .collect()
    });
    let ok = |o: &CmdOutput| matches!(o.status, CmdStatus::Exit(0));
    let text = |i: usize| outs.get(i).filter(|o| ok(o)).map(|o| o.stdout_text());
    let query = text(0).map(|t| parse_query(&t));
    let topo = text(1).map(|t| nvidia_topo::parse_topo(&t));
    let p2p = text(2).map(|t| nvidia_topo::parse_p2p(&t));
    let nvlink = text(3).map(|t| nvidia_nvlink::parse(&t));
    // Output that exited 0 but reads as none of the tool's layouts is
    // `unparsed`, never `ok` (issue 8: random bytes here once read as a
    // healthy rig).
    let readable = [
        query.as_ref().is_some_and(|q| !q.gpus.is_empty()),
        topo.as_ref()
            .is_some_and(|t| matrix_readable(&t.matrix, t.pairs().len())),
        p2p.as_ref()
            .is_some_and(|m| matrix_readable(m, nvidia_topo::p2p_pairs(m).len())),
        // Every GPU block has its link lines or NVML's "all links are
        // inActive"; a `GPU n:` line with nothing under it is a cut output.
        nvlink.as_ref().is_some_and(|l| {
            !l.is_empty()
                && l.values()
                    .all(|g| g.status.active + g.status.inactive > 0 || g.status.all_inactive)
        }) || text(3).is_some_and(|t| t.trim().is_empty() || nvidia_nvlink::all_inactive(&t)),
    ];
    for (i, out) in outs.iter().enumerate() {
        let name = COMMANDS[i + 1].0;
        let mut r = status_of(name, out);
        if r.status == "ok" && !readable[i] {
            r.status = "unparsed".into();
            r.detail = format!(
                "{} exited 0 but printed nothing rigdoctor could read: {}",
                COMMANDS[i + 1].1.join(" "),
                excerpt(&out.stdout_text())
            );
        } else if r.status == "ok" {
            r.detail = match i {
                0 => format!("{} GPUs", query.as_ref().map_or(0, |q| q.gpus.len())),
                1 => format!("{} GPU pairs", topo.as_ref().map_or(0, |t| t.pairs().len())),
                2 => format!(
                    "{} GPU pairs",
                    p2p.as_ref().map_or(0, |m| nvidia_topo::p2p_pairs(m).len())
                ),
                _ => match nvlink.as_ref().map_or(0, |m| m.len()) {
                    0 => "no NVLink".to_string(),
                    n => format!("{n} GPUs with NVLink"),
                },
            };
        }
        reports.push(r);
    }
    let mut nv = assemble(
        Some(&table).filter(|t| !t.gpus.is_empty() || t.driver_version.is_some()),
        query.as_ref(),
        topo.as_ref(),
        p2p.as_ref(),
        nvlink.as_ref(),
    );
    nv.failure = failure;
    nv.lost = lost;
    (nv, reports)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE_560: &str = "\
+-----------------------------------------------------------------------------------------+
| NVIDIA-SMI 560.35.03              Driver Version: 560.35.03      CUDA Version: 12.6     |
|-----------------------------------------+------------------------+----------------------+
| GPU  Name                 Persistence-M | Bus-Id          Disp.A | Volatile Uncorr. ECC |
| Fan  Temp   Perf          Pwr:Usage/Cap |           Memory-Usage | GPU-Util  Compute M. |
|                                         |                        |               MIG M. |
|=========================================+========================+======================|
|   0  NVIDIA GeForce RTX 3090        On  |   00000000:41:00.0 Off |                  N/A |
| 30%   30C    P8             30W /  350W |       2MiB /  24576MiB |      0%      Default |
|                                         |                        |                  N/A |
+-----------------------------------------+------------------------+----------------------+
|   1  NVIDIA GeForce RTX 3090        On  |   00000000:81:00.0 Off |                  N/A |
| 30%   29C    P8             36W /  350W |       2MiB /  24576MiB |      0%      Default |
|                                         |                        |                  N/A |
+-----------------------------------------+------------------------+----------------------+
|  No running processes found                                                             |
";

    #[test]
    fn table_560() {
        let t = parse_table(TABLE_560);
        assert_eq!(t.driver_version.as_deref(), Some("560.35.03"));
        assert_eq!(t.cuda_version.as_deref(), Some("12.6"));
        assert_eq!(t.gpus.len(), 2);
        let g = &t.gpus[1];
        assert_eq!(g.index, 1);
        assert_eq!(g.name, "NVIDIA GeForce RTX 3090");
        assert_eq!(g.pci.as_deref(), Some("0000:81:00.0"));
        assert_eq!(
            (g.memory_used_mib, g.memory_total_mib),
            (Some(2), Some(24576))
        );
        assert_eq!(g.utilization_pct, Some(0));
        assert_eq!(g.pstate.as_deref(), Some("P8"));
    }

    #[test]
    fn table_kmd_610_windows_and_blockquote() {
        let t = parse_table(
            "| NVIDIA-SMI 610.43.02              KMD Version: 610.43.02     CUDA UMD Version: 13.3     |\n\
             |   1  NVIDIA GeForce RTX 3090        Off |   00000000:65:00.0  On |                  N/A |\n",
        );
        assert_eq!(t.driver_version.as_deref(), Some("610.43.02"));
        assert_eq!(t.cuda_version.as_deref(), Some("13.3"));
        assert_eq!(t.gpus[0].pci.as_deref(), Some("0000:65:00.0"));
        let t = parse_table(
            "> | NVIDIA-SMI 531.14                 Driver Version: 531.14       CUDA Version: 12.1     |\n\
             > |   0  NVIDIA GeForce GTX 1080 Ti    WDDM | 00000000:09:00.0  On |                  N/A |\n\
             > | 37%   63C    P0               65W / 250W|   1585MiB / 11264MiB |      1%      Default |\n",
        );
        assert_eq!(t.gpus[0].name, "NVIDIA GeForce GTX 1080 Ti");
        assert_eq!(t.gpus[0].memory_total_mib, Some(11264));
        assert_eq!(t.gpus[0].utilization_pct, Some(1));
        let t = parse_table(
            "| NVIDIA-SMI 375.26                 Driver Version: 375.26                    |\n\
             |   2  GeForce GTX TIT...  Off  | 0000:82:00.0     Off |                  N/A |\n",
        );
        assert_eq!(t.cuda_version, None);
        assert_eq!(t.gpus[0].name, "GeForce GTX TIT...");
    }

    #[test]
    fn pci_addresses_normalize() {
        assert_eq!(
            normalize_pci("00000000:41:00.0").as_deref(),
            Some("0000:41:00.0")
        );
        assert_eq!(
            normalize_pci("0000:B4:00.0 Off").as_deref(),
            Some("0000:b4:00.0")
        );
        assert_eq!(normalize_pci("0:2:0").as_deref(), Some("0000:02:00.0"));
        assert_eq!(
            normalize_pci("00000019:01:00.0").as_deref(),
            Some("0019:01:00.0")
        );
        assert_eq!(normalize_pci("N/A"), None);
        assert_eq!(normalize_pci("0000:1ff:00.0"), None);
    }

    const QUERY_560: &str = "\
==============NVSMI LOG==============

Timestamp                                 : Thu Nov 14 14:58:00 2024
Driver Version                            : 560.35.03
CUDA Version                              : 12.6

Attached GPUs                             : 2
GPU 00000000:41:00.0
    Product Name                          : NVIDIA GeForce RTX 3090
    MIG Mode
        Current                           : N/A
        Pending                           : N/A
    GPU UUID                              : GPU-4aba3cfa-7b42-cca6-97f4-5cdd281b0746
    PCI
        Bus                               : 0x41
        Device Id                         : 0x220410DE
        Bus Id                            : 00000000:41:00.0
        GPU Link Info
            PCIe Generation
                Max                       : 4
                Current                   : 1
                Device Current            : 1
                Device Max                : 4
                Host Max                  : 4
            Link Width
                Max                       : 16x
                Current                   : 16x
        Replays Since Reset               : 0
    Performance State                     : P8
    Clocks Event Reasons
        Idle                              : Active
        SW Power Cap                      : Not Active
        HW Slowdown                       : Not Active
            HW Power Brake Slowdown       : Not Active
    FB Memory Usage
        Total                             : 24576 MiB
        Reserved                          : 422 MiB
        Used                              : 2 MiB
    BAR1 Memory Usage
        Total                             : 256 MiB
    Utilization
        Gpu                               : 0 %
    GPU Memory Power Readings 
        Power Draw                        : N/A
";

    #[test]
    fn query_560() {
        let q = parse_query(QUERY_560);
        assert_eq!(q.driver_version.as_deref(), Some("560.35.03"));
        assert_eq!(q.gpus.len(), 1);
        let g = &q.gpus[0];
        assert_eq!(g.pci.as_deref(), Some("0000:41:00.0"));
        assert_eq!(g.device_id.as_deref(), Some("0x2204"));
        assert_eq!(
            (g.pcie.gen_current, g.pcie.gen_max, g.pcie.gen_host_max),
            (Some(1), Some(4), Some(4))
        );
        assert_eq!(
            (g.pcie.width_current, g.pcie.width_max),
            (Some(16), Some(16))
        );
        assert_eq!(g.vram_bytes, Some(24576 << 20));
        assert_eq!(g.bar1_bytes, Some(256 << 20));
        assert_eq!(g.reasons, vec!["Idle"]);
        assert_eq!(g.utilization_pct, Some(0));
        assert_eq!(g.pstate.as_deref(), Some("P8"));
        assert_eq!(g.mig, None);
    }

    #[test]
    fn query_excerpt_without_gpu_header() {
        let q = parse_query(
            "Clocks Throttle Reasons\n    Idle                              : Not Active\n    HW Slowdown                       : Active\n        HW Power Brake Slowdown       : Active\n\nClocks\n    Graphics                          : 382 MHz\n",
        );
        assert_eq!(q.gpus.len(), 1);
        assert_eq!(
            q.gpus[0].reasons,
            vec!["HW Slowdown", "HW Power Brake Slowdown"]
        );
    }

    #[test]
    fn assemble_joins_by_pci_and_index() {
        let t = parse_table(TABLE_560);
        let q = parse_query(QUERY_560);
        let topo = nvidia_topo::parse_topo(
            "\tGPU0\tGPU1\tCPU Affinity\tNUMA Affinity\tGPU NUMA ID\nGPU0\t X \tNV4\t0-23\t0\t\tN/A\nGPU1\tNV4\t X \t0-23\t0\t\tN/A\n",
        );
        let p2p = nvidia_topo::parse_p2p(" \tGPU0\tGPU1\t\n GPU0\tX\tOK\t\n GPU1\tOK\tX\t\n");
        let nvl = nvidia_nvlink::parse(
            "GPU 1: NVIDIA GeForce RTX 3090 (UUID: GPU-x)\n         Link 0: 14.062 GB/s\n",
        );
        let nv = assemble(Some(&t), Some(&q), Some(&topo), Some(&p2p), Some(&nvl));
        assert_eq!(nv.gpus.len(), 2);
        assert_eq!(nv.gpus[0].device_id.as_deref(), Some("0x2204"));
        assert_eq!(nv.gpus[1].device_id, None);
        assert_eq!(nv.gpus[1].nvlink.as_ref().map(|n| n.active), Some(1));
        assert_eq!(nv.gpus[0].cpu_affinity.as_deref(), Some("0-23"));
        assert_eq!(nv.links.len(), 1);
        assert_eq!(nv.links[0].kind.as_deref(), Some("NV4"));
        assert_eq!(nv.links[0].nvlinks, Some(4));
        assert_eq!(nv.links[0].p2p_read.as_deref(), Some("OK"));
        assert_eq!(nv.gpus[1].driver_version.as_deref(), Some("560.35.03"));
    }

    #[test]
    fn failure_texts_are_classified() {
        // fixtures/outputs/nvidia-smi-errors/, each from a public report.
        let cases = [
            (
                "Failed to initialize NVML: Driver/library version mismatch\n",
                "driver-mismatch",
            ),
            (
                "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running.\n",
                "no-driver",
            ),
            (
                "Failed to initialize NVML: Insufficient Permissions\n",
                "permissions",
            ),
            ("No devices were found\n", "no-devices"),
            (
                "Unable to determine the device handle for GPU 0000:0B:00.0: Unknown Error\n",
                "gpu-lost",
            ),
        ];
        for (text, class) in cases {
            let (f, _) = classify_failure(text);
            assert_eq!(f.map(|f| f.class), Some(class.to_string()), "{text}");
        }
        let (f, lost) = classify_failure(
            "$ nvidia-smi\nUnable to determine the device handle for GPU 0000:02:00.0: GPU is lost. Reboot the system to recover this GPU\n",
        );
        assert_eq!(f.map(|f| f.class).as_deref(), Some("gpu-lost"));
        assert_eq!(lost, vec!["0000:02:00.0"]);
        // No space after GPU (pdbear/syno_nvidia_gpu_driver #22), upper-case hex.
        let (_, lost) = classify_failure(
            "Unable to determine the device handle for GPU0000:07:00.0: Unknown Error",
        );
        assert_eq!(lost, vec!["0000:07:00.0"]);
        // A container that lost its devices (nvidia-docker #1671, #1730).
        assert_eq!(
            classify_failure("Failed to initialize NVML: Unknown Error\n")
                .0
                .map(|f| f.class)
                .as_deref(),
            Some("nvml-unknown")
        );
        // WSL's "GPU access blocked by the operating system" is none of them.
        assert_eq!(
            classify_failure(
                "Failed to initialize NVML: GPU access blocked by the operating system\n"
            )
            .0,
            None
        );
        assert_eq!(classify_failure(TABLE_560), (None, vec![]));
    }

    #[test]
    fn fault_cells_of_the_table() {
        let t = parse_table(&TABLE_560.replace(
            "| 30%   29C    P8             36W /  350W |",
            "| ERR!  ERR!   ERR!            N/A /  N/A  |",
        ));
        assert_eq!(t.gpus[0].errors, Vec::<String>::new());
        assert_eq!(
            t.gpus[1].errors,
            vec!["fan/temperature/performance state read ERR!"]
        );
        // A power reading of ERR! alone is transient (azhpc-diagnostics #77).
        let t = parse_table(
            "|   1  Tesla V100-PCIE...  On   | 00008ED0:00:00.0 Off |                    0 |\n| N/A   29C    P0   ERR! / 250W |    593MiB / 16160MiB |      0%      Default |\n",
        );
        assert_eq!(t.gpus.len(), 1);
        assert!(t.gpus[0].errors.is_empty(), "{:?}", t.gpus[0].errors);
        let t = parse_table(&TABLE_560.replace(
            "|       2MiB /  24576MiB |      0%      Default |\n|                                         |                        |                  N/A |\n+-----------------------------------------+------------------------+----------------------+\n|  No",
            "|       2MiB /  24576MiB | [GPU requires reset] |\n|                                         |                        |                  N/A |\n+-----------------------------------------+------------------------+----------------------+\n|  No",
        ));
        assert_eq!(t.gpus[1].errors, vec!["[GPU requires reset]"]);
    }

    #[test]
    fn a_row_of_err_only_is_a_fault_and_the_next_gpu_is_not() {
        // NVIDIA/gpu-operator #559 (driver 525.125.06): GPU 0 reads ERR! in
        // every cell, its name included; GPU 1 answers.
        let t = parse_table(include_str!(
            "../../fixtures/rigs/nv-2xa40-gpu0-err-row/cmd/nvidia-smi.out"
        ));
        assert_eq!(t.driver_version.as_deref(), Some("525.125.06"));
        assert_eq!(t.gpus.len(), 2);
        assert_eq!(t.gpus[0].name, "");
        assert_eq!(t.gpus[0].pci.as_deref(), Some("0000:19:00.0"));
        assert_eq!(
            t.gpus[0].errors,
            vec![
                "product name read ERR!",
                "fan/temperature/performance state read ERR!"
            ]
        );
        assert_eq!(t.gpus[1].name, "NVIDIA A40");
        assert!(t.gpus[1].errors.is_empty());
        assert_eq!(t.gpus[1].memory_total_mib, Some(46068));
    }

    #[test]
    fn garbage_does_not_panic() {
        for s in [
            "",
            "|",
            "||||",
            "| 0 x On | 0:0:0 |",
            "GPU 0:0\n  PCI\n    Device Id : 0x",
            "\u{0}",
        ] {
            let _ = parse_table(s);
            let _ = parse_query(s);
        }
    }
}
