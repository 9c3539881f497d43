//! Installed oneAPI releases from the install tree (`$ONEAPI_ROOT`, else
//! `/opt/intel/oneapi`): the per-component layout (`compiler/2024.0`) and the
//! unified layout of 2024.1+ (`2024.1/`). The runtime wheels in the Python
//! environment (`intel-sycl-rt`, ...) are joined in derive, where the package
//! list is known.

use std::collections::BTreeMap;

use crate::rig::{OneApi, OneApiRelease, ProbeReport};
use crate::source::{Listing, Source};

pub const DEFAULT_ROOT: &str = "/opt/intel/oneapi";

/// `2024.0`, `2024.2.1`, `2025.0` — a release directory name.
pub fn is_release(name: &str) -> bool {
    let mut parts = name.split('.');
    let year = parts.next().unwrap_or("");
    year.len() == 4
        && year.starts_with("20")
        && year.bytes().all(|b| b.is_ascii_digit())
        && parts.clone().count() >= 1
        && parts.all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// The release named in a path such as `/opt/intel/oneapi/compiler/2024.0` or
/// `/opt/intel/oneapi/2025.0/...` (CMPLR_ROOT, LD_LIBRARY_PATH entries).
pub fn release_in_path(path: &str) -> Option<String> {
    path.split('/').find(|c| is_release(c)).map(str::to_string)
}

/// Numeric year of a release string (`2025.0.4` -> 2025).
pub fn year_of(version: &str) -> Option<u32> {
    version.split('.').next()?.parse().ok()
}

pub fn probe(src: &dyn Source, env: &BTreeMap<String, String>) -> (OneApi, ProbeReport) {
    let root = env
        .get("ONEAPI_ROOT")
        .cloned()
        .unwrap_or_else(|| DEFAULT_ROOT.to_string());
    let root = root.trim_end_matches('/').to_string();
    let mut api = OneApi::default();
    let mut seen = Vec::new();
    let top = src.list(&root);
    if let Listing::Ok(names) = &top {
        api.root = Some(root.clone());
        // Unified layout (2024.1+): /opt/intel/oneapi/2024.1
        for n in names.iter().filter(|n| is_release(n)) {
            seen.push((n.clone(), format!("{root}/{n}")));
        }
        // Per-component layout: /opt/intel/oneapi/compiler/2024.0
        for n in src
            .list(&format!("{root}/compiler"))
            .names()
            .iter()
            .filter(|n| is_release(n))
        {
            seen.push((n.clone(), format!("{root}/compiler/{n}")));
        }
    }
    seen.sort();
    seen.dedup_by(|a, b| a.0 == b.0);
    api.releases = seen
        .into_iter()
        .map(|(version, path)| OneApiRelease {
            version,
            source: "install".into(),
            path: Some(path),
        })
        .collect();
    let latest = src
        .link(&format!("{root}/compiler/latest"))
        .as_deref()
        .and_then(release_in_path)
        .or_else(|| api.releases.last().map(|r| r.version.clone()));
    // A sourced setvars.sh wins: apps started from this shell load that release.
    api.active = env
        .get("CMPLR_ROOT")
        .and_then(|p| release_in_path(p))
        .or(latest);
    let (status, detail) = match top {
        Listing::Ok(_) => (
            "ok",
            format!("{} release(s) under {root}", api.releases.len()),
        ),
        Listing::Missing => ("missing", format!("no oneAPI install tree at {root}")),
        Listing::Denied => ("denied", format!("{root} is not readable")),
        Listing::Failed(e) => ("failed", e),
    };
    (api, ProbeReport::new("oneapi", status, 0, detail))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_names() {
        for ok in ["2024.0", "2024.2.1", "2025.0"] {
            assert!(is_release(ok), "{ok}");
        }
        for bad in [
            "latest", "2024", "2024.", "v2024.0", "1999.1", "2024.x", "compiler",
        ] {
            assert!(!is_release(bad), "{bad}");
        }
        assert_eq!(
            release_in_path("/opt/intel/oneapi/compiler/2024.0/linux").as_deref(),
            Some("2024.0")
        );
        assert_eq!(
            release_in_path("/opt/intel/oneapi/2025.0/lib").as_deref(),
            Some("2025.0")
        );
        assert_eq!(release_in_path("/usr/lib"), None);
        assert_eq!(year_of("2025.0.4"), Some(2025));
    }
}
