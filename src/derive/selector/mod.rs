//! Which SYCL devices an app will see, in which order, with which indices,
//! given the devices sycl-ls lists with no selector applied and the user's
//! variables, applied in the runtime's order:
//!
//! 1. `SYCL_DEVICE_ALLOWLIST` (before enumeration: changes numbering),
//! 2. `ZE_AFFINITY_MASK` under `ZE_FLAT_DEVICE_HIERARCHY` (inside the Level
//!    Zero driver: renumbers from 0) — [`mask`],
//! 3. `SYCL_DEVICE_FILTER` (only before 2025) — [`legacy`],
//! 4. `ONEAPI_DEVICE_SELECTOR` — [`ods`].
//!
//! Release-dependent behaviour is a [`Model`]; each one reproduces what
//! Intel's runtime did in corpus/sycl-oracle (tests/oracle.rs walks every
//! setting recorded there).

pub mod legacy;
pub mod mask;
pub mod ods;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use mask::MaskFacts;
pub use ods::{DevSpec, ParseError, Selector, Term};

use crate::rig::{SyclDevice, VisibleDevice};

/// How a runtime release treats the selector variables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum Model {
    /// oneAPI ≤ 2024.x (PI era): SYCL_DEVICE_FILTER honoured (deprecated);
    /// `!` discards refused as a missing backend (2024.2.1 in the oracle).
    Pre2025,
    /// oneAPI 2025.0–2025.1: SYCL_DEVICE_FILTER ignored; a selector of only
    /// discards loads no adapter and hides every device (intel/llvm #17086);
    /// the accelerator type is `fpga`.
    Early2025,
    /// oneAPI 2025.2 and later: discards are matched on device type by the
    /// loader (#18030), but a discard naming a device number drops that whole
    /// backend; the accelerator type is `acc` (2026.1.2 / 2026.2.0 in the oracle).
    Current,
}

impl Model {
    /// The model for a release (`2024.0`, `2025.0.4`) or, failing that, the
    /// sycl-ls output generation. Unknown: the current behaviour.
    pub fn from_release(release: Option<&str>, generation: Option<&str>) -> Model {
        let parse = |r: &str| -> Option<(u32, u32)> {
            let mut it = r.split('.');
            Some((
                it.next()?.parse().ok()?,
                it.next().and_then(|m| m.parse().ok()).unwrap_or(0),
            ))
        };
        if let Some((y, m)) = release.and_then(parse) {
            return match (y, m) {
                (..=2024, _) => Model::Pre2025,
                (2025, 0..=1) => Model::Early2025,
                _ => Model::Current,
            };
        }
        match generation {
            Some("2021" | "pre-2024.1" | "2024.1+") => Model::Pre2025,
            _ => Model::Current,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Model::Pre2025 => "before 2025",
            Model::Early2025 => "2025.0-2025.1",
            Model::Current => "2025.2 and later",
        }
    }
}

/// The user's variables, as set (None: unset).
#[derive(Debug, Clone, Copy, Default)]
pub struct Inputs<'a> {
    pub selector: Option<&'a str>,
    pub filter: Option<&'a str>,
    pub allowlist: Option<&'a str>,
    pub mask: Option<&'a str>,
    pub hierarchy: Option<&'a str>,
}

/// A device as the selector sees it: after the allowlist and the mask.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// Position in the sycl-ls listing.
    pub listed_as: usize,
    pub backend: String,
    pub kind: String,
    /// Per-backend index after the allowlist and the mask.
    pub index: u32,
}

/// Why apps will fail before they see a device.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// The variable at fault.
    pub variable: &'static str,
    pub error: ParseError,
}

#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub visible: Vec<VisibleDevice>,
    pub failure: Option<Failure>,
    pub mask: Option<MaskFacts>,
    /// SYCL_DEVICE_FILTER is set and this release does not read it.
    pub filter_ignored: bool,
    /// The selector as parsed, when it parses.
    pub selector: Option<Selector>,
}

