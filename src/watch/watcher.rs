//! The state of one watch, live or replayed: the samples of the current
//! window, the verdict of each window and when it changed, the time spent in
//! each verdict, a bounded timeline for the summary's sparklines, and the
//! facts (`watch.*`) the rules engine turns into diagnoses. Memory stays
//! bounded however long the run: the window, at most [`MAX_BUCKETS`]
//! timeline buckets, and a few aggregates per GPU.

use std::collections::VecDeque;

use super::bound::{self, BoundFacts, BoundInputs};
use super::classify::{self, Classification, Config, Verdict, WindowStats};
use super::enginelog::{LogFacts, ThroughputFacts};
use super::evidence;
use super::facts::{
    EnergyFacts, GpuEnergy, GpuFacts, Missing, PerVerdict, ProcessFacts, TreeFacts, WatchFacts,
};
use super::sample::{GpuInfo, Header, Sample, SourceStatus, TreeEvidence, round2};

/// Timeline columns in the summary.
pub const MAX_BUCKETS: usize = 60;

/// Mean/max accumulator.
#[derive(Debug, Clone, Copy, Default)]
pub struct Acc {
    pub sum: f64,
    pub n: u32,
    pub max: f64,
}

impl Acc {
    pub fn add(&mut self, v: f64) {
        self.sum += v;
        self.n += 1;
        self.max = if self.n == 1 { v } else { self.max.max(v) };
    }
    pub fn mean(&self) -> Option<f64> {
        (self.n > 0).then(|| self.sum / self.n as f64)
    }
    fn merge(&mut self, o: &Acc) {
        if o.n == 0 {
            return;
        }
        self.max = if self.n == 0 {
            o.max
        } else {
            self.max.max(o.max)
        };
        self.sum += o.sum;
        self.n += o.n;
    }
}

/// One column of the timeline.
#[derive(Debug, Clone, Default)]
pub struct Bucket {
    pub cores: Acc,
    pub read: Acc,
    pub gpus: Vec<Acc>,
    /// The engine's decode speed reports in this column.
    pub tps: Acc,
    /// Seconds per verdict (index as `Verdict::ALL`), then warm-up.
    pub verdicts: [f64; 9],
}

impl Bucket {
    /// The verdict that held longest in this column; None if only warm-up.
    pub fn verdict(&self) -> Option<Verdict> {
        let (i, secs) = self
            .verdicts
            .iter()
            .take(8)
            .enumerate()
            .fold(
                (0, 0.0),
                |best, (i, s)| if *s > best.1 { (i, *s) } else { best },
            );
        (secs > 0.0).then(|| Verdict::ALL[i])
    }

    /// The column's letter: the verdict, `·` for warm-up, blank for no time.
    pub fn letter(&self) -> char {
        match self.verdict() {
            Some(v) => v.letter(),
            None if self.verdicts[8] > 0.0 => '·',
            None => ' ',
        }
    }
}

/// Fixed number of columns; the width doubles (pairs merge) as the run grows.
#[derive(Debug, Clone)]
pub struct Timeline {
    pub width: f64,
    pub buckets: Vec<Bucket>,
}

impl Timeline {
    fn new(width: f64) -> Timeline {
        Timeline {
            width: width.max(0.001),
            buckets: Vec::new(),
        }
    }

    fn slot(&mut self, t: f64, gpus: usize) -> &mut Bucket {
        let mut idx = (t.max(0.0) / self.width) as usize;
        while idx >= MAX_BUCKETS {
            let merged: Vec<Bucket> = self
                .buckets
                .chunks(2)
                .map(|pair| {
                    let mut b = pair[0].clone();
                    if let Some(o) = pair.get(1) {
                        b.cores.merge(&o.cores);
                        b.read.merge(&o.read);
                        b.tps.merge(&o.tps);
                        for (i, g) in o.gpus.iter().enumerate() {
                            if i >= b.gpus.len() {
                                b.gpus.push(Acc::default());
                            }
                            b.gpus[i].merge(g);
                        }
                        for (i, v) in o.verdicts.iter().enumerate() {
                            b.verdicts[i] += v;
                        }
                    }
                    b
                })
                .collect();
            self.buckets = merged;
            self.width *= 2.0;
            idx = (t.max(0.0) / self.width) as usize;
        }
        while self.buckets.len() <= idx {
            self.buckets.push(Bucket::default());
        }
        let b = &mut self.buckets[idx];
        while b.gpus.len() < gpus {
            b.gpus.push(Acc::default());
        }
        b
    }
}

/// One GPU over the whole run.
#[derive(Debug, Clone)]
pub struct GpuSummary {
    pub info: GpuInfo,
    pub mean: Option<f64>,
    pub max: Option<f64>,
    /// The source of the last busy reading.
    pub src: String,
    pub mem_max: Option<u64>,
}

