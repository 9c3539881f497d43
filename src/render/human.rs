//! The page for a person at a terminal: one line per area with ✓ / ! / ✗,
//! then every problem, most severe first, with its evidence, why it matters
//! and a fix to paste; then one summary line. Colour only when asked for
//! (`--color`, `NO_COLOR`, a TTY), decided by the caller; so is the width
//! ([`terminal_width`]): every line fits in it, except a word longer than
//! the line (a long path), which then stands on a line of its own.

use std::os::fd::AsFd;

use owo_colors::OwoColorize;

use crate::diagnose::report::Report;
use crate::diagnose::{Diagnosis, Severity};
use crate::text::escape_controls;

/// How the page is drawn: colour or not, and the terminal's width in columns.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub color: bool,
    pub width: usize,
}

/// The width of a page that goes to a pipe, a file, or a terminal that
/// does not say its size: the classic terminal, which every pager fits.
pub const DEFAULT_WIDTH: usize = 80;

/// The narrowest page laid out; a narrower terminal gets lines this long
/// (hanging indents of a dozen columns leave nothing below that).
const MIN_WIDTH: usize = 40;

/// The widest page laid out, whatever `COLUMNS` says.
const MAX_WIDTH: usize = 1000;

/// Columns of the page for `stream`: `COLUMNS` when it is set to a number
/// (as `ls` does: a script or a test can ask for a width, and a pipe can be
/// given the terminal's), else the terminal's own (terminal_size asks the
/// tty with TIOCGWINSZ), else [`DEFAULT_WIDTH`] for a pipe, a file or a
/// terminal that does not say.
pub fn terminal_width(stream: impl AsFd) -> usize {
    let tty = terminal_size::terminal_size_of(stream).map(|(w, _)| usize::from(w.0));
    width_from(std::env::var("COLUMNS").ok().as_deref(), tty)
}

/// [`terminal_width`] from what it read: `COLUMNS`, the terminal's columns.
pub fn width_from(columns: Option<&str>, tty: Option<usize>) -> usize {
    columns
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|w| *w > 0)
        .or(tty.filter(|w| *w > 0))
        .unwrap_or(DEFAULT_WIDTH)
        .min(MAX_WIDTH)
}

impl Style {
    /// A page without colour, `width` columns wide (tests, files).
    pub fn plain(width: usize) -> Style {
        Style {
            color: false,
            width,
        }
    }
    fn cols(&self) -> usize {
        self.width.max(MIN_WIDTH)
    }
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
        let text = format!("{:<7}", s.word());
        match s {
            Severity::Error => self.paint(&text, |x| x.red().bold().to_string()),
            Severity::Warn => self.paint(&text, |x| x.yellow().bold().to_string()),
            Severity::Info => self.paint(&text, |x| x.cyan().to_string()),
        }
    }

    /// `text` (escaped, plain) filled to the width under a hanging `head`:
    /// `head` (painted) starts the first line, the other lines are indented
    /// by `indent` columns, which is the head's width on screen; `paint`
    /// colours each line's words. A first word too long for the line does
    /// not sit after the head: the head stands alone above it.
    pub fn hang(
        &self,
        head: &str,
        indent: usize,
        text: &str,
        paint: impl Fn(&str) -> String,
    ) -> String {
        let pad = " ".repeat(indent);
        let text = escape_controls(text);
        let lines = fill(&text, &pad, self.cols());
        let mut out = String::new();
        for (i, line) in lines.iter().enumerate() {
            let body = line.get(indent..).unwrap_or("");
            if i == 0 {
                if width_of(line) > self.cols() && !head.trim().is_empty() {
                    out.push_str(head.trim_end());
                    out.push('\n');
                    out.push_str(&pad);
                } else {
                    out.push_str(head);
                }
            } else if body.is_empty() {
                out.push('\n');
                continue;
            } else {
                out.push_str(&pad);
            }
            out.push_str(&paint(body));
            out.push('\n');
        }
        out
    }
}

/// Columns `s` takes on screen (unicode-width: `·` is one, a CJK name two).
fn width_of(s: &str) -> usize {
    textwrap::core::display_width(s)
}

