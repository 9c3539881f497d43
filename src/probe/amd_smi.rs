//! `amd-smi`, the tool ROCm 6+ ships in place of rocm-smi: `static` (ASIC,
//! bus, VRAM, driver), `list` (PCI address and UUID), `metric` (the link as
//! negotiated now, VRAM in use), `version` (the ROCm release it was built
//! for), and `topology` (XGMI or PCIe between each GPU pair). Where amd-smi
//! is missing or its topology fails, `rocm-smi --showtopo` gives the pairs.
//!
//! Layouts (fixtures/outputs/amd-smi/): `--json` exists in every release, but
//! its shape moved: a bare list of GPU objects (ROCm 6.x), the same list
//! inside `{"gpu_data": [...]}` (amd-smi 26.x, ROCm 7), values as
//! `{"value": 16, "unit": "GT/s"}` (ROCm 6.1+) or plain numbers and strings
//! before; `target_graphics_version` only from ROCm 6.1; the topology as
//! per-target maps (`"link_type": {"gpu_1": "PCIE"}`, ROCm 6.0) or a `links`
//! list (6.1+). The text layout is `GPU: 0` blocks of indented `KEY: value`
//! lines; its topology is BDF-labelled tables (`LINK TYPE TABLE:`). Python
//! warnings may precede the JSON. rocm-smi's matrices are `GPUn`-labelled
//! under `==== Link Type between two GPUs ====` titles, sometimes with the
//! whitespace collapsed by a paste.

use std::collections::BTreeMap;
use std::sync::LazyLock;
use std::time::Duration;

use regex::Regex;
use serde_json::{Map, Value};

use crate::rig::{AmdLink, AmdSmi, AmdSmiGpu, ProbeReport};
use crate::source::{CmdOutput, CmdSpec, CmdStatus, Source};
use crate::text::{excerpt, regex, strip_ansi};

static PCI_ADDR: LazyLock<Regex> =
    LazyLock::new(|| regex(r"^([0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7])$"));
static GPU_LABEL: LazyLock<Regex> = LazyLock::new(|| regex(r"^GPU(\d{1,4})$"));

/// The first JSON value in `text` (after any warnings printed before it).
pub fn json_value(text: &str) -> Option<Value> {
    let mut offset = 0;
    let start = text.split_inclusive('\n').find_map(|line| {
        let here = offset;
        offset += line.len();
        let body = line.trim_start();
        (body.starts_with('[') || body.starts_with('{')).then(|| here + line.len() - body.len())
    })?;
    let mut it = serde_json::Deserializer::from_str(&text[start..]).into_iter::<Value>();
    it.next().and_then(Result::ok)
}

fn clean_line(raw: &str) -> String {
    let s = strip_ansi(raw).replace('\t', "    ");
    let t = s.trim_end();
    // A paste quoted as markdown keeps its indentation after the marker.
    match t.trim_start().strip_prefix("> ") {
        Some(rest) => rest.to_string(),
        None if t.trim_start() == ">" => String::new(),
        None => t.to_string(),
    }
}

/// The text layout (`GPU: 0` and indented `KEY: value` lines) as the JSON it
/// mirrors, keys lowercased: a list of GPU objects.
pub fn text_to_json(text: &str) -> Value {
    let mut gpus: Vec<Value> = Vec::new();
    // The open sections of the current GPU: (indent, key).
    let mut stack: Vec<(usize, String)> = Vec::new();
    let mut in_gpu = false;
    for raw in text.lines() {
        let line = clean_line(raw);
        let indent = line.len() - line.trim_start().len();
        let Some((k, v)) = line.trim().split_once(':') else {
            continue;
        };
        let key = k.trim().to_ascii_lowercase();
        let val = v.trim();
        if key.is_empty() || key.len() > 60 {
            continue;
        }
        if indent == 0 {
            stack.clear();
            in_gpu = key == "gpu" && val.parse::<u32>().is_ok();
            if in_gpu {
                let mut m = Map::new();
                m.insert("gpu".into(), Value::from(val.parse::<u32>().unwrap_or(0)));
                gpus.push(Value::Object(m));
            }
            continue;
        }
        if !in_gpu {
            continue;
        }
        while stack.last().is_some_and(|(i, _)| *i >= indent) {
            stack.pop();
        }
        let path: Vec<String> = stack.iter().map(|(_, k)| k.clone()).collect();
        let Some(obj) = gpus.last_mut().and_then(|root| descend(root, &path)) else {
            continue;
        };
        if val.is_empty() {
            obj.entry(key.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            stack.push((indent, key));
        } else {
            obj.entry(key).or_insert_with(|| Value::String(val.into()));
        }
    }
    Value::Array(gpus)
}

/// The object at `path` under `root`, made (or replacing a scalar) as needed.
fn descend<'a>(root: &'a mut Value, path: &[String]) -> Option<&'a mut Map<String, Value>> {
    let mut ptr = String::new();
    for k in path {
        let parent = root.pointer_mut(&ptr)?.as_object_mut()?;
        let e = parent
            .entry(k.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        if !e.is_object() {
            *e = Value::Object(Map::new());
        }
        ptr.push('/');
        ptr.push_str(&k.replace('~', "~0").replace('/', "~1"));
    }
    root.pointer_mut(&ptr)?.as_object_mut()
}

