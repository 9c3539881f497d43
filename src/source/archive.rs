//! One-file captures (issue 10, item 6): `capture -o rig.tar.gz` and
//! `check --replay rig.tar.gz`.
//!
//! A tarball is the bug-report attachment users already make by hand
//! (`tar czf ... -C DIR .`), so the layout inside is exactly a capture
//! directory (docs/capture-format.md), at the top or in one directory.
//!
//! Unpacking is the dangerous half: the archive is untrusted. It is unpacked
//! into a private temporary directory (0700) through the same
//! directory-handle writer `capture` uses (never following a link, files
//! created exclusively), and every entry is checked first: no absolute
//! path, no `..`, only files, directories and links whose target stays
//! inside, each file and the whole stream bounded. What is refused is
//! reported like any other refusal of a replay (the `capture` probe), and
//! the replay then reads the copy through the confined reader as usual.
//!
//! Crates: `tar` (the Rust tar implementation maintained under the
//! rust-lang/alexcrichton umbrella, used by cargo itself to pack and unpack
//! `.crate` files) and `flate2` (rust-lang's gzip/deflate crate, pure Rust
//! by default through miniz_oxide). Both are long-lived, widely audited and
//! need no C toolchain. We use tar only to read and write headers; all
//! file creation is ours.

use std::io::Read as _;
use std::path::{Component, Path, PathBuf};

use super::MAX_OUTPUT_BYTES;
use super::record::CaptureDir;

/// The whole unpacked stream (a decompression bomb stops here).
const MAX_TOTAL_BYTES: u64 = 512 * 1024 * 1024;

/// Entries in one archive: fixture captures hold a few hundred.
const MAX_ENTRIES: usize = 200_000;

/// Does this path name a tarball rather than a directory?
pub fn is_archive_name(p: &Path) -> bool {
    let s = p.to_string_lossy();
    s.ends_with(".tar.gz") || s.ends_with(".tgz")
}

/// A private temporary directory (0700, made with mkdtemp), removed on drop.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new() -> std::io::Result<TempDir> {
        let template = std::env::temp_dir().join("rigdoctor-XXXXXX");
        let path = nix::unistd::mkdtemp(&template)?;
        Ok(TempDir { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // remove_dir_all does not follow links (Rust 1.58.1, CVE-2022-21658).
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Write the capture directory `dir` (written by us) as a gzip tarball into
/// `out`, an already opened new file.
pub fn pack(dir: &Path, out: std::fs::File) -> std::io::Result<()> {
    let gz = flate2::write::GzEncoder::new(out, flate2::Compression::default());
    let mut b = tar::Builder::new(gz);
    b.mode(tar::HeaderMode::Deterministic);
    b.follow_symlinks(false);
    add_tree(&mut b, dir, Path::new(""))?;
    let gz = b.into_inner()?;
    gz.finish()?.sync_all()
}

fn add_tree<W: std::io::Write>(
    b: &mut tar::Builder<W>,
    base: &Path,
    rel: &Path,
) -> std::io::Result<()> {
    let mut names: Vec<_> = std::fs::read_dir(base.join(rel))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .collect();
    names.sort();
    for name in names {
        let r = rel.join(&name);
        let p = base.join(&r);
        let meta = std::fs::symlink_metadata(&p)?;
        let mut h = tar::Header::new_gnu();
        if meta.file_type().is_symlink() {
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            h.set_mode(0o777);
            b.append_link(&mut h, &r, std::fs::read_link(&p)?)?;
        } else if meta.is_dir() {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_size(0);
            h.set_mode(0o700);
            b.append_data(&mut h, &r, std::io::empty())?;
            add_tree(b, base, &r)?;
        } else if meta.is_file() {
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(meta.len());
            h.set_mode(0o600);
            b.append_data(&mut h, &r, std::fs::File::open(&p)?)?;
        }
    }
    Ok(())
}

/// Why an archive cannot be replayed at all (exit 2).
#[derive(Debug)]
pub struct UnpackError(pub String);

/// A path inside the archive, checked: relative, no `..`, no NUL; `./` and
/// empty components dropped. `None` when refused.
fn clean(p: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) | Component::ParentDir => return None,
        }
    }
    Some(out)
}

