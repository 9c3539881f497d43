//! Device nodes: what `stat` says about `/dev/dri/renderD128`, `/dev/kfd`,
//! `/dev/nvidia-uvm` (type, owner, group, mode) and whether this process may
//! open it for reading and writing, as the kernel answers `access(2)`
//! (which counts ACLs such as systemd-logind's `uaccess`).
//!
//! A device node cannot be copied into a capture, so record writes one line
//! per node looked at into the capture's `devfs` file and replay answers
//! from it (docs/capture-format.md). This module owns that line format; it
//! never opens a node (opening an NVIDIA node of a hung GPU can block).

use std::collections::BTreeMap;

/// The file type of a node, as `lstat` gives it (never following a link).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    Char,
    Block,
    Dir,
    File,
    Link,
    Fifo,
    Socket,
}

impl NodeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeKind::Char => "char",
            NodeKind::Block => "block",
            NodeKind::Dir => "dir",
            NodeKind::File => "file",
            NodeKind::Link => "link",
            NodeKind::Fifo => "fifo",
            NodeKind::Socket => "socket",
        }
    }

    fn parse(s: &str) -> Option<NodeKind> {
        Some(match s {
            "char" => NodeKind::Char,
            "block" => NodeKind::Block,
            "dir" => NodeKind::Dir,
            "file" => NodeKind::File,
            "link" => NodeKind::Link,
            "fifo" => NodeKind::Fifo,
            "socket" => NodeKind::Socket,
            _ => return None,
        })
    }
}

/// What `lstat` and `access(2)` said about one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    pub kind: NodeKind,
    /// Permission bits with setuid/setgid/sticky (`st_mode & 0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Major and minor number of a device node.
    pub rdev: Option<(u64, u64)>,
    /// `access(R_OK)` and `access(W_OK)` for this process; `None` when not
    /// asked (a link is never followed).
    pub read: Option<bool>,
    pub write: Option<bool>,
}

/// What looking at one node gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeStat {
    Ok(NodeInfo),
    Missing,
    Denied,
    Failed(String),
    /// The source cannot say: a capture made before device nodes were
    /// recorded, or a node it did not look at.
    Unknown(String),
}

fn flag(b: Option<bool>, c: char) -> char {
    match b {
        Some(true) => c,
        Some(false) => '-',
        None => '?',
    }
}

fn unflag(c: char, want: char) -> Option<Option<bool>> {
    match c {
        '?' => Some(None),
        '-' => Some(Some(false)),
        x if x == want => Some(Some(true)),
        _ => None,
    }
}

/// A path that can be one word of a `devfs` line: absolute, printable,
/// no whitespace. Probes only look at names they built themselves.
pub fn storable(path: &str) -> bool {
    path.starts_with('/')
        && path.len() <= 256
        && path.bytes().all(|b| b.is_ascii_graphic())
        && !path.split('/').any(|c| c == "..")
}

/// One line of the capture's `devfs` file (without the newline):
/// `<path> char 0660 0 109 226:128 rw`, or `<path> missing|denied|failed`.
pub fn to_line(path: &str, st: &NodeStat) -> Option<String> {
    if !storable(path) {
        return None;
    }
    Some(match st {
        NodeStat::Ok(n) => format!(
            "{path} {} {:04o} {} {} {} {}{}",
            n.kind.as_str(),
            n.mode & 0o7777,
            n.uid,
            n.gid,
            n.rdev
                .map(|(a, b)| format!("{a}:{b}"))
                .unwrap_or_else(|| "-".into()),
            flag(n.read, 'r'),
            flag(n.write, 'w'),
        ),
        NodeStat::Missing => format!("{path} missing"),
        NodeStat::Denied => format!("{path} denied"),
        NodeStat::Failed(_) => format!("{path} failed"),
        NodeStat::Unknown(_) => return None,
    })
}

/// Parse one line; `None` when it is not one (the node then reads as unknown).
pub fn from_line(line: &str) -> Option<(String, NodeStat)> {
    let w: Vec<&str> = line.split_ascii_whitespace().collect();
    let path = *w.first()?;
    if !storable(path) {
        return None;
    }
    let st = match w.as_slice() {
        [_, "missing"] => NodeStat::Missing,
        [_, "denied"] => NodeStat::Denied,
        [_, "failed"] => NodeStat::Failed("failed when recorded".into()),
        [_, kind, mode, uid, gid, rdev, acc] => {
            let kind = NodeKind::parse(kind)?;
            if mode.len() > 4 {
                return None;
            }
            let mode = u32::from_str_radix(mode, 8).ok()?;
            let rdev = match *rdev {
                "-" => None,
                r => {
                    let (a, b) = r.split_once(':')?;
                    Some((a.parse().ok()?, b.parse().ok()?))
                }
            };
            let mut acc = acc.chars();
            let (r, wr) = (acc.next()?, acc.next()?);
            if acc.next().is_some() {
                return None;
            }
            NodeStat::Ok(NodeInfo {
                kind,
                mode,
                uid: uid.parse().ok()?,
                gid: gid.parse().ok()?,
                rdev,
                read: unflag(r, 'r')?,
                write: unflag(wr, 'w')?,
            })
        }
        _ => return None,
    };
    Some((path.to_string(), st))
}

