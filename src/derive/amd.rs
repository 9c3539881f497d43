//! Computed AMD facts: which gfx targets ROCm ships kernels for and the
//! HSA_OVERRIDE_GFX_VERSION that works for the others (checks/amd-gfx.toml),
//! whether the override that is set fits each GPU, which agents are
//! integrated, what ROCR_VISIBLE_DEVICES / HIP_VISIBLE_DEVICES leave visible,
//! and torch's ROCm build.

use std::collections::HashMap;
use std::sync::LazyLock;

use serde::Deserialize;

use super::catalog;
use crate::diagnose::vercmp;
use crate::rig::{AmdAgent, AmdVisible, Rig};

const GFX_TOML: &str = include_str!("../../checks/amd-gfx.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    pub gfx: String,
    pub supported: bool,
    #[serde(rename = "override")]
    pub override_value: Option<String>,
    pub native_since: Option<String>,
    #[allow(dead_code, reason = "documentation for reviewers of the table")]
    note: Option<String>,
}

#[derive(Debug, Deserialize)]
struct GfxFile {
    target: Vec<Target>,
}

/// Parse a gfx table; errors name the problem (the built-in one is tested).
pub fn parse_targets(text: &str) -> Result<HashMap<String, Target>, String> {
    let f: GfxFile = toml::from_str(text).map_err(|e| e.to_string())?;
    let mut m = HashMap::new();
    for t in f.target {
        if let Some(o) = &t.override_value {
            if parse_override(o).is_none() {
                return Err(format!("{}: override {o:?} is not x.y.z", t.gfx));
            }
        }
        if m.insert(t.gfx.clone(), t.clone()).is_some() {
            return Err(format!("{} is listed twice", t.gfx));
        }
    }
    Ok(m)
}

static TARGETS: LazyLock<HashMap<String, Target>> =
    LazyLock::new(|| parse_targets(GFX_TOML).unwrap_or_default());

/// `10.3.0` -> (10, 3, 0). The variable takes exactly three decimal parts.
pub fn parse_override(v: &str) -> Option<(u32, u32, u32)> {
    let parts: Vec<&str> = v.trim().split('.').collect();
    if parts.len() != 3
        || parts
            .iter()
            .any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    Some((
        parts[0].parse().ok()?,
        parts[1].parse().ok()?,
        parts[2].parse().ok()?,
    ))
}

/// The target an override claims: `10.3.0` -> `gfx1030`, `9.0.10` -> `gfx90a`.
pub fn override_target(v: &str) -> Option<String> {
    let (maj, min, step) = parse_override(v)?;
    (min < 16 && step < 16).then(|| format!("gfx{maj}{min:x}{step:x}"))
}

/// `gfx1031` -> (10, 3); `gfx90a` -> (9, 0); `gfx942` -> (9, 4).
pub fn family(gfx: &str) -> Option<(u32, u32)> {
    let d = gfx.strip_prefix("gfx")?;
    if d.len() < 3 || !d.is_ascii() {
        return None;
    }
    let (major, rest) = d.split_at(d.len() - 2);
    let minor = u32::from_str_radix(&rest[..1], 16).ok()?;
    Some((major.parse().ok()?, minor))
}

/// Is `gfx` supported with `rocm` installed? None when the table does not know it.
pub fn supported(gfx: &str, rocm: Option<&str>) -> Option<bool> {
    let t = TARGETS.get(gfx)?;
    // With the installed release known, `native_since` decides; otherwise
    // the table's verdict for current releases.
    match (&t.native_since, rocm) {
        (Some(since), Some(have)) => Some(vercmp(have, since) != std::cmp::Ordering::Less),
        _ => Some(t.supported),
    }
}

fn native_since(gfx: &str) -> Option<String> {
    TARGETS.get(gfx).and_then(|t| t.native_since.clone())
}

fn suggested(gfx: &str) -> Option<String> {
    TARGETS.get(gfx).and_then(|t| t.override_value.clone())
}

