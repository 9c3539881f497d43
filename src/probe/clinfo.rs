//! `clinfo -l`: the OpenCL platforms and devices the ICD loader finds, and the
//! ICD registrations behind them (`/etc/OpenCL/vendors/*.icd`, or the
//! directory `OCL_ICD_VENDORS` names).
//!
//! `clinfo -l` prints a tree (Oblomov/clinfo `src/clinfo.c`, `printPlatformName`
//! and `printPlatformDevices`):
//! ```text
//! Platform #0: Intel(R) OpenCL Graphics
//!  +-- Device #0: Intel(R) Arc(TM) A770 Graphics
//!  `-- Device #1: Intel(R) Arc(TM) A770 Graphics
//! ```
//! With no platform at all it prints nothing and exits 0 (the `Number of
//! platforms 0` line belongs to the detailed mode of plain `clinfo`, which the
//! parser also reads, with its `Platform Name` / `Device Name` rows).
//! Names can be cut short in pastes (`Intel(R) Iris(R) Xe Graphic`) and
//! generic on a runtime older than the card (`Intel(R) Graphics [0xe20b]`).

use std::sync::LazyLock;

use regex::Regex;

use crate::probe::oneapi::release_in_path;
use crate::rig::{ClDevice, ClPlatform, Clinfo, IcdFile, ProbeReport};
use crate::source::{CmdSpec, CmdStatus, Listing, Source};
use crate::text::{regex, strip_ansi};

pub const ICD_DIR: &str = "/etc/OpenCL/vendors";

static PLATFORM: LazyLock<Regex> = LazyLock::new(|| regex(r"^Platform #(\d+):\s?(.*)$"));
static DEVICE: LazyLock<Regex> =
    LazyLock::new(|| regex(r"^[+`|\\]?--\s+(?:Offline )?Device #(\d+):\s?(.*)$"));
static COUNT: LazyLock<Regex> = LazyLock::new(|| regex(r"^Number of platforms\s+(\d+)$"));
static DETAIL_PLATFORM: LazyLock<Regex> = LazyLock::new(|| regex(r"^Platform Name\s{2,}(.+)$"));
static DETAIL_DEVICE: LazyLock<Regex> = LazyLock::new(|| regex(r"^Device Name\s{2,}(.+)$"));

/// Parse `clinfo -l` (or the platform/device names of plain `clinfo`).
pub fn parse(stdout: &str, stderr: &str) -> Clinfo {
    let mut out = Clinfo::default();
    let mut declared: Option<u32> = None;
    let mut meaningful = 0usize;
    // Detailed mode names each platform twice: in its own block, then again
    // before its devices. The second round selects instead of adding.
    let mut detail_names = 0usize;
    let mut current: Option<usize> = None;
    for raw in stdout.lines() {
        let line = strip_ansi(raw);
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        if let Some(c) = PLATFORM.captures(t) {
            out.platforms.push(ClPlatform {
                index: c[1].parse().ok(),
                name: c[2].trim().to_string(),
                devices: Vec::new(),
            });
            continue;
        }
        if let Some(c) = DEVICE.captures(t) {
            if out.platforms.is_empty() {
                out.platforms.push(ClPlatform::default());
            }
            if let Some(p) = out.platforms.last_mut() {
                p.devices.push(ClDevice {
                    index: c[1].parse().ok(),
                    name: c[2].trim().to_string(),
                });
            }
            continue;
        }
        if let Some(c) = COUNT.captures(t) {
            declared = c[1].parse().ok();
            continue;
        }
        // Detailed mode: one `Platform Name` block per platform, then the
        // devices of each platform with `Device Name`.
        if let Some(c) = DETAIL_PLATFORM.captures(t) {
            let n = declared.unwrap_or(u32::MAX) as usize;
            if detail_names >= n {
                current = Some(detail_names - n);
            } else {
                out.platforms.push(ClPlatform {
                    index: Some(out.platforms.len() as u32),
                    name: c[1].trim().to_string(),
                    devices: Vec::new(),
                });
                current = Some(out.platforms.len() - 1);
            }
            detail_names += 1;
            continue;
        }
        if let Some(c) = DETAIL_DEVICE.captures(t) {
            if let Some(p) = current.and_then(|i| out.platforms.get_mut(i)) {
                let index = Some(p.devices.len() as u32);
                p.devices.push(ClDevice {
                    index,
                    name: c[1].trim().to_string(),
                });
            }
            continue;
        }
        // Everything else of detailed clinfo is property rows; a prompt is noise.
        if !t.starts_with('$') && !t.starts_with('#') {
            meaningful += 1;
        }
    }
    for raw in stderr.lines() {
        let line = strip_ansi(raw);
        let t = line.trim();
        if !t.is_empty() && out.messages.len() < 50 {
            out.messages.push(t.to_string());
        }
    }
    out.no_platform = out.platforms.is_empty() && (declared == Some(0) || meaningful == 0);
    out
}

/// An ICD registration is one line naming a library; anything larger is not one.
const MAX_ICD_BYTES: u64 = 4096;

