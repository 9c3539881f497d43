//! What a person (or a script) sees: the one-line status on a terminal,
//! one line per verdict change otherwise, the final summary with a sparkline
//! timeline per signal, the time in each verdict and the diagnoses; and the
//! JSON Lines of `--format json`. Decides nothing: the verdicts and the
//! diagnoses arrive made.

use super::classify::Verdict;
use super::facts::Facts;
use super::lines::{Overall, Schema, SummaryLine, SummaryTag, VerdictLine};
use super::sample::round2;
use super::watcher::{Change, Watcher, clock};
use crate::diagnose::{Diagnosis, Evaluation, Severity, human_bytes};
use crate::render::human::{self, Style};
use crate::text::escape_controls;

const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// One character per value scaled to `max`; unknown is a space.
pub fn sparkline(values: &[Option<f64>], max: f64) -> String {
    values
        .iter()
        .map(|v| match v {
            None => ' ',
            Some(v) => {
                let f = if max > 0.0 {
                    (v / max).clamp(0.0, 1.0)
                } else {
                    0.0
                };
                BARS[((f * 7.0).round() as usize).min(7)]
            }
        })
        .collect()
}

/// The line printed when the verdict changes (not on a status-line terminal).
pub fn change_line(ch: &Change, style: Style) -> String {
    let mark = match ch.verdict {
        v if v.is_benign() => style.status("ok"),
        Verdict::NoGpuTelemetry => style.status("unknown"),
        Verdict::CpuFallback => style.status("error"),
        _ => style.status("warn"),
    };
    let head = format!(
        "{} {} {} ",
        style.dim("rigdoctor watch"),
        style.dim(&clock(ch.t)),
        mark,
    );
    let n = "rigdoctor watch ".len() + clock(ch.t).chars().count() + 3;
    let text = format!("{}: {}", ch.verdict.title(), ch.reason);
    style.hang(&head, n, &text, |s| s.to_string())
}

/// `values` in at most `cols` columns: neighbours merge (their mean) when
/// the timeline is wider than the page.
fn fit(values: &[Option<f64>], cols: usize) -> Vec<Option<f64>> {
    let k = values.len().div_ceil(cols.max(1)).max(1);
    values
        .chunks(k)
        .map(|c| {
            let known: Vec<f64> = c.iter().flatten().copied().collect();
            (!known.is_empty()).then(|| known.iter().sum::<f64>() / known.len() as f64)
        })
        .collect()
}

/// The verdict letters in at most `cols` columns: of merged neighbours,
/// the letter that covers most of them (the first on a tie).
fn fit_letters(letters: &[char], cols: usize) -> String {
    let k = letters.len().div_ceil(cols.max(1)).max(1);
    letters
        .chunks(k)
        .map(|c| {
            let count = |x: char| c.iter().filter(|y| **y == x).count();
            c.iter()
                .copied()
                .fold(None, |best: Option<char>, x| match best {
                    Some(b) if count(b) >= count(x) => Some(b),
                    _ => Some(x),
                })
                .unwrap_or(' ')
        })
        .collect()
}

/// The status line on a terminal (no newline; the caller redraws it with `\r`).
pub fn status_line(w: &Watcher, width: usize) -> String {
    let mut parts = vec![format!("rigdoctor {}", clock(w.elapsed()))];
    match &w.last_stats {
        Some(st) => {
            let mut cpu = format!("cpu {:.1}/{:.0} cores", st.cores, w.cfg.cores);
            // Demand beside the share: a loaded box gives a CPU-bound run little.
            if let Some(d) = st.demand.filter(|d| *d >= st.cores + 0.15) {
                cpu.push_str(&format!(", wants {d:.1}"));
            }
            if let Some(l) = st.load {
                cpu.push_str(&format!(" (load {l:.1})"));
            }
            parts.push(cpu);
            if let Some(r) = st.rss {
                parts.push(format!("rss {}", human_bytes(r as f64)));
            }
            for g in st.gpus.iter().filter(|g| g.considered) {
                let busy = g.busy.map_or("?".to_string(), |b| format!("{b:.0}%"));
                let mem = g
                    .mem
                    .map(|m| format!(" {}", human_bytes(m as f64)))
                    .unwrap_or_default();
                parts.push(format!("{} {busy}{mem}", g.label));
            }
            // The engine's own figure, last reported.
            if let Some(d) = w.tput.decode_tps {
                parts.push(format!("{d:.1} tok/s"));
            }
            parts.push(
                w.current
                    .map(|v| v.title().to_string())
                    .unwrap_or_else(|| "warming up".into()),
            );
        }
        None => parts.push("warming up".into()),
    }
    // GPU labels come from tools (nvidia-smi, sysfs names).
    let line = parts.join(" │ ");
    escape_controls(&line).chars().take(width.max(20)).collect()
}

