//! Computed NVIDIA facts: the catalog join (NVLink capability, P2P on
//! GeForce), NVLink health, what each GPU pair is, what CUDA_VISIBLE_DEVICES
//! leaves visible, whether a GPU is busy enough to judge its PCIe link, and
//! the CUDA build of torch / the torch build vLLM wants.

use std::collections::{BTreeSet, HashMap};
use std::sync::LazyLock;

use serde::Deserialize;

use super::catalog;
use crate::rig::{CudaVisible, NvidiaGpu, Rig};

/// Utilization at which a GPU counts as busy: NVIDIA drops the link speed
/// (and sometimes width) of an idle GPU by design (`nvidia-smi
/// --help-query-gpu`: "may be reduced when the GPU is not in use"), so the
/// link is judged only when the GPU is doing work.
pub const BUSY_PCT: u32 = 20;

const PINS_TOML: &str = include_str!("../../checks/vllm.toml");

#[derive(Debug, Deserialize)]
struct PinFile {
    #[serde(default)]
    vllm_torch: Vec<VllmTorch>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VllmTorch {
    vllm: String,
    torch: String,
    #[allow(dead_code, reason = "documentation for reviewers of the table")]
    source: String,
}

fn parse_pins(text: &str) -> Result<Vec<(String, String)>, String> {
    let f: PinFile = toml::from_str(text).map_err(|e| e.to_string())?;
    Ok(f.vllm_torch
        .into_iter()
        .map(|p| (p.vllm, p.torch))
        .collect())
}

static PINS: LazyLock<Vec<(String, String)>> =
    LazyLock::new(|| parse_pins(PINS_TOML).unwrap_or_default());

fn numeric_parts(v: &str) -> Vec<u64> {
    let v = v.split('+').next().unwrap_or(v);
    v.split('.')
        .map_while(|p| {
            let d: String = p.chars().take_while(|c| c.is_ascii_digit()).collect();
            d.parse().ok()
        })
        .collect()
}

/// The torch release an installed vLLM was built against, if the pin table knows it.
pub fn vllm_torch_pin(vllm: &str) -> Option<String> {
    let have = numeric_parts(vllm);
    PINS.iter()
        .filter(|(prefix, _)| {
            let want = numeric_parts(prefix);
            !want.is_empty() && have.len() >= want.len() && have[..want.len()] == want[..]
        })
        // The most specific prefix wins.
        .max_by_key(|(prefix, _)| prefix.len())
        .map(|(_, t)| t.clone())
}

/// `2.5.1+cu124` -> `12.4`; `+cu118` -> `11.8`. None for other builds.
pub fn cuda_of_local_version(torch: &str) -> Option<String> {
    let local = torch.split_once('+')?.1;
    let digits = local.strip_prefix("cu")?;
    if digits.len() < 2 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (major, minor) = digits.split_at(digits.len() - 1);
    Some(format!("{major}.{minor}"))
}

/// The CUDA runtime torch loads: its `+cuXYZ` tag, or for the PyPI wheels
/// (no local tag) the version of the `nvidia-cuda-runtime-cu1x` wheel beside it.
pub fn torch_cuda(packages: &std::collections::BTreeMap<String, String>) -> Option<String> {
    let torch = packages.get("torch")?;
    if let Some((_, local)) = torch.split_once('+') {
        return if local.starts_with("cu") {
            cuda_of_local_version(torch)
        } else {
            None
        };
    }
    [
        "nvidia-cuda-runtime-cu12",
        "nvidia-cuda-runtime-cu11",
        "nvidia-cuda-runtime",
    ]
    .iter()
    .find_map(|p| packages.get(*p))
    .and_then(|v| {
        let p = numeric_parts(v);
        (p.len() >= 2).then(|| format!("{}.{}", p[0], p[1]))
    })
}

/// The CUDA builds PyTorch publishes wheel indices for
/// (https://pytorch.org/get-started/previous-versions/).
const TORCH_CUDA_INDICES: &[(u64, u64)] = &[(11, 8), (12, 1), (12, 4), (12, 6), (12, 8), (12, 9)];

/// The newest PyTorch CUDA index not newer than the driver's CUDA version;
/// failing that, the oldest of the driver's major (minor-version
/// compatibility runs it). None for a driver older than CUDA 11.
pub fn torch_index_for(driver_cuda: &str) -> Option<String> {
    let p = numeric_parts(driver_cuda);
    let (major, minor) = (*p.first()?, p.get(1).copied().unwrap_or(0));
    let same: Vec<&(u64, u64)> = TORCH_CUDA_INDICES
        .iter()
        .filter(|(ma, _)| *ma == major)
        .collect();
    let pick = same
        .iter()
        .rev()
        .find(|(_, mi)| *mi <= minor)
        .or_else(|| same.first())?;
    Some(format!("cu{}{}", pick.0, pick.1))
}

/// Apply CUDA_VISIBLE_DEVICES (CUDA Programming Guide, "CUDA Environment
/// Variables"; domain.md §10): a comma list of indices or `GPU-<uuid>`
/// prefixes; an invalid entry hides itself and everything after it; a
/// negative index ends the list on purpose; the empty string hides all.
pub fn cuda_visible(value: Option<&str>, gpus: &[NvidiaGpu]) -> CudaVisible {
    let mut v = CudaVisible::default();
    let Some(value) = value else {
        v.indices = gpus.iter().map(|g| g.index).collect();
        return v;
    };
    v.set = true;
    v.value = Some(value.to_string());
    let trimmed = value.trim();
    if trimmed.is_empty() {
        v.hides_all = true;
        return v;
    }
    let tokens: Vec<&str> = trimmed.split(',').map(str::trim).collect();
    let mut stop = None;
    for (i, t) in tokens.iter().enumerate() {
        if let Ok(n) = t.parse::<i64>() {
            v.numeric = true;
            if n < 0 {
                if i == 0 {
                    v.hides_all = true;
                }
                stop = Some(i);
                break;
            }
            match gpus.iter().find(|g| i64::from(g.index) == n) {
                Some(g) if !v.indices.contains(&g.index) => v.indices.push(g.index),
                Some(_) => {}
                None => {
                    v.invalid.push(t.to_string());
                    stop = Some(i);
                    break;
                }
            }
        } else if t.starts_with("GPU-") {
            let hit = gpus.iter().find(|g| {
                g.uuid
                    .as_deref()
                    .is_some_and(|u| u.to_ascii_lowercase().starts_with(&t.to_ascii_lowercase()))
            });
            match hit {
                Some(g) if !v.indices.contains(&g.index) => v.indices.push(g.index),
                Some(_) => {}
                // Without nvidia-smi's UUIDs nothing can be said.
                None if gpus.iter().all(|g| g.uuid.is_none()) => {}
                None => {
                    v.invalid.push(t.to_string());
                    stop = Some(i);
                    break;
                }
            }
        } else if t.starts_with("MIG-") {
            // MIG instances are not listed by nvidia-smi's table; not judged.
        } else {
            v.invalid.push(t.to_string());
            stop = Some(i);
            break;
        }
    }
    if let Some(i) = stop {
        v.ignored = tokens[i + 1..].iter().map(|t| t.to_string()).collect();
    }
    v
}

pub fn derive(rig: &mut Rig) {
    let sysfs = &mut rig.gpus;
    let nv = &mut rig.nvidia;
    for g in &mut nv.gpus {
        if g.device_id.is_none() {
            g.device_id = sysfs
                .iter()
                .find(|p| p.pci == g.pci && p.vendor == "nvidia")
                .map(|p| p.device_id.clone());
        }
        g.catalog = g
            .device_id
            .as_deref()
            .and_then(|id| catalog::lookup("0x10de", id));
        g.busy = g.utilization_pct.map(|u| u >= BUSY_PCT);
        if g.name.is_empty() {
            // The table could not read the name (ERR!): say what the bus says.
            if let Some(n) = g.catalog.as_ref().map(|c| c.name.clone()).or_else(|| {
                sysfs
                    .iter()
                    .find(|p| p.pci == g.pci)
                    .map(|p| p.name.clone())
            }) {
                g.name = n;
            }
        }
    }
    // Only next to a broken card: on a healthy rig "still working" says nothing.
    let broken = !nv.lost.is_empty() || nv.gpus.iter().any(|g| !g.errors.is_empty());
    let sound: Vec<&NvidiaGpu> = nv
        .gpus
        .iter()
        .filter(|g| broken && g.errors.is_empty() && !nv.lost.contains(&g.pci))
        .collect();
    nv.sound = sound
        .iter()
        .map(|g| format!("GPU {} ({} at {})", g.index, g.name, g.pci))
        .collect();
    nv.sound_index = sound
        .iter()
        .map(|g| g.index.to_string())
        .collect::<Vec<_>>()
        .join(",");
    // The sysfs view learns VRAM from nvidia-smi (the driver does not export it).
    for p in sysfs.iter_mut().filter(|p| p.vendor == "nvidia") {
        if let Some(g) = nv.gpus.iter().find(|g| g.pci == p.pci) {
            if g.vram_bytes.is_some() {
                p.vram_bytes = g.vram_bytes;
            }
        }
    }
    let model = |g: &NvidiaGpu| {
        g.catalog
            .as_ref()
            .map(|c| c.name.clone())
            .unwrap_or_else(|| g.name.clone())
    };
    let models: BTreeSet<String> = nv.gpus.iter().map(model).collect();
    nv.mixed_models = models.len() > 1;
    // By index, once: a rig of N GPUs has N(N-1)/2 links, and looking each
    // pair's GPUs up in the list made this cubic (issue 15).
    let by_index: HashMap<u32, usize> = nv
        .gpus
        .iter()
        .enumerate()
        .map(|(i, g)| (g.index, i))
        .collect();
    let mut peers: HashMap<u32, (Vec<u32>, u32)> = HashMap::new();
    for l in &nv.links {
        let n = l.nvlinks.unwrap_or(0);
        if n > 0 {
            for (me, other) in [(l.a, l.b), (l.b, l.a)] {
                let e = peers.entry(me).or_default();
                e.0.push(other);
                e.1 = e.1.max(n);
            }
        }
    }
    for l in &mut nv.links {
        let (Some(a), Some(b)) = (by_index.get(&l.a), by_index.get(&l.b)) else {
            continue;
        };
        let (a, b) = (&nv.gpus[*a], &nv.gpus[*b]);
        l.a_name = a.name.clone();
        l.b_name = b.name.clone();
        l.same_model = model(a) == model(b);
        let cat = |g: &NvidiaGpu| g.catalog.clone();
        l.bridgeable = l.same_model && cat(a).and_then(|c| c.nvlink).as_deref() == Some("bridge");
        l.expected_nvlinks = cat(a)
            .filter(|c| l.same_model && matches!(c.nvlink.as_deref(), Some("bridge" | "nvswitch")))
            .and_then(|c| c.nvlink_links);
        l.consumer =
            cat(a).and_then(|c| c.p2p) == Some(false) && cat(b).and_then(|c| c.p2p) == Some(false);
        l.a_has_nvlink = peers.contains_key(&l.a);
        l.b_has_nvlink = peers.contains_key(&l.b);
        l.unbridged = l.bridgeable
            && l.kind.is_some()
            && l.nvlinks == Some(0)
            && !l.a_has_nvlink
            && !l.b_has_nvlink;
    }
    for g in &mut nv.gpus {
        let (mine, best) = peers.remove(&g.index).unwrap_or_default();
        g.nvlink_peers.extend(mine);
        let Some(c) = &g.catalog else { continue };
        let (Some(kind), Some(expected)) = (c.nvlink.as_deref(), c.nvlink_links) else {
            continue;
        };
        let by_status = g
            .nvlink
            .as_ref()
            .is_some_and(|s| s.active > 0 && s.active < expected);
        // A bridge or switch gives each connected pair all the card's links;
        // a DGX-1 mesh gives each pair one or two by design.
        let by_topo = kind != "mesh" && best > 0 && best < expected;
        g.nvlink_degraded = by_status || by_topo;
    }
    nv.visible = cuda_visible(
        rig.env.get("CUDA_VISIBLE_DEVICES").map(String::as_str),
        &nv.gpus,
    );
    let visible = nv.visible.indices.clone();
    for g in &mut nv.gpus {
        g.visible = visible.contains(&g.index);
    }
    nv.torch_cuda = torch_cuda(&rig.python.packages);
    nv.driver_torch_index = nv.cuda_version.as_deref().and_then(torch_index_for);
    rig.python.vllm_torch = rig
        .python
        .packages
        .get("vllm")
        .and_then(|v| vllm_torch_pin(v));
}

/// Which GPUs on the PCI bus nvidia-smi lost, and which NVIDIA compute GPUs
/// it did not: computed once here, so NV-GPU-LOST does not test every GPU
/// against the lost list. Only when a GPU is lost; joins on the PCI address
/// as nvidia-smi printed it.
pub fn lost_on_bus(rig: &mut Rig) {
    let nv = &mut rig.nvidia;
    nv.lost_on_bus.clear();
    nv.others_on_bus.clear();
    if nv.lost.is_empty() {
        return;
    }
    let lost: std::collections::HashSet<&str> = nv.lost.iter().map(String::as_str).collect();
    for g in &rig.gpus {
        if lost.contains(g.pci.as_str()) {
            nv.lost_on_bus.push(format!("{} at {}", g.name, g.pci));
        } else if g.vendor == "nvidia" && g.compute {
            nv.others_on_bus.push(crate::rig::BusGpu {
                pci: g.pci.clone(),
                name: g.name.clone(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpus(n: u32) -> Vec<NvidiaGpu> {
        (0..n)
            .map(|i| NvidiaGpu {
                index: i,
                uuid: Some(format!("GPU-{i}aba3cfa-7b42-cca6-97f4-5cdd281b0746")),
                ..NvidiaGpu::default()
            })
            .collect()
    }

    #[test]
    fn visible_devices() {
        let g = gpus(2);
        let v = cuda_visible(None, &g);
        assert_eq!((v.set, v.indices.clone()), (false, vec![0, 1]));
        let v = cuda_visible(Some("1"), &g);
        assert_eq!(v.indices, vec![1]);
        assert!(v.numeric && v.invalid.is_empty());
        let v = cuda_visible(Some("2"), &g);
        assert_eq!(
            (v.indices.len(), v.invalid.clone()),
            (0, vec!["2".to_string()])
        );
        let v = cuda_visible(Some("0,5,1"), &g);
        assert_eq!(v.indices, vec![0]);
        assert_eq!(v.ignored, vec!["1"]);
        let v = cuda_visible(Some("-1"), &g);
        assert!(v.hides_all && v.invalid.is_empty());
        let v = cuda_visible(Some(""), &g);
        assert!(v.hides_all);
        let v = cuda_visible(Some("GPU-1aba"), &g);
        assert_eq!(v.indices, vec![1]);
        assert!(!v.numeric);
        let v = cuda_visible(Some("GPU-ffff"), &g);
        assert_eq!(v.invalid, vec!["GPU-ffff"]);
        let v = cuda_visible(Some("0,-1,1"), &g);
        assert_eq!((v.indices.clone(), v.hides_all), (vec![0], false));
    }

    #[test]
    fn torch_builds() {
        assert_eq!(
            cuda_of_local_version("2.5.1+cu124").as_deref(),
            Some("12.4")
        );
        assert_eq!(
            cuda_of_local_version("2.0.1+cu118").as_deref(),
            Some("11.8")
        );
        assert_eq!(cuda_of_local_version("2.5.1+cpu"), None);
        let mut p = std::collections::BTreeMap::new();
        p.insert("torch".to_string(), "2.5.1".to_string());
        assert_eq!(torch_cuda(&p), None);
        p.insert("nvidia-cuda-runtime-cu12".into(), "12.4.127".into());
        assert_eq!(torch_cuda(&p).as_deref(), Some("12.4"));
        p.insert("torch".into(), "2.5.1+rocm6.2".into());
        assert_eq!(torch_cuda(&p), None);
    }

    #[test]
    fn torch_index_for_the_driver() {
        assert_eq!(torch_index_for("12.2").as_deref(), Some("cu121"));
        assert_eq!(torch_index_for("12.6").as_deref(), Some("cu126"));
        assert_eq!(torch_index_for("13.0").as_deref(), None);
        assert_eq!(torch_index_for("11.4").as_deref(), Some("cu118"));
        assert_eq!(torch_index_for("12.0").as_deref(), Some("cu121"));
        assert_eq!(torch_index_for("10.2"), None);
    }

    #[test]
    fn vllm_pins() {
        assert!(parse_pins(PINS_TOML).is_ok_and(|p| p.len() >= 4));
        assert_eq!(vllm_torch_pin("0.7.3").as_deref(), Some("2.5.1"));
        assert_eq!(vllm_torch_pin("0.8.5.post1").as_deref(), Some("2.6.0"));
        assert_eq!(vllm_torch_pin("0.10.0").as_deref(), Some("2.7.1"));
        assert_eq!(vllm_torch_pin("0.1.0"), None);
        assert_eq!(vllm_torch_pin("0.6.3"), None);
    }
}
