//! `nvidia-smi nvlink -s`: the state of each NVLink of each GPU.
//!
//! Shapes (corpus nvidia-amd/INDEX.md, "Format notes" 3):
//! - `GPU 0: NVIDIA GeForce RTX 3090 (UUID: GPU-...)` then one
//!   `Link N: 14.062 GB/s` or `Link N: <inactive>` line per link, indented with
//!   spaces or a tab and a space; very old drivers print no UUID;
//! - `NVML: Unable to retrieve NVLink information as all links are inActive`
//!   in place of the link lines when every link is down (3090s without a
//!   bridge, a dead B200);
//! - no output at all on a system without NVLink;
//! - `dcgmi nvlink -s` (`gpuId N:` and a row of `U`/`D`/`X`/`_`) is read too.
//!
//! An inactive link is not always a fault: H100 NVL bridge pairs leave links
//! 4, 5, 10, 11, 16 and 17 down by design (NVIDIA/nccl #1608); derive compares
//! the active count with what the card's bridge provides.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use regex::Regex;

use crate::rig::NvlinkStatus;
use crate::text::{regex, strip_ansi};

static GPU_HEAD: LazyLock<Regex> =
    LazyLock::new(|| regex(r"^GPU (\d{1,3}): (.*?)(?: \(UUID: ([^)]*)\)?)?$"));
static LINK: LazyLock<Regex> =
    LazyLock::new(|| regex(r"^Link (\d{1,3}): (?:(<inactive>)|([0-9.]+) GB/s)"));
static DCGM_GPU: LazyLock<Regex> = LazyLock::new(|| regex(r"^gpuId (\d{1,3}):$"));

/// One GPU's block of `nvlink -s`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NvlinkGpu {
    pub name: String,
    pub uuid: Option<String>,
    pub status: NvlinkStatus,
}

/// NVML's whole answer when no link is up (`... all links are inActive`),
/// which may come without a `GPU n:` line before it.
pub fn all_inactive(text: &str) -> bool {
    text.to_ascii_lowercase().contains("all links are inactive")
}

/// Parse `nvidia-smi nvlink -s` / `--status` (and `dcgmi nvlink -s`), by GPU index.
pub fn parse(text: &str) -> BTreeMap<u32, NvlinkGpu> {
    let mut out: BTreeMap<u32, NvlinkGpu> = BTreeMap::new();
    let mut current: Option<u32> = None;
    let mut dcgm = false;
    for raw in text.lines() {
        let line = strip_ansi(raw);
        let line = line.trim().trim_start_matches('>').trim();
        if let Some(c) = GPU_HEAD.captures(line) {
            let Ok(idx) = c[1].parse::<u32>() else {
                continue;
            };
            dcgm = false;
            current = Some(idx);
            let uuid = c
                .get(3)
                .map(|u| u.as_str().trim().to_string())
                .filter(|u| u.starts_with("GPU-") || u.starts_with("MIG-"));
            out.insert(
                idx,
                NvlinkGpu {
                    name: c[2].trim().to_string(),
                    uuid,
                    status: NvlinkStatus::default(),
                },
            );
            continue;
        }
        if let Some(c) = DCGM_GPU.captures(line) {
            if let Ok(idx) = c[1].parse::<u32>() {
                dcgm = true;
                current = Some(idx);
                out.entry(idx).or_default();
            }
            continue;
        }
        let Some(idx) = current else { continue };
        let Some(gpu) = out.get_mut(&idx) else {
            continue;
        };
        if line.to_ascii_lowercase().contains("all links are inactive") {
            gpu.status.all_inactive = true;
            continue;
        }
        if let Some(c) = LINK.captures(line) {
            if c.get(2).is_some() {
                gpu.status.inactive += 1;
            } else {
                gpu.status.active += 1;
                if gpu.status.speed_gbs.is_none() {
                    gpu.status.speed_gbs = c.get(3).and_then(|s| s.as_str().parse().ok());
                }
            }
            continue;
        }
        if dcgm {
            let letters: Vec<&str> = line.split_whitespace().collect();
            if !letters.is_empty() && letters.iter().all(|l| matches!(*l, "U" | "D" | "X" | "_")) {
                gpu.status.active += letters.iter().filter(|l| **l == "U").count() as u32;
                gpu.status.inactive += letters.iter().filter(|l| **l == "D").count() as u32;
                dcgm = false;
            }
        }
    }
    for g in out.values_mut() {
        if g.status.active == 0 && g.status.inactive > 0 {
            g.status.all_inactive = true;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn active_and_inactive_links() {
        let m = parse(
            "nvidia-smi nvlink -s\n....\nGPU 3: Tesla V100-SXM2-32GB (UUID: ...)\n         Link 0: 25.781 GB/s\n         Link 3: <inactive>\n\t Link 4: 25.781 GB/s\n",
        );
        let g = &m[&3];
        assert_eq!(g.name, "Tesla V100-SXM2-32GB");
        assert_eq!(g.uuid, None);
        assert_eq!((g.status.active, g.status.inactive), (2, 1));
        assert_eq!(g.status.speed_gbs, Some(25.781));
        assert!(!g.status.all_inactive);
    }

    #[test]
    fn all_links_inactive_message() {
        let m = parse(
            "GPU 0: NVIDIA GeForce RTX 3090 (UUID: GPU-1aff65f8-8897-eaee-29e4-6871ef7491a0)\nNVML: Unable to retrieve NVLink information as all links are inActive\n",
        );
        assert!(m[&0].status.all_inactive);
        assert_eq!(
            m[&0].uuid.as_deref(),
            Some("GPU-1aff65f8-8897-eaee-29e4-6871ef7491a0")
        );
    }

    #[test]
    fn dcgmi_letters() {
        let m =
            parse("GPUs:\n    gpuId 0:\n        U U U D _ _\n    gpuId 1:\n        U U U U U U\n");
        assert_eq!((m[&0].status.active, m[&0].status.inactive), (3, 1));
        assert_eq!(m[&1].status.active, 6);
    }

    #[test]
    fn no_nvlink_is_empty() {
        assert!(parse("").is_empty());
        assert!(parse("GPU 0: x (UUID: GPU-1").len() == 1);
    }
}
