//! `sycl-ls`: the SYCL devices the runtime enumerates.
//!
//! The line format changed four times (domain.md §4; corpus intel/INDEX.md
//! "Format notes"); the parser takes all of them, and the noise people paste
//! around them (prompts, indentation, timestamps, trace lines, ANSI colour):
//! - 2021: `[opencl:0] GPU : Intel(R) OpenCL HD Graphics 3.0 [21.34.20767]`
//! - ≤2024.0: `[ext_oneapi_level_zero:gpu:0] Intel(R) Level-Zero, Intel(R) Arc(TM) A770 Graphics 1.3 [1.3.26241]`
//! - 2024.1+: `[level_zero:gpu][level_zero:0] Intel(R) oneAPI Unified Runtime over Level-Zero, ... 12.55.8 [1.3.29735+27]`
//! - filtered (a selector variable set) and upstream liboffload: `[level_zero:gpu] LEVEL_ZERO, ... [Unknown]`
//!
//! sycl-ls honours the selector variables and hides what they filter out, so
//! the probe runs it with those variables removed and rigdoctor applies the
//! user's variables itself (derive/selector.rs).

use std::sync::LazyLock;

use regex::Regex;

use crate::text::{excerpt, regex, strip_ansi};

use super::sycl_ls_verbose;
use crate::rig::{ProbeReport, Sycl, SyclDevice, SyclVerbose};
use crate::source::{CmdOutput, CmdSpec, CmdStatus, Mode, Source};

/// Variables that filter or renumber what sycl-ls prints. Removed from its
/// environment so the listing is complete; derive applies them.
pub const SELECTOR_VARS: &[&str] = &[
    "ONEAPI_DEVICE_SELECTOR",
    "SYCL_DEVICE_FILTER",
    "SYCL_DEVICE_ALLOWLIST",
    "ZE_AFFINITY_MASK",
];

/// `[backend:type][backend:N] rest`, `[backend:type:N] rest`, `[backend:type] rest`.
static MODERN: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"\[(?P<be>[a-z_]+):(?P<ty>[a-z]+)(?::(?P<idx>\d+))?\](?:\[(?P<be2>[a-z_]+):(?P<idx2>\d+)\])?\s*(?P<rest>.*)$",
    )
});

/// 2021: `[opencl:0] GPU : rest`.
static Y2021: LazyLock<Regex> = LazyLock::new(|| {
    regex(r"\[(?P<be>[a-z_]+):(?P<idx>\d+)\]\s+(?P<ty>ACC|CPU|GPU|HOST)\s*:\s*(?P<rest>.*)$")
});

static VERSION_TOKEN: LazyLock<Regex> = LazyLock::new(|| regex(r"^(\d+(\.\d+)+|gfx[0-9a-f]+)$"));

/// What one sycl-ls output says.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Listing {
    pub devices: Vec<SyclDevice>,
    /// Format generation (see rig::Sycl::generation).
    pub generation: Option<String>,
    /// Lines that are not device lines and not noise: warnings, errors.
    pub messages: Vec<String>,
    /// sycl-ls said its output is filtered by a selector variable.
    pub filtered: bool,
}

pub(crate) fn normalize_backend(be: &str) -> String {
    be.strip_prefix("ext_oneapi_").unwrap_or(be).to_string()
}

/// Split `Platform, Name Version [Driver]`.
pub(crate) fn split_rest(rest: &str) -> (String, String, String, String) {
    // dpctl-based listings append `  (filter_string: opencl:cpu:0)`.
    let rest = match rest.rfind("  (filter_string:") {
        Some(i) if rest.trim_end().ends_with(')') => &rest[..i],
        _ => rest,
    };
    let rest = rest.trim_end();
    let (body, driver) = match (rest.rfind('['), rest.ends_with(']')) {
        (Some(i), true) => (&rest[..i], rest[i + 1..rest.len() - 1].trim().to_string()),
        _ => (rest, String::new()),
    };
    let (platform, dev) = match body.split_once(", ") {
        Some((p, d)) => (p.trim().to_string(), d.trim()),
        None => (String::new(), body.trim()),
    };
    // "... Graphics OpenCL 3.0 NEO", "... i5-13400 OpenCL 3.0 (Build 0)"
    if let Some(i) = dev.rfind(" OpenCL ") {
        return (
            platform,
            dev[..i].trim().to_string(),
            dev[i + 1..].trim().to_string(),
            driver,
        );
    }
    match dev.rsplit_once(char::is_whitespace) {
        Some((name, last)) if VERSION_TOKEN.is_match(last) => {
            (platform, name.trim().to_string(), last.to_string(), driver)
        }
        _ => (platform, dev.to_string(), String::new(), driver),
    }
}

