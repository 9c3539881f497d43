//! `--format markdown`: a block to paste into a GitHub issue. It says which
//! rigdoctor looked (version, live or replay), the verdict, the area lines,
//! every diagnosis with its evidence and fix, and the probes that could not
//! look, so a maintainer sees the same page the user saw.
//!
//! Text from outside (tool output in evidence, device names) cannot break
//! the page: control characters are escaped (text::escape_controls), code
//! blocks are fenced with more backticks than the text holds, and table
//! cells escape `|` and fold newlines.

use crate::diagnose::report::{Report, blind};
use crate::diagnose::rules::status_word;
use crate::source::Mode;
use crate::text::escape_controls;

/// A fenced block that its content cannot close: the fence is longer than
/// the longest run of backticks inside.
fn fenced(lang: &str, body: &str) -> String {
    let body = escape_controls(body.trim_end());
    let mut longest = 0;
    let mut run = 0;
    for c in body.chars() {
        if c == '`' {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    let fence = "`".repeat((longest + 1).max(3));
    format!("{fence}{lang}\n{body}\n{fence}\n")
}

/// One table cell: no newlines, no column breaks, no HTML.
fn cell(s: &str) -> String {
    escape_controls(s)
        .replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace('<', "&lt;")
        .replace(['\n', '\t'], " ")
}

/// Inline text outside code (titles): as a cell, and backticks neutralised
/// so that a title cannot open a code span that swallows the page.
fn inline(s: &str) -> String {
    cell(s).replace('`', "'")
}

fn mark(status: &str) -> &'static str {
    match status {
        "error" => "✗",
        "warn" => "!",
        "ok" => "✓",
        "info" => "i",
        "unknown" => "?",
        _ => "-",
    }
}

pub fn render(report: &Report) -> String {
    let mode = match report.mode {
        Mode::Replay => "replay of a capture",
        Mode::Record => "live (recording a capture)",
        Mode::Live => "live",
    };
    let mut out = format!(
        "### rigdoctor {} · {mode} · verdict: **{}**\n\n",
        env!("CARGO_PKG_VERSION"),
        status_word(report.verdict)
    );
    out.push_str(&format!("{}\n\n", inline(&report.summary_line())));
    out.push_str("| | area | what rigdoctor saw |\n|---|---|---|\n");
    for a in &report.areas {
        out.push_str(&format!(
            "| {} {} | {} | {} |\n",
            mark(&a.status),
            status_word(&a.status),
            cell(&a.label),
            cell(&a.summary)
        ));
    }
    if !report.diagnoses.is_empty() {
        out.push_str("\n#### Problems, most severe first\n");
    }
    for d in &report.diagnoses {
        out.push_str(&format!(
            "\n**{} {} `{}`**: {}  \n",
            mark(d.severity.as_str()),
            d.severity.word(),
            d.id,
            inline(&d.title)
        ));
        let mut about = format!("class `{}` · area `{}`", d.class.as_str(), d.area);
        if let Some(g) = &d.gpu {
            about.push_str(&format!(" · GPU `{}`", inline(g)));
        }
        out.push_str(&format!("{about}\n\n"));
        if !d.evidence.trim().is_empty() {
            out.push_str("Evidence:\n\n");
            out.push_str(&fenced("", &d.evidence));
        }
        out.push_str("\nFix:\n\n");
        out.push_str(&fenced("sh", &d.fix));
    }
    let blind: Vec<_> = blind(&report.probes).collect();
    if !blind.is_empty() {
        out.push_str("\n#### Could not look\n\n");
        for p in blind {
            out.push_str(&format!(
                "- `{}`: {} ({})\n",
                p.name,
                p.status,
                inline(&p.detail)
            ));
        }
    }
    if !report.rule_errors.is_empty() {
        out.push_str("\n#### Rules that could not be evaluated (a rigdoctor bug)\n\n");
        out.push_str(&fenced("", &report.rule_errors.join("\n")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fences_outgrow_the_backticks_inside() {
        assert_eq!(fenced("", "a"), "```\na\n```\n");
        let f = fenced("sh", "echo ```` done");
        assert!(
            f.starts_with("`````sh\n") && f.ends_with("\n`````\n"),
            "{f}"
        );
        assert_eq!(fenced("", "\u{1b}[2J"), "```\n\\e[2J\n```\n");
    }

    #[test]
    fn cells_cannot_break_the_table() {
        assert_eq!(cell("a|b\nc<script>"), "a\\|b c&lt;script>");
        assert_eq!(inline("x `y`"), "x 'y'");
    }
}
