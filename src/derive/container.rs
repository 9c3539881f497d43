//! Containers: inside one or not, which engine, and which GPUs on the bus
//! were not passed in. Facts for rules/container.toml.
//!
//! A container gets its own `/dev`: Docker, Podman, Kubernetes and LXC
//! mount a tmpfs there and create only the nodes they were told to pass
//! (`--device`, `--gpus`). A host's `/dev` is the kernel's devtmpfs. So the
//! filesystem of `/dev` decides, and the other signs (an overlay root, the
//! engines' marker files, the `container` variable, the cgroup path) only
//! confirm: `/.dockerenv` alone is not enough (it is found on VMs built
//! from a container image), nor is a tmpfs `/dev` alone (an initramfs-less
//! host may mount one). When the mounts could not be read nothing is said.

use crate::rig::{Container, DeviceAccess, Gpu, Rig, UnpassedGpu};

use super::access::DRM_DRIVERS;

/// Root filesystems of container images (overlay2, Podman's rootless
/// fuse-overlayfs, Docker's old aufs).
fn image_root(fs: &str) -> bool {
    matches!(fs, "overlay" | "fuse.fuse-overlayfs" | "aufs")
}

/// Inside or not, the engine, and why: a pure function of the probed
/// facts and the `container` variable.
pub fn judge(
    c: &Container,
    env_container: Option<&str>,
) -> (Option<bool>, Option<String>, Vec<String>) {
    let mut why = Vec::new();
    let env_container = env_container.map(str::trim).filter(|v| !v.is_empty());
    let root_image = c.root_fs.as_deref().is_some_and(image_root);
    let mut signs = Vec::new();
    if let Some(fs) = c.root_fs.as_deref().filter(|f| image_root(f)) {
        signs.push(format!("/ is {fs} (a container image's layers)"));
    }
    if c.dockerenv == Some(true) {
        signs.push("/.dockerenv exists".to_string());
    }
    if c.containerenv == Some(true) {
        signs.push("/run/.containerenv exists (Podman)".to_string());
    }
    if let Some(v) = env_container {
        signs.push(format!("container={v} is set"));
    }
    if let Some(e) = &c.cgroup_engine {
        signs.push(format!("/proc/self/cgroup names {e}"));
    }
    let engine = || {
        env_container
            .map(|v| match v {
                "oci" => "podman".to_string(),
                other => other.to_string(),
            })
            .or_else(|| (c.containerenv == Some(true)).then(|| "podman".to_string()))
            .or_else(|| c.cgroup_engine.clone())
            .or_else(|| (c.dockerenv == Some(true)).then(|| "docker".to_string()))
    };
    let inside = match c.dev_fs.as_deref() {
        Some("devtmpfs") => {
            // A container given the host's /dev (`-v /dev:/dev`) is still
            // one, but only the image root with a runtime's own mark says so.
            if root_image && (c.cgroup_engine.is_some() || env_container.is_some()) {
                why.push("/dev is the host's devtmpfs, bound into the container".into());
                why.append(&mut signs);
                Some(true)
            } else {
                why.push("/dev is devtmpfs, the kernel's own: not a container's /dev".into());
                if !signs.is_empty() {
                    why.push(format!("{} (not enough alone)", signs.join(", ")));
                }
                Some(false)
            }
        }
        Some("tmpfs") if !signs.is_empty() => {
            why.push("/dev is a tmpfs of its own".into());
            why.append(&mut signs);
            Some(true)
        }
        Some(fs) => {
            why.push(format!(
                "/dev is {fs}{}",
                if fs == "tmpfs" {
                    ", but nothing else marks a container"
                } else {
                    ""
                }
            ));
            None
        }
        None => None,
    };
    let engine = if inside == Some(true) { engine() } else { None };
    (inside, engine, why)
}

/// Nodes the runtimes of `g` open that are absent from the container's
/// `/dev`. Only nodes that were looked at count; a GPU whose render node
/// sysfs does not name is judged by `/dev/kfd` / `/dev/nvidiactl` alone.
fn missing_nodes(g: &Gpu, a: &DeviceAccess) -> Vec<String> {
    let absent = |path: &str| a.nodes.iter().any(|n| n.path == path && !n.present);
    let Some(driver) = g.driver.as_deref() else {
        return Vec::new();
    };
    let mut want = Vec::new();
    if DRM_DRIVERS.contains(&driver) {
        if let Some(r) = &g.drm_render {
            want.push(format!("/dev/dri/{r}"));
        }
    }
    if driver == "amdgpu" {
        want.push("/dev/kfd".into());
    }
    if driver == "nvidia" {
        want.push("/dev/nvidiactl".into());
    }
    want.into_iter().filter(|p| absent(p)).collect()
}