/// Is this line noise a person pasted around the output (a prompt, a trace line)?
fn is_noise(line: &str) -> bool {
    line.is_empty()
        || line.ends_with("sycl-ls")
        || line.contains("sycl-ls ")
        || line.starts_with("SYCL_PI_TRACE")
        || line.starts_with("SYCL_UR_TRACE")
        || line.starts_with('#')
        || line.starts_with("export ")
}

/// Parse the concise listing (also the head of `--verbose` output).
pub fn parse(stdout: &str, stderr: &str) -> Listing {
    let mut out = Listing::default();
    let mut saw_new = false;
    let mut saw_old = false;
    let mut saw_2021 = false;
    let mut saw_unindexed = false;
    for raw in stdout.lines() {
        let line = strip_ansi(raw);
        let line = line.trim();
        if line.starts_with("Platforms:") {
            // The verbose section follows; it repeats the devices.
            break;
        }
        if let Some(c) = Y2021.captures(line) {
            saw_2021 = true;
            let (platform, _name, version, driver) = split_rest(&c["rest"]);
            let ty = c["ty"].to_ascii_lowercase();
            out.devices.push(SyclDevice {
                backend: normalize_backend(&c["be"]),
                kind: ty,
                index: c["idx"].parse().ok(),
                // The 2021 line names the platform only; strip its version.
                name: platform.clone(),
                platform,
                version,
                driver,
                integrated: None,
            });
            continue;
        }
        if let Some(c) = MODERN.captures(line) {
            let (platform, name, version, driver) = split_rest(&c["rest"]);
            let index = match (c.name("idx"), c.name("idx2")) {
                (Some(i), _) => {
                    saw_old = true;
                    i.as_str().parse().ok()
                }
                (None, Some(i)) => {
                    saw_new = true;
                    i.as_str().parse().ok()
                }
                (None, None) => {
                    saw_unindexed = true;
                    None
                }
            };
            out.devices.push(SyclDevice {
                backend: normalize_backend(&c["be"]),
                kind: c["ty"].to_string(),
                index,
                platform,
                name,
                version,
                driver,
                integrated: None,
            });
            continue;
        }
        if !is_noise(line) {
            out.messages.push(line.to_string());
        }
    }
    for raw in stderr.lines() {
        let line = strip_ansi(raw);
        let line = line.trim();
        if line.contains("Output filtered by") || line.contains("environment variable is set to") {
            out.filtered = true;
        }
        if !line.is_empty() {
            out.messages.push(line.to_string());
        }
    }
    out.messages.truncate(50);
    let platform_has = |s: &str| out.devices.iter().any(|d| d.platform.contains(s));
    out.generation = if out.devices.is_empty() {
        None
    } else if saw_2021 {
        Some("2021".into())
    } else if platform_has("Level-Zero V2") {
        Some("unified-runtime-v2".into())
    } else if platform_has("Unified Runtime over") && !saw_old {
        Some("unified-runtime".into())
    } else if saw_old {
        Some("pre-2024.1".into())
    } else if saw_unindexed
        && out
            .devices
            .iter()
            .any(|d| d.platform.chars().all(|c| !c.is_lowercase()))
    {
        Some("liboffload".into())
    } else if saw_new {
        Some("2024.1+".into())
    } else {
        None
    };
    out
}