/// The GPU objects of any layout: a list, `{"gpu_data": [...]}`, or one GPU.
fn gpu_objects(v: &Value) -> Vec<&Map<String, Value>> {
    match v {
        Value::Array(a) => a.iter().filter_map(Value::as_object).collect(),
        Value::Object(o) => match o.get("gpu_data") {
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_object).collect(),
            _ if o.contains_key("gpu") => vec![o],
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

fn get<'a>(o: &'a Map<String, Value>, path: &[&str]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    let v = o.get(*first)?;
    if rest.is_empty() {
        Some(v)
    } else {
        get(v.as_object()?, rest)
    }
}

fn na(s: &str) -> bool {
    let s = s.trim();
    s.is_empty() || s.eq_ignore_ascii_case("n/a") || s == "N/A N/A"
}

/// A string fact: strings other than N/A, numbers as printed.
fn text_at(o: &Map<String, Value>, path: &[&str]) -> Option<String> {
    match get(o, path)? {
        Value::String(s) if !na(s) => Some(s.trim().chars().take(200).collect()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A number and its unit: `16`, `"16 GT/s"`, `{"value": 16, "unit": "GT/s"}`.
fn quantity(v: &Value) -> Option<(f64, Option<String>)> {
    match v {
        Value::Number(n) => n.as_f64().map(|f| (f, None)),
        Value::String(s) => {
            let mut it = s.split_whitespace();
            let n: f64 = it.next()?.parse().ok()?;
            Some((n, it.next().map(str::to_string)))
        }
        Value::Object(o) => {
            let (n, u) = quantity(o.get("value")?)?;
            let unit = o.get("unit").and_then(Value::as_str).map(str::to_string);
            Some((n, unit.or(u)))
        }
        _ => None,
    }
    .filter(|(n, _)| n.is_finite() && *n >= 0.0)
}

fn quantity_at(o: &Map<String, Value>, paths: &[&[&str]]) -> Option<(f64, Option<String>)> {
    paths.iter().find_map(|p| get(o, p).and_then(quantity))
}

fn int_at(o: &Map<String, Value>, paths: &[&[&str]]) -> Option<u32> {
    quantity_at(o, paths)
        .filter(|(n, _)| *n <= u32::MAX as f64)
        .map(|(n, _)| n as u32)
}

/// Bytes from an amd-smi size; amd-smi's MB are MiB (8176 MB for 8 GiB).
fn bytes(q: (f64, Option<String>)) -> Option<u64> {
    let (n, unit) = q;
    let mult = match unit.as_deref().map(str::to_ascii_uppercase).as_deref() {
        None | Some("MB" | "MIB") => 1u64 << 20,
        Some("GB" | "GIB") => 1 << 30,
        Some("KB" | "KIB") => 1 << 10,
        Some("B") => 1,
        Some(_) => return None,
    };
    let b = n * mult as f64;
    (b < u64::MAX as f64).then_some(b as u64)
}

/// GT/s from `16 GT/s`, `{"value": 16, "unit": "GT/s"}`, or the library's MT/s (16000).
fn gts(q: (f64, Option<String>)) -> Option<f64> {
    let (n, unit) = q;
    let v = match unit.as_deref().map(str::to_ascii_uppercase).as_deref() {
        Some("GT/S") => n,
        Some("MT/S") => n / 1000.0,
        None if n > 100.0 => n / 1000.0,
        None => n,
        Some(_) => return None,
    };
    (v > 0.0 && v < 1000.0).then_some(v)
}

fn pci(s: Option<String>) -> Option<String> {
    s.filter(|s| PCI_ADDR.is_match(s))
        .map(|s| s.to_ascii_lowercase())
}

fn index_of(o: &Map<String, Value>) -> Option<u32> {
    match o.get("gpu")? {
        Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|i| *i < 4096)
}

/// Parse `amd-smi static` (JSON or text) into GPUs.
pub fn parse_static(text: &str) -> Vec<AmdSmiGpu> {
    let v = json_value(text).unwrap_or_else(|| text_to_json(text));
    let mut out = Vec::new();
    for o in gpu_objects(&v) {
        let Some(index) = index_of(o) else { continue };
        // A GPU object of another subcommand (list, topology) is not a static one.
        if !["asic", "bus", "vram", "driver"]
            .iter()
            .any(|k| o.contains_key(*k))
        {
            continue;
        }
        out.push(AmdSmiGpu {
            index,
            pci: pci(text_at(o, &["bus", "bdf"])),
            name: text_at(o, &["asic", "market_name"]),
            device_id: text_at(o, &["asic", "device_id"]).map(|s| s.to_ascii_lowercase()),
            gfx: text_at(o, &["asic", "target_graphics_version"])
                .map(|s| s.to_ascii_lowercase())
                .filter(|s| s.starts_with("gfx")),
            compute_units: int_at(o, &[&["asic", "num_compute_units"]]),
            vram_bytes: quantity_at(
                o,
                &[
                    &["vram", "size"],
                    &["vram", "vram_size"],
                    &["vram", "vram_size_mb"],
                ],
            )
            .and_then(bytes),
            vram_type: text_at(o, &["vram", "type"]).or_else(|| text_at(o, &["vram", "vram_type"])),
            driver: text_at(o, &["driver", "name"])
                .or_else(|| text_at(o, &["driver", "driver_name"])),
            driver_version: text_at(o, &["driver", "version"])
                .or_else(|| text_at(o, &["driver", "driver_version"])),
            pcie_max_width: int_at(o, &[&["bus", "max_pcie_width"]]).filter(|w| *w > 0),
            pcie_max_speed_gts: quantity_at(o, &[&["bus", "max_pcie_speed"]]).and_then(gts),
            slot_type: text_at(o, &["bus", "slot_type"]),
            numa_node: quantity_at(o, &[&["numa", "node"]]).map(|(n, _)| n as i64),
            ..AmdSmiGpu::default()
        });
    }
    out
}

/// `amd-smi list`: (index, PCI address, UUID).
pub fn parse_list(text: &str) -> Vec<(u32, Option<String>, Option<String>)> {
    let v = json_value(text).unwrap_or_else(|| text_to_json(text));
    gpu_objects(&v)
        .into_iter()
        .filter_map(|o| {
            Some((
                index_of(o)?,
                pci(text_at(o, &["bdf"])),
                text_at(o, &["uuid"]),
            ))
        })
        .collect()
}

/// What `amd-smi metric` adds: the link now and VRAM in use.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metric {
    pub index: u32,
    pub pcie_width: Option<u32>,
    pub pcie_speed_gts: Option<f64>,
    pub vram_bytes: Option<u64>,
    pub vram_used_bytes: Option<u64>,
}

pub fn parse_metric(text: &str) -> Vec<Metric> {
    let v = json_value(text).unwrap_or_else(|| text_to_json(text));
    gpu_objects(&v)
        .into_iter()
        .filter_map(|o| {
            Some(Metric {
                index: index_of(o)?,
                pcie_width: int_at(o, &[&["pcie", "width"]]).filter(|w| *w > 0),
                pcie_speed_gts: quantity_at(o, &[&["pcie", "speed"]]).and_then(gts),
                vram_bytes: quantity_at(o, &[&["mem_usage", "total_vram"]]).and_then(bytes),
                vram_used_bytes: quantity_at(o, &[&["mem_usage", "used_vram"]]).and_then(bytes),
            })
        })
        .collect()
}

/// `AMDSMI Tool: 24.5.1+c5106a9 | AMDSMI Library version: 24.5.2.0 | ROCm version: 6.1.2`
/// -> (tool, ROCm). JSON (`{"tool": ..., "version": ..., "rocm_version": ...}`) too.
pub fn parse_version(text: &str) -> (Option<String>, Option<String>) {
    if let Some(v) = json_value(text) {
        let o = match &v {
            Value::Array(a) => a.first().and_then(Value::as_object),
            Value::Object(o) => Some(o),
            _ => None,
        };
        if let Some(o) = o {
            return (text_at(o, &["version"]), text_at(o, &["rocm_version"]));
        }
    }
    let (mut tool, mut rocm) = (None, None);
    for line in text.lines() {
        for part in strip_ansi(line).split('|') {
            let Some((k, v)) = part.split_once(':') else {
                continue;
            };
            let v = v.trim();
            if na(v) {
                continue;
            }
            match k.trim() {
                "AMDSMI Tool" => tool = Some(v.chars().take(80).collect()),
                "ROCm version" => rocm = Some(v.chars().take(40).collect()),
                _ => {}
            }
        }
    }
    (tool, rocm)
}

#[derive(Default)]
struct PairFacts {
    a_pci: Option<String>,
    b_pci: Option<String>,
    kind: Option<String>,
    hops: Option<u32>,
    weight: Option<u32>,
}

fn link_kind(s: &str) -> Option<String> {
    let k = s.trim().to_ascii_uppercase();
    (!(k.is_empty() || k == "SELF" || k == "0" || k == "N/A" || k == "X")).then_some(k)
}

fn small(v: &Value) -> Option<u32> {
    quantity(v)
        .filter(|(n, _)| *n < 1_000_000.0)
        .map(|(n, _)| n as u32)
}

fn pairs_from_json(v: &Value, out: &mut BTreeMap<(u32, u32), PairFacts>) {
    for o in gpu_objects(v) {
        let Some(me) = index_of(o) else { continue };
        let my_pci = pci(text_at(o, &["bdf"]));
        if let Some(Value::Array(links)) = o.get("links") {
            for l in links.iter().filter_map(Value::as_object) {
                let Some(other) = index_of(l) else { continue };
                if other == me {
                    continue;
                }
                let key = (me.min(other), me.max(other));
                let e = out.entry(key).or_default();
                let other_pci = pci(text_at(l, &["bdf"]));
                let (pa, pb) = if me < other {
                    (my_pci.clone(), other_pci)
                } else {
                    (other_pci, my_pci.clone())
                };
                e.a_pci = e.a_pci.take().or(pa);
                e.b_pci = e.b_pci.take().or(pb);
                e.kind = e.kind.take().or_else(|| {
                    l.get("link_type")
                        .and_then(Value::as_str)
                        .and_then(link_kind)
                });
                e.hops = e.hops.or_else(|| l.get("num_hops").and_then(small));
                e.weight = e.weight.or_else(|| l.get("weight").and_then(small));
            }
            continue;
        }
        // ROCm 6.0: one map per property, keyed `gpu_N`.
        let per = |prop: &str| -> Vec<(u32, &Value)> {
            o.get(prop)
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| {
                            let n = k.strip_prefix("gpu_")?.parse::<u32>().ok()?;
                            (n != me && n < 4096).then_some((n, v))
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        for (other, v) in per("link_type") {
            let e = out.entry((me.min(other), me.max(other))).or_default();
            e.kind = e.kind.take().or_else(|| v.as_str().and_then(link_kind));
        }
        for (other, v) in per("hops") {
            let e = out.entry((me.min(other), me.max(other))).or_default();
            e.hops = e.hops.or_else(|| small(v));
        }
        for (other, v) in per("weight") {
            let e = out.entry((me.min(other), me.max(other))).or_default();
            e.weight = e.weight.or_else(|| small(v));
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Table {
    Weight,
    Hops,
    Kind,
}

/// amd-smi's BDF-labelled tables and rocm-smi's `GPUn` matrices.
fn pairs_from_tables(text: &str, out: &mut BTreeMap<(u32, u32), PairFacts>) {
    let mut table: Option<Table> = None;
    let mut columns: Vec<String> = Vec::new();
    let mut bdf_index: BTreeMap<String, u32> = BTreeMap::new();
    for raw in text.lines() {
        let line = clean_line(raw);
        let t = line.trim();
        let upper = t.to_ascii_uppercase();
        let title =
            t.ends_with("TABLE:") || t.starts_with('=') || upper.contains("BETWEEN TWO GPUS");
        if title {
            table = if upper.contains("WEIGHT") {
                Some(Table::Weight)
            } else if upper.contains("HOPS") {
                Some(Table::Hops)
            } else if upper.contains("LINK TYPE") {
                Some(Table::Kind)
            } else {
                None
            };
            columns.clear();
            continue;
        }
        let Some(which) = table else { continue };
        let tokens: Vec<&str> = t.split_whitespace().collect();
        let Some(first) = tokens.first() else {
            continue;
        };
        let label = |tok: &str| GPU_LABEL.is_match(tok) || PCI_ADDR.is_match(tok);
        if tokens.iter().all(|t| label(t)) {
            columns = tokens.iter().map(|t| t.to_ascii_lowercase()).collect();
            for c in &columns {
                if PCI_ADDR.is_match(c) {
                    let n = bdf_index.len() as u32;
                    bdf_index.entry(c.clone()).or_insert(n);
                }
            }
            continue;
        }
        if !label(first) || columns.is_empty() {
            continue;
        }
        let id = |tok: &str| -> Option<(u32, Option<String>)> {
            let tok = tok.to_ascii_lowercase();
            if let Some(c) = GPU_LABEL.captures(&tok.to_ascii_uppercase()) {
                return c[1].parse().ok().map(|n| (n, None));
            }
            bdf_index.get(&tok).map(|n| (*n, Some(tok.clone())))
        };
        let Some((row, row_pci)) = id(first) else {
            continue;
        };
        for (col, cell) in columns.iter().zip(tokens[1..].iter()) {
            let Some((c, col_pci)) = id(col) else {
                continue;
            };
            if c <= row {
                continue;
            }
            let e = out.entry((row, c)).or_default();
            e.a_pci = e.a_pci.take().or(row_pci.clone());
            e.b_pci = e.b_pci.take().or(col_pci);
            match which {
                Table::Kind => e.kind = e.kind.take().or_else(|| link_kind(cell)),
                Table::Hops => e.hops = e.hops.or_else(|| cell.parse().ok()),
                Table::Weight => e.weight = e.weight.or_else(|| cell.parse().ok()),
            }
        }
    }
}

/// Parse `amd-smi topology` (JSON or text) or `rocm-smi --showtopo` into pairs.
pub fn parse_topology(text: &str, source: &str) -> Vec<AmdLink> {
    let mut pairs = BTreeMap::new();
    match json_value(text) {
        Some(v) => pairs_from_json(&v, &mut pairs),
        None => pairs_from_tables(text, &mut pairs),
    }
    pairs
        .into_iter()
        .filter(|(_, f)| f.kind.is_some() || f.hops.is_some() || f.weight.is_some())
        .map(|((a, b), f)| AmdLink {
            a,
            b,
            a_pci: f.a_pci,
            b_pci: f.b_pci,
            kind: f.kind,
            hops: f.hops,
            weight: f.weight,
            source: source.to_string(),
            ..AmdLink::default()
        })
        .collect()
}

fn pairs_detail(n: usize) -> String {
    format!("{n} GPU pair{}", if n == 1 { "" } else { "s" })
}

/// A report named `name` whose words name the command (`amd-smi topology`)
/// and, when it is missing, the program.
fn named_report(name: &str, command: &str, program: &str, out: &CmdOutput) -> ProbeReport {
    let mut r = super::rocm::report(command, out, String::new());
    r.name = name.to_string();
    if out.status == CmdStatus::Missing {
        r.detail = format!("{program} is not on PATH");
    }
    r
}

/// The output says the release has no `--json` (argparse's usage error).
fn json_refused(out: &CmdOutput) -> bool {
    matches!(out.status, CmdStatus::Exit(c) if c != 0) && {
        let all = format!("{}{}", out.stderr_text(), out.stdout_text());
        all.contains("unrecognized arguments") && all.contains("--json")
    }
}

/// `amd-smi SUB --json`, and `amd-smi SUB` when that release refuses `--json`.
fn run_sub(src: &dyn Source, sub: &str, timeout: Duration) -> CmdOutput {
    let name = format!("amd-smi-{sub}");
    let out = src.run(&CmdSpec::new(&name, &["amd-smi", sub, "--json"], timeout));
    if json_refused(&out) {
        return src.run(&CmdSpec::new(
            &format!("{name}-text"),
            &["amd-smi", sub],
            timeout,
        ));
    }
    out
}

/// Run amd-smi (and the topology, when `want_topology`: two or more AMD
/// GPUs). The subcommands run in parallel, each with `timeout`.
pub fn probe(
    src: &dyn Source,
    timeout: Duration,
    want_topology: bool,
) -> (AmdSmi, Vec<AmdLink>, Vec<ProbeReport>) {
    let crashed = || CmdOutput::with_status(CmdStatus::Failed("the probe crashed".into()));
    let (st, list, metric, version, topo) = std::thread::scope(|s| {
        let st = s.spawn(|| run_sub(src, "static", timeout));
        let list = s.spawn(|| run_sub(src, "list", timeout));
        let metric = s.spawn(|| run_sub(src, "metric", timeout));
        let version = s.spawn(|| {
            src.run(&CmdSpec::new(
                "amd-smi-version",
                &["amd-smi", "version"],
                timeout,
            ))
        });
        let topo = want_topology.then(|| s.spawn(|| run_sub(src, "topology", timeout)));
        (
            st.join().unwrap_or_else(|_| crashed()),
            list.join().unwrap_or_else(|_| crashed()),
            metric.join().unwrap_or_else(|_| crashed()),
            version.join().unwrap_or_else(|_| crashed()),
            topo.map(|t| t.join().unwrap_or_else(|_| crashed())),
        )
    });
    let mut smi = AmdSmi::default();
    let mut report = super::rocm::report("amd-smi", &st, String::new());
    if st.status == CmdStatus::Exit(0) {
        let text = st.stdout_text();
        smi.layout = Some(
            if json_value(&text).is_some() {
                "json"
            } else {
                "text"
            }
            .into(),
        );
        smi.gpus = parse_static(&text);
        if smi.gpus.is_empty() {
            report.status = "unparsed".into();
            report.detail = format!(
                "amd-smi static exited 0 but printed no GPU rigdoctor could read: {}",
                excerpt(&format!("{text}{}", st.stderr_text()))
            );
        } else {
            smi.listed = true;
        }
    }
    if list.status == CmdStatus::Exit(0) {
        for (i, p, u) in parse_list(&list.stdout_text()) {
            if let Some(g) = smi.gpus.iter_mut().find(|g| g.index == i) {
                g.pci = g.pci.take().or(p);
                g.uuid = u;
            }
        }
    }
    if metric.status == CmdStatus::Exit(0) {
        for m in parse_metric(&metric.stdout_text()) {
            if let Some(g) = smi.gpus.iter_mut().find(|g| g.index == m.index) {
                g.pcie_width = m.pcie_width;
                g.pcie_speed_gts = m.pcie_speed_gts;
                g.vram_bytes = g.vram_bytes.or(m.vram_bytes);
                g.vram_used_bytes = m.vram_used_bytes;
            }
        }
    }
    if version.status == CmdStatus::Exit(0) {
        (smi.tool_version, smi.rocm_version) = parse_version(&version.stdout_text());
    }
    if smi.listed {
        let side = |name: &str, o: &CmdOutput| match &o.status {
            CmdStatus::Exit(0) => None,
            CmdStatus::Missing => None,
            CmdStatus::Timeout => Some(format!("{name} timed out")),
            _ => Some(format!("{name} failed")),
        };
        let notes: Vec<String> = [side("list", &list), side("metric", &metric)]
            .into_iter()
            .flatten()
            .collect();
        report.detail = format!(
            "{} GPU{} ({}){}",
            smi.gpus.len(),
            if smi.gpus.len() == 1 { "" } else { "s" },
            smi.layout.as_deref().unwrap_or("text"),
            if notes.is_empty() {
                String::new()
            } else {
                format!("; {}", notes.join(", "))
            }
        );
    }
    let mut reports = vec![report];
    let mut links = Vec::new();
    if let Some(t) = topo {
        let mut r = named_report("amd-smi-topology", "amd-smi topology", "amd-smi", &t);
        if t.status == CmdStatus::Exit(0) {
            links = parse_topology(&t.stdout_text(), "amd-smi-topology");
            r.detail = pairs_detail(links.len());
            if links.is_empty() {
                r.status = "unparsed".into();
                r.detail = format!(
                    "amd-smi topology exited 0 but printed no GPU pair rigdoctor could read: {}",
                    excerpt(&t.stdout_text())
                );
            }
        }
        let ok = r.status == "ok";
        reports.push(r);
        if !ok {
            // An older ROCm, or amd-smi broken: rocm-smi still knows the pairs.
            let t = src.run(&CmdSpec::new(
                "rocm-smi-showtopo",
                &["rocm-smi", "--showtopo"],
                timeout,
            ));
            let mut r = named_report("rocm-smi-showtopo", "rocm-smi --showtopo", "rocm-smi", &t);
            if t.status == CmdStatus::Exit(0) {
                links = parse_topology(&t.stdout_text(), "rocm-smi-showtopo");
                r.detail = pairs_detail(links.len());
                if links.is_empty() {
                    r.status = "unparsed".into();
                    r.detail = format!(
                        "rocm-smi --showtopo exited 0 but printed no GPU pair rigdoctor could read: {}",
                        excerpt(&t.stdout_text())
                    );
                }
            }
            reports.push(r);
        }
    }
    (smi, links, reports)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_layout_nests_sections() {
        let g = parse_static(
            "GPU: 0\n    ASIC:\n        MARKET_NAME: AMD Instinct MI350X\n        DEVICE_ID: 0x75a0\n        NUM_COMPUTE_UNITS: 128\n        TARGET_GRAPHICS_VERSION: gfx950\n    BUS:\n        BDF: 0000:05:00.0\n        MAX_PCIE_WIDTH: 16\n        MAX_PCIE_SPEED: 32 GT/s\n        SLOT_TYPE: OAM\n    DRIVER:\n        NAME: amdgpu\n        VERSION: 6.18.3\n",
        );
        assert_eq!(g.len(), 1);
        assert_eq!(g[0].name.as_deref(), Some("AMD Instinct MI350X"));
        assert_eq!(g[0].gfx.as_deref(), Some("gfx950"));
        assert_eq!(g[0].pci.as_deref(), Some("0000:05:00.0"));
        assert_eq!(g[0].pcie_max_speed_gts, Some(32.0));
        assert_eq!(g[0].compute_units, Some(128));
        assert_eq!(g[0].driver_version.as_deref(), Some("6.18.3"));
    }

    #[test]
    fn json_after_warnings_and_in_gpu_data() {
        let g = parse_static(
            "/usr/lib/python3.14/site-packages/amdsmi/amdsmi_interface.py:3569: SyntaxWarning: 'return' in a 'finally' block\n  return return_dictionary\n{\n \"gpu_data\": [{\"gpu\": 0, \"asic\": {\"market_name\": \"AMD Radeon RX 7800 XT\", \"target_graphics_version\": \"gfx1101\"}, \"bus\": {\"bdf\": \"0000:03:00.0\", \"max_pcie_speed\": {\"value\": 16, \"unit\": \"GT/s\"}}, \"vram\": {\"size\": {\"value\": 16368, \"unit\": \"MB\"}}}]}",
        );
        assert_eq!(g.len(), 1);
        assert_eq!(g[0].gfx.as_deref(), Some("gfx1101"));
        assert_eq!(g[0].vram_bytes, Some(16368 << 20));
        assert_eq!(g[0].pcie_max_speed_gts, Some(16.0));
    }

    #[test]
    fn versions() {
        assert_eq!(
            parse_version(
                "AMDSMI Tool: 24.5.1+c5106a9 | AMDSMI Library version: 24.5.2.0 | ROCm version: 6.1.2\n"
            ),
            (Some("24.5.1+c5106a9".into()), Some("6.1.2".into()))
        );
        assert_eq!(
            parse_version(
                "AMDSMI Tool: 26.1.0+b5522cc8 | AMDSMI Library version: 26.1.0 | ROCm version: N/A"
            )
            .1,
            None
        );
    }

    #[test]
    fn topology_layouts() {
        let old = "[{\"gpu\": 0, \"weight\": {\"gpu_0\": 0, \"gpu_1\": 40}, \"hops\": {\"gpu_0\": 0, \"gpu_1\": 2}, \"link_type\": {\"gpu_0\": \"SELF\", \"gpu_1\": \"PCIE\"}}, {\"gpu\": 1, \"link_type\": {\"gpu_0\": \"PCIE\", \"gpu_1\": \"SELF\"}}]";
        let l = parse_topology(old, "amd-smi-topology");
        assert_eq!(l.len(), 1);
        assert_eq!(
            (l[0].kind.as_deref(), l[0].hops, l[0].weight),
            (Some("PCIE"), Some(2), Some(40))
        );
        let new = "[{\"gpu\": 0, \"bdf\": \"0000:08:00.0\", \"links\": [{\"gpu\": 0, \"bdf\": \"0000:08:00.0\", \"link_type\": \"SELF\"}, {\"gpu\": 1, \"bdf\": \"0000:44:00.0\", \"link_status\": \"DISABLED\", \"link_type\": \"PCIE\"}]}]";
        let l = parse_topology(new, "amd-smi-topology");
        assert_eq!(l[0].b_pci.as_deref(), Some("0000:44:00.0"));
        let text = "LINK TYPE TABLE:\n             0000:0c:00.0 0000:22:00.0\n0000:0c:00.0 SELF         XGMI\n0000:22:00.0 XGMI         SELF\n\nHOPS TABLE:\n             0000:0c:00.0 0000:22:00.0\n0000:0c:00.0 0            1\n0000:22:00.0 1            0\n";
        let l = parse_topology(text, "amd-smi-topology");
        assert_eq!(l.len(), 1);
        assert_eq!((l[0].kind.as_deref(), l[0].hops), (Some("XGMI"), Some(1)));
        assert_eq!(l[0].a_pci.as_deref(), Some("0000:0c:00.0"));
        let rocm = "========================== Link Type between two GPUs ==========================\nGPU0 GPU1\nGPU0 0 PCIE\nGPU1 PCIE 0\n";
        let l = parse_topology(rocm, "rocm-smi-showtopo");
        assert_eq!((l[0].a, l[0].b, l[0].kind.as_deref()), (0, 1, Some("PCIE")));
    }

    #[test]
    fn a_release_without_json_is_told_by_argparse() {
        // Python argparse's own wording for an unknown flag (exit 2); any
        // other failure is the command's answer, not a reason to retry.
        let mut o = CmdOutput::with_status(CmdStatus::Exit(2));
        o.stderr =
            b"usage: amd-smi static [-h] ...\namd-smi: error: unrecognized arguments: --json\n"
                .to_vec();
        assert!(json_refused(&o));
        o.stderr = b"ERROR:root:Unable to detect any GPU devices\n".to_vec();
        assert!(!json_refused(&o));
        let ok = CmdOutput::with_status(CmdStatus::Exit(0));
        assert!(!json_refused(&ok));
    }

    #[test]
    fn garbage_does_not_panic() {
        for s in [
            "",
            "GPU: 0",
            "GPU: 99999999999\n    BUS:\n",
            "[",
            "{\"gpu_data\": 3}",
            "[{\"gpu\": -1}]",
            "[{\"gpu\": 0, \"links\": [{\"gpu\": 1e99}]}]",
            "GPU0 GPU1\nGPU0 0 PCIE",
            "LINK TYPE TABLE:\nGPU0\nGPU0 x y z",
            "  :\n:\n> GPU: 1\n>",
            "\u{0}",
        ] {
            let _ = parse_static(s);
            let _ = parse_list(s);
            let _ = parse_metric(s);
            let _ = parse_version(s);
            let _ = parse_topology(s, "t");
        }
    }
}
