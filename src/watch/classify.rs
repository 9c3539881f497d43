//! The verdict of one window of samples. Pure: samples in, verdict out; the
//! live watcher and `--replay` run this same code, so a recording gives the
//! verdicts its run gave. Thresholds are documented in docs/watch.md and
//! can be changed with `--thresholds FILE` (TOML, the field names below).
//!
//! Per window (the last `window` seconds): the process tree's cores busy
//! (median of the samples) and cores wanted (demand: CPU time plus
//! run-queue wait, `sched`); the comparisons below use the demand when it is
//! known, so a CPU-bound run that a loaded machine starves is still
//! CPU-bound, and one thread runnable all the time counts as "several"; each GPU's busy % (median), the read rate and
//! RSS growth. A GPU's busy % is its own DRM clients' share (fdinfo) when
//! the tree has the GPU open on i915/xe, else the device's busy % (which
//! counts other programs too). amdgpu per-process fdinfo is not used for
//! the verdict: ROCm compute queues bypass it. Integrated GPUs the tree
//! does not have open are left out. Then, first match wins:
//!
//! 1. no GPU reading at all → `cpu-fallback` if the engine log says it runs
//!    on the CPU and a core is busy, else `no-gpu-telemetry` (never "healthy");
//! 2. read rate or RSS growth ≥ `loading_mib_s` and no GPU busy → `loading`;
//!    2b. the tree mapped no GPU runtime and holds no GPU node (its maps
//!    were read: `stats.gpu_runtime == Some(false)`), computing, no GPU
//!    busy → `cpu-fallback`: nothing of it can be on a GPU;
//! 3. two or more engaged GPUs (open by the tree, or holding ≥
//!    `engaged_mem_mib`), one ≥ `gpu_busy_pct`, another < `gpu_idle_pct`
//!    → `multi-gpu-imbalance`;
//! 4. "several" cores busy and every GPU < `gpu_idle_pct` → `cpu-fallback`;
//!    "several" = min(`fallback_cores`, `fallback_core_fraction` × cores of
//!    the machine): 3 on a big box, 1.7 on a 2-core CI runner (both pegged);
//! 5. the engine log says everything is on the CPU, a core busy, no GPU busy
//!    → `cpu-fallback`;
//! 6. the engine log says part of the model is on the CPU, several cores
//!    busy → `partial-offload`;
//! 7. at least `busy_cores` busy and no GPU ≥ `gpu_busy_pct`: about one
//!    core (≤ `dispatch_max_cores`) with a GPU moderately busy (≥ idle) →
//!    `dispatch-bound` (launch overhead, not fallback), unless the log says
//!    partial offload; otherwise → `partial-offload` (the CPU does a share
//!    of the work while the GPU waits);
//! 8. a GPU ≥ `gpu_idle_pct` → `gpu-bound` (the GPU does the work);
//! 9. otherwise → `idle`.

use serde::{Deserialize, Serialize};

use super::enginelog::LogFacts;
use super::sample::{GpuInfo, GpuSample, Sample};

/// The numbers behind the verdicts. Defaults are the documented ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
#[schemars(transform = optional_since_v1)]
pub struct Thresholds {
    /// A GPU below this busy % is near idle.
    pub gpu_idle_pct: f64,
    /// A GPU at or above this busy % is doing the work.
    pub gpu_busy_pct: f64,
    /// "Several cores" on a big machine.
    pub fallback_cores: f64,
    /// ...but at most this share of the machine's cores (2-core box: 1.7).
    pub fallback_core_fraction: f64,
    /// At least this many cores busy: the process is computing.
    pub busy_cores: f64,
    /// Up to this many cores is "about one core pegged" (dispatch-bound).
    pub dispatch_max_cores: f64,
    /// Reading (or growing RSS) at least this fast, MiB/s: loading.
    pub loading_mib_s: f64,
    /// A GPU holding this much memory takes part in the run (imbalance).
    pub engaged_mem_mib: f64,
    /// Share of a window's samples that must carry a value.
    pub min_coverage: f64,
    /// A problem verdict must hold this many seconds to become a diagnosis.
    pub fault_seconds: f64,
    /// A decode speed under this share of the memory-bandwidth bound, with
    /// a GPU busy (≥ `gpu_busy_pct`), is `below-bound` (`watch.bound`).
    pub below_bound_fraction: f64,
}

/// Thresholds added after the first traces were recorded: a trace's start
/// line may lack them (replay takes the default), so the schema must too.
fn optional_since_v1(schema: &mut schemars::Schema) {
    if let Some(req) = schema.get_mut("required").and_then(|r| r.as_array_mut()) {
        req.retain(|v| v != "below_bound_fraction");
    }
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            gpu_idle_pct: 15.0,
            gpu_busy_pct: 60.0,
            fallback_cores: 3.0,
            fallback_core_fraction: 0.85,
            busy_cores: 0.7,
            dispatch_max_cores: 1.5,
            loading_mib_s: 50.0,
            engaged_mem_mib: 1024.0,
            min_coverage: 0.5,
            fault_seconds: 2.0,
            below_bound_fraction: 0.25,
        }
    }
}