/// The final summary for a person.
pub fn summary(w: &Watcher, ev: &Evaluation, style: Style) -> String {
    let mut out = String::new();
    let gpus = w.header.gpus.len();
    out.push('\n');
    out.push_str(&style.hang(
        &format!("{} ", style.bold("rigdoctor watch")),
        "rigdoctor watch ".len(),
        &format!(
            "{} · {} of {} · {} GPU{}",
            env!("CARGO_PKG_VERSION"),
            clock(w.elapsed()),
            w.header.target,
            gpus,
            if gpus == 1 { "" } else { "s" }
        ),
        |s| s.to_string(),
    ));
    out.push('\n');
    // The sparkline column: what the page has after the row's label; each
    // row's numbers follow on the same line when they fit, else below it.
    let cols = style.width.max(40).saturating_sub(17);
    let row = |label: &str, spark: &str, tail: &str| -> String {
        let line = format!("  {label:<14} {spark}  {tail}");
        if tail.is_empty() {
            format!("  {label:<14} {spark}\n")
        } else if textwrap::core::display_width(&line) <= style.width.max(40) {
            format!("{line}\n")
        } else {
            format!("  {label:<14} {spark}\n{}{tail}\n", " ".repeat(17))
        }
    };
    // Timeline.
    let tl = &w.timeline;
    if !tl.buckets.is_empty() {
        out.push_str(&format!("{} (each column {})\n", style.bold("Timeline"), {
            // Merged columns (a page narrower than the timeline) span more.
            let span = tl.width * tl.buckets.len().div_ceil(cols.max(1)).max(1) as f64;
            if span >= 1.0 {
                format!("{span:.0} s")
            } else {
                format!("{span:.1} s")
            }
        }));
        let cores: Vec<Option<f64>> = tl.buckets.iter().map(|b| b.cores.mean()).collect();
        let (cmean, cmax) = w.cores_summary();
        out.push_str(&row(
            "cpu cores",
            &sparkline(&fit(&cores, cols), w.cfg.cores),
            &format!(
                "mean {:.1}, max {:.1} of {:.0}",
                cmean.unwrap_or(0.0),
                cmax.unwrap_or(0.0),
                w.cfg.cores
            ),
        ));
        for (i, gs) in w.gpu_summary().into_iter().enumerate() {
            let (g, mean, max, src, mem) = (gs.info, gs.mean, gs.max, gs.src, gs.mem_max);
            let vals: Vec<Option<f64>> = tl
                .buckets
                .iter()
                .map(|b| b.gpus.get(i).and_then(|a| a.mean()))
                .collect();
            let tail = match (mean, max) {
                (Some(m), Some(x)) => format!(
                    "mean {m:.0}%, max {x:.0}% ({src}){}",
                    mem.map(|m| format!(", mem {}", human_bytes(m as f64)))
                        .unwrap_or_default()
                ),
                _ => "no reading".to_string(),
            };
            out.push_str(&row(
                &format!("{} busy", escape_controls(&g.label)),
                &sparkline(&fit(&vals, cols), 100.0),
                &escape_controls(&tail),
            ));
        }
        let reads: Vec<Option<f64>> = tl.buckets.iter().map(|b| b.read.mean()).collect();
        if let Some(rmax) = w.read_max().filter(|r| *r > 0.0) {
            out.push_str(&row(
                "read",
                &sparkline(&fit(&reads, cols), rmax),
                &format!("max {}/s", human_bytes(rmax)),
            ));
        }
        let tps: Vec<Option<f64>> = tl.buckets.iter().map(|b| b.tps.mean()).collect();
        let tps_max = tl
            .buckets
            .iter()
            .filter(|b| b.tps.n > 0)
            .map(|b| b.tps.max)
            .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))));
        if let Some(tmax) = tps_max {
            out.push_str(&row(
                "tok/s",
                &sparkline(&fit(&tps, cols), tmax),
                &format!("max {tmax:.1} (the engine's reports)"),
            ));
        }
        let letters: Vec<char> = tl.buckets.iter().map(|b| b.letter()).collect();
        out.push_str(&row("verdict", &fit_letters(&letters, cols), ""));
        out.push_str(&style.hang(
            "  ",
            2,
            "G gpu-bound  F cpu-fallback  P partial-offload  D dispatch-bound  M multi-gpu-imbalance  L loading  I idle  ? no telemetry  · warming up",
            |s| style.dim(s),
        ));
        out.push('\n');
    }
    // The CPU wanted, and what the tree loaded: the evidence behind a
    // CPU verdict that needs no verbose log.
    let f = w.facts();
    if f.process.demand_max >= 0.0 || w.tree.is_some() {
        let mut lines = Vec::new();
        if f.process.demand_max >= 0.0 {
            let load = if f.process.load_max >= 0.0 {
                format!(
                    "; machine load up to {:.1} on {} cores",
                    f.process.load_max, w.cfg.cores
                )
            } else {
                String::new()
            };
            lines.push(format!(
                "cpu wanted mean {:.1}, max {:.1} cores (cpu time + run-queue wait){load}",
                f.process.demand_mean, f.process.demand_max
            ));
        }
        if w.tree.is_some() {
            lines.push(f.tree.evidence.clone());
        }
        out.push_str(&format!("{}\n", style.bold("Evidence")));
        for l in lines {
            out.push_str(&style.hang("  ", 2, &escape_controls(&l), |s| s.to_string()));
        }
        out.push('\n');
    }
    let speed = speed_lines(&f);
    if !speed.is_empty() {
        out.push_str(&format!("{}\n", style.bold("Speed and energy")));
        for l in speed {
            out.push_str(&style.hang("  ", 2, &escape_controls(&l), |s| s.to_string()));
        }
        out.push('\n');
    }
    // Time in each verdict.
    out.push_str(&format!("{}\n", style.bold("Time in each verdict")));
    let total = w.elapsed().max(1e-9);
    let mut rows: Vec<(String, f64)> = Verdict::ALL
        .iter()
        .map(|v| (v.id().to_string(), w.seconds(*v)))
        .filter(|(_, s)| *s > 0.0)
        .collect();
    rows.sort_by(|a, b| b.1.total_cmp(&a.1));
    if w.warmup_seconds() > 0.0 {
        rows.push(("warming up".into(), w.warmup_seconds()));
    }
    for (name, secs) in rows {
        // At most the full width, whatever the trace's times say.
        let bar = "█".repeat(((secs / total).clamp(0.0, 1.0) * 30.0).round() as usize);
        out.push_str(&format!(
            "  {:<20} {:>7.1} s {:>4.0}%  {}\n",
            name,
            secs,
            100.0 * secs / total,
            bar
        ));
    }
    out.push('\n');
    if !ev.diagnoses.is_empty() {
        out.push_str(&format!(
            "{}\n\n",
            style.bold("Problems, most severe first")
        ));
        out.push_str(&human::diagnoses(&ev.diagnoses, style, false));
    }
    for e in &ev.rule_errors {
        out.push_str(&style.hang(
            "rule error (a rigdoctor bug): ",
            "rule error (a rigdoctor bug): ".len(),
            e,
            |s| s.to_string(),
        ));
    }
    let count = |s: Severity| ev.diagnoses.iter().filter(|d| d.severity == s).count();
    out.push_str(&style.hang(
        &format!("{} ", style.bold("Summary:")),
        "Summary: ".len(),
        &format!(
        "{} error{}, {} warning{}; mostly {}",
        count(Severity::Error),
        if count(Severity::Error) == 1 { "" } else { "s" },
        count(Severity::Warn),
        if count(Severity::Warn) == 1 { "" } else { "s" },
        Verdict::ALL
            .iter()
            .filter(|v| w.seconds(**v) > 0.0)
            .max_by(|a, b| w.seconds(**a).total_cmp(&w.seconds(**b)))
            .map(|v| v.id())
            .unwrap_or("nothing (too short to judge)")
        ),
        |s| s.to_string(),
    ));
    out
}

