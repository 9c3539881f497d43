//! The data model of a watch: the trace header, the GPUs seen, one sample,
//! one engine-log event. The same structs are written by `--record`, printed
//! as JSON Lines by `--format json`, and read back by `--replay`, so a
//! recording classifies exactly like the live run it came from.
//!
//! Samples carry *rates* (cores busy, GPU busy %, bytes/s), not raw counters:
//! the counter arithmetic (deltas, going backwards, wrap) happens once, in the
//! samplers (`proc`, `fdinfo`, `gpu`), and every sample says which source each
//! value came from. `None` always means "not known", never zero.

use serde::{Deserialize, Serialize};

/// `format` of the first line of a trace (`--record FILE`).
pub const TRACE_FORMAT: &str = "rigdoctor-watch-trace/1";
/// `schema` of the JSON Lines output (`--format json`).
pub const SCHEMA: &str = "rigdoctor/watch/1";

/// One GPU the watcher looks at. Announced in the header, or by a later
/// `{"type":"gpu"}` line when it shows up during the run (an `nvidia-smi`
/// row for a GPU without a DRM card).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct GpuInfo {
    /// Stable key: the PCI address (`0000:03:00.0`) or `nvidia:<index>`.
    pub id: String,
    /// Short name for the screen: `card1`, `nvidia0`.
    pub label: String,
    /// `intel`, `nvidia`, `amd` or `unknown`.
    pub vendor: String,
    #[serde(default)]
    pub driver: Option<String>,
    /// An integrated GPU (Intel at bus 00) is left out of the verdicts unless
    /// the watched process has it open: an idle iGPU next to a busy dGPU is normal.
    #[serde(default)]
    pub integrated: bool,
}

/// Whether a telemetry source could be used, and why not.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct SourceStatus {
    /// `procfs`, `fdinfo`, `sysfs`, `nvidia-smi`, `xpu-smi`, `engine-log`.
    pub name: String,
    /// `ok`, `missing`, `denied`, `failed`, `exited`, `off`.
    pub status: String,
    #[serde(default)]
    pub detail: String,
}

/// The first line of a trace: what was watched and how.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct Header {
    pub format: String,
    pub rigdoctor: String,
    /// What was watched, for the reader: `pid 1234 (llama-server)`, `llama-cli -m ...`.
    pub target: String,
    /// Seconds between samples.
    pub interval: f64,
    /// Seconds per classified window.
    pub window: f64,
    /// CPU cores this process may use (affinity/cgroup aware); "several
    /// cores busy" scales with it.
    pub cores: f64,
    #[serde(default)]
    pub gpus: Vec<GpuInfo>,
    #[serde(default)]
    pub sources: Vec<SourceStatus>,
    /// The thresholds in force (replay uses them unless `--thresholds` is given).
    #[serde(default)]
    pub thresholds: Option<super::classify::Thresholds>,
}

/// The watched process tree in one interval (procfs).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct ProcSample {
    /// Processes in the tree.
    pub pids: u32,
    /// Threads in the tree.
    #[serde(default)]
    pub threads: u32,
    /// CPU time over wall time: 2.0 = two cores busy. None on the first sample.
    #[serde(default)]
    pub cores: Option<f64>,
    /// Resident memory of the tree, bytes.
    #[serde(default)]
    pub rss: Option<u64>,
    /// Bytes read per second (max of `rchar` and `read_bytes` deltas), None if denied.
    #[serde(default)]
    pub read_bps: Option<f64>,
    /// Cores wanted: (CPU time + run-queue wait) over wall time, summed over
    /// the tree's threads (`/proc/PID/task/*/schedstat`). A thread that is
    /// runnable all the time counts 1 however little CPU it got. None when
    /// schedstat is unreadable (or on the first sample).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub demand: Option<f64>,
    /// Threads runnable at least 90 % of the interval (CPU-bound threads).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saturated: Option<u32>,
}

/// What the watched tree has loaded and opened, and the GPU flags it was
/// started with: evidence that does not depend on the engine's verbosity
/// (`src/watch/evidence.rs`). Sent in a sample when it changes; a replay
/// keeps the last one seen.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct TreeEvidence {
    /// `/proc/PID/maps` of every process in the tree could be read: only
    /// then does an empty `runtimes` mean "no GPU runtime loaded".
    pub maps_readable: bool,
    /// Paths of the GPU runtime libraries mapped (`libggml-vulkan.so`,
    /// `libcuda.so.1`, ...), each once.
    #[serde(default)]
    pub runtimes: Vec<String>,
    /// GPU device nodes held open (`/dev/dri/renderD128`, `/dev/nvidia0`, `/dev/kfd`).
    #[serde(default)]
    pub devices: Vec<String>,
    /// The GPU flags on the tree's command lines, as typed: `["-ngl", "99"]`.
    #[serde(default)]
    pub flags: Vec<String>,
    /// The model file a command line names (`-m FILE`), its GGUF header read
    /// once: what the decode bound needs when the engine prints no buffer sizes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelFile>,
}

