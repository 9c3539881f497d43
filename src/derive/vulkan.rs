//! Computed Vulkan facts: each Vulkan device joined to its GPU on the PCI
//! bus, the GPUs no Vulkan device stands for, a Mesa older than the card
//! (checks/vulkan.toml), the iGPU-first order, what `GGML_VK_VISIBLE_DEVICES`
//! selects, and which package brings a Vulkan driver on this distribution.
//! The probe (probe/vulkan.rs) owns what vulkaninfo printed; this owns only
//! conclusions drawn from it and the bus.

use std::cmp::Ordering;
use std::sync::LazyLock;

use serde::Deserialize;

use crate::diagnose::vercmp;
use crate::rig::{Gpu, MesaTooOld, Rig, VulkanMissing};

const MESA_TOML: &str = include_str!("../../checks/vulkan.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MesaMinimum {
    pub vendor: String,
    pub family: String,
    pub driver: String,
    pub minimum: String,
    #[allow(dead_code, reason = "documentation for reviewers of the table")]
    source: String,
    #[allow(dead_code, reason = "documentation for reviewers of the table")]
    refs: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MesaFile {
    mesa: Vec<MesaMinimum>,
}

/// Parse the Mesa table; errors name the problem (the built-in one is tested).
pub fn parse_table(text: &str) -> Result<Vec<MesaMinimum>, String> {
    let f: MesaFile = toml::from_str(text).map_err(|e| e.to_string())?;
    for m in &f.mesa {
        if m.minimum.split('.').count() < 2
            || !m.minimum.split('.').all(|p| p.parse::<u32>().is_ok())
        {
            return Err(format!(
                "{}: minimum {:?} is not a version",
                m.family, m.minimum
            ));
        }
    }
    Ok(f.mesa)
}

static TABLE: LazyLock<Vec<MesaMinimum>> =
    LazyLock::new(|| parse_table(MESA_TOML).unwrap_or_default());

/// Kernel drivers that hand the card to something else (a VM, nobody).
fn hands_off(driver: &str) -> bool {
    matches!(driver, "vfio-pci" | "pci-stub" | "pciback" | "xen-pciback")
}

/// A GPU a Vulkan driver could run: it computes and a kernel driver drives it.
fn drivable(g: &Gpu) -> bool {
    g.compute && g.driver.as_deref().is_some_and(|d| !hands_off(d))
}

/// The command that installs the Vulkan driver for `vendor` on `os_id`.
fn install_for(vendor: &str, os_id: Option<&str>, nvidia_branch: Option<&str>) -> String {
    let os = os_id.unwrap_or("");
    let debian_like = matches!(
        os,
        "debian" | "ubuntu" | "linuxmint" | "pop" | "raspbian" | "neon" | "elementary" | "zorin"
    );
    let ubuntu_like = matches!(
        os,
        "ubuntu" | "linuxmint" | "pop" | "neon" | "elementary" | "zorin"
    );
    let fedora_like = matches!(
        os,
        "fedora" | "rhel" | "centos" | "rocky" | "almalinux" | "nobara" | "bazzite"
    );
    let arch_like = matches!(
        os,
        "arch" | "manjaro" | "endeavouros" | "cachyos" | "garuda"
    );
    match vendor {
        "nvidia" => {
            let branch = nvidia_branch.unwrap_or("<driver-branch>");
            if ubuntu_like {
                format!("sudo apt install libnvidia-gl-{branch}")
            } else if debian_like {
                "sudo apt install nvidia-vulkan-icd".to_string()
            } else if fedora_like {
                "sudo dnf install xorg-x11-drv-nvidia-libs".to_string()
            } else if arch_like {
                "sudo pacman -S nvidia-utils".to_string()
            } else {
                "install the Vulkan part of the NVIDIA driver (it provides nvidia_icd.json and libGLX_nvidia.so.0)".to_string()
            }
        }
        "intel" | "amd" => {
            if debian_like {
                "sudo apt install mesa-vulkan-drivers".to_string()
            } else if fedora_like {
                "sudo dnf install mesa-vulkan-drivers".to_string()
            } else if arch_like {
                if vendor == "intel" {
                    "sudo pacman -S vulkan-intel".to_string()
                } else {
                    "sudo pacman -S vulkan-radeon".to_string()
                }
            } else if vendor == "intel" {
                "install Mesa's Intel Vulkan driver (libvulkan_intel.so, intel_icd.*.json)"
                    .to_string()
            } else {
                "install Mesa's Radeon Vulkan driver (libvulkan_radeon.so, radeon_icd.*.json)"
                    .to_string()
            }
        }
        _ => "install the GPU vendor's Vulkan driver".to_string(),
    }
}

/// Join each hardware Vulkan device without bus info to a GPU on the bus
/// with the same vendor and device id; several identical cards are matched
/// in bus order (the order Mesa and NVIDIA enumerate them in practice) and
/// marked as a guess.
fn join(rig: &mut Rig) {
    let mut taken: Vec<String> = rig
        .vulkan
        .devices
        .iter()
        .filter_map(|d| d.pci.clone())
        .collect();
    let mut gpus: Vec<&Gpu> = rig.gpus.iter().collect();
    gpus.sort_by(|a, b| a.pci.cmp(&b.pci));
    for d in rig.vulkan.devices.iter_mut() {
        if d.software || d.pci.is_some() {
            continue;
        }
        let (Some(v), Some(id)) = (d.vendor_id.as_deref(), d.device_id.as_deref()) else {
            continue;
        };
        let same: Vec<&&Gpu> = gpus
            .iter()
            .filter(|g| g.vendor_id.eq_ignore_ascii_case(v) && g.device_id.eq_ignore_ascii_case(id))
            .collect();
        let Some(g) = same.iter().find(|g| !taken.contains(&g.pci)) else {
            continue;
        };
        d.pci = Some(g.pci.clone());
        d.pci_from = Some(
            if same.len() == 1 {
                "device-id"
            } else {
                "device-id-order"
            }
            .to_string(),
        );
        taken.push(g.pci.clone());
    }
}

fn ggml_visible(rig: &mut Rig) {
    let v = &mut rig.vulkan;
    v.ggml_visible = rig.env.get("GGML_VK_VISIBLE_DEVICES").cloned();
    let Some(value) = v.ggml_visible.clone() else {
        return;
    };
    let any_discrete = v
        .devices
        .iter()
        .any(|d| d.kind == "discrete" && !d.software);
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        match entry.parse::<u32>() {
            Ok(i) => match v.devices.iter().find(|d| d.index == i) {
                Some(d) => {
                    v.ggml_visible_indices.push(i);
                    if d.kind == "integrated" && any_discrete {
                        v.ggml_visible_integrated.push(i);
                    }
                }
                None => v.ggml_visible_invalid.push(entry.to_string()),
            },
            Err(_) => v.ggml_visible_invalid.push(entry.to_string()),
        }
    }
}

