//! `--format prometheus` and `--textfile DIR`: the report in the Prometheus
//! text exposition format (0.0.4), for node_exporter's textfile collector.
//!
//! Families and labels are documented in docs/integrations.md. The rules
//! the format and node_exporter impose, and how they are met here:
//! - every family has `# HELP` and `# TYPE`, and appears once;
//! - within a family every series has the same label names (client_golang,
//!   which node_exporter's textfile collector uses, refuses anything else),
//!   so a missing value is an empty label, never a missing label;
//! - no two series of a family have the same labels (duplicates are
//!   counted into one series instead);
//! - no sample timestamps (the textfile collector refuses them);
//! - label values escape `\`, `"` and newline; other control characters
//!   from tool output are replaced, so the file is safe to `cat`.
//!
//! This module writes text only; [`write_textfile`] is the one IO function,
//! called from the binary's edge.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::diagnose::report::Report;
use crate::diagnose::{RuleClass, Severity};

/// The file `--textfile DIR` writes (node_exporter reads `DIR/*.prom`).
pub const TEXTFILE_NAME: &str = "rigdoctor.prom";

/// Every status a probe can have (rig.rs `ProbeReport`).
const PROBE_STATUSES: &[&str] = &[
    "ok", "missing", "timeout", "failed", "unparsed", "denied", "skipped",
];

/// A label value as the exposition format wants it.
fn escape_label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// A number as the exposition format wants it (Go's ParseFloat reads these).
fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// One metric family: its series keyed by their rendered label set, so a
/// repeated label set adds up instead of producing a duplicate line.
struct Family {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    series: BTreeMap<String, f64>,
    order: Vec<String>,
}

impl Family {
    fn new(name: &'static str, kind: &'static str, help: &'static str) -> Family {
        Family {
            name,
            kind,
            help,
            series: BTreeMap::new(),
            order: Vec::new(),
        }
    }

    fn set(&mut self, labels: &[(&str, &str)], v: f64) {
        let key = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
            .collect::<Vec<_>>()
            .join(",");
        if !self.series.contains_key(&key) {
            self.order.push(key.clone());
        }
        self.series.insert(key, v);
    }

    fn add(&mut self, labels: &[(&str, &str)], v: f64) {
        let key = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
            .collect::<Vec<_>>()
            .join(",");
        match self.series.get_mut(&key) {
            Some(x) => *x += v,
            None => {
                self.order.push(key.clone());
                self.series.insert(key, v);
            }
        }
    }

    fn write(&self, out: &mut String) {
        // HELP text escapes only `\` and newline; ours are constants without either.
        let _ = writeln!(out, "# HELP {} {}", self.name, self.help);
        let _ = writeln!(out, "# TYPE {} {}", self.name, self.kind);
        for key in &self.order {
            let v = self.series.get(key).copied().unwrap_or(f64::NAN);
            if key.is_empty() {
                let _ = writeln!(out, "{} {}", self.name, number(v));
            } else {
                let _ = writeln!(out, "{}{{{}}} {}", self.name, key, number(v));
            }
        }
    }
}

fn gts_to_transfers(gts: f64) -> f64 {
    // Base units (Prometheus naming guide): transfers per second.
    (gts * 1e9).round()
}

