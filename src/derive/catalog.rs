//! The device catalog (checks/devices.toml), compiled into the binary.

use std::collections::HashMap;
use std::sync::LazyLock;

use serde::Deserialize;

use crate::rig::CatalogEntry;

const DEVICES_TOML: &str = include_str!("../../checks/devices.toml");

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

#[cfg(test)]
mod tests {
    use super::*;

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