/// Is this device driven by Intel's GPU driver (NEO), so that the affinity
/// mask applies to it?
fn is_neo_gpu(d: &SyclDevice) -> bool {
    d.kind == "gpu"
        && (d.backend == "level_zero" || (d.backend == "opencl" && d.platform.contains("Intel")))
}

fn is_pvc(d: &SyclDevice) -> bool {
    d.name.contains("Data Center GPU Max")
}

/// The hierarchy in force: the variable, else FLAT on PVC and COMPOSITE elsewhere.
pub fn hierarchy_of(devices: &[SyclDevice], value: Option<&str>) -> (String, bool) {
    match mask::hierarchy(value) {
        Some(h) => (h, false),
        None if devices
            .iter()
            .any(|d| d.backend == "level_zero" && is_pvc(d)) =>
        {
            ("FLAT".into(), true)
        }
        None => ("COMPOSITE".into(), true),
    }
}

/// Apply the allowlist and the mask; renumber per backend.
fn candidates(
    devices: &[SyclDevice],
    keep_listed: &dyn Fn(usize) -> bool,
    mask: Option<&MaskFacts>,
) -> Vec<Candidate> {
    let mut out = Vec::new();
    let mut next_index: BTreeMap<&str, u32> = BTreeMap::new();
    let mut gpu_ordinal: BTreeMap<&str, u32> = BTreeMap::new();
    for (i, d) in devices.iter().enumerate() {
        if !keep_listed(i) {
            continue;
        }
        if is_neo_gpu(d) {
            let ord = gpu_ordinal.entry(&d.backend).or_insert(0);
            let this = *ord;
            *ord += 1;
            if mask.is_some_and(|m| !m.kept.contains(&this)) {
                continue;
            }
        }
        let n = next_index.entry(&d.backend).or_insert(0);
        out.push(Candidate {
            listed_as: i,
            backend: d.backend.clone(),
            kind: d.kind.clone(),
            index: *n,
        });
        *n += 1;
    }
    out
}

fn spec_matches(spec: &DevSpec, c: &Candidate) -> bool {
    match spec {
        DevSpec::All => true,
        DevSpec::Type(ty) => ods::type_matches(ty, &c.kind),
        DevSpec::Index(i) => *i == i64::from(c.index),
        DevSpec::Sub { parent, .. } => parent.is_none_or(|p| p == i64::from(c.index)),
    }
}

fn term_matches(t: &Term, c: &Candidate) -> bool {
    (t.backend == "*" || t.backend == c.backend) && t.devices.iter().any(|d| spec_matches(d, c))
}

/// Does a discarding term drop this candidate, on this release?
fn discards(t: &Term, c: &Candidate, model: Model) -> bool {
    let backend = t.backend == "*" || t.backend == c.backend;
    // Since 2025.2 the loader filters adapters by device type; a device
    // number cannot be checked there, so the whole backend goes.
    if model == Model::Current
        && t.devices
            .iter()
            .any(|d| matches!(d, DevSpec::Index(_) | DevSpec::Sub { .. }))
    {
        return backend;
    }
    term_matches(t, c)
}

