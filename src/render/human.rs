//! The page for a person at a terminal: one line per area with ✓ / ! / ✗,
//! then every problem, most severe first, with its evidence, why it matters
//! and a fix to paste; then one summary line. Colour only when asked for
//! (`--color`, `NO_COLOR`, a TTY), decided by the caller.

use owo_colors::OwoColorize;

use crate::diagnose::report::Report;
use crate::diagnose::{Diagnosis, Severity};
use crate::text::escape_controls;

#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub color: bool,
}

const WIDTH: usize = 96;

impl Style {
    /// Every painted piece is escaped first: a title or a label can carry
    /// tool output, and the only escape sequences on the page are ours.
    fn paint(&self, s: &str, f: impl Fn(&str) -> String) -> String {
        let s = escape_controls(s);
        if self.color { f(&s) } else { s.into_owned() }
    }
    pub fn bold(&self, s: &str) -> String {
        self.paint(s, |x| x.bold().to_string())
    }
    pub fn dim(&self, s: &str) -> String {
        self.paint(s, |x| x.dimmed().to_string())
    }
    pub fn status(&self, status: &str) -> String {
        let (mark, f): (&str, fn(&str) -> String) = match status {
            "error" => ("✗", |x| x.red().bold().to_string()),
            "warn" => ("!", |x| x.yellow().bold().to_string()),
            "unknown" => ("?", |x| x.magenta().bold().to_string()),
            "skip" => ("–", |x| x.dimmed().to_string()),
            "info" => ("i", |x| x.cyan().bold().to_string()),
            _ => ("✓", |x| x.green().to_string()),
        };
        self.paint(mark, f)
    }
    fn severity(&self, s: Severity) -> String {
        let text = format!("{:<5}", s.as_str());
        match s {
            Severity::Error => self.paint(&text, |x| x.red().bold().to_string()),
            Severity::Warn => self.paint(&text, |x| x.yellow().bold().to_string()),
            Severity::Info => self.paint(&text, |x| x.cyan().to_string()),
        }
    }
}

/// Wrap `text` to `WIDTH` columns, every line prefixed with `indent`.
/// Lines that look like commands (the fix) are never re-wrapped.
fn wrap(text: &str, indent: &str) -> String {
    let mut out = String::new();
    for para in text.lines() {
        if para.trim().is_empty() {
            out.push('\n');
            continue;
        }
        let mut line = String::new();
        for word in para.split_whitespace() {
            if !line.is_empty() && indent.len() + line.len() + 1 + word.len() > WIDTH {
                out.push_str(&format!("{indent}{line}\n"));
                line.clear();
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
        out.push_str(&format!("{indent}{line}\n"));
    }
    out
}

fn block(label: &str, text: &str, style: Style, verbatim: bool) -> String {
    let text = escape_controls(text);
    if text.trim().is_empty() {
        return String::new();
    }
    let head = format!("    {:<9}", label);
    let indent = " ".repeat(head.chars().count());
    let body = if verbatim {
        text.lines()
            .map(|l| format!("{indent}{l}\n"))
            .collect::<String>()
    } else {
        wrap(&text, &indent)
    };
    let body = body.trim_start().to_string();
    format!("{}{}", style.dim(&head), body)
}

/// Each diagnosis with its evidence, why it matters (unless `quiet`) and
/// the fix; shared by `check` and the `watch` summary.
pub fn diagnoses(ds: &[Diagnosis], style: Style, quiet: bool) -> String {
    let mut out = String::new();
    for d in ds {
        out.push_str(&format!(
            "{} {} {}  {}\n",
            style.status(d.severity.as_str()),
            style.severity(d.severity),
            style.dim(&d.id),
            style.bold(&d.title)
        ));
        out.push_str(&block("evidence", &d.evidence, style, false));
        if !quiet {
            out.push_str(&block("why", &d.explain, style, false));
        }
        out.push_str(&block("fix", &d.fix, style, true));
        out.push('\n');
    }
    out
}

pub fn render(report: &Report, style: Style, quiet: bool) -> String {
    let mut out = String::new();
    if !quiet {
        let mode = match report.mode {
            crate::source::Mode::Replay => "replay of a capture",
            crate::source::Mode::Record => "live (recording a capture)",
            crate::source::Mode::Live => "live",
        };
        out.push_str(&format!(
            "{} {} · {}\n\n",
            style.bold("rigdoctor"),
            env!("CARGO_PKG_VERSION"),
            mode
        ));
        let width = report
            .areas
            .iter()
            .map(|a| a.label.chars().count())
            .max()
            .unwrap_or(0);
        for a in &report.areas {
            out.push_str(&format!(
                "  {} {}  {}\n",
                style.status(&a.status),
                style.bold(&format!("{:<width$}", a.label)),
                escape_controls(&a.summary)
            ));
        }
        out.push('\n');
    }
    if !report.diagnoses.is_empty() {
        if !quiet {
            out.push_str(&format!(
                "{}\n\n",
                style.bold("Problems, most severe first")
            ));
        }
        out.push_str(&diagnoses(&report.diagnoses, style, quiet));
    }
    if !report.rule_errors.is_empty() {
        out.push_str(&format!(
            "{}\n",
            style.bold("Some rules could not be evaluated (a rigdoctor bug; please report it):")
        ));
        for e in &report.rule_errors {
            out.push_str(&format!("  {}\n", escape_controls(e)));
        }
        out.push('\n');
    }
    out.push_str(&format!(
        "{} {}\n",
        style.bold("Summary:"),
        escape_controls(&report.summary_line())
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapping_keeps_words_and_indent() {
        let long = "word ".repeat(40);
        let w = wrap(&long, "  ");
        assert!(w.lines().all(|l| l.len() <= WIDTH && l.starts_with("  ")));
        assert_eq!(w.split_whitespace().count(), 40);
    }
}
