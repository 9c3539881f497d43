//! `nvidia-container-cli info`: the NVIDIA Container Toolkit's own view of
//! the driver and GPUs. Every `docker run --gpus` (and Podman or containerd
//! with the toolkit's hook) runs this library before the container starts;
//! when `info` fails, the container fails in its prestart hook with the same
//! message. Run without `-k` (never loads kernel modules) and without `-d`
//! (no debug log): stdout holds the driver and one block per device.

use std::time::Duration;

use crate::rig::{NvidiaToolkit, ProbeReport, ToolkitDevice};
use crate::source::{CmdSpec, CmdStatus, Source};
use crate::text::excerpt;

pub const NAME: &str = "nvidia-container-cli-info";

/// `Key:   value` with a key the CLI prints; `(null)` is no value (a Jetson
/// has no UUID or bus location).
fn field<'l>(line: &'l str, key: &str) -> Option<Option<&'l str>> {
    let v = line.strip_prefix(key)?.strip_prefix(':')?.trim();
    Some((!v.is_empty() && v != "(null)").then_some(v))
}

/// `00000000:41:00.0` (NVML's 8-digit domain) as sysfs writes it.
fn bus_to_pci(v: &str) -> Option<String> {
    let (dom, rest) = v.rsplit_once(':')?;
    let (dom, bus) = dom.rsplit_once(':')?;
    let dom = u32::from_str_radix(dom, 16).ok()?;
    let bus = u8::from_str_radix(bus, 16).ok()?;
    let (dev, func) = rest.split_once('.')?;
    let dev = u8::from_str_radix(dev, 16).ok()?;
    let func = u8::from_str_radix(func, 16).ok()?;
    (dom <= 0xffff && dev < 32 && func < 8).then(|| format!("{dom:04x}:{bus:02x}:{dev:02x}.{func}"))
}

/// The stdout of `info`. Lines of a debug log (`I0531 20:31:21.49 ...`, when
/// a user pasted `-d /dev/tty` output) name no known key and are skipped.
pub fn parse_info(text: &str) -> NvidiaToolkit {
    let mut t = NvidiaToolkit::default();
    for line in text.lines().map(str::trim_end) {
        if let Some(v) = field(line, "NVRM version") {
            t.nvrm_version = v.map(String::from);
        } else if let Some(v) = field(line, "CUDA version") {
            t.cuda_version = v.map(String::from);
        } else if let Some(v) = field(line, "Device Index") {
            t.devices.push(ToolkitDevice {
                index: v.and_then(|v| v.parse().ok()),
                ..ToolkitDevice::default()
            });
        } else if let Some(d) = t.devices.last_mut() {
            if let Some(v) = field(line, "Model") {
                d.model = v.map(String::from);
            } else if let Some(v) = field(line, "GPU UUID") {
                d.uuid = v.map(String::from);
            } else if let Some(v) = field(line, "Bus Location") {
                d.pci = v.and_then(bus_to_pci);
            }
        }
    }
    t
}

/// The CLI's error line: `nvidia-container-cli: <what>` (the last one), and
/// its class.
pub fn parse_error(stderr: &str) -> Option<(String, &'static str)> {
    let msg = stderr
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("nvidia-container-cli: "))?
        .trim()
        .to_string();
    let kind = if msg.contains("libnvidia-ml.so") {
        "nvml-library-missing"
    } else if msg.contains("driver not loaded") {
        "driver-not-loaded"
    } else if msg.contains("no cuda-capable device") {
        "no-cuda-device"
    } else {
        "other"
    };
    Some((msg, kind))
}