/// Pick devices with a parsed selector. Sub-device terms on a device that
/// cannot be partitioned are the runtime's error.
fn select(
    sel: &Selector,
    cands: &[Candidate],
    devices: &[SyclDevice],
    hierarchy: &str,
    model: Model,
) -> Result<Vec<(usize, Option<String>)>, ParseError> {
    if sel.accept.is_empty() && model == Model::Early2025 {
        // intel/llvm #17086: the loader's pre-filter reads a discard-only
        // selector as "discard everything" and loads no adapter.
        return Ok(Vec::new());
    }
    let partitionable =
        |c: &Candidate| hierarchy == "COMPOSITE" && devices.get(c.listed_as).is_some_and(is_pvc);
    let mut chosen: Vec<(usize, Option<String>)> = Vec::new();
    for (ci, c) in cands.iter().enumerate() {
        let mut sub: Option<String> = None;
        let accepted = sel.accept.is_empty()
            || sel.accept.iter().any(|t| {
                (t.backend == "*" || t.backend == c.backend)
                    && t.devices.iter().any(|d| match d {
                        DevSpec::Sub { parent, spec } => {
                            if parent.is_some_and(|p| p != i64::from(c.index)) {
                                return false;
                            }
                            if partitionable(c) {
                                sub = Some(spec.clone());
                                true
                            } else {
                                false
                            }
                        }
                        other => spec_matches(other, c),
                    })
            });
        if accepted && !sel.discard.iter().any(|t| discards(t, c, model)) {
            chosen.push((ci, sub));
        }
    }
    // A numbered sub-device request on a device that exists but cannot be split.
    for t in &sel.accept {
        for d in &t.devices {
            if let DevSpec::Sub {
                parent: Some(p),
                spec,
            } = d
            {
                let named = cands.iter().find(|c| {
                    (t.backend == "*" || t.backend == c.backend) && i64::from(c.index) == *p
                });
                if let Some(c) = named {
                    if !partitionable(c) {
                        return Err(ParseError {
                            message: format!("device is not partitionable: {}:{spec}", t.backend),
                            fix: Some(format!("{}:{p}", t.backend)),
                        });
                    }
                }
            }
        }
    }
    Ok(chosen)
}

fn visible_of(
    cands: &[Candidate],
    devices: &[SyclDevice],
    chosen: &[(usize, Option<String>)],
) -> Vec<VisibleDevice> {
    chosen
        .iter()
        .filter_map(|(ci, sub)| {
            let c = cands.get(*ci)?;
            let d = devices.get(c.listed_as)?;
            Some(VisibleDevice {
                backend: c.backend.clone(),
                index: c.index,
                kind: c.kind.clone(),
                name: match sub {
                    Some(s) => format!("{} (sub-devices {s})", d.name),
                    None => d.name.clone(),
                },
                integrated: d.integrated,
                listed_as: c.listed_as,
            })
        })
        .collect()
}

fn fail(variable: &'static str, error: ParseError) -> Option<Failure> {
    Some(Failure { variable, error })
}

/// What an app sees on this release with these variables.
pub fn evaluate(devices: &[SyclDevice], inputs: Inputs<'_>, model: Model) -> Outcome {
    let mut out = Outcome::default();

    // 1. The allowlist filters before enumeration.
    let allow = match inputs.allowlist.map(legacy::parse_allowlist) {
        Some(Err(message)) => {
            out.failure = fail("SYCL_DEVICE_ALLOWLIST", ParseError { message, fix: None });
            None
        }
        Some(Ok(list)) => Some(list),
        None => None,
    };
    if out.failure.is_some() {
        return out;
    }
    let keep_listed = |i: usize| {
        allow.as_ref().is_none_or(|l| {
            devices
                .get(i)
                .is_some_and(|d| legacy::allowlist_keeps(l, d))
        })
    };

    // 2. The affinity mask, inside the driver.
    let (hierarchy, hierarchy_default) = hierarchy_of(devices, inputs.hierarchy);
    if !mask::is_noop(inputs.mask) {
        let gpus = devices
            .iter()
            .enumerate()
            .filter(|(i, d)| keep_listed(*i) && d.backend == "level_zero" && d.kind == "gpu")
            .count() as u32;
        out.mask = Some(mask::apply(
            inputs.mask.unwrap_or_default(),
            gpus,
            &hierarchy,
            hierarchy_default,
        ));
    }
    let cands = candidates(devices, &keep_listed, out.mask.as_ref());

    // 3. SYCL_DEVICE_FILTER, where the release still reads it.
    let mut chosen: Vec<(usize, Option<String>)> = (0..cands.len()).map(|i| (i, None)).collect();
    if let Some(filter) = inputs.filter {
        if model != Model::Pre2025 {
            out.filter_ignored = true;
        } else if inputs.selector.is_some() {
            out.failure = fail(
                "SYCL_DEVICE_FILTER",
                ParseError {
                    message: "ONEAPI_DEVICE_SELECTOR cannot be used in conjunction with SYCL_DEVICE_FILTER".into(),
                    fix: Some("unset SYCL_DEVICE_FILTER".into()),
                },
            );
            return out;
        } else {
            match legacy::parse_filter(filter) {
                Err(message) => {
                    out.failure = fail("SYCL_DEVICE_FILTER", ParseError { message, fix: None });
                    return out;
                }
                Ok(filters) => chosen.retain(|(ci, _)| {
                    cands.get(*ci).is_some_and(|c| {
                        devices
                            .get(c.listed_as)
                            .is_some_and(|d| legacy::filter_keeps(&filters, d, c.index))
                    })
                }),
            }
        }
    }

    // 4. ONEAPI_DEVICE_SELECTOR.
    if let Some(value) = inputs.selector {
        match ods::parse(value, model) {
            Err(e) => {
                out.failure = fail("ONEAPI_DEVICE_SELECTOR", e);
                return out;
            }
            Ok(sel) => {
                match select(&sel, &cands, devices, &hierarchy, model) {
                    Ok(picked) => chosen = picked,
                    Err(e) => {
                        out.failure = fail("ONEAPI_DEVICE_SELECTOR", e);
                        out.selector = Some(sel);
                        return out;
                    }
                }
                out.selector = Some(sel);
            }
        }
    }
    out.visible = visible_of(&cands, devices, &chosen);
    out
}

