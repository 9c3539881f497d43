//! Probes: one small module per thing looked at. Each splits into IO through
//! the [`Source`] and a pure `parse_*` tested on real outputs. A probe never
//! fails the run: its [`ProbeReport`] carries a status and a short detail.

pub mod env;
pub mod host;
pub mod nvidia_nvlink;
pub mod nvidia_smi;
pub mod nvidia_topo;
pub mod oneapi;
pub mod pci;
pub mod python;
pub mod rocm;
pub mod sycl_ls;

use std::time::{Duration, Instant};

use crate::rig::{ProbeReport, Rig};
use crate::source::Source;

/// What a probe run needs besides the Source.
#[derive(Debug, Clone)]
pub struct ProbeOptions {
    /// Per probe command.
    pub timeout: Duration,
    /// The Python interpreter whose packages to read (`--python`).
    pub python: Option<String>,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        ProbeOptions {
            timeout: Duration::from_secs(5),
            python: None,
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
    let (host, pci, sycl, python, oneapi, nvidia, amd) = std::thread::scope(|s| {
        let host = s.spawn(|| timed(|| host::probe(src)));
        let pci = s.spawn(|| timed(|| pci::probe(src)));
        let sycl = s.spawn(|| timed(|| sycl_ls::probe(src, opts.timeout)));
        let python = s.spawn(|| timed(|| python::probe(src, opts.python.as_deref(), opts.timeout)));
        let nvidia = s.spawn(|| nvidia_smi::probe(src, opts.timeout));
        let amd = s.spawn(|| rocm::probe(src, opts.timeout));
        let oneapi = timed(|| oneapi::probe(src, env_ref));
        (
            host.join(),
            pci.join(),
            sycl.join(),
            python.join(),
            oneapi,
            nvidia.join(),
            amd.join(),
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
        Ok((s, r)) => {
            rig.sycl = s;
            reports.push(r);
        }
        Err(_) => reports.push(crashed("sycl-ls")),
    }
    match python {
        Ok((p, r)) => {
            rig.python = p;
            reports.push(r);
        }
        Err(_) => reports.push(crashed("python-packages")),
    }
    let (o, r) = oneapi;
    rig.oneapi = o;
    reports.push(r);
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
    (rig, reports)
}
