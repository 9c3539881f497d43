//! Device nodes: the files GPU runtimes open, and who this process is.
//! Level Zero, Mesa (anv, radv) and ROCm open `/dev/dri/renderD*`; ROCm also
//! `/dev/kfd`; CUDA `/dev/nvidiactl`, `/dev/nvidia<N>` and `/dev/nvidia-uvm`
//! (NVIDIA's CUDA installation guide, "Device Node Verification").
//!
//! Nodes are looked at with [`Source::stat`] (type, owner, group, mode, and
//! the kernel's `access(2)` answer), never opened; the user's ids come from
//! `/proc/self/status`, names from `/etc/passwd` and `/etc/group`. What it
//! means (which node this user cannot open, which is missing) is
//! derive::access.

use crate::rig::{DevNode, DeviceAccess, Gpu, ProbeReport};
use crate::source::devfs::{NodeInfo, NodeKind, NodeStat};
use crate::source::{Read, Source};

pub const PROBE: &str = "device-access";

/// Ids of a process, from `/proc/<pid>/status` (proc(5): `Uid:` and `Gid:`
/// list real, effective, saved and filesystem ids; `Groups:` the
/// supplementary groups).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ids {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

pub fn parse_status(text: &str) -> Option<Ids> {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':').map(str::trim))
    };
    // The effective id is what the kernel checks on open (the second).
    let second = |v: &str| -> Option<u32> { v.split_whitespace().nth(1)?.parse().ok() };
    let uid = second(field("Uid")?)?;
    let gid = second(field("Gid")?)?;
    let mut groups = Vec::new();
    for g in field("Groups")?.split_whitespace() {
        groups.push(g.parse().ok()?);
    }
    Some(Ids { uid, gid, groups })
}

/// One line of `/etc/group` (group(5)): `name:password:GID:user_list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEntry {
    pub name: String,
    pub gid: u32,
    pub members: Vec<String>,
}

pub fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let mut f = l.trim_end_matches('\r').split(':');
            let name = f.next()?.to_string();
            let _password = f.next()?;
            let gid = f.next()?.parse().ok()?;
            let members = f
                .next()
                .unwrap_or("")
                .split(',')
                .map(str::trim)
                .filter(|m| !m.is_empty())
                .map(String::from)
                .collect();
            (!name.is_empty()).then_some(GroupEntry { name, gid, members })
        })
        .collect()
}

/// The name of `uid` in `/etc/passwd` (passwd(5): `name:password:UID:...`).
pub fn passwd_name(text: &str, uid: u32) -> Option<String> {
    text.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        let _ = f.next()?;
        (f.next()?.parse::<u32>().ok()? == uid && !name.is_empty()).then(|| name.to_string())
    })
}

/// `crw-rw----` for a node of kind `k` with permission bits `mode`.
pub fn perms(k: NodeKind, mode: u32) -> String {
    let t = match k {
        NodeKind::Char => 'c',
        NodeKind::Block => 'b',
        NodeKind::Dir => 'd',
        NodeKind::Link => 'l',
        NodeKind::Fifo => 'p',
        NodeKind::Socket => 's',
        NodeKind::File => '-',
    };
    let mut s = String::from(t);
    for (shift, special, lo, hi) in [
        (6, 0o4000, 's', 'S'),
        (3, 0o2000, 's', 'S'),
        (0, 0o1000, 't', 'T'),
    ] {
        let b = (mode >> shift) & 7;
        s.push(if b & 4 != 0 { 'r' } else { '-' });
        s.push(if b & 2 != 0 { 'w' } else { '-' });
        s.push(match (b & 1 != 0, mode & special != 0) {
            (true, true) => lo,
            (false, true) => hi,
            (true, false) => 'x',
            (false, false) => '-',
        });
    }
    s
}

/// `card0` / `renderD128`, not `card0-HDMI-A-1` or `by-path`.
fn drm_node(name: &str) -> bool {
    ["card", "renderD"].iter().any(|p| {
        name.strip_prefix(p)
            .is_some_and(|d| !d.is_empty() && d.len() <= 4 && d.bytes().all(|b| b.is_ascii_digit()))
    })
}

