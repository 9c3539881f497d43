//! rigdoctor: a doctor for local-AI GPU rigs.
//!
//! The pipeline (design.md): [`source`] → [`probe`] → [`rig::Rig`] →
//! [`derive`] → [`diagnose`] (rules/*.toml, CEL) → [`render`].

pub mod cli;
pub mod derive;
pub mod diagnose;
pub mod probe;
pub mod render;
pub mod rig;
pub mod source;
pub mod text;
pub mod watch;

use diagnose::report::{self, Report};
use diagnose::rules::Rule;
use probe::ProbeOptions;
use source::Source;

/// Look at a machine (live, recording, or replayed) and diagnose it.
pub fn check(src: &dyn Source, opts: &ProbeOptions, rules: &[Rule]) -> Report {
    let (mut rig, probes) = probe::collect(src, opts);
    derive::derive(&mut rig);
    let facts = report::facts_json(&rig, &probes);
    // Watch rules judge a watched run (`watch.*` facts), not a machine.
    let ev = diagnose::evaluate_where(rules, &facts, |r| r.spec.area != "watch");
    report::build(src.mode(), rig, probes, ev)
}