/// A change of verdict, for the screen and the JSON Lines.
#[derive(Debug, Clone)]
pub struct Change {
    pub t: f64,
    pub verdict: Verdict,
    pub previous: Option<Verdict>,
    pub reason: String,
    pub stats: WindowStats,
}

#[derive(Debug, Clone, Default)]
struct GpuAcc {
    busy: Acc,
    /// Busy while the run computed (a verdict other than idle, loading or
    /// no telemetry was in force): what `watch.bound` calls busy.
    busy_active: Acc,
    /// Samples with a throttle reading while the run computed, those
    /// throttled, and the reasons seen.
    throttle_n: u32,
    throttled_n: u32,
    throttle_reasons: Vec<String>,
    mem_max: Option<u64>,
    power: Acc,
    last_seen: Option<f64>,
    src: String,
    /// Joules over `energy_secs` seconds, from `energy_src`.
    joules: f64,
    energy_secs: f64,
    energy_n: u32,
    energy_src: String,
}

#[derive(Debug, Clone, Default)]
struct VerdictAcc {
    secs: f64,
    first: Option<f64>,
    first_reason: String,
    cores: Acc,
}

pub struct Watcher {
    pub cfg: Config,
    pub header: Header,
    window: VecDeque<Sample>,
    pub current: Option<Verdict>,
    /// The last window's numbers, for the status line.
    pub last_stats: Option<WindowStats>,
    per: [VerdictAcc; 8],
    warmup: f64,
    pub log: LogFacts,
    /// The engine's own speed reports.
    pub tput: ThroughputFacts,
    /// What the log said that the decode bound needs.
    pub bound_in: BoundInputs,
    pub timeline: Timeline,
    last_t: Option<f64>,
    gpus: Vec<GpuAcc>,
    cores: Acc,
    rss_max: Option<u64>,
    read: Acc,
    pids_max: u32,
    samples: u64,
    changes: u32,
    demand: Acc,
    load: Acc,
    cpu_joules: f64,
    cpu_secs: f64,
    cpu_n: u32,
    /// The tree's evidence, last seen.
    pub tree: Option<TreeEvidence>,
}

impl Watcher {
    pub fn new(header: Header, cfg: Config) -> Watcher {
        let n = header.gpus.len();
        let width = cfg.interval.max(1.0);
        Watcher {
            cfg,
            header,
            window: VecDeque::new(),
            current: None,
            last_stats: None,
            per: Default::default(),
            warmup: 0.0,
            log: LogFacts::default(),
            tput: ThroughputFacts::default(),
            bound_in: BoundInputs::default(),
            timeline: Timeline::new(width),
            last_t: None,
            gpus: vec![GpuAcc::default(); n],
            cores: Acc::default(),
            rss_max: None,
            read: Acc::default(),
            pids_max: 0,
            samples: 0,
            changes: 0,
            demand: Acc::default(),
            load: Acc::default(),
            cpu_joules: 0.0,
            cpu_secs: 0.0,
            cpu_n: 0,
            tree: None,
        }
    }

    pub fn add_gpu(&mut self, g: GpuInfo) {
        if !self.header.gpus.iter().any(|x| x.id == g.id) {
            self.header.gpus.push(g);
            self.gpus.push(GpuAcc::default());
        }
    }

    pub fn set_source(&mut self, s: SourceStatus) {
        match self.header.sources.iter_mut().find(|x| x.name == s.name) {
            Some(x) => *x = s,
            None => self.header.sources.push(s),
        }
    }

    /// Seconds watched so far.
    pub fn elapsed(&self) -> f64 {
        self.last_t.unwrap_or(0.0)
    }

    /// Did a fault verdict hold long enough to count?
    pub fn flagged(&self, v: Verdict) -> bool {
        self.per[v.index()].secs >= self.cfg.th.fault_seconds.max(1e-9)
    }

    /// The most samples a window holds: four times what the interval puts in
    /// one (samples arrive late and early), and never fewer than 64.
    fn window_cap(&self) -> usize {
        let expected = self.cfg.window / self.cfg.interval.max(1e-3);
        ((expected * 4.0).ceil() as usize).clamp(64, 1 << 16)
    }

