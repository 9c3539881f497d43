//! `ZE_AFFINITY_MASK` under `ZE_FLAT_DEVICE_HIERARCHY`: which Intel GPUs the
//! Level Zero driver (NEO) exposes at all. The mask acts inside the driver
//! before SYCL sees anything, for Level Zero and Intel's OpenCL GPU devices
//! alike; what it leaves is renumbered from 0 (domain.md §3: level-zero-spec
//! PROG.rst, compute-runtime `parseAffinityMask`).
//!
//! - FLAT / COMBINED: each entry is a device as listed (tiles are devices);
//!   `X.Y` entries are ignored ("tiles as devices so ignore X.Y").
//! - COMPOSITE: `N` is card N, `N.M` tile M of card N.
//! - Entries naming devices that do not exist, or that do not parse, are
//!   ignored silently by the driver; a mask with no usable entry exposes nothing.
//! - Default hierarchy: FLAT on Data Center GPU Max (PVC), COMPOSITE elsewhere.

pub use crate::rig::MaskFacts;

/// Normalize ZE_FLAT_DEVICE_HIERARCHY; None when unset or unknown.
pub fn hierarchy(value: Option<&str>) -> Option<String> {
    let v = value?.trim().to_ascii_uppercase();
    matches!(v.as_str(), "FLAT" | "COMPOSITE" | "COMBINED").then_some(v)
}

/// Apply `mask` to `gpus` devices listed by the driver.
pub fn apply(mask: &str, gpus: u32, hierarchy: &str, hierarchy_default: bool) -> MaskFacts {
    let mut f = MaskFacts {
        value: mask.to_string(),
        hierarchy: hierarchy.to_string(),
        hierarchy_default,
        gpus,
        ..Default::default()
    };
    let flat = hierarchy != "COMPOSITE";
    for entry in mask.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let mut parts = entry.split('.');
        let first = parts.next().unwrap_or("");
        let rest: Vec<&str> = parts.collect();
        let Ok(n) = first.parse::<u32>() else {
            f.invalid.push(entry.to_string());
            continue;
        };
        if !rest.is_empty() {
            if rest.len() > 1 || rest[0].parse::<u32>().is_err() {
                f.invalid.push(entry.to_string());
                continue;
            }
            if flat {
                f.ignored_tiles.push(entry.to_string());
                continue;
            }
        }
        if n >= gpus {
            f.unknown.push(entry.to_string());
            continue;
        }
        if !f.kept.contains(&n) {
            f.kept.push(n);
        }
    }
    // The driver reports devices in its own order, not the mask's.
    f.kept.sort_unstable();
    let plain: Option<Vec<u32>> = mask
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|e| e.parse::<u32>().ok())
        .collect();
    if let Some(mut nums) = plain.filter(|n| !n.is_empty() && !n.contains(&0)) {
        if nums.iter().max() == Some(&gpus) {
            nums.sort_unstable();
            nums.dedup();
            f.counted_from_one_fix = Some(
                nums.iter()
                    .map(|n| (n - 1).to_string())
                    .collect::<Vec<_>>()
                    .join(","),
            );
        }
    }
    f
}

/// Does the mask keep everything (unset or empty)?
pub fn is_noop(mask: Option<&str>) -> bool {
    mask.is_none_or(|m| m.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn composite_cards_and_tiles() {
        let f = apply("1,0.1, 3,garbage", 2, "COMPOSITE", true);
        assert_eq!(f.kept, vec![0, 1]);
        assert_eq!(f.unknown, vec!["3"]);
        assert_eq!(f.invalid, vec!["garbage"]);
        assert!(f.ignored_tiles.is_empty());
    }

    #[test]
    fn flat_ignores_tile_entries() {
        let f = apply("0.0,1", 4, "FLAT", false);
        assert_eq!(f.kept, vec![1]);
        assert_eq!(f.ignored_tiles, vec!["0.0"]);
        let all_dots = apply("0.0,0.1", 4, "FLAT", false);
        assert!(all_dots.kept.is_empty());
    }

    #[test]
    fn masks_counted_from_one() {
        assert_eq!(
            apply("2", 2, "COMPOSITE", true)
                .counted_from_one_fix
                .as_deref(),
            Some("1")
        );
        assert_eq!(
            apply("1,2", 2, "COMPOSITE", true)
                .counted_from_one_fix
                .as_deref(),
            Some("0,1")
        );
        assert_eq!(
            apply("0,2", 2, "COMPOSITE", true).counted_from_one_fix,
            None
        );
        assert_eq!(apply("5", 2, "COMPOSITE", true).counted_from_one_fix, None);
        assert_eq!(
            apply("0.1", 2, "COMPOSITE", true).counted_from_one_fix,
            None
        );
    }

    #[test]
    fn order_is_the_drivers_and_duplicates_collapse() {
        assert_eq!(apply("1,0,1", 2, "COMPOSITE", true).kept, vec![0, 1]);
    }

    #[test]
    fn hierarchy_values() {
        assert_eq!(hierarchy(Some("flat")).as_deref(), Some("FLAT"));
        assert_eq!(hierarchy(Some(" Combined ")).as_deref(), Some("COMBINED"));
        assert_eq!(hierarchy(Some("tiles")), None);
        assert_eq!(hierarchy(None), None);
        assert!(is_noop(None) && is_noop(Some(" ")) && !is_noop(Some("0")));
    }
}
