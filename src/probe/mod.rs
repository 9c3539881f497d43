//! Probes: one small module per thing looked at. Each splits into IO through
//! the [`Source`] and a pure `parse_*` tested on real outputs. A probe never
//! fails the run: its [`ProbeReport`] carries a status and a short detail.

pub mod amd_smi;
pub mod clinfo;
pub mod container;
pub mod devnodes;
pub mod env;
pub mod host;
pub mod nvidia_container;
pub mod nvidia_nvlink;
pub mod nvidia_smi;
pub mod nvidia_topo;
pub mod ollama_service;
pub mod oneapi;
pub mod pci;
pub mod python;
pub mod python_deep;
pub mod rocm;
pub mod sycl_ls;
pub mod sycl_ls_verbose;
pub mod vulkan;
pub mod xpu_smi;

use std::time::{Duration, Instant};

use crate::rig::{ProbeReport, Rig};
use crate::source::{Deadline, Mode, Source};

/// What a probe run needs besides the Source.
#[derive(Debug, Clone)]
pub struct ProbeOptions {
    /// Per probe command.
    pub timeout: Duration,
    /// The Python interpreter whose packages to read (`--python`).
    pub python: Option<String>,
    /// `--deep`: also import torch/IPEX (probe::python_deep).
    pub deep: bool,
    /// `--deep-timeout`: the import check's own timeout.
    pub deep_timeout: Duration,
    /// `--deadline`: the end of the whole run. The live source cuts every
    /// command to it (source::live); here it only names, in the report, the
    /// probes it stopped.
    pub deadline: Option<Deadline>,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        ProbeOptions {
            timeout: Duration::from_secs(5),
            python: None,
            deep: false,
            deep_timeout: Duration::from_secs(60),
            deadline: None,
        }
    }
}

fn timed<T>(f: impl FnOnce() -> (T, ProbeReport)) -> (T, ProbeReport) {
    let t = Instant::now();
    let (v, mut r) = f();
    if r.duration_ms == 0 {
        r.duration_ms = t.elapsed().as_millis() as u64;
    }
    (v, r)
}

/// Say so when the run's deadline, not the probe's own timeout, stopped it.
/// A command is cut to what is left of the run, so a probe that timed out
/// and ended at or after the deadline was stopped by it; one that timed out
/// on its own timeout ended before it. `finished` is when the probe (or a
/// group of commands started together) returned.
fn mark_deadline(deadline: Option<Deadline>, finished: Instant, reports: &mut [ProbeReport]) {
    let Some(d) = deadline else { return };
    if !d.passed(finished) {
        return;
    }
    for r in reports.iter_mut().filter(|r| r.status == "timeout") {
        r.detail = format!(
            "stopped at the run deadline (--deadline {} s): {}",
            d.secs, r.detail
        );
    }
}

/// Run `f` and note when it returned.
fn stamped<T>(f: impl FnOnce() -> T) -> (T, Instant) {
    let v = f();
    (v, Instant::now())
}

/// Run every probe. Commands run in parallel so that one hung tool costs
/// its timeout once, not once per tool.
pub fn collect(src: &dyn Source, opts: &ProbeOptions) -> (Rig, Vec<ProbeReport>) {
    let (rig, reports, _) = collect_beside(src, opts, || ());
    (rig, reports)
}

