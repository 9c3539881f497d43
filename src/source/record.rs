//! The record face: live, and everything returned is written into a capture
//! directory (docs/capture-format.md). Files land at their logical absolute
//! path below `root/`; the symbolic links met on the way are recreated as
//! links (relative), so that the bridge walk over
//! `/sys/bus/pci/devices/<bdf>` works the same on the replayed copy.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;

use serde_json::json;

use super::live::Live;
use super::{CAPTURE_FORMAT, CmdOutput, CmdSpec, EnvFilter, Listing, Mode, Producer, Read, Source};

/// How many symbolic links one path may cross (the kernel's own limit is 40).
const MAX_LINK_HOPS: usize = 40;

pub struct Record {
    live: Live,
    dir: PathBuf,
    env: Mutex<BTreeMap<String, String>>,
    /// Paths live answered "permission denied" for; replay answers the same.
    denied: Mutex<BTreeSet<String>>,
    durations: Mutex<BTreeMap<String, u64>>,
    /// Failures to write the capture itself (disk full, ...).
    errors: Mutex<Vec<String>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic elsewhere must not take the capture down with it.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Record {
    /// Start recording into `dir` (created if needed; must be empty or absent).
    pub fn new(live: Live, dir: &Path) -> std::io::Result<Record> {
        if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!(
                    "{} is not empty; a capture needs an empty directory",
                    dir.display()
                ),
            ));
        }
        std::fs::create_dir_all(dir.join("root"))?;
        std::fs::create_dir_all(dir.join("cmd"))?;
        Ok(Record {
            live,
            dir: dir.to_path_buf(),
            env: Mutex::new(BTreeMap::new()),
            denied: Mutex::new(BTreeSet::new()),
            durations: Mutex::new(BTreeMap::new()),
            errors: Mutex::new(Vec::new()),
        })
    }

    fn root(&self) -> PathBuf {
        self.dir.join("root")
    }

    fn in_root(&self, logical: &Path) -> PathBuf {
        self.root()
            .join(logical.strip_prefix("/").unwrap_or(logical))
    }

    fn note_err(&self, what: &str, e: impl std::fmt::Display) {
        lock(&self.errors).push(format!("{what}: {e}"));
    }

    /// Recreate the symbolic link at logical path `at` (target as stored) below root.
    fn mirror_link(&self, at: &Path, target: &Path) {
        let dest = self.in_root(at);
        if dest.symlink_metadata().is_ok() {
            return;
        }
        let target = if target.is_absolute() {
            // Keep the copy self-contained: /x/y seen from /a/b/link is ../../x/y.
            let depth = at
                .parent()
                .map(|p| p.components().count().saturating_sub(1))
                .unwrap_or(0);
            let mut rel = PathBuf::new();
            for _ in 0..depth {
                rel.push("..");
            }
            rel.join(target.strip_prefix("/").unwrap_or(target))
        } else {
            target.to_path_buf()
        };
        if let Some(parent) = dest.parent() {
            if let Err(e) = std::fs::create_dir_all(parent) {
                self.note_err(&dest.display().to_string(), e);
                return;
            }
        }
        if let Err(e) = std::os::unix::fs::symlink(&target, &dest) {
            self.note_err(&dest.display().to_string(), e);
        }
    }

    /// Resolve `logical` on the live machine component by component, mirroring
    /// every symbolic link crossed, and return the link-free logical path.
    fn resolve_mirroring(&self, logical: &Path) -> PathBuf {
        let mut resolved = PathBuf::from("/");
        let mut pending: Vec<std::ffi::OsString> = logical
            .components()
            .rev()
            .filter_map(|c| match c {
                Component::Normal(s) => Some(s.to_os_string()),
                Component::ParentDir => Some("..".into()),
                _ => None,
            })
            .collect();
        let mut hops = 0;
        while let Some(c) = pending.pop() {
            if c == ".." {
                resolved.pop();
                continue;
            }
            let candidate = resolved.join(&c);
            let live_path = self.live.map(&candidate.to_string_lossy());
            let is_link = live_path
                .symlink_metadata()
                .map(|m| m.file_type().is_symlink())
                .unwrap_or(false);
            if !is_link || hops >= MAX_LINK_HOPS {
                resolved = candidate;
                continue;
            }
            hops += 1;
            let Ok(target) = std::fs::read_link(&live_path) else {
                resolved = candidate;
                continue;
            };
            self.mirror_link(&candidate, &target);
            if target.is_absolute() {
                resolved = PathBuf::from("/");
            }
            for comp in target.components().rev() {
                match comp {
                    Component::Normal(s) => pending.push(s.to_os_string()),
                    Component::ParentDir => pending.push("..".into()),
                    _ => {}
                }
            }
        }
        resolved
    }

    fn write_file(&self, logical: &str, content: &[u8]) {
        let resolved = self.resolve_mirroring(Path::new(logical));
        let dest = self.in_root(&resolved);
        if let Some(parent) = dest.parent() {
            if let Err(e) = std::fs::create_dir_all(parent) {
                self.note_err(logical, e);
                return;
            }
        }
        if let Err(e) = std::fs::write(&dest, content) {
            self.note_err(logical, e);
        }
    }

    fn store_output(&self, name: &str, out: &CmdOutput) {
        let cmd = self.dir.join("cmd");
        let results = [
            std::fs::write(cmd.join(format!("{name}.out")), &out.stdout),
            if out.stderr.is_empty() {
                Ok(())
            } else {
                std::fs::write(cmd.join(format!("{name}.err")), &out.stderr)
            },
            std::fs::write(
                cmd.join(format!("{name}.status")),
                out.status.to_record() + "\n",
            ),
        ];
        for r in results {
            if let Err(e) = r {
                self.note_err(name, e);
            }
        }
        lock(&self.durations).insert(name.to_string(), out.duration_ms);
    }

    /// Write `capture.json` and `env`. Returns the problems met while writing
    /// the capture (empty when it is complete).
    pub fn finish(&self) -> Vec<String> {
        let env = lock(&self.env);
        let mut text = String::new();
        for (k, v) in env.iter() {
            text.push_str(&format!("{k}={}\n", super::escape_env_value(v)));
        }
        if let Err(e) = std::fs::write(self.dir.join("env"), text) {
            self.note_err("env", e);
        }
        let meta = json!({
            "format": CAPTURE_FORMAT,
            "rigdoctor": env!("CARGO_PKG_VERSION"),
            "created_unix": std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            "denied": lock(&self.denied).iter().collect::<Vec<_>>(),
            "durations_ms": &*lock(&self.durations),
        });
        let body = serde_json::to_string_pretty(&meta).unwrap_or_default() + "\n";
        if let Err(e) = std::fs::write(self.dir.join("capture.json"), body) {
            self.note_err("capture.json", e);
        }
        lock(&self.errors).clone()
    }
}

