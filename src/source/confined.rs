//! The one door into an untrusted directory tree (a capture being replayed,
//! style.md habit 13).
//!
//! A capture is a bug-report attachment: anyone may have made it, so its
//! links, FIFOs, device nodes and sparse files are hostile input (issue 8,
//! item 4). Every path is resolved here, one component at a time, relative
//! to a directory handle on the confinement root:
//! - a link is followed only while it stays beneath the root (sysfs copies
//!   are made of relative links, so those must work); an absolute target or a
//!   `..` that climbs above the root is *refused*, never followed;
//! - only regular files are read and only directories listed; the type is
//!   checked before opening (a device may act on open) and again on the open
//!   handle, which is opened `O_NONBLOCK` so a FIFO swapped in between cannot
//!   block;
//! - every read is bounded, every listing capped.
//!
//! A refusal is not data: callers turn it into a probe status and detail.
//! This module owns no knowledge of the capture layout (replay.rs does).

use std::ffi::OsString;
use std::io::Read as _;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat, readlinkat};
use nix::sys::stat::{FileStat, Mode, SFlag, fstat, fstatat};

/// How many links one resolution may cross (the kernel's own limit is 40).
const MAX_LINK_HOPS: usize = 40;

/// At most this many names are returned for one directory.
pub const MAX_LIST_ENTRIES: usize = 65_536;

/// What one confined operation gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Got<T> {
    Ok(T),
    Missing,
    Denied,
    /// The path was not followed or not opened, and why: it leaves the root,
    /// or it is not a regular file / directory.
    Refused(String),
    Failed(String),
}

/// A directory tree nothing is read from except through its root handle.
#[derive(Debug)]
pub struct Confined {
    root: OwnedFd,
}

/// The resolved parent directory of a path and the final name in it.
struct Parent {
    dir: OwnedFd,
    name: OsString,
    /// How many directories below the root `dir` is (for the lexical check of
    /// a link target).
    depth: usize,
}

fn errno_got<T>(e: Errno) -> Got<T> {
    match e {
        Errno::ENOENT | Errno::ENOTDIR => Got::Missing,
        Errno::EACCES | Errno::EPERM => Got::Denied,
        // O_NOFOLLOW met a link that was swapped in after the check.
        Errno::ELOOP => Got::Refused("a link appeared while it was being opened".into()),
        e => Got::Failed(e.desc().to_string()),
    }
}

fn kind(st: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits())
}

/// Words for a file type a caller refused.
fn kind_name(k: SFlag) -> &'static str {
    if k == SFlag::S_IFIFO {
        "a FIFO"
    } else if k == SFlag::S_IFCHR {
        "a character device"
    } else if k == SFlag::S_IFBLK {
        "a block device"
    } else if k == SFlag::S_IFSOCK {
        "a socket"
    } else if k == SFlag::S_IFDIR {
        "a directory"
    } else if k == SFlag::S_IFLNK {
        "a link"
    } else {
        "not a regular file"
    }
}

fn dir_flags() -> OFlag {
    OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC
}