pub fn derive(rig: &mut Rig) {
    join(rig);
    ggml_visible(rig);
    let os_id = rig.host.os_id.clone();
    let nvidia_branch = rig
        .nvidia
        .gpus
        .iter()
        .find_map(|g| g.driver_version.as_deref())
        .and_then(|v| v.split('.').next())
        .map(String::from);
    let drivable: Vec<&Gpu> = rig.gpus.iter().filter(|g| drivable(g)).collect();
    let v = &mut rig.vulkan;
    let mut vendors: Vec<&str> = drivable.iter().map(|g| g.vendor.as_str()).collect();
    vendors.sort();
    vendors.dedup();
    if !vendors.is_empty() {
        let mut cmds: Vec<String> = vendors
            .iter()
            .map(|vendor| install_for(vendor, os_id.as_deref(), nvidia_branch.as_deref()))
            .collect();
        cmds.dedup();
        v.install = Some(cmds.join("\n"));
    }
    let hardware: Vec<&crate::rig::VulkanDevice> =
        v.devices.iter().filter(|d| !d.software).collect();
    v.discrete_indices = hardware
        .iter()
        .filter(|d| d.kind == "discrete")
        .map(|d| d.index)
        .collect();
    v.igpu_first = hardware.first().is_some_and(|d| d.kind == "integrated")
        && hardware.iter().any(|d| d.kind == "discrete");
    if !v.listed {
        // Unknown is unknown: without vulkaninfo's answer nothing is missing.
        return;
    }
    v.software_only = !drivable.is_empty() && !v.devices.is_empty() && hardware.is_empty();
    for g in &drivable {
        let joined = v
            .devices
            .iter()
            .any(|d| d.pci.as_deref() == Some(g.pci.as_str()));
        // An unjoined hardware device of the same vendor may stand for it (no ids printed).
        let unjoined_same_vendor = hardware.iter().any(|d| {
            d.pci.is_none()
                && d.vendor_id
                    .as_deref()
                    .is_none_or(|id| id.eq_ignore_ascii_case(&g.vendor_id))
        });
        if !joined && !unjoined_same_vendor {
            v.missing.push(VulkanMissing {
                pci: g.pci.clone(),
                name: g.name.clone(),
                vendor: g.vendor.clone(),
                driver: g.driver.clone(),
                install: install_for(&g.vendor, os_id.as_deref(), nvidia_branch.as_deref()),
            });
        }
        let (Some(mesa), Some(family)) = (
            v.mesa_version.as_deref(),
            g.catalog.as_ref().and_then(|c| c.family.as_deref()),
        ) else {
            continue;
        };
        if let Some(m) = TABLE
            .iter()
            .find(|m| m.vendor.eq_ignore_ascii_case(&g.vendor_id) && family.starts_with(&m.family))
        {
            if vercmp(mesa, &m.minimum) == Ordering::Less {
                v.mesa_too_old.push(MesaTooOld {
                    pci: g.pci.clone(),
                    name: g.name.clone(),
                    family: m.family.clone(),
                    driver: m.driver.clone(),
                    mesa: mesa.to_string(),
                    minimum: m.minimum.clone(),
                    listed: joined,
                });
            }
        }
    }
    // Once for the rig: the rules' evidence names them per missing GPU.
    if !v.missing.is_empty() || !v.mesa_too_old.is_empty() {
        v.listed_as = v
            .devices
            .iter()
            .map(|d| match &d.pci {
                Some(pci) => format!("GPU{} {} at {pci}", d.index, d.name),
                None => format!("GPU{} {}", d.index, d.name),
            })
            .collect();
        v.listed_names = v.devices.iter().map(|d| d.name.clone()).collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_table_parses() {
        let t = parse_table(MESA_TOML).unwrap_or_default();
        assert!(t.iter().any(|m| m.family == "Battlemage"));
        assert!(t.iter().any(|m| m.family == "RDNA4"));
        assert!(
            parse_table(
                "[[mesa]]\nvendor='x'\nfamily='f'\ndriver='d'\nminimum='new'\nsource=''\nrefs=[]\n"
            )
            .is_err()
        );
    }

    #[test]
    fn install_commands_by_distribution() {
        assert_eq!(
            install_for("amd", Some("ubuntu"), None),
            "sudo apt install mesa-vulkan-drivers"
        );
        assert_eq!(
            install_for("intel", Some("arch"), None),
            "sudo pacman -S vulkan-intel"
        );
        assert_eq!(
            install_for("nvidia", Some("ubuntu"), Some("550")),
            "sudo apt install libnvidia-gl-550"
        );
        assert_eq!(
            install_for("nvidia", Some("debian"), None),
            "sudo apt install nvidia-vulkan-icd"
        );
    }
}
