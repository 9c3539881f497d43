//! Computed AMD facts: which gfx targets ROCm ships kernels for and the
//! HSA_OVERRIDE_GFX_VERSION that works for the others (checks/amd-gfx.toml),
//! whether the override that is set fits each GPU, which agents are
//! integrated, what ROCR_VISIBLE_DEVICES / HIP_VISIBLE_DEVICES leave visible,
//! and torch's ROCm build. Each GPU's own gfx target comes from its PCI id
//! (checks/amd-pci-gfx.toml), because rocminfo may be missing, fail, or report
//! the target HSA_OVERRIDE_GFX_VERSION claims; the installed torch wheel's
//! targets come from checks/torch-rocm.toml.

use std::collections::HashMap;
use std::sync::LazyLock;

use serde::Deserialize;

use super::catalog;
use crate::diagnose::vercmp;
use crate::rig::{AmdAgent, AmdCard, AmdVisible, Rig, TorchWheel};

const GFX_TOML: &str = include_str!("../../checks/amd-gfx.toml");
const TORCH_TOML: &str = include_str!("../../checks/torch-rocm.toml");

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

/// The override checks/amd-gfx.toml knows to work for `gfx`, if any.
pub fn suggested(gfx: &str) -> Option<String> {
    TARGETS.get(gfx).and_then(|t| t.override_value.clone())
}

/// One row of checks/torch-rocm.toml: torch minor lines built against some
/// ROCm series, and the gfx targets those wheels ship.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TorchBuild {
    pub torch_min: String,
    pub torch_max: Option<String>,
    pub rocm: Vec<String>,
    #[serde(default)]
    pub nightly: bool,
    pub gfx: Vec<String>,
    #[allow(dead_code, reason = "documentation for reviewers of the table")]
    source: String,
}

impl TorchBuild {
    fn covers(&self, minor: &str) -> bool {
        vercmp(minor, &self.torch_min).is_ge()
            && self
                .torch_max
                .as_deref()
                .is_none_or(|m| vercmp(minor, m).is_le())
    }
}

#[derive(Debug, Deserialize)]
struct TorchFile {
    build: Vec<TorchBuild>,
}

/// Parse the torch wheel table; rows of one ROCm series must not overlap, or
/// the answer would depend on row order.
pub fn parse_torch_builds(text: &str) -> Result<Vec<TorchBuild>, String> {
    let f: TorchFile = toml::from_str(text).map_err(|e| e.to_string())?;
    for (i, a) in f.build.iter().enumerate() {
        if let Some(g) = a.gfx.iter().find(|g| gfx_version(g).is_none()) {
            return Err(format!("torch {}: {g:?} is not a gfx target", a.torch_min));
        }
        for b in &f.build[i + 1..] {
            let shared = a.rocm.iter().find(|r| b.rocm.contains(r));
            let overlap = a.covers(&b.torch_min) || b.covers(&a.torch_min);
            if let (Some(r), true) = (shared, overlap) {
                return Err(format!(
                    "rocm{r}: torch {} and {} rows overlap",
                    a.torch_min, b.torch_min
                ));
            }
        }
    }
    Ok(f.build)
}

static TORCH_BUILDS: LazyLock<Vec<TorchBuild>> =
    LazyLock::new(|| parse_torch_builds(TORCH_TOML).unwrap_or_default());

/// `2.4.1+rocm6.1` -> (`2.4`, `6.1`); a nightly `2.10.0.dev20250929+rocm7.0`
/// counts as the 2.10 line.
pub fn torch_series(torch: &str) -> Option<(String, String)> {
    let (public, local) = torch.trim().split_once('+')?;
    let rocm = local.strip_prefix("rocm")?;
    let mut parts = public.split('.');
    let (major, minor) = (parts.next()?, parts.next()?);
    let num = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    (num(major) && num(minor) && !rocm.is_empty())
        .then(|| (format!("{major}.{minor}"), rocm.to_string()))
}

/// The row describing an installed torch, if the table knows its series.
pub fn torch_build(torch: &str) -> Option<&'static TorchBuild> {
    let (minor, rocm) = torch_series(torch)?;
    TORCH_BUILDS
        .iter()
        .find(|b| b.rocm.contains(&rocm) && b.covers(&minor))
}

