//! The live sampler: at each tick, the process tree (procfs), its DRM
//! clients (fdinfo), every GPU's sysfs counters and the latest rows of the
//! long-lived nvidia-smi / xpu-smi children, put together into one
//! [`Sample`]. All reads go through `--sysfs` / `--procfs`; nothing is
//! spawned per sample. Which fds are DRM fds is looked at again only when
//! the tree is re-discovered (every couple of seconds).

use std::collections::HashMap;
use std::time::Instant;

use super::evidence;
use super::fdinfo;
use super::gpu::{self, Card};
use super::proc::ProcTracker;
use super::rapl::Rapl;
use super::reader::{ReadErr, Reader, basename};
use super::sample::{GpuInfo, GpuSample, ModelFile, Sample, SourceStatus, TreeEvidence};
use super::smi;
use super::stream::Stream;
use crate::source::live::Live;

struct DrmFd {
    pid: i32,
    fd: String,
    /// PCI address of the node (`/sys/class/drm/renderD128/device`), if known.
    pci: Option<String>,
}

pub struct Sampler {
    reader: Reader,
    proc: ProcTracker,
    cards: Vec<Card>,
    /// Every GPU announced so far (sysfs cards, then nvidia-smi-only rows).
    gpus: Vec<GpuInfo>,
    drm_fds: Vec<DrmFd>,
    /// None: the tree's fds could not be listed (another user's process).
    fds_readable: Option<bool>,
    node_pci: HashMap<String, Option<String>>,
    fd_tracker: fdinfo::Tracker,
    fd_last: Option<Instant>,
    nvidia: Option<Stream>,
    xpu: Option<(Stream, Vec<usize>)>,
    start: Instant,
    stale_after: f64,
    sources: HashMap<String, SourceStatus>,
    /// GPUs and source changes since the caller last looked.
    pub new_gpus: Vec<GpuInfo>,
    pub changed_sources: Vec<SourceStatus>,
    io_denied_reported: bool,
    /// GPU device nodes the tree holds (from the last fd scan).
    devices: Vec<String>,
    /// The tree evidence last sent in a sample.
    tree_sent: Option<TreeEvidence>,
    /// The model file read last: (path as typed, what it holds).
    model_cache: Option<(String, ModelFile)>,
    rapl: Rapl,
}

/// `/proc/PID/maps` is read up to this much per process (a PyTorch process
/// maps a few thousand files; GPU runtimes are mapped early, near the top).
const MAPS_MAX: u64 = 8 << 20;
/// At most this many runtime paths / devices / flags are kept.
const TREE_MAX: usize = 16;

fn push_unique(v: &mut Vec<String>, s: &str) {
    if v.len() < TREE_MAX && !v.iter().any(|x| x == s) {
        v.push(s.to_string());
    }
}

fn status(name: &str, status: &str, detail: impl Into<String>) -> SourceStatus {
    SourceStatus {
        name: name.into(),
        status: status.into(),
        detail: detail.into(),
    }
}