/// The report as a Prometheus text exposition. `now_unix` is when the check
/// ran (the `rigdoctor_last_run_timestamp_seconds` value); the renderer does
/// not read the clock, so tests pin it.
pub fn render(report: &Report, now_unix: f64) -> String {
    let mut fams: Vec<Family> = Vec::new();

    let mut build = Family::new(
        "rigdoctor_build_info",
        "gauge",
        "rigdoctor's version; always 1.",
    );
    build.set(&[("version", env!("CARGO_PKG_VERSION"))], 1.0);
    fams.push(build);

    let mut last = Family::new(
        "rigdoctor_last_run_timestamp_seconds",
        "gauge",
        "Unix time at which this check ran; alert when it grows old.",
    );
    last.set(&[], now_unix.floor());
    fams.push(last);

    let mut verdict = Family::new(
        "rigdoctor_verdict",
        "gauge",
        "The check's verdict: 1 for the current one of ok, warn, error (the most severe diagnosis).",
    );
    for v in ["ok", "warn", "error"] {
        verdict.set(
            &[("verdict", v)],
            if report.verdict == v { 1.0 } else { 0.0 },
        );
    }
    fams.push(verdict);

    let mut diag = Family::new(
        "rigdoctor_diagnosis",
        "gauge",
        "One series per active diagnosis (1; more when a rule fires several times with the same labels). gpu is the PCI address of the GPU it is about, empty for rig-wide findings.",
    );
    for d in &report.diagnoses {
        diag.add(
            &[
                ("id", &d.id),
                ("severity", d.severity.as_str()),
                ("class", d.class.as_str()),
                ("area", &d.area),
                ("gpu", d.gpu.as_deref().unwrap_or("")),
            ],
            1.0,
        );
    }
    fams.push(diag);

    let mut counts = Family::new(
        "rigdoctor_diagnoses",
        "gauge",
        "Active diagnoses by severity and action class (hardware and node-config take a node out of service).",
    );
    for sev in [Severity::Error, Severity::Warn, Severity::Info] {
        for class in RuleClass::ALL {
            let n = report
                .diagnoses
                .iter()
                .filter(|d| d.severity == sev && d.class == class)
                .count();
            counts.set(
                &[("severity", sev.as_str()), ("class", class.as_str())],
                n as f64,
            );
        }
    }
    fams.push(counts);

    let mut rule_errors = Family::new(
        "rigdoctor_rule_errors",
        "gauge",
        "Rules that failed to evaluate (a rigdoctor bug, never a finding about the node).",
    );
    rule_errors.set(&[], report.rule_errors.len() as f64);
    fams.push(rule_errors);

    let mut pstatus = Family::new(
        "rigdoctor_probe_status",
        "gauge",
        "Each probe's status, 1 for the current one; anything but ok and missing means rigdoctor could not look.",
    );
    let mut pdur = Family::new(
        "rigdoctor_probe_duration_seconds",
        "gauge",
        "How long each probe took.",
    );
    for p in &report.probes {
        for s in PROBE_STATUSES {
            pstatus.set(
                &[("probe", &p.name), ("status", s)],
                if p.status == *s { 1.0 } else { 0.0 },
            );
        }
        if !PROBE_STATUSES.contains(&p.status.as_str()) {
            pstatus.set(&[("probe", &p.name), ("status", &p.status)], 1.0);
        }
        pdur.set(&[("probe", &p.name)], p.duration_ms as f64 / 1000.0);
    }
    fams.push(pstatus);
    fams.push(pdur);

    fams.extend(gpu_families(report));

    let mut out = String::new();
    for f in &fams {
        f.write(&mut out);
    }
    out
}

/// Per-GPU facts an operator graphs: the link (after the walk past an
/// on-card switch: derive/link.rs), BAR vs VRAM, the driver.
fn gpu_families(report: &Report) -> Vec<Family> {
    let mut info = Family::new(
        "rigdoctor_gpu_info",
        "gauge",
        "One series per GPU on the PCI bus; always 1. link_at is the PCI address whose link is judged (an on-card switch's upstream port for Intel Arc).",
    );
    let mut width = Family::new(
        "rigdoctor_gpu_pcie_link_width",
        "gauge",
        "Negotiated PCIe link width (lanes) of the GPU's effective link.",
    );
    let mut max_width = Family::new(
        "rigdoctor_gpu_pcie_link_max_width",
        "gauge",
        "The widest PCIe link (lanes) the card side of the effective link supports.",
    );
    let mut speed = Family::new(
        "rigdoctor_gpu_pcie_link_speed_transfers_per_second",
        "gauge",
        "Negotiated PCIe link speed of the effective link (NVIDIA and AMD lower it at idle to save power).",
    );
    let mut max_speed = Family::new(
        "rigdoctor_gpu_pcie_link_max_speed_transfers_per_second",
        "gauge",
        "The fastest PCIe link speed the card side of the effective link supports.",
    );
    let mut vram = Family::new("rigdoctor_gpu_vram_bytes", "gauge", "The GPU's memory.");
    let mut bar = Family::new(
        "rigdoctor_gpu_bar_bytes",
        "gauge",
        "The GPU's largest PCI BAR: as large as the VRAM when Resizable BAR is on.",
    );
    let mut rebar = Family::new(
        "rigdoctor_gpu_resizable_bar",
        "gauge",
        "1 when Resizable BAR is on (the BAR covers the VRAM), 0 when off; absent when it cannot be told.",
    );
    let nv_driver = report.facts.nvidia.driver_version.as_deref().unwrap_or("");
    for g in report.facts.gpus.iter().filter(|g| g.compute) {
        let gpu = g.pci.as_str();
        let driver_version = if g.vendor == "nvidia" { nv_driver } else { "" };
        let (w, mw, s, ms, at) = match &g.effective_link {
            Some(e) => (
                e.width,
                e.max_width,
                e.speed_gts,
                e.max_speed_gts,
                e.at.as_str(),
            ),
            None => (
                g.link.width,
                g.link.max_width,
                g.link.speed_gts,
                g.link.max_speed_gts,
                gpu,
            ),
        };
        info.set(
            &[
                ("gpu", gpu),
                ("vendor", &g.vendor),
                ("device_id", &g.device_id),
                ("name", &g.name),
                ("driver", g.driver.as_deref().unwrap_or("")),
                ("driver_version", driver_version),
                ("link_at", at),
            ],
            1.0,
        );
        let l = [("gpu", gpu)];
        if let Some(w) = w {
            width.set(&l, w as f64);
        }
        if let Some(w) = mw {
            max_width.set(&l, w as f64);
        }
        if let Some(s) = s {
            speed.set(&l, gts_to_transfers(s));
        }
        if let Some(s) = ms {
            max_speed.set(&l, gts_to_transfers(s));
        }
        if let Some(v) = g.vram_bytes {
            vram.set(&l, v as f64);
        }
        if let Some(b) = g.largest_bar_bytes {
            bar.set(&l, b as f64);
        }
        if let Some(r) = g.rebar {
            rebar.set(&l, if r { 1.0 } else { 0.0 });
        }
    }
    vec![info, width, max_width, speed, max_speed, vram, bar, rebar]
}