/// The SYCL runtime's view, from one runtime start-up where it can be
/// (issue 15: each start-up costs ~100 ms, more with real Level Zero GPUs).
/// `sycl-ls --verbose` prints the concise list before its platform section,
/// so it runs first and the `sycl-ls` facts are read from its head; plain
/// `sycl-ls` runs only when the verbose run failed in a way a second try can
/// help (not when it is missing or hung). The capture records only what ran:
/// `cmd/sycl-ls-verbose.*`, and `cmd/sycl-ls.*` only after a fallback. A
/// replay reads `cmd/sycl-ls.*` when the capture has it (captures made
/// before this change hold both), else the verbose head, as live did.
pub fn probe(
    src: &dyn Source,
    timeout: std::time::Duration,
) -> ((Sycl, ProbeReport), (Option<SyclVerbose>, ProbeReport)) {
    let vout = src.run(&sycl_ls_verbose::spec(timeout));
    let verbose = sycl_ls_verbose::from_output(&vout);
    let head = match (&vout.status, &verbose) {
        (CmdStatus::Exit(0), (Some(v), r)) if r.status == "ok" => {
            sycl_ls_verbose::concise_head(&vout.stdout_text())
                .filter(|h| head_lists_every_device(h, v))
                .map(str::to_string)
        }
        _ => None,
    };
    let from_head = |head: String| {
        let out = CmdOutput {
            stdout: head.into_bytes(),
            stderr: vout.stderr.clone(),
            duration_ms: 0,
            ..vout.clone()
        };
        let (sycl, mut report) = from_output(&out);
        report.detail = format!("{} (from sycl-ls --verbose)", report.detail);
        (sycl, report)
    };
    let mut spec = CmdSpec::new("sycl-ls", &["sycl-ls"], timeout);
    spec.env_remove = SELECTOR_VARS.iter().map(|s| s.to_string()).collect();
    if src.mode() == Mode::Replay {
        let recorded = src.run(&spec);
        return match (&recorded.status, head) {
            (CmdStatus::Missing, Some(head)) => (from_head(head), verbose),
            // sycl-ls ran as --verbose only, and its output has no concise
            // list to stand for plain sycl-ls: unknown, not "not on PATH".
            (CmdStatus::Missing, None) if vout.status == CmdStatus::Exit(0) => {
                let (sycl, mut report) = from_output(&recorded);
                report.detail = "sycl-ls was not recorded, and the recorded sycl-ls --verbose \
                                 has no concise list to read instead"
                    .to_string();
                ((sycl, report), verbose)
            }
            _ => (from_output(&recorded), verbose),
        };
    }
    let concise = match (&vout.status, head) {
        (_, Some(head)) => from_head(head),
        // The same program: missing or hung once is missing or hung again.
        (CmdStatus::Missing | CmdStatus::Timeout, _) => {
            let (sycl, mut report) = from_output(&vout);
            report.detail = format!("{} (sycl-ls --verbose; not run again)", report.detail)
                .replace("sycl-ls did not", "sycl-ls --verbose did not");
            (sycl, report)
        }
        _ => from_output(&src.run(&spec)),
    };
    (concise, verbose)
}

/// Does the concise head of a verbose run list what the verbose section
/// does? sycl-ls before 2023 printed `Platforms: N` first, with no concise
/// list in verbose mode (intel/llvm sycl-ls.cpp of 2021-22: the `[backend:
/// type:N]` lines only `if (!verbose)`): an empty head there is no listing,
/// not "no devices". A head that names fewer devices than the sections is
/// not the whole list either. The 2025.0.4 runtime aborts inside the
/// sections (oracle corpus) after a complete head: more in the head is fine.
pub fn head_lists_every_device(head: &str, v: &SyclVerbose) -> bool {
    let listed = parse(head, "").devices.len();
    let sections = sycl_ls_verbose::device_count(v);
    if listed == 0 {
        // Nothing in the head: only a runtime with nothing to list.
        return sections == 0
            && (v.declared_platforms == Some(0)
                || (!v.platforms.is_empty()
                    && v.platforms.iter().all(|p| p.declared_devices == Some(0))));
    }
    listed >= sections
}

