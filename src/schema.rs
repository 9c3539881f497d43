//! JSON Schemas of the machine-readable outputs, generated from the types
//! that are serialised (docs/schema/*.json, docs/json.md "Schemas"):
//! `check --format json` ([`Report`]), one line of `watch --format json`
//! ([`Line`]) and `rules --format json` (an array of [`Listing`]).
//! `tests/schema.rs` keeps the committed files equal to these and validates
//! every snapshot and live output against them.

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema};

use crate::diagnose::report::Report;
use crate::diagnose::rules::Listing;
use crate::watch::lines::Line;

/// Which output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Check,
    Watch,
    Rules,
    Fit,
}

impl Output {
    pub const ALL: [Output; 4] = [Output::Check, Output::Watch, Output::Rules, Output::Fit];

    pub fn name(self) -> &'static str {
        match self {
            Output::Check => "check",
            Output::Watch => "watch",
            Output::Rules => "rules",
            Output::Fit => "fit",
        }
    }

    /// Where the schema lives in the source tree.
    pub fn path(self) -> String {
        format!("docs/schema/{}.json", self.name())
    }
}

fn root<T: ?Sized + JsonSchema>(title: &str, description: &str) -> Schema {
    // Serialize contract: a field with a default is still always printed,
    // so it is required; only `skip_serializing_if` makes one optional.
    let mut s = SchemaSettings::draft2020_12()
        .for_serialize()
        .into_generator()
        .into_root_schema_for::<T>();
    s.insert("title".into(), title.into());
    s.insert("description".into(), description.into());
    s
}

/// The schema, pretty-printed with a final newline (the committed file's bytes).
pub fn generate(out: Output) -> String {
    let s = match out {
        Output::Check => root::<Report>(
            "rigdoctor/check/1",
            "`rigdoctor check --format json`: one document (docs/json.md).",
        ),
        Output::Watch => root::<Line>(
            "rigdoctor/watch/1",
            "One line of `rigdoctor watch --format json` (JSON Lines; docs/watch.md \"Output\"). \
             Every line validates against this schema; `type` tells which kind it is.",
        ),
        Output::Fit => root::<crate::fit::command::FitReport>(
            "rigdoctor/fit/1",
            "`rigdoctor fit --format json`: one document in the check shape (docs/fit.md).",
        ),
        Output::Rules => root::<Vec<Listing>>(
            "rigdoctor rules --format json",
            "`rigdoctor rules --format json`: every rule loaded, in load order (docs/json.md).",
        ),
    };
    serde_json::to_string_pretty(&s).unwrap_or_default() + "\n"
}