    /// Fold in one sample; returns the change of verdict, if any.
    pub fn push(&mut self, mut s: Sample) -> Option<Change> {
        let dt = self.last_t.map(|prev| (s.t - prev).max(0.0));
        // Time since the previous sample belongs to the verdict then in force.
        if let Some(prev) = self.last_t {
            let dt = (s.t - prev).clamp(0.0, self.cfg.interval * 10.0 + self.cfg.window);
            match self.current {
                Some(v) => self.per[v.index()].secs += dt,
                None => self.warmup += dt,
            }
            let slot = self.timeline.slot(prev, self.header.gpus.len());
            match self.current {
                Some(v) => slot.verdicts[v.index()] += dt,
                None => slot.verdicts[8] += dt,
            }
        }
        self.last_t = Some(s.t);
        self.samples += 1;
        for e in &s.log {
            self.bound_in.add(&e.signal);
            if self.tput.add(&e.signal, &e.line) {
                if let super::enginelog::Signal::Throughput {
                    decode_tps: Some(d),
                    ..
                } = &e.signal
                {
                    let n = self.header.gpus.len();
                    self.timeline.slot(s.t, n).tps.add(*d);
                }
            } else {
                self.log.add(&e.signal, &e.line);
            }
        }
        if !s.log.is_empty() {
            self.log.read = true;
        }
        if let Some(t) = s.tree.take() {
            self.tree = Some(t);
        }
        self.account(&s, dt);
        // Log lines are folded into the facts above; the window keeps numbers.
        s.log.clear();
        self.window.push_back(s);
        let t_last = self.window.back().map(|x| x.t).unwrap_or(0.0);
        // By time, and by count: samples that share a time (a replayed trace
        // with duplicated lines) would otherwise all stay in the window, and
        // classifying it at every sample would be quadratic (issue 8, item 9).
        let cap = self.window_cap();
        while let Some(f) = self.window.front() {
            if f.t <= t_last - self.cfg.window + 1e-6 || self.window.len() > cap {
                self.window.pop_front();
            } else {
                break;
            }
        }
        let refs: Vec<&Sample> = self.window.iter().collect();
        let mut stats = classify::window_stats(&refs, &self.header.gpus, &self.cfg)?;
        stats.gpu_runtime = self.gpu_runtime();
        let Classification {
            verdict,
            reason,
            stats,
        } = classify::classify(stats, &self.log, &self.cfg);
        self.last_stats = Some(stats.clone());
        let acc = &mut self.per[verdict.index()];
        acc.cores.add(stats.cores);
        if acc.first.is_none() {
            acc.first = Some(stats.t);
            acc.first_reason = reason.clone();
        }
        if self.current == Some(verdict) {
            return None;
        }
        let previous = self.current.replace(verdict);
        self.changes += 1;
        Some(Change {
            t: stats.t,
            verdict,
            previous,
            reason,
            stats,
        })
    }

    fn account(&mut self, s: &Sample, dt: Option<f64>) {
        let n = self.header.gpus.len();
        // A power reading stands for the interval before it, but not for a
        // gap the sampler slept through (suspend): that time is unknown.
        let power_dt = dt.filter(|d| *d <= self.cfg.interval * 3.0 + 0.5);
        let mut busy_now: Vec<Option<f64>> = vec![None; n];
        for g in &s.gpus {
            let Some(i) = self.header.gpus.iter().position(|x| x.id == g.id) else {
                continue;
            };
            let acc = &mut self.gpus[i];
            if let Some((b, src)) = classify::effective_busy(&self.header.gpus[i], g) {
                acc.busy.add(b);
                let computing = self.current.is_some_and(|v| {
                    !matches!(
                        v,
                        Verdict::Idle | Verdict::Loading | Verdict::NoGpuTelemetry
                    )
                });
                if computing {
                    acc.busy_active.add(b);
                    if let Some(t) = &g.throttle {
                        acc.throttle_n += 1;
                        if !t.is_empty() {
                            acc.throttled_n += 1;
                        }
                        for r in t.iter().take(16) {
                            if acc.throttle_reasons.len() < 16 && !acc.throttle_reasons.contains(r)
                            {
                                acc.throttle_reasons.push(r.clone());
                            }
                        }
                    }
                }
                acc.last_seen = Some(s.t);
                acc.src = src;
                busy_now[i] = Some(b);
            }
            if let Some(m) = g.mem {
                acc.mem_max = Some(acc.mem_max.map_or(m, |x| x.max(m)));
            }
            if let Some(p) = g.power {
                acc.power.add(p);
            }
            // The counter's own joules when it has one (exact, whatever the
            // gap); else the power integrated over the interval.
            let joules = match (g.energy, g.power, power_dt) {
                (Some(e), _, _) if e.is_finite() && e >= 0.0 => {
                    Some((e, "hwmon-energy".to_string()))
                }
                (None, Some(p), Some(d)) if p.is_finite() && p >= 0.0 => {
                    Some((p * d, g.power_src.clone().unwrap_or_else(|| "power".into())))
                }
                _ => None,
            };
            if let Some((j, src)) = joules {
                acc.joules += j;
                acc.energy_secs += dt.unwrap_or(0.0);
                acc.energy_n += 1;
                acc.energy_src = src;
            }
        }
        if let Some(e) = s.cpu_energy.filter(|e| e.is_finite() && *e >= 0.0) {
            self.cpu_joules += e;
            self.cpu_secs += dt.unwrap_or(0.0);
            self.cpu_n += 1;
        }
        if let Some(l) = s.load {
            self.load.add(l);
        }
        let slot = self.timeline.slot(s.t, n);
        if let Some(p) = &s.proc {
            if let Some(c) = p.cores {
                self.cores.add(c);
                slot.cores.add(c);
            }
            if let Some(r) = p.read_bps {
                self.read.add(r);
                slot.read.add(r);
            }
            if let Some(d) = p.demand {
                self.demand.add(d);
            }
            if let Some(r) = p.rss {
                self.rss_max = Some(self.rss_max.map_or(r, |x| x.max(r)));
            }
            self.pids_max = self.pids_max.max(p.pids);
        }
        for (i, b) in busy_now.iter().enumerate() {
            if let (Some(b), Some(acc)) = (b, slot.gpus.get_mut(i)) {
                acc.add(*b);
            }
        }
    }

