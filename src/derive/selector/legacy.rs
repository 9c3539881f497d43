//! The older device filters: `SYCL_DEVICE_FILTER` (deprecated in 2023.1,
//! removed in 2025.0; domain.md §2.1) and `SYCL_DEVICE_ALLOWLIST` (§2.2).

use regex::Regex;

use super::ods::type_matches;
use crate::rig::SyclDevice;

const SDF_BACKENDS: &[&str] = &["host", "level_zero", "opencl", "cuda", "hip", "*"];
const SDF_TYPES: &[&str] = &["host", "cpu", "gpu", "acc", "*"];

/// One `backend:type:num` filter; every part optional.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub backend: Option<String>,
    pub kind: Option<String>,
    pub num: Option<u32>,
}

/// The runtime's message for a filter it does not understand.
fn invalid(filter: &str) -> String {
    format!(
        "Invalid device filter: {filter}\nPossible backend values are {{opencl,level_zero,cuda,hip,*}}.\n\
         Possible device types are {{cpu,gpu,acc,*}}.\nDevice number should be an non-negative integer."
    )
}

/// Parse SYCL_DEVICE_FILTER: `,`-separated `backend:type:num` triples.
pub fn parse_filter(value: &str) -> Result<Vec<Filter>, String> {
    let mut out = Vec::new();
    for f in value.split(',').map(str::trim).filter(|f| !f.is_empty()) {
        let lower = f.to_lowercase();
        let mut filter = Filter {
            backend: None,
            kind: None,
            num: None,
        };
        for part in lower.split(':') {
            if let Ok(n) = part.parse::<u32>() {
                filter.num = Some(n);
            } else if SDF_TYPES.contains(&part)
                && filter.kind.is_none()
                && !(part == "*" && filter.backend.is_none())
            {
                filter.kind = Some(part.to_string());
            } else if SDF_BACKENDS.contains(&part) && filter.backend.is_none() {
                filter.backend = Some(part.to_string());
            } else {
                return Err(invalid(f));
            }
        }
        out.push(filter);
    }
    Ok(out)
}

/// Which of `devices` (with per-backend indices) a legacy filter keeps. An
/// empty filter keeps nothing, as the 2024 runtime did (corpus/sycl-oracle).
pub fn filter_keeps(filters: &[Filter], d: &SyclDevice, index: u32) -> bool {
    filters.iter().any(|f| {
        f.backend
            .as_deref()
            .is_none_or(|b| b == "*" || b == d.backend)
            && f.kind
                .as_deref()
                .is_none_or(|k| k == "*" || type_matches(k, &d.kind))
            && f.num.is_none_or(|n| n == index)
    })
}

/// The runtime's words for an allowlist it cannot read.
pub const ALLOWLIST_FORMAT_ERROR: &str = "SYCL_DEVICE_ALLOWLIST has incorrect format. For details, please refer to https://github.com/intel/llvm/blob/sycl/sycl/doc/EnvironmentVariables.md";

#[derive(Debug, Clone)]
pub struct AllowEntry {
    pub backend: Option<String>,
    pub kind: Option<String>,
    pub vendor_id: Option<String>,
    pub driver: Option<Regex>,
    pub device_name: Option<Regex>,
    pub platform_name: Option<Regex>,
}

fn braced(v: &str) -> Option<Regex> {
    let inner = v.strip_prefix("{{")?.strip_suffix("}}")?;
    Regex::new(&format!("^(?:{inner})$")).ok()
}

/// Parse SYCL_DEVICE_ALLOWLIST: `|`-separated devices, each `Key:Value`
/// pairs separated by `,`; the regex-valued keys take `{{...}}`.
pub fn parse_allowlist(value: &str) -> Result<Vec<AllowEntry>, String> {
    let mut out = Vec::new();
    for dev in value.split('|').filter(|d| !d.trim().is_empty()) {
        let mut e = AllowEntry {
            backend: None,
            kind: None,
            vendor_id: None,
            driver: None,
            device_name: None,
            platform_name: None,
        };
        for pair in dev.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((k, v)) = pair.split_once(':') else {
                return Err(ALLOWLIST_FORMAT_ERROR.into());
            };
            match k {
                "BackendName" => e.backend = Some(v.to_lowercase()),
                "DeviceType" => e.kind = Some(v.to_lowercase()),
                "DeviceVendorId" => e.vendor_id = Some(v.to_lowercase()),
                "DriverVersion" => e.driver = Some(braced(v).ok_or(ALLOWLIST_FORMAT_ERROR)?),
                "DeviceName" => e.device_name = Some(braced(v).ok_or(ALLOWLIST_FORMAT_ERROR)?),
                "PlatformName" => e.platform_name = Some(braced(v).ok_or(ALLOWLIST_FORMAT_ERROR)?),
                // No data to match it against in the concise listing.
                "PlatformVersion" => {
                    braced(v).ok_or(ALLOWLIST_FORMAT_ERROR)?;
                }
                _ => return Err(ALLOWLIST_FORMAT_ERROR.into()),
            }
        }
        out.push(e);
    }
    if out.is_empty() {
        return Err(ALLOWLIST_FORMAT_ERROR.into());
    }
    Ok(out)
}