impl Thresholds {
    /// "Several cores busy", scaled to the machine.
    pub fn several_cores(&self, cores: f64) -> f64 {
        self.fallback_cores
            .min(self.fallback_core_fraction * cores.max(1.0))
    }

    /// Values that make no sense are refused (usage error).
    pub fn validate(&self) -> Result<(), String> {
        let pct = |v: f64| (0.0..=100.0).contains(&v);
        if !pct(self.gpu_idle_pct)
            || !pct(self.gpu_busy_pct)
            || self.gpu_idle_pct > self.gpu_busy_pct
        {
            return Err("gpu_idle_pct and gpu_busy_pct are percentages, idle ≤ busy".into());
        }
        if !(0.0..=1.0).contains(&self.min_coverage)
            || !(0.0..=1.0).contains(&self.fallback_core_fraction)
            || !(0.0..=1.0).contains(&self.below_bound_fraction)
        {
            return Err(
                "min_coverage, fallback_core_fraction and below_bound_fraction are between 0 and 1"
                    .into(),
            );
        }
        for (n, v) in [
            ("fallback_cores", self.fallback_cores),
            ("busy_cores", self.busy_cores),
            ("dispatch_max_cores", self.dispatch_max_cores),
            ("loading_mib_s", self.loading_mib_s),
            ("engaged_mem_mib", self.engaged_mem_mib),
            ("fault_seconds", self.fault_seconds),
        ] {
            if !v.is_finite() || v < 0.0 {
                return Err(format!("{n} must be a number ≥ 0"));
            }
        }
        Ok(())
    }
}

/// What a window looks like.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    GpuBound,
    CpuFallback,
    PartialOffload,
    DispatchBound,
    MultiGpuImbalance,
    Loading,
    Idle,
    NoGpuTelemetry,
}

impl Verdict {
    pub const ALL: [Verdict; 8] = [
        Verdict::GpuBound,
        Verdict::CpuFallback,
        Verdict::PartialOffload,
        Verdict::DispatchBound,
        Verdict::MultiGpuImbalance,
        Verdict::Loading,
        Verdict::Idle,
        Verdict::NoGpuTelemetry,
    ];

    pub fn id(self) -> &'static str {
        match self {
            Verdict::GpuBound => "gpu-bound",
            Verdict::CpuFallback => "cpu-fallback",
            Verdict::PartialOffload => "partial-offload",
            Verdict::DispatchBound => "dispatch-bound",
            Verdict::MultiGpuImbalance => "multi-gpu-imbalance",
            Verdict::Loading => "loading",
            Verdict::Idle => "idle",
            Verdict::NoGpuTelemetry => "no-gpu-telemetry",
        }
    }

    /// Words for a person.
    pub fn title(self) -> &'static str {
        match self {
            Verdict::GpuBound => "GPU-bound (healthy)",
            Verdict::CpuFallback => "CPU FALLBACK",
            Verdict::PartialOffload => "partial offload",
            Verdict::DispatchBound => "dispatch-bound",
            Verdict::MultiGpuImbalance => "multi-GPU imbalance",
            Verdict::Loading => "loading",
            Verdict::Idle => "idle",
            Verdict::NoGpuTelemetry => "no GPU telemetry",
        }
    }

    /// One letter for the timeline.
    pub fn letter(self) -> char {
        match self {
            Verdict::GpuBound => 'G',
            Verdict::CpuFallback => 'F',
            Verdict::PartialOffload => 'P',
            Verdict::DispatchBound => 'D',
            Verdict::MultiGpuImbalance => 'M',
            Verdict::Loading => 'L',
            Verdict::Idle => 'I',
            Verdict::NoGpuTelemetry => '?',
        }
    }

    pub fn index(self) -> usize {
        Verdict::ALL.iter().position(|v| *v == self).unwrap_or(0)
    }

    /// The work (or part of it) runs on the CPU: what `--fail-on fallback` means.
    pub fn is_fallback(self) -> bool {
        matches!(self, Verdict::CpuFallback | Verdict::PartialOffload)
    }

    /// Not a fault: healthy, idle or loading.
    pub fn is_benign(self) -> bool {
        matches!(self, Verdict::GpuBound | Verdict::Loading | Verdict::Idle)
    }
}

/// Timing and machine facts the classifier needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub interval: f64,
    pub window: f64,
    pub cores: f64,
    pub th: Thresholds,
}