/// Does a relative link at `at` pointing at `target` stay inside the root?
fn link_stays_inside(at: &Path, target: &Path) -> bool {
    let mut depth = at.components().count() as isize - 1;
    for c in target.components() {
        match c {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => depth -= 1,
            Component::RootDir | Component::Prefix(_) => return false,
        }
        if depth < 0 {
            return false;
        }
    }
    true
}

/// Unpack the gzip tarball at `archive` into `into` (a new private
/// directory). Returns what was refused, one line each.
pub fn unpack(archive: &Path, into: &Path) -> Result<Vec<String>, UnpackError> {
    let bad = |e: String| UnpackError(format!("{}: {e}", archive.display()));
    let file = std::fs::File::open(archive).map_err(|e| bad(e.to_string()))?;
    if !file.metadata().map(|m| m.is_file()).unwrap_or(false) {
        return Err(bad("not a regular file".into()));
    }
    let out = CaptureDir::create(into).map_err(|e| bad(e.to_string()))?;
    let gz = flate2::read::GzDecoder::new(file).take(MAX_TOTAL_BYTES);
    let mut ar = tar::Archive::new(gz);
    let entries = ar
        .entries()
        .map_err(|e| bad(format!("not a gzip tarball: {e}")))?;
    let mut refused = Vec::new();
    let mut count = 0usize;
    for entry in entries {
        let mut entry = entry.map_err(|e| bad(format!("not a readable gzip tarball: {e}")))?;
        count += 1;
        if count > MAX_ENTRIES {
            return Err(bad(format!("more than {MAX_ENTRIES} entries")));
        }
        let raw = match entry.path() {
            Ok(p) => p.into_owned(),
            Err(e) => {
                refused.push(format!("an entry: unreadable name ({e})"));
                continue;
            }
        };
        let shown = raw.display().to_string();
        let Some(rel) = clean(&raw) else {
            refused.push(format!(
                "{shown}: an absolute path or one with .., not unpacked"
            ));
            continue;
        };
        if rel.as_os_str().is_empty() {
            continue; // `./` itself
        }
        let kind = entry.header().entry_type();
        let result = match kind {
            tar::EntryType::Directory => out.mkdirs(&rel).map(drop).map_err(|e| e.to_string()),
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                // No file of a capture is larger than a command output's bound.
                let limit = MAX_OUTPUT_BYTES as u64;
                if entry.size() > limit {
                    refused.push(format!("{shown}: larger than {limit} bytes, not unpacked"));
                    continue;
                }
                let mut buf = Vec::new();
                match (&mut entry).take(limit).read_to_end(&mut buf) {
                    Ok(_) => out.write(&rel, &buf).map_err(|e| e.to_string()),
                    Err(e) => return Err(bad(format!("truncated or corrupt: {e}"))),
                }
            }
            tar::EntryType::Symlink => match entry.link_name() {
                Ok(Some(t)) if link_stays_inside(&rel, &t) => {
                    out.symlink(&rel, &t).map_err(|e| e.to_string())
                }
                Ok(Some(t)) => {
                    refused.push(format!(
                        "{shown}: a link to {}, outside the capture, not unpacked",
                        t.display()
                    ));
                    continue;
                }
                _ => {
                    refused.push(format!("{shown}: a link without a target, not unpacked"));
                    continue;
                }
            },
            // GNU/pax metadata entries are consumed by the tar crate; anything
            // else (hard links, devices, FIFOs) has no place in a capture.
            other => {
                refused.push(format!("{shown}: a {other:?} entry, not unpacked"));
                continue;
            }
        };
        if let Err(e) = result {
            refused.push(format!("{shown}: {e}"));
        }
    }
    Ok(refused)
}