impl Sampler {
    /// Set up the sources for watching `pid` every `interval` seconds:
    /// enumerate the DRM cards, start nvidia-smi when it is on PATH, and
    /// xpu-smi when Intel cards have no residency counters.
    pub fn new(live: Live, pid: i32, interval: f64, start: Instant) -> Sampler {
        let mut reader = Reader::new(live);
        let rescan = ((2.0 / interval).round() as u32).max(1);
        let mut cards = gpu::enumerate(&mut reader);
        let mut sources: HashMap<String, SourceStatus> = HashMap::new();
        sources.insert("procfs".into(), status("procfs", "ok", ""));
        for c in &cards {
            let s = match c.missing() {
                Some(why) => status(&format!("gpu:{}", c.info.id), "missing", why),
                None if c.external() => {
                    status(&format!("gpu:{}", c.info.id), "ok", "busy from nvidia-smi")
                }
                None => status(&format!("gpu:{}", c.info.id), "ok", "sysfs"),
            };
            sources.insert(s.name.clone(), s);
        }
        let interval_ms = (interval * 1000.0).round() as u64;
        let nvidia = match Stream::start(
            "nvidia-smi",
            &smi::nvidia_argv(interval_ms),
            Box::new(smi::nvidia_parser()),
        ) {
            Ok(s) => {
                sources.insert(
                    "nvidia-smi".into(),
                    status("nvidia-smi", "ok", smi::nvidia_argv(interval_ms).join(" ")),
                );
                Some(s)
            }
            Err((st, detail)) => {
                sources.insert("nvidia-smi".into(), status("nvidia-smi", &st, detail));
                None
            }
        };
        // xpu-smi only when no Intel card has residency counters: it is a
        // heavier daemon-backed tool, and sysfs says the same for free.
        let intel: Vec<usize> = cards
            .iter()
            .enumerate()
            .filter(|(_, c)| c.info.vendor == "intel")
            .map(|(i, _)| i)
            .collect();
        let xpu = if !intel.is_empty() && intel.iter().all(|i| cards[*i].missing().is_some()) {
            let devs: Vec<u32> = (0..intel.len() as u32).collect();
            let argv = smi::xpu_argv(&devs, interval.round().max(1.0) as u64);
            match Stream::start("xpu-smi", &argv, Box::new(smi::xpu_parser())) {
                Ok(s) => {
                    sources.insert("xpu-smi".into(), status("xpu-smi", "ok", argv.join(" ")));
                    for i in &intel {
                        cards[*i].use_external();
                    }
                    Some((s, intel))
                }
                Err((st, detail)) => {
                    sources.insert("xpu-smi".into(), status("xpu-smi", &st, detail));
                    None
                }
            }
        } else {
            None
        };
        let gpus: Vec<GpuInfo> = cards.iter().map(|c| c.info.clone()).collect();
        let (rapl, st) = Rapl::discover(&mut reader);
        sources.insert(st.name.clone(), st);
        Sampler {
            reader,
            proc: ProcTracker::new(pid, rescan),
            cards,
            gpus,
            drm_fds: Vec::new(),
            fds_readable: None,
            node_pci: HashMap::new(),
            fd_tracker: fdinfo::Tracker::default(),
            fd_last: None,
            nvidia,
            xpu,
            start,
            stale_after: (interval * 3.0).max(2.5),
            sources,
            new_gpus: Vec::new(),
            changed_sources: Vec::new(),
            io_denied_reported: false,
            devices: Vec::new(),
            tree_sent: None,
            model_cache: None,
            rapl,
        }
    }

    pub fn gpus(&self) -> &[GpuInfo] {
        &self.gpus
    }