/// One GPU over one window.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct GpuWindow {
    pub id: String,
    pub label: String,
    /// Median busy %, None if too few readings in the window.
    pub busy: Option<f64>,
    /// Where `busy` came from (`fdinfo`, `gtidle`, `nvidia-smi`, ...).
    pub src: String,
    /// Counted in the verdict (not an integrated GPU the tree leaves alone).
    pub considered: bool,
    /// Open by the tree or holding memory: takes part in a multi-GPU run.
    pub engaged: bool,
    pub mem: Option<u64>,
}

/// A window in numbers.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct WindowStats {
    pub t: f64,
    pub samples: usize,
    pub cores: f64,
    /// Median cores wanted (CPU time + run-queue wait, schedstat); None
    /// when too few samples carry it.
    pub demand: Option<f64>,
    /// Median count of threads runnable all the time.
    pub saturated: Option<f64>,
    /// The machine's 1-minute load at the window's end.
    pub load: Option<f64>,
    /// Has the tree mapped a GPU runtime or opened a GPU node? None when its
    /// maps could not be read (or the trace predates the evidence).
    pub gpu_runtime: Option<bool>,
    pub read_mib_s: Option<f64>,
    pub rss_growth_mib_s: Option<f64>,
    /// Reading or RSS growth over the last interval only, MiB/s: a load
    /// that ended seconds ago still lifts the window's mean, so `loading`
    /// also needs this (None with a single sample).
    #[serde(skip)]
    #[schemars(skip)]
    pub recent_load_mib_s: Option<f64>,
    pub rss: Option<u64>,
    pub gpus: Vec<GpuWindow>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Classification {
    pub verdict: Verdict,
    /// The evidence in one sentence.
    pub reason: String,
    pub stats: WindowStats,
}

fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// The busy value the verdict uses for one GPU in one sample, and its source.
pub fn effective_busy(info: &GpuInfo, g: &GpuSample) -> Option<(f64, String)> {
    let own = matches!(info.driver.as_deref(), Some("i915") | Some("xe")) && g.in_use == Some(true);
    if own {
        if let Some(p) = g.proc_busy {
            return Some((p, "fdinfo".into()));
        }
    }
    g.busy
        .map(|b| (b, g.busy_src.clone().unwrap_or_else(|| "?".into())))
}

const MIB: f64 = 1048576.0;

/// Summarise the window ending at the last sample. None while warming up,
/// with too few samples (a gap), or when the process has ended.
pub fn window_stats(samples: &[&Sample], gpus: &[GpuInfo], cfg: &Config) -> Option<WindowStats> {
    let last = samples.last()?;
    last.proc.as_ref()?;
    let expected = (cfg.window / cfg.interval.max(1e-3)).max(1.0);
    let need = ((expected * cfg.th.min_coverage).round() as usize).max(1);
    let mut cores: Vec<f64> = samples
        .iter()
        .filter_map(|s| s.proc.as_ref()?.cores)
        .collect();
    if cores.len() < need {
        return None;
    }
    let mut demand: Vec<f64> = samples
        .iter()
        .filter_map(|s| s.proc.as_ref()?.demand)
        .collect();
    let mut saturated: Vec<f64> = samples
        .iter()
        .filter_map(|s| Some(s.proc.as_ref()?.saturated? as f64))
        .collect();
    let reads: Vec<f64> = samples
        .iter()
        .filter_map(|s| s.proc.as_ref()?.read_bps)
        .collect();
    let read_mib_s =
        (!reads.is_empty()).then(|| reads.iter().sum::<f64>() / reads.len() as f64 / MIB);
    let rss: Vec<(f64, u64)> = samples
        .iter()
        .filter_map(|s| Some((s.t, s.proc.as_ref()?.rss?)))
        .collect();
    let rss_growth_mib_s = match (rss.first(), rss.last()) {
        (Some(a), Some(b)) if b.0 - a.0 >= cfg.interval * 0.99 && b.0 > a.0 => {
            Some((b.1 as f64 - a.1 as f64) / MIB / (b.0 - a.0))
        }
        _ => None,
    };
    let recent_load_mib_s = match samples {
        [.., a, b] => {
            let read = b.proc.as_ref().and_then(|p| p.read_bps).map(|r| r / MIB);
            let grow = match (
                a.proc.as_ref().and_then(|p| p.rss),
                b.proc.as_ref().and_then(|p| p.rss),
            ) {
                (Some(x), Some(y)) if b.t > a.t => Some((y as f64 - x as f64) / MIB / (b.t - a.t)),
                _ => None,
            };
            match (read, grow) {
                (None, None) => None,
                (r, g) => Some(r.unwrap_or(0.0).max(g.unwrap_or(0.0))),
            }
        }
        _ => None,
    };
    let mut out = Vec::with_capacity(gpus.len());
    for info in gpus {
        let mut vals = Vec::new();
        let mut src = String::new();
        let mut in_use = false;
        let mut mem: Option<u64> = None;
        for s in samples {
            let Some(g) = s.gpus.iter().find(|g| g.id == info.id) else {
                continue;
            };
            in_use |= g.in_use == Some(true);
            if let Some(m) = g.mem {
                mem = Some(mem.map_or(m, |x| x.max(m)));
            }
            if let Some((b, sname)) = effective_busy(info, g) {
                vals.push(b);
                src = sname;
            }
        }
        let busy = if vals.len() >= need {
            median(&mut vals)
        } else {
            None
        };
        out.push(GpuWindow {
            id: info.id.clone(),
            label: info.label.clone(),
            busy,
            src,
            considered: !info.integrated || in_use,
            engaged: in_use || mem.is_some_and(|m| m as f64 >= cfg.th.engaged_mem_mib * MIB),
            mem,
        });
    }
    Some(WindowStats {
        t: last.t,
        samples: samples.len(),
        cores: median(&mut cores)?,
        demand: if demand.len() >= need {
            median(&mut demand)
        } else {
            None
        },
        saturated: if saturated.len() >= need {
            median(&mut saturated)
        } else {
            None
        },
        load: samples.iter().rev().find_map(|s| s.load),
        gpu_runtime: None,
        read_mib_s,
        rss_growth_mib_s,
        recent_load_mib_s,
        rss: last.proc.as_ref().and_then(|p| p.rss),
        gpus: out,
    })
}