    /// Has the tree a GPU runtime mapped or a GPU node open? None: unknown.
    pub fn gpu_runtime(&self) -> Option<bool> {
        let t = self.tree.as_ref()?;
        if !t.runtimes.is_empty() || !t.devices.is_empty() {
            Some(true)
        } else {
            t.maps_readable.then_some(false)
        }
    }

    /// `watch.tree`: the evidence as facts.
    fn tree_facts(&self) -> TreeFacts {
        let Some(t) = &self.tree else {
            return TreeFacts {
                gpu_runtime: "unknown",
                ..TreeFacts::default()
            };
        };
        let mut runtimes: Vec<String> = Vec::new();
        for p in &t.runtimes {
            if let Some(n) = evidence::gpu_runtime(p) {
                if !runtimes.iter().any(|x| x == n) {
                    runtimes.push(n.to_string());
                }
            }
        }
        let ngl = evidence::ngl_value(&t.flags).unwrap_or("").to_string();
        let device = evidence::device_value(&t.flags).unwrap_or("").to_string();
        let gpu_runtime = match self.gpu_runtime() {
            Some(true) => "loaded",
            Some(false) => "none",
            None => "unknown",
        };
        let flags = t.flags.join(" ");
        let mut parts = Vec::new();
        match gpu_runtime {
            "loaded" if !t.runtimes.is_empty() => {
                let names: Vec<&str> = t
                    .runtimes
                    .iter()
                    .map(|p| p.rsplit('/').next().unwrap_or(p))
                    .collect();
                parts.push(format!("GPU runtimes loaded: {}", names.join(", ")));
            }
            "loaded" => parts.push("no GPU runtime library mapped".into()),
            "none" => parts.push("no GPU runtime loaded (libggml-cuda/-sycl/-vulkan/-hip, libcuda, libze_loader, libamdhip64, libvulkan: none in /proc/PID/maps)".into()),
            _ => parts.push("GPU runtimes unknown (/proc/PID/maps not readable)".into()),
        }
        if !t.devices.is_empty() {
            parts.push(format!("GPU nodes open: {}", t.devices.join(", ")));
        } else if gpu_runtime != "unknown" {
            parts.push("no GPU node open".into());
        }
        if !flags.is_empty() {
            parts.push(format!("command line: {flags}"));
        }
        TreeFacts {
            gpu_runtime,
            runtimes,
            paths: t.runtimes.clone(),
            devices: t.devices.clone(),
            ngl_all: !ngl.is_empty() && evidence::ngl_is_all(&ngl, self.log.layers),
            ngl,
            device,
            flags,
            evidence: parts.join("; "),
        }
    }

    /// Seconds in a verdict.
    pub fn seconds(&self, v: Verdict) -> f64 {
        self.per[v.index()].secs
    }

    pub fn warmup_seconds(&self) -> f64 {
        self.warmup
    }

    /// Per-GPU aggregates for the summary.
    pub fn gpu_summary(&self) -> Vec<GpuSummary> {
        self.header
            .gpus
            .iter()
            .zip(&self.gpus)
            .map(|(g, a)| GpuSummary {
                info: g.clone(),
                mean: a.busy.mean(),
                max: (a.busy.n > 0).then_some(a.busy.max),
                src: a.src.clone(),
                mem_max: a.mem_max,
            })
            .collect()
    }

    pub fn cores_summary(&self) -> (Option<f64>, Option<f64>) {
        (
            self.cores.mean(),
            (self.cores.n > 0).then_some(self.cores.max),
        )
    }

    pub fn read_max(&self) -> Option<f64> {
        (self.read.n > 0).then_some(self.read.max)
    }

