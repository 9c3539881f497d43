//! The speed limit of decode (issue 12 item 2; docs/watch.md "The speed
//! limit"). Generating one token reads every weight once, and the KV cache:
//! a device holding `bytes_i` with memory bandwidth `bw_i` needs at least
//! `bytes_i / bw_i` per token. A layer split runs its devices in series, so
//! the least time per token is the sum over the devices and the bound is
//! `1 / sum(bytes_i / bw_i)` tokens per second.
//!
//! - Bytes per device: the engine's own buffer lines (llama.cpp
//!   `load_tensors: CUDA0 model buffer size = X MiB`, `KV buffer size`;
//!   ollama's new engine `msg="model weights" device=CUDA0 size=...`). The
//!   KV cache is counted at its full size (a full context: the bound at an
//!   empty context is higher). With every layer offloaded, the host model
//!   buffer (`CPU_Mapped`) holds the token embeddings, of which a token
//!   reads one row: not counted.
//! - Bandwidth: the device's name as the engine logged it, looked up in
//!   `checks/bandwidth.toml` (vendor peak figures); host memory at the
//!   table's stated assumption (the DIMMs are root-only).
//! - Anything unknown (no buffer lines, a device without a name or without
//!   a row) makes the bound unknown: never a guess, never `below-bound`.
//!
//! Pure: signals in, facts out; the watcher feeds it the log as it comes.

use std::sync::LazyLock;

use serde::{Deserialize, Serialize};

use super::enginelog::{Signal, is_gpu_buffer};
use super::sample::ModelFile;

const TABLE_TOML: &str = include_str!("../../checks/bandwidth.toml");

#[derive(Debug, Clone, Deserialize)]
struct Table {
    host: HostRow,
    gpu: Vec<GpuRow>,
}

#[derive(Debug, Clone, Deserialize)]
struct HostRow {
    gbps: f64,
    assumption: String,
}

#[derive(Debug, Clone, Deserialize)]
struct GpuRow {
    #[serde(rename = "match")]
    names: Vec<String>,
    gbps: f64,
    #[serde(default)]
    note: String,
    source: String,
}

static TABLE: LazyLock<Option<Table>> = LazyLock::new(|| toml::from_str(TABLE_TOML).ok());

/// Case-folded, `(R)` / `(TM)` gone, spaces collapsed: `intel arc a770 graphics`.
fn fold(name: &str) -> String {
    let l = name
        .to_ascii_lowercase()
        .replace("(r)", " ")
        .replace("(tm)", " ");
    l.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `needle` in `hay` with no letter or digit on either side.
fn at_word(hay: &str, needle: &str) -> bool {
    let ok = |c: Option<char>| c.is_none_or(|c| !c.is_ascii_alphanumeric());
    let mut from = 0;
    while let Some(i) = hay[from..].find(needle) {
        let s = from + i;
        let e = s + needle.len();
        if ok(hay[..s].chars().next_back()) && ok(hay[e..].chars().next()) {
            return true;
        }
        from = s + 1;
        if from >= hay.len() {
            break;
        }
    }
    false
}

/// The table row for a device name: (GB/s, where from, note).
pub fn gpu_bandwidth(name: &str) -> Option<(f64, String, String)> {
    let t = TABLE.as_ref()?;
    let hay = fold(name);
    t.gpu
        .iter()
        .flat_map(|r| r.names.iter().map(move |n| (fold(n), r)))
        .filter(|(n, _)| !n.is_empty() && at_word(&hay, n))
        .max_by_key(|(n, _)| n.len())
        .map(|(_, r)| (r.gbps, r.source.clone(), r.note.clone()))
}

/// Host memory bandwidth and the assumption it rests on.
pub fn host_bandwidth() -> Option<(f64, String)> {
    let t = TABLE.as_ref()?;
    Some((t.host.gbps, t.host.assumption.clone()))
}

/// What the log said that the bound needs, as it came.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BoundInputs {
    /// Model buffers, in the order logged: (device, MiB).
    pub model: Vec<(String, f64)>,
    /// KV cache buffers: (device, MiB).
    pub kv: Vec<(String, f64)>,
    /// Backend device (`SYCL0`, `Vulkan1`, or a CUDA/HIP index `0`) -> name.
    pub names: Vec<(String, String)>,
    /// `offloaded N/M layers` (the last load).
    pub offloaded: Option<(u32, u32)>,
}

