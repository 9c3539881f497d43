//! The report of one check: verdict, area lines, diagnoses, facts, probes.
//! This is the model every renderer prints; renderers decide nothing.
//!
//! JSON shape (`--format json`, schema `rigdoctor/check/1`, design.md
//! "Fixed interfaces"): `schema`, `verdict`, `diagnoses[]` (`id`, `severity`,
//! `title`, `evidence`, `explain`, `fix`, `refs`, plus `area`), `facts`
//! (rig.rs), `probes[]` (`name`, `status`, `duration_ms`, `detail`); and the
//! additions `mode`, `summary`, `areas[]`, `rule_errors[]`.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Diagnosis, Evaluation, RuleClass, Severity, human_bytes};
use crate::rig::{ProbeReport, Rig};
use crate::source::Mode;

pub const SCHEMA: &str = "rigdoctor/check/1";

#[derive(Debug, Clone, Serialize, PartialEq, schemars::JsonSchema)]
pub struct Summary {
    pub errors: usize,
    pub warnings: usize,
    pub infos: usize,
}

/// One line of the area page.
#[derive(Debug, Clone, Serialize, PartialEq, schemars::JsonSchema)]
pub struct Area {
    pub area: String,
    pub label: String,
    /// `ok`, `info`, `warn`, `error`, `unknown` (the probe could not look), `skip` (not applicable).
    pub status: String,
    pub summary: String,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Report {
    #[schemars(extend("const" = "rigdoctor/check/1"))]
    pub schema: &'static str,
    /// `ok`, `warn` or `error`: the most severe diagnosis (info counts as ok).
    #[schemars(extend("enum" = ["ok", "warn", "error"]))]
    pub verdict: &'static str,
    pub mode: Mode,
    pub summary: Summary,
    pub areas: Vec<Area>,
    pub diagnoses: Vec<Diagnosis>,
    pub facts: Rig,
    pub probes: Vec<ProbeReport>,
    /// Rules that failed to evaluate (a rule bug, never a finding).
    pub rule_errors: Vec<String>,
    /// `--ignore ID`: the ids whose findings this run left out (a site has
    /// accepted them), each once; absent when none were.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ignored: Vec<String>,
    /// Of `ignored`, those the site config accepts: id → the reason it gives
    /// (the page shows it); absent when none.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub ignored_reasons: BTreeMap<String, String>,
}

impl Report {
    /// Is any diagnosis at or above `level`?
    pub fn fails(&self, level: Severity) -> bool {
        self.diagnoses.iter().any(|d| d.severity >= level)
    }

    /// The diagnoses of area `area`, most severe first.
    pub fn findings_of<'a>(&'a self, area: &'a str) -> impl Iterator<Item = &'a Diagnosis> + 'a {
        self.diagnoses.iter().filter(move |d| d.area == area)
    }

    pub fn summary_line(&self) -> String {
        let s = &self.summary;
        let plural =
            |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        let mut line = format!(
            "{}, {}, {}",
            plural(s.errors, "error", "errors"),
            plural(s.warnings, "warning", "warnings"),
            plural(s.infos, "note", "notes")
        );
        let blind: Vec<String> = self
            .probes
            .iter()
            .filter(|p| {
                matches!(
                    p.status.as_str(),
                    "timeout" | "failed" | "unparsed" | "denied"
                )
            })
            .map(|p| format!("{} ({})", p.name, p.status))
            .collect();
        if !blind.is_empty() {
            line.push_str(&format!("; could not look: {}", blind.join(", ")));
        }
        let (site, flag): (Vec<&String>, Vec<&String>) = self
            .ignored
            .iter()
            .partition(|id| self.ignored_reasons.contains_key(*id));
        let list = |ids: &[&String]| {
            ids.iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        if !flag.is_empty() {
            line.push_str(&format!("; ignored (--ignore): {}", list(&flag)));
        }
        if !site.is_empty() {
            line.push_str(&format!("; accepted by the site config: {}", list(&site)));
        }
        format!(
            "{line} — verdict: {}",
            super::rules::status_word(self.verdict)
        )
    }
}

/// The facts as rules see them: the rig, plus `probes` as a map by name and
/// `probe_list`, the same reports in the order the probes ran. A rule that
/// iterates over probes uses the list: a CEL map has no order, so its
/// diagnoses would come out in a different order on every run.
pub fn facts_json(rig: &Rig, probes: &[ProbeReport]) -> serde_json::Value {
    let mut v = serde_json::to_value(rig).unwrap_or(serde_json::Value::Null);
    let map: serde_json::Map<String, serde_json::Value> = probes
        .iter()
        .map(|p| {
            (
                p.name.clone(),
                serde_json::to_value(p).unwrap_or(serde_json::Value::Null),
            )
        })
        .collect();
    if let serde_json::Value::Object(o) = &mut v {
        o.insert("probes".into(), serde_json::Value::Object(map));
        o.insert(
            "probe_list".into(),
            serde_json::to_value(probes).unwrap_or(serde_json::Value::Null),
        );
    }
    v
}

/// Probes that could not look: they failed, or (for the PCI bus) found nothing to read.
pub fn blind(probes: &[ProbeReport]) -> impl Iterator<Item = &ProbeReport> {
    probes.iter().filter(|p| {
        matches!(
            p.status.as_str(),
            "timeout" | "failed" | "unparsed" | "denied"
        ) || (p.name == "pci" && p.status == "missing")
    })
}

fn probe_status<'a>(probes: &'a [ProbeReport], name: &str) -> &'a str {
    probes
        .iter()
        .find(|p| p.name == name)
        .map(|p| p.status.as_str())
        .unwrap_or("missing")
}