    /// The telemetry that could not be read, with why and how to get it.
    pub fn missing(&self) -> Vec<Missing> {
        let mut out = Vec::new();
        if self.header.gpus.is_empty() {
            let nv = self
                .header
                .sources
                .iter()
                .find(|s| s.name == "nvidia-smi")
                .map(|s| format!("nvidia-smi: {} ({})", s.status, s.detail))
                .unwrap_or_default();
            out.push(Missing {
                source: "gpus".into(),
                gpu: None,
                why: format!("no i915, xe, amdgpu or nvidia GPU under /sys/class/drm{}", if nv.is_empty() { String::new() } else { format!("; {nv}") }),
                fix: "rigdoctor check          # are the GPU drivers loaded, is the GPU on the bus?\nls -l /sys/class/drm /dev/dri".into(),
            });
            return out;
        }
        for ((g, acc), _) in self.header.gpus.iter().zip(&self.gpus).zip(0..) {
            if acc.busy.n > 0 || (g.integrated && acc.mem_max.is_none()) {
                continue;
            }
            let why = self
                .header
                .sources
                .iter()
                .find(|s| s.name == format!("gpu:{}", g.id))
                .map(|s| s.detail.clone())
                .filter(|d| !d.is_empty())
                .or_else(|| {
                    self.header
                        .sources
                        .iter()
                        .find(|s| s.name == "nvidia-smi" && g.vendor == "nvidia")
                        .map(|s| format!("nvidia-smi {}: {}", s.status, s.detail))
                })
                .unwrap_or_else(|| "no busy reading during the run".into());
            let fix = match (g.vendor.as_str(), g.driver.as_deref()) {
                ("nvidia", _) => {
                    "nvidia-smi --query-gpu=index,utilization.gpu --format=csv   # does it answer?\n# it ships with the driver: install the NVIDIA utilities package that matches `cat /proc/driver/nvidia/version`"
                }
                (_, Some("xe")) => {
                    "uname -r     # xe reports gtidle/idle_residency_ms from Linux 6.8 on\nls /sys/class/drm/*/device/tile*/gt*/gtidle/\n# or install xpu-smi (intel/xpumanager): rigdoctor reads `xpu-smi dump` when the files are missing"
                }
                (_, Some("i915")) => {
                    "cat /sys/class/drm/card*/gt/gt0/rc6_residency_ms   # RC6 off (i915.enable_rc6=0) or a VM hides it\n# or install xpu-smi (intel/xpumanager)"
                }
                (_, Some("amdgpu")) => {
                    "cat /sys/class/drm/card*/device/gpu_busy_percent   # needs a recent amdgpu; rocm-smi shows the same number"
                }
                _ => "rigdoctor check",
            };
            out.push(Missing {
                source: g.label.clone(),
                gpu: Some(g.id.clone()),
                why,
                fix: fix.into(),
            });
        }
        out
    }

    /// `watch.energy`: joules per GPU and CPU over the run, per generated token.
    pub fn energy_facts(&self) -> EnergyFacts {
        let gpus: Vec<GpuEnergy> = self
            .header
            .gpus
            .iter()
            .zip(&self.gpus)
            .map(|(g, a)| GpuEnergy {
                id: g.id.clone(),
                label: g.label.clone(),
                joules: (a.energy_n > 0).then(|| round3(a.joules) + 0.0),
                source: a.energy_src.clone(),
                seconds: round1(a.energy_secs) + 0.0,
            })
            .collect();
        let cpu_joules = (self.cpu_n > 0).then(|| round3(self.cpu_joules) + 0.0);
        let gpu_known: Vec<f64> = gpus.iter().filter_map(|g| g.joules).collect();
        let (total, per_token_of) = match (gpu_known.is_empty(), cpu_joules) {
            (true, None) => (None, ""),
            (true, Some(c)) => (Some(c), "cpu"),
            (false, None) => (Some(gpu_known.iter().sum::<f64>()), "gpus"),
            (false, Some(c)) => (Some(gpu_known.iter().sum::<f64>() + c), "gpus+cpu"),
        };
        let joules_per_token = match (total, self.tput.decode_tokens) {
            (Some(j), Some(n)) if n > 0 => Some(round4(j / n as f64) + 0.0),
            _ => None,
        };
        EnergyFacts {
            gpus,
            cpu_joules,
            cpu_seconds: round1(self.cpu_secs) + 0.0,
            joules_per_token,
            per_token_of: if joules_per_token.is_some() {
                per_token_of.into()
            } else {
                String::new()
            },
        }
    }

