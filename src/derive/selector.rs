//! `ONEAPI_DEVICE_SELECTOR` and `ZE_AFFINITY_MASK`: which SYCL devices an app
//! will see, in which order, with which indices.
//!
//! Grammar and error texts: domain.md §1.1–1.2 (intel/llvm
//! `sycl/source/detail/device_filter.cpp`), checked against the runtime
//! itself in corpus/sycl-oracle. `ZE_AFFINITY_MASK` acts inside the Level
//! Zero driver before SYCL sees anything, so the selector's `level_zero:N`
//! indices refer to the devices left after the mask, renumbered from 0
//! (domain.md §3).

use crate::rig::{SyclDevice, VisibleDevice};

const BACKENDS: &[&str] = &[
    "*",
    "level_zero",
    "opencl",
    "cuda",
    "hip",
    "native_cpu",
    "offload",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DevSpec {
    All,
    /// `cpu`, `gpu`, `fpga`.
    Type(String),
    Index(u32),
    /// `N.M`, `N.*`, `*.*`, `N.M.K`...: sub-devices of a partitionable device,
    /// selected as root devices. `parent` is None for `*.*`.
    Sub {
        parent: Option<u32>,
        spec: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    /// Lower-cased backend, or `*`.
    pub backend: String,
    pub devices: Vec<DevSpec>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selector {
    pub accept: Vec<Term>,
    pub discard: Vec<Term>,
}

/// A selector the runtime refuses: its own message, and a corrected value
/// when one can be proposed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub message: String,
    pub fix: Option<String>,
}

fn err(message: String, fix: Option<String>) -> ParseError {
    ParseError { message, fix }
}

fn parse_devices(entry: &str, list: &str) -> Result<Vec<DevSpec>, ParseError> {
    let mut out = Vec::new();
    for d in list.split(',') {
        if d.is_empty() {
            return Err(err(
                "ONEAPI_DEVICE_SELECTOR parsing error. Empty input after ':' delimiter is not allowed.".into(),
                None,
            ));
        }
        let spec = match d {
            "*" => DevSpec::All,
            "cpu" | "gpu" | "fpga" => DevSpec::Type(d.to_string()),
            _ if d.contains('.') => {
                let parts: Vec<&str> = d.split('.').collect();
                if parts.len() > 3 {
                    return Err(err(
                        format!(
                            "error parsing {d}  Only two levels of sub-devices supported at this time"
                        ),
                        None,
                    ));
                }
                if parts.iter().any(|p| p.is_empty()) {
                    return Err(err(
                        "ONEAPI_DEVICE_SELECTOR parsing error. Empty input after ':' delimiter is not allowed.".into(),
                        None,
                    ));
                }
                let parent = match parts[0] {
                    "*" => None,
                    "cpu" | "gpu" | "fpga" => {
                        return Err(err(
                            format!(
                                "sub-devices can only be requested when parent device is specified by number or wildcard, not a device type like '{}'",
                                parts[0]
                            ),
                            None,
                        ));
                    }
                    n => Some(
                        n.parse::<u32>()
                            .map_err(|_| err(format!("error parsing device number: {n}"), None))?,
                    ),
                };
                if parent.is_none() && parts[1] != "*" {
                    return Err(err(
                        "sub-device can't be requested by number if parent device is specified by a wildcard.".into(),
                        None,
                    ));
                }
                if parts.len() == 3 && parts[1] == "*" && parts[2] != "*" {
                    return Err(err(
                        "sub-sub-device can't be requested by number if sub-device before is specified by a wildcard."
                            .into(),
                        None,
                    ));
                }
                for p in &parts[1..] {
                    if *p != "*" && p.parse::<u32>().is_err() {
                        return Err(err(format!("error parsing device number: {p}"), None));
                    }
                }
                DevSpec::Sub {
                    parent,
                    spec: d.to_string(),
                }
            }
            n => match n.parse::<u32>() {
                Ok(i) => DevSpec::Index(i),
                Err(_) => {
                    // `acc` was the old name of the accelerator type.
                    let fix = (n == "acc").then(|| entry.replace(":acc", ":fpga"));
                    return Err(err(format!("error parsing device number: {n}"), fix));
                }
            },
        };
        out.push(spec);
    }
    Ok(out)
}

/// A corrected version of one entry that failed, when its intent is clear.
fn fix_entry(entry: &str) -> Option<String> {
    let bang = if entry.starts_with('!') { "!" } else { "" };
    let body = entry.trim_start_matches('!').trim();
    let parts: Vec<&str> = body.split(':').collect();
    let backend = parts
        .first()
        .map(|b| b.strip_prefix("ext_oneapi_").unwrap_or(b))
        .unwrap_or("");
    let known = BACKENDS.contains(&backend);
    match parts.as_slice() {
        // `level_zero` -> `level_zero:*`; `gpu` -> `*:gpu`
        [_] if known => Some(format!("{bang}{backend}:*")),
        [one] if matches!(*one, "gpu" | "cpu" | "fpga") => Some(format!("{bang}*:{one}")),
        // SYCL_DEVICE_FILTER's triple `level_zero:gpu:0` -> `level_zero:0`
        [_, _ty, num] if known && !num.is_empty() => Some(format!("{bang}{backend}:{num}")),
        [_, rest] if known && !rest.is_empty() => Some(format!("{bang}{backend}:{rest}")),
        // `gpu:0`: the backend is missing. On an Intel rig the first GPU is level_zero:0.
        ["gpu", n] if n.parse::<u32>().is_ok() => Some(format!("{bang}level_zero:{n}")),
        [ty, _] if matches!(*ty, "gpu" | "cpu" | "fpga") => Some(format!("{bang}*:{ty}")),
        _ => None,
    }
}

/// Parse one `;`-separated entry: (is a discard, term).
fn parse_entry(entry: &str) -> Result<(bool, Term), ParseError> {
    let negative = entry.starts_with('!');
    let body = entry.strip_prefix('!').unwrap_or(entry);
    let parts: Vec<&str> = body.split(':').collect();
    if parts.len() == 1 {
        return Err(err(
            format!(
                "Incomplete selector!  Try '{body}:*' if all devices under the backend was original intention."
            ),
            None,
        ));
    }
    if parts.len() > 2 {
        return Err(err(
            format!("Error parsing selector string \"{entry}\"  Too many colons (:)"),
            None,
        ));
    }
    if parts[0].is_empty() {
        return Err(err(
            "ONEAPI_DEVICE_SELECTOR parsing error. Empty input before ':' delimiter is not allowed.".into(),
            None,
        ));
    }
    if parts[1].is_empty() {
        return Err(err(
            "ONEAPI_DEVICE_SELECTOR parsing error. Empty input after ':' delimiter is not allowed."
                .into(),
            None,
        ));
    }
    if !BACKENDS.contains(&parts[0]) {
        return Err(err(
            format!(
                "ONEAPI_DEVICE_SELECTOR parsing error. Backend is required but missing from \"{entry}\""
            ),
            None,
        ));
    }
    Ok((
        negative,
        Term {
            backend: parts[0].to_string(),
            devices: parse_devices(entry, parts[1])?,
        },
    ))
}

/// A corrected selector: every entry that fails replaced by its evident
/// intent, accepting terms before discarding ones. None unless the result parses.
fn propose_fix(entries: &[&str]) -> Option<String> {
    let fixed: Vec<String> = entries
        .iter()
        .map(|e| match parse_entry(e) {
            Ok(_) => Some(e.to_string()),
            Err(pe) => pe.fix.or_else(|| fix_entry(e)),
        })
        .collect::<Option<Vec<String>>>()?;
    let (mut accept, discard): (Vec<String>, Vec<String>) =
        fixed.into_iter().partition(|e| !e.starts_with('!'));
    accept.extend(discard);
    let joined = accept.join(";");
    parse_strict(&joined).ok().map(|_| joined)
}

fn parse_strict(lower: &str) -> Result<Selector, ParseError> {
    let mut sel = Selector::default();
    for entry in lower.split(';').filter(|e| !e.is_empty()) {
        let negative = entry.starts_with('!');
        if !negative && !sel.discard.is_empty() {
            return Err(err(
                "All negative(discarding) filters must appear after all positive(accepting) filters!".into(),
                None,
            ));
        }
        let (negative, term) = parse_entry(entry)?;
        if negative {
            sel.discard.push(term);
        } else {
            sel.accept.push(term);
        }
    }
    Ok(sel)
}

/// Parse a selector the way the SYCL runtime does (2025+ semantics). The
/// string is lower-cased first, as the runtime does.
pub fn parse(value: &str) -> Result<Selector, ParseError> {
    if value.is_empty() {
        return Err(err(
            "Invalid value for ONEAPI_DEVICE_SELECTOR environment variable: value should not be null.".into(),
            None,
        ));
    }
    let lower = value.to_lowercase();
    parse_strict(&lower).map_err(|mut e| {
        let entries: Vec<&str> = lower.split(';').filter(|e| !e.is_empty()).collect();
        e.fix = propose_fix(&entries);
        e
    })
}

fn type_matches(spec_type: &str, device_kind: &str) -> bool {
    spec_type == device_kind || (spec_type == "fpga" && device_kind == "acc")
}

/// A device as the selector sees it: after the affinity mask.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// Position in the sycl-ls listing.
    pub listed_as: usize,
    pub backend: String,
    pub kind: String,
    /// Per-backend index after the mask.
    pub index: u32,
}

fn term_matches(t: &Term, c: &Candidate) -> bool {
    (t.backend == "*" || t.backend == c.backend)
        && t.devices.iter().any(|d| match d {
            DevSpec::All => true,
            DevSpec::Type(ty) => type_matches(ty, &c.kind),
            DevSpec::Index(i) => *i == c.index,
            // Sub-devices stand in for their parent; which tiles a card has is
            // not in the concise listing.
            DevSpec::Sub { parent, .. } => parent.is_none_or(|p| p == c.index),
        })
}

/// Which candidates survive the selector, in listing order.
pub fn select(sel: &Selector, cands: &[Candidate]) -> Vec<usize> {
    let implicit_all = sel.accept.is_empty();
    cands
        .iter()
        .enumerate()
        .filter(|(_, c)| implicit_all || sel.accept.iter().any(|t| term_matches(t, c)))
        .filter(|(_, c)| !sel.discard.iter().any(|t| term_matches(t, c)))
        .map(|(i, _)| i)
        .collect()
}

/// Parse `ZE_AFFINITY_MASK` in COMPOSITE mode: `0,1` keeps cards 0 and 1;
/// `0.1` keeps (a tile of) card 0. Entries that do not parse are ignored, as
/// the driver ignores them.
pub fn parse_affinity_mask(mask: &str) -> Vec<u32> {
    let mut v: Vec<u32> = mask
        .split(',')
        .filter_map(|e| e.trim().split('.').next()?.parse().ok())
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// Is this device driven by Intel's GPU driver (NEO), so that the affinity
/// mask applies to it?
fn is_neo_gpu(d: &SyclDevice) -> bool {
    d.kind == "gpu"
        && (d.backend == "level_zero" || (d.backend == "opencl" && d.platform.contains("Intel")))
}

/// Apply ZE_AFFINITY_MASK to the listing and renumber per backend.
pub fn apply_mask(devices: &[SyclDevice], mask: Option<&str>) -> Vec<Candidate> {
    let keep = mask.map(parse_affinity_mask);
    let mut out = Vec::new();
    let mut next_index: std::collections::BTreeMap<&str, u32> = Default::default();
    let mut gpu_ordinal: std::collections::BTreeMap<&str, u32> = Default::default();
    for (i, d) in devices.iter().enumerate() {
        if is_neo_gpu(d) {
            let ord = gpu_ordinal.entry(&d.backend).or_insert(0);
            let this = *ord;
            *ord += 1;
            if keep.as_ref().is_some_and(|k| !k.contains(&this)) {
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

/// The outcome for `facts.sycl`: visible devices, or the parse error.
pub struct Outcome {
    pub visible: Vec<VisibleDevice>,
    pub error: Option<ParseError>,
}

pub fn evaluate(devices: &[SyclDevice], selector: Option<&str>, mask: Option<&str>) -> Outcome {
    let cands = apply_mask(devices, mask);
    let (chosen, error) = match selector.map(parse) {
        None => ((0..cands.len()).collect(), None),
        Some(Ok(sel)) => (select(&sel, &cands), None),
        // An app throws at its first device query: nothing is usable.
        Some(Err(e)) => (Vec::new(), Some(e)),
    };
    let visible = chosen
        .into_iter()
        .filter_map(|ci| {
            let c = cands.get(ci)?;
            let d = devices.get(c.listed_as)?;
            Some(VisibleDevice {
                backend: c.backend.clone(),
                index: c.index,
                kind: c.kind.clone(),
                name: d.name.clone(),
                integrated: d.integrated,
                listed_as: c.listed_as,
            })
        })
        .collect();
    Outcome { visible, error }
}

/// A selector that keeps exactly the discrete GPUs on Level Zero, by their
/// indices after the mask: `level_zero:0` or `level_zero:0,1`. Falls back to
/// `level_zero:gpu` when no GPU is known to be discrete, and to `opencl:gpu`
/// when Level Zero lists no GPU.
pub fn suggest(devices: &[SyclDevice], mask: Option<&str>) -> Option<String> {
    let cands = apply_mask(devices, mask);
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

/// Translate a legacy SYCL_DEVICE_FILTER (`backend:type:num`, `,`-separated,
/// every part optional; domain.md §2.1) to ONEAPI_DEVICE_SELECTOR syntax.
/// None when a filter cannot be expressed (`host`, unknown words).
pub fn translate_filter(filter: &str) -> Option<String> {
    const TYPES: &[&str] = &["cpu", "gpu", "acc", "fpga", "*"];
    let mut terms = Vec::new();
    for f in filter
        .to_lowercase()
        .split(',')
        .map(str::trim)
        .filter(|f| !f.is_empty())
    {
        let (mut backend, mut ty, mut num) = ("*".to_string(), None::<String>, None::<String>);
        for part in f.split(':') {
            if part.chars().all(|c| c.is_ascii_digit()) && !part.is_empty() {
                num = Some(part.to_string());
            } else if TYPES.contains(&part) {
                ty = Some(if part == "acc" {
                    "fpga".into()
                } else {
                    part.to_string()
                });
            } else if BACKENDS.contains(&part) {
                backend = part.to_string();
            } else {
                return None;
            }
        }
        let devices = match (ty, num) {
            (_, Some(n)) => n,
            (Some(t), None) => t,
            (None, None) => "*".into(),
        };
        terms.push(format!("{backend}:{devices}"));
    }
    (!terms.is_empty()).then(|| terms.join(";"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(v: &str) -> String {
        parse(v).unwrap_err().message
    }

    #[test]
    fn runtime_error_texts() {
        assert_eq!(
            msg("level_zero"),
            "Incomplete selector!  Try 'level_zero:*' if all devices under the backend was original intention."
        );
        assert_eq!(
            msg("*"),
            "Incomplete selector!  Try '*:*' if all devices under the backend was original intention."
        );
        assert_eq!(
            msg("level_zero:gpu:0"),
            "Error parsing selector string \"level_zero:gpu:0\"  Too many colons (:)"
        );
        assert_eq!(
            msg("foo:bar"),
            "ONEAPI_DEVICE_SELECTOR parsing error. Backend is required but missing from \"foo:bar\""
        );
        assert_eq!(
            msg(" opencl:cpu"),
            "ONEAPI_DEVICE_SELECTOR parsing error. Backend is required but missing from \" opencl:cpu\""
        );
        assert_eq!(
            msg("opencl:"),
            "ONEAPI_DEVICE_SELECTOR parsing error. Empty input after ':' delimiter is not allowed."
        );
        assert_eq!(
            msg(":cpu"),
            "ONEAPI_DEVICE_SELECTOR parsing error. Empty input before ':' delimiter is not allowed."
        );
        assert_eq!(msg("opencl:abc"), "error parsing device number: abc");
        assert_eq!(
            msg("level_zero:gpu.0"),
            "sub-devices can only be requested when parent device is specified by number or wildcard, not a device type like 'gpu'"
        );
        assert_eq!(
            msg("level_zero:*.0"),
            "sub-device can't be requested by number if parent device is specified by a wildcard."
        );
        assert_eq!(
            msg("level_zero:0.*.1"),
            "sub-sub-device can't be requested by number if sub-device before is specified by a wildcard."
        );
        assert_eq!(
            msg("level_zero:0.1.2.3"),
            "error parsing 0.1.2.3  Only two levels of sub-devices supported at this time"
        );
        assert_eq!(
            msg("!opencl:0;*:*"),
            "All negative(discarding) filters must appear after all positive(accepting) filters!"
        );
        assert_eq!(
            msg(""),
            "Invalid value for ONEAPI_DEVICE_SELECTOR environment variable: value should not be null."
        );
    }

    #[test]
    fn corrected_values() {
        let fix = |v: &str| parse(v).unwrap_err().fix;
        assert_eq!(fix("level_zero:gpu:0").as_deref(), Some("level_zero:0"));
        assert_eq!(fix("level_zero").as_deref(), Some("level_zero:*"));
        assert_eq!(fix("hip").as_deref(), Some("hip:*"));
        assert_eq!(
            fix("ext_oneapi_level_zero:*").as_deref(),
            Some("level_zero:*")
        );
        assert_eq!(fix("!opencl:0;*:*").as_deref(), Some("*:*;!opencl:0"));
        assert_eq!(
            fix("opencl:gpu:2;level_zero:gpu:0").as_deref(),
            Some("opencl:2;level_zero:0")
        );
        assert_eq!(fix(" opencl:cpu").as_deref(), Some("opencl:cpu"));
        assert_eq!(fix("opencl:acc").as_deref(), Some("opencl:fpga"));
        assert_eq!(fix("foo:bar"), None);
    }

    #[test]
    fn valid_selectors_parse() {
        for ok in [
            "level_zero:0",
            "level_zero:0,1",
            "*:gpu",
            "OPENCL:CPU",
            "opencl:cpu;",
            "!*:cpu",
            "level_zero:*;!opencl:*",
            "level_zero:0.*",
            "level_zero:*.*",
            "level_zero:0.1.2",
        ] {
            assert!(parse(ok).is_ok(), "{ok}");
        }
    }

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

    #[test]
    fn selection_by_backend_type_index_and_discard() {
        let d = two_a770_and_cpu();
        assert_eq!(evaluate(&d, Some("level_zero:gpu"), None).visible.len(), 2);
        assert_eq!(
            names(&evaluate(&d, Some("level_zero:1"), None)),
            vec!["level_zero:1 A770 #1"]
        );
        assert_eq!(
            names(&evaluate(&d, Some("opencl:cpu"), None)),
            vec!["opencl:0 CPU"]
        );
        assert_eq!(evaluate(&d, Some("!*:cpu"), None).visible.len(), 4);
        assert_eq!(evaluate(&d, Some("*:*;!opencl:*"), None).visible.len(), 2);
        assert!(evaluate(&d, Some("cuda:*"), None).visible.is_empty());
        let bad = evaluate(&d, Some("level_zero:gpu:0"), None);
        assert!(bad.visible.is_empty() && bad.error.is_some());
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
        assert_eq!(suggest(&d, None).as_deref(), Some("level_zero:gpu"));
        d[0].integrated = Some(false);
        d[1].integrated = Some(false);
        assert_eq!(suggest(&d, None).as_deref(), Some("level_zero:0,1"));
        d[0].integrated = Some(true);
        assert_eq!(suggest(&d, None).as_deref(), Some("level_zero:1"));
        assert_eq!(suggest(&d[2..], None).as_deref(), Some("opencl:gpu"));
        assert_eq!(suggest(&d[2..3], None), None);
    }

    #[test]
    fn affinity_mask_renumbers_before_the_selector() {
        let d = two_a770_and_cpu();
        // Only card 1 is left, and it becomes level_zero:0.
        assert_eq!(
            names(&evaluate(&d, Some("level_zero:*"), Some("1"))),
            vec!["level_zero:0 A770 #1"]
        );
        assert!(
            evaluate(&d, Some("level_zero:1"), Some("1"))
                .visible
                .is_empty()
        );
        // The mask applies to Intel's OpenCL GPUs too, not to the CPU.
        assert_eq!(
            names(&evaluate(&d, Some("opencl:*"), Some("1"))),
            vec!["opencl:0 CPU", "opencl:1 A770 #1"]
        );
        assert_eq!(parse_affinity_mask("1,0.1,garbage, 3"), vec![0, 1, 3]);
    }
}