/// At most this many `/dev/nvidia<N>` are looked at.
const MAX_NVIDIA_NODES: usize = 64;

fn node(path: &str, role: &str, st: &NodeStat) -> DevNode {
    let mut n = DevNode {
        path: path.to_string(),
        role: role.to_string(),
        ..DevNode::default()
    };
    if let NodeStat::Ok(NodeInfo {
        kind,
        mode,
        uid,
        gid,
        read,
        write,
        ..
    }) = st
    {
        n.present = true;
        n.kind = Some(kind.as_str().to_string());
        n.perms = Some(perms(*kind, *mode));
        n.owner = Some(*uid);
        n.group = Some(*gid);
        n.read = *read;
        n.write = *write;
    }
    n
}

pub fn probe(src: &dyn Source, gpus: &[Gpu]) -> (DeviceAccess, ProbeReport) {
    let mut out = DeviceAccess::default();
    // Which nodes: every DRM node listed, the render node of every GPU on
    // the bus (so a missing one is seen), and the compute nodes of ROCm and CUDA.
    let mut paths: Vec<(String, &str)> = Vec::new();
    let mut add = |p: String, role: &'static str| {
        if !paths.iter().any(|(q, _)| *q == p) {
            paths.push((p, role));
        }
    };
    for name in src
        .list("/dev/dri")
        .names()
        .into_iter()
        .filter(|n| drm_node(n))
    {
        let role = if name.starts_with("card") {
            "card"
        } else {
            "render"
        };
        add(format!("/dev/dri/{name}"), role);
    }
    for g in gpus.iter().filter(|g| g.compute) {
        if let Some(r) = g.drm_render.as_deref().filter(|r| drm_node(r)) {
            add(format!("/dev/dri/{r}"), "render");
        }
    }
    add("/dev/kfd".into(), "kfd");
    add("/dev/nvidiactl".into(), "nvidiactl");
    add("/dev/nvidia-uvm".into(), "nvidia-uvm");
    let nv = gpus.iter().filter(|g| g.vendor == "nvidia").count();
    for i in 0..nv.min(MAX_NVIDIA_NODES) {
        add(format!("/dev/nvidia{i}"), "nvidia");
    }
    let mut unknown = None;
    for (path, role) in &paths {
        let st = src.stat(path);
        if let NodeStat::Unknown(why) = &st {
            unknown.get_or_insert_with(|| why.clone());
            continue;
        }
        let mut n = node(path, role, &st);
        if n.role == "render" || n.role == "card" {
            let name = path.rsplit('/').next().unwrap_or("");
            n.pci = gpus
                .iter()
                .find(|g| {
                    g.drm_render.as_deref() == Some(name) || g.drm_card.as_deref() == Some(name)
                })
                .map(|g| g.pci.clone());
        }
        out.nodes.push(n);
    }
    if let Some(why) = unknown {
        // An old capture, or /sys moved without /dev: nothing is judged.
        out.nodes.clear();
        return (
            out,
            ProbeReport::new(
                PROBE,
                "missing",
                0,
                format!("device nodes not looked at: {why}"),
            ),
        );
    }
    let status = src.read("/proc/self/status");
    let ids = status.text().and_then(|t| parse_status(&t));
    let Some(ids) = ids else {
        out.nodes.clear();
        let (st, why) = match status {
            Read::Ok(_) => ("unparsed", "has no Uid, Gid and Groups lines"),
            Read::Missing => ("missing", "is missing"),
            Read::Denied => ("denied", "could not be read: permission denied"),
            Read::Failed(_) => ("failed", "could not be read"),
        };
        return (
            out,
            ProbeReport::new(
                PROBE,
                st,
                0,
                format!("this process's user and groups unknown: /proc/self/status {why}"),
            ),
        );
    };
    out.looked = true;
    out.uid = Some(ids.uid);
    out.gid = Some(ids.gid);
    out.root = ids.uid == 0;
    out.groups = ids.groups.clone();
    let groups = src
        .read("/etc/group")
        .text()
        .map(|t| parse_group(&t))
        .unwrap_or_default();
    let name_of = |gid: u32| groups.iter().find(|g| g.gid == gid).map(|g| g.name.clone());
    out.group_names = ids.groups.iter().filter_map(|g| name_of(*g)).collect();
    out.user = src
        .read("/etc/passwd")
        .text()
        .and_then(|t| passwd_name(&t, ids.uid));
    for n in &mut out.nodes {
        n.group_name = n.group.and_then(name_of);
        n.user_listed = match (&out.user, n.group) {
            (Some(u), Some(g)) if !groups.is_empty() => Some(
                groups
                    .iter()
                    .any(|e| e.gid == g && e.members.iter().any(|m| m == u)),
            ),
            _ => None,
        };
    }
    if nv > 0 {
        out.nvidia_modprobe_setuid = match src.stat("/usr/bin/nvidia-modprobe") {
            NodeStat::Ok(n) => Some(n.kind == NodeKind::File && n.uid == 0 && n.mode & 0o4000 != 0),
            NodeStat::Missing => Some(false),
            _ => None,
        };
        out.nvidia_uvm_loaded = match src.read("/sys/module/nvidia_uvm/initstate") {
            Read::Ok(b) => Some(String::from_utf8_lossy(&b).trim() == "live"),
            Read::Missing => Some(false),
            _ => None,
        };
    }
    let present = out.nodes.iter().filter(|n| n.present).count();
    let detail = format!(
        "uid {}{}, {} group{}; {present} of {} device nodes present",
        ids.uid,
        out.user
            .as_deref()
            .map(|u| format!(" ({u})"))
            .unwrap_or_default(),
        ids.groups.len(),
        if ids.groups.len() == 1 { "" } else { "s" },
        out.nodes.len()
    );
    (out, ProbeReport::new(PROBE, "ok", 0, detail))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_ids() {
        // Lines of a real /proc/self/status (Linux 6.1, a user in render and video).
        let t = "Name:\tcat\nUmask:\t0022\nState:\tR (running)\nTgid:\t4242\nUid:\t1000\t1000\t1000\t1000\nGid:\t1000\t1000\t1000\t1000\nFDSize:\t64\nGroups:\t24 25 27 29 30 44 46 100 106 109 1000 \nNStgid:\t4242\n";
        assert_eq!(
            parse_status(t),
            Some(Ids {
                uid: 1000,
                gid: 1000,
                groups: vec![24, 25, 27, 29, 30, 44, 46, 100, 106, 109, 1000]
            })
        );
        // root in a container: no supplementary groups, an empty Groups line.
        let t = "Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nGroups:\t\n";
        assert_eq!(parse_status(t).map(|i| i.groups.len()), Some(0));
        assert_eq!(parse_status(""), None);
        assert_eq!(parse_status("Uid:\tx\ty\nGid:\t0\t0\nGroups:\n"), None);
        assert_eq!(parse_status("Uid:\t1\t1\nGid:\t1\t1\nGroups:\t4 x\n"), None);
    }

    #[test]
    fn group_and_passwd_lines() {
        let g = "root:x:0:\nvideo:x:44:alice,bob\nrender:x:109:alice\n#c:x:1:\nbroken\n:x:5:\n";
        let e = parse_group(g);
        assert_eq!(e.len(), 3);
        assert_eq!(e[1].members, vec!["alice", "bob"]);
        assert_eq!(e[2].gid, 109);
        let p =
            "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000:Alice,,,:/home/alice:/bin/bash\n";
        assert_eq!(passwd_name(p, 1000).as_deref(), Some("alice"));
        assert_eq!(passwd_name(p, 7), None);
    }

    #[test]
    fn perms_as_ls_prints_them() {
        assert_eq!(perms(NodeKind::Char, 0o660), "crw-rw----");
        assert_eq!(perms(NodeKind::Char, 0o666), "crw-rw-rw-");
        assert_eq!(perms(NodeKind::File, 0o4755), "-rwsr-xr-x");
        assert_eq!(perms(NodeKind::Dir, 0o1777), "drwxrwxrwt");
    }

    #[test]
    fn drm_names() {
        assert!(drm_node("renderD128") && drm_node("card0"));
        assert!(!drm_node("card0-HDMI-A-1") && !drm_node("by-path") && !drm_node("card"));
    }
}
