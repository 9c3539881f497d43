//! Device access: which node of a GPU on the bus this user cannot open, and
//! why (the node's group is not one of this session's groups); which node a
//! bound driver should have made and is absent. Facts for rules/access.toml.

use crate::rig::{BlockedNode, DevNode, MissingNode, Rig};

/// What lets the user read and write `n`, when the kernel says it may.
fn granted_by(n: &DevNode, uid: u32, gid: u32, groups: &[u32]) -> Option<String> {
    if n.read != Some(true) || n.write != Some(true) {
        return None;
    }
    let bits = perm_bits(n.perms.as_deref()?)?;
    let rw = |shift: u32| (bits >> shift) & 6 == 6;
    let in_group = n.group.is_some_and(|g| g == gid || groups.contains(&g));
    Some(
        if uid == 0 {
            "root"
        } else if n.owner == Some(uid) && rw(6) {
            "owner"
        } else if in_group && rw(3) {
            "group"
        } else if rw(0) {
            "other"
        } else {
            // The kernel said yes though the mode does not: an ACL entry,
            // such as the one systemd-logind's uaccess gives the seat's user.
            "acl"
        }
        .to_string(),
    )
}

/// The rwx bits back from `crw-rw----`.
fn perm_bits(p: &str) -> Option<u32> {
    let c: Vec<char> = p.chars().collect();
    if c.len() != 10 {
        return None;
    }
    let mut bits = 0;
    for (i, ch) in c[1..].iter().enumerate() {
        let on = match i % 3 {
            0 => *ch == 'r',
            1 => *ch == 'w',
            _ => matches!(ch, 'x' | 's' | 't'),
        };
        if on {
            bits |= 1 << (8 - i);
        }
    }
    Some(bits)
}

/// The kernel drivers whose GPUs runtimes reach through a DRM render node.
pub(crate) const DRM_DRIVERS: &[&str] = &["i915", "xe", "amdgpu"];