/// The engine's speed and the run's energy, one sentence each (none when
/// nothing was reported or read).
fn speed_lines(f: &super::facts::WatchFacts) -> Vec<String> {
    let mut out = Vec::new();
    let t = &f.throughput;
    if t.decode_tps.is_some() || t.prompt_tps.is_some() {
        let mut parts = Vec::new();
        if let Some(d) = t.decode_tps {
            parts.push(format!("generation {d:.2} tok/s"));
        }
        if let Some(p) = t.prompt_tps {
            parts.push(format!("prompt {p:.2} tok/s"));
        }
        let tokens = t
            .decode_tokens
            .map(|n| format!(", {n} tokens generated"))
            .unwrap_or_default();
        out.push(format!(
            "{} ({}, last of {} report{}{tokens})",
            parts.join(", "),
            t.engine,
            t.reports,
            if t.reports == 1 { "" } else { "s" }
        ));
    }
    let b = &f.bound;
    match (b.decode_tps, b.percent) {
        (Some(lim), Some(pct)) => out.push(format!(
            "speed limit {lim:.1} tok/s (memory bandwidth, {} ms per token at least): this run {pct:.1} % of it",
            b.ms_per_token.unwrap_or(0.0)
        )),
        (Some(lim), None) => out.push(format!(
            "speed limit {lim:.1} tok/s (memory bandwidth, {} ms per token at least)",
            b.ms_per_token.unwrap_or(0.0)
        )),
        (None, _) if t.decode_tps.is_some() => {
            out.push(format!("speed limit unknown: {}", b.unknown_why))
        }
        _ => {}
    }
    let e = &f.energy;
    let mut parts: Vec<String> = e
        .gpus
        .iter()
        .filter_map(|g| {
            g.joules.map(|j| {
                format!(
                    "{} {} over {:.0} s ({})",
                    g.label,
                    joules(j),
                    g.seconds,
                    g.source
                )
            })
        })
        .collect();
    match e.cpu_joules {
        Some(c) => parts.push(format!(
            "CPU packages {} over {:.0} s (rapl)",
            joules(c),
            e.cpu_seconds
        )),
        None if !parts.is_empty() => parts.push("CPU packages unknown".into()),
        None => {}
    }
    if !parts.is_empty() {
        let per = e
            .joules_per_token
            .map(|j| format!("; {j:.3} J per generated token ({})", e.per_token_of))
            .unwrap_or_default();
        out.push(format!("energy: {}{per}", parts.join(", ")));
    }
    out
}

