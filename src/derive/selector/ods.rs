//! `ONEAPI_DEVICE_SELECTOR`: grammar, the runtime's own error texts, a
//! corrected value, and which devices a parsed selector keeps.
//!
//! Grammar and messages: domain.md §1.1–1.2 (intel/llvm
//! `sycl/source/detail/device_filter.cpp`). Where releases differ, the
//! behaviour follows what Intel's runtime did in corpus/sycl-oracle (see
//! [`Model`]).

use super::Model;

const BACKENDS: &[&str] = &[
    "*",
    "level_zero",
    "opencl",
    "cuda",
    "hip",
    "native_cpu",
    "host",
    "offload",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DevSpec {
    All,
    /// `cpu`, `gpu`, or the accelerator type (`fpga` or `acc` by release).
    Type(String),
    /// A device number. The runtime reads it with `stoi`, so `-1` parses and
    /// matches nothing.
    Index(i64),
    /// `N.M`, `N.*`, `*.*`, `N.M.K`...: sub-devices of a partitionable device,
    /// selected as root devices. `parent` is None for `*.*`.
    Sub {
        parent: Option<i64>,
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

impl Selector {
    /// Backends named by more than one accepting term (`level_zero:0;level_zero:1`).
    pub fn duplicate_backends(&self) -> Vec<String> {
        let mut seen: Vec<&str> = Vec::new();
        let mut dup: Vec<String> = Vec::new();
        for t in &self.accept {
            if seen.contains(&t.backend.as_str()) {
                if !dup.contains(&t.backend) {
                    dup.push(t.backend.clone());
                }
            } else {
                seen.push(&t.backend);
            }
        }
        dup
    }

    /// A discarding term names devices by number (`!opencl:0`).
    pub fn has_index_discard(&self) -> bool {
        self.discard.iter().any(|t| {
            t.devices
                .iter()
                .any(|d| matches!(d, DevSpec::Index(_) | DevSpec::Sub { .. }))
        })
    }
}

/// A selector the runtime refuses: its own message, and a corrected value
/// when one can be proposed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub message: String,
    pub fix: Option<String>,
}

fn err(message: impl Into<String>) -> ParseError {
    ParseError {
        message: message.into(),
        fix: None,
    }
}

/// The accelerator keywords this release's SYCL runtime understands; any
/// other is an "error parsing device number" (corpus/sycl-oracle, the
/// `opencl:fpga` / `opencl:acc` rows): 2025.0 knows `fpga` only; 2026 refuses
/// both in apps (its sycl-ls lists nothing for `acc` without a word, but the
/// default selector throws); before 2025 both parse.
fn accel_words(model: Model) -> &'static [&'static str] {
    match model {
        Model::Pre2025 => &["fpga", "acc"],
        Model::Early2025 => &["fpga"],
        Model::Current => &[],
    }
}

fn parse_devices(list: &str, model: Model) -> Result<Vec<DevSpec>, ParseError> {
    let empty_after =
        "ONEAPI_DEVICE_SELECTOR parsing error. Empty input after ':' delimiter is not allowed.";
    let mut out = Vec::new();
    for d in list.split(',') {
        if d.is_empty() {
            return Err(err(empty_after));
        }
        let is_type = |w: &str| w == "cpu" || w == "gpu" || accel_words(model).contains(&w);
        let spec = if d == "*" {
            DevSpec::All
        } else if is_type(d) {
            DevSpec::Type(d.to_string())
        } else if d.contains('.') {
            let parts: Vec<&str> = d.split('.').collect();
            if parts.len() > 3 {
                return Err(err(format!(
                    "error parsing {d}  Only two levels of sub-devices supported at this time"
                )));
            }
            if parts.iter().any(|p| p.is_empty()) {
                return Err(err(empty_after));
            }
            let parent = match parts[0] {
                "*" => None,
                w if is_type(w) || w == "fpga" || w == "acc" => {
                    return Err(err(format!(
                        "sub-devices can only be requested when parent device is specified by number or wildcard, not a device type like '{w}'"
                    )));
                }
                n => Some(
                    n.parse::<i64>()
                        .map_err(|_| err(format!("error parsing device number: {n}")))?,
                ),
            };
            if parent.is_none() && parts[1] != "*" {
                return Err(err(
                    "sub-device can't be requested by number if parent device is specified by a wildcard.",
                ));
            }
            if parts.len() == 3 && parts[1] == "*" && parts[2] != "*" {
                return Err(err(
                    "sub-sub-device can't be requested by number if sub-device before is specified by a wildcard.",
                ));
            }
            for p in &parts[1..] {
                if *p != "*" && p.parse::<i64>().is_err() {
                    return Err(err(format!("error parsing device number: {p}")));
                }
            }
            DevSpec::Sub {
                parent,
                spec: d.to_string(),
            }
        } else {
            match d.parse::<i64>() {
                Ok(i) => DevSpec::Index(i),
                Err(_) => return Err(err(format!("error parsing device number: {d}"))),
            }
        };
        out.push(spec);
    }
    Ok(out)
}

/// Parse one `;`-separated entry: (is a discard, term).
fn parse_entry(entry: &str, model: Model) -> Result<(bool, Term), ParseError> {
    let negative = entry.starts_with('!');
    // Before 2025 the runtime did not take discards: it reads `!opencl` as a
    // backend name (2024.2.1 column of corpus/sycl-oracle).
    if negative && model == Model::Pre2025 {
        return Err(err(format!(
            "ONEAPI_DEVICE_SELECTOR parsing error. Backend is required but missing from \"{entry}\""
        )));
    }
    let body = entry.strip_prefix('!').unwrap_or(entry);
    let parts: Vec<&str> = body.split(':').collect();
    if parts.len() == 1 {
        return Err(err(format!(
            "Incomplete selector!  Try '{body}:*' if all devices under the backend was original intention."
        )));
    }
    if parts.len() > 2 {
        return Err(err(format!(
            "Error parsing selector string \"{entry}\"  Too many colons (:)"
        )));
    }
    if parts[0].is_empty() {
        return Err(err(
            "ONEAPI_DEVICE_SELECTOR parsing error. Empty input before ':' delimiter is not allowed.",
        ));
    }
    if parts[1].is_empty() {
        return Err(err(
            "ONEAPI_DEVICE_SELECTOR parsing error. Empty input after ':' delimiter is not allowed.",
        ));
    }
    if !BACKENDS.contains(&parts[0]) {
        return Err(err(format!(
            "ONEAPI_DEVICE_SELECTOR parsing error. Backend is required but missing from \"{entry}\""
        )));
    }
    Ok((
        negative,
        Term {
            backend: parts[0].to_string(),
            devices: parse_devices(parts[1], model)?,
        },
    ))
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
        [one] if matches!(*one, "gpu" | "cpu" | "fpga" | "acc") => Some(format!("{bang}*:{one}")),
        // SYCL_DEVICE_FILTER's triple `level_zero:gpu:0` -> `level_zero:0`
        [_, _ty, num] if known && !num.is_empty() => Some(format!("{bang}{backend}:{num}")),
        [_, "acc"] if known => Some(format!("{bang}{backend}:fpga")),
        [_, "fpga"] if known => Some(format!("{bang}{backend}:acc")),
        [_, rest] if known && !rest.is_empty() => Some(format!("{bang}{backend}:{rest}")),
        // `gpu:0`: the backend is missing. On an Intel rig the first GPU is level_zero:0.
        ["gpu", n] if n.parse::<u32>().is_ok() => Some(format!("{bang}level_zero:{n}")),
        [ty, _] if matches!(*ty, "gpu" | "cpu" | "fpga" | "acc") => Some(format!("{bang}*:{ty}")),
        _ => None,
    }
}

