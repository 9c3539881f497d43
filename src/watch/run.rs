//! Running a watch: live (`--pid`, `-- CMD`) or from a trace (`--replay`).
//! Owns the output (stderr for `-- CMD`, whose program owns stdout; stdout
//! for `--pid` / `--replay`; or `--output`; human or JSON Lines), the trace
//! (`--record`), the final rules evaluation and the exit code.
//!
//! Threads for `-- CMD`: the main thread waits for the program; the sampler
//! runs on its own thread, so a failure there (a bug, a panic) leaves the
//! program running untouched and rigdoctor still exits with its status.
//!
//! Exit codes: the program's status (or 128+signal) by default, 0 for
//! `--pid` and `--replay`; 1 when `--fail-on` is met; 2 when rigdoctor
//! cannot do its job (bad pid, unreadable trace or thresholds, unwritable
//! output); 127/126 when the command cannot be found/started (as `env`).

use std::fs::File;
use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::child::{self, Term, TermState};
use super::classify::{Config, Thresholds};
use super::display;
use super::facts::Facts;
use super::lines;
use super::proc::ProcTracker;
use super::reader::Reader;
use super::sample::{GpuInfo, Header, LogEvent, Sample, SourceStatus, TRACE_FORMAT};
use super::sampler::Sampler;
use super::watcher::{Change, Watcher};
use super::{DEFAULT_INTERVAL, DEFAULT_WINDOW, FailOn, WatchPlan, WatchTarget};
use crate::cli::{ColorChoice, Format};
use crate::diagnose::{self, Evaluation, Severity, rules};
use crate::render::human::Style;
use crate::source::live::Live;

const EXIT_PROBLEM: u8 = 1;
const EXIT_USAGE: u8 = 2;

fn fail(msg: impl std::fmt::Display) -> u8 {
    // A message can quote a trace file, which is untrusted input.
    eprintln!(
        "rigdoctor: {}",
        crate::text::escape_controls(&msg.to_string())
    );
    EXIT_USAGE
}

/// Where rigdoctor's own lines go.
struct Sink {
    out: Box<dyn Write + Send>,
    /// The sink is our stderr (shared with the program's stderr).
    is_stderr: bool,
    /// Draw the status line (human format, stderr is a terminal).
    status: bool,
    format: Format,
    style: Style,
    term: Term,
    width: usize,
}

impl Sink {
    /// Write a whole line (or block) of our own.
    fn write(&mut self, text: &str) {
        if self.is_stderr {
            if let Ok(mut t) = self.term.lock() {
                let mut prefix: Vec<u8> = Vec::new();
                if t.status_visible {
                    prefix.extend_from_slice(child::CLEAR);
                    t.status_visible = false;
                }
                if t.midline_err {
                    // The program left a line open; start ours on a fresh one.
                    prefix.push(b'\n');
                    t.midline_err = false;
                }
                let _ = self.out.write_all(&prefix);
                let _ = self.out.write_all(text.as_bytes());
                let _ = self.out.flush();
                return;
            }
        }
        let _ = self.out.write_all(text.as_bytes());
        let _ = self.out.flush();
    }

    fn json(&mut self, v: &impl serde::Serialize) {
        if self.format == Format::Json {
            let line =
                serde_json::to_string(v).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
            self.write(&format!("{line}\n"));
        }
    }

    fn draw_status(&mut self, w: &Watcher) {
        if !self.status {
            return;
        }
        let line = display::status_line(w, self.width.saturating_sub(1));
        if let Ok(mut t) = self.term.lock() {
            if t.midline_err || t.midline_out {
                return;
            }
            let _ = self.out.write_all(child::CLEAR);
            let _ = self.out.write_all(line.as_bytes());
            let _ = self.out.flush();
            t.status_visible = true;
        }
    }

    fn clear_status(&mut self) {
        if let Ok(mut t) = self.term.lock() {
            if t.status_visible {
                let _ = self.out.write_all(child::CLEAR);
                let _ = self.out.flush();
                t.status_visible = false;
            }
        }
    }

