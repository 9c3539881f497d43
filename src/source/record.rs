//! The record face: live, and everything returned is written into a capture
//! directory (docs/capture-format.md). Files land at their logical absolute
//! path below `root/`; the symbolic links met on the way are recreated as
//! links (relative), so that the bridge walk over
//! `/sys/bus/pci/devices/<bdf>` works the same on the replayed copy.
//!
//! `capture` runs as root on shared nodes (issue 8, item 8), so the capture
//! directory is created here (or taken only when it is empty and the
//! caller's), made 0700, and written only through its directory handle:
//! every directory is entered `O_NOFOLLOW`, every file is created
//! `O_CREAT | O_EXCL | O_NOFOLLOW` with mode 0600. A link planted in it can
//! make a write fail, never land anywhere else.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat};
use nix::sys::stat::{Mode as FileMode, fchmod, fstat, fstatat, mkdirat};
use nix::unistd::{UnlinkatFlags, symlinkat, unlinkat};

use serde_json::json;

use super::devfs::NodeStat;
use super::live::Live;
use super::{CAPTURE_FORMAT, CmdOutput, CmdSpec, EnvFilter, Listing, Mode, Producer, Read, Source};

/// How many symbolic links one path may cross (the kernel's own limit is 40).
const MAX_LINK_HOPS: usize = 40;