/// `text` in lines of at most `width` columns, each starting with `indent`.
/// Words break only at ASCII spaces, never inside a word or at a hyphen
/// (`intel-extension-for-pytorch`, paths and URLs stay whole and pasteable);
/// a word longer than the line gets a line of its own.
fn fill(text: &str, indent: &str, width: usize) -> Vec<String> {
    let opts = textwrap::Options::new(width)
        .initial_indent(indent)
        .subsequent_indent(indent)
        .break_words(false)
        .word_separator(textwrap::WordSeparator::AsciiSpace)
        .word_splitter(textwrap::WordSplitter::NoHyphenation);
    textwrap::wrap(text, &opts)
        .into_iter()
        .map(|l| {
            if l.trim().is_empty() {
                String::new()
            } else {
                l.into_owned()
            }
        })
        .collect()
}

/// Where an unquoted shell comment starts in `line` (`cmd   # note`): a `#`
/// after whitespace, outside quotes. None for a line without one.
fn comment_start(line: &str) -> Option<usize> {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    let mut prev_space = false;
    for (i, c) in line.char_indices() {
        match (quote, c) {
            _ if escaped => escaped = false,
            (Some('\''), '\'') => quote = None,
            (Some('\''), _) => {}
            (_, '\\') => escaped = true,
            (Some('"'), '"') => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '#') if prev_space => return Some(i),
            _ => {}
        }
        prev_space = c == ' ' || c == '\t';
    }
    None
}

/// The shell words of `line`, split at whitespace outside quotes; None when
/// a quote is left open (the line continues a string: it is not split).
fn shell_words(line: &str) -> Option<Vec<&str>> {
    let mut words = Vec::new();
    let mut quote: Option<char> = None;
    let mut escaped = false;
    let mut start: Option<usize> = None;
    for (i, c) in line.char_indices() {
        let space = c == ' ' || c == '\t';
        if quote.is_none() && !escaped && space {
            if let Some(s) = start.take() {
                words.push(&line[s..i]);
            }
            continue;
        }
        start.get_or_insert(i);
        match (quote, c) {
            _ if escaped => escaped = false,
            (Some('\''), '\'') => quote = None,
            (Some('\''), _) => {}
            (_, '\\') => escaped = true,
            (Some('"'), '"') => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            _ => {}
        }
    }
    if quote.is_some() || escaped {
        return None;
    }
    if let Some(s) = start {
        words.push(&line[s..]);
    }
    Some(words)
}

/// One line of a fix, laid out to `width` so that what is pasted still
/// runs: a comment wraps into more comment lines; a trailing comment of a
/// command too long for the line goes above it; a command breaks between
/// its words with ` \` (a shell line continuation), its continuation
/// lines indented two more. A line that opens a quote it does not close,
/// or a single word, stays as it is.
fn fix_line(line: &str, indent: &str, width: usize) -> Vec<String> {
    if width_of(indent) + width_of(line) <= width {
        return vec![format!("{indent}{line}")];
    }
    let lead = &line[..line.len() - line.trim_start().len()];
    let rest = line.trim_start();
    if let Some(after) = rest.strip_prefix('#') {
        let gap = &after[..after.len() - after.trim_start().len()];
        let prefix = format!("{indent}{lead}#{}", if gap.is_empty() { " " } else { gap });
        return fill(after.trim_start(), &prefix, width);
    }
    if let Some(at) = comment_start(rest) {
        let (cmd, comment) = rest.split_at(at);
        let mut out = fix_line(&format!("{lead}{comment}"), indent, width);
        out.extend(fix_line(
            &format!("{lead}{}", cmd.trim_end()),
            indent,
            width,
        ));
        return out;
    }
    let Some(words) = shell_words(rest) else {
        return vec![format!("{indent}{line}")];
    };
    let mut out = Vec::new();
    let mut cur = format!("{indent}{lead}");
    let mut empty = true;
    for w in words {
        // Room for the word and, when more follow, ` \`.
        if !empty && width_of(&cur) + 1 + width_of(w) + 2 > width {
            out.push(format!("{cur} \\"));
            cur = format!("{indent}{lead}  ");
            empty = true;
        }
        if !empty {
            cur.push(' ');
        }
        cur.push_str(w);
        empty = false;
    }
    out.push(cur);
    out
}