impl Source for Record {
    fn mode(&self) -> Mode {
        Mode::Record
    }

    fn read(&self, path: &str) -> Read {
        let r = self.live.read(path);
        match &r {
            Read::Ok(bytes) => self.write_file(path, bytes),
            Read::Denied => {
                lock(&self.denied).insert(path.to_string());
            }
            // Missing stays missing in the copy; other failures read as missing.
            _ => {}
        }
        r
    }

    fn list(&self, path: &str) -> Listing {
        let l = self.live.list(path);
        match &l {
            Listing::Ok(names) => {
                let resolved = self.resolve_mirroring(Path::new(path));
                let dest = self.in_root(&resolved);
                if let Err(e) = std::fs::create_dir_all(&dest) {
                    self.note_err(path, e);
                    return l;
                }
                for name in names {
                    let logical = resolved.join(name);
                    let live_path = self.live.map(&logical.to_string_lossy());
                    let Ok(meta) = live_path.symlink_metadata() else {
                        continue;
                    };
                    let entry = dest.join(name);
                    if meta.file_type().is_symlink() {
                        if let Ok(t) = std::fs::read_link(&live_path) {
                            self.mirror_link(&logical, &t);
                        }
                    } else if meta.is_dir() {
                        let _ = std::fs::create_dir_all(&entry);
                    } else if entry.symlink_metadata().is_err() {
                        // A placeholder keeps the listing identical; its content is
                        // only ever read if the probe read it live, and then it is
                        // overwritten with the real bytes.
                        let _ = std::fs::write(&entry, b"");
                    }
                }
            }
            Listing::Denied => {
                lock(&self.denied).insert(path.to_string());
            }
            _ => {}
        }
        l
    }

    fn link(&self, path: &str) -> Option<String> {
        let t = self.live.link(path)?;
        let p = Path::new(path);
        let parent = p
            .parent()
            .map(|pp| self.resolve_mirroring(pp))
            .unwrap_or_else(|| PathBuf::from("/"));
        if let Some(name) = p.file_name() {
            self.mirror_link(&parent.join(name), Path::new(&t));
        }
        Some(t)
    }

    fn env_vars(&self, allow: EnvFilter<'_>) -> Vec<(String, String)> {
        let vars = self.live.env_vars(allow);
        let mut env = lock(&self.env);
        for (k, v) in &vars {
            env.insert(k.clone(), v.clone());
        }
        vars
    }

    fn run(&self, spec: &CmdSpec) -> CmdOutput {
        let out = self.live.run(spec);
        self.store_output(&spec.name, &out);
        out
    }

    fn computed(&self, name: &str, produce: Producer<'_>) -> CmdOutput {
        let out = produce(&self.live);
        self.store_output(name, &out);
        out
    }
}