pub fn derive(rig: &mut Rig) {
    let env_container = rig.env.get("container").map(String::as_str);
    let (inside, engine, evidence) = judge(&rig.container, env_container);
    let c = &mut rig.container;
    c.inside = inside;
    c.engine = engine;
    c.evidence = evidence;
    c.discrete_gpus = rig
        .gpus
        .iter()
        .filter(|g| g.compute && g.discrete == Some(true))
        .count() as u32;
    if inside != Some(true) || !rig.access.looked {
        return;
    }
    for g in rig.gpus.iter().filter(|g| g.compute) {
        let missing = missing_nodes(g, &rig.access);
        if missing.is_empty() {
            continue;
        }
        for m in &missing {
            if !c.missing_nodes.contains(m) {
                c.missing_nodes.push(m.clone());
            }
        }
        c.gpus_without_nodes.push(UnpassedGpu {
            pci: g.pci.clone(),
            name: g.name.clone(),
            vendor: g.vendor.clone(),
            driver: g.driver.clone().unwrap_or_default(),
            missing,
        });
        if !c.unpassed_vendors.contains(&g.vendor) {
            c.unpassed_vendors.push(g.vendor.clone());
        }
    }
    c.unpassed_vendors.sort();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(root: Option<&str>, dev: Option<&str>, dockerenv: Option<bool>) -> Container {
        Container {
            root_fs: root.map(String::from),
            dev_fs: dev.map(String::from),
            dockerenv,
            containerenv: Some(false),
            ..Container::default()
        }
    }

    #[test]
    fn overlay_root_and_tmpfs_dev_is_docker() {
        let (inside, engine, why) = judge(&c(Some("overlay"), Some("tmpfs"), Some(true)), None);
        assert_eq!(inside, Some(true));
        assert_eq!(engine.as_deref(), Some("docker"));
        assert!(why.iter().any(|w| w.contains("/.dockerenv")));
    }

    #[test]
    fn dockerenv_on_a_devtmpfs_host_is_not_a_container() {
        // The development VM: /.dockerenv, ext4 root, devtmpfs /dev.
        let (inside, engine, why) = judge(&c(Some("ext4"), Some("devtmpfs"), Some(true)), None);
        assert_eq!(inside, Some(false));
        assert_eq!(engine, None);
        assert!(why.iter().any(|w| w.contains("not enough alone")));
        // Even with an overlay root, a marker file is not enough.
        let (inside, _, _) = judge(&c(Some("overlay"), Some("devtmpfs"), Some(true)), None);
        assert_eq!(inside, Some(false));
    }

    #[test]
    fn the_hosts_dev_bound_in() {
        let mut k = c(Some("overlay"), Some("devtmpfs"), Some(true));
        k.cgroup_engine = Some("docker".into());
        assert_eq!(judge(&k, None).0, Some(true));
    }

    #[test]
    fn unknown_is_unknown() {
        // Mounts not read (an old capture): nothing is said, whatever else.
        let mut k = c(None, None, Some(true));
        k.cgroup_engine = Some("docker".into());
        assert_eq!(judge(&k, Some("docker")), (None, None, Vec::new()));
        // A tmpfs /dev with nothing else.
        let (inside, _, why) = judge(&c(Some("ext4"), Some("tmpfs"), Some(false)), None);
        assert_eq!(inside, None);
        assert!(why[0].contains("nothing else"));
    }

    #[test]
    fn engines() {
        let mut k = c(Some("overlay"), Some("tmpfs"), None);
        k.containerenv = Some(true);
        assert_eq!(judge(&k, None).1.as_deref(), Some("podman"));
        assert_eq!(judge(&k, Some("podman")).1.as_deref(), Some("podman"));
        let k = c(Some("zfs"), Some("tmpfs"), Some(false));
        assert_eq!(judge(&k, Some("lxc")).1.as_deref(), Some("lxc"));
        let mut k = c(Some("overlay"), Some("tmpfs"), Some(false));
        k.cgroup_engine = Some("kubernetes".into());
        assert_eq!(judge(&k, None).1.as_deref(), Some("kubernetes"));
        // Inside, but no engine named.
        let k = c(Some("overlay"), Some("tmpfs"), Some(false));
        assert_eq!(judge(&k, None), (Some(true), None, judge(&k, None).2));
    }
}
