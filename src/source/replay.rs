//! The replay face: every answer comes from a capture directory and nothing
//! else. A capture is user-supplied data (a bug report bundle), so a link
//! that points outside its `root/` is treated as absent, never followed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::live::{list_path, read_path};
use super::{
    CAPTURE_FORMAT, CmdOutput, CmdSpec, CmdStatus, EnvFilter, Listing, Mode, Producer, Read,
    Source, unescape_env_value,
};

#[derive(Debug)]
pub struct Replay {
    dir: PathBuf,
    root: PathBuf,
    env: Vec<(String, String)>,
    denied: BTreeSet<String>,
    durations: BTreeMap<String, u64>,
}

/// Why a capture directory cannot be replayed (exit code 2).
#[derive(Debug)]
pub enum ReplayError {
    NotADirectory(PathBuf),
    NoCaptureJson(PathBuf),
    BadCaptureJson(PathBuf, String),
    UnknownFormat(PathBuf, String),
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
            ReplayError::UnknownFormat(p, fmt) => write!(
                f,
                "{}/capture.json has format {fmt:?}; this rigdoctor reads {CAPTURE_FORMAT:?}",
                p.display()
            ),
        }
    }
}

impl std::error::Error for ReplayError {}

impl Replay {
    pub fn open(dir: &Path) -> Result<Replay, ReplayError> {
        if !dir.is_dir() {
            return Err(ReplayError::NotADirectory(dir.to_path_buf()));
        }
        let meta_text = std::fs::read_to_string(dir.join("capture.json"))
            .map_err(|_| ReplayError::NoCaptureJson(dir.to_path_buf()))?;
        let meta: serde_json::Value = serde_json::from_str(&meta_text)
            .map_err(|e| ReplayError::BadCaptureJson(dir.to_path_buf(), e.to_string()))?;
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
        let env_text = std::fs::read(dir.join("env")).unwrap_or_default();
        let env = parse_env_file(&String::from_utf8_lossy(&env_text));
        let root = dir.join("root");
        let root = root.canonicalize().unwrap_or(root);
        Ok(Replay {
            dir: dir.to_path_buf(),
            root,
            env,
            denied,
            durations,
        })
    }

    /// The path below root/ for a logical path, or None if it resolves outside root/.
    fn locate(&self, logical: &str) -> Option<PathBuf> {
        let p = self.root.join(logical.trim_start_matches('/'));
        match p.canonicalize() {
            Ok(real) if real.starts_with(&self.root) => Some(p),
            Ok(_) => None,
            // Absent: let the caller report it as missing.
            Err(_) => Some(p),
        }
    }
}

/// Parse the capture's `env` file: `KEY=VALUE` per line; anything else is skipped.
pub fn parse_env_file(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = text
        .lines()
        .filter_map(|line| {
            let (k, v) = line.split_once('=')?;
            if k.is_empty() || k.starts_with('#') {
                return None;
            }
            Some((k.to_string(), unescape_env_value(v)))
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
        match self.locate(path) {
            Some(p) => read_path(&p),
            None => Read::Missing,
        }
    }

    fn list(&self, path: &str) -> Listing {
        if self.denied.contains(path) {
            return Listing::Denied;
        }
        match self.locate(path) {
            Some(p) => list_path(&p),
            None => Listing::Missing,
        }
    }

    fn link(&self, path: &str) -> Option<String> {
        let p = self.root.join(path.trim_start_matches('/'));
        std::fs::read_link(p)
            .ok()
            .map(|t| t.to_string_lossy().into_owned())
    }

    fn env_vars(&self, allow: EnvFilter<'_>) -> Vec<(String, String)> {
        self.env.iter().filter(|(k, _)| allow(k)).cloned().collect()
    }

    fn run(&self, spec: &CmdSpec) -> CmdOutput {
        self.stored(&spec.name)
    }

    fn computed(&self, name: &str, _produce: Producer<'_>) -> CmdOutput {
        self.stored(name)
    }
}

impl Replay {
    fn stored(&self, name: &str) -> CmdOutput {
        let cmd = self.dir.join("cmd");
        let status = match std::fs::read_to_string(cmd.join(format!("{name}.status"))) {
            Ok(s) => CmdStatus::from_record(&s),
            // Not recorded: the same as not installed.
            Err(_) => return CmdOutput::with_status(CmdStatus::Missing),
        };
        CmdOutput {
            status,
            stdout: std::fs::read(cmd.join(format!("{name}.out"))).unwrap_or_default(),
            stderr: std::fs::read(cmd.join(format!("{name}.err"))).unwrap_or_default(),
            duration_ms: self.durations.get(name).copied().unwrap_or(0),
            truncated: false,
        }
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
        assert_eq!(r.read("/etc/escape"), Read::Missing);
        assert_eq!(r.read("/etc/inside"), Read::Ok(b"ok".to_vec()));
    }
}