fn block(label: &str, text: &str, style: Style, verbatim: bool) -> String {
    let text = escape_controls(text);
    if text.trim().is_empty() {
        return String::new();
    }
    let head = format!("    {:<9}", label);
    let n = head.chars().count();
    if !verbatim {
        return style.hang(&style.dim(&head), n, &text, |s| s.to_string());
    }
    let indent = " ".repeat(n);
    let lines: Vec<String> = text
        .lines()
        .flat_map(|l| fix_line(l, &indent, style.cols()))
        .collect();
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate() {
        if i == 0 {
            if width_of(line) > style.cols() {
                out.push_str(&format!("{}\n", style.dim(head.trim_end())));
                out.push_str(line);
            } else {
                out.push_str(&style.dim(&head));
                out.push_str(line.get(n..).unwrap_or(""));
            }
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

/// Each diagnosis with its evidence, why it matters (unless `quiet`) and
/// the fix; shared by `check` and the `watch` summary.
pub fn diagnoses(ds: &[Diagnosis], style: Style, quiet: bool) -> String {
    let mut out = String::new();
    for d in ds {
        let id = escape_controls(&d.id);
        let sev = format!("{:<7}", d.severity.word());
        let head = format!(
            "{} {} {}  ",
            style.status(d.severity.as_str()),
            style.severity(d.severity),
            style.dim(&id)
        );
        let n = width_of(&format!("x {sev} {id}  "));
        // The title hangs under itself while that leaves a readable column.
        let indent = if style.cols() >= n + 40 { n } else { 4 };
        let title = if indent == n {
            style.hang(&head, n, &d.title, |s| style.bold(s))
        } else {
            format!(
                "{}\n{}",
                head.trim_end(),
                style.hang("    ", 4, &d.title, |s| style.bold(s))
            )
        };
        out.push_str(&title);
        out.push_str(&block("evidence", &d.evidence, style, false));
        if !quiet {
            out.push_str(&block("why", &d.explain, style, false));
        }
        out.push_str(&block("fix", &d.fix, style, true));
        out.push('\n');
    }
    out
}

/// How much of the report the page shows: `--quiet` (the problems and the
/// summary), the default, or `--verbose` (also what each area saw, every
/// GPU's facts, and each probe with its status and time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    Quiet,
    Normal,
    Verbose,
}

pub fn render(report: &Report, style: Style, quiet: bool) -> String {
    page(
        report,
        style,
        if quiet { Detail::Quiet } else { Detail::Normal },
    )
}

pub fn page(report: &Report, style: Style, detail: Detail) -> String {
    let quiet = detail == Detail::Quiet;
    let verbose = detail == Detail::Verbose;
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
            .map(|a| width_of(&escape_controls(&a.label)))
            .max()
            .unwrap_or(0);
        for a in &report.areas {
            let label = escape_controls(&a.label);
            let pad = " ".repeat(width.saturating_sub(width_of(&label)));
            let head = format!(
                "  {} {}{pad}  ",
                style.status(&a.status),
                style.bold(&label)
            );
            let summary = area_line(report, a);
            let indent = 2 + 1 + 1 + width + 2;
            out.push_str(&style.hang(&head, indent, &summary, |s| s.to_string()));
            // The line names the cause; verbose also says what was seen there.
            if verbose && summary != a.summary && !a.summary.is_empty() {
                let pad = " ".repeat(indent);
                out.push_str(
                    &style.hang(&pad, indent, &format!("seen: {}", a.summary), |s| {
                        style.dim(s)
                    }),
                );
            }
        }
        out.push('\n');
        if verbose {
            out.push_str(&gpu_facts(report, style));
        }
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
        out.push_str(&style.hang(
            "",
            0,
            "Some rules could not be evaluated (a rigdoctor bug; please report it):",
            |s| style.bold(s),
        ));
        for e in &report.rule_errors {
            out.push_str(&style.hang("  ", 4, e, |s| s.to_string()));
        }
        out.push('\n');
    }
    if verbose {
        out.push_str(&probe_times(report, style));
    }
    out.push_str(&style.hang(
        &format!("{} ", style.bold("Summary:")),
        "Summary: ".len(),
        &report.summary_line(),
        |s| s.to_string(),
    ));
    // What the site accepted, with its reason: the next person to read
    // the page sees why a finding is not there.
    if !quiet {
        for (id, why) in &report.ignored_reasons {
            out.push_str(&style.hang(
                "accepted ",
                "accepted ".len(),
                &format!("{id}: {why}"),
                |s| style.dim(s),
            ));
        }
    }
    if let (Some(first), false) = (report.diagnoses.first(), quiet) {
        let more = if report.diagnoses.iter().any(|d| d.id != first.id) {
            " (or another ID above)"
        } else {
            ""
        };
        out.push_str(&style.hang(
            "details: ",
            "details: ".len(),
            &format!("rigdoctor explain {}{more}", first.id),
            |s| s.to_string(),
        ));
    }
    out
}

/// `--verbose`: each GPU on the bus with the facts its rules judge (driver,
/// VRAM, the link that limits it, Resizable BAR), unknown said as unknown.
fn gpu_facts(report: &Report, style: Style) -> String {
    let gpus = &report.facts.gpus;
    if gpus.is_empty() {
        return String::new();
    }
    let mut out = format!("{}\n", style.bold("GPUs on the bus"));
    for g in gpus {
        let mut facts = vec![g.driver.clone().unwrap_or_else(|| "no driver".into())];
        if !g.compute {
            facts.push("display only".into());
        }
        facts.push(match g.vram_bytes {
            Some(b) => format!("{} VRAM", crate::diagnose::human_bytes(b as f64)),
            None => "VRAM unknown".into(),
        });
        facts.push(link_words(g));
        facts.push(
            match g.rebar {
                Some(true) => "Resizable BAR on",
                Some(false) => "Resizable BAR off",
                None => "Resizable BAR unknown",
            }
            .into(),
        );
        if let Some(n) = g.numa_node.filter(|n| *n >= 0) {
            facts.push(format!("NUMA node {n}"));
        }
        let head = format!("  {}  ", g.pci);
        let indent = width_of(&head);
        out.push_str(&style.hang(
            &head,
            indent,
            &format!("{}: {}", g.name, facts.join(", ")),
            |s| s.to_string(),
        ));
    }
    out.push('\n');
    out
}

/// `PCIe 8 GT/s x8 (card: 8 GT/s x16)`, from the link that limits the card.
fn link_words(g: &crate::rig::Gpu) -> String {
    let (speed, width, max_speed, max_width) = match &g.effective_link {
        Some(e) => (e.speed_gts, e.width, e.max_speed_gts, e.max_width),
        None => (
            g.link.speed_gts,
            g.link.width,
            g.link.max_speed_gts,
            g.link.max_width,
        ),
    };
    let part = |s: Option<f64>, w: Option<u32>| match (s, w) {
        // As lspci writes it (`8GT/s`): a unit that never wraps apart.
        (Some(s), Some(w)) => format!("{s}GT/s x{w}"),
        (Some(s), None) => format!("{s}GT/s, width unknown"),
        (None, Some(w)) => format!("x{w}, speed unknown"),
        (None, None) => "unknown".into(),
    };
    let now = part(speed, width);
    if now == "unknown" {
        return "PCIe link unknown".into();
    }
    let max = part(max_speed, max_width);
    if max == now || max == "unknown" {
        format!("PCIe {now}")
    } else {
        format!("PCIe {now} (card: {max})")
    }
}

/// `--verbose`: every probe in the order it ran, with its status and how
/// long it took, so a slow or blind check says where its time went.
fn probe_times(report: &Report, style: Style) -> String {
    let probes = &report.probes;
    if probes.is_empty() {
        return String::new();
    }
    let slowest = probes
        .iter()
        .max_by_key(|p| p.duration_ms)
        .filter(|p| p.duration_ms > 0)
        .map(|p| format!(" (slowest: {}, {} ms)", p.name, p.duration_ms))
        .unwrap_or_default();
    let mut out = style.hang(
        "",
        2,
        &format!("Probes, in the order they ran{slowest}"),
        |s| style.bold(s),
    );
    let name_w = probes
        .iter()
        .map(|p| width_of(&escape_controls(&p.name)))
        .max()
        .unwrap_or(0);
    // Up to 99999 ms in a fixed column: the layout does not move with the
    // times (a page that is diffed, a snapshot).
    let ms_w = probes
        .iter()
        .map(|p| p.duration_ms.to_string().len())
        .max()
        .unwrap_or(1)
        .max(5);
    for p in probes {
        let mark = match p.status.as_str() {
            "ok" => "ok",
            // Not there, or not run: nothing was lost by not looking.
            "skipped" | "missing" => "skip",
            _ => "unknown",
        };
        let name = escape_controls(&p.name);
        let head = format!(
            "  {} {}{}  {:>ms_w$} ms  ",
            style.status(mark),
            name,
            " ".repeat(name_w.saturating_sub(width_of(&name))),
            p.duration_ms
        );
        let indent = 2 + 1 + 1 + name_w + 2 + ms_w + 3 + 2;
        // The mark says ok; any other status is named.
        let text = match (p.status.as_str(), p.detail.is_empty()) {
            ("ok", true) => String::new(),
            // A skipped probe's detail says why it did not run.
            ("ok" | "skipped", false) => p.detail.clone(),
            (_, true) => p.status.clone(),
            (_, false) => format!("{}: {}", p.status, p.detail),
        };
        if text.is_empty() {
            out.push_str(head.trim_end());
            out.push('\n');
        } else {
            out.push_str(&style.hang(&head, indent, &text, |s| s.to_string()));
        }
    }
    if report.mode == crate::source::Mode::Replay {
        out.push_str(&style.hang(
            "  ",
            2,
            "(a replay: the times of commands are the ones recorded in the capture, \
             where it has them; the rest is the time to read the capture)",
            |s| style.dim(s),
        ));
    }
    out.push('\n');
    out
}

/// What an area line says: for an area with a warning or an error, the
/// cause (the most severe finding's title, and how many more there are), so
/// the first screen names it; otherwise what was seen there.
fn area_line(report: &Report, a: &crate::diagnose::report::Area) -> String {
    let mut found = report.findings_of(&a.area);
    match found.next() {
        Some(d) if d.severity >= Severity::Warn => {
            let more = found.count();
            if more == 0 {
                d.title.clone()
            } else {
                format!("{} (+{more} more)", d.title)
            }
        }
        _ => a.summary.clone(),
    }
}

/// `rigdoctor explain ID`: one rule for a person, filled to `width` columns:
/// what it finds, why that matters, the finding as it reads on the real rig
/// of its `fires_on` fixture (title, evidence and a fix that pastes), the
/// references and where it is defined. Templates are never shown raw: a
/// rule without an example (a site rule) shows its holes as `<name>`.
pub fn explain(r: &crate::diagnose::rules::Rule, width: usize) -> String {
    use crate::diagnose::rules::outline;
    let style = Style::plain(width);
    let s = &r.spec;
    let section = |name: &str, text: &str| {
        format!(
            "\n{name}\n{}",
            style.hang("  ", 2, text.trim(), |x| x.to_string())
        )
    };
    let mut out = style.hang(
        "",
        0,
        &format!(
            "{}  [{}, class {}, area {}]",
            s.id,
            s.severity.word(),
            r.class.as_str(),
            s.area
        ),
        |x| x.to_string(),
    );
    out.push_str(&section(
        "What it finds",
        &crate::diagnose::examples::summary(r),
    ));
    let example = crate::diagnose::examples::of(r);
    let why = match example {
        Some(ex) => ex.explain.clone(),
        None => outline(&s.explain),
    };
    out.push_str(&section("Why it matters", &why));
    match example {
        Some(ex) => {
            let how = if s.area == "watch" {
                format!("rigdoctor watch --replay {}", ex.from)
            } else {
                format!("rigdoctor check --replay {}", ex.from)
            };
            out.push_str(&section("Example", &format!("as `{how}` shows it:")));
            let d = Diagnosis {
                id: s.id.clone(),
                severity: s.severity,
                class: r.class,
                area: s.area.clone(),
                gpu: None,
                title: ex.title.clone(),
                evidence: ex.evidence.clone(),
                explain: String::new(),
                fix: ex.fix.clone(),
                refs: Vec::new(),
                could_not_look: s.could_not_look,
            };
            out.push('\n');
            out.push_str(diagnoses(&[d], style, true).trim_end());
            out.push('\n');
        }
        None => {
            if !s.evidence.trim().is_empty() {
                out.push_str(&section("Evidence", &outline(&s.evidence)));
            }
            out.push_str("\nFix (`rigdoctor check` fills in the <names>)\n");
            for line in escape_controls(&outline_lines(&s.fix)).lines() {
                for l in fix_line(line, "  ", style.cols()) {
                    out.push_str(&l);
                    out.push('\n');
                }
            }
        }
    }
    if !s.refs.is_empty() {
        out.push_str("\nReferences\n");
        for x in &s.refs {
            // A URL longer than the line stays beside its dash, whole.
            if x.contains(' ') {
                out.push_str(&style.hang("  - ", 4, x, |x| x.to_string()));
            } else {
                out.push_str(&format!("  - {}\n", escape_controls(x)));
            }
        }
    }
    out.push_str(&format!("\nDefined in {}\n", r.origin));
    out
}

/// [`crate::diagnose::rules::outline`] line by line (a fix keeps its lines).
fn outline_lines(template: &str) -> String {
    template
        .trim()
        .lines()
        .map(crate::diagnose::rules::outline)
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn widest(s: &str) -> usize {
        s.lines().map(width_of).max().unwrap_or(0)
    }

    #[test]
    fn filling_keeps_words_indent_and_width() {
        let long = "word ".repeat(40);
        let w = fill(&long, "  ", 30);
        assert!(w.iter().all(|l| width_of(l) <= 30 && l.starts_with("  ")));
        assert_eq!(w.join(" ").split_whitespace().count(), 40);
        // Hyphens and slashes are not break points.
        let w = fill(
            "aa intel-extension-for-pytorch /opt/intel/oneapi/setvars.sh",
            "",
            12,
        );
        assert_eq!(
            w,
            [
                "aa",
                "intel-extension-for-pytorch",
                "/opt/intel/oneapi/setvars.sh"
            ]
        );
    }

    #[test]
    fn a_long_word_leaves_the_head_alone_on_its_line() {
        let s = Style::plain(40);
        let path = "/a/very/long/path/that/does/not/fit/on/one/line/at/all";
        let out = s.hang("    evidence ", 13, &format!("{path} is gone"), |x| {
            x.to_string()
        });
        assert_eq!(
            out,
            format!("    evidence\n             {path}\n             is gone\n")
        );
    }

    #[test]
    fn colour_does_not_count_as_width() {
        let s = Style {
            color: true,
            width: 40,
        };
        let head = format!("{} ", s.bold("Summary:"));
        let out = s.hang(&head, 9, &"word ".repeat(20), |x| x.to_string());
        let plain = crate::text::strip_ansi(&out);
        assert!(widest(&plain) <= 40, "{plain}");
        assert!(plain.lines().count() > 1);
    }

    #[test]
    fn fix_lines_still_paste() {
        let ind = "    ";
        // Short lines are left alone, aligned comments and all.
        assert_eq!(fix_line("ls   # x", ind, 40), ["    ls   # x"]);
        // A comment wraps into comments, keeping its own indent.
        let c = fix_line("#   Environment=A B C D E F G H I J K L M N O P", ind, 24);
        assert!(
            c.iter()
                .all(|l| l.starts_with("    #   ") && width_of(l) <= 24),
            "{c:?}"
        );
        // A trailing comment goes above its command.
        assert_eq!(
            fix_line("sudo dmesg | tail -20   # why the driver gave up", ind, 40),
            ["    # why the driver gave up", "    sudo dmesg | tail -20"]
        );
        // A command breaks between words, never inside quotes.
        let c = fix_line("grep -E 'a b|c d' /etc/x /etc/y /etc/zzzzzz", ind, 24);
        assert_eq!(
            c,
            [
                "    grep -E 'a b|c d' \\",
                "      /etc/x /etc/y \\",
                "      /etc/zzzzzz"
            ]
        );
        assert!(c.iter().all(|l| width_of(l) <= 24));
        // '#' inside quotes or a word is not a comment.
        assert_eq!(comment_start("echo '# no' a#b"), None);
        assert_eq!(comment_start("echo \"x\" # yes"), Some(9));
        // An open quote (a string that goes on below) is not split.
        assert_eq!(shell_words("echo 'a b"), None);
        assert_eq!(
            fix_line("python -c 'import torch; print(torch", ind, 20),
            ["    python -c 'import torch; print(torch"]
        );
    }

    #[test]
    fn the_width_comes_from_columns_the_terminal_or_is_80() {
        assert_eq!(width_from(None, None), DEFAULT_WIDTH);
        assert_eq!(width_from(None, Some(0)), DEFAULT_WIDTH);
        assert_eq!(width_from(None, Some(132)), 132);
        assert_eq!(width_from(Some("120"), Some(132)), 120);
        assert_eq!(width_from(Some(" 100\n"), None), 100);
        // A COLUMNS that is not a width is ignored, a huge one capped.
        for bad in ["", "0", "-5", "wide", "1e3"] {
            assert_eq!(width_from(Some(bad), Some(90)), 90, "{bad:?}");
        }
        assert_eq!(width_from(Some("99999999999"), None), MAX_WIDTH);
    }
}