/// `2.5.1+rocm6.2` -> `6.2`.
pub fn rocm_of_torch(torch: &str) -> Option<String> {
    let local = torch.split_once('+')?.1;
    let v = local.strip_prefix("rocm")?;
    (!v.is_empty()).then(|| v.to_string())
}

/// Resolve one list of device entries (indices or `GPU-` UUIDs) against `pool`.
fn select(value: &str, pool: &[(u32, Option<String>)]) -> (Vec<u32>, Vec<String>) {
    let mut out = Vec::new();
    let mut invalid = Vec::new();
    for t in value.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let hit = if let Ok(n) = t.parse::<i64>() {
            usize::try_from(n)
                .ok()
                .and_then(|n| pool.get(n))
                .map(|p| p.0)
        } else {
            pool.iter()
                .find(|(_, u)| u.as_deref().is_some_and(|u| u.eq_ignore_ascii_case(t)))
                .map(|p| p.0)
        };
        match hit {
            Some(i) if !out.contains(&i) => out.push(i),
            Some(_) => {}
            None => invalid.push(t.to_string()),
        }
    }
    (out, invalid)
}

/// ROCR_VISIBLE_DEVICES, then the HIP-level list over what ROCr left.
pub fn amd_visible(
    rocr: Option<&str>,
    hip: Option<(&str, &str)>,
    agents: &[AmdAgent],
) -> AmdVisible {
    let mut v = AmdVisible {
        rocr: rocr.map(str::to_string),
        hip: hip.map(|h| h.1.to_string()),
        hip_var: hip.map(|h| h.0.to_string()),
        ..AmdVisible::default()
    };
    let mut pool: Vec<(u32, Option<String>)> =
        agents.iter().map(|a| (a.index, a.uuid.clone())).collect();
    if let Some(r) = rocr {
        let (keep, bad) = select(r, &pool);
        v.invalid.extend(bad);
        pool.retain(|p| keep.contains(&p.0));
        pool.sort_by_key(|p| keep.iter().position(|k| *k == p.0));
    }
    if let Some((_, h)) = hip {
        // HIP accepts indices only; they count what ROCr left.
        let (keep, bad) = select(h, &pool);
        v.invalid.extend(bad);
        pool = keep.into_iter().map(|k| (k, None)).collect();
    }
    v.indices = pool.into_iter().map(|p| p.0).collect();
    v
}