const MAX_ENTRIES: usize = 64;

impl BoundInputs {
    pub fn add(&mut self, s: &Signal) {
        match s {
            Signal::Offloaded { n, m } => {
                // A new model load: its buffers follow (as LogFacts does).
                self.offloaded = Some((*n, *m));
                self.model.clear();
                self.kv.clear();
            }
            Signal::Buffer { device, mib, .. } if self.model.len() < MAX_ENTRIES => {
                self.model.push((device.clone(), *mib));
            }
            Signal::KvBuffer { device, mib, .. } if self.kv.len() < MAX_ENTRIES => {
                self.kv.push((device.clone(), *mib));
            }
            Signal::DeviceName { device, name } => {
                if let Some(e) = self.names.iter_mut().find(|(d, _)| d == device) {
                    e.1 = name.clone();
                } else if self.names.len() < MAX_ENTRIES {
                    self.names.push((device.clone(), name.clone()));
                }
            }
            _ => {}
        }
    }

    /// The logged name of a buffer's device: its own (`SYCL0`, `Vulkan0`)
    /// or, for `CUDA1` / `ROCm1` / `HIP1`, the `Device 1:` line.
    fn name_of(&self, device: &str) -> Option<&str> {
        if let Some((_, n)) = self.names.iter().find(|(d, _)| d == device) {
            return Some(n);
        }
        let idx = ["CUDA", "ROCm", "HIP"]
            .iter()
            .find_map(|p| device.strip_prefix(p))
            .filter(|i| !i.is_empty() && i.chars().all(|c| c.is_ascii_digit()))?;
        self.names
            .iter()
            .find(|(d, _)| d == idx)
            .map(|(_, n)| n.as_str())
    }
}

/// One device's share of a token: `watch.bound.devices[]`.
#[derive(Debug, Clone, Serialize, PartialEq, schemars::JsonSchema)]
pub struct BoundDevice {
    /// The engine's device (`SYCL0`, `CUDA1`, `CPU_Mapped`).
    pub device: String,
    /// The GPU's name as logged, `host memory` for the CPU, "" if not logged.
    pub name: String,
    /// Weights on it, bytes (the model buffers logged).
    pub model_bytes: u64,
    /// KV cache on it, bytes (counted in full).
    pub kv_bytes: u64,
    /// Counted in the bound (false: token embeddings, one row read per token).
    pub counted: bool,
    /// Memory bandwidth, GB/s (10^9 B/s); null when not known.
    pub gbps: Option<f64>,
    /// Where `gbps` came from: a vendor spec page, or the host assumption.
    pub gbps_source: String,
    /// Least milliseconds per token for its bytes; null when unknown or not counted.
    pub ms: Option<f64>,
}

/// `watch.bound`: the decode speed limit and how the run compares.
#[derive(Debug, Clone, Serialize, PartialEq, schemars::JsonSchema)]
pub struct BoundFacts {
    /// The bound, generated tokens per second; null when it cannot be computed.
    pub decode_tps: Option<f64>,
    /// Least milliseconds per token: the sum over the devices.
    pub ms_per_token: Option<f64>,
    /// `engine-log` (buffer sizes the engine printed), `gguf` (the model
    /// file's header, every layer on the one GPU named), "" if none.
    pub bytes_source: String,
    pub devices: Vec<BoundDevice>,
    /// The engine's last decode figure (`watch.throughput.decode_tps`).
    pub measured_tps: Option<f64>,
    /// Measured over bound, percent (one decimal); null when either is unknown.
    pub percent: Option<f64>,
    /// Under this share of the bound (with a busy GPU) is `below-bound`.
    pub fraction: f64,
    /// `below-bound`, `near-bound` (at least `fraction` of it),
    /// `gpu-not-busy` (under it, but no GPU was busy: another verdict says
    /// why), `unknown` (no bound or no measured speed).
    pub verdict: String,
    /// The busiest GPU while the run computed: `card0 90 % (gtidle)`, "" if none was busy.
    pub gpu_busy: String,
    /// The whole computation in words, for a person to check.
    pub arithmetic: String,
    /// Why the bound or the comparison is unknown ("" when known).
    pub unknown_why: String,
    /// Likely causes of a run far below its bound, most likely first.
    pub causes: Vec<String>,
    /// What to run for each cause, in the same order ("" unless below-bound).
    pub fix: String,
}

const MIB: f64 = 1048576.0;

