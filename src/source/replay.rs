//! The replay face: every answer comes from a capture directory and nothing
//! else. A capture is user-supplied data (a bug report bundle), so every
//! file of it, `capture.json`, `env`, `cmd/` and `root/` alike, is read
//! through one confined reader ([`super::confined`]): paths resolved beneath
//! the capture, links that leave it refused, only regular files read, every
//! read bounded. What was refused is reported as the `capture` probe and in
//! the status of the probe that asked, never as data.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::confined::{Confined, Got};
use super::devfs::NodeStat;
use super::{
    CAPTURE_FORMAT, CmdOutput, CmdSpec, CmdStatus, EnvFilter, Listing, MAX_FILE_BYTES,
    MAX_OUTPUT_BYTES, Mode, Producer, Read, Source, unescape_env_value,
};

/// `capture.json` holds a version, a list of denied paths and durations.
const MAX_META_BYTES: u64 = 1024 * 1024;

/// `cmd/<name>.status` is one short line.
const MAX_STATUS_BYTES: u64 = 4096;

#[derive(Debug)]
pub struct Replay {
    cap: Confined,
    /// `root/` of the capture, or why it cannot be read.
    root: Got<Confined>,
    env: Vec<(String, String)>,
    /// Why the `env` file could not be read: (probe status, detail).
    env_problem: Option<(&'static str, String)>,
    denied: BTreeSet<String>,
    durations: BTreeMap<String, u64>,
    /// The capture's `devfs` file (device nodes), or why there is none.
    nodes: Result<BTreeMap<String, NodeStat>, String>,
    /// The paths of the capture that were refused, with why.
    refused: Mutex<BTreeSet<String>>,
    /// For a tarball: the private directory it was unpacked into, removed
    /// when the replay ends.
    _unpacked: Option<super::archive::TempDir>,
}

/// Why a capture directory cannot be replayed (exit code 2).
#[derive(Debug)]
pub enum ReplayError {
    NotADirectory(PathBuf),
    NoCaptureJson(PathBuf),
    BadCaptureJson(PathBuf, String),
    UnknownFormat(PathBuf, String),
    BadArchive(String),
}

impl std::fmt::Display for ReplayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReplayError::NotADirectory(p) => write!(f, "{} is not a directory", p.display()),
            ReplayError::NoCaptureJson(p) => write!(
                f,
                "{} has no capture.json; is it a directory written by `rigdoctor capture -o`?",
                p.display()
            ),
            ReplayError::BadCaptureJson(p, e) => {
                write!(f, "{}/capture.json does not parse: {e}", p.display())
            }
            ReplayError::BadArchive(e) => write!(f, "cannot unpack the capture {e}"),
            ReplayError::UnknownFormat(p, fmt) => write!(
                f,
                "{}/capture.json has format {fmt:?}; this rigdoctor reads {CAPTURE_FORMAT:?}",
                p.display()
            ),
        }
    }
}

impl std::error::Error for ReplayError {}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic in one probe thread must not take the others down.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Replay {
    /// Open a capture: a directory, or a gzip tarball of one
    /// (`capture -o rig.tar.gz`), which is unpacked into a private
    /// temporary directory first (source::archive).
    pub fn open(path: &Path) -> Result<Replay, ReplayError> {
        if !path.is_file() {
            return Replay::open_dir(path);
        }
        let tmp = super::archive::TempDir::new()
            .map_err(|e| ReplayError::BadArchive(format!("{}: {e}", path.display())))?;
        let into = tmp.path().join("capture");
        let refused =
            super::archive::unpack(path, &into).map_err(|e| ReplayError::BadArchive(e.0))?;
        let dir = super::archive::capture_root(&into);
        let mut r = Replay::open_dir(&dir).map_err(|e| match e {
            // Name the file the user gave, not the temporary copy.
            ReplayError::NoCaptureJson(_) => ReplayError::NoCaptureJson(path.to_path_buf()),
            ReplayError::NotADirectory(_) => ReplayError::NotADirectory(path.to_path_buf()),
            ReplayError::BadCaptureJson(_, m) => ReplayError::BadCaptureJson(path.to_path_buf(), m),
            ReplayError::UnknownFormat(_, m) => ReplayError::UnknownFormat(path.to_path_buf(), m),
            other => other,
        })?;
        lock(&r.refused).extend(refused.into_iter().map(|x| format!("archive: {x}")));
        r._unpacked = Some(tmp);
        Ok(r)
    }