/// `gfx1031` -> (10, 3, 1); `gfx90a` -> (9, 0, 10). The last two digits are hex.
pub fn gfx_version(gfx: &str) -> Option<(u32, u32, u32)> {
    let d = gfx.strip_prefix("gfx")?;
    if d.len() < 3 || !d.is_ascii() {
        return None;
    }
    let (major, rest) = d.split_at(d.len() - 2);
    Some((
        major.parse().ok()?,
        u32::from_str_radix(&rest[..1], 16).ok()?,
        u32::from_str_radix(&rest[1..], 16).ok()?,
    ))
}

/// The HSA_OVERRIDE_GFX_VERSION value naming a target: `gfx90a` -> `9.0.10`.
pub fn override_for(gfx: &str) -> Option<String> {
    gfx_version(gfx).map(|(a, b, c)| format!("{a}.{b}.{c}"))
}

/// The override that lets `targets` run on `own`: the lowest shipped target of
/// the same family (gfx1031 -> gfx1030 -> `10.3.0`; gfx90c -> gfx900 ->
/// `9.0.0`). None when the family has no shipped member, because across
/// families the instruction sets differ (AMD-GFX-OVERRIDE-WRONG).
pub fn torch_override(own: &str, targets: &[String]) -> Option<String> {
    let fam = family(own)?;
    targets
        .iter()
        .filter(|t| t.as_str() != own && family(t) == Some(fam))
        .min_by_key(|t| gfx_version(t))
        .and_then(|t| override_for(t))
}

/// A wheel series that ships `own`. Prefer a stable one; among them one built
/// for the installed ROCm release, then one of the series already installed,
/// then the newest. Nightlies only when no release has it.
pub fn torch_fix(
    own: &str,
    system_rocm: Option<&str>,
    current: Option<&str>,
) -> Option<TorchWheel> {
    let has: Vec<&TorchBuild> = TORCH_BUILDS
        .iter()
        .filter(|b| b.gfx.iter().any(|g| g == own))
        .collect();
    let pool: Vec<&TorchBuild> = if has.iter().any(|b| !b.nightly) {
        has.into_iter().filter(|b| !b.nightly).collect()
    } else {
        has
    };
    let newest = |rows: Vec<(&'static TorchBuild, String)>| {
        rows.into_iter().max_by(|a, b| vercmp(top(a.0), top(b.0)))
    };
    let mm = |v: &str| v.split('.').take(2).collect::<Vec<_>>().join(".");
    let pick_series = |want: &dyn Fn(&str) -> bool| {
        newest(
            pool.iter()
                .filter_map(|b| b.rocm.iter().find(|r| want(r)).map(|r| (*b, r.clone())))
                .collect(),
        )
    };
    let by_system = system_rocm.and_then(|s| {
        pick_series(&|r: &str| r == s).or_else(|| pick_series(&|r: &str| mm(r) == mm(s)))
    });
    let (b, rocm) = by_system
        .or_else(|| current.and_then(|c| pick_series(&|r: &str| r == c)))
        .or_else(|| {
            pick_series(&|_| true).map(|(b, _)| (b, b.rocm.last().cloned().unwrap_or_default()))
        })?;
    let base = if b.nightly {
        "https://download.pytorch.org/whl/nightly/rocm"
    } else {
        "https://download.pytorch.org/whl/rocm"
    };
    Some(TorchWheel {
        torch: top(b).to_string(),
        index_url: format!("{base}{rocm}"),
        rocm,
        nightly: b.nightly,
    })
}

/// The newest torch line of a row.
fn top(b: &TorchBuild) -> &str {
    b.torch_max.as_deref().unwrap_or(&b.torch_min)
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
    // Without /opt/rocm/.info/version (a ROCm from distribution packages),
    // amd-smi's `ROCm version` names the release it came with.
    if amd.rocm_version.is_none() {
        amd.rocm_version = amd
            .smi
            .rocm_version
            .as_deref()
            .map(|v| v.split('-').next().unwrap_or(v).to_string())
            .filter(|v| {
                v.split('.')
                    .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            });
    }
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
        own_target(a, &rig.gpus);
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
    rig.amd.cards = cards(rig);
    let amd = &mut rig.amd;
    let discrete_agent = amd
        .agents
        .iter()
        .any(|a| a.visible && a.integrated == Some(false));
    for a in &mut amd.agents {
        a.igpu_beside_discrete = a.integrated == Some(true) && discrete_agent;
    }
    let discrete_card = amd
        .cards
        .iter()
        .any(|c| c.visible && c.integrated == Some(false));
    for c in &mut amd.cards {
        c.igpu_beside_discrete = c.integrated == Some(true) && discrete_card;
    }
    rig.amd.links = links(rig);
}