/// The capture directory inside an unpacked archive: its top, or the one
/// directory at its top (`tar czf x.tar.gz rig-capture`).
pub fn capture_root(unpacked: &Path) -> PathBuf {
    if unpacked.join("capture.json").symlink_metadata().is_ok() {
        return unpacked.to_path_buf();
    }
    let entries: Vec<_> = std::fs::read_dir(unpacked)
        .map(|rd| rd.filter_map(|e| e.ok()).collect())
        .unwrap_or_default();
    if let [only] = entries.as_slice() {
        if only.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            return only.path();
        }
    }
    unpacked.to_path_buf()
}

/// Where `capture -o` writes: a directory, or a tarball, recorded into a
/// private temporary directory and packed at the end.
pub enum CaptureTarget {
    Dir(PathBuf),
    Archive {
        path: PathBuf,
        file: std::fs::File,
        tmp: TempDir,
    },
}

impl CaptureTarget {
    /// For a `.tar.gz`/`.tgz` name, create the file now (new, 0600, never
    /// through a link) so that a name that cannot be written fails before
    /// the probes run.
    pub fn new(output: &Path) -> std::io::Result<CaptureTarget> {
        if !is_archive_name(output) {
            return Ok(CaptureTarget::Dir(output.to_path_buf()));
        }
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags((nix::fcntl::OFlag::O_NOFOLLOW | nix::fcntl::OFlag::O_CLOEXEC).bits())
            .open(output)
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    std::io::Error::new(e.kind(), "it exists; give a new file name")
                } else {
                    e
                }
            })?;
        let tmp = match TempDir::new() {
            Ok(t) => t,
            Err(e) => {
                let _ = std::fs::remove_file(output);
                return Err(e);
            }
        };
        Ok(CaptureTarget::Archive {
            path: output.to_path_buf(),
            file,
            tmp,
        })
    }

    /// The directory Record writes into.
    pub fn record_dir(&self) -> PathBuf {
        match self {
            CaptureTarget::Dir(d) => d.clone(),
            CaptureTarget::Archive { tmp, .. } => tmp.path().join("capture"),
        }
    }

    /// What the user names to replay or attach.
    pub fn shown(&self) -> &Path {
        match self {
            CaptureTarget::Dir(d) => d,
            CaptureTarget::Archive { path, .. } => path,
        }
    }

    pub fn is_archive(&self) -> bool {
        matches!(self, CaptureTarget::Archive { .. })
    }

    /// Pack the recorded directory into the tarball (nothing for a directory).
    /// On failure the half-written tarball is removed.
    pub fn finish(self) -> std::io::Result<()> {
        match self {
            CaptureTarget::Dir(_) => Ok(()),
            CaptureTarget::Archive { path, file, tmp } => {
                let r = pack(&tmp.path().join("capture"), file);
                if r.is_err() {
                    let _ = std::fs::remove_file(&path);
                }
                r
            }
        }
    }

    /// Give up: remove a tarball created by [`CaptureTarget::new`].
    pub fn abandon(self) {
        if let CaptureTarget::Archive { path, .. } = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_paths_are_checked() {
        assert_eq!(
            clean(Path::new("./cmd/x.out")),
            Some(PathBuf::from("cmd/x.out"))
        );
        assert_eq!(clean(Path::new("/etc/passwd")), None);
        assert_eq!(clean(Path::new("root/../../x")), None);
        assert!(link_stays_inside(
            Path::new("root/sys/bus/pci/devices/0000:03:00.0"),
            Path::new("../../../devices/pci0000:00/0000:03:00.0")
        ));
        assert!(!link_stays_inside(
            Path::new("root/x"),
            Path::new("../../y")
        ));
        assert!(!link_stays_inside(
            Path::new("env"),
            Path::new("/proc/self/environ")
        ));
    }
}
