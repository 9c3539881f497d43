//! The `watch.*` facts as types: what the watch rules see and what the
//! `summary` line of `--format json` carries (docs/watch.md, "Facts").
//! Typed so that `docs/schema/watch.json` is generated from the same structs
//! that are serialised; field order is the output's key order.

use serde::Serialize;

use super::bound::BoundFacts;
use super::classify::{Thresholds, Verdict};
use super::enginelog::{LogFacts, ThroughputFacts};
use super::sample::SourceStatus;

/// One value per verdict, every key present (rules index it by verdict id
/// without checking for absence). Keys in `Verdict::ALL` order.
#[derive(Debug, Clone, Serialize, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub struct PerVerdict<T> {
    pub gpu_bound: T,
    pub cpu_fallback: T,
    pub partial_offload: T,
    pub dispatch_bound: T,
    pub multi_gpu_imbalance: T,
    pub loading: T,
    pub idle: T,
    pub no_gpu_telemetry: T,
}

impl<T> PerVerdict<T> {
    pub fn from_fn(mut f: impl FnMut(Verdict) -> T) -> Self {
        PerVerdict {
            gpu_bound: f(Verdict::GpuBound),
            cpu_fallback: f(Verdict::CpuFallback),
            partial_offload: f(Verdict::PartialOffload),
            dispatch_bound: f(Verdict::DispatchBound),
            multi_gpu_imbalance: f(Verdict::MultiGpuImbalance),
            loading: f(Verdict::Loading),
            idle: f(Verdict::Idle),
            no_gpu_telemetry: f(Verdict::NoGpuTelemetry),
        }
    }
}

/// The watched process tree over the run; absent numbers are -1.
#[derive(Debug, Clone, Serialize, PartialEq, schemars::JsonSchema)]
pub struct ProcessFacts {
    pub cores_mean: f64,
    pub cores_max: f64,
    pub rss_max: i64,
    pub read_max_mib_s: f64,
    pub pids_max: i64,
    /// Cores wanted (CPU time + run-queue wait, schedstat): mean and max
    /// over the samples; -1 when schedstat was not readable.
    pub demand_mean: f64,
    pub demand_max: f64,
    /// The machine's highest 1-minute load during the run, -1 if unread.
    pub load_max: f64,
}

/// What the watched tree loaded, opened and was started with
/// (`/proc/PID/maps`, `/proc/PID/fd`, `/proc/PID/cmdline`).
#[derive(Debug, Clone, Serialize, PartialEq, Default, schemars::JsonSchema)]
pub struct TreeFacts {
    /// `loaded` (a GPU runtime mapped or a GPU node open), `none` (every
    /// process's maps read, nothing of the kind: nothing can be on a GPU),
    /// `unknown` (not readable, or a trace without this evidence).
    pub gpu_runtime: &'static str,
    /// The runtimes by name (`libggml-vulkan`, `libcuda`), each once.
    pub runtimes: Vec<String>,
    /// Their paths as mapped.
    pub paths: Vec<String>,
    /// GPU device nodes held open.
    pub devices: Vec<String>,
    /// The GPU flags of the command lines as typed (`-ngl 99 --device Vulkan0`), "" if none.
    pub flags: String,
    /// The GPU-layers value passed (`99`), "" if none.
    pub ngl: String,
    /// The GPU-layers value asks for every layer (`99`, `all`, ≥ the model's layers).
    pub ngl_all: bool,
    /// The device flag's value (`Vulkan0`, `none`), "" if none.
    pub device: String,
    /// All of it in one sentence for the evidence ("" when unknown).
    pub evidence: String,
}

/// One GPU over the run; absent numbers are -1.
#[derive(Debug, Clone, Serialize, PartialEq, schemars::JsonSchema)]
pub struct GpuFacts {
    pub id: String,
    pub label: String,
    pub vendor: String,
    pub driver: Option<String>,
    pub integrated: bool,
    pub busy_mean: f64,
    pub busy_max: f64,
    pub source: String,
    pub mem_max: i64,
}

/// Telemetry that could not be read: why, and the commands that find out.
#[derive(Debug, Clone, Serialize, PartialEq, schemars::JsonSchema)]
pub struct Missing {
    /// `gpus` (no GPU at all) or the GPU's label.
    pub source: String,
    /// The GPU's id, when one GPU is meant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu: Option<String>,
    pub why: String,
    pub fix: String,
}

/// One GPU's energy over the run: `watch.energy.gpus[]`.
#[derive(Debug, Clone, Serialize, PartialEq, schemars::JsonSchema)]
pub struct GpuEnergy {
    pub id: String,
    pub label: String,
    /// Joules over the seconds covered; null when no reading (unknown, never 0).
    pub joules: Option<f64>,
    /// `hwmon-energy` (the counter's own deltas), or the power source
    /// integrated over time (`hwmon-power`, `nvidia-smi`, `xpu-smi`); "" if none.
    pub source: String,
    /// Seconds of the run the joules cover.
    pub seconds: f64,
}

/// Energy over the run: `watch.energy`.
#[derive(Debug, Clone, Serialize, PartialEq, schemars::JsonSchema)]
pub struct EnergyFacts {
    pub gpus: Vec<GpuEnergy>,
    /// Every CPU package (RAPL `energy_uj`); null when unreadable (root-only
    /// since Linux 5.10) or absent.
    pub cpu_joules: Option<f64>,
    /// Seconds of the run `cpu_joules` covers.
    pub cpu_seconds: f64,
    /// The known joules (GPUs, plus the CPU packages when readable) over the
    /// generated tokens the engine counted; null when either is unknown.
    pub joules_per_token: Option<f64>,
    /// What `joules_per_token` adds up: `gpus+cpu`, `gpus`, `cpu`, "" if null.
    pub per_token_of: String,
}

/// `watch.*`.
#[derive(Debug, Clone, Serialize, PartialEq, schemars::JsonSchema)]
pub struct WatchFacts {
    pub target: String,
    pub seconds: f64,
    pub warmup_seconds: f64,
    pub interval: f64,
    pub window: f64,
    pub cores: f64,
    pub several_cores: f64,
    pub samples: i64,
    pub changes: i64,
    /// Seconds in each verdict.
    pub verdicts: PerVerdict<f64>,
    /// When each verdict was first seen, -1 if never.
    pub first: PerVerdict<f64>,
    /// The reason of its first window, with when and for how long ("" if never).
    pub evidence: PerVerdict<String>,
    /// Mean cores busy during each verdict.
    pub cores_in: PerVerdict<f64>,
    /// Fault verdicts that held at least `fault_seconds`.
    pub flagged: Vec<Verdict>,
    /// The verdict with the most time, "" if none.
    pub dominant: &'static str,
    /// What `--fail-on fallback` uses.
    pub fallback: bool,
    pub process: ProcessFacts,
    pub tree: TreeFacts,
    pub gpus: Vec<GpuFacts>,
    pub missing: Vec<Missing>,
    pub sources: Vec<SourceStatus>,
    pub log: LogFacts,
    /// The engine's own speed reports (docs/watch.md "Throughput").
    pub throughput: ThroughputFacts,
    pub energy: EnergyFacts,
    /// The decode speed limit (docs/watch.md "The speed limit").
    pub bound: BoundFacts,
    pub thresholds: Thresholds,
}

/// The document the watch rules evaluate: `{"watch": ...}`.
#[derive(Debug, Clone, Serialize, PartialEq, schemars::JsonSchema)]
pub struct Facts {
    pub watch: WatchFacts,
}