/// The PCI vendor a device most likely comes from, from its names.
fn vendor_of(d: &SyclDevice) -> Option<&'static str> {
    let s = format!("{} {}", d.platform, d.name);
    if s.contains("Intel") {
        Some("0x8086")
    } else if s.contains("NVIDIA") {
        Some("0x10de")
    } else if s.contains("AMD") {
        Some("0x1002")
    } else {
        None
    }
}

pub fn allowlist_keeps(list: &[AllowEntry], d: &SyclDevice) -> bool {
    list.iter().any(|e| {
        e.backend.as_deref().is_none_or(|b| b == d.backend)
            && e.kind.as_deref().is_none_or(|k| type_matches(k, &d.kind))
            && e.vendor_id
                .as_deref()
                .is_none_or(|v| Some(v) == vendor_of(d))
            && e.driver.as_ref().is_none_or(|r| r.is_match(&d.driver))
            && e.device_name.as_ref().is_none_or(|r| r.is_match(&d.name))
            && e.platform_name
                .as_ref()
                .is_none_or(|r| r.is_match(&d.platform))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_like_the_runtime() {
        assert_eq!(
            parse_filter("level_zero:gpu:0").unwrap(),
            vec![Filter {
                backend: Some("level_zero".into()),
                kind: Some("gpu".into()),
                num: Some(0)
            }]
        );
        assert_eq!(parse_filter("cpu").unwrap()[0].kind.as_deref(), Some("cpu"));
        assert_eq!(parse_filter("opencl:cpu,level_zero").unwrap().len(), 2);
        assert!(parse_filter("").unwrap().is_empty());
        let e = parse_filter("foo:bar").unwrap_err();
        assert!(e.starts_with("Invalid device filter: foo:bar\nPossible backend values are {opencl,level_zero,cuda,hip,*}."), "{e}");
    }

    fn dev(backend: &str, kind: &str, name: &str) -> SyclDevice {
        SyclDevice {
            backend: backend.into(),
            kind: kind.into(),
            name: name.into(),
            platform: "Intel(R) OpenCL".into(),
            driver: "2026.22.10".into(),
            ..Default::default()
        }
    }

    #[test]
    fn filter_matching() {
        let f = parse_filter("opencl:cpu:1").unwrap();
        assert!(!filter_keeps(&f, &dev("opencl", "cpu", "a"), 0));
        assert!(filter_keeps(&f, &dev("opencl", "cpu", "a"), 1));
        assert!(!filter_keeps(
            &parse_filter("level_zero:gpu").unwrap(),
            &dev("opencl", "cpu", "a"),
            0
        ));
        assert!(!filter_keeps(&[], &dev("opencl", "cpu", "a"), 0));
    }

    #[test]
    fn allowlist() {
        let l = parse_allowlist("BackendName:opencl").unwrap();
        assert!(allowlist_keeps(&l, &dev("opencl", "cpu", "x")));
        assert!(!allowlist_keeps(&l, &dev("level_zero", "gpu", "x")));
        let l = parse_allowlist("DeviceName:{{.*A770.*}},BackendName:level_zero|DeviceType:cpu")
            .unwrap();
        assert!(allowlist_keeps(
            &l,
            &dev("level_zero", "gpu", "Intel(R) Arc(TM) A770 Graphics")
        ));
        assert!(allowlist_keeps(&l, &dev("opencl", "cpu", "x")));
        assert_eq!(parse_allowlist("foo").unwrap_err(), ALLOWLIST_FORMAT_ERROR);
        assert!(
            parse_allowlist("DeviceName:A770").is_err(),
            "regex keys need {{}}"
        );
        assert!(parse_allowlist("Color:blue").is_err());
    }
}