pub fn derive(rig: &mut Rig) {
    let a = &mut rig.access;
    if !a.looked {
        return;
    }
    let (Some(uid), Some(gid)) = (a.uid, a.gid) else {
        return;
    };
    let groups = a.groups.clone();
    for n in &mut a.nodes {
        n.granted_by = granted_by(n, uid, gid, &groups);
    }
    let gpus = &rig.gpus;
    let label = |pci: &str| {
        gpus.iter()
            .find(|g| g.pci == pci)
            .map(|g| format!("{} at {}", g.name, g.pci))
            .unwrap_or_else(|| pci.to_string())
    };
    let bound = |vendor: &str, drivers: &[&str]| {
        gpus.iter()
            .filter(|g| g.compute && g.vendor == vendor)
            .filter(|g| g.driver.as_deref().is_some_and(|d| drivers.contains(&d)))
            .map(|g| format!("{} at {}", g.name, g.pci))
            .collect::<Vec<_>>()
    };
    let amd = bound("amd", &["amdgpu"]);
    let nvidia = bound("nvidia", &["nvidia"]);
    // Blocked: a node of a GPU on the bus, present, that the kernel will
    // not let this user read and write, while the node's group may and the
    // user is not in it. (A node its own group may not use is another story.)
    let mut blocked = Vec::new();
    for n in a.nodes.iter().filter(|n| n.present && !a.root) {
        let served = match n.role.as_str() {
            "render" => n.pci.as_deref().map(label),
            "kfd" => (!amd.is_empty()).then(|| amd.join(", ")),
            "nvidia" | "nvidiactl" | "nvidia-uvm" => {
                (!nvidia.is_empty()).then(|| nvidia.join(", "))
            }
            // card* serves displays; compute opens the render node.
            _ => None,
        };
        let (Some(served), Some(group), Some(perms)) = (served, n.group, n.perms.as_deref()) else {
            continue;
        };
        if n.read != Some(false) && n.write != Some(false) {
            continue;
        }
        let group_rw = perm_bits(perms).is_some_and(|b| (b >> 3) & 6 == 6);
        if !group_rw || group == gid || groups.contains(&group) {
            continue;
        }
        blocked.push(BlockedNode {
            path: n.path.clone(),
            role: n.role.clone(),
            perms: perms.to_string(),
            group,
            group_name: n.group_name.clone().unwrap_or_else(|| group.to_string()),
            gpus: served,
            listed_in_group: n.user_listed == Some(true),
        });
    }
    a.blocked = blocked;
    // Missing: the node a bound driver makes, absent.
    let mut missing = Vec::new();
    let absent = |path: &str| a.nodes.iter().any(|n| n.path == path && !n.present);
    for g in gpus.iter().filter(|g| g.compute) {
        let Some(driver) = g.driver.as_deref() else {
            continue;
        };
        let mut want: Vec<(String, &str)> = Vec::new();
        if DRM_DRIVERS.contains(&driver) {
            if let Some(r) = &g.drm_render {
                want.push((format!("/dev/dri/{r}"), "render"));
            }
        }
        if driver == "amdgpu" {
            want.push(("/dev/kfd".into(), "kfd"));
        }
        if driver == "nvidia" {
            want.push(("/dev/nvidiactl".into(), "nvidiactl"));
        }
        for (path, role) in want {
            if absent(&path) && !missing.iter().any(|m: &MissingNode| m.path == path) {
                missing.push(MissingNode {
                    path,
                    role: role.to_string(),
                    pci: g.pci.clone(),
                    name: g.name.clone(),
                    vendor: g.vendor.clone(),
                    driver: driver.to_string(),
                });
            }
        }
    }
    // /dev/nvidia<N>: minors follow the bus order of the bound GPUs.
    let bound_nv: Vec<_> = gpus
        .iter()
        .filter(|g| g.vendor == "nvidia" && g.driver.as_deref() == Some("nvidia"))
        .collect();
    if bound_nv.len() == gpus.iter().filter(|g| g.vendor == "nvidia").count() {
        for (i, g) in bound_nv.iter().enumerate() {
            let path = format!("/dev/nvidia{i}");
            if absent(&path) {
                missing.push(MissingNode {
                    path,
                    role: "nvidia".into(),
                    pci: g.pci.clone(),
                    name: g.name.clone(),
                    vendor: g.vendor.clone(),
                    driver: "nvidia".into(),
                });
            }
        }
    }
    a.missing = missing;
    a.uvm_missing = !nvidia.is_empty()
        && absent("/dev/nvidia-uvm")
        && !absent("/dev/nvidiactl")
        && a.nvidia_modprobe_setuid != Some(true);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perm_bits_read_back() {
        assert_eq!(perm_bits("crw-rw----"), Some(0o660));
        assert_eq!(perm_bits("crw-rw-rw-"), Some(0o666));
        assert_eq!(perm_bits("-rwsr-xr-x"), Some(0o755));
        assert_eq!(perm_bits("short"), None);
    }

    fn node(perms: &str, owner: u32, group: u32, ok: bool) -> DevNode {
        DevNode {
            path: "/dev/dri/renderD128".into(),
            role: "render".into(),
            present: true,
            perms: Some(perms.into()),
            owner: Some(owner),
            group: Some(group),
            read: Some(ok),
            write: Some(ok),
            ..DevNode::default()
        }
    }

    #[test]
    fn who_grants_access() {
        let g = |n: &DevNode, uid| granted_by(n, uid, 1000, &[109]);
        assert_eq!(
            g(&node("crw-rw----", 0, 109, true), 1000).as_deref(),
            Some("group")
        );
        assert_eq!(
            g(&node("crw-rw----", 0, 44, true), 1000).as_deref(),
            Some("acl")
        );
        assert_eq!(
            g(&node("crw-rw-rw-", 0, 44, true), 1000).as_deref(),
            Some("other")
        );
        assert_eq!(
            g(&node("crw-rw----", 0, 44, true), 0).as_deref(),
            Some("root")
        );
        assert_eq!(g(&node("crw-rw----", 0, 44, false), 1000), None);
    }
}
