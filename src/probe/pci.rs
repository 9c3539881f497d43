//! Display-class PCI devices from sysfs: identity, bound driver, NUMA node,
//! link attributes, BAR sizes, the chain of bridges up to the root port and
//! the DRM nodes each GPU owns. Judging the link (past an on-card switch) is
//! derive's job (derive/link.rs); this module only reads.
//!
//! Attribute formats: kernel drivers/pci/pci-sysfs.c, domain.md §9.1, §9.6.

use crate::rig::{Bar, Gpu, Link, PciPort, ProbeReport};
use crate::source::{Listing, Source, read_attr};

const DEVICES: &str = "/sys/bus/pci/devices";

/// `16.0 GT/s PCIe`, `8 GT/s`, `2.5 GT/s PCIe` -> GT/s. `Unknown` -> None.
pub fn parse_link_speed(s: &str) -> Option<f64> {
    let num = s.split_whitespace().next()?;
    let num = num.trim_end_matches("GT/s");
    let v: f64 = num.parse().ok()?;
    (v > 0.0).then_some(v)
}

/// `16` -> 16; `0` (link down) and junk -> None.
pub fn parse_link_width(s: &str) -> Option<u32> {
    let s = s.trim().trim_start_matches('x');
    s.parse::<u32>().ok().filter(|w| *w > 0)
}

/// PCIe generation of a link speed.
pub fn gen_of(speed_gts: f64) -> Option<u32> {
    let table = [
        (2.5, 1),
        (5.0, 2),
        (8.0, 3),
        (16.0, 4),
        (32.0, 5),
        (64.0, 6),
    ];
    table
        .iter()
        .find(|(s, _)| (speed_gts - s).abs() < 0.01)
        .map(|(_, g)| *g)
}

/// The sysfs `resource` file: one `0xstart 0xend 0xflags` line per resource;
/// lines 0-5 are the BARs, line 6 the expansion ROM. Unassigned BARs read as zeros.
pub fn parse_resource(text: &str) -> Vec<Bar> {
    const IORESOURCE_MEM: u64 = 0x200;
    const IORESOURCE_PREFETCH: u64 = 0x2000;
    const IORESOURCE_MEM_64: u64 = 0x0010_0000;
    let hex = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok();
    text.lines()
        .take(6)
        .enumerate()
        .filter_map(|(i, line)| {
            let mut it = line.split_whitespace();
            let (start, end, flags) = (hex(it.next()?)?, hex(it.next()?)?, hex(it.next()?)?);
            if flags & IORESOURCE_MEM == 0 || end <= start {
                return None;
            }
            Some(Bar {
                index: i as u32,
                size_bytes: end - start + 1,
                prefetchable: flags & IORESOURCE_PREFETCH != 0,
                is_64bit: flags & IORESOURCE_MEM_64 != 0,
            })
        })
        .collect()
}

/// Is this a PCI address (`0000:03:00.0`)?
pub fn is_pci_address(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 12
        && b[4] == b':'
        && b[7] == b':'
        && b[10] == b'.'
        && b.iter()
            .enumerate()
            .all(|(i, c)| matches!(i, 4 | 7 | 10) || c.is_ascii_hexdigit())
}

/// The PCI addresses on a device's sysfs path, root port first, device last:
/// `../../../devices/pci0000:00/0000:00:01.0/0000:01:00.0/0000:02:01.0/0000:03:00.0`.
pub fn parse_chain(link_target: &str) -> Vec<String> {
    link_target
        .split('/')
        .filter(|c| is_pci_address(c))
        .map(str::to_string)
        .collect()
}

pub fn vendor_name(vendor_id: &str) -> &'static str {
    match vendor_id {
        "0x8086" => "intel",
        "0x10de" => "nvidia",
        "0x1002" => "amd",
        _ => "other",
    }
}