/// The whole `devfs` file: lines that do not parse are skipped.
pub fn parse(text: &str) -> BTreeMap<String, NodeStat> {
    text.lines().filter_map(from_line).collect()
}

/// `lstat` and `access(2)` of `p` on this machine. Never opens it.
pub(crate) fn stat_path(p: &std::path::Path) -> NodeStat {
    use nix::sys::stat::{SFlag, lstat};
    use nix::unistd::{AccessFlags, access};
    let st = match lstat(p) {
        Ok(st) => st,
        Err(nix::errno::Errno::ENOENT) | Err(nix::errno::Errno::ENOTDIR) => {
            return NodeStat::Missing;
        }
        Err(nix::errno::Errno::EACCES) => return NodeStat::Denied,
        Err(e) => return NodeStat::Failed(e.to_string()),
    };
    let fmt = SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits());
    let kind = match fmt {
        SFlag::S_IFCHR => NodeKind::Char,
        SFlag::S_IFBLK => NodeKind::Block,
        SFlag::S_IFDIR => NodeKind::Dir,
        SFlag::S_IFLNK => NodeKind::Link,
        SFlag::S_IFIFO => NodeKind::Fifo,
        SFlag::S_IFSOCK => NodeKind::Socket,
        _ => NodeKind::File,
    };
    let dev = matches!(kind, NodeKind::Char | NodeKind::Block);
    // access(2) follows links; a link is reported as a link and not followed.
    let ask = |f: AccessFlags| (kind != NodeKind::Link).then(|| access(p, f).is_ok());
    NodeStat::Ok(NodeInfo {
        kind,
        mode: st.st_mode & 0o7777,
        uid: st.st_uid,
        gid: st.st_gid,
        rdev: dev.then(|| {
            (
                nix::sys::stat::major(st.st_rdev),
                nix::sys::stat::minor(st.st_rdev),
            )
        }),
        read: ask(AccessFlags::R_OK),
        write: ask(AccessFlags::W_OK),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip() {
        let n = NodeStat::Ok(NodeInfo {
            kind: NodeKind::Char,
            mode: 0o660,
            uid: 0,
            gid: 109,
            rdev: Some((226, 128)),
            read: Some(false),
            write: None,
        });
        let line = to_line("/dev/dri/renderD128", &n).unwrap();
        assert_eq!(line, "/dev/dri/renderD128 char 0660 0 109 226:128 -?");
        assert_eq!(from_line(&line), Some(("/dev/dri/renderD128".into(), n)));
        for st in [NodeStat::Missing, NodeStat::Denied] {
            let l = to_line("/dev/kfd", &st).unwrap();
            assert_eq!(from_line(&l), Some(("/dev/kfd".into(), st)));
        }
    }

    #[test]
    fn hostile_lines_are_skipped() {
        for l in [
            "",
            "relative char 0660 0 0 - rw",
            "/dev/kfd char 99999 0 0 - rw",
            "/dev/kfd char 0660 x 0 - rw",
            "/dev/kfd char 0660 0 0 1:2:3 rw",
            "/dev/kfd char 0660 0 0 - rwx",
            "/dev/kfd tty 0660 0 0 - rw",
            "/dev/../etc/shadow missing",
            "/dev/kfd",
        ] {
            assert_eq!(from_line(l), None, "{l:?}");
        }
        assert!(to_line("/dev/a b", &NodeStat::Missing).is_none());
        assert!(to_line("/dev/a\nb", &NodeStat::Missing).is_none());
    }

    #[test]
    fn stats_this_machine_without_opening() {
        assert_eq!(
            stat_path(std::path::Path::new("/nonexistent/rigdoctor")),
            NodeStat::Missing
        );
        let NodeStat::Ok(n) = stat_path(std::path::Path::new("/dev/null")) else {
            panic!("/dev/null")
        };
        assert_eq!(n.kind, NodeKind::Char);
        assert_eq!(n.rdev, Some((1, 3)));
        assert_eq!(n.read, Some(true));
    }
}