    fn open_dir(dir: &Path) -> Result<Replay, ReplayError> {
        let cap = Confined::open(dir).map_err(|_| ReplayError::NotADirectory(dir.to_path_buf()))?;
        let bad = |e: String| ReplayError::BadCaptureJson(dir.to_path_buf(), e);
        let meta_bytes = match cap.read("capture.json", MAX_META_BYTES) {
            Got::Ok((_, true)) => return Err(bad(format!("larger than {MAX_META_BYTES} bytes"))),
            Got::Ok((b, false)) => b,
            Got::Missing => return Err(ReplayError::NoCaptureJson(dir.to_path_buf())),
            Got::Denied => return Err(bad("permission denied".into())),
            Got::Refused(r) => return Err(bad(format!("refused to read it: {r}"))),
            Got::Failed(e) => return Err(bad(e)),
        };
        let meta: serde_json::Value =
            serde_json::from_slice(&meta_bytes).map_err(|e| bad(e.to_string()))?;
        let format = meta.get("format").and_then(|v| v.as_str()).unwrap_or("");
        if format != CAPTURE_FORMAT {
            return Err(ReplayError::UnknownFormat(
                dir.to_path_buf(),
                format.to_string(),
            ));
        }
        let denied = meta
            .get("denied")
            .and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        let durations = meta
            .get("durations_ms")
            .and_then(|v| v.as_object())
            .map(|o| {
                o.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_u64()?)))
                    .collect()
            })
            .unwrap_or_default();
        let mut refused = BTreeSet::new();
        let (env, env_problem) = match cap.read("env", MAX_FILE_BYTES) {
            Got::Ok((b, false)) => {
                let text = String::from_utf8_lossy(&b);
                // Lines that are not NAME=value make the environment unknown,
                // not "these variables and no others".
                let problem = env_file_problem(&text).map(|d| ("unparsed", d));
                (parse_env_file(&text), problem)
            }
            Got::Ok((_, true)) => (
                Vec::new(),
                Some((
                    "failed",
                    format!("the capture's env is larger than {MAX_FILE_BYTES} bytes; not read"),
                )),
            ),
            Got::Missing => (
                Vec::new(),
                Some(("missing", "the capture has no env file".to_string())),
            ),
            Got::Denied => (
                Vec::new(),
                Some((
                    "denied",
                    "the capture's env file: permission denied".to_string(),
                )),
            ),
            Got::Refused(r) => {
                refused.insert(format!("env: {r}"));
                (
                    Vec::new(),
                    Some(("failed", format!("the capture's env was refused: {r}"))),
                )
            }
            Got::Failed(e) => (
                Vec::new(),
                Some(("failed", format!("the capture's env file: {e}"))),
            ),
        };
        let root = cap.subdir("root");
        if let Got::Refused(r) = &root {
            refused.insert(format!("root: {r}"));
        }
        let nodes = match cap.read("devfs", MAX_FILE_BYTES) {
            Got::Ok((b, false)) => Ok(super::devfs::parse(&String::from_utf8_lossy(&b))),
            Got::Ok((_, true)) => Err(format!(
                "the capture's devfs is larger than {MAX_FILE_BYTES} bytes; not read"
            )),
            Got::Missing => Err("the capture records no device nodes (no devfs file)".into()),
            Got::Denied => Err("the capture's devfs file: permission denied".into()),
            Got::Refused(r) => {
                refused.insert(format!("devfs: {r}"));
                Err(format!("the capture's devfs was refused: {r}"))
            }
            Got::Failed(e) => Err(format!("the capture's devfs file: {e}")),
        };
        Ok(Replay {
            cap,
            root,
            env,
            env_problem,
            denied,
            durations,
            nodes,
            refused: Mutex::new(refused),
            _unpacked: None,
        })
    }

    fn refuse(&self, what: String) {
        lock(&self.refused).insert(what);
    }

    /// Read one file of `cmd/`: `None` when absent, `Err` with the status to
    /// report when it cannot be used.
    fn cmd_file(&self, file: &str, max: u64) -> Result<Option<(Vec<u8>, bool)>, CmdStatus> {
        let rel = format!("cmd/{file}");
        match self.cap.read(&rel, max) {
            Got::Ok(v) => Ok(Some(v)),
            Got::Missing => Ok(None),
            Got::Denied => Err(CmdStatus::Failed(format!(
                "the capture's {rel}: permission denied"
            ))),
            Got::Refused(r) => {
                self.refuse(format!("{rel}: {r}"));
                Err(CmdStatus::Failed(format!(
                    "the capture's {rel} was refused: {r}"
                )))
            }
            Got::Failed(e) => Err(CmdStatus::Failed(format!("the capture's {rel}: {e}"))),
        }
    }

    fn stored(&self, name: &str) -> CmdOutput {
        let status = match self.cmd_file(&format!("{name}.status"), MAX_STATUS_BYTES) {
            Ok(Some((b, _))) => CmdStatus::from_record(&String::from_utf8_lossy(&b)),
            // Not recorded: the same as not installed.
            Ok(None) => return CmdOutput::with_status(CmdStatus::Missing),
            Err(s) => return CmdOutput::with_status(s),
        };
        let mut truncated = false;
        let mut part = |ext: &str| -> Result<Vec<u8>, CmdStatus> {
            match self.cmd_file(&format!("{name}.{ext}"), MAX_OUTPUT_BYTES as u64)? {
                Some((b, over)) => {
                    truncated |= over;
                    Ok(b)
                }
                None => Ok(Vec::new()),
            }
        };
        let (stdout, stderr) = match (part("out"), part("err")) {
            (Ok(o), Ok(e)) => (o, e),
            (Err(s), _) | (_, Err(s)) => return CmdOutput::with_status(s),
        };
        CmdOutput {
            status,
            stdout,
            stderr,
            duration_ms: self.durations.get(name).copied().unwrap_or(0),
            truncated,
        }
    }
}