/// A selector that keeps exactly the discrete GPUs on Level Zero, by their
/// indices after the mask: `level_zero:0` or `level_zero:0,1`. Falls back to
/// `level_zero:gpu` when no GPU is known to be discrete, and to `opencl:gpu`
/// when Level Zero lists no GPU.
pub fn suggest(devices: &[SyclDevice], inputs: Inputs<'_>) -> Option<String> {
    let (hierarchy, default) = hierarchy_of(devices, inputs.hierarchy);
    let mask = (!mask::is_noop(inputs.mask)).then(|| {
        let gpus = devices
            .iter()
            .filter(|d| d.backend == "level_zero" && d.kind == "gpu")
            .count() as u32;
        mask::apply(inputs.mask.unwrap_or_default(), gpus, &hierarchy, default)
    });
    let cands = candidates(devices, &|_| true, mask.as_ref());
    let l0: Vec<&Candidate> = cands
        .iter()
        .filter(|c| c.backend == "level_zero" && c.kind == "gpu")
        .collect();
    let discrete: Vec<String> = l0
        .iter()
        .filter(|c| devices.get(c.listed_as).and_then(|d| d.integrated) == Some(false))
        .map(|c| c.index.to_string())
        .collect();
    if !discrete.is_empty() {
        return Some(format!("level_zero:{}", discrete.join(",")));
    }
    if !l0.is_empty() {
        return Some("level_zero:gpu".into());
    }
    cands
        .iter()
        .any(|c| c.backend == "opencl" && c.kind == "gpu")
        .then(|| "opencl:gpu".into())
}