fn short_pci(p: &str) -> &str {
    p.strip_prefix("0000:").unwrap_or(p)
}

/// Packages worth naming on the Python line.
const NOTABLE: &[&str] = &[
    "torch",
    "intel-extension-for-pytorch",
    "ipex-llm",
    "vllm",
    "llama-cpp-python",
    "bitsandbytes",
    "oneccl-bind-pt",
    "pytorch-triton-xpu",
    "intel-sycl-rt",
    "dpcpp-cpp-rt",
    "triton",
];

/// Variables not worth naming on the Environment line (always set).
const QUIET_VARS: &[&str] = &[
    "PATH",
    "LD_LIBRARY_PATH",
    "VIRTUAL_ENV",
    "CONDA_PREFIX",
    "CONDA_DEFAULT_ENV",
    "PYTHONPATH",
];

fn area_summaries(rig: &Rig, probes: &[ProbeReport]) -> Vec<AreaLine> {
    let h = &rig.host;
    let mut host = Vec::new();
    if let Some(os) = &h.os_name {
        host.push(os.clone());
    }
    if let Some(k) = &h.kernel {
        host.push(format!("kernel {k}"));
    }
    if let Some(c) = &h.cpu_model {
        host.push(match h.cpus {
            Some(n) => format!("{c} ({n} threads)"),
            None => c.clone(),
        });
    }
    if let Some(m) = h.mem_total_bytes {
        host.push(format!("{} RAM", human_bytes(m as f64)));
    }
    if let Some(n) = h.numa_nodes {
        host.push(format!("{n} NUMA node{}", if n == 1 { "" } else { "s" }));
    }
    // Only a container known to be one is named: unknown says nothing.
    if rig.container.inside == Some(true) {
        let shm = rig
            .container
            .shm_bytes
            .map(|b| format!(" (/dev/shm {})", human_bytes(b as f64)))
            .unwrap_or_default();
        host.push(match &rig.container.engine {
            Some(e) => format!("inside a {e} container{shm}"),
            None => format!("inside a container{shm}"),
        });
    }

    let compute: Vec<_> = rig.gpus.iter().filter(|g| g.compute).collect();
    let others = rig.gpus.len() - compute.len();
    let mut gpus = if probe_status(probes, "pci") != "ok" {
        "could not look at the PCI bus".to_string()
    } else if compute.is_empty() {
        "no GPU on the PCI bus".to_string()
    } else {
        format!(
            "{} on the bus: {}",
            compute.len(),
            super::capped(
                &compute
                    .iter()
                    .map(|g| format!("{} at {}", g.name, short_pci(&g.pci)))
                    .collect::<Vec<_>>(),
                ", "
            )
        )
    };
    // Two 16 GB cards are two 16 GB pools, not one of 32 GB.
    let discrete: Vec<u64> = compute
        .iter()
        .filter(|g| g.discrete == Some(true))
        .filter_map(|g| g.vram_bytes)
        .collect();
    if discrete.len() >= 2 {
        let total: u64 = discrete.iter().sum();
        let sizes: Vec<String> = if discrete.len() <= super::LIST_CAP {
            discrete.iter().map(|b| human_bytes(*b as f64)).collect()
        } else {
            // Many cards: `60 x 24 GiB + 4 x 16 GiB`, sizes in bus order.
            let mut groups: Vec<(u64, usize)> = Vec::new();
            for b in &discrete {
                match groups.iter_mut().find(|(size, _)| size == b) {
                    Some((_, n)) => *n += 1,
                    None => groups.push((*b, 1)),
                }
            }
            groups
                .iter()
                .map(|(b, n)| format!("{n} x {}", human_bytes(*b as f64)))
                .collect()
        };
        gpus.push_str(&format!(
            " ({} of VRAM: {} separate pools, not one of {})",
            super::capped(&sizes, " + "),
            discrete.len(),
            human_bytes(total as f64)
        ));
    }
    if others > 0 {
        gpus.push_str(&format!(
            " (and {others} display adapter{} that cannot run models)",
            if others == 1 { "" } else { "s" }
        ));
    }

    let mut by_driver: BTreeMap<String, usize> = BTreeMap::new();
    for g in &compute {
        *by_driver
            .entry(g.driver.clone().unwrap_or_else(|| "no driver".into()))
            .or_default() += 1;
    }
    let drivers = if compute.is_empty() {
        "nothing to drive".to_string()
    } else {
        by_driver
            .iter()
            .map(|(d, n)| format!("{d} on {n} of {}", compute.len()))
            .collect::<Vec<_>>()
            .join(", ")
    };

    let sycl_status = probe_status(probes, "sycl-ls");
    let sycl = match sycl_status {
        "missing" => "sycl-ls is not installed".to_string(),
        "timeout" => "sycl-ls did not answer".to_string(),
        _ if !rig.sycl.listed => "sycl-ls could not list devices".to_string(),
        _ => {
            let listed = rig.sycl.devices.len();
            let gpus: Vec<_> = rig
                .sycl
                .visible
                .iter()
                .filter(|v| v.kind == "gpu")
                .collect();
            let l0: Vec<String> = gpus
                .iter()
                .filter(|v| v.backend == "level_zero")
                .map(|v| format!("level_zero:{} {}", v.index, v.name))
                .collect();
            let others = gpus.len() - l0.len();
            let mut s = format!(
                "{listed} device{} listed",
                if listed == 1 { "" } else { "s" }
            );
            if let Some(rel) = &rig.oneapi.active {
                s.push_str(&format!(" by oneAPI {rel}"));
            }
            if let Some(sel) = &rig.sycl.selector {
                s.push_str(&format!(", ONEAPI_DEVICE_SELECTOR={sel}"));
            }
            match (l0.is_empty(), others) {
                (true, 0) => s.push_str("; apps see no GPU"),
                (true, n) => s.push_str(&format!(
                    "; apps see {n} GPU{} through OpenCL only",
                    if n == 1 { "" } else { "s" }
                )),
                (false, 0) => s.push_str(&format!("; apps see {}", l0.join(", "))),
                (false, n) => s.push_str(&format!(
                    "; apps see {} (and {n} through OpenCL)",
                    l0.join(", ")
                )),
            }
            s
        }
    };
    let sycl_skip = sycl_status == "missing" && !rig.gpus.iter().any(|g| g.vendor == "intel");

    let py = &rig.python;
    let python = match probe_status(probes, "python-packages") {
        "missing" => "no Python interpreter found".to_string(),
        "ok" => {
            let mut parts = vec![format!(
                "Python {} ({})",
                py.version.as_deref().unwrap_or("?"),
                py.interpreter.as_deref().unwrap_or("?")
            )];
            for n in NOTABLE {
                if let Some(v) = py.packages.get(*n) {
                    parts.push(format!("{n} {v}"));
                }
            }
            parts.join(", ")
        }
        other => format!("could not read the packages ({other})"),
    };
    // Why the Python probe was slow (issue 15: 193 ms through a pyenv shim);
    // PY-SHIM says what to do about it.
    let python = match &py.shim {
        Some(shim) => {
            let who = if shim.kind == "script" {
                "a wrapper script".to_string()
            } else {
                format!("a {} shim", shim.kind)
            };
            format!("{python}; python3 on PATH ({}) is {who}", shim.path)
        }
        None => python,
    };
    let python = match &py.deep {
        None => python,
        Some(d) => {
            let kind = d.error_kind.as_deref();
            let timed_out = probe_status(probes, "python-deep") == "timeout";
            let seen = match (&d.torch_version, d.xpu_available) {
                // Killed at --deep-timeout: it may have been about to import.
                (None, _) if timed_out => "importing torch did not finish (timeout)".to_string(),
                (None, _) => match kind {
                    Some(k) => format!("torch does not import ({k})"),
                    None => "torch does not import".to_string(),
                },
                (Some(v), Some(true)) => format!(
                    "torch {v} sees {} XPU device{}",
                    d.xpu_device_count.unwrap_or(0),
                    if d.xpu_device_count == Some(1) {
                        ""
                    } else {
                        "s"
                    }
                ),
                (Some(v), Some(false)) => format!("torch {v} sees no XPU device"),
                (Some(v), None) => match kind {
                    Some(k) => format!("torch {v} imports, but the import check failed ({k})"),
                    None => format!("torch {v} imports"),
                },
            };
            let error = match (kind, d.xpu_available) {
                (Some(k), Some(true)) => format!(", but an import failed ({k})"),
                _ => String::new(),
            };
            format!("{python}; --deep: {seen}{error}")
        }
    };

    let set: Vec<String> = rig
        .env
        .iter()
        .filter(|(k, _)| !QUIET_VARS.contains(&k.as_str()))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let env = if set.is_empty() {
        "no GPU runtime variables set".to_string()
    } else {
        set.join(", ")
    };

    let unknown_if = |status: &str| -> Option<&'static str> {
        match status {
            "ok" => None,
            "missing" | "skip" => Some("skip"),
            _ => Some("unknown"),
        }
    };
    let nvidia = nvidia_area(rig, probes);
    let amd = amd_area(rig, probes);
    let vulkan = vulkan_area(rig, probes);
    let mut areas = vec![
        (
            "host",
            "Host",
            unknown_if(probe_status(probes, "host")),
            host.join(", "),
        ),
        (
            "gpus",
            "GPUs",
            unknown_if(probe_status(probes, "pci")).map(|_| "unknown"),
            gpus,
        ),
        (
            "drivers",
            "Drivers",
            unknown_if(probe_status(probes, "pci")).map(|_| "unknown"),
            drivers,
        ),
        (
            "sycl",
            "SYCL",
            if sycl_skip {
                Some("skip")
            } else {
                unknown_if(sycl_status).filter(|s| *s != "skip")
            },
            sycl,
        ),
        (
            "python",
            "Python",
            unknown_if(probe_status(probes, "python-packages")),
            python,
        ),
        ("env", "Environment", None, env),
    ];
    // NVIDIA and AMD lines (before Python) only where there is something to say.
    let at = areas
        .iter()
        .position(|a| a.0 == "python")
        .unwrap_or(areas.len());
    areas.splice(at..at, [nvidia, amd, vulkan].into_iter().flatten());
    areas
}