    fn change(&mut self, ch: &Change) {
        match self.format {
            Format::Json => self.json(&display::change_json(ch)),
            Format::Human => {
                let line = display::change_line(ch, self.style);
                self.write(&line);
            }
        }
    }
}

/// Columns of the terminal our lines go to (`COLUMNS`, else 80 when it is not one).
fn out_width(is_stderr: bool) -> usize {
    use crate::render::human::terminal_width;
    if is_stderr {
        terminal_width(std::io::stderr())
    } else {
        terminal_width(std::io::stdout())
    }
}

/// `--record FILE`: the trace, one JSON object per line, flushed each sample.
struct Recorder(Option<File>);

impl Recorder {
    fn line(&mut self, v: &Value) {
        if let Some(f) = &mut self.0 {
            let _ = writeln!(f, "{v}");
        }
    }
    fn flush(&mut self) {
        if let Some(f) = &mut self.0 {
            let _ = f.flush();
        }
    }
}

/// A trace line (lines.rs): the body's fields, then `type`.
fn tagged<T: serde::Serialize>(kind: &str, v: &T) -> Value {
    serde_json::to_value(lines::Tagged { body: v, kind }).unwrap_or(Value::Null)
}

/// The first line: the header, `type` and `schema`.
fn start_line(header: &Header) -> Value {
    serde_json::to_value(lines::StartLine {
        header,
        kind: lines::StartTag::Tag,
        schema: lines::Schema::WatchV1,
    })
    .unwrap_or(Value::Null)
}

fn load_thresholds(plan: &WatchPlan) -> Result<Option<Thresholds>, String> {
    let Some(p) = &plan.thresholds else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(p)
        .map_err(|e| format!("cannot read --thresholds {}: {e}", p.display()))?;
    let t: Thresholds =
        toml::from_str(&text).map_err(|e| format!("--thresholds {}: {e}", p.display()))?;
    t.validate()
        .map_err(|e| format!("--thresholds {}: {e}", p.display()))?;
    Ok(Some(t))
}

/// The watch rules: `rules/watch.toml` and the site's watch-area rules.
fn watch_rules(plan: &WatchPlan) -> Result<Vec<rules::Rule>, String> {
    let mut r = rules::load_builtin_where(plan.rules.as_deref(), |o| o == "rules/watch.toml")
        .map_err(|e| format!("cannot load rules: {e}"))?;
    r.retain(|r| r.spec.area == "watch");
    Ok(r)
}

fn open_sink(plan: &WatchPlan, term: Term) -> Result<Sink, String> {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let (out, is_stderr, tty): (Box<dyn Write + Send>, bool, bool) = match &plan.output {
        Some(p) => {
            let f = File::create(p)
                .map_err(|e| format!("cannot write --output {}: {e}", p.display()))?;
            (Box::new(f), false, false)
        }
        // A started program owns stdout: our lines go to stderr. With --pid
        // and --replay stdout is free, and a report belongs there (like `check`).
        None if matches!(plan.target, WatchTarget::Command(_)) => (
            Box::new(std::io::stderr()),
            true,
            std::io::stderr().is_terminal(),
        ),
        None => (
            Box::new(std::io::stdout()),
            false,
            std::io::stdout().is_terminal(),
        ),
    };
    let color = match plan.color {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => tty && !no_color && plan.format == Format::Human,
    };
    Ok(Sink {
        out,
        is_stderr,
        status: tty && plan.format == Format::Human,
        format: plan.format,
        style: Style {
            color,
            width: out_width(is_stderr),
        },
        term,
        width: out_width(is_stderr),
    })
}

/// What the end of a watch decided.
struct Outcome {
    fallback: bool,
    worst: Option<Severity>,
}