/// Translate a legacy SYCL_DEVICE_FILTER to ONEAPI_DEVICE_SELECTOR syntax.
/// None when a filter cannot be expressed (`host`, unknown words).
pub fn translate_filter(filter: &str) -> Option<String> {
    let filters = legacy::parse_filter(filter).ok()?;
    let mut terms = Vec::new();
    for f in filters {
        if f.backend.as_deref() == Some("host") || f.kind.as_deref() == Some("host") {
            return None;
        }
        let backend = f.backend.unwrap_or_else(|| "*".into());
        let devices = match (f.kind, f.num) {
            (_, Some(n)) => n.to_string(),
            (Some(k), None) if k == "acc" => "fpga".into(),
            (Some(k), None) => k,
            (None, None) => "*".into(),
        };
        terms.push(format!("{backend}:{devices}"));
    }
    (!terms.is_empty()).then(|| terms.join(";"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(backend: &str, kind: &str, index: u32, name: &str) -> SyclDevice {
        SyclDevice {
            backend: backend.into(),
            kind: kind.into(),
            index: Some(index),
            platform: if backend == "opencl" && kind == "gpu" {
                "Intel(R) OpenCL Graphics".into()
            } else {
                "p".into()
            },
            name: name.into(),
            ..Default::default()
        }
    }

    fn two_a770_and_cpu() -> Vec<SyclDevice> {
        vec![
            dev("level_zero", "gpu", 0, "A770 #0"),
            dev("level_zero", "gpu", 1, "A770 #1"),
            dev("opencl", "cpu", 0, "CPU"),
            dev("opencl", "gpu", 1, "A770 #0"),
            dev("opencl", "gpu", 2, "A770 #1"),
        ]
    }

    fn names(o: &Outcome) -> Vec<String> {
        o.visible
            .iter()
            .map(|v| format!("{}:{} {}", v.backend, v.index, v.name))
            .collect()
    }

    fn ev(d: &[SyclDevice], sel: Option<&str>, mask: Option<&str>) -> Outcome {
        evaluate(
            d,
            Inputs {
                selector: sel,
                mask,
                ..Default::default()
            },
            Model::Current,
        )
    }

    #[test]
    fn models_from_releases() {
        assert_eq!(Model::from_release(Some("2024.0"), None), Model::Pre2025);
        assert_eq!(Model::from_release(Some("2024.2.1"), None), Model::Pre2025);
        assert_eq!(
            Model::from_release(Some("2025.0.4"), None),
            Model::Early2025
        );
        assert_eq!(Model::from_release(Some("2025.1"), None), Model::Early2025);
        assert_eq!(Model::from_release(Some("2025.3.1"), None), Model::Current);
        assert_eq!(Model::from_release(Some("2026.0"), None), Model::Current);
        assert_eq!(
            Model::from_release(None, Some("pre-2024.1")),
            Model::Pre2025
        );
        assert_eq!(Model::from_release(None, None), Model::Current);
    }

    #[test]
    fn selection_by_backend_type_index_and_discard() {
        let d = two_a770_and_cpu();
        assert_eq!(ev(&d, Some("level_zero:gpu"), None).visible.len(), 2);
        assert_eq!(
            names(&ev(&d, Some("level_zero:1"), None)),
            vec!["level_zero:1 A770 #1"]
        );
        assert_eq!(
            names(&ev(&d, Some("opencl:cpu"), None)),
            vec!["opencl:0 CPU"]
        );
        assert_eq!(ev(&d, Some("!*:cpu"), None).visible.len(), 4);
        assert_eq!(ev(&d, Some("*:*;!opencl:*"), None).visible.len(), 2);
        assert!(ev(&d, Some("cuda:*"), None).visible.is_empty());
        let bad = ev(&d, Some("level_zero:gpu:0"), None);
        assert!(bad.visible.is_empty() && bad.failure.is_some());
    }

    #[test]
    fn release_differences_on_discards() {
        let d = two_a770_and_cpu();
        let on = |sel: &str, m: Model| {
            evaluate(
                &d,
                Inputs {
                    selector: Some(sel),
                    ..Default::default()
                },
                m,
            )
        };
        // Current: a numbered discard drops its whole backend.
        assert_eq!(on("*:*;!opencl:0", Model::Current).visible.len(), 2);
        // 2025.0: numbered discards work next to an accept term, but a
        // discard-only selector hides everything.
        assert_eq!(on("*:*;!opencl:0", Model::Early2025).visible.len(), 4);
        assert!(on("!*:cpu", Model::Early2025).visible.is_empty());
        // Before 2025: no discards at all.
        assert!(on("!*:cpu", Model::Pre2025).failure.is_some());
    }

    #[test]
    fn affinity_mask_renumbers_before_the_selector() {
        let d = two_a770_and_cpu();
        assert_eq!(
            names(&ev(&d, Some("level_zero:*"), Some("1"))),
            vec!["level_zero:0 A770 #1"]
        );
        assert!(ev(&d, Some("level_zero:1"), Some("1")).visible.is_empty());
        assert_eq!(
            names(&ev(&d, Some("opencl:*"), Some("1"))),
            vec!["opencl:0 CPU", "opencl:1 A770 #1"]
        );
        let o = ev(&d, None, Some("0,5"));
        let m = o.mask.unwrap();
        assert_eq!(
            (m.kept, m.unknown, m.hierarchy.as_str()),
            (vec![0], vec!["5".to_string()], "COMPOSITE")
        );
    }

    #[test]
    fn legacy_filter_by_release() {
        let d = two_a770_and_cpu();
        let sdf = |f: &str, sel: Option<&str>, m: Model| {
            evaluate(
                &d,
                Inputs {
                    filter: Some(f),
                    selector: sel,
                    ..Default::default()
                },
                m,
            )
        };
        assert_eq!(
            names(&sdf("level_zero:gpu:1", None, Model::Pre2025)),
            vec!["level_zero:1 A770 #1"]
        );
        let ignored = sdf("level_zero:gpu:1", None, Model::Current);
        assert!(ignored.filter_ignored && ignored.visible.len() == 5);
        let both = sdf("opencl:cpu", Some("opencl:cpu"), Model::Pre2025);
        assert_eq!(
            both.failure.unwrap().error.message,
            "ONEAPI_DEVICE_SELECTOR cannot be used in conjunction with SYCL_DEVICE_FILTER"
        );
        assert!(sdf("", None, Model::Pre2025).visible.is_empty());
    }

    #[test]
    fn sub_devices_need_a_partitionable_device() {
        let d = two_a770_and_cpu();
        let o = ev(&d, Some("level_zero:0.0"), None);
        assert_eq!(
            o.failure.unwrap().error.message,
            "device is not partitionable: level_zero:0.0"
        );
        assert!(ev(&d, Some("level_zero:*.*"), None).visible.is_empty());
        let max = vec![dev(
            "level_zero",
            "gpu",
            0,
            "Intel(R) Data Center GPU Max 1550",
        )];
        let composite = evaluate(
            &max,
            Inputs {
                selector: Some("level_zero:0.*"),
                hierarchy: Some("COMPOSITE"),
                ..Default::default()
            },
            Model::Current,
        );
        assert_eq!(composite.visible.len(), 1);
        assert!(composite.visible[0].name.contains("sub-devices 0.*"));
    }

    #[test]
    fn legacy_filters_translate() {
        assert_eq!(
            translate_filter("level_zero:gpu:0").as_deref(),
            Some("level_zero:0")
        );
        assert_eq!(
            translate_filter("opencl:gpu").as_deref(),
            Some("opencl:gpu")
        );
        assert_eq!(
            translate_filter("level_zero").as_deref(),
            Some("level_zero:*")
        );
        assert_eq!(translate_filter("gpu").as_deref(), Some("*:gpu"));
        assert_eq!(
            translate_filter("opencl:cpu,level_zero:gpu:1").as_deref(),
            Some("opencl:cpu;level_zero:1")
        );
        assert_eq!(translate_filter("host"), None);
        assert_eq!(translate_filter(""), None);
    }

    #[test]
    fn suggestion_keeps_the_discrete_gpus() {
        let mut d = two_a770_and_cpu();
        let none = Inputs::default();
        assert_eq!(suggest(&d, none).as_deref(), Some("level_zero:gpu"));
        d[0].integrated = Some(false);
        d[1].integrated = Some(false);
        assert_eq!(suggest(&d, none).as_deref(), Some("level_zero:0,1"));
        d[0].integrated = Some(true);
        assert_eq!(suggest(&d, none).as_deref(), Some("level_zero:1"));
        assert_eq!(
            suggest(
                &d,
                Inputs {
                    mask: Some("1"),
                    ..Default::default()
                }
            )
            .as_deref(),
            Some("level_zero:0")
        );
        assert_eq!(suggest(&d[2..], none).as_deref(), Some("opencl:gpu"));
        assert_eq!(suggest(&d[2..3], none), None);
    }
}