impl Confined {
    /// Confine to the directory at `path`. The path itself is the caller's
    /// choice and is followed if it is a link; nothing below it will be.
    pub fn open(path: &Path) -> std::io::Result<Confined> {
        let root = nix::fcntl::open(
            path,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(std::io::Error::from)?;
        Ok(Confined { root })
    }

    /// The directory at `rel`, itself confined beneath this root (a link at
    /// `rel` that stays inside is fine).
    pub fn subdir(&self, rel: &str) -> Got<Confined> {
        match self.resolve(rel, true) {
            Got::Ok(p) => {
                match fstatat(&p.dir, p.name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
                    Ok(st) if kind(&st) == SFlag::S_IFDIR => {}
                    Ok(st) => {
                        return Got::Refused(format!("{}, not a directory", kind_name(kind(&st))));
                    }
                    Err(e) => return errno_got(e),
                }
                match openat(&p.dir, p.name.as_os_str(), dir_flags(), Mode::empty()) {
                    Ok(fd) => Got::Ok(Confined { root: fd }),
                    Err(e) => errno_got(e),
                }
            }
            Got::Missing => Got::Missing,
            Got::Denied => Got::Denied,
            Got::Refused(r) => Got::Refused(r),
            Got::Failed(f) => Got::Failed(f),
        }
    }

    /// Resolve every component of `rel` but the last beneath the root,
    /// following links that stay inside. With `follow_last`, a link in the
    /// last place is followed too (the returned name is then never a link).
    fn resolve(&self, rel: &str, follow_last: bool) -> Got<Parent> {
        let mut dirs: Vec<OwnedFd> = Vec::new();
        // Components still to walk, last first.
        let mut pending: Vec<OsString> = Vec::new();
        push_components(&mut pending, Path::new(rel).as_os_str().as_bytes());
        if pending.is_empty() {
            return Got::Refused("an empty path".into());
        }
        let mut hops = 0;
        while let Some(c) = pending.pop() {
            if c == ".." {
                if dirs.pop().is_none() {
                    return Got::Refused("a path that climbs out of the capture".into());
                }
                if pending.is_empty() {
                    return here(&dirs, top(&self.root, &dirs));
                }
                continue;
            }
            let last = pending.is_empty();
            let st = match fstatat(
                top(&self.root, &dirs),
                c.as_os_str(),
                AtFlags::AT_SYMLINK_NOFOLLOW,
            ) {
                Ok(st) => st,
                Err(e) if last && e == Errno::ENOENT => {
                    // The caller reports a missing final name itself.
                    return named(&dirs, top(&self.root, &dirs), c);
                }
                Err(e) => return errno_got(e),
            };
            let k = kind(&st);
            if k == SFlag::S_IFLNK && (!last || follow_last) {
                hops += 1;
                if hops > MAX_LINK_HOPS {
                    return Got::Refused("too many links".into());
                }
                let target = match readlinkat(top(&self.root, &dirs), c.as_os_str()) {
                    Ok(t) => t,
                    Err(e) => return errno_got(e),
                };
                if target.as_bytes().starts_with(b"/") {
                    return Got::Refused(format!(
                        "a link to {}, outside the capture",
                        target.to_string_lossy()
                    ));
                }
                push_components(&mut pending, target.as_bytes());
                if pending.is_empty() {
                    // A link to `.`: the directory it sits in.
                    return here(&dirs, top(&self.root, &dirs));
                }
                continue;
            }
            if last {
                return named(&dirs, top(&self.root, &dirs), c);
            }
            if k != SFlag::S_IFDIR {
                return Got::Missing;
            }
            match openat(
                top(&self.root, &dirs),
                c.as_os_str(),
                dir_flags(),
                Mode::empty(),
            ) {
                Ok(fd) => dirs.push(fd),
                Err(e) => return errno_got(e),
            }
        }
        Got::Refused("an empty path".into())
    }

    /// Read the regular file at `rel`, at most `max` bytes. The flag says
    /// whether the file held more.
    pub fn read(&self, rel: &str, max: u64) -> Got<(Vec<u8>, bool)> {
        let p = match self.resolve(rel, true) {
            Got::Ok(p) => p,
            other => return other.map_never(),
        };
        match fstatat(&p.dir, p.name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) if kind(&st) == SFlag::S_IFREG => {}
            Ok(st) => return Got::Refused(format!("{}, not a regular file", kind_name(kind(&st)))),
            Err(e) => return errno_got(e),
        }
        let fd = match openat(
            &p.dir,
            p.name.as_os_str(),
            OFlag::O_RDONLY
                | OFlag::O_NOFOLLOW
                | OFlag::O_NONBLOCK
                | OFlag::O_NOCTTY
                | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(e) => return errno_got(e),
        };
        // Swapped between the check and the open: the handle decides.
        match fstat(&fd) {
            Ok(st) if kind(&st) == SFlag::S_IFREG => {}
            Ok(st) => return Got::Refused(format!("{}, not a regular file", kind_name(kind(&st)))),
            Err(e) => return errno_got(e),
        }
        let mut buf = Vec::new();
        let f = std::fs::File::from(fd);
        match f.take(max.saturating_add(1)).read_to_end(&mut buf) {
            Ok(_) => {
                let over = buf.len() as u64 > max;
                buf.truncate(max as usize);
                Got::Ok((buf, over))
            }
            Err(e) => Got::Failed(e.to_string()),
        }
    }

