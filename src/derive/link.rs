//! The link that limits a GPU, and whether Resizable BAR is on.
//!
//! Intel Arc/Battlemage and many AMD Radeon cards carry their own PCIe
//! switch: the GPU function sits behind the switch's downstream port, and
//! the link between them is internal. On Arc it always reads 2.5 GT/s x1
//! (Intel support article 000094587, via intel/llm-scaler vllm/FAQ.md); on
//! Radeon it reads the full width while the slot runs at x8 (corpus
//! nvidia-amd/amd-sysfs, nokyan/resources #512). The slot link is the one
//! between the host port and the card's upstream switch port, so that is the
//! link judged (domain.md §8.1, nvtop does the same walk).

use crate::probe::pci::gen_of;
use crate::rig::{EffectiveLink, Gpu, Link};

/// Where the card's own upstream port sits in `gpu.chain`, if the card has
/// an on-card switch: the two bridges right above the GPU come from the
/// GPU's own vendor, with a host port above them.
fn card_switch_upstream(gpu: &Gpu) -> Option<usize> {
    let n = gpu.chain.len();
    if n < 3 || !matches!(gpu.vendor.as_str(), "intel" | "amd") {
        return None;
    }
    let same = |i: usize| gpu.chain[i].vendor_id.as_deref() == Some(gpu.vendor_id.as_str());
    (same(n - 1) && same(n - 2)).then_some(n - 2)
}

fn has_link(l: &Link) -> bool {
    l.speed_gts.is_some() || l.width.is_some()
}

pub fn effective_link(gpu: &Gpu) -> Option<EffectiveLink> {
    // Integrated GPUs have no PCIe link of their own.
    if gpu.discrete == Some(false) {
        return None;
    }
    let (at, judged, link, host) = match card_switch_upstream(gpu) {
        Some(i) => {
            let up = &gpu.chain[i];
            (
                up.pci.clone(),
                "card-upstream-port",
                up.link.clone(),
                gpu.chain.get(i.wrapping_sub(1)).map(|p| &p.link),
            )
        }
        None => (
            gpu.pci.clone(),
            "device",
            gpu.link.clone(),
            gpu.chain.last().map(|p| &p.link),
        ),
    };
    if !has_link(&link) {
        return None;
    }
    Some(EffectiveLink {
        pcie_gen: link.speed_gts.and_then(gen_of),
        max_pcie_gen: link.max_speed_gts.and_then(gen_of),
        speed_gts: link.speed_gts,
        width: link.width,
        max_speed_gts: link.max_speed_gts,
        max_width: link.max_width,
        at,
        judged: judged.to_string(),
        host_max_speed_gts: host.and_then(|h| h.max_speed_gts),
        host_max_width: host.and_then(|h| h.max_width),
    })
}

const MIB: u64 = 1 << 20;

/// Resizable BAR: on when the largest memory BAR covers VRAM (BAR sizes are
/// powers of two, so a 12 GB card gets a 16 GiB BAR); without a VRAM size,
/// anything above the legacy 256 MiB window counts as on. None for
/// integrated GPUs and when no BAR was readable.
pub fn rebar(gpu: &Gpu) -> Option<bool> {
    if gpu.discrete != Some(true) {
        return None;
    }
    let largest = gpu.bars.iter().map(|b| b.size_bytes).max()?;
    Some(match gpu.vram_bytes {
        Some(vram) if vram > 256 * MIB => largest as f64 >= vram as f64 * 0.9,
        _ => largest > 256 * MIB,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rig::{Bar, PciPort};

    fn port(
        pci: &str,
        vendor: &str,
        speed: f64,
        width: u32,
        max_speed: f64,
        max_width: u32,
    ) -> PciPort {
        PciPort {
            pci: pci.into(),
            vendor_id: Some(vendor.into()),
            device_id: None,
            class: Some("0x060400".into()),
            link: Link {
                speed_gts: Some(speed),
                width: Some(width),
                max_speed_gts: Some(max_speed),
                max_width: Some(max_width),
            },
        }
    }

    fn arc() -> Gpu {
        Gpu {
            pci: "0000:03:00.0".into(),
            vendor: "intel".into(),
            vendor_id: "0x8086".into(),
            discrete: Some(true),
            link: Link {
                speed_gts: Some(2.5),
                width: Some(1),
                max_speed_gts: Some(2.5),
                max_width: Some(1),
            },
            chain: vec![
                port("0000:00:01.0", "0x8086", 16.0, 16, 16.0, 16),
                port("0000:01:00.0", "0x8086", 16.0, 16, 16.0, 16),
                port("0000:02:01.0", "0x8086", 2.5, 1, 2.5, 1),
            ],
            ..Gpu::default()
        }
    }

    #[test]
    fn arc_is_judged_at_the_card_upstream_port() {
        let e = effective_link(&arc()).unwrap();
        assert_eq!(e.at, "0000:01:00.0");
        assert_eq!(e.judged, "card-upstream-port");
        assert_eq!(
            (e.width, e.pcie_gen, e.host_max_width),
            (Some(16), Some(4), Some(16))
        );
    }

    #[test]
    fn a_gpu_without_a_card_switch_is_judged_itself() {
        let mut g = arc();
        g.vendor = "nvidia".into();
        g.vendor_id = "0x10de".into();
        g.link = Link {
            speed_gts: Some(8.0),
            width: Some(4),
            max_speed_gts: Some(16.0),
            max_width: Some(16),
        };
        g.chain = vec![port("0000:00:01.0", "0x1022", 8.0, 4, 16.0, 4)];
        let e = effective_link(&g).unwrap();
        assert_eq!(
            (e.at.as_str(), e.width, e.max_width, e.host_max_width),
            ("0000:03:00.0", Some(4), Some(16), Some(4))
        );
    }

    #[test]
    fn integrated_gpus_have_no_link() {
        let mut g = arc();
        g.discrete = Some(false);
        assert!(effective_link(&g).is_none());
    }

    #[test]
    fn rebar_against_vram() {
        let mut g = arc();
        g.vram_bytes = Some(16 << 30);
        g.bars = vec![Bar {
            index: 0,
            size_bytes: 16 * MIB,
            prefetchable: false,
            is_64bit: true,
        }];
        g.bars.push(Bar {
            index: 2,
            size_bytes: 256 * MIB,
            prefetchable: true,
            is_64bit: true,
        });
        assert_eq!(rebar(&g), Some(false));
        g.bars[1].size_bytes = 16 << 30;
        assert_eq!(rebar(&g), Some(true));
        g.vram_bytes = None;
        assert_eq!(rebar(&g), Some(true));
        g.bars.clear();
        assert_eq!(rebar(&g), None);
    }
}