    /// `watch.bound`: the decode speed limit and how the run compares. The
    /// GPU counts as busy when its mean while the run computed is at least
    /// `gpu_busy_pct` (integrated GPUs the tree left alone are not counted).
    pub fn bound_facts(&self) -> BoundFacts {
        let busy = self
            .header
            .gpus
            .iter()
            .zip(&self.gpus)
            .filter(|(g, _)| !g.integrated)
            .filter_map(|(g, a)| Some((g, a, a.busy_active.mean()?)))
            .filter(|(_, _, m)| *m >= self.cfg.th.gpu_busy_pct)
            .max_by(|x, y| x.2.total_cmp(&y.2))
            .map(|(g, a, m)| bound::Busy {
                label: g.label.clone(),
                pct: m,
                src: a.src.clone(),
                vendor: g.vendor.clone(),
                throttle: (a.throttle_n > 0).then(|| bound::Throttle {
                    samples: a.throttle_n,
                    throttled: a.throttled_n,
                    reasons: a.throttle_reasons.clone(),
                }),
            });
        let ngl_all = self.tree_facts().ngl_all;
        let file = self
            .tree
            .as_ref()
            .and_then(|t| t.model.as_ref())
            .map(|m| (m, ngl_all));
        bound::compute_with(
            &self.bound_in,
            file,
            self.tput.decode_tps,
            busy.as_ref(),
            self.cfg.th.below_bound_fraction,
        )
    }