/// [`collect`], running `beside` on a thread of its own once every probe's
/// thread has started: work that must not delay the first tool (on a
/// loaded 2-core machine a thread started first pushed the tools' start
/// back by ~10 ms; `check` compiles its rules here, issue 15).
pub fn collect_beside<T: Send>(
    src: &dyn Source,
    opts: &ProbeOptions,
    beside: impl FnOnce() -> T + Send,
) -> (Rig, Vec<ProbeReport>, std::thread::Result<T>) {
    let mut rig = Rig::default();
    let (env, env_report) = env::probe(src);
    rig.env = env;
    let env_ref = &rig.env;
    // A replayed capture holds the import check if it was made with --deep;
    // live, it runs only when asked.
    let deep_wanted = opts.deep || src.mode() == Mode::Replay;
    let dl = opts.deadline;
    // Every probe notes when it returned, so that mark_deadline can tell a
    // probe the run's deadline stopped from one that timed out on its own.
    let (host, pci, sycl, python, oneapi, xpu, cl, nvidia, amd, vk, container, svc, beside) =
        std::thread::scope(|s| {
            let host = s.spawn(|| timed(|| host::probe(src)));
            // The device nodes are judged against the bus's GPUs: right after
            // the bus, not after the slowest tool (only stat and access(2),
            // never an open, so a hung GPU cannot stall it).
            let pci = s.spawn(|| {
                let (gpus, r) = timed(|| pci::probe(src));
                let access = timed(|| devnodes::probe(src, &gpus));
                ((gpus, r), access)
            });
            let container = s.spawn(|| timed(|| container::probe(src)));
            let svc = s.spawn(|| timed(|| ollama_service::probe(src)));
            let sycl = s.spawn(|| {
                // One runtime start-up: `sycl-ls --verbose`, plain `sycl-ls` only as a fallback.
                let (((mut sycl, mut report), (verbose, mut vreport)), t) =
                    stamped(|| sycl_ls::probe(src, opts.timeout));
                mark_deadline(dl, t, std::slice::from_mut(&mut report));
                mark_deadline(dl, t, std::slice::from_mut(&mut vreport));
                sycl.verbose = verbose;
                (sycl, report, vreport)
            });
            let python = s.spawn(|| {
                let ((mut py, mut report), t) =
                    stamped(|| timed(|| python::probe(src, opts.python.as_deref(), opts.timeout)));
                mark_deadline(dl, t, std::slice::from_mut(&mut report));
                let mut deep_report = None;
                if deep_wanted {
                    let interpreter = py.interpreter.clone().or_else(|| opts.python.clone());
                    let (deep, t) = stamped(|| {
                        python_deep::probe(
                            src,
                            interpreter.as_deref(),
                            opts.deep_timeout,
                            opts.deep,
                        )
                    });
                    if let Some((d, mut r)) = deep {
                        mark_deadline(dl, t, std::slice::from_mut(&mut r));
                        py.deep = Some(d);
                        deep_report = Some(r);
                    }
                }
                (py, report, deep_report)
            });
            let xpu = s.spawn(|| {
                let ((v, mut r), t) = stamped(|| timed(|| xpu_smi::probe(src, opts.timeout)));
                mark_deadline(dl, t, std::slice::from_mut(&mut r));
                (v, r)
            });
            let cl = s.spawn(|| {
                let ((v, mut r), t) =
                    stamped(|| timed(|| clinfo::probe(src, env_ref, opts.timeout)));
                mark_deadline(dl, t, std::slice::from_mut(&mut r));
                (v, r)
            });
            let nvidia = s.spawn(|| {
                let ((v, mut r), t) = stamped(|| nvidia_smi::probe(src, opts.timeout));
                mark_deadline(dl, t, &mut r);
                (v, r)
            });
            let amd = s.spawn(|| {
                let ((v, mut r), t) = stamped(|| rocm::probe(src, opts.timeout));
                mark_deadline(dl, t, &mut r);
                (v, r)
            });
            let vk = s.spawn(|| {
                let ((v, mut r), t) = stamped(|| timed(|| vulkan::probe(src, opts.timeout)));
                mark_deadline(dl, t, std::slice::from_mut(&mut r));
                (v, r)
            });
            let beside = s.spawn(beside);
            let oneapi = timed(|| oneapi::probe(src, env_ref));
            (
                host.join(),
                pci.join(),
                sycl.join(),
                python.join(),
                oneapi,
                xpu.join(),
                cl.join(),
                nvidia.join(),
                amd.join(),
                vk.join(),
                container.join(),
                svc.join(),
                beside.join(),
            )
        });
    let mut reports = vec![env_report];
    // A probe that panicked (a bug in rigdoctor) is reported, not fatal.
    let crashed = |name: &str| {
        ProbeReport::new(
            name,
            "failed",
            0,
            "the probe crashed (a rigdoctor bug; please report it)",
        )
    };
    match host {
        Ok((h, r)) => {
            rig.host = h;
            reports.push(r);
        }
        Err(_) => reports.push(crashed("host")),
    }
    let access = match pci {
        Ok(((g, r), access)) => {
            rig.gpus = g;
            reports.push(r);
            Some(access)
        }
        Err(_) => {
            reports.push(crashed("pci"));
            None
        }
    };
    match sycl {
        Ok((s, r, v)) => {
            rig.sycl = s;
            reports.push(r);
            reports.push(v);
        }
        Err(_) => reports.push(crashed("sycl-ls")),
    }
    match python {
        Ok((p, r, d)) => {
            rig.python = p;
            reports.push(r);
            reports.extend(d);
        }
        Err(_) => reports.push(crashed("python-packages")),
    }
    let (o, r) = oneapi;
    rig.oneapi = o;
    reports.push(r);
    match xpu {
        Ok((x, r)) => {
            rig.xpu_smi = x;
            reports.push(r);
        }
        Err(_) => reports.push(crashed("xpu-smi-discovery")),
    }
    match cl {
        Ok((c, r)) => {
            rig.clinfo = c;
            reports.push(r);
        }
        Err(_) => reports.push(crashed("clinfo")),
    }
    match nvidia {
        Ok((n, r)) => {
            rig.nvidia = n;
            reports.extend(r);
        }
        Err(_) => reports.push(crashed("nvidia-smi")),
    }
    match amd {
        Ok((a, r)) => {
            rig.amd = a;
            reports.extend(r);
        }
        Err(_) => reports.push(crashed("rocminfo")),
    }
    match vk {
        Ok((v, r)) => {
            rig.vulkan = v;
            reports.push(r);
        }
        Err(_) => reports.push(crashed("vulkaninfo-summary")),
    }
    // amd-smi where there is an AMD GPU to ask about (on the bus, or listed
    // by rocminfo in a container without /sys); the topology only for two or
    // more, where there is a pair to judge.
    let amd_on_bus = rig
        .gpus
        .iter()
        .filter(|g| g.vendor == "amd" && g.compute)
        .count();
    // Pairs worth judging are between discrete GPUs; an APU's iGPU has no
    // XGMI and no tensor-parallel partner.
    let amd_discrete = rig
        .gpus
        .iter()
        .filter(|g| g.vendor == "amd" && g.compute && !amd_integrated(&g.device_id))
        .count();
    let amd_gpus = amd_on_bus.max(rig.amd.agents.len());
    let pairs = if amd_on_bus > 0 {
        amd_discrete >= 2
    } else {
        rig.amd.agents.len() >= 2
    };
    if amd_gpus > 0 {
        let ((smi, links, mut r), at) = stamped(|| amd_smi::probe(src, opts.timeout, pairs));
        mark_deadline(dl, at, &mut r);
        rig.amd.smi = smi;
        rig.amd.links = links;
        reports.extend(r);
    }
    // Without the bus (its probe crashed), against no GPU, as before.
    let (access, r) = access.unwrap_or_else(|| timed(|| devnodes::probe(src, &rig.gpus)));
    rig.access = access;
    reports.push(r);
    match container {
        Ok((c, r)) => {
            rig.container = c;
            reports.push(r);
        }
        Err(_) => reports.push(crashed(container::PROBE)),
    }
    match svc {
        Ok((svc, r)) => {
            rig.ollama_service = svc;
            reports.push(r);
        }
        Err(_) => reports.push(crashed(ollama_service::NAME)),
    }
    // The toolkit's CLI asks the driver through NVML like nvidia-smi: it is
    // run only for a GPU nvidia drives, and not after nvidia-smi hung (it
    // would hang too, costing a second timeout).
    let nvidia_bound = rig
        .gpus
        .iter()
        .any(|g| g.driver.as_deref() == Some("nvidia"));
    let smi_hung = reports
        .iter()
        .any(|r| r.name == "nvidia-smi" && r.status == "timeout");
    if nvidia_bound && !smi_hung {
        let ((t, mut r), at) = stamped(|| nvidia_container::probe(src, opts.timeout));
        mark_deadline(dl, at, std::slice::from_mut(&mut r));
        rig.container.nvidia_toolkit = t;
        reports.push(r);
    }
    if let Some(r) = refusals_report(src) {
        reports.push(r);
    }
    (rig, reports, beside)
}

/// An APU's GPU by its PCI id (the bus's `discrete` is derived later).
fn amd_integrated(device_id: &str) -> bool {
    use crate::derive::catalog;
    catalog::amd_chip(device_id)
        .map(|c| c.kind == "integrated")
        .or_else(|| catalog::lookup("0x1002", device_id).map(|c| c.kind == "integrated"))
        .unwrap_or(false)
}

/// The `capture` probe: what a replay refused to read from its capture
/// (links out of it, FIFOs, devices). Present only when something was.
fn refusals_report(src: &dyn Source) -> Option<ProbeReport> {
    let refused = src.refusals();
    if refused.is_empty() {
        return None;
    }
    const SHOWN: usize = 5;
    let mut detail = format!(
        "refused {} path{} of the capture (not read): {}",
        refused.len(),
        if refused.len() == 1 { "" } else { "s" },
        refused
            .iter()
            .take(SHOWN)
            .cloned()
            .collect::<Vec<_>>()
            .join("; ")
    );
    if refused.len() > SHOWN {
        detail.push_str(&format!("; and {} more", refused.len() - SHOWN));
    }
    Some(ProbeReport::new("capture", "failed", 0, detail))
}