/// Display controllers (class 0x03xxxx), and AMD's Instinct accelerators,
/// which present as processing accelerators (0x12xxxx).
pub fn is_gpu_class(class: &str, vendor_id: &str) -> bool {
    class.starts_with("0x03") || (class.starts_with("0x12") && vendor_id == "0x1002")
}

fn read_link_attrs(src: &dyn Source, dev: &str) -> Link {
    let a = |n: &str| read_attr(src, &format!("{DEVICES}/{dev}/{n}"));
    Link {
        speed_gts: a("current_link_speed")
            .as_deref()
            .and_then(parse_link_speed),
        width: a("current_link_width")
            .as_deref()
            .and_then(parse_link_width),
        max_speed_gts: a("max_link_speed").as_deref().and_then(parse_link_speed),
        max_width: a("max_link_width").as_deref().and_then(parse_link_width),
    }
}

/// A bridge's bus range, for the fallback chain when a device's sysfs entry
/// is not a link into the device tree (hand-built or copied trees).
#[derive(Debug, Clone)]
pub struct BusRange {
    pub addr: String,
    pub secondary: u32,
    pub subordinate: u32,
}

fn bus_of(addr: &str) -> Option<u32> {
    u32::from_str_radix(addr.get(5..7)?, 16).ok()
}

/// The bridges above `addr` from their bus ranges, root side first: every
/// bridge of the same domain whose secondary..subordinate range holds the
/// device's bus, the widest range first.
pub fn chain_from_bus_ranges(addr: &str, bridges: &[BusRange]) -> Vec<String> {
    let Some(bus) = bus_of(addr) else {
        return Vec::new();
    };
    let domain = addr.get(..4).unwrap_or("");
    let mut above: Vec<&BusRange> = bridges
        .iter()
        .filter(|b| {
            b.addr.starts_with(domain)
                && b.secondary <= bus
                && bus <= b.subordinate
                && b.addr != addr
        })
        .collect();
    above.sort_by_key(|b| (std::cmp::Reverse(b.subordinate - b.secondary), b.secondary));
    above.iter().map(|b| b.addr.clone()).collect()
}

/// One GPU's facts. `link_chain` is the bridge chain its sysfs link gives
/// (read once by the caller); `bridges` the bus ranges for when it gives none.
fn read_gpu(
    src: &dyn Source,
    addr: &str,
    class: String,
    vendor_id: String,
    link_chain: Vec<String>,
    bridges: &[BusRange],
) -> Gpu {
    let a = |n: &str| read_attr(src, &format!("{DEVICES}/{addr}/{n}"));
    let device_id = a("device").unwrap_or_default().to_ascii_lowercase();
    let vendor = vendor_name(&vendor_id).to_string();
    let driver = src
        .link(&format!("{DEVICES}/{addr}/driver"))
        .map(|t| crate::text::basename(&t).to_string());
    let chain_addrs = if link_chain.len() > 1 {
        link_chain
    } else {
        chain_from_bus_ranges(addr, bridges)
    };
    let chain = chain_addrs
        .iter()
        .filter(|p| p.as_str() != addr)
        .map(|p| {
            let pa = |n: &str| read_attr(src, &format!("{DEVICES}/{p}/{n}"));
            PciPort {
                pci: p.clone(),
                vendor_id: pa("vendor").map(|s| s.to_ascii_lowercase()),
                device_id: pa("device").map(|s| s.to_ascii_lowercase()),
                class: pa("class"),
                link: read_link_attrs(src, p),
            }
        })
        .collect();
    let drm = src.list(&format!("{DEVICES}/{addr}/drm")).names();
    let drm_card = drm
        .iter()
        .find(|n| {
            n.strip_prefix("card")
                .is_some_and(|d| d.parse::<u32>().is_ok())
        })
        .cloned();
    let drm_render = drm.iter().find(|n| n.starts_with("renderD")).cloned();
    // amdgpu's own attributes (kernel Documentation/gpu/amdgpu/driver-misc.rst,
    // domain.md §9.5); other drivers have no such files.
    let amdgpu = driver.as_deref() == Some("amdgpu");
    let amd_attr = |n: &str| {
        if amdgpu {
            a(n).and_then(|s| s.parse::<u64>().ok())
        } else {
            None
        }
    };
    let vram_bytes = amd_attr("mem_info_vram_total");
    let vram_used_bytes = amd_attr("mem_info_vram_used");
    let busy_percent = amd_attr("gpu_busy_percent")
        .filter(|p| *p <= 100)
        .map(|p| p as u32);
    Gpu {
        pci: addr.to_string(),
        name: format!("{vendor_id}:{device_id}"),
        compute: vendor != "other",
        vendor,
        device_id,
        subsystem_vendor_id: a("subsystem_vendor").map(|s| s.to_ascii_lowercase()),
        subsystem_device_id: a("subsystem_device").map(|s| s.to_ascii_lowercase()),
        vendor_id,
        class,
        driver,
        numa_node: a("numa_node").and_then(|s| s.parse().ok()),
        link: read_link_attrs(src, addr),
        bars: a("resource")
            .map(|t| parse_resource(&t))
            .unwrap_or_default(),
        chain,
        drm_card,
        drm_render,
        vram_bytes,
        vram_used_bytes,
        busy_percent,
        ..Gpu::default()
    }
}