/// llama.cpp's extra CPU buffer types, which re-lay out mapped weights.
fn is_repack(device: &str) -> bool {
    matches!(
        device,
        "CPU_REPACK" | "CPU_AARCH64" | "AMX" | "CPU_KLEIDIAI"
    )
}

fn r1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0 + 0.0
}

fn r3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0 + 0.0
}

/// The GPU that was busy while the run computed, for the verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct Busy {
    pub label: String,
    pub pct: f64,
    pub src: String,
    pub vendor: String,
    /// Its throttle flags while the run computed, when readable.
    pub throttle: Option<Throttle>,
}

/// Throttle readings of one GPU (xe / i915 sysfs).
#[derive(Debug, Clone, PartialEq)]
pub struct Throttle {
    pub samples: u32,
    pub throttled: u32,
    pub reasons: Vec<String>,
}

/// The bound, and the verdict for a measured decode speed `measured` with
/// `busy` the busiest GPU while the run computed (None: no GPU busy at or
/// above `busy_pct`).
pub fn compute(
    inp: &BoundInputs,
    measured: Option<f64>,
    busy: Option<&Busy>,
    fraction: f64,
) -> BoundFacts {
    compute_with(inp, None, measured, busy, fraction)
}

/// [`compute`], with the model file the command line named and whether its
/// GPU-layers flag covers every layer: the bytes when the engine printed no
/// buffer sizes. Only a split that is certain is used: every layer on the
/// one GPU the log named; anything else stays unknown.
pub fn compute_with(
    inp: &BoundInputs,
    file: Option<(&ModelFile, bool)>,
    measured: Option<f64>,
    busy: Option<&Busy>,
    fraction: f64,
) -> BoundFacts {
    let mut out = BoundFacts {
        decode_tps: None,
        ms_per_token: None,
        bytes_source: String::new(),
        devices: Vec::new(),
        measured_tps: measured,
        percent: None,
        fraction,
        verdict: "unknown".into(),
        gpu_busy: busy
            .map(|b| format!("{} {:.0} % ({})", b.label, b.pct, b.src))
            .unwrap_or_default(),
        arithmetic: String::new(),
        unknown_why: String::new(),
        causes: Vec::new(),
        fix: String::new(),
    };
    let mut from_file = BoundInputs::default();
    let mut gguf_path: Option<String> = None;
    let inp = if !inp.model.is_empty() {
        out.bytes_source = "engine-log".into();
        inp
    } else {
        let why_file = match file {
            None => String::new(),
            Some((m, _)) if !m.error.is_empty() => {
                format!("; the model file {} could not be read: {}", m.path, m.error)
            }
            Some((m, false)) => format!(
                "; the model file {} is known, but not its split without a GPU-layers flag covering every layer (-ngl 99)",
                m.path
            ),
            Some((m, true)) if inp.names.len() != 1 => format!(
                "; the model file {} is known, but the log named {} GPU(s), not one",
                m.path,
                inp.names.len()
            ),
            Some((m, true)) => {
                let (dev, _) = &inp.names[0];
                // A CUDA/HIP `Device N:` line: the buffers would be CUDA<N> or ROCm<N>.
                let dev = if dev.chars().all(|c| c.is_ascii_digit()) {
                    let amd = busy.is_some_and(|b| b.vendor == "amd");
                    format!("{}{dev}", if amd { "ROCm" } else { "CUDA" })
                } else {
                    dev.clone()
                };
                let mib = |b: u64| b as f64 / MIB;
                from_file.names = inp.names.clone();
                // A trace is outside input: no overflow on a hostile layer count.
                let all = u32::try_from(m.n_layer)
                    .unwrap_or(u32::MAX)
                    .saturating_add(1);
                from_file.offloaded = Some((all, all));
                from_file.model.push(("CPU".into(), mib(m.input_bytes)));
                from_file
                    .model
                    .push((dev, mib(m.blocks_bytes.saturating_add(m.output_bytes))));
                out.bytes_source = "gguf".into();
                gguf_path = Some(m.path.clone());
                String::new()
            }
        };
        if from_file.model.is_empty() {
            out.unknown_why = format!(
                "the engine printed no model buffer sizes (llama.cpp prints `load_tensors: ... model buffer size` at -lv 4 / --verbose in current releases){why_file}"
            );
            return out;
        }
        &from_file
    };
    // Devices in the order the log named them, model and KV bytes summed.
    let mut order: Vec<String> = Vec::new();
    for (d, _) in inp.model.iter().chain(inp.kv.iter()) {
        if !order.contains(d) {
            order.push(d.clone());
        }
    }
    let full_offload = inp.offloaded.is_some_and(|(n, m)| m > 0 && n >= m);
    let any_gpu = inp.model.iter().any(|(d, _)| is_gpu_buffer(d));
    let mut unknown: Vec<String> = Vec::new();
    let mut total_ms = 0.0;
    let mut words: Vec<String> = Vec::new();
    for d in &order {
        let model: f64 = inp.model.iter().filter(|(x, _)| x == d).map(|x| x.1).sum();
        let kv: f64 = inp.kv.iter().filter(|(x, _)| x == d).map(|x| x.1).sum();
        let gpu = is_gpu_buffer(d);
        let bytes = |mib: f64| (mib.max(0.0) * MIB).round() as u64;
        // Every layer on the GPUs: the host model buffer is the token
        // embeddings (one row per token). Its KV share, if any, still counts.
        let embeddings_only = !gpu && any_gpu && full_offload && kv == 0.0;
        // A CPU repack buffer (`CPU_REPACK`, `CPU_AARCH64`, `AMX`) holds
        // weights of the mapped file laid out again for the CPU's kernels:
        // a token reads the copy instead of the original, so the bytes are
        // counted once, in `CPU_Mapped` (the real run of
        // logs/llama-cpp-real-cpu-lv4.log: 261.50 MiB mapped, 193.50 MiB of
        // it repacked).
        let relayout = !gpu && kv == 0.0 && is_repack(d) && order.iter().any(|x| x == "CPU_Mapped");
        let embeddings_only = embeddings_only || relayout;
        let (name, bw) = if gpu {
            match inp.name_of(d) {
                Some(n) => (n.to_string(), gpu_bandwidth(n).map(|(g, s, _)| (g, s))),
                None => (String::new(), None),
            }
        } else {
            ("host memory".to_string(), host_bandwidth())
        };
        let model_b = bytes(model);
        let kv_b = bytes(kv);
        let mut dev = BoundDevice {
            device: d.clone(),
            name: name.clone(),
            model_bytes: model_b,
            kv_bytes: kv_b,
            counted: !embeddings_only,
            gbps: bw.as_ref().filter(|_| !embeddings_only).map(|b| b.0),
            gbps_source: bw
                .as_ref()
                .filter(|_| !embeddings_only)
                .map(|b| b.1.clone())
                .unwrap_or_default(),
            ms: None,
        };
        if relayout {
            words.push(format!(
                "{d} {model:.2} MiB not counted (the CPU's re-layout of weights CPU_Mapped holds: read instead of them, counted once)"
            ));
            out.devices.push(dev);
            continue;
        }
        if embeddings_only {
            words.push(format!(
                "{d} {model:.2} MiB not counted (token embeddings with every layer offloaded: one row read per token)"
            ));
            out.devices.push(dev);
            continue;
        }
        let counted = model_b.saturating_add(kv_b) as f64;
        match &bw {
            Some((g, _)) if *g > 0.0 => {
                let ms = counted / (g * 1e9) * 1e3;
                total_ms += ms;
                dev.ms = Some(r3(ms));
                let what = if kv_b > 0 {
                    format!("{model:.2} MiB weights + {kv:.2} MiB KV")
                } else {
                    format!("{model:.2} MiB weights")
                };
                let who = if name.is_empty() {
                    d.clone()
                } else {
                    format!("{d} ({name})")
                };
                words.push(format!(
                    "{who}: {what} = {:.3} GB at {g} GB/s = {ms:.2} ms",
                    counted / 1e9
                ));
            }
            _ => {
                unknown.push(if gpu && name.is_empty() {
                    format!("the log did not name the GPU behind {d}")
                } else {
                    format!(
                        "no memory bandwidth is known for {name} ({d}) in checks/bandwidth.toml"
                    )
                });
            }
        }
        out.devices.push(dev);
    }
    if !unknown.is_empty() {
        out.unknown_why = format!("{}: the bound is unknown", unknown.join("; "));
        return out;
    }
    if total_ms <= 0.0 {
        out.unknown_why = "the buffers logged hold no bytes a token reads".into();
        return out;
    }
    let bound = 1000.0 / total_ms;
    out.decode_tps = Some(r1(bound));
    out.ms_per_token = Some(r3(total_ms));
    let host_counted = out
        .devices
        .iter()
        .any(|d| d.counted && d.name == "host memory");
    let host_note = match host_bandwidth() {
        Some((_, a)) if host_counted => format!(" (host memory: {a})"),
        _ => String::new(),
    };
    let kv_note = match &gguf_path {
        Some(p) => format!(
            " (bytes from the GGUF header of {p}, every layer on the GPU; the KV cache is not counted without the engine's KV buffer line: the bound at an empty context)"
        ),
        None => String::new(),
    };
    out.arithmetic = format!(
        "{}; devices in series: {total_ms:.2} ms per token, bound 1000 / {total_ms:.2} = {bound:.1} tok/s{host_note}{kv_note}",
        words.join("; ")
    );
    let Some(m) = measured else {
        out.unknown_why = "the engine reported no decode speed".into();
        return out;
    };
    let pct = m / bound * 100.0;
    out.percent = Some(r1(pct));
    out.arithmetic.push_str(&format!(
        "; measured {m} tok/s = {pct:.1} % of the bound (below-bound under {:.0} %)",
        fraction * 100.0
    ));
    out.verdict = if pct >= fraction * 100.0 {
        "near-bound"
    } else if busy.is_some() {
        "below-bound"
    } else {
        "gpu-not-busy"
    }
    .into();
    if out.verdict == "below-bound" {
        (out.causes, out.fix) = causes(&out, busy);
    }
    out
}

