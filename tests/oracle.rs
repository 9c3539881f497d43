//! The selector model against Intel's own runtime: every setting recorded in
//! fixtures/outputs/sycl-oracle (copied from the developer corpus), on the
//! release it was recorded on, must give the same devices, and where the
//! runtime refused the setting, rigdoctor must refuse it in the runtime's words.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly on purpose"
)]

mod common;

use common::*;
use rigdoctor::derive::selector::{self, Inputs, Model};
use rigdoctor::probe::sycl_ls;

/// The first `### stdout` block of an oracle file: the listing as printed.
fn first_stdout(text: &str) -> String {
    let start = text
        .find("### stdout\n")
        .map(|i| i + "### stdout\n".len())
        .unwrap_or(0);
    let rest = &text[start..];
    rest[..rest.find("### stderr").unwrap_or(rest.len())].to_string()
}

/// P for the PoCL device, I for Intel's OpenCL CPU device.
fn letters(names: impl Iterator<Item = String>) -> String {
    names
        .map(|n| if n.contains("pthread") { 'P' } else { 'I' })
        .collect()
}

/// Texts that mean the runtime refused the setting (not a warning).
const REFUSALS: &[&str] = &[
    "parsing error",
    "Incomplete selector",
    "Too many colons",
    "error parsing device number",
    "Invalid value for ONEAPI_DEVICE_SELECTOR",
    "All negative(discarding)",
    "cannot be used in conjunction",
    "Invalid device filter",
    "incorrect format",
    "not partitionable",
];

#[test]
fn selector_model_reproduces_every_oracle_setting() {
    let root = root().join("fixtures/outputs/sycl-oracle");
    let mut checked = 0;
    let mut failures = Vec::new();
    for release_dir in ["2024.2.1-dpctl", "2025.0.4", "2026.1.2", "2026.2.0"] {
        let release = release_dir.split('-').next().unwrap();
        let model = Model::from_release(Some(release), None);
        let dir = root.join(release_dir);
        let baseline = std::fs::read_to_string(dir.join("baseline-no-filter-env.txt")).unwrap();
        let devices = sycl_ls::parse(&first_stdout(&baseline), "").devices;
        assert_eq!(
            letters(devices.iter().map(|d| d.name.clone())),
            "PI",
            "{release_dir} baseline"
        );
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        for path in files
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        {
            let text = std::fs::read_to_string(path).unwrap();
            let setting = text
                .lines()
                .next()
                .unwrap()
                .trim_start_matches("# setting: ")
                .to_string();
            let mut vars: Vec<(String, String)> = Vec::new();
            if setting != "(none)" {
                // Several variables are joined with `|` in the header.
                for part in setting.split('|') {
                    let (k, v) = part.split_once('=').unwrap();
                    vars.push((k.to_string(), v.to_string()));
                }
            }
            let get = |k: &str| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
            let inputs = Inputs {
                selector: get("ONEAPI_DEVICE_SELECTOR"),
                filter: get("SYCL_DEVICE_FILTER"),
                allowlist: get("SYCL_DEVICE_ALLOWLIST"),
                mask: get("ZE_AFFINITY_MASK"),
                hierarchy: get("ZE_FLAT_DEVICE_HIERARCHY"),
            };
            let outcome = selector::evaluate(&devices, inputs, model);
            let want = letters(
                sycl_ls::parse(&first_stdout(&text), "")
                    .devices
                    .into_iter()
                    .map(|d| d.name),
            );
            let got = letters(outcome.visible.iter().map(|v| v.name.clone()));
            let where_ = format!("{release_dir}: {setting}");
            if want != got {
                failures.push(format!(
                    "{where_}: runtime lists {want:?}, rigdoctor {got:?}"
                ));
            }
            let refused = REFUSALS.iter().any(|r| text.contains(r));
            match (&outcome.failure, refused) {
                (Some(f), _) => {
                    // The runtime's own words, as it printed them.
                    let first_line = f.error.message.lines().next().unwrap();
                    if !text.contains(first_line) {
                        failures.push(format!(
                            "{where_}: rigdoctor says {first_line:?}, the runtime does not"
                        ));
                    }
                }
                (None, true) => failures.push(format!(
                    "{where_}: the runtime refused it, rigdoctor did not"
                )),
                (None, false) => {}
            }
            checked += 1;
        }
    }
    assert!(checked >= 4 * 78, "only {checked} settings");
    assert!(
        failures.is_empty(),
        "{} of {checked} settings differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