/// The Vulkan line, only where vulkaninfo answered something (a machine
/// without vulkan-tools says nothing about Vulkan either way).
fn vulkan_area(rig: &Rig, probes: &[ProbeReport]) -> Option<AreaLine> {
    let p = probes.iter().find(|p| p.name.starts_with("vulkaninfo"))?;
    let vk = &rig.vulkan;
    match p.status.as_str() {
        "missing" => return None,
        "ok" => {}
        other => {
            return Some((
                "vulkan",
                "Vulkan",
                Some("unknown"),
                format!(
                    "vulkaninfo could not list the devices ({other}: {})",
                    p.detail
                ),
            ));
        }
    }
    if vk.devices.is_empty() {
        return Some((
            "vulkan",
            "Vulkan",
            None,
            "the Vulkan loader finds no device".to_string(),
        ));
    }
    let list = vk
        .devices
        .iter()
        .map(|d| {
            let what = if d.software {
                "software"
            } else {
                d.kind.as_str()
            };
            let driver = d
                .driver
                .as_deref()
                .map(|x| format!(", {x}"))
                .unwrap_or_default();
            format!("{}: {} ({what}{driver})", d.index, d.name)
        })
        .collect::<Vec<_>>()
        .join(", ");
    let mesa = vk
        .mesa_version
        .as_deref()
        .map(|m| format!("; Mesa {m}"))
        .unwrap_or_default();
    Some(("vulkan", "Vulkan", None, format!("{list}{mesa}")))
}