/// One end of a GPU pair: its name, model key (PCI device id) and whether it
/// is an Instinct accelerator, from the bus first, then amd-smi.
struct End {
    pci: Option<String>,
    name: String,
    integrated: bool,
    model: Option<String>,
    instinct: Option<bool>,
}

const XGMI_TARGETS: [&str; 4] = ["gfx908", "gfx90a", "gfx942", "gfx950"];

fn end(rig: &Rig, index: u32, pci: Option<&str>, bus_order: &[&crate::rig::Gpu]) -> End {
    let smi = rig.amd.smi.gpus.iter().find(|g| g.index == index);
    let pci = pci.or(smi.and_then(|g| g.pci.as_deref()));
    let bus = match pci {
        Some(p) => rig.gpus.iter().find(|g| g.pci == p),
        // rocm-smi names GPUs by index only, and its order need not be the
        // bus order (ROC-smi #100 lists an iGPU at 12:00.0 before a card at
        // 03:00.0). Only when every AMD GPU is the same card does the index
        // name it anyway (the address stays unknown).
        None => bus_order.get(index as usize).copied(),
    };
    let pci = pci.map(str::to_string);
    let device_id = bus
        .map(|g| g.device_id.clone())
        .or_else(|| smi.and_then(|g| g.device_id.clone()));
    let name = bus
        .map(|g| g.name.clone())
        .or_else(|| smi.and_then(|g| g.name.clone()))
        .unwrap_or_else(|| format!("GPU {index}"));
    let gfx = device_id
        .as_deref()
        .and_then(catalog::amd_gfx)
        .or_else(|| smi.and_then(|g| g.gfx.clone()));
    let named_instinct = name.contains("Instinct")
        || smi
            .and_then(|g| g.name.as_deref())
            .is_some_and(|n| n.contains("Instinct"));
    let cdna = device_id
        .as_deref()
        .and_then(catalog::amd_chip)
        .is_some_and(|c| c.generation.starts_with("CDNA"));
    let known = device_id.is_some() || gfx.is_some() || named_instinct;
    let instinct =
        named_instinct || cdna || gfx.as_deref().is_some_and(|g| XGMI_TARGETS.contains(&g));
    End {
        pci,
        name,
        integrated: bus.is_some_and(|g| g.discrete == Some(false)),
        model: device_id.or(gfx),
        instinct: known.then_some(instinct),
    }
}

/// The pairs with their GPUs' names and kinds, for the XGMI and P2P rules.
fn links(rig: &Rig) -> Vec<crate::rig::AmdLink> {
    let mut bus_order: Vec<&crate::rig::Gpu> = rig
        .gpus
        .iter()
        .filter(|g| g.vendor == "amd" && g.compute && g.discrete != Some(false))
        .collect();
    bus_order.sort_by(|a, b| a.pci.cmp(&b.pci));
    let all_amd: Vec<&crate::rig::Gpu> = rig
        .gpus
        .iter()
        .filter(|g| g.vendor == "amd" && g.compute)
        .collect();
    let one_model = all_amd.windows(2).all(|w| w[0].device_id == w[1].device_id);
    if !one_model || all_amd.len() != bus_order.len() {
        bus_order.clear();
    }
    let mut out = rig.amd.links.clone();
    for l in &mut out {
        let a = end(rig, l.a, l.a_pci.as_deref(), &bus_order);
        let b = end(rig, l.b, l.b_pci.as_deref(), &bus_order);
        l.same_model = a.model.is_some() && a.model == b.model;
        l.xgmi_capable = a.instinct == Some(true) && b.instinct == Some(true);
        l.consumer = a.instinct == Some(false)
            && b.instinct == Some(false)
            && !a.integrated
            && !b.integrated;
        l.cross_socket = l.hops.is_some_and(|h| h >= 3);
        l.a_pci = l.a_pci.take().or(a.pci);
        l.b_pci = l.b_pci.take().or(b.pci);
        l.a_name = a.name;
        l.b_name = b.name;
    }
    out
}