/// Does this look like an ICD registration: one non-empty line naming a
/// shared library (`libigdrcl.so`, `/opt/.../libintelocl.so`,
/// `libpocl.so.2`)? A registration linked to some other file (root running
/// `capture` with a planted `evil.icd -> /etc/shadow`) is neither shown
/// nor copied into the capture.
pub fn icd_shape(bytes: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return false;
    };
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    match (lines.next(), lines.next()) {
        (Some(lib), None) => lib.contains(".so") && !lib.contains('\0'),
        _ => false,
    }
}

/// The `*.icd` files of the ICD loader: each names one library to load.
pub fn read_icds(src: &dyn Source, dir: &str) -> Vec<IcdFile> {
    let dir = dir.trim_end_matches('/');
    let Listing::Ok(names) = src.list(dir) else {
        return Vec::new();
    };
    names
        .iter()
        .filter(|n| n.ends_with(".icd"))
        .filter_map(|n| {
            let path = format!("{dir}/{n}");
            let text = src.read_checked(&path, MAX_ICD_BYTES, &icd_shape).text()?;
            let library = text.lines().next().unwrap_or("").trim().to_string();
            Some(IcdFile {
                release: release_in_path(&library),
                path,
                library,
            })
        })
        .collect()
}

pub fn probe(
    src: &dyn Source,
    env: &std::collections::BTreeMap<String, String>,
    timeout: std::time::Duration,
) -> (Clinfo, ProbeReport) {
    const NAME: &str = "clinfo";
    let out = src.run(&CmdSpec::new(NAME, &["clinfo", "-l"], timeout));
    // The loader reads OCL_ICD_VENDORS instead of /etc/OpenCL/vendors when it names a directory.
    let icd_dir = env
        .get("OCL_ICD_VENDORS")
        .filter(|d| d.starts_with('/') && !d.ends_with(".icd"))
        .map(String::as_str)
        .unwrap_or(ICD_DIR);
    let icds = read_icds(src, icd_dir);
    let (mut c, status, detail) = match &out.status {
        CmdStatus::Missing => (
            Clinfo::default(),
            "missing",
            "clinfo is not on PATH".to_string(),
        ),
        CmdStatus::Timeout => (
            Clinfo::default(),
            "timeout",
            format!(
                "clinfo -l did not answer in {:.1} s",
                out.duration_ms as f64 / 1000.0
            ),
        ),
        CmdStatus::Failed(e) => (
            Clinfo::default(),
            "failed",
            format!("clinfo could not start: {e}"),
        ),
        CmdStatus::Signal(s) => (
            parse(&out.stdout_text(), &out.stderr_text()),
            "failed",
            format!("clinfo -l was killed by signal {s}"),
        ),
        CmdStatus::Exit(code) => {
            let mut c = parse(&out.stdout_text(), &out.stderr_text());
            if *code != 0 {
                let why = c.messages.first().cloned().unwrap_or_default();
                c.no_platform = false;
                (
                    c,
                    "failed",
                    format!("clinfo -l exited with {code} {why}")
                        .trim()
                        .to_string(),
                )
            } else {
                c.listed = true;
                let n = c.platforms.len();
                let d: usize = c.platforms.iter().map(|p| p.devices.len()).sum();
                (c, "ok", format!("{n} platforms, {d} devices"))
            }
        }
    };
    c.icds = icds;
    (c, ProbeReport::new(NAME, status, out.duration_ms, detail))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_tree() {
        let c = parse(
            "Platform #0: NVIDIA CUDA\n `-- Device #0: NVIDIA GeForce RTX 3090\nPlatform #1: Intel(R) OpenCL Graphics\n +-- Device #0: Intel(R) Arc(TM) A770 Graphics\n `-- Device #1: Intel(R) Arc(TM) A770 Graphics\n",
            "",
        );
        assert_eq!(c.platforms.len(), 2);
        assert_eq!(c.platforms[1].devices.len(), 2);
        assert_eq!(c.platforms[1].devices[1].index, Some(1));
        assert!(!c.no_platform);
    }

    #[test]
    fn no_platform_two_ways() {
        assert!(parse("", "").no_platform);
        assert!(
            parse(
                "$ clinfo\nNumber of platforms                               0\n",
                ""
            )
            .no_platform
        );
        // Property rows without a platform name are not "no platform".
        assert!(
            !parse(
                "  Platform Extensions function suffix             INTEL\n",
                ""
            )
            .no_platform
        );
    }

    #[test]
    fn detailed_mode_names() {
        let c = parse(
            "Number of platforms                               1\n  Platform Name                                   Intel(R) OpenCL Graphics\n  Platform Vendor                                 Intel(R) Corporation\n\n  Platform Name                                   Intel(R) OpenCL Graphics\nNumber of devices                                 1\n  Device Name                                     Intel(R) Arc(TM) A750 Graphics\n",
            "",
        );
        // Detailed clinfo repeats the platform name before its devices.
        assert_eq!(c.platforms.len(), 1);
        assert_eq!(
            c.platforms[0].devices[0].name,
            "Intel(R) Arc(TM) A750 Graphics"
        );
    }

    #[test]
    fn garbage_does_not_panic() {
        for s in [
            "Platform #",
            "Platform #99999999999999999999: x",
            " `-- Device #0:",
            "--  Device #1: orphan",
            "Number of platforms 99999999999999999",
            "\u{0}\u{ff}",
        ] {
            let _ = parse(s, s);
        }
    }
}
