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
    format!(
        "{} {} {} {}: {}\n",
        style.dim("rigdoctor watch"),
        style.dim(&clock(ch.t)),
        mark,
        style.bold(ch.verdict.title()),
        escape_controls(&ch.reason)
    )
}

/// The status line on a terminal (no newline; the caller redraws it with `\r`).
pub fn status_line(w: &Watcher, width: usize) -> String {
    let mut parts = vec![format!("rigdoctor {}", clock(w.elapsed()))];
    match &w.last_stats {
        Some(st) => {
            parts.push(format!("cpu {:.1}/{:.0} cores", st.cores, w.cfg.cores));
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
    out.push_str(&format!(
        "\n{} {} · {} of {} · {} GPU{}\n\n",
        style.bold("rigdoctor watch"),
        env!("CARGO_PKG_VERSION"),
        clock(w.elapsed()),
        escape_controls(&w.header.target),
        gpus,
        if gpus == 1 { "" } else { "s" }
    ));
    // Timeline.
    let tl = &w.timeline;
    if !tl.buckets.is_empty() {
        out.push_str(&format!(
            "{} (each column {})\n",
            style.bold("Timeline"),
            if tl.width >= 1.0 {
                format!("{:.0} s", tl.width)
            } else {
                format!("{:.1} s", tl.width)
            }
        ));
        let cores: Vec<Option<f64>> = tl.buckets.iter().map(|b| b.cores.mean()).collect();
        let (cmean, cmax) = w.cores_summary();
        out.push_str(&format!(
            "  {:<14} {}  mean {:.1}, max {:.1} of {:.0}\n",
            "cpu cores",
            sparkline(&cores, w.cfg.cores),
            cmean.unwrap_or(0.0),
            cmax.unwrap_or(0.0),
            w.cfg.cores
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
            out.push_str(&format!(
                "  {:<14} {}  {}\n",
                format!("{} busy", escape_controls(&g.label)),
                sparkline(&vals, 100.0),
                tail
            ));
        }
        let reads: Vec<Option<f64>> = tl.buckets.iter().map(|b| b.read.mean()).collect();
        if let Some(rmax) = w.read_max().filter(|r| *r > 0.0) {
            out.push_str(&format!(
                "  {:<14} {}  max {}/s\n",
                "read",
                sparkline(&reads, rmax),
                human_bytes(rmax)
            ));
        }
        let letters: String = tl.buckets.iter().map(|b| b.letter()).collect();
        out.push_str(&format!("  {:<14} {}\n", "verdict", letters));
        out.push_str(&format!(
            "  {}\n\n",
            style.dim("G gpu-bound  F cpu-fallback  P partial-offload  D dispatch-bound  M multi-gpu-imbalance  L loading  I idle  ? no telemetry  · warming up")
        ));
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
        out.push_str(&format!(
            "rule error (a rigdoctor bug): {}\n",
            escape_controls(e)
        ));
    }
    let count = |s: Severity| ev.diagnoses.iter().filter(|d| d.severity == s).count();
    out.push_str(&format!(
        "{} {} error{}, {} warning{}; mostly {}\n",
        style.bold("Summary:"),
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
    ));
    out
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