/// The likely causes, most likely first, and the commands that look at or
/// fix each (a comment line naming the cause, then its commands).
fn causes(f: &BoundFacts, busy: Option<&Busy>) -> (Vec<String>, String) {
    let mut c = Vec::new();
    let mut fix: Vec<String> = Vec::new();
    let gpus: Vec<&BoundDevice> = f
        .devices
        .iter()
        .filter(|d| d.counted && is_gpu_buffer(&d.device))
        .collect();
    let named = |p: &[&str], words: &[&str]| {
        gpus.iter().any(|d| {
            p.iter().any(|x| d.device.starts_with(x))
                || words.iter().any(|w| fold(&d.name).contains(w))
        })
    };
    let vendor = |v: &str| busy.is_some_and(|b| b.vendor == v);
    let intel = named(&["SYCL"], &["intel"]) || vendor("intel");
    let nvidia = named(&["CUDA"], &["nvidia"]) || vendor("nvidia");
    let amd = named(&["ROCm", "HIP"], &["amd", "radeon"]) || vendor("amd");
    if intel {
        c.push(
            "Level Zero launch overhead, the usual cause on Arc: each kernel launch costs CPU time, and decode's small kernels leave the GPU waiting between them"
                .to_string(),
        );
        fix.push(
            "# Level Zero launch overhead: immediate command lists, or compare another build on the same model\n\
             export UR_L0_USE_IMMEDIATE_COMMANDLISTS=1    # older oneAPI: SYCL_PI_LEVEL_ZERO_USE_IMMEDIATE_COMMANDLISTS=1\n\
             cmake -B build-vk -DGGML_VULKAN=ON && cmake --build build-vk -j   # the Vulkan backend, or IPEX-LLM's llama.cpp build"
                .to_string(),
        );
    }
    let host: Vec<&BoundDevice> = f
        .devices
        .iter()
        .filter(|d| d.counted && !is_gpu_buffer(&d.device))
        .collect();
    if !host.is_empty() {
        let ms: f64 = host.iter().filter_map(|d| d.ms).sum();
        let mib: f64 = host
            .iter()
            .map(|d| d.model_bytes.saturating_add(d.kv_bytes) as f64 / MIB)
            .sum();
        c.push(format!(
            "a CPU-side share: {mib:.0} MiB in host memory take {ms:.1} ms of the {:.1} ms a token needs at least, and the CPU computes that share",
            f.ms_per_token.unwrap_or(0.0)
        ));
        fix.push(
            "# a CPU-side share: every layer and the KV cache on the GPU (no -nkvo)\n\
             llama-server -m model.gguf -ngl 99"
                .to_string(),
        );
    }
    if gpus.len() >= 2 {
        c.push(format!(
            "PCIe traffic between the {} GPUs of the layer split: every token crosses each boundary between them",
            gpus.len()
        ));
        fix.push(
            "# PCIe between GPUs: the width and speed each slot negotiated; one GPU when the model fits\n\
             rigdoctor check\n\
             llama-server -m model.gguf -ngl 99 -sm none -mg 0"
                .to_string(),
        );
    }
    let read = busy.and_then(|b| Some((b, b.throttle.as_ref()?)));
    let (power, often) = match read {
        Some((b, t)) if t.throttled > 0 => (
            format!(
                "power or thermal limits: {} was throttled in {} of {} samples ({}): a card held at low clocks reads busy but moves fewer bytes",
                b.label,
                t.throttled,
                t.samples,
                if t.reasons.is_empty() {
                    "no reason given".to_string()
                } else {
                    t.reasons.join(", ")
                }
            ),
            t.throttled * 2 >= t.samples,
        ),
        Some((b, t)) => (
            format!(
                "power or thermal limits (unlikely: {} was not throttled in any of {} samples)",
                b.label, t.samples
            ),
            false,
        ),
        None => (
            "power or thermal limits: a card held at low clocks reads busy but moves fewer bytes (rigdoctor read no throttle flags for this GPU)"
                .to_string(),
            false,
        ),
    };
    // Throttled most of the time: that explains it before anything else.
    if often {
        c.insert(0, power);
    } else {
        c.push(power);
    }
    let mut p = vec!["# power or thermal limits".to_string()];
    if nvidia || !(intel || amd) {
        p.push("nvidia-smi -q -d PERFORMANCE   # Clocks Event Reasons: SW Power Cap, HW Slowdown, SW/HW Thermal Slowdown".into());
    }
    if intel || !(nvidia || amd) {
        p.push("grep . /sys/class/drm/card*/device/tile*/gt*/freq0/throttle/* /sys/class/drm/card*/gt/gt*/throttle_reason_* 2>/dev/null   # xe / i915: 1 = throttled".into());
    }
    if amd || !(intel || nvidia) {
        p.push("rocm-smi --showperflevel --showtemp --showpower".into());
    }
    if often {
        fix.insert(0, p.join("\n"));
    } else {
        fix.push(p.join("\n"));
    }
    (c, fix.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a770() -> BoundInputs {
        let mut b = BoundInputs::default();
        for s in [
            Signal::DeviceName {
                device: "SYCL0".into(),
                name: "Intel(R) Arc(TM) A770 Graphics".into(),
            },
            Signal::Offloaded { n: 33, m: 33 },
            Signal::Buffer {
                device: "CPU_Mapped".into(),
                mib: 70.31,
                gpu: false,
            },
            Signal::Buffer {
                device: "SYCL0".into(),
                mib: 4095.05,
                gpu: true,
            },
            Signal::KvBuffer {
                device: "SYCL0".into(),
                mib: 128.0,
                gpu: true,
            },
        ] {
            b.add(&s);
        }
        b
    }

    fn busy() -> Busy {
        Busy {
            label: "card0".into(),
            pct: 90.0,
            src: "gtidle".into(),
            vendor: "intel".into(),
            throttle: None,
        }
    }

    /// Throttle flags read during the run move power/thermal first when the
    /// card was throttled most of the time, and say so either way.
    #[test]
    fn throttle_readings_order_the_causes() {
        let inp = a770();
        let with = |samples, throttled, reasons: &[&str]| {
            let b = Busy {
                throttle: Some(Throttle {
                    samples,
                    throttled,
                    reasons: reasons.iter().map(|r| r.to_string()).collect(),
                }),
                ..busy()
            };
            compute(&inp, Some(5.0), Some(&b), 0.25)
        };
        let f = with(20, 15, &["pl1", "thermal"]);
        assert!(
            f.causes[0].contains("card0 was throttled in 15 of 20 samples (pl1, thermal)"),
            "{:?}",
            f.causes
        );
        assert!(f.fix.starts_with("# power or thermal limits"), "{}", f.fix);
        let f = with(20, 0, &[]);
        assert!(f.causes[0].starts_with("Level Zero"));
        assert!(f.causes[1].contains("not throttled in any of 20 samples"));
    }

    #[test]
    fn names_match_the_longest_row_at_word_boundaries() {
        let g = |n: &str| gpu_bandwidth(n).map(|x| x.0);
        assert_eq!(g("Intel(R) Arc(TM) A770 Graphics"), Some(512.0));
        assert_eq!(g("NVIDIA GeForce RTX 4070 Ti SUPER"), Some(672.0));
        assert_eq!(g("NVIDIA GeForce RTX 4070 Ti"), Some(504.0));
        assert_eq!(g("NVIDIA GeForce RTX 3090 Ti"), Some(1008.0));
        assert_eq!(g("NVIDIA GeForce RTX 3090"), Some(936.0));
        assert_eq!(g("AMD Radeon RX 7900 XTX"), Some(960.0));
        assert_eq!(g("AMD Instinct MI60 / MI50"), Some(1024.0));
        assert_eq!(g("Intel(R) Arc(TM) Pro B60 Graphics"), Some(456.0));
        // Not a row: no guess. `A770M` is the laptop part, not the A770.
        assert_eq!(g("Intel(R) Arc(TM) A770M Graphics"), None);
        assert_eq!(g("NVIDIA GeForce RTX 2060"), None);
        assert_eq!(g(""), None);
        // Every row has a source.
        let t = TABLE.as_ref().expect("checks/bandwidth.toml parses");
        assert!(
            t.gpu
                .iter()
                .all(|r| r.source.starts_with("https://") && r.gbps > 0.0)
        );
    }

    /// The arithmetic, by hand: (4095.05 + 128) MiB = 4,428,188,877 B at
    /// 512 GB/s = 8.649 ms; 1000 / 8.649 = 115.6 tok/s. CPU_Mapped (the
    /// token embeddings of a full offload) is not counted.
    #[test]
    fn a770_full_offload_bound_and_verdicts() {
        let inp = a770();
        let f = compute(&inp, Some(5.78), Some(&busy()), 0.25);
        assert_eq!(f.decode_tps, Some(115.6));
        assert_eq!(f.ms_per_token, Some(8.649));
        assert_eq!(f.devices.len(), 2);
        assert!(!f.devices[0].counted, "{:?}", f.devices[0]);
        assert_eq!(f.devices[1].model_bytes + f.devices[1].kv_bytes, 4428188877);
        assert_eq!(f.percent, Some(5.0));
        assert_eq!(f.verdict, "below-bound");
        assert!(f.causes[0].contains("Level Zero"), "{:?}", f.causes);
        assert!(
            f.arithmetic.contains("4.428 GB at 512 GB/s = 8.65 ms"),
            "{}",
            f.arithmetic
        );
        // 70 % of the bound: not below it.
        let f = compute(&inp, Some(80.9), Some(&busy()), 0.25);
        assert_eq!((f.percent, f.verdict.as_str()), (Some(70.0), "near-bound"));
        // Slow, but no GPU was busy: other verdicts (fallback) say why.
        let f = compute(&inp, Some(5.78), None, 0.25);
        assert_eq!(f.verdict, "gpu-not-busy");
        // No speed reported: the bound alone.
        let f = compute(&inp, None, Some(&busy()), 0.25);
        assert_eq!((f.decode_tps, f.verdict.as_str()), (Some(115.6), "unknown"));
    }

    #[test]
    fn unknown_stays_unknown() {
        // No buffer lines at all.
        let f = compute(&BoundInputs::default(), Some(1.0), Some(&busy()), 0.25);
        assert_eq!((f.decode_tps, f.verdict.as_str()), (None, "unknown"));
        assert!(f.unknown_why.contains("no model buffer sizes"));
        // A GPU the log did not name.
        let mut inp = a770();
        inp.names.clear();
        let f = compute(&inp, Some(1.0), Some(&busy()), 0.25);
        assert_eq!((f.decode_tps, f.verdict.as_str()), (None, "unknown"));
        assert!(f.unknown_why.contains("did not name the GPU behind SYCL0"));
        // A GPU without a row.
        inp.add(&Signal::DeviceName {
            device: "SYCL0".into(),
            name: "Intel(R) Arc(TM) A770M Graphics".into(),
        });
        let f = compute(&inp, Some(1.0), Some(&busy()), 0.25);
        assert_eq!(f.verdict, "unknown");
        assert!(
            f.unknown_why
                .contains("no memory bandwidth is known for Intel(R) Arc(TM) A770M")
        );
    }

    /// Without buffer lines, the model file's bytes count only when the
    /// split is certain: every layer (-ngl 99) on the one GPU the log named.
    #[test]
    fn the_model_file_only_with_a_certain_split() {
        let m = ModelFile {
            path: "m.gguf".into(),
            blocks_bytes: 4_000_000_000,
            output_bytes: 96_000_000,
            input_bytes: 70_000_000,
            n_layer: 32,
            error: String::new(),
        };
        let mut named = BoundInputs::default();
        named.add(&Signal::DeviceName {
            device: "SYCL0".into(),
            name: "Intel(R) Arc(TM) A770 Graphics".into(),
        });
        let f = compute_with(&named, Some((&m, true)), Some(5.0), Some(&busy()), 0.25);
        assert_eq!(f.bytes_source, "gguf");
        // 4.096 GB at 512 GB/s = 8.0 ms: 125 tok/s; token_embd not counted.
        assert_eq!((f.ms_per_token, f.decode_tps), (Some(8.0), Some(125.0)));
        assert_eq!(f.verdict, "below-bound");
        assert!(!f.devices[0].counted);
        let unknown = |inp: &BoundInputs, file: Option<(&ModelFile, bool)>| {
            let f = compute_with(inp, file, Some(5.0), Some(&busy()), 0.25);
            assert_eq!((f.decode_tps, f.verdict.as_str()), (None, "unknown"));
            f.unknown_why
        };
        assert!(unknown(&named, Some((&m, false))).contains("-ngl 99"));
        let mut two = named.clone();
        two.add(&Signal::DeviceName {
            device: "SYCL1".into(),
            name: "Intel(R) Arc(TM) A770 Graphics".into(),
        });
        assert!(unknown(&two, Some((&m, true))).contains("named 2 GPU(s)"));
        let bad = ModelFile {
            error: "not a GGUF file".into(),
            ..m.clone()
        };
        assert!(unknown(&named, Some((&bad, true))).contains("could not be read: not a GGUF file"));
        assert!(unknown(&BoundInputs::default(), Some((&m, true))).contains("named 0 GPU(s)"));
        // Hostile numbers from a trace: no overflow, no panic.
        let huge = ModelFile {
            blocks_bytes: u64::MAX,
            output_bytes: u64::MAX,
            n_layer: u64::MAX,
            ..m.clone()
        };
        let f = compute_with(&named, Some((&huge, true)), Some(5.0), Some(&busy()), 0.25);
        assert!(f.decode_tps.is_some_and(|b| b.is_finite() && b >= 0.0));
    }

    /// A partial offload on two CUDA GPUs: the host share counts at the
    /// stated host assumption, the devices add up in series.
    #[test]
    fn split_across_devices_in_series() {
        let mut inp = BoundInputs::default();
        for s in [
            Signal::DeviceName {
                device: "0".into(),
                name: "NVIDIA GeForce RTX 4070 Ti".into(),
            },
            Signal::DeviceName {
                device: "1".into(),
                name: "NVIDIA GeForce RTX 3090 Ti".into(),
            },
            Signal::Offloaded { n: 30, m: 41 },
            Signal::Buffer {
                device: "CPU".into(),
                mib: 1000.0,
                gpu: false,
            },
            Signal::Buffer {
                device: "CUDA0".into(),
                mib: 5000.0,
                gpu: true,
            },
            Signal::Buffer {
                device: "CUDA1".into(),
                mib: 10000.0,
                gpu: true,
            },
        ] {
            inp.add(&s);
        }
        let nv = Busy {
            vendor: "nvidia".into(),
            ..busy()
        };
        let f = compute(&inp, Some(1.0), Some(&nv), 0.25);
        let ms = |mib: f64, g: f64| mib * MIB / (g * 1e9) * 1e3;
        let want = ms(1000.0, 51.2) + ms(5000.0, 504.0) + ms(10000.0, 1008.0);
        assert_eq!(f.ms_per_token, Some(r3(want)));
        assert_eq!(f.decode_tps, Some(r1(1000.0 / want)));
        assert!(f.devices.iter().all(|d| d.counted));
        assert!(f.arithmetic.contains("host memory: dual-channel DDR4-3200"));
        let causes = f.causes.join("\n");
        assert!(f.fix.contains("nvidia-smi -q -d PERFORMANCE"), "{}", f.fix);
        assert!(!f.fix.contains("rocm-smi"), "{}", f.fix);
        assert!(causes.contains("CPU-side share"), "{causes}");
        assert!(
            causes.contains("PCIe traffic between the 2 GPUs"),
            "{causes}"
        );
        assert!(!causes.contains("Level Zero"), "{causes}");
    }
}