fn joules(j: f64) -> String {
    if j >= 10_000.0 {
        format!("{:.1} kJ", j / 1000.0)
    } else {
        format!("{j:.1} J")
    }
}

/// `ok` / `warn` / `error`: the most severe diagnosis (info counts as ok).
pub fn overall(ds: &[Diagnosis]) -> Overall {
    match ds.iter().map(|d| d.severity).max() {
        Some(Severity::Error) => Overall::Error,
        Some(Severity::Warn) => Overall::Warn,
        _ => Overall::Ok,
    }
}

/// `{"type":"verdict", ...}`.
pub fn change_json(ch: &Change) -> VerdictLine<'_> {
    VerdictLine::new(ch.t, ch.verdict, ch.previous, &ch.reason, &ch.stats)
}

/// `{"type":"summary", ...}`: the same `diagnoses` shape as `check`.
pub fn summary_json<'a>(
    w: &Watcher,
    ev: &'a Evaluation,
    facts: &'a Facts,
    exit: Option<i32>,
) -> SummaryLine<'a> {
    SummaryLine {
        kind: SummaryTag::Tag,
        schema: Schema::WatchV1,
        verdict: overall(&ev.diagnoses),
        diagnoses: &ev.diagnoses,
        facts,
        rule_errors: &ev.rule_errors,
        seconds: round2(w.elapsed()),
        exit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparklines_scale_and_show_gaps() {
        assert_eq!(
            sparkline(&[Some(0.0), Some(50.0), Some(100.0), None], 100.0),
            "▁▅█ "
        );
        assert_eq!(sparkline(&[Some(5.0)], 0.0), "▁");
        assert_eq!(sparkline(&[Some(500.0)], 100.0), "█");
    }
}