/// What is wrong with a capture's `env` file, if any line is not
/// `NAME=value` with a shell variable name (blank lines and `#` comments
/// are fine): `None` when every line reads.
pub fn env_file_problem(text: &str) -> Option<String> {
    let is_name = |k: &str| {
        let mut c = k.chars();
        c.next()
            .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
            && c.all(|x| x.is_ascii_alphanumeric() || x == '_')
    };
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .collect();
    let bad: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.split_once('=').is_none_or(|(k, _)| !is_name(k)))
        .collect();
    (!bad.is_empty()).then(|| {
        format!(
            "{} of the {} lines of the capture's env are not NAME=value: {}",
            bad.len(),
            lines.len(),
            crate::text::excerpt(&bad.join("\n"))
        )
    })
}

/// Parse the capture's `env` file: `KEY=VALUE` per line; anything else is
/// skipped. Values are redacted as live ones are, so a capture written by an
/// older rigdoctor (or by hand) does not show a secret either.
pub fn parse_env_file(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = text
        .lines()
        .filter_map(|line| {
            let (k, v) = line.split_once('=')?;
            if k.is_empty() || k.starts_with('#') {
                return None;
            }
            Some((k.to_string(), super::redact::redact(&unescape_env_value(v))))
        })
        .collect();
    out.sort();
    out
}

impl Source for Replay {
    fn mode(&self) -> Mode {
        Mode::Replay
    }

    fn read(&self, path: &str) -> Read {
        if self.denied.contains(path) {
            return Read::Denied;
        }
        let root = match &self.root {
            Got::Ok(r) => r,
            Got::Refused(r) => return Read::Failed(format!("refused by replay: root/ is {r}")),
            _ => return Read::Missing,
        };
        match root.read(path, MAX_FILE_BYTES) {
            // Cut at the same bound as a live read, so the facts match.
            Got::Ok((b, _)) => Read::Ok(b),
            Got::Missing => Read::Missing,
            Got::Denied => Read::Denied,
            Got::Refused(r) => {
                self.refuse(format!("root{path}: {r}"));
                Read::Failed(format!("refused by replay: {r}"))
            }
            Got::Failed(e) => Read::Failed(e),
        }
    }