impl Outcome {
    fn fails(&self, f: FailOn) -> bool {
        match f {
            FailOn::Fallback => self.fallback,
            FailOn::Warn => self.worst >= Some(Severity::Warn),
            FailOn::Error => self.worst >= Some(Severity::Error),
        }
    }
}

fn finish(w: &Watcher, rules: &[rules::Rule], sink: &mut Sink, exit: Option<i32>) -> Outcome {
    let typed = Facts { watch: w.facts() };
    let facts = serde_json::to_value(&typed).unwrap_or(Value::Null);
    let ev: Evaluation = diagnose::evaluate_where(rules, &facts, |r| r.spec.area == "watch");
    sink.clear_status();
    match sink.format {
        Format::Json => sink.json(&display::summary_json(w, &ev, &typed, exit)),
        Format::Human => {
            let text = display::summary(w, &ev, sink.style);
            sink.write(&text);
        }
    }
    Outcome {
        fallback: facts["watch"]["fallback"].as_bool().unwrap_or(false),
        worst: ev.diagnoses.iter().map(|d| d.severity).max(),
    }
}

pub fn run(plan: WatchPlan) -> u8 {
    let thresholds = match load_thresholds(&plan) {
        Ok(t) => t,
        Err(e) => return fail(e),
    };
    let rules = match watch_rules(&plan) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    match plan.target.clone() {
        WatchTarget::Replay(path) => replay(&plan, &path, thresholds, &rules),
        WatchTarget::Pid(pid) => live_pid(&plan, pid, thresholds, rules),
        WatchTarget::Command(argv) => live_command(&plan, &argv, thresholds, rules),
    }
}

// ---------------------------------------------------------------- replay

fn replay(
    plan: &WatchPlan,
    path: &std::path::Path,
    thresholds: Option<Thresholds>,
    rules: &[rules::Rule],
) -> u8 {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) => return fail(format!("cannot read --replay {}: {e}", path.display())),
    };
    let mut lines = BufReader::new(file).lines();
    let mut header_lines = 0usize;
    let header: Header = loop {
        header_lines += 1;
        match lines.next() {
            Some(Ok(l)) if l.trim().is_empty() => continue,
            Some(Ok(l)) => match serde_json::from_str::<Value>(&l) {
                Ok(v) if v["type"] == "start" => match serde_json::from_value(v) {
                    Ok(h) => break h,
                    Err(e) => return fail(format!("{}: bad start line: {e}", path.display())),
                },
                _ => {
                    return fail(format!(
                        "{} is not a rigdoctor watch trace (its first line is not a start line)",
                        path.display()
                    ));
                }
            },
            Some(Err(e)) => return fail(format!("cannot read {}: {e}", path.display())),
            None => return fail(format!("{} is empty", path.display())),
        }
    };
    if !header.format.starts_with("rigdoctor-watch-trace/") {
        return fail(format!(
            "{}: unknown trace format {:?}",
            path.display(),
            header.format
        ));
    }
    let th = thresholds
        .or_else(|| header.thresholds.clone())
        .unwrap_or_default();
    let cfg = Config {
        interval: plan.interval.unwrap_or(header.interval).max(1e-3),
        window: plan.window.unwrap_or(header.window).max(1e-3),
        cores: header.cores.max(1.0),
        th,
    };
    let term: Term = Arc::new(Mutex::new(TermState::default()));
    let mut sink = match open_sink(plan, term) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    sink.status = false;
    let mut header = header;
    header.interval = cfg.interval;
    header.window = cfg.window;
    header.thresholds = Some(cfg.th.clone());
    sink.json(&start_line(&header));
    let mut w = Watcher::new(header, cfg);
    let mut bad = 0usize;
    let mut last_t = 0.0f64;
    for (n, line) in lines.enumerate() {
        let Ok(line) = line else {
            bad += 1;
            continue;
        };
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(_) => {
                bad += 1;
                continue;
            }
        };
        match v["type"].as_str() {
            Some("sample") => match serde_json::from_value::<Sample>(v) {
                Ok(s) => {
                    // Issue 8, item 9: time is what every total is made of; a
                    // sample before 0 or before the one ahead of it is a
                    // broken trace, not a run (a negative last time once made
                    // the summary ask for 225 GB).
                    if let Err(why) = sample_time_ok(s.t, last_t) {
                        return fail(format!(
                            "{}, line {}: {why}; not a trace rigdoctor can replay",
                            path.display(),
                            header_lines + n + 1
                        ));
                    }
                    last_t = s.t;
                    if let Some(ch) = w.push(s) {
                        sink.change(&ch);
                    }
                }
                Err(_) => bad += 1,
            },
            Some("gpu") => match serde_json::from_value::<GpuInfo>(v) {
                Ok(g) => w.add_gpu(g),
                Err(_) => bad += 1,
            },
            Some("source") => match serde_json::from_value::<SourceStatus>(v) {
                Ok(s) => w.set_source(s),
                Err(_) => bad += 1,
            },
            // Our own output lines (verdict, summary) replay as nothing.
            _ => {}
        }
    }
    if bad > 0 {
        eprintln!(
            "rigdoctor: {} line(s) of {} could not be read and were skipped",
            bad,
            path.display()
        );
    }
    let out = finish(&w, rules, &mut sink, None);
    match plan.fail_on {
        Some(f) if out.fails(f) => EXIT_PROBLEM,
        _ => 0,
    }
}

