//! `--format json`: the report as one pretty-printed JSON document
//! (schema `rigdoctor/check/1`, see diagnose/report.rs and design.md).

use crate::diagnose::report::Report;

pub fn render(report: &Report) -> String {
    serde_json::to_string_pretty(report).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
        + "\n"
}
