//! The device catalog (checks/devices.toml) and the AMD PCI id -> gfx target
//! table (checks/amd-pci-gfx.toml, generated from pci.ids), compiled into the
//! binary.

use std::collections::HashMap;
use std::sync::LazyLock;

use serde::Deserialize;

use crate::rig::CatalogEntry;

const DEVICES_TOML: &str = include_str!("../../checks/devices.toml");
const AMD_PCI_GFX_TOML: &str = include_str!("../../checks/amd-pci-gfx.toml");

#[derive(Debug, Deserialize)]
struct File {
    device: Vec<Device>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Device {
    vendor: String,
    ids: Vec<String>,
    name: String,
    kind: String,
    vram_gb: Option<f64>,
    #[allow(dead_code, reason = "documentation for reviewers of the table")]
    vram_note: Option<String>,
    family: Option<String>,
    /// NVIDIA: `bridge`, `nvswitch` or `none`.
    nvlink: Option<String>,
    nvlink_links: Option<u32>,
    p2p: Option<bool>,
    /// AMD: LLVM target.
    gfx: Option<String>,
    #[allow(dead_code, reason = "documentation for reviewers of the table")]
    note: Option<String>,
}

/// Parse a catalog table. Errors name the problem; the built-in table is
/// checked by a test, so the binary never meets one.
pub fn parse(text: &str) -> Result<HashMap<(String, String), CatalogEntry>, String> {
    let f: File = toml::from_str(text).map_err(|e| e.to_string())?;
    let mut map = HashMap::new();
    for d in f.device {
        if d.kind != "discrete" && d.kind != "integrated" {
            return Err(format!(
                "{}: kind must be discrete or integrated, not {:?}",
                d.name, d.kind
            ));
        }
        if let Some(n) = &d.nvlink {
            if !matches!(n.as_str(), "bridge" | "nvswitch" | "mesh" | "none") {
                return Err(format!(
                    "{}: nvlink must be bridge, nvswitch, mesh or none, not {n:?}",
                    d.name
                ));
            }
        }
        for id in &d.ids {
            let key = (d.vendor.to_ascii_lowercase(), id.to_ascii_lowercase());
            let entry = CatalogEntry {
                name: d.name.clone(),
                kind: d.kind.clone(),
                vram_gb: d.vram_gb,
                family: d.family.clone(),
                nvlink: d.nvlink.clone(),
                nvlink_links: d.nvlink_links,
                p2p: d.p2p,
                gfx: d.gfx.clone(),
            };
            if map.insert(key, entry).is_some() {
                return Err(format!("{}:{id} is listed twice", d.vendor));
            }
        }
    }
    Ok(map)
}

static CATALOG: LazyLock<HashMap<(String, String), CatalogEntry>> =
    LazyLock::new(|| parse(DEVICES_TOML).unwrap_or_default());

/// Look up a PCI vendor/device pair (`0x8086`, `0x56a0`).
pub fn lookup(vendor_id: &str, device_id: &str) -> Option<CatalogEntry> {
    CATALOG
        .get(&(
            vendor_id.to_ascii_lowercase(),
            device_id.to_ascii_lowercase(),
        ))
        .cloned()
}

/// One chip of checks/amd-pci-gfx.toml.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmdChip {
    /// `Navi 22`.
    pub chip: String,
    /// The LLVM target: `gfx1031`.
    pub gfx: String,
    /// `RDNA2`, `CDNA3`, `GCN5`.
    pub generation: String,
    /// `discrete` or `integrated`.
    pub kind: String,
    ids: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct AmdFile {
    chip: Vec<AmdChip>,
}

/// Parse the AMD PCI id table: device id (`0x73df`) -> chip.
pub fn parse_amd_pci(text: &str) -> Result<HashMap<String, AmdChip>, String> {
    let f: AmdFile = toml::from_str(text).map_err(|e| e.to_string())?;
    let mut map = HashMap::new();
    for c in f.chip {
        if !c.gfx.starts_with("gfx") || !matches!(c.kind.as_str(), "discrete" | "integrated") {
            return Err(format!(
                "{}: bad gfx {:?} or kind {:?}",
                c.chip, c.gfx, c.kind
            ));
        }
        for id in &c.ids {
            if map.insert(id.to_ascii_lowercase(), c.clone()).is_some() {
                return Err(format!("{id} is listed twice"));
            }
        }
    }
    Ok(map)
}

static AMD_PCI: LazyLock<HashMap<String, AmdChip>> =
    LazyLock::new(|| parse_amd_pci(AMD_PCI_GFX_TOML).unwrap_or_default());

/// The card's own gfx target from its PCI device id (`0x73df` -> `gfx1031`):
/// the generated pci.ids table first, then the hand-written catalog.
pub fn amd_gfx(device_id: &str) -> Option<String> {
    let id = device_id.to_ascii_lowercase();
    AMD_PCI
        .get(&id)
        .map(|c| c.gfx.clone())
        .or_else(|| lookup("0x1002", &id).and_then(|e| e.gfx))
}

/// The chip behind an AMD PCI device id, when the pci.ids table knows it.
pub fn amd_chip(device_id: &str) -> Option<AmdChip> {
    AMD_PCI.get(&device_id.to_ascii_lowercase()).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amd_pci_table_covers_every_generation() {
        let m = parse_amd_pci(AMD_PCI_GFX_TOML).expect("checks/amd-pci-gfx.toml");
        assert!(m.len() > 130, "{} ids", m.len());
        for generation in [
            "GCN5", "RDNA1", "RDNA2", "RDNA3", "RDNA3.5", "RDNA4", "CDNA1", "CDNA2", "CDNA3",
        ] {
            assert!(
                m.values().any(|c| c.generation == generation),
                "{generation} missing"
            );
        }
        assert_eq!(amd_gfx("0x73DF").as_deref(), Some("gfx1031"));
        assert_eq!(amd_gfx("0x747e").as_deref(), Some("gfx1101"));
        assert_eq!(amd_gfx("0x1638").as_deref(), Some("gfx90c"));
        assert_eq!(amd_gfx("0x1586").as_deref(), Some("gfx1151"));
        assert_eq!(amd_gfx("0x74a1").as_deref(), Some("gfx942"));
        assert_eq!(amd_gfx("0x7550").as_deref(), Some("gfx1201"));
        assert_eq!(
            amd_chip("0x15bf").map(|c| c.kind),
            Some("integrated".into())
        );
        assert_eq!(amd_gfx("0x1478"), None, "the on-board switch is no GPU");
        assert!(parse_amd_pci("[[chip]]\nchip='x'\ngfx='gfx1'\ngeneration='g'\nkind='discrete'\nids=['0x1','0x1']\n").is_err());
    }

    #[test]
    fn hand_catalog_agrees_with_the_pci_table() {
        // Two tables name AMD targets; a disagreement would make the card's
        // own target depend on which one a code path asks.
        let pci = parse_amd_pci(AMD_PCI_GFX_TOML).expect("amd-pci-gfx");
        for ((vendor, id), e) in parse(DEVICES_TOML).expect("devices") {
            if let (true, Some(g), Some(c)) = (vendor == "0x1002", &e.gfx, pci.get(&id)) {
                assert_eq!(g, &c.gfx, "{id} ({})", e.name);
            }
        }
    }

    #[test]
    fn builtin_catalog_parses_without_duplicates() {
        let m = parse(DEVICES_TOML).expect("checks/devices.toml");
        assert!(m.len() > 40);
        assert_eq!(
            lookup("0x8086", "0x56A0").map(|e| e.name),
            Some("Intel Arc A770".to_string())
        );
        assert_eq!(
            lookup("0x8086", "0xe20b").and_then(|e| e.vram_gb),
            Some(12.0)
        );
    }

    #[test]
    fn bad_tables_are_refused() {
        assert!(parse("[[device]]\nvendor='0x1'\nids=['0x2']\nname='x'\nkind='weird'\n").is_err());
        assert!(
            parse("[[device]]\nvendor='0x1'\nids=['0x2','0x2']\nname='x'\nkind='discrete'\n")
                .is_err()
        );
        assert!(parse("not toml").is_err());
    }
}