type AreaLine = (&'static str, &'static str, Option<&'static str>, String);

fn gib(bytes: Option<u64>) -> String {
    bytes
        .map(|b| format!(" {}", human_bytes(b as f64)))
        .unwrap_or_default()
}

/// The NVIDIA line: driver, GPUs, how they are linked, PCIe now.
fn nvidia_area(rig: &Rig, probes: &[ProbeReport]) -> Option<AreaLine> {
    let status = probe_status(probes, "nvidia-smi");
    let on_bus = rig.gpus.iter().any(|g| g.vendor == "nvidia" && g.compute);
    let nv = &rig.nvidia;
    match status {
        "missing" if !on_bus => return None,
        "missing" => {
            return Some((
                "nvidia",
                "NVIDIA",
                Some("unknown"),
                "nvidia-smi is not installed".to_string(),
            ));
        }
        "timeout" => {
            return Some((
                "nvidia",
                "NVIDIA",
                Some("unknown"),
                "nvidia-smi did not answer".to_string(),
            ));
        }
        "ok" => {}
        // nvidia-smi left on a machine without an NVIDIA GPU ("No devices were found").
        _ if nv.gpus.is_empty() && !on_bus => return None,
        _ if nv.gpus.is_empty() => {
            return Some((
                "nvidia",
                "NVIDIA",
                Some("unknown"),
                "nvidia-smi could not list the GPUs".to_string(),
            ));
        }
        _ => {}
    }
    let mut parts = Vec::new();
    if let Some(d) = &nv.driver_version {
        parts.push(match &nv.cuda_version {
            Some(c) => format!("driver {d} (CUDA {c})"),
            None => format!("driver {d}"),
        });
    }
    parts.push(super::capped(
        &nv.gpus
            .iter()
            .map(|g| format!("{}: {}{}", g.index, g.name, gib(g.vram_bytes)))
            .collect::<Vec<_>>(),
        ", ",
    ));
    let links: Vec<String> = nv
        .links
        .iter()
        .filter_map(|l| {
            let kind = l.kind.as_deref()?;
            Some(match &l.p2p_read {
                Some(p) => format!("{}-{} {kind} P2P {p}", l.a, l.b),
                None => format!("{}-{} {kind}", l.a, l.b),
            })
        })
        .take(6)
        .collect();
    if !links.is_empty() {
        let more = nv.links.len().saturating_sub(links.len());
        parts.push(if more > 0 {
            format!("links {} (+{more} more)", links.join(", "))
        } else {
            format!("links {}", links.join(", "))
        });
    }
    let pcie: Vec<String> = nv
        .gpus
        .iter()
        .filter_map(|g| {
            let (c, m) = (g.pcie.gen_current?, g.pcie.gen_max?);
            let w = match (g.pcie.width_current, g.pcie.width_max) {
                (Some(w), Some(wm)) => format!(" x{w}/x{wm}"),
                _ => String::new(),
            };
            let state = match g.busy {
                Some(true) => "busy",
                Some(false) => "idle",
                None => "load unknown",
            };
            Some(format!("{}: Gen{c}/{m}{w} {state}", g.index))
        })
        .collect();
    if !pcie.is_empty() {
        parts.push(format!("PCIe {}", super::capped(&pcie, ", ")));
    }
    Some(("nvidia", "NVIDIA", None, parts.join("; ")))
}

/// The AMD line: ROCm release, GPU agents and their gfx targets, the override.
fn amd_area(rig: &Rig, probes: &[ProbeReport]) -> Option<AreaLine> {
    let status = probe_status(probes, "rocminfo");
    let on_bus = rig
        .gpus
        .iter()
        .any(|g| g.vendor == "amd" && g.compute && g.driver.as_deref() == Some("amdgpu"));
    let amd = &rig.amd;
    match status {
        "missing" if !on_bus => return None,
        "missing" => {
            let mut parts = vec![if amd.smi.listed {
                format!(
                    "rocminfo is not installed; amd-smi lists {}",
                    amd.smi
                        .gpus
                        .iter()
                        .map(|g| {
                            // amd-smi cuts long market names; the bus names the card whole.
                            let bus = g
                                .pci
                                .as_deref()
                                .and_then(|p| rig.gpus.iter().find(|b| b.pci == p))
                                .map(|b| b.name.as_str());
                            let name = bus.or(g.name.as_deref()).or(g.gfx.as_deref());
                            format!("{}: {}", g.index, name.unwrap_or("GPU"))
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            } else {
                "rocminfo is not installed (ROCm not found)".to_string()
            }];
            parts.extend(amd_links(amd));
            return Some(("amd", "AMD", Some("unknown"), parts.join("; ")));
        }
        "ok" | "unparsed" => {}
        _ => {
            return Some((
                "amd",
                "AMD",
                Some("unknown"),
                format!("rocminfo could not list the GPUs ({status})"),
            ));
        }
    }
    let mut parts = Vec::new();
    if let Some(v) = &amd.rocm_version {
        parts.push(format!("ROCm {v}"));
    }
    parts.push(if amd.agents.is_empty() {
        "rocminfo lists no GPU agent".to_string()
    } else {
        amd.agents
            .iter()
            .map(|a| {
                let name = a.marketing_name.as_deref().unwrap_or("");
                let kind = match a.integrated {
                    Some(true) => " integrated",
                    _ => "",
                };
                format!(
                    "{}: {}{}{}",
                    a.index,
                    a.gfx.as_deref().unwrap_or(&a.name),
                    if name.is_empty() {
                        String::new()
                    } else {
                        format!(" {name}")
                    },
                    kind
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    });
    parts.extend(amd_links(amd));
    if let Some(o) = &amd.override_value {
        parts.push(format!("HSA_OVERRIDE_GFX_VERSION={o}"));
    }
    Some(("amd", "AMD", None, parts.join("; ")))
}

/// `links 28 XGMI` / `links 0-1 PCIE`: how the GPU pairs are joined, when known.
fn amd_links(amd: &crate::rig::Amd) -> Option<String> {
    if amd.links.is_empty() {
        return None;
    }
    let mut kinds: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
    for l in &amd.links {
        kinds
            .entry(l.kind.as_deref().unwrap_or("unknown"))
            .or_default()
            .push(format!("{}-{}", l.a, l.b));
    }
    let each: Vec<String> = kinds
        .iter()
        .map(|(k, pairs)| {
            if pairs.len() <= 3 {
                format!("{} {k}", pairs.join(", "))
            } else {
                format!("{} pairs {k}", pairs.len())
            }
        })
        .collect();
    Some(format!("links {}", each.join(", ")))
}

pub fn build(mode: Mode, rig: Rig, probes: Vec<ProbeReport>, ev: Evaluation) -> Report {
    let count = |s: Severity| ev.diagnoses.iter().filter(|d| d.severity == s).count();
    let summary = Summary {
        errors: count(Severity::Error),
        warnings: count(Severity::Warn),
        infos: count(Severity::Info),
    };
    let verdict = if summary.errors > 0 {
        "error"
    } else if summary.warnings > 0 {
        "warn"
    } else {
        "ok"
    };
    let mut areas: Vec<Area> = area_summaries(&rig, &probes)
        .into_iter()
        .map(|(area, label, forced, summary)| {
            let worst = ev
                .diagnoses
                .iter()
                .filter(|d| d.area == area)
                .map(|d| d.severity)
                .max();
            let status = match worst {
                Some(s) => s.as_str().to_string(),
                None => forced.unwrap_or("ok").to_string(),
            };
            Area {
                area: area.into(),
                label: label.into(),
                status,
                summary,
            }
        })
        .collect();
    if let Some(worst) = ev
        .diagnoses
        .iter()
        .filter(|d| d.area == "probes")
        .map(|d| d.severity)
        .max()
    {
        let slow: Vec<String> = blind(&probes)
            .map(|p| format!("{}: {}", p.name, p.detail))
            .collect();
        areas.push(Area {
            area: "probes".into(),
            label: "Probes".into(),
            status: worst.as_str().into(),
            summary: slow.join("; "),
        });
    }
    Report {
        schema: SCHEMA,
        verdict,
        mode,
        summary,
        areas,
        diagnoses: ev.diagnoses,
        facts: rig,
        probes,
        rule_errors: ev.rule_errors,
        ignored: Vec::new(),
        ignored_reasons: BTreeMap::new(),
    }
}

/// The report with only the diagnoses of `classes` (`check --class`):
/// rebuilt, so verdict, summary and area lines agree with what is kept.
/// Rules were evaluated together first, so a rule still yields to a more
/// precise one of another class.
pub fn keep_classes(r: Report, classes: &[RuleClass]) -> Report {
    rebuild(r, |d| classes.contains(&d.class))
}

/// The report without the diagnoses of `ids` (`check --ignore`), rebuilt
/// like [`keep_classes`]; the ids that had findings are named in `ignored`,
/// so the page and the JSON say what was left out.
pub fn ignore_ids(r: Report, ids: &[String]) -> Report {
    ignore_ids_with(r, ids, &BTreeMap::new())
}

/// [`ignore_ids`], with the site config's reason for the ids it accepts
/// (`reasons`: id → why), kept for those that had findings.
pub fn ignore_ids_with(r: Report, ids: &[String], reasons: &BTreeMap<String, String>) -> Report {
    let mut hit: Vec<String> = r
        .diagnoses
        .iter()
        .filter(|d| ids.contains(&d.id))
        .map(|d| d.id.clone())
        .collect();
    let mut out = rebuild(r, |d| !ids.contains(&d.id));
    hit.dedup();
    for id in hit {
        if let Some(why) = reasons.get(&id) {
            out.ignored_reasons.insert(id.clone(), why.clone());
        }
        if !out.ignored.contains(&id) {
            out.ignored.push(id);
        }
    }
    out
}

fn rebuild(r: Report, keep: impl Fn(&Diagnosis) -> bool) -> Report {
    let ev = Evaluation {
        diagnoses: r.diagnoses.into_iter().filter(|d| keep(d)).collect(),
        rule_errors: r.rule_errors,
        ..Evaluation::default()
    };
    let (ignored, ignored_reasons) = (r.ignored, r.ignored_reasons);
    Report {
        ignored,
        ignored_reasons,
        ..build(r.mode, r.facts, r.probes, ev)
    }
}

/// A health hook's answer (node-problem-detector's custom plugin protocol:
/// OK / NonOK / Unknown; design.md exit codes 0 / 1 / 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Ok,
    Problem,
    Unknown,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HealthReport {
    pub health: Health,
    /// Ids at or above the level, most severe first, each once. For
    /// Unknown, the could-not-look findings.
    pub ids: Vec<String>,
    /// Probes that could not look and matter here (`name (status)`).
    pub blind: Vec<String>,
}

/// Python probes describe one interpreter's packages: they matter only when
/// the hook asks about `user-env` problems.
fn probe_matters(name: &str, classes: &[RuleClass]) -> bool {
    !name.starts_with("python") || classes.contains(&RuleClass::UserEnv)
}

/// Judge a report for a health hook:
/// - Problem when a diagnosis at or above `level` says what is wrong (its
///   rule found something, not just that a probe could not look);
/// - otherwise Unknown when a probe that matters could not look (a hung
///   nvidia-smi: the GPU may be gone, or fine) or a could-not-look finding
///   is at or above `level`;
/// - otherwise Ok.
///
/// The report is expected to hold only the classes asked for ([`keep_classes`]);
/// `classes` decides which probes matter.
pub fn health(r: &Report, level: Severity, classes: &[RuleClass]) -> HealthReport {
    let mut ids: Vec<String> = Vec::new();
    let mut blind_ids: Vec<String> = Vec::new();
    for d in r.diagnoses.iter().filter(|d| d.severity >= level) {
        let list = if d.could_not_look {
            &mut blind_ids
        } else {
            &mut ids
        };
        if !list.contains(&d.id) {
            list.push(d.id.clone());
        }
    }
    let blind_probes: Vec<String> = blind(&r.probes)
        .filter(|p| probe_matters(&p.name, classes))
        .map(|p| format!("{} ({})", p.name, p.status))
        .collect();
    if !ids.is_empty() {
        return HealthReport {
            health: Health::Problem,
            ids,
            blind: blind_probes,
        };
    }
    let health = if blind_ids.is_empty() && blind_probes.is_empty() {
        Health::Ok
    } else {
        Health::Unknown
    };
    HealthReport {
        health,
        ids: blind_ids,
        blind: blind_probes,
    }
}
