//! Which kernel driver each Intel GPU generation is supported on for compute
//! (checks/intel-kmd.toml), joined with the driver bound to each card and the
//! running kernel: a DG2 card on xe lists no OpenCL platform and fails zeInit
//! (compute-runtime #905), a Battlemage card on a kernel before xe knew it has
//! no driver at all.

use std::sync::LazyLock;

use serde::Deserialize;

use crate::diagnose::vercmp;
use crate::rig::{Kmd, Rig};

const KMD_TOML: &str = include_str!("../../checks/intel-kmd.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Platform {
    pub family: String,
    pub name: String,
    pub compute: Vec<String>,
    pub xe_default: Option<String>,
    pub xe_force_probe: Option<String>,
    pub i915_default: Option<String>,
    #[allow(dead_code, reason = "documentation for reviewers of the table")]
    source: String,
}

#[derive(Debug, Deserialize)]
struct KmdFile {
    platform: Vec<Platform>,
}

/// Parse the table; every row names at least one known compute driver.
pub fn parse_platforms(text: &str) -> Result<Vec<Platform>, String> {
    let f: KmdFile = toml::from_str(text).map_err(|e| e.to_string())?;
    for p in &f.platform {
        if p.compute.is_empty() || p.compute.iter().any(|d| d != "i915" && d != "xe") {
            return Err(format!("{}: compute must list i915 and/or xe", p.family));
        }
    }
    Ok(f.platform)
}

static PLATFORMS: LazyLock<Vec<Platform>> =
    LazyLock::new(|| parse_platforms(KMD_TOML).unwrap_or_default());

/// The platform of a catalog family: the longest `family` prefix wins, so
/// `Xe-LPG+ ...` is Meteor/Arrow Lake and not the `Xe-LP` row.
pub fn platform(family: &str) -> Option<&'static Platform> {
    PLATFORMS
        .iter()
        .filter(|p| family.starts_with(&p.family))
        .max_by_key(|p| p.family.len())
}

/// The kernel from which the supported compute driver binds the card on its own.
fn default_since(p: &Platform) -> Option<&str> {
    match p.compute.first().map(String::as_str) {
        Some("xe") => p.xe_default.as_deref(),
        Some("i915") => p.i915_default.as_deref(),
        _ => None,
    }
}

/// `6.8.0-49-generic` is at least `6.12`? None when either is not a version.
fn at_least(kernel: Option<&str>, since: Option<&str>) -> Option<bool> {
    let (k, s) = (kernel?, since?);
    k.starts_with(|c: char| c.is_ascii_digit())
        .then(|| vercmp(k, s).is_ge())
}

pub fn derive(rig: &mut Rig) {
    let kernel = rig.host.kernel.clone();
    for g in rig.gpus.iter_mut().filter(|g| g.vendor == "intel") {
        let Some(p) = g
            .catalog
            .as_ref()
            .and_then(|c| c.family.as_deref())
            .and_then(platform)
        else {
            continue;
        };
        let since = default_since(p);
        g.kmd = Some(Kmd {
            platform: p.name.clone(),
            compute: p.compute.clone(),
            on_compute_driver: g.driver.as_ref().map(|d| p.compute.contains(d)),
            default_since: since.map(str::to_string),
            kernel_default: at_least(kernel.as_deref(), since),
            xe_force_probe: p.xe_force_probe.clone(),
            kernel_force_probe: at_least(kernel.as_deref(), p.xe_force_probe.as_deref()),
            // The id as the kernel's force_probe parameter takes it: `56a0`.
            probe_id: g.device_id.trim_start_matches("0x").to_ascii_lowercase(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_parses_and_families_resolve() {
        let t = parse_platforms(KMD_TOML).expect("checks/intel-kmd.toml");
        assert!(t.len() >= 6);
        let drv = |f: &str| platform(f).map(|p| p.compute.clone());
        assert_eq!(drv("Alchemist (DG2-G10)"), Some(vec!["i915".to_string()]));
        assert_eq!(drv("Battlemage (BMG-G21)"), Some(vec!["xe".to_string()]));
        assert_eq!(
            drv("Xe-LPG+"),
            Some(vec!["i915".to_string(), "xe".to_string()])
        );
        assert_eq!(drv("Xe-LP"), Some(vec!["i915".to_string()]));
        assert_eq!(drv("Xe2-LPG"), Some(vec!["xe".to_string()]));
        assert_eq!(drv("Hopper"), None);
        assert!(
            parse_platforms("[[platform]]\nfamily='x'\nname='x'\ncompute=['nouveau']\nsource=''\n")
                .is_err()
        );
    }

    #[test]
    fn kernels_compare_as_versions() {
        assert_eq!(
            at_least(Some("6.8.0-49-generic"), Some("6.12")),
            Some(false)
        );
        assert_eq!(at_least(Some("6.12.1-arch1-1"), Some("6.12")), Some(true));
        assert_eq!(at_least(Some("6.17.13-1-pve"), Some("6.12")), Some(true));
        assert_eq!(at_least(Some("garbage"), Some("6.12")), None);
        assert_eq!(at_least(None, Some("6.12")), None);
        assert_eq!(at_least(Some("6.8.0"), None), None);
    }
}