    fn list(&self, path: &str) -> Listing {
        if self.denied.contains(path) {
            return Listing::Denied;
        }
        let root = match &self.root {
            Got::Ok(r) => r,
            Got::Refused(r) => return Listing::Failed(format!("refused by replay: root/ is {r}")),
            _ => return Listing::Missing,
        };
        match root.list(path) {
            Got::Ok(names) => Listing::Ok(names),
            Got::Missing => Listing::Missing,
            Got::Denied => Listing::Denied,
            Got::Refused(r) => {
                self.refuse(format!("root{path}: {r}"));
                Listing::Failed(format!("refused by replay: {r}"))
            }
            Got::Failed(e) => Listing::Failed(e),
        }
    }

    fn link(&self, path: &str) -> Option<String> {
        let Got::Ok(root) = &self.root else {
            return None;
        };
        match root.link(path) {
            Got::Ok(t) => Some(t),
            Got::Refused(r) => {
                self.refuse(format!("root{path}: {r}"));
                None
            }
            _ => None,
        }
    }

    fn stat(&self, path: &str) -> NodeStat {
        match &self.nodes {
            Ok(nodes) => nodes.get(path).cloned().unwrap_or_else(|| {
                NodeStat::Unknown(format!("{path} is not in the capture's devfs"))
            }),
            Err(why) => NodeStat::Unknown(why.clone()),
        }
    }

    fn env_vars(&self, allow: EnvFilter<'_>) -> Vec<(String, String)> {
        self.env.iter().filter(|(k, _)| allow(k)).cloned().collect()
    }

    fn env_problem(&self) -> Option<(&'static str, String)> {
        self.env_problem.clone()
    }

    fn run(&self, spec: &CmdSpec) -> CmdOutput {
        self.stored(&spec.name)
    }

    fn computed(&self, name: &str, _produce: Producer<'_>) -> CmdOutput {
        self.stored(name)
    }

    fn refusals(&self) -> Vec<String> {
        lock(&self.refused).iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_file_parses_and_skips_junk() {
        let env = parse_env_file("B=2\n# comment\nnot a pair\nA=x=y\nC=a\\nb\n");
        assert_eq!(
            env,
            vec![
                ("A".to_string(), "x=y".to_string()),
                ("B".to_string(), "2".to_string()),
                ("C".to_string(), "a\nb".to_string())
            ]
        );
    }

    #[test]
    fn rejects_directories_that_are_not_captures() {
        let d = tempfile::tempdir().unwrap();
        assert!(matches!(
            Replay::open(d.path()),
            Err(ReplayError::NoCaptureJson(_))
        ));
        std::fs::write(d.path().join("capture.json"), "{\"format\": \"other/9\"}").unwrap();
        assert!(matches!(
            Replay::open(d.path()),
            Err(ReplayError::UnknownFormat(..))
        ));
        std::fs::write(d.path().join("capture.json"), "{not json").unwrap();
        assert!(matches!(
            Replay::open(d.path()),
            Err(ReplayError::BadCaptureJson(..))
        ));
    }

    #[test]
    fn links_out_of_the_capture_are_not_followed() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("capture.json"),
            format!("{{\"format\": \"{CAPTURE_FORMAT}\"}}"),
        )
        .unwrap();
        std::fs::create_dir_all(d.path().join("root/etc")).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", d.path().join("root/etc/escape")).unwrap();
        std::fs::write(d.path().join("root/etc/inside"), "ok").unwrap();
        let r = Replay::open(d.path()).unwrap();
        assert!(matches!(r.read("/etc/escape"), Read::Failed(_)));
        assert_eq!(r.read("/etc/inside"), Read::Ok(b"ok".to_vec()));
        assert_eq!(r.refusals().len(), 1, "{:?}", r.refusals());
    }
}