pub struct Record {
    live: Live,
    out: CaptureDir,
    env: Mutex<BTreeMap<String, String>>,
    /// Paths live answered "permission denied" for; replay answers the same.
    denied: Mutex<BTreeSet<String>>,
    durations: Mutex<BTreeMap<String, u64>>,
    /// The device nodes looked at, written as the capture's `devfs` file.
    nodes: Mutex<BTreeMap<String, NodeStat>>,
    /// Failures to write the capture itself (disk full, ...).
    errors: Mutex<Vec<String>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic elsewhere must not take the capture down with it.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Record {
    /// Start recording into `dir`: created here, or an existing directory
    /// that is empty and owned by the caller (never a link).
    pub fn new(live: Live, dir: &Path) -> std::io::Result<Record> {
        let out = CaptureDir::create(dir)?;
        out.mkdirs(Path::new("root"))
            .map_err(std::io::Error::from)?;
        out.mkdirs(Path::new("cmd")).map_err(std::io::Error::from)?;
        Ok(Record {
            live,
            out,
            env: Mutex::new(BTreeMap::new()),
            denied: Mutex::new(BTreeSet::new()),
            durations: Mutex::new(BTreeMap::new()),
            nodes: Mutex::new(BTreeMap::new()),
            errors: Mutex::new(Vec::new()),
        })
    }

    /// Where a logical path lands, relative to the capture directory.
    fn in_root(&self, logical: &Path) -> PathBuf {
        Path::new("root").join(logical.strip_prefix("/").unwrap_or(logical))
    }

    fn note_err(&self, what: &str, e: impl std::fmt::Display) {
        lock(&self.errors).push(format!("{what}: {e}"));
    }

    /// Recreate the symbolic link at logical path `at` (target as stored) below root.
    fn mirror_link(&self, at: &Path, target: &Path) {
        let dest = self.in_root(at);
        if self.out.exists(&dest) {
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
        if let Err(e) = self.out.symlink(&dest, &target) {
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
        if let Err(e) = self.out.write(&dest, content) {
            self.note_err(logical, e);
        }
    }

    fn store_output(&self, name: &str, out: &CmdOutput) {
        let cmd = Path::new("cmd");
        let results = [
            self.out
                .write(&cmd.join(format!("{name}.out")), &out.stdout),
            if out.stderr.is_empty() {
                Ok(())
            } else {
                self.out
                    .write(&cmd.join(format!("{name}.err")), &out.stderr)
            },
            self.out.write(
                &cmd.join(format!("{name}.status")),
                (out.status.to_record() + "\n").as_bytes(),
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
        if let Err(e) = self.out.write(Path::new("env"), text.as_bytes()) {
            self.note_err("env", e);
        }
        let nodes = lock(&self.nodes);
        if !nodes.is_empty() {
            let mut text = String::new();
            for (path, st) in nodes.iter() {
                if let Some(line) = super::devfs::to_line(path, st) {
                    text.push_str(&line);
                    text.push('\n');
                }
            }
            if let Err(e) = self.out.write(Path::new("devfs"), text.as_bytes()) {
                self.note_err("devfs", e);
            }
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
        if let Err(e) = self.out.write(Path::new("capture.json"), body.as_bytes()) {
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

    fn read_checked(&self, path: &str, max: u64, accept: super::Accept<'_>) -> Read {
        let r = super::check_content(self.live.read(path), max, accept);
        match &r {
            Read::Ok(bytes) => self.write_file(path, bytes),
            Read::Denied => {
                lock(&self.denied).insert(path.to_string());
            }
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
                if let Err(e) = self.out.mkdirs(&dest) {
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
                        let _ = self.out.mkdirs(&entry);
                    } else if !self.out.exists(&entry) {
                        // A placeholder keeps the listing identical; its content is
                        // only ever read if the probe read it live, and then it is
                        // replaced by the real bytes.
                        let _ = self.out.write(&entry, b"");
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

    fn stat(&self, path: &str) -> NodeStat {
        let st = self.live.stat(path);
        if !matches!(st, NodeStat::Unknown(_)) {
            lock(&self.nodes).insert(path.to_string(), st.clone());
        }
        st
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

/// The capture directory, written only relative to its handle.
pub(crate) struct CaptureDir {
    fd: OwnedFd,
}

fn refuse(msg: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::AlreadyExists, msg)
}

/// Files of a capture are the caller's alone: they hold paths and versions of
/// this machine.
const FILE_MODE: u32 = 0o600;
const DIR_MODE: u32 = 0o700;

fn dir_flags() -> OFlag {
    OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC
}

impl CaptureDir {
    /// Create `dir` (0700), or take an existing one only when it is a real
    /// directory (not a link), owned by the caller and empty.
    pub(crate) fn create(dir: &Path) -> std::io::Result<CaptureDir> {
        let shown = dir.display();
        match nix::unistd::mkdir(dir, FileMode::from_bits_truncate(DIR_MODE)) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(e.into()),
        }
        let fd = nix::fcntl::open(
            dir,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            FileMode::empty(),
        )
        .map_err(|e| match e {
            Errno::ELOOP => refuse(format!(
                "{shown} is a symbolic link; a capture directory must be a new directory"
            )),
            // Linux answers ENOTDIR for a link under O_DIRECTORY | O_NOFOLLOW.
            Errno::ENOTDIR if dir.is_symlink() => refuse(format!(
                "{shown} is a symbolic link; a capture directory must be a new directory"
            )),
            Errno::ENOTDIR => refuse(format!("{shown} exists and is not a directory")),
            e => e.into(),
        })?;
        let st = fstat(&fd)?;
        let me = nix::unistd::geteuid().as_raw();
        if st.st_uid != me {
            return Err(refuse(format!(
                "{shown} belongs to uid {}, not to you (uid {me}); give a new directory, or an empty one of your own",
                st.st_uid
            )));
        }
        let mut entries = nix::dir::Dir::from_fd(fd.try_clone()?)?;
        let non_empty = entries.iter().filter_map(|e| e.ok()).any(|e| {
            let n = e.file_name().to_bytes();
            n != b"." && n != b".."
        });
        if non_empty {
            return Err(refuse(format!(
                "{shown} is not empty; a capture needs an empty directory"
            )));
        }
        // Nobody else may add anything to it while the capture runs.
        fchmod(&fd, FileMode::from_bits_truncate(DIR_MODE))?;
        Ok(CaptureDir { fd })
    }

    /// Enter (creating as needed) every directory of `rel`, never through a link.
    pub(crate) fn mkdirs(&self, rel: &Path) -> Result<OwnedFd, Errno> {
        let mut cur = self.fd.try_clone().map_err(|_| Errno::EMFILE)?;
        for c in rel.components() {
            let Component::Normal(name) = c else {
                return Err(Errno::EINVAL);
            };
            match mkdirat(&cur, name, FileMode::from_bits_truncate(DIR_MODE)) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) => return Err(e),
            }
            cur = openat(&cur, name, dir_flags(), FileMode::empty())?;
        }
        Ok(cur)
    }

    /// The parent directory of `rel` (entered, created as needed) and the last name.
    fn parent<'a>(&self, rel: &'a Path) -> Result<(OwnedFd, &'a std::ffi::OsStr), Errno> {
        let name = rel.file_name().ok_or(Errno::EINVAL)?;
        let dir = self.mkdirs(rel.parent().unwrap_or(Path::new("")))?;
        Ok((dir, name))
    }

    /// Is there anything (a link counts) at `rel`? Creates nothing.
    fn exists(&self, rel: &Path) -> bool {
        let mut cur = match self.fd.try_clone() {
            Ok(fd) => fd,
            Err(_) => return false,
        };
        let comps: Vec<_> = rel.components().collect();
        for (i, c) in comps.iter().enumerate() {
            let Component::Normal(name) = c else {
                return false;
            };
            if i + 1 == comps.len() {
                return fstatat(&cur, *name, AtFlags::AT_SYMLINK_NOFOLLOW).is_ok();
            }
            cur = match openat(&cur, *name, dir_flags(), FileMode::empty()) {
                Ok(fd) => fd,
                Err(_) => return false,
            };
        }
        false
    }

    /// Write `content` as a new file at `rel` (0600). Whatever was there (a
    /// placeholder, a planted link) is unlinked first, and the create is
    /// exclusive and does not follow links.
    pub(crate) fn write(&self, rel: &Path, content: &[u8]) -> std::io::Result<()> {
        let (dir, name) = self.parent(rel)?;
        match unlinkat(&dir, name, UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => {}
            Err(e) => return Err(e.into()),
        }
        let fd = openat(
            &dir,
            name,
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            FileMode::from_bits_truncate(FILE_MODE),
        )?;
        std::fs::File::from(fd).write_all(content)
    }

    /// A symbolic link at `rel` pointing at `target` (the link is created,
    /// never followed).
    pub(crate) fn symlink(&self, rel: &Path, target: &Path) -> std::io::Result<()> {
        let (dir, name) = self.parent(rel)?;
        symlinkat(target, dir.as_fd(), name)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn writes_never_follow_planted_links() {
        let d = tempfile::tempdir().unwrap();
        let victim = d.path().join("victim");
        std::fs::write(&victim, "root's file").unwrap();
        let cap = d.path().join("cap");
        let out = CaptureDir::create(&cap).unwrap();
        // Links planted where the capture will write a file and a directory.
        std::os::unix::fs::symlink(&victim, cap.join("env")).unwrap();
        std::os::unix::fs::symlink(d.path(), cap.join("cmd")).unwrap();
        out.write(Path::new("env"), b"A=1\n").unwrap();
        assert!(out.write(Path::new("cmd/x.out"), b"data").is_err());
        assert!(out.symlink(Path::new("cmd/y"), Path::new("z")).is_err());
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "root's file");
        assert!(!d.path().join("x.out").exists() && !d.path().join("y").exists());
        // The link at env was replaced by a file of the capture's own.
        let meta = std::fs::symlink_metadata(cap.join("env")).unwrap();
        assert!(meta.is_file());
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let dmeta = std::fs::metadata(&cap).unwrap();
        assert_eq!(dmeta.permissions().mode() & 0o777, 0o700);
    }

    #[test]
    fn refuses_a_link_a_file_and_a_non_empty_directory() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("target");
        std::fs::create_dir(&target).unwrap();
        std::os::unix::fs::symlink(&target, d.path().join("link")).unwrap();
        assert!(CaptureDir::create(&d.path().join("link")).is_err());
        std::fs::write(d.path().join("file"), "").unwrap();
        assert!(CaptureDir::create(&d.path().join("file")).is_err());
        std::fs::write(target.join("x"), "").unwrap();
        assert!(CaptureDir::create(&target).is_err());
        // An empty directory of one's own is fine.
        std::fs::create_dir(d.path().join("empty")).unwrap();
        assert!(CaptureDir::create(&d.path().join("empty")).is_ok());
    }
}