/// Why the textfile could not be written (exit 2: rigdoctor failed its job).
#[derive(Debug)]
pub struct TextfileError(pub String);

impl std::fmt::Display for TextfileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Write `text` to `dir/rigdoctor.prom` so that a reader never sees half a
/// file: a temporary file in the same directory (same filesystem, so the
/// rename is atomic; its name does not end in `.prom`, so node_exporter
/// skips it), flushed to disk, then renamed over the old one. Readable by
/// all (0644): node_exporter runs as its own user.
pub fn write_textfile(dir: &Path, text: &str) -> Result<PathBuf, TextfileError> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let target = dir.join(TEXTFILE_NAME);
    let tmp = dir.join(format!(".{TEXTFILE_NAME}.{}.tmp", std::process::id()));
    let fail = |what: &str, e: std::io::Error| {
        TextfileError(format!("cannot {what} {}: {e}", tmp.display()))
    };
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&tmp)
        .map_err(|e| fail("create", e))?;
    // Explicitly, because `mode` is filtered by the umask (a 077 umask
    // would hide the file from node_exporter).
    let written = f
        .set_permissions(std::fs::Permissions::from_mode(0o644))
        .and_then(|_| f.write_all(text.as_bytes()))
        .and_then(|_| f.sync_all())
        .map_err(|e| fail("write", e));
    drop(f);
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    if let Err(e) = std::fs::rename(&tmp, &target) {
        let _ = std::fs::remove_file(&tmp);
        return Err(TextfileError(format!(
            "cannot rename {} to {}: {e}",
            tmp.display(),
            target.display()
        )));
    }
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label(r#"a\b"c"#), r#"a\\b\"c"#);
        assert_eq!(escape_label("two\nlines"), "two\\nlines");
        assert_eq!(escape_label("esc\u{1b}[31m"), "esc\u{FFFD}[31m");
        assert_eq!(escape_label("Arc™ A770"), "Arc™ A770");
    }

    #[test]
    fn numbers_read_as_go_parses_them() {
        assert_eq!(number(16.0), "16");
        assert_eq!(number(0.125), "0.125");
        assert_eq!(number(1.6e10), "16000000000");
        assert_eq!(number(f64::NAN), "NaN");
    }

    #[test]
    fn repeated_label_sets_add_up_instead_of_repeating() {
        let mut f = Family::new("x_total", "gauge", "h");
        f.add(&[("id", "A")], 1.0);
        f.add(&[("id", "B")], 1.0);
        f.add(&[("id", "A")], 1.0);
        let mut out = String::new();
        f.write(&mut out);
        assert_eq!(
            out,
            "# HELP x_total h\n# TYPE x_total gauge\nx_total{id=\"A\"} 2\nx_total{id=\"B\"} 1\n"
        );
    }

    #[test]
    fn the_textfile_replaces_the_old_one_and_leaves_no_temp_file() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join(TEXTFILE_NAME), "old").unwrap();
        let p = write_textfile(d.path(), "new\n").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "new\n");
        let names: Vec<_> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, vec![TEXTFILE_NAME.to_string()]);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & 0o444, 0o444, "readable by node_exporter's user");
        assert!(write_textfile(&d.path().join("absent"), "x").is_err());
    }
}
