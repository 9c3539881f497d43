//! Probes: one small module per thing looked at. Each splits into IO through
//! the [`Source`] and a pure `parse_*` tested on real outputs. A probe never
//! fails the run: its [`ProbeReport`] carries a status and a short detail.

pub mod clinfo;
pub mod env;
pub mod host;
pub mod nvidia_nvlink;
pub mod nvidia_smi;
pub mod nvidia_topo;
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
use crate::source::{Mode, Source};

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
}

impl Default for ProbeOptions {
    fn default() -> Self {
        ProbeOptions {
            timeout: Duration::from_secs(5),
            python: None,
            deep: false,
            deep_timeout: Duration::from_secs(60),
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

/// Run every probe. Commands run in parallel so that one hung tool costs
/// its timeout once, not once per tool.
pub fn collect(src: &dyn Source, opts: &ProbeOptions) -> (Rig, Vec<ProbeReport>) {
    let mut rig = Rig::default();
    let (env, env_report) = env::probe(src);
    rig.env = env;
    let env_ref = &rig.env;
    // A replayed capture holds the import check if it was made with --deep;
    // live, it runs only when asked.
    let deep_wanted = opts.deep || src.mode() == Mode::Replay;
    let (host, pci, sycl, python, oneapi, xpu, cl, nvidia, amd, vk) = std::thread::scope(|s| {
        let host = s.spawn(|| timed(|| host::probe(src)));
        let pci = s.spawn(|| timed(|| pci::probe(src)));
        let sycl = s.spawn(|| {
            let (mut sycl, report) = timed(|| sycl_ls::probe(src, opts.timeout));
            // Only after sycl-ls ran: a missing or hung sycl-ls would do the same again.
            let (verbose, vreport) =
                timed(|| sycl_ls_verbose::probe(src, opts.timeout, &report.status));
            sycl.verbose = verbose;
            (sycl, report, vreport)
        });
        let python = s.spawn(|| {
            let (mut py, report) =
                timed(|| python::probe(src, opts.python.as_deref(), opts.timeout));
            let mut deep_report = None;
            if deep_wanted {
                let interpreter = py.interpreter.clone().or_else(|| opts.python.clone());
                if let Some((d, r)) =
                    python_deep::probe(src, interpreter.as_deref(), opts.deep_timeout, opts.deep)
                {
                    py.deep = Some(d);
                    deep_report = Some(r);
                }
            }
            (py, report, deep_report)
        });
        let xpu = s.spawn(|| timed(|| xpu_smi::probe(src, opts.timeout)));
        let cl = s.spawn(|| timed(|| clinfo::probe(src, env_ref, opts.timeout)));
        let nvidia = s.spawn(|| nvidia_smi::probe(src, opts.timeout));
        let amd = s.spawn(|| rocm::probe(src, opts.timeout));
        let vk = s.spawn(|| timed(|| vulkan::probe(src, opts.timeout)));
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
    match pci {
        Ok((g, r)) => {
            rig.gpus = g;
            reports.push(r);
        }
        Err(_) => reports.push(crashed("pci")),
    }
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
    (rig, reports)
}
