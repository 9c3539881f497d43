//! rigdoctor: a doctor for local-AI GPU rigs.
//!
//! The pipeline (design.md): [`source`] → [`probe`] → [`rig::Rig`] →
//! [`derive`] → [`diagnose`] (rules/*.toml, CEL) → [`render`].

pub mod cli;
pub mod derive;
pub mod diagnose;
pub mod fit;
pub mod model;
pub mod probe;
pub mod progress;
pub mod render;
pub mod rig;
pub mod schema;
pub mod site;
pub mod source;
pub mod text;
pub mod watch;

use diagnose::report::{self, Report};
use diagnose::rules::Rule;
use probe::ProbeOptions;
use source::Source;

/// Look at a machine (live, recording, or replayed) and diagnose it.
pub fn check(src: &dyn Source, opts: &ProbeOptions, rules: &[Rule]) -> Report {
    let (rig, probes, facts) = look(src, opts);
    judge(src, rig, probes, &facts, rules)
}

/// [`check`], compiling the rules (`load`) on a thread of its own while the
/// probes run, started after theirs ([`probe::collect_beside`]). Compiling about a hundred CEL rules costs about what a
/// replay's probes do (issue 15: 17-22 ms of a 33-51 ms replay), and a live
/// check paid it before its first tool started (`load` is best
/// [`rules::load_for_check`](diagnose::rules::load_for_check), which leaves
/// the templates of the rules that do not fire uncompiled). A rule that does not
/// compile is still an error (exit 2), found after the probes (the caller
/// checks site rules first: only those can be broken). The rules come back
/// with the report, for `--ignore`.
pub fn check_compiling<E: Send>(
    src: &dyn Source,
    opts: &ProbeOptions,
    load: impl FnOnce() -> Result<Vec<Rule>, E> + Send,
) -> Result<(Report, Vec<Rule>), E> {
    let (mut rig, probes, compiled) = probe::collect_beside(src, opts, load);
    let rules = match compiled {
        Ok(rules) => rules?,
        Err(panic) => std::panic::resume_unwind(panic),
    };
    derive::derive(&mut rig);
    let facts = report::facts_json(&rig, &probes);
    let report = judge(src, rig, probes, &facts, &rules);
    Ok((report, rules))
}

/// Probe and derive, without the rules: the rig `fit` sizes a model against.
pub fn look_rig(src: &dyn Source, opts: &ProbeOptions) -> (rig::Rig, Vec<rig::ProbeReport>) {
    let (mut rig, probes) = probe::collect(src, opts);
    derive::derive(&mut rig);
    (rig, probes)
}

/// Probe and derive: the facts.
fn look(
    src: &dyn Source,
    opts: &ProbeOptions,
) -> (rig::Rig, Vec<rig::ProbeReport>, serde_json::Value) {
    let (mut rig, probes) = probe::collect(src, opts);
    derive::derive(&mut rig);
    let facts = report::facts_json(&rig, &probes);
    (rig, probes, facts)
}

/// Evaluate the rules over the facts and build the report.
fn judge(
    src: &dyn Source,
    rig: rig::Rig,
    probes: Vec<rig::ProbeReport>,
    facts: &serde_json::Value,
    rules: &[Rule],
) -> Report {
    // Watch rules judge a watched run (`watch.*` facts), not a machine.
    let ev = diagnose::evaluate_where(rules, facts, |r| r.spec.area != "watch");
    report::build(src.mode(), rig, probes, ev)
}