/// Read a concise `sycl-ls` run (or the head of a verbose one).
fn from_output(out: &CmdOutput) -> (Sycl, ProbeReport) {
    let mut sycl = Sycl::default();
    let (status, detail) = match &out.status {
        CmdStatus::Missing => ("missing", "sycl-ls is not on PATH".to_string()),
        CmdStatus::Timeout => (
            "timeout",
            format!(
                "sycl-ls did not answer in {:.1} s",
                out.duration_ms as f64 / 1000.0
            ),
        ),
        CmdStatus::Failed(e) => ("failed", format!("sycl-ls could not start: {e}")),
        CmdStatus::Signal(s) => ("failed", format!("sycl-ls was killed by signal {s}")),
        CmdStatus::Exit(code) => {
            let l = parse(&out.stdout_text(), &out.stderr_text());
            sycl.listed = true;
            sycl.generation = l.generation;
            sycl.messages = l.messages;
            let n = l.devices.len();
            sycl.devices = l.devices;
            if *code != 0 {
                ("failed", format!("sycl-ls exited with {code}"))
            } else if n == 0
                && !out.stdout.is_empty()
                && sycl.messages.iter().any(|m| !m.is_empty())
            {
                (
                    "unparsed",
                    format!(
                        "sycl-ls printed no device line rigdoctor could read: {}",
                        excerpt(&out.stdout_text())
                    ),
                )
            } else {
                ("ok", format!("{n} devices"))
            }
        }
    };
    (
        sycl,
        ProbeReport::new("sycl-ls", status, out.duration_ms, detail),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(line: &str) -> SyclDevice {
        let l = parse(line, "");
        assert_eq!(l.devices.len(), 1, "{line}: {l:?}");
        l.devices.into_iter().next().unwrap()
    }

    #[test]
    fn new_format_with_ip_version_and_plus_suffix() {
        let d = one(
            "[level_zero:gpu][level_zero:1] Intel(R) oneAPI Unified Runtime over Level-Zero, Intel(R) UHD Graphics 730 12.2.0 [1.3.29735+27]",
        );
        assert_eq!(d.backend, "level_zero");
        assert_eq!(d.kind, "gpu");
        assert_eq!(d.index, Some(1));
        assert_eq!(
            d.platform,
            "Intel(R) oneAPI Unified Runtime over Level-Zero"
        );
        assert_eq!(d.name, "Intel(R) UHD Graphics 730");
        assert_eq!(d.version, "12.2.0");
        assert_eq!(d.driver, "1.3.29735+27");
    }

    #[test]
    fn opencl_lines_keep_the_name_apart_from_the_version() {
        let d = one(
            "[opencl:gpu][opencl:1] Intel(R) OpenCL Graphics, Intel(R) Arc(TM) A770 Graphics OpenCL 3.0 NEO  [24.39.31294]",
        );
        assert_eq!(d.name, "Intel(R) Arc(TM) A770 Graphics");
        assert_eq!(d.version, "OpenCL 3.0 NEO");
        assert_eq!(d.driver, "24.39.31294");
        let cpu = one(
            "[opencl:cpu:1] Intel(R) OpenCL, AMD Ryzen 9 5950X 16-Core Processor             3.0 [2023.16.6.0.22_223734]",
        );
        assert_eq!(cpu.name, "AMD Ryzen 9 5950X 16-Core Processor");
        assert_eq!(cpu.version, "3.0");
        assert_eq!(cpu.index, Some(1));
    }

    #[test]
    fn old_format_strips_ext_oneapi() {
        let d = one(
            "[ext_oneapi_level_zero:gpu:0] Intel(R) Level-Zero, Intel(R) Arc(TM) A770 Graphics 1.6 [1.3.31294]",
        );
        assert_eq!(d.backend, "level_zero");
        assert_eq!(d.index, Some(0));
        assert_eq!(d.version, "1.6");
        assert_eq!(
            parse(
                "[ext_oneapi_level_zero:gpu:0] Intel(R) Level-Zero, X 1.3 [1]",
                ""
            )
            .generation
            .as_deref(),
            Some("pre-2024.1")
        );
    }

    #[test]
    fn year_2021_format() {
        let l = parse(
            "[opencl:0] ACC : Intel(R) FPGA Emulation Platform for OpenCL(TM) 1.2 [2021.12.9.0.24_005321]\n[host:0] HOST: SYCL host platform 1.2 [1.2]\n",
            "",
        );
        assert_eq!(l.devices.len(), 2);
        assert_eq!(l.devices[0].kind, "acc");
        assert_eq!(l.devices[1].backend, "host");
        assert_eq!(l.generation.as_deref(), Some("2021"));
    }

    #[test]
    fn terse_upstream_and_filtered_lines_have_no_index() {
        let l = parse(
            "[level_zero:gpu] LEVEL_ZERO, Intel(R) Arc(TM) B580 Graphics [Unknown]\n",
            "",
        );
        assert_eq!(l.devices[0].index, None);
        assert_eq!(l.devices[0].name, "Intel(R) Arc(TM) B580 Graphics");
        assert_eq!(l.devices[0].driver, "Unknown");
        assert_eq!(l.generation.as_deref(), Some("liboffload"));
        let f = parse(
            "[level_zero:gpu] Intel(R) oneAPI Unified Runtime over Level-Zero V2, Intel(R) Arc(TM) B580 Graphics 20.1.0 [1.15.38308+1]\n",
            "INFO: Output filtered by ONEAPI_DEVICE_SELECTOR environment variable, which is set to level_zero:gpu.\n",
        );
        assert!(f.filtered);
        assert_eq!(f.generation.as_deref(), Some("unified-runtime-v2"));
    }

    #[test]
    fn noise_is_skipped_and_messages_kept() {
        let l = parse(
            "\u{1b}[32m   $ sycl-ls\u{1b}[0m\r\nSYCL_PI_TRACE[basic]: Plugin found\n   [opencl:cpu][opencl:0] Intel(R) OpenCL, CPU OpenCL 3.0 (Build 0) [2024.18.6.0.02_160000]\r\nterminate called after throwing\n\nPlatforms: 1\n[level_zero:gpu][level_zero:0] ignored, after verbose starts 1.3 [1]\n",
            "",
        );
        assert_eq!(l.devices.len(), 1);
        assert_eq!(l.messages, vec!["terminate called after throwing"]);
    }

    #[test]
    fn garbage_does_not_panic() {
        for s in [
            "[",
            "[]",
            "[a:b",
            "[level_zero:gpu][",
            "[opencl:gpu][opencl:99999999999999999999] x",
            "\u{0}\u{ff}",
        ] {
            let _ = parse(s, s);
        }
    }
}
