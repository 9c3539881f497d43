//! The Source seam: the only door to the outside world.
//!
//! Every probe reads files, lists directories, reads symbolic links, reads
//! allowlisted environment variables and runs commands through a [`Source`].
//! There are three faces:
//! - [`live::Live`]: the real machine (`--sysfs`/`--procfs` move `/sys` and `/proc`);
//! - [`record::Record`]: live, and everything returned is also written into a
//!   capture directory (docs/capture-format.md);
//! - [`replay::Replay`]: answers every call from a capture directory and nothing else.
//!
//! Because a capture is "live + record" and replay answers from the record,
//! `check` on a machine and `check --replay` of its capture see the same bytes.
//! This module owns no opinions about what is read; probes own that.

pub mod archive;
pub mod command;
pub mod confined;
pub mod devfs;
pub mod live;
pub mod record;
pub mod redact;
pub mod replay;

use std::time::{Duration, Instant};

/// The format string written into `capture.json`.
pub const CAPTURE_FORMAT: &str = "rigdoctor-capture/1";

/// Upper bound for one file read. sysfs/procfs files are tiny; metadata files
/// of Python distributions can be large but the fields we need come first.
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// Upper bound for each of stdout/stderr of a probe command.
pub const MAX_OUTPUT_BYTES: usize = 8 * 1024 * 1024;

/// What reading one file gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Read {
    Ok(Vec<u8>),
    Missing,
    Denied,
    Failed(String),
}

impl Read {
    /// The content as (lossy) UTF-8 text, if the read succeeded.
    pub fn text(&self) -> Option<String> {
        match self {
            Read::Ok(b) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        }
    }

    /// The content trimmed of surrounding whitespace: the shape of a sysfs attribute.
    pub fn trimmed(&self) -> Option<String> {
        self.text().map(|s| s.trim().to_string())
    }

    pub fn is_denied(&self) -> bool {
        matches!(self, Read::Denied)
    }
}

/// What listing one directory gave. Names are sorted so that every face
/// returns them in the same order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listing {
    Ok(Vec<String>),
    Missing,
    Denied,
    Failed(String),
}

impl Listing {
    pub fn names(self) -> Vec<String> {
        match self {
            Listing::Ok(v) => v,
            _ => Vec::new(),
        }
    }
}

/// One probe command: a fixed name (design.md, "Probe command names") and its argv.
#[derive(Debug, Clone)]
pub struct CmdSpec {
    /// The fixed capture name, e.g. `sycl-ls`, `nvidia-smi-q`.
    pub name: String,
    /// argv; `argv[0]` is resolved on PATH with `which`. Never a shell.
    pub argv: Vec<String>,
    /// Variables removed from the child's environment (e.g. the selector
    /// variables, so that sycl-ls lists every device).
    pub env_remove: Vec<String>,
    pub timeout: Duration,
}

impl CmdSpec {
    pub fn new(name: &str, argv: &[&str], timeout: Duration) -> CmdSpec {
        CmdSpec {
            name: name.to_string(),
            argv: argv.iter().map(|s| s.to_string()).collect(),
            env_remove: Vec::new(),
            timeout,
        }
    }
}

/// The bound on a whole run (`--deadline SECS`): no probe command runs past
/// it. A command still running at `at` is killed and reported as timed out; a
/// command that would start after it is not started.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Deadline {
    pub at: Instant,
    /// The `--deadline` value, for the words of the report.
    pub secs: f64,
}

impl Deadline {
    /// `secs` from `start` (the moment the run began).
    pub fn after(start: Instant, secs: f64) -> Deadline {
        Deadline {
            at: start + Duration::from_secs_f64(secs.max(0.0)),
            secs,
        }
    }

    /// How long a command started now may run: its own timeout, cut to what
    /// is left of the run.
    pub fn clamp(&self, timeout: Duration) -> Duration {
        timeout.min(self.at.saturating_duration_since(Instant::now()))
    }

    pub fn passed(&self, now: Instant) -> bool {
        now >= self.at
    }
}

/// How a probe command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CmdStatus {
    Exit(i32),
    Signal(i32),
    /// Not installed (not on PATH), or not recorded in a capture.
    Missing,
    /// Killed after the timeout.
    Timeout,
    /// Could not be started (permission denied, exec format error, ...).
    Failed(String),
}

impl CmdStatus {
    /// The text stored in `cmd/<name>.status`.
    pub fn to_record(&self) -> String {
        match self {
            CmdStatus::Exit(c) => c.to_string(),
            CmdStatus::Signal(s) => format!("signal {s}"),
            CmdStatus::Missing => "missing".into(),
            CmdStatus::Timeout => "timeout".into(),
            CmdStatus::Failed(m) => format!("failed: {m}"),
        }
    }

    /// Parse the text of `cmd/<name>.status`. Anything unreadable is `Failed`.
    pub fn from_record(s: &str) -> CmdStatus {
        let s = s.trim();
        if let Ok(c) = s.parse::<i32>() {
            return CmdStatus::Exit(c);
        }
        match s {
            "missing" => CmdStatus::Missing,
            "timeout" => CmdStatus::Timeout,
            _ => {
                if let Some(n) = s.strip_prefix("signal ") {
                    if let Ok(n) = n.trim().parse() {
                        return CmdStatus::Signal(n);
                    }
                }
                if let Some(m) = s.strip_prefix("failed:") {
                    return CmdStatus::Failed(m.trim().to_string());
                }
                CmdStatus::Failed(format!("unreadable status {s:?}"))
            }
        }
    }
}