fn parse_strict(lower: &str, model: Model) -> Result<Selector, ParseError> {
    let mut sel = Selector::default();
    for entry in lower.split(';').filter(|e| !e.is_empty()) {
        let negative = entry.starts_with('!');
        if !negative && !sel.discard.is_empty() {
            return Err(err(
                "All negative(discarding) filters must appear after all positive(accepting) filters!",
            ));
        }
        let (negative, term) = parse_entry(entry, model)?;
        if negative {
            sel.discard.push(term);
        } else {
            sel.accept.push(term);
        }
    }
    Ok(sel)
}

/// A corrected selector: every entry that fails replaced by its evident
/// intent, accepting terms before discarding ones. None unless the result
/// parses on this release.
fn propose_fix(entries: &[&str], model: Model) -> Option<String> {
    let fixed: Vec<String> = entries
        .iter()
        .map(|e| match parse_entry(e, model) {
            Ok(_) => Some(e.to_string()),
            Err(_) => fix_entry(e),
        })
        .collect::<Option<Vec<String>>>()?;
    let (mut accept, discard): (Vec<String>, Vec<String>) =
        fixed.into_iter().partition(|e| !e.starts_with('!'));
    accept.extend(discard);
    let joined = accept.join(";");
    parse_strict(&joined, model).ok().map(|_| joined)
}

