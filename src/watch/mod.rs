//! `rigdoctor watch`: catch silent CPU fallback in a live inference run
//! (design.md "The watcher", docs/watch.md).
//!
//! It samples, at a fixed interval, the watched process tree and the GPUs,
//! classifies sliding windows into verdicts, says in plain words when the
//! verdict changes, and at the end feeds a summary to the rules engine
//! (`rules/watch.toml`) so each verdict becomes a diagnosis with a fix.
//!
//! Modules, named for what they look at:
//! - [`proc`]: the process tree from procfs (cores busy, RSS, read rate);
//! - [`sched`]: demand, not share: cores wanted from schedstat (pure);
//! - [`evidence`]: GPU runtimes mapped, device fds, GPU flags (pure parsers);
//! - [`fdinfo`]: per-process GPU time from DRM fdinfo (pure parser + deltas);
//! - [`gpu`]: per-GPU busy/memory/power from sysfs (xe, i915, amdgpu, hwmon);
//! - [`rapl`]: CPU package energy from powercap (often root-only);
//! - [`stream`], [`smi`]: long-lived `nvidia-smi` / `xpu-smi` children and their CSV;
//! - [`enginelog`]: llama.cpp / ollama / IPEX / SYCL log lines (pure);
//! - [`bound`]: the decode speed limit from bytes per device and bandwidth (pure);
//! - [`sampler`]: all of the above into one [`sample::Sample`] per tick;
//! - [`classify`]: the verdict of one window (pure, thresholds);
//! - [`watcher`]: verdict changes, time per verdict, timeline, facts;
//! - [`facts`]: the `watch.*` facts as types;
//! - [`display`]: status line, change lines, summary, JSON Lines;
//! - [`lines`]: the JSON Lines as types (docs/schema/watch.json);
//! - [`child`]: `watch -- CMD` passthrough and signal forwarding;
//! - [`run`]: live and replay runs, output and exit codes.

pub mod bound;
pub mod child;
pub mod classify;
pub mod display;
pub mod enginelog;
pub mod evidence;
pub mod facts;
pub mod fdinfo;
pub mod gpu;
pub mod lines;
pub mod proc;
pub mod rapl;
pub mod reader;
pub mod run;
pub mod sample;
pub mod sampler;
pub mod sched;
pub mod smi;
pub mod stream;
pub mod watcher;

use std::ffi::OsString;
use std::path::PathBuf;

use crate::cli::{ColorChoice, Format};

/// What is watched.
#[derive(Debug, Clone, PartialEq)]
pub enum WatchTarget {
    /// `--pid PID`: a running process and its children.
    Pid(i32),
    /// `-- CMD ARGS...`: started by rigdoctor, output passed through.
    Command(Vec<OsString>),
    /// `--replay FILE`: a recorded trace, no live reads.
    Replay(PathBuf),
}

/// `--fail-on`: when rigdoctor exits 1 instead of the program's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FailOn {
    /// The run fell back to the CPU, fully or partly (verdicts or the engine log).
    Fallback,
    /// Any warning or error diagnosis.
    Warn,
    /// Any error diagnosis.
    Error,
}

/// The validated plan of one `rigdoctor watch` (built by `cli`).
#[derive(Debug, Clone, PartialEq)]
pub struct WatchPlan {
    pub target: WatchTarget,
    pub sysfs: Option<PathBuf>,
    pub procfs: Option<PathBuf>,
    /// rigdoctor's own output goes here instead of stderr.
    pub output: Option<PathBuf>,
    /// Seconds between samples (default 1; replay: the trace's).
    pub interval: Option<f64>,
    /// Seconds per window (default 5; replay: the trace's).
    pub window: Option<f64>,
    /// Stop watching after this many seconds.
    pub duration: Option<f64>,
    pub format: Format,
    pub record: Option<PathBuf>,
    pub fail_on: Option<FailOn>,
    pub thresholds: Option<PathBuf>,
    pub color: ColorChoice,
    /// Site rules (`--rules DIR`).
    pub rules: Option<PathBuf>,
}

pub const DEFAULT_INTERVAL: f64 = 1.0;
pub const DEFAULT_WINDOW: f64 = 5.0;