    /// The `watch` facts the rules see (docs/watch.md, "Facts").
    pub fn facts(&self) -> WatchFacts {
        let per = |v: Verdict| &self.per[v.index()];
        // `+ 0.0` turns -0.0 into 0.0: the JSON says `0.0`, never `-0.0`.
        let verdicts = PerVerdict::from_fn(|v| round1(per(v).secs) + 0.0);
        let first = PerVerdict::from_fn(|v| per(v).first.map(round2).unwrap_or(-1.0));
        let cores_in = PerVerdict::from_fn(|v| round2(per(v).cores.mean().unwrap_or(0.0)));
        let evidence = PerVerdict::from_fn(|v| {
            let a = per(v);
            if a.first.is_some() {
                format!(
                    "{} (first at {}, {:.0} s in all)",
                    a.first_reason,
                    clock(a.first.unwrap_or(0.0)),
                    a.secs
                )
            } else {
                String::new()
            }
        });
        let flagged: Vec<Verdict> = Verdict::ALL
            .iter()
            .filter(|v| !v.is_benign() && self.flagged(**v))
            .copied()
            .collect();
        let dominant = Verdict::ALL
            .iter()
            .filter(|v| self.per[v.index()].secs > 0.0)
            .max_by(|a, b| {
                self.per[a.index()]
                    .secs
                    .total_cmp(&self.per[b.index()].secs)
            })
            .map(|v| v.id());
        let fallback = self.flagged(Verdict::CpuFallback)
            || self.flagged(Verdict::PartialOffload)
            || self.log.cpu_only
            || self.log.partial;
        let gpus: Vec<GpuFacts> = self
            .gpu_summary()
            .into_iter()
            .map(
                |GpuSummary {
                     info: g,
                     mean,
                     max,
                     src,
                     mem_max: mem,
                 }| GpuFacts {
                    id: g.id,
                    label: g.label,
                    vendor: g.vendor,
                    driver: g.driver,
                    integrated: g.integrated,
                    busy_mean: mean.map(round2).unwrap_or(-1.0),
                    busy_max: max.map(round2).unwrap_or(-1.0),
                    source: src,
                    mem_max: mem.map(|m| m as i64).unwrap_or(-1),
                },
            )
            .collect();
        let (cmean, cmax) = self.cores_summary();
        let tree = self.tree_facts();
        let mut log = self.log.clone();
        if tree.ngl_all {
            // Never advise a flag the user already passed.
            let flag = self
                .tree
                .as_ref()
                .and_then(|t| {
                    let i = t.flags.iter().rposition(|f| {
                        ["-ngl", "--n-gpu-layers", "--gpu-layers"].contains(&f.as_str())
                    })?;
                    Some(format!("{} {}", t.flags[i], tree.ngl))
                })
                .unwrap_or_else(|| format!("-ngl {}", tree.ngl));
            log.fix = evidence::without_passed_ngl(&log.fix, &flag);
        }
        WatchFacts {
            target: self.header.target.clone(),
            seconds: round1(self.elapsed()) + 0.0,
            warmup_seconds: round1(self.warmup) + 0.0,
            interval: self.cfg.interval + 0.0,
            window: self.cfg.window + 0.0,
            cores: self.cfg.cores + 0.0,
            several_cores: round2(self.cfg.th.several_cores(self.cfg.cores)) + 0.0,
            samples: self.samples as i64,
            changes: self.changes as i64,
            verdicts,
            first,
            evidence,
            cores_in,
            flagged,
            dominant: dominant.unwrap_or(""),
            fallback,
            process: ProcessFacts {
                cores_mean: round2(cmean.unwrap_or(-1.0)) + 0.0,
                cores_max: round2(cmax.unwrap_or(-1.0)) + 0.0,
                rss_max: self.rss_max.map(|r| r as i64).unwrap_or(-1),
                read_max_mib_s: round2(self.read_max().map(|r| r / 1048576.0).unwrap_or(-1.0))
                    + 0.0,
                pids_max: self.pids_max as i64,
                demand_mean: round2(self.demand.mean().unwrap_or(-1.0)) + 0.0,
                demand_max: round2(if self.demand.n > 0 {
                    self.demand.max
                } else {
                    -1.0
                }) + 0.0,
                load_max: round2(if self.load.n > 0 { self.load.max } else { -1.0 }) + 0.0,
            },
            tree,
            gpus,
            missing: self.missing(),
            sources: self.header.sources.clone(),
            log,
            throughput: self.tput.clone(),
            energy: self.energy_facts(),
            bound: self.bound_facts(),
            thresholds: self.cfg.th.clone(),
        }
    }
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// Joules to the millijoule.
fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

fn round4(v: f64) -> f64 {
    (v * 10000.0).round() / 10000.0
}

/// `73.4` -> `1:13`.
pub fn clock(t: f64) -> String {
    let s = t.max(0.0).round() as u64;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watch::classify::Thresholds;
    use crate::watch::sample::{GpuSample, ProcSample};
    use serde_json::json;

    fn header(gpus: Vec<GpuInfo>) -> Header {
        Header {
            format: crate::watch::sample::TRACE_FORMAT.into(),
            rigdoctor: "test".into(),
            target: "test".into(),
            interval: 1.0,
            window: 3.0,
            cores: 2.0,
            gpus,
            sources: vec![],
            thresholds: None,
        }
    }

    fn cfg() -> Config {
        Config {
            interval: 1.0,
            window: 3.0,
            cores: 2.0,
            th: Thresholds::default(),
        }
    }

    fn sample(t: f64, cores: f64, busy: f64) -> Sample {
        Sample {
            t,
            proc: Some(ProcSample {
                pids: 1,
                threads: 2,
                cores: Some(cores),
                rss: Some(100 << 20),
                read_bps: Some(0.0),
                ..ProcSample::default()
            }),
            gpus: vec![GpuSample {
                id: "g".into(),
                busy: Some(busy),
                busy_src: Some("gpu_busy_percent".into()),
                ..GpuSample::default()
            }],
            log: vec![],
            ..Sample::default()
        }
    }

    fn gpu() -> GpuInfo {
        GpuInfo {
            id: "g".into(),
            label: "card0".into(),
            vendor: "amd".into(),
            driver: Some("amdgpu".into()),
            integrated: false,
        }
    }

    /// Issue 8, item 9: a trace whose samples share one time kept them all
    /// in the window and classified the whole window at every sample.
    #[test]
    fn duplicated_times_keep_the_window_bounded() {
        let mut w = Watcher::new(header(vec![gpu()]), cfg());
        let cap = w.window_cap();
        let mut looked_at = 0usize;
        for _ in 0..20_000 {
            w.push(sample(5.0, 1.9, 0.0));
            looked_at += w.window.len();
        }
        assert!(w.window.len() <= cap + 1, "{} > {cap}", w.window.len());
        // Linear: at most a window's worth of samples looked at per sample.
        assert!(looked_at <= 20_000 * (cap + 1), "{looked_at}");
        // Still a verdict, and time did not move.
        assert_eq!(w.elapsed(), 5.0);
        assert!(w.current.is_some());
    }

    #[test]
    fn verdict_changes_and_time_in_each() {
        let mut w = Watcher::new(header(vec![gpu()]), cfg());
        let mut changes = Vec::new();
        for i in 0..10 {
            let (c, b) = if i < 5 { (0.9, 95.0) } else { (1.95, 1.0) };
            if let Some(ch) = w.push(sample(i as f64, c, b)) {
                changes.push(ch.verdict);
            }
        }
        assert_eq!(changes, vec![Verdict::GpuBound, Verdict::CpuFallback]);
        // Onset at t=5; the median flips once most of the 3 s window is in it.
        assert!(w.seconds(Verdict::CpuFallback) >= 2.0);
        assert!(w.warmup_seconds() >= 1.0);
        let f = serde_json::to_value(w.facts()).unwrap();
        assert_eq!(f["flagged"], json!(["cpu-fallback"]));
        assert_eq!(f["fallback"], json!(true));
        assert!(
            f["evidence"]["cpu-fallback"]
                .as_str()
                .unwrap()
                .contains("cores busy")
        );
        let total: f64 =
            Verdict::ALL.iter().map(|v| w.seconds(*v)).sum::<f64>() + w.warmup_seconds();
        assert!(
            (total - 9.0).abs() < 1e-9,
            "every second is accounted once: {total}"
        );
    }

    #[test]
    fn timeline_stays_bounded() {
        let mut w = Watcher::new(header(vec![gpu()]), cfg());
        for i in 0..5000 {
            w.push(sample(i as f64, 1.0, 90.0));
        }
        assert!(w.timeline.buckets.len() <= MAX_BUCKETS);
        assert!(w.timeline.width >= 5000.0 / MAX_BUCKETS as f64);
        let cores: u32 = w.timeline.buckets.iter().map(|b| b.cores.n).sum();
        assert_eq!(cores, 5000, "merging keeps every sample");
    }

    #[test]
    fn no_gpus_reports_what_is_missing() {
        let w = Watcher::new(header(vec![]), cfg());
        let m = w.missing();
        assert_eq!(m[0].source, "gpus");
        let mut g = gpu();
        g.driver = Some("xe".into());
        let mut w = Watcher::new(header(vec![g]), cfg());
        w.set_source(SourceStatus {
            name: "gpu:g".into(),
            status: "missing".into(),
            detail: "xe exposes no gtidle".into(),
        });
        let m = w.missing();
        assert_eq!(m[0].why, "xe exposes no gtidle");
        assert!(m[0].fix.contains("6.8"));
    }

    /// Issue 12 item 3: power-only sources integrated over time (a gap the
    /// sampler slept through is not), RAPL joules summed, per generated token.
    #[test]
    fn issue12_energy_is_exact_to_the_arithmetic() {
        use crate::watch::enginelog::Signal;
        use crate::watch::sample::LogEvent;
        let mut idle = gpu();
        idle.id = "h".into();
        idle.label = "card1".into();
        let mut w = Watcher::new(header(vec![gpu(), idle]), cfg());
        for (t, watts) in [
            (0.0, 40.0),
            (1.0, 50.0),
            (2.0, 60.0),
            (3.0, 70.0),
            (20.0, 90.0),
        ] {
            let mut s = sample(t, 1.0, 90.0);
            s.gpus[0].power = Some(watts);
            s.gpus[0].power_src = Some("nvidia-smi".into());
            // RAPL gives nothing on the first sample (a baseline).
            s.cpu_energy = (t > 0.0).then_some(10.0);
            if t == 2.0 {
                s.log = vec![
                    LogEvent {
                        stream: "stderr".into(),
                        signal: Signal::Throughput {
                            decode_tps: Some(20.0),
                            prompt_tps: None,
                            tokens: Some(100),
                            engine: "llama.cpp".into(),
                        },
                        line: "eval time = ...".into(),
                    },
                    LogEvent {
                        stream: "stdout".into(),
                        signal: Signal::Generated { tokens: 50 },
                        line: "eval count: 50 token(s)".into(),
                    },
                ];
            }
            w.push(s);
        }
        let e = w.energy_facts();
        // 50 + 60 + 70 W over one second each; the 17 s gap is unknown.
        assert_eq!(e.gpus[0].joules, Some(180.0));
        assert_eq!(
            (e.gpus[0].source.as_str(), e.gpus[0].seconds),
            ("nvidia-smi", 3.0)
        );
        assert_eq!((e.gpus[1].joules, e.gpus[1].source.as_str()), (None, ""));
        // RAPL's own joules, gap or not: 4 × 10 J.
        assert_eq!(e.cpu_joules, Some(40.0));
        assert_eq!(w.tput.decode_tokens, Some(150));
        // (180 + 40) J / 150 tokens, to four decimals.
        assert_eq!(e.joules_per_token, Some(1.4667));
        assert_eq!(e.per_token_of, "gpus+cpu");
        let f = serde_json::to_value(w.facts()).unwrap();
        assert_eq!(f["throughput"]["decode_tps"], json!(20.0));
        assert_eq!(
            f["throughput"]["prompt_tps"],
            json!(null),
            "unknown is null"
        );
        assert_eq!(f["energy"]["gpus"][1]["joules"], json!(null));
        assert!(w.timeline.buckets.iter().any(|b| b.tps.n == 1));
        let line = crate::watch::display::status_line(&w, 200);
        assert!(line.contains("20.0 tok/s"), "{line}");
        // Speed without a token count: no J/token; energy unknown: none either.
        let mut w = Watcher::new(header(vec![gpu()]), cfg());
        w.push(sample(0.0, 1.0, 90.0));
        w.push(sample(1.0, 1.0, 90.0));
        let e = w.energy_facts();
        assert_eq!(
            (e.gpus[0].joules, e.cpu_joules, e.joules_per_token),
            (None, None, None)
        );
        assert_eq!(e.per_token_of, "");
    }

    #[test]
    fn clock_reads_well() {
        assert_eq!(clock(73.4), "1:13");
        assert_eq!(clock(3725.0), "1:02:05");
    }
}