    /// Source statuses, sorted by name.
    pub fn sources(&self) -> Vec<SourceStatus> {
        let mut v: Vec<SourceStatus> = self.sources.values().cloned().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    fn set_source(&mut self, s: SourceStatus) {
        if self.sources.get(&s.name) != Some(&s) {
            self.sources.insert(s.name.clone(), s.clone());
            self.changed_sources.push(s);
        }
    }

    fn scan_fds(&mut self) {
        let mut out = Vec::new();
        let mut devices = Vec::new();
        let mut readable = false;
        let mut denied = false;
        for &pid in self.proc.pids() {
            let fds = match self.reader.list(&format!("/proc/{pid}/fd")) {
                Ok(f) => {
                    readable = true;
                    f
                }
                Err(ReadErr::Denied) => {
                    denied = true;
                    continue;
                }
                Err(_) => continue,
            };
            for fd in fds {
                let Ok(target) = self.reader.link(&format!("/proc/{pid}/fd/{fd}")) else {
                    continue;
                };
                if let Some(dev) = evidence::gpu_device(&target) {
                    push_unique(&mut devices, dev);
                }
                let Some(node) = target.strip_prefix("/dev/dri/") else {
                    continue;
                };
                let node = node.to_string();
                let pci = match self.node_pci.get(&node) {
                    Some(p) => p.clone(),
                    None => {
                        let p = self
                            .reader
                            .link(&format!("/sys/class/drm/{node}/device"))
                            .ok()
                            .map(|t| basename(&t).to_string());
                        self.node_pci.insert(node.clone(), p.clone());
                        p
                    }
                };
                out.push(DrmFd { pid, fd, pci });
            }
        }
        self.drm_fds = out;
        devices.sort();
        self.devices = devices;
        self.fds_readable = if readable {
            Some(true)
        } else if denied {
            None
        } else {
            self.fds_readable
        };
        let st = match (readable, denied) {
            (_, true) => status(
                "fdinfo",
                "denied",
                "the process's fds are not readable (another user's process: run as that user)",
            ),
            (true, false) => status(
                "fdinfo",
                "ok",
                format!("{} DRM fd(s) open in the tree", self.drm_fds.len()),
            ),
            (false, false) => status("fdinfo", "ok", "process gone"),
        };
        self.set_source(st);
    }

    /// The GGUF header of the model a command line names, read once per
    /// path: a relative path is the process's (`/proc/PID/cwd`).
    fn model_file(&mut self, pid: i32, typed: &str) -> ModelFile {
        if let Some((p, m)) = &self.model_cache {
            if p == typed {
                return m.clone();
            }
        }
        let path = if typed.starts_with('/') {
            std::path::PathBuf::from(typed)
        } else {
            match self.reader.link(&format!("/proc/{pid}/cwd")) {
                Ok(cwd) => std::path::Path::new(&cwd).join(typed),
                Err(_) => std::path::PathBuf::from(typed),
            }
        };
        let mut m = ModelFile {
            path: typed.to_string(),
            ..ModelFile::default()
        };
        match crate::model::gguf::read_file(&path) {
            Ok(g) => {
                let n = g
                    .arch_get("block_count")
                    .and_then(|v| v.as_u64())
                    .unwrap_or(0)
                    .min(4096);
                let sizes = crate::fit::split::layer_sizes(&g, &vec![0; n as usize]);
                m.blocks_bytes = sizes.blocks.iter().sum();
                m.output_bytes = sizes.output.saturating_add(sizes.tied_output);
                m.input_bytes = sizes.input;
                m.n_layer = n;
            }
            Err(e) => m.error = crate::text::escape_controls(&e.to_string()).into_owned(),
        }
        self.model_cache = Some((typed.to_string(), m.clone()));
        m
    }

    /// The tree's GPU runtimes (maps), device nodes (from the fd scan just
    /// done) and GPU flags (cmdline). Read at tree re-discovery only.
    fn scan_tree(&mut self) -> TreeEvidence {
        let mut ev = TreeEvidence {
            maps_readable: true,
            devices: self.devices.clone(),
            ..TreeEvidence::default()
        };
        let mut any = false;
        let pids: Vec<i32> = self.proc.pids().to_vec();
        for &pid in &pids {
            let mut found: Vec<String> = Vec::new();
            let res = self
                .reader
                .for_each_line(&format!("/proc/{pid}/maps"), MAPS_MAX, |line| {
                    if let Some(p) = evidence::maps_path(line) {
                        if evidence::gpu_runtime(p).is_some() {
                            push_unique(&mut found, p);
                        }
                    }
                    true
                });
            match res {
                Ok(()) => any = true,
                // A process that just ended is not the tree's evidence.
                Err(ReadErr::Missing) => {}
                Err(_) => ev.maps_readable = false,
            }
            for p in found {
                push_unique(&mut ev.runtimes, &p);
            }
            if let Ok(text) = self.reader.read(&format!("/proc/{pid}/cmdline")) {
                let argv = evidence::parse_cmdline(text.as_bytes());
                if let Some(m) = evidence::model_path(&argv) {
                    ev.model = Some(self.model_file(pid, &m));
                }
                let f = evidence::gpu_flags(&argv);
                // A wrapper and the engine it started often share a command line.
                let known = !f.is_empty() && ev.flags.windows(f.len()).any(|w| w == f.as_slice());
                if !known && ev.flags.len() + f.len() <= TREE_MAX {
                    ev.flags.extend(f);
                }
            }
        }
        ev.maps_readable &= any;
        ev
    }

    /// Take one sample now. `alive` is false once the watched process is gone.
    pub fn sample(&mut self) -> (Sample, bool) {
        let now = Instant::now();
        let t = now.duration_since(self.start).as_secs_f64();
        let reading = self.proc.sample(&mut self.reader, now);
        if reading.io_denied && !self.io_denied_reported {
            self.io_denied_reported = true;
            self.set_source(status(
                "procfs",
                "denied",
                "/proc/PID/io is not readable: no read rate, so no `loading` verdict",
            ));
        }
        let mut tree = None;
        if self.proc.rescanned() || self.fd_last.is_none() {
            self.scan_fds();
            let ev = self.scan_tree();
            if self.tree_sent.as_ref() != Some(&ev) && reading.alive {
                self.tree_sent = Some(ev.clone());
                tree = Some(ev);
            }
        }
        let load = self
            .reader
            .read("/proc/loadavg")
            .ok()
            .and_then(|t| super::sched::parse_loadavg(&t))
            .map(|l| l.load1);
        // fdinfo of the tree's DRM clients.
        let mut clients = Vec::new();
        for d in &self.drm_fds {
            if let Ok(text) = self
                .reader
                .read(&format!("/proc/{}/fdinfo/{}", d.pid, d.fd))
            {
                if let Some(mut c) = fdinfo::parse(&text) {
                    if c.pdev.is_none() {
                        c.pdev = d.pci.clone();
                    }
                    clients.push(c);
                }
            }
        }
        let wall_ns = self
            .fd_last
            .map(|l| now.duration_since(l).as_nanos() as u64)
            .unwrap_or(0);
        self.fd_last = Some(now);
        let uses = self.fd_tracker.update(&clients, wall_ns);
        let open: Vec<&str> = self
            .drm_fds
            .iter()
            .filter_map(|d| d.pci.as_deref())
            .chain(clients.iter().filter_map(|c| c.pdev.as_deref()))
            .collect();

        let mut gpus: Vec<GpuSample> = Vec::with_capacity(self.cards.len());
        for card in &mut self.cards {
            let mut s = gpu::read(&mut self.reader, card, now);
            // CUDA opens /dev/nvidia*, not DRM nodes: "not open" would mean nothing.
            s.in_use = if card.info.vendor == "nvidia" {
                None
            } else {
                self.fds_readable
                    .map(|_| open.contains(&card.info.id.as_str()))
            };
            if let Some(u) = uses.get(&card.info.id) {
                s.proc_busy = u.busy;
                if s.mem.is_none() {
                    if let Some(v) = u.vram {
                        s.mem = Some(v);
                        s.mem_src = Some("fdinfo".into());
                    }
                }
            }
            gpus.push(s);
        }
        self.nvidia_rows(&mut gpus);
        self.xpu_rows(&mut gpus);
        let cpu_energy = self.rapl.read(&mut self.reader);
        (
            Sample {
                t,
                proc: reading.alive.then_some(reading.sample),
                gpus,
                log: Vec::new(),
                load,
                tree,
                cpu_energy,
            },
            reading.alive,
        )
    }

    fn nvidia_rows(&mut self, gpus: &mut Vec<GpuSample>) {
        let Some(stream) = &self.nvidia else { return };
        let (rows, st, detail) = stream.fresh(self.stale_after);
        let s = match st.as_str() {
            "exited" => status("nvidia-smi", "exited", detail),
            "starting" => status("nvidia-smi", "ok", "starting"),
            _ => status("nvidia-smi", "ok", "streaming"),
        };
        self.set_source(s);
        for row in rows {
            let id = row
                .pci
                .clone()
                .filter(|p| self.gpus.iter().any(|g| &g.id == p))
                .unwrap_or_else(|| format!("nvidia:{}", row.index));
            if !self.gpus.iter().any(|g| g.id == id) {
                let info = GpuInfo {
                    id: id.clone(),
                    label: format!("nvidia{}", row.index),
                    vendor: "nvidia".into(),
                    driver: Some("nvidia".into()),
                    integrated: false,
                };
                self.gpus.push(info.clone());
                self.new_gpus.push(info);
            }
            let slot = match gpus.iter_mut().find(|g| g.id == id) {
                Some(g) => g,
                None => {
                    gpus.push(GpuSample {
                        id: id.clone(),
                        ..GpuSample::default()
                    });
                    let last = gpus.len() - 1;
                    &mut gpus[last]
                }
            };
            if let Some(u) = row.util {
                slot.busy = Some(u);
                slot.busy_src = Some("nvidia-smi".into());
            }
            if let Some(m) = row.mem_bytes {
                slot.mem = Some(m);
                slot.mem_src = Some("nvidia-smi".into());
            }
            if let Some(p) = row.power_w {
                slot.power = Some(p);
                slot.power_src = Some("nvidia-smi".into());
            }
        }
    }

    fn xpu_rows(&mut self, gpus: &mut [GpuSample]) {
        let Some((stream, intel)) = &self.xpu else {
            return;
        };
        let (rows, st, detail) = stream.fresh(self.stale_after.max(3.0));
        let s = match st.as_str() {
            "exited" => status("xpu-smi", "exited", detail),
            _ => status("xpu-smi", "ok", "streaming"),
        };
        // xpu-smi numbers devices in its own order; we pair index i with the
        // i-th Intel card in PCI order (docs/watch.md says so).
        for row in rows {
            let Some(ci) = intel.get(row.index as usize) else {
                continue;
            };
            let Some(id) = self.cards.get(*ci).map(|c| c.info.id.clone()) else {
                continue;
            };
            if let Some(slot) = gpus.iter_mut().find(|g| g.id == id) {
                if let Some(u) = row.util {
                    slot.busy = Some(u);
                    slot.busy_src = Some("xpu-smi".into());
                }
                if slot.power.is_none() {
                    if let Some(p) = row.power_w {
                        slot.power = Some(p);
                        slot.power_src = Some("xpu-smi".into());
                    }
                }
            }
        }
        self.set_source(s);
    }
}