    /// The names in the directory at `rel`, sorted, at most
    /// [`MAX_LIST_ENTRIES`].
    pub fn list(&self, rel: &str) -> Got<Vec<String>> {
        let sub = if rel.trim_matches('/').is_empty() {
            match dup(self.root.as_fd()) {
                Ok(fd) => Confined { root: fd },
                Err(e) => return errno_got(e),
            }
        } else {
            match self.subdir(rel) {
                Got::Ok(c) => c,
                other => return other.map_never(),
            }
        };
        let fd = match openat(
            &sub.root,
            ".",
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(e) => return errno_got(e),
        };
        let mut dir = match nix::dir::Dir::from_fd(fd) {
            Ok(d) => d,
            Err(e) => return errno_got(e),
        };
        let mut names = Vec::new();
        for entry in dir.iter() {
            let Ok(entry) = entry else { continue };
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            names.push(String::from_utf8_lossy(name).into_owned());
            if names.len() >= MAX_LIST_ENTRIES {
                break;
            }
        }
        names.sort();
        Got::Ok(names)
    }

    /// The target of the link at `rel`, as stored, if it stays beneath the
    /// root (checked lexically here; reading through it is confined again).
    pub fn link(&self, rel: &str) -> Got<String> {
        let p = match self.resolve(rel, false) {
            Got::Ok(p) => p,
            other => return other.map_never(),
        };
        let target = match readlinkat(&p.dir, p.name.as_os_str()) {
            Ok(t) => t,
            Err(Errno::EINVAL) => return Got::Missing, // not a link
            Err(e) => return errno_got(e),
        };
        let bytes = target.as_bytes();
        if bytes.starts_with(b"/") {
            return Got::Refused(format!(
                "a link to {}, outside the capture",
                target.to_string_lossy()
            ));
        }
        let mut depth = p.depth as isize;
        for c in bytes.split(|b| *b == b'/') {
            match c {
                b"" | b"." => {}
                b".." => depth -= 1,
                _ => depth += 1,
            }
            if depth < 0 {
                return Got::Refused(format!(
                    "a link to {}, outside the capture",
                    target.to_string_lossy()
                ));
            }
        }
        Got::Ok(target.to_string_lossy().into_owned())
    }
}

impl<T> Got<T> {
    /// The same outcome for a non-`Ok` value of another type.
    fn map_never<U>(self) -> Got<U> {
        match self {
            Got::Ok(_) => Got::Failed("internal: unexpected success".into()),
            Got::Missing => Got::Missing,
            Got::Denied => Got::Denied,
            Got::Refused(r) => Got::Refused(r),
            Got::Failed(f) => Got::Failed(f),
        }
    }
}

fn dup(fd: std::os::fd::BorrowedFd<'_>) -> Result<OwnedFd, Errno> {
    fd.try_clone_to_owned()
        .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(Errno::EIO as i32)))
}

/// The directory the walk is in: the last one entered, else the root.
fn top<'a>(root: &'a OwnedFd, dirs: &'a [OwnedFd]) -> std::os::fd::BorrowedFd<'a> {
    dirs.last().map(|d| d.as_fd()).unwrap_or(root.as_fd())
}

/// The directory `cur` itself, as a parent and the name `.`.
fn here(dirs: &[OwnedFd], cur: std::os::fd::BorrowedFd<'_>) -> Got<Parent> {
    named(dirs, cur, ".".into())
}