/// The libraries whose absence `no_runtime` means, for the reason text.
const NO_RUNTIME: &str =
    "no libggml-cuda/-sycl/-vulkan/-hip, libcuda, libze_loader, libamdhip64 or libvulkan mapped";

/// "1.0 cores busy", or with demand known and above the share: "0.4 cores
/// busy, 2.0 wanted (2 threads runnable all the time; load 4.4 on 2 cores)".
fn cores_text(st: &WindowStats, cores: f64) -> String {
    let got = format!("{:.1} cores busy", st.cores);
    let Some(d) = st.demand else { return got };
    let mut why = Vec::new();
    if let Some(n) = st.saturated.filter(|n| *n >= 1.0) {
        let n = n.round() as u64;
        why.push(format!(
            "{n} thread{} runnable all the time",
            if n == 1 { "" } else { "s" }
        ));
    }
    if let Some(l) = st.load {
        why.push(format!("load {l:.1} on {} cores", short(cores)));
    }
    let why = if why.is_empty() {
        String::new()
    } else {
        format!(" ({})", why.join("; "))
    };
    if d >= st.cores + 0.15 {
        format!("{got}, {d:.1} wanted{why}")
    } else {
        format!("{got}{why}")
    }
}

/// `1.70` -> `1.7`, `0.35` -> `0.35`, `3.0` -> `3`.
fn short(v: f64) -> String {
    let t = format!("{v:.2}");
    t.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn gpu_list(gpus: &[&GpuWindow]) -> String {
    gpus.iter()
        .map(|g| match g.busy {
            Some(b) => format!("{} {:.0}% ({})", g.label, b, g.src),
            None => format!("{} unknown", g.label),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The verdict of one window (see the module docs for the order).
pub fn classify(stats: WindowStats, log: &LogFacts, cfg: &Config) -> Classification {
    let th = &cfg.th;
    let got = stats.cores;
    // Demand, not share: what the tree would keep busy on an idle machine.
    // Every core comparison below uses it; a run that got 0.4 cores of a
    // loaded box but was runnable all the time is as CPU-bound as one that
    // got 2.
    let c = stats.demand.map_or(got, |d| d.max(got));
    let sat = stats.saturated.unwrap_or(0.0);
    let several = th.several_cores(cfg.cores);
    // One thread runnable all the time is CPU-bound too (`-t 1`, or a
    // Python loop): "several" cores is not the only way to be CPU-bound.
    let cpu_bound = c >= several || sat >= 1.0;
    let no_runtime = stats.gpu_runtime == Some(false);
    let known: Vec<&GpuWindow> = stats
        .gpus
        .iter()
        .filter(|g| g.considered && g.busy.is_some())
        .collect();
    let max = known
        .iter()
        .filter_map(|g| g.busy)
        .fold(None, |m: Option<f64>, b| Some(m.map_or(b, |x| x.max(b))));
    let cores_txt = cores_text(&stats, cfg.cores);
    let mk = |verdict: Verdict, reason: String| (verdict, reason);

    let (verdict, reason) = if let Some(max) = max {
        let loading_rate = stats
            .read_mib_s
            .unwrap_or(0.0)
            .max(stats.rss_growth_mib_s.unwrap_or(0.0));
        let engaged: Vec<&GpuWindow> = known.iter().copied().filter(|g| g.engaged).collect();
        let emax = engaged
            .iter()
            .filter_map(|g| g.busy)
            .fold(f64::MIN, f64::max);
        let emin = engaged
            .iter()
            .filter_map(|g| g.busy)
            .fold(f64::MAX, f64::min);
        let gl = gpu_list(&known);
        // Still reading now, not only earlier in the window: after a fast
        // load (a model in the page cache maps in a second) the program is
        // already generating while the window's mean still says "reading".
        let still = stats
            .recent_load_mib_s
            .is_none_or(|r| r >= th.loading_mib_s);
        if loading_rate >= th.loading_mib_s && still && max < th.gpu_busy_pct {
            mk(
                Verdict::Loading,
                format!("reading {loading_rate:.0} MiB/s, {cores_txt}, GPUs not busy yet ({gl})"),
            )
        } else if no_runtime && c >= th.busy_cores && max < th.gpu_busy_pct {
            mk(
                Verdict::CpuFallback,
                format!(
                    "{cores_txt}, and the watched processes have no GPU runtime loaded and no GPU open ({NO_RUNTIME}): nothing can run on a GPU; GPUs {gl}"
                ),
            )
        } else if engaged.len() >= 2 && emax >= th.gpu_busy_pct && emin < th.gpu_idle_pct {
            mk(
                Verdict::MultiGpuImbalance,
                format!(
                    "one GPU busy, another idle: {} ({cores_txt})",
                    gpu_list(&engaged)
                ),
            )
        } else if cpu_bound && max < th.gpu_idle_pct {
            let why = if c >= several {
                format!(" (several = {} here)", short(several))
            } else {
                String::new()
            };
            mk(
                Verdict::CpuFallback,
                format!("{cores_txt}{why} while every GPU is near idle: {gl}"),
            )
        } else if log.cpu_only && c >= th.busy_cores && max < th.gpu_busy_pct {
            mk(
                Verdict::CpuFallback,
                format!(
                    "{cores_txt}, GPUs {gl}, and the engine log says: {}",
                    log.evidence
                ),
            )
        } else if log.partial && cpu_bound {
            mk(
                Verdict::PartialOffload,
                format!(
                    "{cores_txt}, GPUs {gl}, and the engine log says: {}",
                    log.evidence
                ),
            )
        } else if c >= th.busy_cores && max < th.gpu_busy_pct {
            if max >= th.gpu_idle_pct && c <= th.dispatch_max_cores && !log.partial {
                mk(
                    Verdict::DispatchBound,
                    format!(
                        "{cores_txt} (about one thread) feeding a GPU that is only moderately busy: {gl}"
                    ),
                )
            } else {
                let why = if log.partial {
                    format!("; the engine log says: {}", log.evidence)
                } else {
                    String::new()
                };
                mk(
                    Verdict::PartialOffload,
                    format!("{cores_txt} while the GPU is under-fed: {gl}{why}"),
                )
            }
        } else if max >= th.gpu_idle_pct {
            mk(Verdict::GpuBound, format!("GPU busy: {gl}; {cores_txt}"))
        } else {
            mk(Verdict::Idle, format!("{cores_txt}, GPUs near idle: {gl}"))
        }
    } else if log.cpu_only && c >= th.busy_cores {
        mk(
            Verdict::CpuFallback,
            format!(
                "{cores_txt}, no GPU reading, and the engine log says: {}",
                log.evidence
            ),
        )
    } else {
        let none: Vec<&GpuWindow> = stats.gpus.iter().filter(|g| g.considered).collect();
        let what = if none.is_empty() {
            "no GPU found to read".to_string()
        } else {
            format!("no busy reading from {}", gpu_list(&none))
        };
        mk(Verdict::NoGpuTelemetry, format!("{what}; {cores_txt}"))
    };
    Classification {
        verdict,
        reason,
        stats,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watch::sample::ProcSample;

    fn cfg(cores: f64) -> Config {
        Config {
            interval: 1.0,
            window: 5.0,
            cores,
            th: Thresholds::default(),
        }
    }

    fn gpu(id: &str, driver: &str) -> GpuInfo {
        GpuInfo {
            id: id.into(),
            label: id.into(),
            vendor: "amd".into(),
            driver: Some(driver.into()),
            integrated: false,
        }
    }

    /// `n` samples one second apart, each with the given cores and GPU busy values.
    fn samples(n: usize, cores: Option<f64>, gpus: &[(&str, Option<f64>)]) -> Vec<Sample> {
        (0..n)
            .map(|i| Sample {
                t: i as f64,
                proc: Some(ProcSample {
                    pids: 1,
                    threads: 1,
                    cores,
                    rss: Some(1 << 30),
                    read_bps: Some(0.0),
                    ..ProcSample::default()
                }),
                gpus: gpus
                    .iter()
                    .map(|(id, b)| GpuSample {
                        id: id.to_string(),
                        busy: *b,
                        busy_src: Some("gpu_busy_percent".into()),
                        mem: Some(8 << 30),
                        ..GpuSample::default()
                    })
                    .collect(),
                log: vec![],
                ..Sample::default()
            })
            .collect()
    }

    fn verdict_of(s: &[Sample], gpus: &[GpuInfo], cores: f64) -> Option<Verdict> {
        let refs: Vec<&Sample> = s.iter().collect();
        let st = window_stats(&refs, gpus, &cfg(cores))?;
        Some(classify(st, &LogFacts::default(), &cfg(cores)).verdict)
    }

    #[test]
    fn several_cores_scales_with_the_machine() {
        let th = Thresholds::default();
        assert_eq!(th.several_cores(2.0), 1.7, "2-core CI box: both pegged");
        assert_eq!(th.several_cores(1.0), 0.85);
        assert_eq!(th.several_cores(64.0), 3.0);
        let g = [gpu("a", "amdgpu")];
        // 1.8 cores on a 2-core box is fallback; on a 16-core box it is not.
        let s = samples(5, Some(1.8), &[("a", Some(2.0))]);
        assert_eq!(verdict_of(&s, &g, 2.0), Some(Verdict::CpuFallback));
        assert_eq!(verdict_of(&s, &g, 16.0), Some(Verdict::PartialOffload));
        let s = samples(5, Some(6.0), &[("a", Some(2.0))]);
        assert_eq!(verdict_of(&s, &g, 16.0), Some(Verdict::CpuFallback));
    }

    #[test]
    fn each_verdict_from_numbers() {
        let g = [gpu("a", "amdgpu")];
        let v = |c: f64, b: f64| verdict_of(&samples(5, Some(c), &[("a", Some(b))]), &g, 8.0);
        assert_eq!(v(1.0, 95.0), Some(Verdict::GpuBound));
        assert_eq!(
            v(0.1, 30.0),
            Some(Verdict::GpuBound),
            "light GPU work, CPU asleep"
        );
        assert_eq!(v(5.0, 3.0), Some(Verdict::CpuFallback));
        assert_eq!(v(5.0, 30.0), Some(Verdict::PartialOffload));
        assert_eq!(v(1.0, 35.0), Some(Verdict::DispatchBound));
        assert_eq!(v(0.05, 1.0), Some(Verdict::Idle));
    }

    #[test]
    fn loading_is_not_a_fault() {
        let g = [gpu("a", "amdgpu")];
        let mut s = samples(5, Some(1.0), &[("a", Some(0.0))]);
        for x in &mut s {
            x.proc.as_mut().unwrap().read_bps = Some(400.0 * MIB);
        }
        assert_eq!(verdict_of(&s, &g, 2.0), Some(Verdict::Loading));
        // mmap'ed weights: no read() calls, RSS grows 200 MiB/s.
        let mut s = samples(5, Some(1.0), &[("a", Some(0.0))]);
        for (i, x) in s.iter_mut().enumerate() {
            x.proc.as_mut().unwrap().rss = Some((i as u64) * 200 * (1 << 20));
        }
        assert_eq!(verdict_of(&s, &g, 2.0), Some(Verdict::Loading));
    }

    /// Issue 12: a model that loaded in the first second of the window (page
    /// cache, 2 GiB read at once) is not `loading` while the program already
    /// computes: the window's mean still says 400 MiB/s, the last interval 0.
    #[test]
    fn a_load_that_ended_is_not_loading() {
        let g = [gpu("a", "amdgpu")];
        let mut s = samples(5, Some(3.0), &[("a", Some(0.0))]);
        s[0].proc.as_mut().unwrap().read_bps = Some(2000.0 * MIB);
        assert_eq!(verdict_of(&s, &g, 4.0), Some(Verdict::CpuFallback));
        // The same through RSS (mmap): it grew 2 GiB, then stopped.
        let mut s = samples(5, Some(3.0), &[("a", Some(0.0))]);
        for (i, x) in s.iter_mut().enumerate() {
            x.proc.as_mut().unwrap().rss = Some(if i == 0 { 1 << 20 } else { 2 << 30 });
        }
        assert_eq!(verdict_of(&s, &g, 4.0), Some(Verdict::CpuFallback));
        // Still reading in the last interval: loading.
        let mut s = samples(5, Some(3.0), &[("a", Some(0.0))]);
        s[4].proc.as_mut().unwrap().read_bps = Some(2000.0 * MIB);
        assert_eq!(verdict_of(&s, &g, 4.0), Some(Verdict::Loading));
    }

    #[test]
    fn imbalance_needs_two_engaged_gpus() {
        let g = [gpu("a", "amdgpu"), gpu("b", "amdgpu")];
        let s = samples(5, Some(1.0), &[("a", Some(97.0)), ("b", Some(1.0))]);
        assert_eq!(verdict_of(&s, &g, 8.0), Some(Verdict::MultiGpuImbalance));
        // The idle one holds no memory and is not open: a single-GPU run.
        let mut s = s.clone();
        for x in &mut s {
            x.gpus[1].mem = Some(50 << 20);
        }
        assert_eq!(verdict_of(&s, &g, 8.0), Some(Verdict::GpuBound));
    }

    #[test]
    fn missing_samples_are_warm_up_not_a_verdict() {
        let g = [gpu("a", "amdgpu")];
        // First sample has no rate yet; two samples of five are too few.
        let s = samples(2, Some(5.0), &[("a", Some(0.0))]);
        assert_eq!(verdict_of(&s, &g, 8.0), None);
        // A gap: cores unknown in most of the window.
        let mut s = samples(5, Some(5.0), &[("a", Some(0.0))]);
        for x in s.iter_mut().take(4) {
            x.proc.as_mut().unwrap().cores = None;
        }
        assert_eq!(verdict_of(&s, &g, 8.0), None);
        // The process ended: no verdict.
        let mut s = samples(5, Some(5.0), &[("a", Some(0.0))]);
        s.last_mut().unwrap().proc = None;
        assert_eq!(verdict_of(&s, &g, 8.0), None);
    }

    #[test]
    fn a_gpu_that_vanishes_is_unknown_not_idle() {
        let g = [gpu("a", "amdgpu"), gpu("b", "amdgpu")];
        // b busy, a stops reporting after the first sample (fell off the bus).
        let mut s = samples(5, Some(1.0), &[("a", Some(0.0)), ("b", Some(90.0))]);
        for x in s.iter_mut().skip(1) {
            x.gpus.retain(|g| g.id != "a");
        }
        assert_eq!(
            verdict_of(&s, &g, 8.0),
            Some(Verdict::GpuBound),
            "a vanished GPU does not make an imbalance"
        );
        // Every GPU gone: no telemetry, never "healthy".
        let mut s = samples(5, Some(5.0), &[("a", Some(90.0))]);
        for x in &mut s {
            x.gpus.clear();
        }
        assert_eq!(verdict_of(&s, &g[..1], 8.0), Some(Verdict::NoGpuTelemetry));
        // No GPU at all on the machine.
        let s = samples(5, Some(0.0), &[]);
        assert_eq!(verdict_of(&s, &[], 8.0), Some(Verdict::NoGpuTelemetry));
    }

    #[test]
    fn unknown_readings_are_not_zero() {
        let g = [gpu("a", "amdgpu")];
        // N/A utilisation (xpu-smi on PVC): unknown, so no fallback claim.
        let s = samples(5, Some(6.0), &[("a", None)]);
        assert_eq!(verdict_of(&s, &g, 8.0), Some(Verdict::NoGpuTelemetry));
    }

    #[test]
    fn the_median_ignores_one_spike() {
        let g = [gpu("a", "amdgpu")];
        let mut s = samples(5, Some(5.0), &[("a", Some(1.0))]);
        s[2].gpus[0].busy = Some(100.0);
        assert_eq!(verdict_of(&s, &g, 8.0), Some(Verdict::CpuFallback));
    }

    #[test]
    fn own_fdinfo_share_beats_device_busy_on_intel() {
        let mut info = gpu("x", "xe");
        info.vendor = "intel".into();
        // The device is busy (someone else's job); our tree's clients are idle.
        let mut s = samples(5, Some(4.0), &[("x", Some(95.0))]);
        for x in &mut s {
            x.gpus[0].in_use = Some(true);
            x.gpus[0].proc_busy = Some(0.5);
        }
        assert_eq!(
            verdict_of(&s, &[info.clone()], 8.0),
            Some(Verdict::CpuFallback)
        );
        // amdgpu: fdinfo misses ROCm compute queues, the device number counts.
        let g = [gpu("x", "amdgpu")];
        assert_eq!(verdict_of(&s, &g, 8.0), Some(Verdict::GpuBound));
    }

    #[test]
    fn an_idle_igpu_is_left_out() {
        let mut igpu = gpu("i", "i915");
        igpu.integrated = true;
        let g = [igpu, gpu("d", "amdgpu")];
        let s = samples(5, Some(6.0), &[("i", Some(40.0)), ("d", Some(1.0))]);
        assert_eq!(verdict_of(&s, &g, 8.0), Some(Verdict::CpuFallback));
    }

    #[test]
    fn engine_log_evidence() {
        let g = [gpu("a", "amdgpu")];
        let s = samples(5, Some(1.0), &[("a", Some(3.0))]);
        let refs: Vec<&Sample> = s.iter().collect();
        let c = cfg(16.0);
        let mut log = LogFacts::default();
        log.add(
            &crate::watch::enginelog::Signal::Offloaded { n: 0, m: 33 },
            "llm_load_tensors: offloaded 0/33 layers to GPU",
        );
        let v = classify(window_stats(&refs, &g, &c).unwrap(), &log, &c);
        assert_eq!(
            v.verdict,
            Verdict::CpuFallback,
            "one core on a 16-core box, but the log says so"
        );
        assert!(v.reason.contains("offloaded 0/33"));
        // Without any GPU reading the log alone still speaks.
        let s = samples(5, Some(1.0), &[]);
        let refs: Vec<&Sample> = s.iter().collect();
        let v = classify(window_stats(&refs, &[], &c).unwrap(), &log, &c);
        assert_eq!(v.verdict, Verdict::CpuFallback);
        // Partial offload by the log, CPU busy, GPU somewhat busy.
        let mut log = LogFacts::default();
        log.add(
            &crate::watch::enginelog::Signal::Offloaded { n: 20, m: 49 },
            "load_tensors: offloaded 20/49 layers to GPU",
        );
        let s = samples(5, Some(4.0), &[("a", Some(70.0))]);
        let refs: Vec<&Sample> = s.iter().collect();
        let v = classify(window_stats(&refs, &g, &c).unwrap(), &log, &c);
        assert_eq!(v.verdict, Verdict::PartialOffload);
        let s = samples(5, Some(1.0), &[("a", Some(35.0))]);
        let refs: Vec<&Sample> = s.iter().collect();
        let v = classify(window_stats(&refs, &g, &c).unwrap(), &log, &c);
        assert_eq!(
            v.verdict,
            Verdict::PartialOffload,
            "not dispatch-bound: the log says why"
        );
    }

    /// Issue 12: on a loaded box (or with `-t 1`) a CPU-bound run gets
    /// little CPU. The share said `partial-offload` / `idle`; the demand
    /// (CPU time + run-queue wait) says CPU-bound.
    #[test]
    fn demand_not_share() {
        let g = [gpu("a", "amdgpu")];
        let c = cfg(2.0);
        let with = |got: f64, demand: Option<f64>, sat: Option<u32>, runtime: Option<bool>| {
            let mut s = samples(5, Some(got), &[("a", Some(2.0))]);
            for x in &mut s {
                let p = x.proc.as_mut().unwrap();
                p.demand = demand;
                p.saturated = sat;
                x.load = Some(4.4);
            }
            let refs: Vec<&Sample> = s.iter().collect();
            let mut st = window_stats(&refs, &g, &c).unwrap();
            st.gpu_runtime = runtime;
            classify(st, &LogFacts::default(), &c)
        };
        // The old verdicts, from the share alone.
        assert_eq!(with(1.0, None, None, None).verdict, Verdict::PartialOffload);
        assert_eq!(with(0.4, None, None, None).verdict, Verdict::Idle);
        // Two loops sharing one CPU: 0.4 cores got, 2 wanted.
        let v = with(0.4, Some(2.0), Some(2), None);
        assert_eq!(v.verdict, Verdict::CpuFallback);
        assert!(
            v.reason
                .contains("2.0 wanted (2 threads runnable all the time; load 4.4 on 2 cores)"),
            "{}",
            v.reason
        );
        // `-t 1` on a quiet box: one core, one thread runnable all the time.
        assert_eq!(
            with(1.0, Some(1.0), Some(1), None).verdict,
            Verdict::CpuFallback
        );
        // A sleeper is idle whatever the load.
        assert_eq!(with(0.01, Some(0.02), Some(0), None).verdict, Verdict::Idle);
        // Demand below the share is the share (read skew).
        assert_eq!(
            with(1.0, Some(0.5), Some(0), None).verdict,
            Verdict::PartialOffload
        );
        // No GPU runtime loaded: never partial, never dispatch-bound.
        let v = with(0.9, Some(0.9), Some(0), Some(false));
        assert_eq!(v.verdict, Verdict::CpuFallback);
        assert!(v.reason.contains("no GPU runtime loaded"), "{}", v.reason);
        // A runtime loaded and a half-busy GPU: the old rules.
        let mut s = samples(5, Some(1.0), &[("a", Some(35.0))]);
        for x in &mut s {
            x.proc.as_mut().unwrap().demand = Some(1.0);
            x.proc.as_mut().unwrap().saturated = Some(1);
        }
        let refs: Vec<&Sample> = s.iter().collect();
        let mut st = window_stats(&refs, &g, &c).unwrap();
        st.gpu_runtime = Some(true);
        assert_eq!(
            classify(st, &LogFacts::default(), &c).verdict,
            Verdict::DispatchBound
        );
    }

    #[test]
    fn thresholds_parse_and_validate() {
        let t: Thresholds = toml::from_str("gpu_idle_pct = 10.0\nfallback_cores = 2.5\n").unwrap();
        assert_eq!(
            (t.gpu_idle_pct, t.fallback_cores, t.gpu_busy_pct),
            (10.0, 2.5, 60.0)
        );
        assert!(t.validate().is_ok());
        assert!(toml::from_str::<Thresholds>("nope = 1").is_err());
        let bad = Thresholds {
            gpu_idle_pct: 80.0,
            ..Thresholds::default()
        };
        assert!(bad.validate().is_err());
    }
}