pub fn derive(rig: &mut Rig) {
    let amd = &mut rig.amd;
    amd.torch_rocm = rig
        .python
        .packages
        .get("torch")
        .and_then(|t| rocm_of_torch(t));
    amd.torch_rocm_matches = match (&amd.torch_rocm, &amd.rocm_version) {
        (Some(t), Some(r)) => {
            let mm = |v: &str| v.split('.').take(2).collect::<Vec<_>>().join(".");
            Some(mm(t) == mm(r))
        }
        _ => None,
    };
    amd.override_value = rig.env.get("HSA_OVERRIDE_GFX_VERSION").cloned();
    amd.override_valid = amd
        .override_value
        .as_deref()
        .map(|v| parse_override(v).is_some());
    amd.override_gfx = amd.override_value.as_deref().and_then(override_target);
    let rocm = amd.rocm_version.clone();
    for a in &mut amd.agents {
        let Some(gfx) = a.gfx.clone() else { continue };
        a.supported = supported(&gfx, rocm.as_deref());
        a.override_suggested = suggested(&gfx);
        a.native_since = native_since(&gfx);
        // Per-device overrides (HSA_OVERRIDE_GFX_VERSION_<n>) win over the global one.
        a.override_value = rig
            .env
            .get(&format!("HSA_OVERRIDE_GFX_VERSION_{}", a.index))
            .or(amd.override_value.as_ref())
            .cloned();
        a.override_fits = a.override_value.as_deref().and_then(|o| {
            let claimed = override_target(o)?;
            let fam_ok = family(&claimed) == family(&gfx);
            let claimed_ok = supported(&claimed, rocm.as_deref()).unwrap_or(true);
            Some(fam_ok && claimed_ok)
        });
        a.integrated = rig
            .gpus
            .iter()
            .find(|g| a.pci.as_deref() == Some(g.pci.as_str()))
            .and_then(|g| g.discrete.map(|d| !d))
            .or_else(|| {
                a.chip_id
                    .as_deref()
                    .and_then(|id| catalog::lookup("0x1002", id))
                    .map(|c| c.kind == "integrated")
            });
    }
    let hip = ["HIP_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES"]
        .iter()
        .find_map(|k| rig.env.get(*k).map(|v| (*k, v.as_str())));
    amd.visible = amd_visible(
        rig.env.get("ROCR_VISIBLE_DEVICES").map(String::as_str),
        hip,
        &amd.agents,
    );
    let vis = amd.visible.indices.clone();
    for a in &mut amd.agents {
        a.visible = vis.contains(&a.index);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_parses() {
        let t = parse_targets(GFX_TOML).expect("checks/amd-gfx.toml");
        assert!(t.len() > 20);
        assert!(
            parse_targets("[[target]]\ngfx='gfx1'\nsupported=false\noverride='gfx1030'\n").is_err()
        );
    }

    #[test]
    fn overrides() {
        assert_eq!(parse_override("10.3.0"), Some((10, 3, 0)));
        assert_eq!(parse_override("gfx1102"), None);
        assert_eq!(parse_override("10.3"), None);
        assert_eq!(parse_override(" 11.0.0 "), Some((11, 0, 0)));
        assert_eq!(override_target("10.3.0").as_deref(), Some("gfx1030"));
        assert_eq!(override_target("9.0.10").as_deref(), Some("gfx90a"));
        assert_eq!(override_target("11.5.1").as_deref(), Some("gfx1151"));
        assert_eq!(family("gfx1031"), Some((10, 3)));
        assert_eq!(family("gfx90a"), Some((9, 0)));
        assert_eq!(family("gfx942"), Some((9, 4)));
        assert_eq!(family("gfx"), None);
    }

    #[test]
    fn support_follows_the_installed_release() {
        assert_eq!(supported("gfx1100", None), Some(true));
        assert_eq!(supported("gfx1031", Some("6.4.1")), Some(false));
        assert_eq!(supported("gfx1103", Some("6.4.1")), Some(false));
        assert_eq!(supported("gfx1103", Some("7.2.0")), Some(true));
        assert_eq!(supported("gfx9999", None), None);
        assert_eq!(supported("gfx1201", Some("6.2.4")), Some(false));
        assert_eq!(supported("gfx1201", Some("6.4.1")), Some(true));
        assert_eq!(supported("gfx1201", None), Some(true));
        assert_eq!(rocm_of_torch("2.5.1+rocm6.2").as_deref(), Some("6.2"));
        assert_eq!(rocm_of_torch("2.5.1+cu124"), None);
    }

    #[test]
    fn rocr_then_hip() {
        let agents: Vec<AmdAgent> = (0..2)
            .map(|i| AmdAgent {
                index: i,
                uuid: Some(format!("GPU-{i}")),
                ..AmdAgent::default()
            })
            .collect();
        let v = amd_visible(Some("1"), None, &agents);
        assert_eq!(v.indices, vec![1]);
        let v = amd_visible(Some("1"), Some(("HIP_VISIBLE_DEVICES", "1")), &agents);
        assert!(v.indices.is_empty());
        assert_eq!(v.invalid, vec!["1"]);
        let v = amd_visible(Some("1"), Some(("HIP_VISIBLE_DEVICES", "0")), &agents);
        assert_eq!(v.indices, vec![1]);
        let v = amd_visible(Some("GPU-0"), None, &agents);
        assert_eq!(v.indices, vec![0]);
        let v = amd_visible(None, None, &agents);
        assert_eq!(v.indices, vec![0, 1]);
    }
}
