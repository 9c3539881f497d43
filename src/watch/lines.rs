//! The JSON Lines of `watch --format json` (schema `rigdoctor/watch/1`,
//! docs/watch.md "Output") as types: each line is one of [`Line`]'s variants.
//! `docs/schema/watch.json` is generated from these, so what is printed and
//! what is documented cannot drift. Field order is the output's key order:
//! the trace lines (`start`, `gpu`, `source`, `sample`) have their body's
//! fields first and `type` last, as traces have always been written.

use serde::Serialize;

use super::classify::{Verdict, WindowStats};
use super::facts::Facts;
use super::sample::{GpuInfo, Header, Sample, SourceStatus, round2};
use crate::diagnose::Diagnosis;

/// `schema` of the `start` and `summary` lines.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, schemars::JsonSchema)]
pub enum Schema {
    #[serde(rename = "rigdoctor/watch/1")]
    WatchV1,
}

macro_rules! tag {
    ($name:ident, $text:literal) => {
        #[doc = concat!("`type` of a `", $text, "` line.")]
        #[derive(Debug, Clone, Copy, Serialize, PartialEq, schemars::JsonSchema)]
        pub enum $name {
            #[serde(rename = $text)]
            Tag,
        }
    };
}
tag!(StartTag, "start");
tag!(GpuTag, "gpu");
tag!(SourceTag, "source");
tag!(SampleTag, "sample");
tag!(VerdictTag, "verdict");
tag!(SummaryTag, "summary");

/// A trace line: its body's fields, then `type`.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[schemars(rename = "{B}Line")]
pub struct Tagged<B, T> {
    #[serde(flatten)]
    pub body: B,
    #[serde(rename = "type")]
    pub kind: T,
}

/// The first line: the trace header, `type` and `schema`.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct StartLine<'a> {
    #[serde(flatten)]
    pub header: &'a Header,
    #[serde(rename = "type")]
    pub kind: StartTag,
    pub schema: Schema,
}

/// One GPU in a `verdict` line.
#[derive(Debug, Clone, Serialize, PartialEq, schemars::JsonSchema)]
pub struct VerdictGpu<'a> {
    pub id: &'a str,
    pub label: &'a str,
    /// Median busy % over the window, null if too few readings.
    pub busy: Option<f64>,
    pub source: &'a str,
    /// Counted in the verdict.
    pub considered: bool,
}

/// A change of verdict.
#[derive(Debug, Clone, Serialize, PartialEq, schemars::JsonSchema)]
pub struct VerdictLine<'a> {
    #[serde(rename = "type")]
    pub kind: VerdictTag,
    pub t: f64,
    pub verdict: Verdict,
    pub previous: Option<Verdict>,
    /// The evidence in one sentence.
    pub reason: &'a str,
    pub cores: f64,
    /// Cores wanted (CPU time + run-queue wait), when schedstat was readable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub demand: Option<f64>,
    /// The machine's 1-minute load.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load: Option<f64>,
    pub gpus: Vec<VerdictGpu<'a>>,
}

impl<'a> VerdictLine<'a> {
    pub fn new(
        t: f64,
        verdict: Verdict,
        previous: Option<Verdict>,
        reason: &'a str,
        stats: &'a WindowStats,
    ) -> Self {
        VerdictLine {
            kind: VerdictTag::Tag,
            t: round2(t),
            verdict,
            previous,
            reason,
            cores: round2(stats.cores),
            demand: stats.demand.map(round2),
            load: stats.load.map(round2),
            gpus: stats
                .gpus
                .iter()
                .map(|g| VerdictGpu {
                    id: &g.id,
                    label: &g.label,
                    busy: g.busy.map(round2),
                    source: &g.src,
                    considered: g.considered,
                })
                .collect(),
        }
    }
}

/// `ok`, `warn` or `error`: the most severe diagnosis (info counts as ok).
#[derive(Debug, Clone, Copy, Serialize, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Overall {
    Ok,
    Warn,
    Error,
}

/// The last line: the diagnoses (the `check` shape) and the facts they came from.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct SummaryLine<'a> {
    #[serde(rename = "type")]
    pub kind: SummaryTag,
    pub schema: Schema,
    pub verdict: Overall,
    pub diagnoses: &'a [Diagnosis],
    pub facts: &'a Facts,
    /// Rules that failed to evaluate (a rigdoctor bug, never a finding).
    pub rule_errors: &'a [String],
    /// Seconds watched.
    pub seconds: f64,
    /// The program's exit code, null when it was not started by rigdoctor or
    /// its end was not seen.
    pub exit: Option<i32>,
}

/// Any line of `watch --format json`; `docs/schema/watch.json` describes one line.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum Line<'a> {
    Start(StartLine<'a>),
    Gpu(Tagged<&'a GpuInfo, GpuTag>),
    Source(Tagged<&'a SourceStatus, SourceTag>),
    Sample(Tagged<&'a Sample, SampleTag>),
    Verdict(VerdictLine<'a>),
    Summary(SummaryLine<'a>),
}