/// The result of one probe command.
#[derive(Debug, Clone)]
pub struct CmdOutput {
    pub status: CmdStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub duration_ms: u64,
    /// stdout or stderr went over [`MAX_OUTPUT_BYTES`] and was cut.
    pub truncated: bool,
}

impl CmdOutput {
    pub fn with_status(status: CmdStatus) -> CmdOutput {
        CmdOutput {
            status,
            stdout: Vec::new(),
            stderr: Vec::new(),
            duration_ms: 0,
            truncated: false,
        }
    }

    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// Which face a source shows; reported in the output so a reader knows
/// whether the page describes this machine or a capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Live,
    Record,
    Replay,
}

/// A predicate over environment variable names: the allowlist.
pub type EnvFilter<'a> = &'a (dyn Fn(&str) -> bool + Sync);

/// A predicate over the bytes of a file: does it hold what it should?
pub type Accept<'a> = &'a (dyn Fn(&[u8]) -> bool + Sync);

/// `r` kept only when it is at most `max` bytes and `accept` takes it; else
/// `Failed` with why (so it is neither shown nor recorded).
pub fn check_content(r: Read, max: u64, accept: Accept<'_>) -> Read {
    match r {
        Read::Ok(b) if b.len() as u64 > max => {
            Read::Failed(format!("larger than {max} bytes; not read"))
        }
        Read::Ok(b) if !accept(&b) => {
            Read::Failed("its content is not what this file holds; not read".into())
        }
        other => other,
    }
}

/// A producer of a computed probe output (see [`Source::computed`]).
pub type Producer<'a> = &'a (dyn Fn(&dyn Source) -> CmdOutput + Sync);

/// The only door to the outside. Paths are logical absolute paths
/// (`/sys/bus/pci/devices/...`), whatever face answers.
pub trait Source: Sync {
    fn mode(&self) -> Mode;

    /// Read a whole file (bounded by [`MAX_FILE_BYTES`]).
    fn read(&self, path: &str) -> Read;

    /// Read a small file whose content has a known shape (an OpenCL ICD
    /// registration names one library): at most `max` bytes, and only when
    /// `accept` takes it. Record stores nothing else, so a registration that
    /// links to `/etc/shadow` never copies the shadow file into a capture.
    fn read_checked(&self, path: &str, max: u64, accept: Accept<'_>) -> Read {
        check_content(self.read(path), max, accept)
    }

    /// List a directory, names sorted.
    fn list(&self, path: &str) -> Listing;

    /// The target of a symbolic link, as stored in the link (usually relative).
    fn link(&self, path: &str) -> Option<String>;

    /// `lstat` of a device node and whether this process may read and write
    /// it (`access(2)`), never opening it and never following a link. Record
    /// writes the answer into the capture's `devfs` file; replay answers from
    /// it. A source that cannot say answers `Unknown`.
    fn stat(&self, path: &str) -> devfs::NodeStat {
        let _ = path;
        devfs::NodeStat::Unknown("this source does not look at device nodes".into())
    }

    /// The environment variables whose names pass `allow`; the values of the
    /// others are never read. Sorted by name.
    fn env_vars(&self, allow: EnvFilter<'_>) -> Vec<(String, String)>;

    /// Run a probe command (argv, timeout, bounded output).
    fn run(&self, spec: &CmdSpec) -> CmdOutput;

    /// An output computed by rigdoctor itself rather than printed by one
    /// command (e.g. `python-packages`, read from dist-info metadata). Live
    /// calls `produce`; record calls it on the live machine and stores only the
    /// result under `cmd/<name>.*`; replay returns the stored result.
    fn computed(&self, name: &str, produce: Producer<'_>) -> CmdOutput;

    /// Why the environment could not be read, as (probe status, detail);
    /// `None` when it was. Only a replayed capture can fail here (an `env`
    /// file missing, refused or too large is unknown, not "no variables").
    fn env_problem(&self) -> Option<(&'static str, String)> {
        None
    }

    /// What a replay refused to read (links leaving the capture, FIFOs,
    /// devices), one line each: `<path in the capture>: <why>`.
    fn refusals(&self) -> Vec<String> {
        Vec::new()
    }
}

/// Values in the capture's `env` file are one per line: a backslash and a
/// newline inside a value are escaped as `\\` and `\n`.
pub fn escape_env_value(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

/// The inverse of [`escape_env_value`].
pub fn unescape_env_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some(other) => out.push(other),
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Read a file and return it trimmed, treating every failure as absent.
/// For optional sysfs attributes where "denied" carries no extra meaning.
pub fn read_attr(src: &dyn Source, path: &str) -> Option<String> {
    src.read(path).trimmed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_round_trips() {
        for s in [
            CmdStatus::Exit(0),
            CmdStatus::Exit(-3),
            CmdStatus::Signal(9),
            CmdStatus::Missing,
            CmdStatus::Timeout,
            CmdStatus::Failed("permission denied".into()),
        ] {
            assert_eq!(CmdStatus::from_record(&s.to_record()), s);
        }
        assert_eq!(CmdStatus::from_record(" 1\n"), CmdStatus::Exit(1));
        assert!(matches!(
            CmdStatus::from_record("garbage"),
            CmdStatus::Failed(_)
        ));
    }

    #[test]
    fn env_values_round_trip() {
        for v in ["plain", "a\nb", "back\\slash", "trailing\\", "\\n literal"] {
            assert_eq!(unescape_env_value(&escape_env_value(v)), v);
            assert!(!escape_env_value(v).contains('\n'));
        }
    }
}