pub fn probe(src: &dyn Source) -> (Vec<Gpu>, ProbeReport) {
    let addrs = match src.list(DEVICES) {
        Listing::Ok(a) => a,
        Listing::Missing => {
            return (
                Vec::new(),
                ProbeReport::new("pci", "missing", 0, format!("{DEVICES} does not exist")),
            );
        }
        Listing::Denied => {
            return (
                Vec::new(),
                ProbeReport::new("pci", "denied", 0, format!("{DEVICES} is not readable")),
            );
        }
        Listing::Failed(e) => return (Vec::new(), ProbeReport::new("pci", "failed", 0, e)),
    };
    let mut found = Vec::new();
    let mut bridges = Vec::new();
    for addr in addrs.iter().filter(|a| is_pci_address(a)) {
        let Some(class) = read_attr(src, &format!("{DEVICES}/{addr}/class")) else {
            continue;
        };
        let vendor_id = read_attr(src, &format!("{DEVICES}/{addr}/vendor"))
            .unwrap_or_default()
            .to_ascii_lowercase();
        if is_gpu_class(&class, &vendor_id) {
            found.push((addr.clone(), class, vendor_id));
        } else if class.starts_with("0x0604") {
            bridges.push(addr.clone());
        }
    }
    // Bus ranges are only needed when a GPU's entry is not a link into the
    // device tree; read them lazily.
    let found: Vec<(String, String, String, Vec<String>)> = found
        .into_iter()
        .map(|(a, class, vendor)| {
            let chain = src
                .link(&format!("{DEVICES}/{a}"))
                .map(|t| parse_chain(&t))
                .unwrap_or_default();
            (a, class, vendor, chain)
        })
        .collect();
    let needs_ranges = found.iter().any(|(_, _, _, chain)| chain.len() <= 1);
    let ranges: Vec<BusRange> = if needs_ranges {
        bridges
            .iter()
            .filter_map(|b| {
                let n = |attr: &str| {
                    read_attr(src, &format!("{DEVICES}/{b}/{attr}"))
                        .and_then(|v| v.parse::<u32>().ok())
                };
                Some(BusRange {
                    addr: b.clone(),
                    secondary: n("secondary_bus_number")?,
                    subordinate: n("subordinate_bus_number")?,
                })
            })
            .collect()
    } else {
        Vec::new()
    };
    let gpus: Vec<Gpu> = found
        .into_iter()
        .map(|(addr, class, vendor, chain)| read_gpu(src, &addr, class, vendor, chain, &ranges))
        .collect();
    let detail = format!("{} PCI devices, {} display-class", addrs.len(), gpus.len());
    (gpus, ProbeReport::new("pci", "ok", 0, detail))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_speeds_old_and_new_kernels() {
        assert_eq!(parse_link_speed("16.0 GT/s PCIe"), Some(16.0));
        assert_eq!(parse_link_speed("2.5 GT/s PCIe\n"), Some(2.5));
        assert_eq!(parse_link_speed("8 GT/s"), Some(8.0));
        assert_eq!(parse_link_speed("5.0GT/s"), Some(5.0));
        assert_eq!(parse_link_speed("Unknown"), None);
        assert_eq!(parse_link_speed(""), None);
        assert_eq!(parse_link_width("16\n"), Some(16));
        assert_eq!(parse_link_width("0"), None);
        assert_eq!(parse_link_width("x8"), Some(8));
        assert_eq!(gen_of(32.0), Some(5));
        assert_eq!(gen_of(3.0), None);
    }

    #[test]
    fn resource_file_bars() {
        // An A770 with Resizable BAR on: BAR0 16 MiB MMIO, BAR2 16 GiB prefetchable 64-bit.
        let text = "0x00000000a0000000 0x00000000a0ffffff 0x0000000000040200\n\
                    0x0000000000000000 0x0000000000000000 0x0000000000000000\n\
                    0x0000004000000000 0x00000043ffffffff 0x000000000014220c\n\
                    0x0000000000000000 0x0000000000000000 0x0000000000000000\n\
                    0x0000000000000000 0x0000000000000000 0x0000000000000000\n\
                    0x0000000000000000 0x0000000000000000 0x0000000000000000\n\
                    0x00000000a1000000 0x00000000a11fffff 0x0000000000046200\n";
        let bars = parse_resource(text);
        assert_eq!(bars.len(), 2);
        assert_eq!(bars[0].size_bytes, 16 << 20);
        assert_eq!(bars[1].index, 2);
        assert_eq!(bars[1].size_bytes, 16 << 30);
        assert!(bars[1].prefetchable && bars[1].is_64bit);
        assert!(parse_resource("garbage\n\n0x1").is_empty());
    }

    #[test]
    fn chain_from_link_target() {
        let t = "../../../devices/pci0000:00/0000:00:01.0/0000:01:00.0/0000:02:01.0/0000:03:00.0";
        assert_eq!(
            parse_chain(t),
            vec![
                "0000:00:01.0",
                "0000:01:00.0",
                "0000:02:01.0",
                "0000:03:00.0"
            ]
        );
        assert!(parse_chain("../../../devices/platform/foo").is_empty());
        assert!(is_pci_address("0000:c1:00.0"));
        assert!(!is_pci_address("pci0000:00"));
        assert!(!is_pci_address("0000:00:02.0:extra"));
    }

    #[test]
    fn chain_from_bus_numbers_when_links_are_missing() {
        let r = |a: &str, s: u32, e: u32| BusRange {
            addr: a.into(),
            secondary: s,
            subordinate: e,
        };
        let bridges = vec![
            r("0000:00:01.0", 1, 4),
            r("0000:01:00.0", 2, 4),
            r("0000:02:01.0", 3, 3),
            r("0000:02:04.0", 4, 4),
            r("0000:00:1c.0", 5, 5),
        ];
        assert_eq!(
            chain_from_bus_ranges("0000:03:00.0", &bridges),
            vec!["0000:00:01.0", "0000:01:00.0", "0000:02:01.0"]
        );
        assert!(chain_from_bus_ranges("0000:00:02.0", &bridges).is_empty());
        assert!(chain_from_bus_ranges("junk", &bridges).is_empty());
    }

    #[test]
    fn gpu_classes() {
        assert!(is_gpu_class("0x030000", "0x8086"));
        assert!(is_gpu_class("0x038000", "0x8086"));
        assert!(is_gpu_class("0x120000", "0x1002"));
        assert!(
            !is_gpu_class("0x120000", "0x8086"),
            "Intel NPUs are processing accelerators too"
        );
        assert!(!is_gpu_class("0x060400", "0x8086"));
    }
}