pub fn probe(src: &dyn Source, timeout: Duration) -> (Option<NvidiaToolkit>, ProbeReport) {
    let out = src.run(&CmdSpec::new(
        NAME,
        &["nvidia-container-cli", "info"],
        timeout,
    ));
    let report =
        |status: &str, detail: String| ProbeReport::new(NAME, status, out.duration_ms, detail);
    match &out.status {
        CmdStatus::Missing => (
            None,
            report(
                "missing",
                "nvidia-container-cli is not on PATH (no NVIDIA Container Toolkit here)".into(),
            ),
        ),
        CmdStatus::Timeout => (
            None,
            report(
                "timeout",
                format!(
                    "nvidia-container-cli info did not answer in {:.1} s",
                    out.duration_ms as f64 / 1000.0
                ),
            ),
        ),
        CmdStatus::Failed(e) => (
            None,
            report(
                "failed",
                format!("nvidia-container-cli could not start: {e}"),
            ),
        ),
        CmdStatus::Signal(s) => (
            None,
            report(
                "failed",
                format!("nvidia-container-cli info was killed by signal {s}"),
            ),
        ),
        CmdStatus::Exit(code) => {
            let mut t = parse_info(&out.stdout_text());
            if *code != 0 {
                let err = parse_error(&out.stderr_text());
                let detail = match &err {
                    Some((m, _)) => format!("nvidia-container-cli info exited with {code}: {m}"),
                    None => format!(
                        "nvidia-container-cli info exited with {code}: {}",
                        excerpt(out.stderr_text().trim())
                    ),
                };
                if let Some((m, k)) = err {
                    t.error = Some(m);
                    t.error_kind = Some(k.to_string());
                } else {
                    t.error_kind = Some("other".into());
                }
                (Some(t), report("failed", detail))
            } else if t.nvrm_version.is_none() && t.devices.is_empty() {
                (
                    Some(t),
                    report(
                        "unparsed",
                        format!(
                            "nvidia-container-cli info printed nothing rigdoctor could read: {}",
                            excerpt(&out.stdout_text())
                        ),
                    ),
                )
            } else {
                let n = t.devices.len();
                let detail = format!(
                    "driver {}, {n} device{}",
                    t.nvrm_version.as_deref().unwrap_or("unknown"),
                    if n == 1 { "" } else { "s" }
                );
                (Some(t), report("ok", detail))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_of_four_k80s() {
        // NVIDIA/nvidia-container-toolkit #183 (`-k -d /dev/tty info`, so
        // the debug lines are interleaved): driver 418.87.00, 4x Tesla K80.
        let t = parse_info("I0226 06:26:25.359763 78809 nvc_info.c:490] requesting device information with ''
I0226 06:26:25.366457 78809 nvc_info.c:520] listing device /dev/nvidia0 (GPU-03bb5927-ceaa-4166-ff1e-1d58a8cbf883 at 00000000:05:00.0)
NVRM version:   418.87.00
CUDA version:   10.1

Device Index:   0
Device Minor:   0
Model:          Tesla K80
Brand:          Tesla
GPU UUID:       GPU-03bb5927-ceaa-4166-ff1e-1d58a8cbf883
Bus Location:   00000000:05:00.0
Architecture:   3.7

Device Index:   1
Device Minor:   1
Model:          Tesla K80
Brand:          Tesla
GPU UUID:       GPU-26602c4d-2069-84f3-3bc9-5d943fb3bdb4
Bus Location:   00000000:06:00.0
Architecture:   3.7
");
        assert_eq!(t.nvrm_version.as_deref(), Some("418.87.00"));
        assert_eq!(t.cuda_version.as_deref(), Some("10.1"));
        assert_eq!(t.devices.len(), 2);
        assert_eq!(t.devices[1].index, Some(1));
        assert_eq!(t.devices[1].model.as_deref(), Some("Tesla K80"));
        assert_eq!(t.devices[1].pci.as_deref(), Some("0000:06:00.0"));
        assert_eq!(
            t.devices[0].uuid.as_deref(),
            Some("GPU-03bb5927-ceaa-4166-ff1e-1d58a8cbf883")
        );
    }

    #[test]
    fn info_of_a_jetson() {
        // NVIDIA/nvidia-docker #1775: Jetson Xavier, R32.4.4.
        let t = parse_info(
            "NVRM version:   (null)\nCUDA version:   10.2\n\nDevice Index:   0\nDevice Minor:   0\nModel:          Xavier\nBrand:          (null)\nGPU UUID:       (null)\nBus Location:   (null)\nArchitecture:   7.2\n",
        );
        assert_eq!(t.nvrm_version, None);
        assert_eq!(t.devices[0].model.as_deref(), Some("Xavier"));
        assert_eq!(t.devices[0].pci, None);
        assert_eq!(t.devices[0].uuid, None);
    }

    #[test]
    fn garbage_reads_as_nothing() {
        let t = parse_info(
            "Model: orphan\nBus Location: zz\nDevice Index: x\nBus Location: 0000:1:2\n",
        );
        assert_eq!(t.devices.len(), 1);
        assert_eq!(t.devices[0].index, None);
        assert_eq!(t.devices[0].pci, None);
        assert_eq!(
            bus_to_pci("00000000:41:00.0").as_deref(),
            Some("0000:41:00.0")
        );
        assert_eq!(bus_to_pci("00000000:41:20.0"), None);
        assert_eq!(bus_to_pci("1ffffffff:41:00.0"), None);
        assert_eq!(bus_to_pci(""), None);
    }

    #[test]
    fn errors_as_the_cli_prints_them() {
        // NVIDIA/nvidia-container-toolkit #1269 (`nvidia-container-cli info`
        // on Debian 12, driver 535.183.01).
        assert_eq!(
            parse_error(
                "nvidia-container-cli: initialization error: nvml error: driver not loaded\n"
            ),
            Some((
                "initialization error: nvml error: driver not loaded".to_string(),
                "driver-not-loaded"
            ))
        );
        // NVIDIA/nvidia-container-toolkit #1199 and #305 (the line the
        // prestart hook quotes, after "Auto-detected mode as 'legacy'").
        assert_eq!(
            parse_error("Auto-detected mode as 'legacy'\nnvidia-container-cli: initialization error: load library failed: libnvidia-ml.so.1: cannot open shared object file: no such file or directory\n")
                .map(|e| e.1),
            Some("nvml-library-missing")
        );
        // NVIDIA/nvidia-docker #1235 (Optimus laptop).
        assert_eq!(
            parse_error("nvidia-container-cli: initialization error: cuda error: no cuda-capable device is detected").map(|e| e.1),
            Some("no-cuda-device")
        );
        // NVIDIA/nvidia-docker #1675.
        assert_eq!(
            parse_error("nvidia-container-cli: initialization error: driver rpc error: failed to process request").map(|e| e.1),
            Some("other")
        );
        assert_eq!(parse_error("segfault\n"), None);
        assert_eq!(parse_error(""), None);
    }
}