/// A recorded sample time is seconds since the start, never decreasing
/// (the recorder reads a monotonic clock). Equal times are allowed.
fn sample_time_ok(t: f64, previous: f64) -> Result<(), String> {
    let secs = |x: f64| {
        if x.abs() < 1e9 {
            format!("{x:.3} s")
        } else {
            format!("{x:e} s")
        }
    };
    if !t.is_finite() || t < 0.0 {
        return Err(format!("the sample time {} is negative", secs(t)));
    }
    if t < previous {
        return Err(format!(
            "the sample time {} is before the previous sample's {}",
            secs(t),
            secs(previous)
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------- live

/// Messages to the sampler thread.
enum Stop {
    /// The program ended with this exit code (or the watch was interrupted: None).
    Ended(Option<i32>),
}

struct LiveCtx {
    live: Live,
    pid: i32,
    target: String,
    interval: f64,
    window: f64,
    duration: Option<f64>,
    th: Thresholds,
    engine_log: bool,
    /// rigdoctor started the program: when it ends, its exit code follows
    /// on the stop channel (after its pipes drained).
    exit_follows: bool,
}

fn cores() -> f64 {
    std::thread::available_parallelism()
        .map(|n| n.get() as f64)
        .unwrap_or(1.0)
}

/// The sampler loop: sample, classify, print, record; until told to stop,
/// the process ends, or `--duration` is up. Returns the outcome.
fn watch_loop(
    ctx: LiveCtx,
    mut sink: Sink,
    mut rec: Recorder,
    rules: Vec<rules::Rule>,
    logs: Receiver<LogEvent>,
    stop: Receiver<Stop>,
) -> Outcome {
    let start = Instant::now();
    let mut sampler = Sampler::new(ctx.live.clone(), ctx.pid, ctx.interval, start);
    let mut sources = sampler.sources();
    sources.push(SourceStatus {
        name: "engine-log".into(),
        status: if ctx.engine_log { "ok" } else { "off" }.into(),
        detail: if ctx.engine_log {
            "reading the program's stdout/stderr on the way through".into()
        } else {
            "rigdoctor did not start the program, so it cannot read its output (use `rigdoctor watch -- CMD`)".into()
        },
    });
    let header = Header {
        format: TRACE_FORMAT.into(),
        rigdoctor: env!("CARGO_PKG_VERSION").into(),
        target: ctx.target.clone(),
        interval: ctx.interval,
        window: ctx.window,
        cores: cores(),
        gpus: sampler.gpus().to_vec(),
        sources,
        thresholds: Some(ctx.th.clone()),
    };
    let start_line = start_line(&header);
    rec.line(&start_line);
    sink.json(&start_line);
    let cfg = Config {
        interval: ctx.interval,
        window: ctx.window,
        cores: header.cores,
        th: ctx.th.clone(),
    };
    let mut w = Watcher::new(header, cfg);
    let mut exit: Option<i32> = None;
    let mut k: u64 = 0;
    let mut ended = false;
    loop {
        let (mut s, alive) = sampler.sample();
        while let Ok(e) = logs.try_recv() {
            if s.log.len() < 500 {
                s.log.push(e);
            }
        }
        for g in std::mem::take(&mut sampler.new_gpus) {
            let v = tagged("gpu", &g);
            rec.line(&v);
            sink.json(&v);
            w.add_gpu(g);
        }
        for src in std::mem::take(&mut sampler.changed_sources) {
            let v = tagged("source", &src);
            rec.line(&v);
            sink.json(&v);
            w.set_source(src);
        }
        let s = s.rounded();
        let v = tagged("sample", &s);
        rec.line(&v);
        rec.flush();
        sink.json(&v);
        if let Some(ch) = w.push(s) {
            sink.change(&ch);
        }
        sink.draw_status(&w);
        if !alive {
            ended = true;
            break;
        }
        if ctx
            .duration
            .is_some_and(|d| start.elapsed().as_secs_f64() >= d)
        {
            break;
        }
        k += 1;
        let mut next = start + Duration::from_secs_f64(ctx.interval * k as f64);
        let now = Instant::now();
        if next < now {
            // We fell behind (suspended, or a slow read): skip, do not burst.
            k = (now.duration_since(start).as_secs_f64() / ctx.interval).ceil() as u64;
            next = start + Duration::from_secs_f64(ctx.interval * k as f64);
        }
        match stop.recv_timeout(next.saturating_duration_since(Instant::now())) {
            Ok(Stop::Ended(code)) => {
                exit = code;
                break;
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    // The sampler saw the program gone before its parent reaped it: the
    // exit code (and the end of its output: llama.cpp prints its timings as
    // it exits) is on the way. Waiting for it here, not peeking, is what
    // keeps the summary's `exit` from being null when the program exited.
    // Bounded: the main thread sends it once the pipes drain (at most
    // 500 ms after the exit), so 10 s only guards against a bug.
    if ended && exit.is_none() && ctx.exit_follows {
        if let Ok(Stop::Ended(code)) = stop.recv_timeout(Duration::from_secs(10)) {
            exit = code;
        }
    }
    // The program's last words, read after the last sample.
    let mut tail: Vec<LogEvent> = Vec::new();
    while let Ok(e) = logs.try_recv() {
        if tail.len() < 500 {
            tail.push(e);
        }
    }
    if !tail.is_empty() {
        let s = Sample {
            t: start.elapsed().as_secs_f64(),
            proc: None,
            gpus: Vec::new(),
            log: tail,
            ..Sample::default()
        }
        .rounded();
        let v = tagged("sample", &s);
        rec.line(&v);
        sink.json(&v);
        w.push(s);
    }
    rec.flush();
    drop(sampler); // stops nvidia-smi / xpu-smi
    if exit.is_none() {
        if let Ok(Stop::Ended(code)) = stop.try_recv() {
            exit = code;
        }
    }
    finish(&w, &rules, &mut sink, exit)
}

struct Prepared {
    sink: Sink,
    rec: Recorder,
    interval: f64,
    window: f64,
    th: Thresholds,
    term: Term,
}

fn prepare(plan: &WatchPlan, thresholds: Option<Thresholds>) -> Result<Prepared, String> {
    let term: Term = Arc::new(Mutex::new(TermState::default()));
    let sink = open_sink(plan, term.clone())?;
    let rec = match &plan.record {
        Some(p) => {
            Recorder(Some(File::create(p).map_err(|e| {
                format!("cannot write --record {}: {e}", p.display())
            })?))
        }
        None => Recorder(None),
    };
    Ok(Prepared {
        sink,
        rec,
        interval: plan.interval.unwrap_or(DEFAULT_INTERVAL),
        window: plan.window.unwrap_or(DEFAULT_WINDOW),
        th: thresholds.unwrap_or_default(),
        term,
    })
}

fn live_pid(
    plan: &WatchPlan,
    pid: i32,
    thresholds: Option<Thresholds>,
    rules: Vec<rules::Rule>,
) -> u8 {
    // Signals first, before any thread exists: Ctrl-C ends the watch cleanly.
    let sfd = child::take_signals();
    let live = Live::new(plan.sysfs.clone(), plan.procfs.clone());
    let comm = match ProcTracker::root_stat(&mut Reader::new(live.clone()), pid) {
        Ok(st) if st.state != 'Z' => st.comm,
        _ => {
            return fail(format!(
                "no process {pid} to watch (is it running, under this PID namespace?)"
            ));
        }
    };
    let p = match prepare(plan, thresholds) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    let (stop_tx, stop_rx) = mpsc::channel();
    match sfd {
        Ok(sfd) => {
            let (sig_tx, sig_rx) = mpsc::channel();
            child::signal_thread(sfd, sig_tx);
            let stop_tx = stop_tx.clone();
            thread::spawn(move || {
                // First signal: stop watching and print the summary. A second
                // one, or a watcher stuck in a read for 10 s, ends rigdoctor now.
                let Ok(first) = sig_rx.recv() else { return };
                let _ = stop_tx.send(Stop::Ended(None));
                let code = 128 + first.signo;
                match sig_rx.recv_timeout(Duration::from_secs(10)) {
                    Ok(_) => eprintln!("rigdoctor: interrupted again; leaving without a summary"),
                    Err(_) => eprintln!(
                        "rigdoctor: the watcher did not stop within 10 s (a hung read?); leaving"
                    ),
                }
                std::process::exit(code);
            });
        }
        Err(e) => eprintln!(
            "rigdoctor: cannot take signals ({e}); Ctrl-C ends rigdoctor without a summary"
        ),
    }
    let (_log_tx, log_rx) = mpsc::channel();
    let ctx = LiveCtx {
        live,
        pid,
        target: format!("pid {pid} ({comm})"),
        interval: p.interval,
        window: p.window,
        duration: plan.duration,
        th: p.th,
        engine_log: false,
        exit_follows: false,
    };
    let _keep = stop_tx;
    let out = match thread::Builder::new()
        .name("watch".into())
        .spawn(move || watch_loop(ctx, p.sink, p.rec, rules, log_rx, stop_rx))
    {
        Ok(h) => match h.join() {
            Ok(o) => o,
            Err(_) => return fail("the watcher failed (a rigdoctor bug; please report it)"),
        },
        Err(e) => return fail(format!("cannot start the watcher: {e}")),
    };
    match plan.fail_on {
        Some(f) if out.fails(f) => EXIT_PROBLEM,
        _ => 0,
    }
}

/// The command as the user typed it (quoted where a shell needs it, so it
/// pastes back), cut at 120 characters.
fn describe(argv: &[std::ffi::OsString]) -> String {
    let s = argv
        .iter()
        .map(|a| crate::text::shell_quote(&a.to_string_lossy()).into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    match s.char_indices().nth(120) {
        Some((i, _)) => format!("`{}…`", &s[..i]),
        None => format!("`{s}`"),
    }
}

fn live_command(
    plan: &WatchPlan,
    argv: &[std::ffi::OsString],
    thresholds: Option<Thresholds>,
    rules: Vec<rules::Rule>,
) -> u8 {
    // Everything that can fail as a usage error fails before the program starts.
    let p = match prepare(plan, thresholds) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    let sfd = child::take_signals();
    let (log_tx, log_rx) = mpsc::channel();
    let term_out = p.sink.status && std::io::stdout().is_terminal();
    let started = match child::start(argv, p.term.clone(), term_out, log_tx) {
        Ok(s) => s,
        Err(e) => {
            let prog = argv
                .first()
                .map(|a| a.to_string_lossy().into_owned())
                .unwrap_or_default();
            eprintln!("rigdoctor: cannot run {prog}: {e}");
            // What `env` and shells answer: 127 not found, 126 found but not runnable.
            return if e.kind() == std::io::ErrorKind::NotFound {
                127
            } else {
                126
            };
        }
    };
    let pid = started.pid;
    match sfd {
        Ok(sfd) => {
            let (sig_tx, sig_rx) = mpsc::channel::<child::Received>();
            child::signal_thread(sfd, sig_tx);
            let done = started.done.clone();
            let term = p.term.clone();
            thread::spawn(move || {
                while let Ok(r) = sig_rx.recv() {
                    if let Some(why) = child::forward(pid, r, &done) {
                        // On stderr, after the program's open line if any.
                        let mut e = std::io::stderr().lock();
                        if let Ok(mut t) = term.lock() {
                            if t.status_visible {
                                let _ = e.write_all(child::CLEAR);
                                t.status_visible = false;
                            }
                            if t.midline_err {
                                let _ = e.write_all(b"\n");
                                t.midline_err = false;
                            }
                        }
                        let _ = writeln!(e, "rigdoctor: signal {} not forwarded: {why}", r.signo);
                    }
                }
            });
        }
        Err(e) => eprintln!(
            "rigdoctor: cannot take signals ({e}); they reach only rigdoctor's process group"
        ),
    }
    let (stop_tx, stop_rx) = mpsc::channel();
    let ctx = LiveCtx {
        live: Live::new(plan.sysfs.clone(), plan.procfs.clone()),
        pid,
        target: describe(argv),
        interval: p.interval,
        window: p.window,
        duration: plan.duration,
        th: p.th,
        engine_log: true,
        exit_follows: true,
    };
    let (sink, rec) = (p.sink, p.rec);
    let (out_tx, out_rx) = mpsc::channel();
    let watcher = thread::Builder::new().name("watch".into()).spawn(move || {
        let _ = out_tx.send(watch_loop(ctx, sink, rec, rules, log_rx, stop_rx));
    });
    if let Err(e) = &watcher {
        eprintln!("rigdoctor: cannot start the watcher ({e}); the program runs unwatched");
    }
    // The program's end decides ours.
    let code = match started.exited.recv() {
        Ok(st) => child::exit_code(&st),
        Err(_) => 1,
    };
    // Let the pipes drain (both, or a grace period: a daemon the program
    // left behind may hold them open forever).
    let deadline = Instant::now() + Duration::from_millis(500);
    for _ in 0..2 {
        if started
            .drained
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .is_err()
        {
            break;
        }
    }
    let _ = stop_tx.send(Stop::Ended(Some(code)));
    // A watcher stuck in a read (a GPU that fell off the bus can hang sysfs)
    // must not keep a finished program's caller waiting.
    let outcome = match watcher {
        Ok(_) => match out_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(o) => Some(o),
            Err(RecvTimeoutError::Timeout) => {
                eprintln!(
                    "rigdoctor: the watcher did not finish within 10 s (a hung read?); exiting with the program's status"
                );
                None
            }
            Err(RecvTimeoutError::Disconnected) => {
                eprintln!(
                    "rigdoctor: the watcher failed (a rigdoctor bug; please report it); the program ran untouched"
                );
                None
            }
        },
        Err(_) => None,
    };
    match (plan.fail_on, outcome) {
        (Some(f), Some(o)) if o.fails(f) => EXIT_PROBLEM,
        _ => u8::try_from(code.clamp(0, 255)).unwrap_or(1),
    }
}