/// A model file's bytes by llama.cpp layer, from its GGUF header
/// (`src/fit/split.rs` `layer_sizes`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct ModelFile {
    /// As typed on the command line.
    pub path: String,
    /// The repeating blocks (`blk.N.*`), bytes.
    #[serde(default)]
    pub blocks_bytes: u64,
    /// The output layer, bytes, with a tied output's copy of `token_embd`
    /// (llama.cpp duplicates it onto the output layer's GPU).
    #[serde(default)]
    pub output_bytes: u64,
    /// The input layer (`token_embd`): on the CPU, one row read per token.
    #[serde(default)]
    pub input_bytes: u64,
    /// `block_count`.
    #[serde(default)]
    pub n_layer: u64,
    /// Why the header could not be read ("" when it was).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error: String,
}

/// One GPU in one interval.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct GpuSample {
    pub id: String,
    /// Device busy %, whoever keeps it busy.
    #[serde(default)]
    pub busy: Option<f64>,
    /// Where `busy` came from: `gtidle`, `rc6`, `gpu_busy_percent`, `nvidia-smi`, `xpu-smi`.
    #[serde(default)]
    pub busy_src: Option<String>,
    /// Busy % of the watched tree's own DRM clients (fdinfo): busiest engine class.
    #[serde(default)]
    pub proc_busy: Option<f64>,
    /// Does the watched tree hold a DRM fd on this GPU? None when fds cannot be read.
    #[serde(default)]
    pub in_use: Option<bool>,
    /// GPU memory used, bytes.
    #[serde(default)]
    pub mem: Option<u64>,
    /// `mem_info_vram_used`, `nvidia-smi`, `fdinfo`.
    #[serde(default)]
    pub mem_src: Option<String>,
    /// Watts.
    #[serde(default)]
    pub power: Option<f64>,
    /// `hwmon-energy`, `hwmon-power`, `nvidia-smi`, `xpu-smi`.
    #[serde(default)]
    pub power_src: Option<String>,
    /// Joules the card's energy counter (hwmon `energy1_input`) advanced
    /// over the interval before `t`: exact, where `power` is a rate. Absent
    /// for power-only sources (the summary integrates `power` over time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub energy: Option<f64>,
    /// Frequency throttle reasons active at `t` (xe `freq0/throttle`, i915
    /// `throttle_reason_*`): `[]` not throttled, `["pl1"]`, `["thermal"]`;
    /// absent when the card has no readable throttle status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle: Option<Vec<String>>,
}

/// A line of the watched program's output that tells where the work runs.
/// `line` is the text as printed (trimmed, at most 300 characters).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct LogEvent {
    /// `stdout` or `stderr`.
    pub stream: String,
    #[serde(flatten)]
    pub signal: super::enginelog::Signal,
    pub line: String,
}

/// One sample: everything read at one tick.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct Sample {
    /// Seconds since the watch started.
    pub t: f64,
    /// None: the process could not be read (it ended).
    #[serde(default)]
    pub proc: Option<ProcSample>,
    #[serde(default)]
    pub gpus: Vec<GpuSample>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub log: Vec<LogEvent>,
    /// The machine's 1-minute load (`/proc/loadavg`), beside the tree's share.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load: Option<f64>,
    /// Set when the tree's evidence changed since the last sample.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tree: Option<TreeEvidence>,
    /// Joules of every CPU package over the interval before `t` (RAPL
    /// `energy_uj`, wrap handled); absent when unreadable (often root-only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_energy: Option<f64>,
}

/// Round for output: traces stay readable and diffs small.
pub fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// Joules to the microjoule: what the counters count.
pub fn round6(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}

impl Sample {
    /// Round every rate to two decimals (what is recorded is what replays).
    pub fn rounded(mut self) -> Sample {
        self.t = (self.t * 1000.0).round() / 1000.0;
        if let Some(p) = &mut self.proc {
            p.cores = p.cores.map(round2);
            p.read_bps = p.read_bps.map(f64::round);
            p.demand = p.demand.map(round2);
        }
        self.load = self.load.map(round2);
        for g in &mut self.gpus {
            g.busy = g.busy.map(round2);
            g.proc_busy = g.proc_busy.map(round2);
            g.power = g.power.map(round2);
            g.energy = g.energy.map(round6);
        }
        self.cpu_energy = self.cpu_energy.map(round6);
        self
    }
}