/// Set an agent's own target from its PCI id (Chip ID, else the bus device
/// at its BDFID); keep rocminfo's answer in `reported_gfx`.
fn own_target(a: &mut AmdAgent, gpus: &[crate::rig::Gpu]) {
    let by_chip = a.chip_id.as_deref().and_then(catalog::amd_gfx);
    let by_bus = || {
        gpus.iter()
            .find(|g| a.pci.as_deref() == Some(g.pci.as_str()))
            .and_then(|g| catalog::amd_gfx(&g.device_id))
    };
    match by_chip.or_else(by_bus) {
        Some(own) => {
            a.gfx = Some(own);
            a.gfx_source = Some("pci-id".into());
        }
        None => a.gfx_source = a.gfx.as_ref().map(|_| "rocminfo".into()),
    }
}

/// Every AMD GPU: the bus devices joined with their agents, then agents the
/// bus did not show (a container without /sys), with the torch verdicts.
fn cards(rig: &Rig) -> Vec<AmdCard> {
    let amd = &rig.amd;
    let mut out = Vec::new();
    let mut used = Vec::new();
    for g in rig.gpus.iter().filter(|g| g.vendor == "amd" && g.compute) {
        let agent = amd
            .agents
            .iter()
            .find(|a| a.pci.as_deref() == Some(g.pci.as_str()))
            .or_else(|| {
                // No BDFID: a Chip ID shared by exactly one agent still joins.
                let same: Vec<&AmdAgent> = amd
                    .agents
                    .iter()
                    .filter(|a| {
                        a.pci.is_none() && a.chip_id.as_deref() == Some(g.device_id.as_str())
                    })
                    .collect();
                (same.len() == 1).then(|| same[0])
            });
        if let Some(a) = agent {
            used.push(a.index);
        }
        let own = catalog::amd_gfx(&g.device_id);
        out.push(AmdCard {
            pci: Some(g.pci.clone()),
            name: g.name.clone(),
            device_id: Some(g.device_id.clone()),
            gfx_source: if own.is_some() {
                Some("pci-id".into())
            } else {
                agent.and_then(|a| a.gfx_source.clone())
            },
            gfx: own.or_else(|| agent.and_then(|a| a.gfx.clone())),
            reported_gfx: agent.and_then(|a| a.reported_gfx.clone()),
            agent_index: agent.map(|a| a.index),
            integrated: g.discrete.map(|d| !d).or(agent.and_then(|a| a.integrated)),
            // Agents listed but none for this card: ROCm does not see it.
            visible: agent.map_or(amd.agents.is_empty(), |a| a.visible),
            ..AmdCard::default()
        });
    }
    for a in amd.agents.iter().filter(|a| !used.contains(&a.index)) {
        out.push(AmdCard {
            pci: a.pci.clone(),
            name: a.marketing_name.clone().unwrap_or_else(|| a.name.clone()),
            device_id: a.chip_id.clone(),
            gfx: a.gfx.clone(),
            gfx_source: a.gfx_source.clone(),
            reported_gfx: a.reported_gfx.clone(),
            agent_index: Some(a.index),
            integrated: a.integrated,
            visible: a.visible,
            ..AmdCard::default()
        });
    }
    let torch = rig.python.packages.get("torch").map(String::as_str);
    let build = torch.and_then(torch_build);
    let current = torch.and_then(torch_series).map(|s| s.1);
    for c in &mut out {
        c.override_value = c
            .agent_index
            .and_then(|i| rig.env.get(&format!("HSA_OVERRIDE_GFX_VERSION_{i}")))
            .or(amd.override_value.as_ref())
            .cloned();
        c.effective_gfx = c
            .override_value
            .as_deref()
            .and_then(override_target)
            .or_else(|| c.gfx.clone());
        let (Some(b), Some(own), Some(eff)) = (build, c.gfx.clone(), c.effective_gfx.clone())
        else {
            continue;
        };
        c.torch_targets = b.gfx.clone();
        c.torch_kernels = Some(b.gfx.contains(&eff));
        if !b.gfx.contains(&own) {
            c.torch_override = torch_override(&own, &b.gfx);
            c.torch_fix = torch_fix(&own, amd.rocm_version.as_deref(), current.as_deref());
        }
    }
    out
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
    fn torch_table_parses_and_refuses_overlaps() {
        let t = parse_torch_builds(TORCH_TOML).expect("checks/torch-rocm.toml");
        assert!(t.len() >= 8);
        let two = "[[build]]\ntorch_min='2.1'\ntorch_max='2.3'\nrocm=['5.7']\ngfx=['gfx900']\nsource=''\n\
                   [[build]]\ntorch_min='2.3'\nrocm=['5.7']\ngfx=['gfx900']\nsource=''\n";
        assert!(parse_torch_builds(two).is_err());
        assert!(
            parse_torch_builds(
                "[[build]]\ntorch_min='2.1'\nrocm=['5.7']\ngfx=['navi']\nsource=''\n"
            )
            .is_err()
        );
    }

    #[test]
    fn torch_wheels_by_series() {
        assert_eq!(
            torch_series("2.4.1+rocm6.1"),
            Some(("2.4".into(), "6.1".into()))
        );
        assert_eq!(
            torch_series("2.10.0.dev20250929+rocm7.0"),
            Some(("2.10".into(), "7.0".into()))
        );
        assert_eq!(torch_series("2.5.1+cu124"), None);
        assert_eq!(torch_series("2.5.1"), None);
        let has = |t: &str, g: &str| torch_build(t).map(|b| b.gfx.iter().any(|x| x == g));
        // RX 7800 XT: gfx1101 arrived in the 2.6 wheels (pytorch #141667).
        assert_eq!(has("2.4.1+rocm6.1", "gfx1101"), Some(false));
        assert_eq!(has("2.6.0+rocm6.1", "gfx1101"), Some(true));
        assert_eq!(has("2.7.1+rocm6.3", "gfx1101"), Some(true));
        // gfx1010 was never in an official wheel (pytorch #132570).
        assert_eq!(has("2.5.1+rocm6.2", "gfx1010"), Some(false));
        // Strix Halo on the 2.10 nightly +rocm7.0 (pytorch #164346).
        assert_eq!(has("2.10.0.dev20250929+rocm7.0", "gfx1151"), Some(false));
        assert_eq!(has("2.11.0+rocm7.2", "gfx1151"), Some(true));
        assert_eq!(
            torch_build("2.11.0+rocm7.15.0a20260728").map(|b| b.torch_min.as_str()),
            None
        );
    }

    #[test]
    fn override_and_wheel_suggestions() {
        let t = |v: &str| torch_build(v).map(|b| b.gfx.clone()).unwrap_or_default();
        let old = t("2.4.1+rocm6.1");
        assert_eq!(torch_override("gfx1101", &old).as_deref(), Some("11.0.0"));
        assert_eq!(torch_override("gfx1031", &old).as_deref(), Some("10.3.0"));
        assert_eq!(torch_override("gfx90c", &old).as_deref(), Some("9.0.0"));
        assert_eq!(torch_override("gfx1103", &old).as_deref(), Some("11.0.0"));
        // No same-family target shipped: no override, only another wheel.
        assert_eq!(torch_override("gfx1151", &t("2.9.0+rocm6.4")), None);
        assert_eq!(torch_override("gfx1010", &old), None);
        assert_eq!(override_for("gfx90a").as_deref(), Some("9.0.10"));
        // The installed ROCm release decides the series first.
        let w = torch_fix("gfx1101", Some("6.1.3"), Some("6.1")).expect("a wheel");
        assert_eq!((w.torch.as_str(), w.rocm.as_str()), ("2.6", "6.1"));
        assert_eq!(w.index_url, "https://download.pytorch.org/whl/rocm6.1");
        let w = torch_fix("gfx1101", None, Some("6.2")).expect("a wheel");
        assert_eq!((w.torch.as_str(), w.rocm.as_str()), ("2.12", "7.2"));
        let w = torch_fix("gfx1103", None, None).expect("nightly only");
        assert!(w.nightly);
        assert!(w.index_url.contains("/nightly/rocm"));
        assert_eq!(torch_fix("gfx1010", None, None), None);
    }

    #[test]
    fn rocm_release_from_amd_smi_when_the_version_file_is_missing() {
        let mut rig = Rig::default();
        rig.amd.smi.rocm_version = Some("6.1.2".into());
        derive(&mut rig);
        assert_eq!(rig.amd.rocm_version.as_deref(), Some("6.1.2"));
        let mut rig = Rig::default();
        rig.amd.rocm_version = Some("6.3.1".into());
        rig.amd.smi.rocm_version = Some("7.2.1".into());
        derive(&mut rig);
        assert_eq!(
            rig.amd.rocm_version.as_deref(),
            Some("6.3.1"),
            "the file wins"
        );
        let mut rig = Rig::default();
        rig.amd.smi.rocm_version = Some("unknown".into());
        derive(&mut rig);
        assert_eq!(rig.amd.rocm_version, None);
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