/// Parse a selector the way this release's runtime does. The string is
/// lower-cased first, as the runtime does.
pub fn parse(value: &str, model: Model) -> Result<Selector, ParseError> {
    if value.is_empty() {
        return Err(err(
            "Invalid value for ONEAPI_DEVICE_SELECTOR environment variable: value should not be null.",
        ));
    }
    let lower = value.to_lowercase();
    parse_strict(&lower, model).map_err(|mut e| {
        let entries: Vec<&str> = lower.split(';').filter(|e| !e.is_empty()).collect();
        e.fix = propose_fix(&entries, model);
        e
    })
}

/// Does an accelerator type keyword match a device type from sycl-ls?
pub fn type_matches(spec_type: &str, device_kind: &str) -> bool {
    let accel = |t: &str| t == "fpga" || t == "acc";
    spec_type == device_kind || (accel(spec_type) && accel(device_kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(v: &str) -> String {
        parse(v, Model::Current).unwrap_err().message
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
    fn release_dependent_grammar() {
        // 2026 refuses both accelerator words, 2025.0 knows `fpga`, 2024 both; 2024 has no discards.
        assert_eq!(
            parse("opencl:acc", Model::Current).unwrap_err().message,
            "error parsing device number: acc"
        );
        assert_eq!(
            parse("opencl:fpga", Model::Current).unwrap_err().message,
            "error parsing device number: fpga"
        );
        assert!(parse("opencl:fpga", Model::Early2025).is_ok());
        assert_eq!(
            parse("opencl:acc", Model::Early2025).unwrap_err().message,
            "error parsing device number: acc"
        );
        assert!(
            parse("opencl:acc", Model::Pre2025).is_ok()
                && parse("opencl:fpga", Model::Pre2025).is_ok()
        );
        assert_eq!(
            parse("*:*;!opencl:0", Model::Pre2025).unwrap_err().message,
            "ONEAPI_DEVICE_SELECTOR parsing error. Backend is required but missing from \"!opencl:0\""
        );
        assert!(parse("*:*;!opencl:0", Model::Early2025).is_ok());
        assert!(parse("opencl:-1", Model::Current).is_ok(), "stoi takes -1");
    }

    #[test]
    fn corrected_values() {
        let fix = |v: &str| parse(v, Model::Current).unwrap_err().fix;
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
        assert_eq!(fix("opencl:fpga"), None, "2026 has no accelerator keyword");
        assert_eq!(fix("gpu:1").as_deref(), Some("level_zero:1"));
        assert_eq!(fix("foo:bar"), None);
        assert_eq!(
            parse("opencl:acc", Model::Early2025)
                .unwrap_err()
                .fix
                .as_deref(),
            Some("opencl:fpga")
        );
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
            "host:*",
        ] {
            assert!(parse(ok, Model::Current).is_ok(), "{ok}");
        }
    }

    #[test]
    fn duplicate_backends_and_index_discards() {
        let s = parse("level_zero:0;level_zero:1;opencl:0", Model::Current).unwrap();
        assert_eq!(s.duplicate_backends(), vec!["level_zero"]);
        assert!(
            parse("level_zero:0,1", Model::Current)
                .unwrap()
                .duplicate_backends()
                .is_empty()
        );
        assert!(
            parse("*:*;!opencl:0", Model::Current)
                .unwrap()
                .has_index_discard()
        );
        assert!(!parse("!*:cpu", Model::Current).unwrap().has_index_discard());
    }
}