/// `name` inside the directory `cur` (a copy of its handle), `dirs.len()` below the root.
fn named(dirs: &[OwnedFd], cur: std::os::fd::BorrowedFd<'_>, name: OsString) -> Got<Parent> {
    match dup(cur) {
        Ok(dir) => Got::Ok(Parent {
            dir,
            name,
            depth: dirs.len(),
        }),
        Err(e) => errno_got(e),
    }
}

/// Push the components of `path` onto `pending` so that the first is popped
/// first. A leading `/` is dropped: logical paths are absolute, and are
/// always taken beneath the root.
fn push_components(pending: &mut Vec<OsString>, path: &[u8]) {
    for c in path.rsplit(|b| *b == b'/') {
        if c.is_empty() || c == b"." {
            continue;
        }
        pending.push(std::ffi::OsStr::from_bytes(c).to_os_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn tree() -> (tempfile::TempDir, Confined) {
        let d = tempfile::tempdir().unwrap();
        let r = d.path().join("r");
        std::fs::create_dir_all(r.join("sys/devices/pci0/0000:03:00.0")).unwrap();
        std::fs::create_dir_all(r.join("sys/bus/pci/devices")).unwrap();
        std::fs::write(r.join("sys/devices/pci0/0000:03:00.0/vendor"), "0x8086\n").unwrap();
        symlink(
            "../../../devices/pci0/0000:03:00.0",
            r.join("sys/bus/pci/devices/0000:03:00.0"),
        )
        .unwrap();
        std::fs::write(d.path().join("outside"), "SECRET").unwrap();
        let c = Confined::open(&r).unwrap();
        (d, c)
    }

    #[test]
    fn links_that_stay_inside_are_followed() {
        let (_d, c) = tree();
        assert_eq!(
            c.read("/sys/bus/pci/devices/0000:03:00.0/vendor", 100),
            Got::Ok((b"0x8086\n".to_vec(), false))
        );
        assert_eq!(
            c.list("/sys/bus/pci/devices/0000:03:00.0"),
            Got::Ok(vec!["vendor".to_string()])
        );
        assert_eq!(
            c.link("/sys/bus/pci/devices/0000:03:00.0"),
            Got::Ok("../../../devices/pci0/0000:03:00.0".to_string())
        );
        assert_eq!(c.read("/sys/nothing", 100), Got::Missing);
    }

    #[test]
    fn links_that_leave_are_refused() {
        let (d, c) = tree();
        let r = d.path().join("r");
        symlink("../outside", r.join("up")).unwrap();
        symlink(d.path().join("outside"), r.join("abs")).unwrap();
        symlink("sys/../../outside", r.join("sneaky")).unwrap();
        std::fs::create_dir(r.join("deep")).unwrap();
        symlink("..", r.join("deep/parent")).unwrap();
        for p in [
            "/up",
            "/abs",
            "/sneaky",
            "/deep/parent/../outside",
            "/../outside",
        ] {
            assert!(matches!(c.read(p, 100), Got::Refused(_)), "{p}");
        }
        assert!(matches!(c.link("/up"), Got::Refused(_)));
        assert!(matches!(c.link("/abs"), Got::Refused(_)));
        // A link to the parent that stays inside is fine.
        assert!(matches!(c.list("/deep/parent"), Got::Ok(_)));
    }

    #[test]
    fn bounded_read_says_it_was_cut() {
        let (d, c) = tree();
        std::fs::write(d.path().join("r/big"), vec![b'x'; 1000]).unwrap();
        let Got::Ok((b, over)) = c.read("/big", 10) else {
            panic!("not read")
        };
        assert_eq!(b.len(), 10);
        assert!(over);
    }

    #[test]
    fn fifos_and_directories_are_not_read() {
        let (d, c) = tree();
        nix::unistd::mkfifo(&d.path().join("r/fifo"), Mode::from_bits_truncate(0o600)).unwrap();
        assert!(matches!(c.read("/fifo", 100), Got::Refused(_)));
        assert!(matches!(c.read("/sys", 100), Got::Refused(_)));
        assert!(matches!(c.list("/fifo"), Got::Refused(_)));
    }
}
