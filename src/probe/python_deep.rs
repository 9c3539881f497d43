//! `check --deep` / `capture --deep`: import the Python GPU stack and ask it
//! what it sees. Only with `--deep`: importing torch takes seconds, loads the
//! GPU runtime and initializes the devices, which a quick check must not do.
//!
//! The interpreter is the one the package probe used (`--python`, else
//! python3 on PATH), run isolated (`-I`) with a small script through argv (`-c`, no shell)
//! and its own timeout (`--deep-timeout`, default 60 s). The script prints one
//! JSON object per step and flushes it, so an import that kills the
//! interpreter (IPEX's `os._exit(127)` on a torch version mismatch, a
//! segfault in a native library) still leaves the steps before it. Every step
//! catches its own exception and reports its text.
//!
//! Error texts are classified into `error_kind` (corpus intel/errors and
//! intel/ipex-env):
//! - `abi-mismatch`: `undefined symbol` (IPEX built for another torch build);
//! - `oneccl-missing`: `No module named 'oneccl_bindings_for_pytorch'` (IPEX 2.7 imports it);
//! - `not-linked-xpu`: `PyTorch is not linked with support for xpu devices` (a CPU/CUDA torch);
//! - `ipex-torch-mismatch`: IPEX's own `needs to work with PyTorch` check;
//! - `no-module`: another `No module named ...`;
//! - `other`.

use crate::rig::{DeepError, ProbeReport, PythonDeep, TorchXpuDevice};
use crate::source::{CmdSpec, CmdStatus, Source};

/// The import check. Each `emit` is one JSON line; the first line of the
/// script is a marker tests use to tell it from the sys.path query.
pub const SCRIPT: &str = r#"# rigdoctor-deep: import check
import json, sys
def emit(d):
    sys.stdout.write(json.dumps(d) + "\n")
    sys.stdout.flush()
def err(e):
    return (type(e).__name__ + ": " + str(e))[:4000]
emit({"step": "python", "version": sys.version.split()[0]})
try:
    import torch
except BaseException as e:
    emit({"step": "torch", "error": err(e)})
    emit({"step": "done"})
    raise SystemExit(0)
d = {"step": "torch", "version": str(getattr(torch, "__version__", ""))}
v = getattr(torch, "version", None)
d["xpu_build"] = getattr(v, "xpu", None)
d["cuda_build"] = getattr(v, "cuda", None)
emit(d)
if d["cuda_build"]:
    try:
        emit({"step": "cuda", "available": bool(torch.cuda.is_available()), "count": int(torch.cuda.device_count())})
    except BaseException as e:
        emit({"step": "cuda", "error": err(e)})
try:
    import importlib.util
    found = importlib.util.find_spec("intel_extension_for_pytorch") is not None
except BaseException:
    found = False
if found:
    try:
        import intel_extension_for_pytorch as ipex
        emit({"step": "ipex", "installed": True, "version": str(getattr(ipex, "__version__", ""))})
    except BaseException as e:
        emit({"step": "ipex", "installed": True, "error": err(e)})
else:
    emit({"step": "ipex", "installed": False})
available = False
try:
    x = torch.xpu
    available = bool(x.is_available())
    n = int(x.device_count())
    devs = []
    for i in range(n):
        p = x.get_device_properties(i)
        g = lambda k: getattr(p, k, None)
        devs.append({"index": i, "name": g("name"), "platform": g("platform_name"),
                     "total_memory": g("total_memory"), "driver_version": g("driver_version"),
                     "device_id": g("device_id"), "integrated": g("is_integrated_gpu")})
    emit({"step": "xpu", "available": available, "count": n, "devices": devs})
except BaseException as e:
    emit({"step": "xpu", "error": err(e)})
if not available:
    try:
        torch.empty(0, device="xpu")
        emit({"step": "xpu_tensor", "ok": True})
    except BaseException as e:
        emit({"step": "xpu_tensor", "error": err(e)})
emit({"step": "done"})
"#;

/// Order of specificity when several errors were seen.
const KINDS: &[&str] = &[
    "abi-mismatch",
    "oneccl-missing",
    "ipex-torch-mismatch",
    "not-linked-xpu",
    "no-module",
    "other",
];

/// What an error text means.
pub fn classify(text: &str) -> &'static str {
    if text.contains("undefined symbol") {
        "abi-mismatch"
    } else if text.contains("No module named 'oneccl_bindings_for_pytorch'") {
        "oneccl-missing"
    } else if text.contains("needs to work with PyTorch") {
        "ipex-torch-mismatch"
    } else if text.contains("not linked with support for xpu") {
        "not-linked-xpu"
    } else if text.contains("No module named") {
        "no-module"
    } else {
        "other"
    }
}

fn rank(kind: &str) -> usize {
    KINDS.iter().position(|k| *k == kind).unwrap_or(KINDS.len())
}

fn as_u32(v: &serde_json::Value) -> Option<u32> {
    v.as_u64().and_then(|n| u32::try_from(n).ok())
}

fn as_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn device(v: &serde_json::Value, i: u32) -> TorchXpuDevice {
    let device_id = match &v["device_id"] {
        serde_json::Value::Number(n) => n.as_u64().map(|n| format!("0x{n:04x}")),
        serde_json::Value::String(s) => {
            let h = s.trim().trim_start_matches("0x").trim_start_matches("0X");
            u32::from_str_radix(h, 16)
                .ok()
                .map(|n| format!("0x{n:04x}"))
        }
        _ => None,
    };
    TorchXpuDevice {
        index: as_u32(&v["index"]).unwrap_or(i),
        name: as_text(&v["name"]),
        platform: as_text(&v["platform"]),
        total_memory_bytes: v["total_memory"].as_u64(),
        driver_version: as_text(&v["driver_version"]),
        device_id,
        integrated: match &v["integrated"] {
            serde_json::Value::Bool(b) => Some(*b),
            serde_json::Value::Number(n) => n.as_u64().map(|n| n != 0),
            _ => None,
        },
    }
}

/// Parse what the script printed. Lines that are not its JSON (warnings an
/// import prints on stdout, IPEX's version check) and stderr are kept for
/// classification when a step could not report its own error.
pub fn parse(stdout: &str, stderr: &str) -> PythonDeep {
    let mut d = PythonDeep::default();
    let mut loose = Vec::new();
    for line in stdout.lines() {
        let t = line.trim();
        let v: serde_json::Value = match serde_json::from_str(t) {
            Ok(v @ serde_json::Value::Object(_)) => v,
            _ => {
                if !t.is_empty() {
                    loose.push(t.to_string());
                }
                continue;
            }
        };
        let step = v["step"].as_str().unwrap_or("").to_string();
        if let Some(e) = v["error"].as_str() {
            d.errors.push(DeepError {
                kind: classify(e).to_string(),
                step: step.clone(),
                text: e.to_string(),
            });
        }
        match step.as_str() {
            "python" => d.python_version = as_text(&v["version"]),
            "torch" => {
                d.torch_version = as_text(&v["version"]);
                d.torch_xpu_build = as_text(&v["xpu_build"]);
                d.cuda_build = as_text(&v["cuda_build"]);
            }
            "cuda" => {
                d.cuda_available = v["available"].as_bool();
                d.cuda_device_count = as_u32(&v["count"]);
            }
            "ipex" => {
                d.ipex_installed = v["installed"].as_bool();
                d.ipex_version = as_text(&v["version"]);
            }
            "xpu" => {
                d.xpu_available = v["available"].as_bool();
                d.xpu_device_count = as_u32(&v["count"]);
                if let Some(a) = v["devices"].as_array() {
                    d.xpu_devices = a
                        .iter()
                        .enumerate()
                        .map(|(i, x)| device(x, i as u32))
                        .collect();
                }
            }
            "done" => d.completed = true,
            _ => {}
        }
    }
    if !d.completed {
        // The interpreter stopped inside a step: its last words are on
        // stdout (IPEX prints its version check) or stderr (a traceback).
        let words: Vec<&str> = loose
            .iter()
            .map(String::as_str)
            .chain(stderr.lines().map(str::trim))
            .filter(|l| !l.is_empty())
            .collect();
        let telling = words
            .iter()
            .rev()
            .find(|l| classify(l) != "other")
            .or_else(|| words.last());
        if let Some(t) = telling {
            d.errors.push(DeepError {
                step: "interpreter".into(),
                text: t.chars().take(4000).collect(),
                kind: classify(t).to_string(),
            });
        }
    }
    if let Some(e) = d.errors.iter().min_by_key(|e| rank(&e.kind)) {
        d.error_kind = Some(e.kind.clone());
        d.error_step = Some(e.step.clone());
        d.error_text = Some(e.text.clone());
    }
    d
}

/// Run the import check with `interpreter`. `None` when there is nothing to
/// report: no interpreter, or a replayed capture made without `--deep`.
pub fn probe(
    src: &dyn Source,
    interpreter: Option<&str>,
    timeout: std::time::Duration,
    asked: bool,
) -> Option<(PythonDeep, ProbeReport)> {
    const NAME: &str = "python-deep";
    let Some(interpreter) = interpreter else {
        return asked.then(|| {
            (
                PythonDeep::default(),
                ProbeReport::new(NAME, "missing", 0, "not run: no Python interpreter found"),
            )
        });
    };
    // Isolated like the package probe (`-I`, from `/`): torch is imported
    // from the environment being checked, never a `torch.py` in the current
    // directory, on PYTHONPATH or in the user's site directory.
    let out = src.run(&CmdSpec::new(
        NAME,
        &[interpreter, "-I", "-c", SCRIPT],
        timeout,
    ));
    let secs = out.duration_ms as f64 / 1000.0;
    let report =
        |status: &str, detail: String| ProbeReport::new(NAME, status, out.duration_ms, detail);
    match &out.status {
        // Replay of a capture made without --deep: the check was not run.
        CmdStatus::Missing if !asked => None,
        CmdStatus::Missing => Some((
            PythonDeep::default(),
            report(
                "missing",
                format!("{interpreter} was not found (or not recorded)"),
            ),
        )),
        CmdStatus::Timeout => Some((
            parse(&out.stdout_text(), &out.stderr_text()),
            report(
                "timeout",
                format!("importing torch did not finish in {secs:.1} s (--deep-timeout)"),
            ),
        )),
        CmdStatus::Failed(e) => Some((
            PythonDeep::default(),
            report("failed", format!("{interpreter} could not start: {e}")),
        )),
        CmdStatus::Exit(_) | CmdStatus::Signal(_) => {
            let d = parse(&out.stdout_text(), &out.stderr_text());
            let how = match &out.status {
                CmdStatus::Signal(s) => format!("killed by signal {s}"),
                CmdStatus::Exit(c) => format!("exit {c}"),
                _ => String::new(),
            };
            let r = if d.completed {
                let summary = match (&d.torch_version, d.xpu_available, &d.error_kind) {
                    (None, _, Some(k)) => format!("torch does not import ({k})"),
                    (Some(v), Some(a), _) => format!(
                        "torch {v}, xpu {}",
                        if a { "available" } else { "not available" }
                    ),
                    (Some(v), None, _) => format!("torch {v}"),
                    (None, _, None) => "torch not found".to_string(),
                };
                report("ok", summary)
            } else if d.python_version.is_some() && d.error_kind.is_some() {
                // The import killed the interpreter: that is the finding.
                report(
                    "ok",
                    format!(
                        "the import stopped the interpreter ({how}): {}",
                        d.error_kind.as_deref().unwrap_or("other")
                    ),
                )
            } else {
                // Exit 0 with no result line is output we cannot read; a
                // non-zero exit or a signal without one is a failed check.
                report(
                    if out.status == CmdStatus::Exit(0) {
                        "unparsed"
                    } else {
                        "failed"
                    },
                    format!(
                        "the import check printed nothing rigdoctor could read ({how}): {}",
                        crate::text::excerpt(&out.stdout_text())
                    ),
                )
            };
            Some((d, r))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_from_real_error_texts() {
        // intel/errors/oneapisamples1596-*, intel/ipex-env/ipex820-*, ipexllm11525 (pip-list context).
        assert_eq!(
            classify(
                "ImportError: /root/miniconda3/envs/pytorch/lib/python3.9/site-packages/intel_extension_for_pytorch/lib/libintel-ext-pt-gpu.so: undefined symbol: _ZNK5torch8autograd4Node4nameB5cxx11Ev"
            ),
            "abi-mismatch"
        );
        assert_eq!(
            classify("ModuleNotFoundError: No module named 'oneccl_bindings_for_pytorch'"),
            "oneccl-missing"
        );
        assert_eq!(
            classify("RuntimeError: PyTorch is not linked with support for xpu devices"),
            "not-linked-xpu"
        );
        assert_eq!(
            classify("ModuleNotFoundError: No module named 'torch'"),
            "no-module"
        );
        assert_eq!(classify("RuntimeError: boom"), "other");
    }

    #[test]
    fn steps_and_the_most_telling_error() {
        let d = parse(
            "{\"step\": \"python\", \"version\": \"3.11.9\"}\n{\"step\": \"torch\", \"version\": \"2.1.0a0+cxx11.abi\", \"xpu_build\": null, \"cuda_build\": null}\n\
             {\"step\": \"ipex\", \"installed\": true, \"error\": \"ImportError: x.so: undefined symbol: _Z\"}\n\
             {\"step\": \"xpu\", \"error\": \"AttributeError: module 'torch' has no attribute 'xpu'\"}\n{\"step\": \"done\"}\n",
            "",
        );
        assert!(d.completed);
        assert_eq!(d.torch_version.as_deref(), Some("2.1.0a0+cxx11.abi"));
        assert_eq!(d.errors.len(), 2);
        assert_eq!(d.error_kind.as_deref(), Some("abi-mismatch"));
        assert_eq!(d.error_step.as_deref(), Some("ipex"));
        assert_eq!(d.xpu_available, None);
    }

    #[test]
    fn an_interpreter_that_dies_mid_import_keeps_what_it_said() {
        let d = parse(
            "{\"step\": \"python\", \"version\": \"3.10.12\"}\n{\"step\": \"torch\", \"version\": \"2.3.0\"}\nERROR! Intel\u{ae} Extension for PyTorch* needs to work with PyTorch 2.1.*, but PyTorch 2.3.0 is found. Please switch to the matching version and run again.\n",
            "",
        );
        assert!(!d.completed);
        assert_eq!(d.error_kind.as_deref(), Some("ipex-torch-mismatch"));
        assert_eq!(d.error_step.as_deref(), Some("interpreter"));
    }

    #[test]
    fn devices_and_ids() {
        let d = parse(
            "{\"step\": \"xpu\", \"available\": true, \"count\": 1, \"devices\": [{\"index\": 0, \"name\": \"Intel(R) Data Center GPU Max 1550\", \"total_memory\": 68702699520, \"device_id\": 3029, \"integrated\": 0}]}\n",
            "",
        );
        let x = &d.xpu_devices[0];
        assert_eq!(x.device_id.as_deref(), Some("0x0bd5"));
        assert_eq!(x.integrated, Some(false));
        assert_eq!(x.total_memory_bytes, Some(68702699520));
    }

    #[test]
    fn garbage_does_not_panic() {
        for s in [
            "{",
            "{}",
            "{\"step\": 5}",
            "{\"step\": \"xpu\", \"devices\": [1, null, {\"device_id\": \"zz\"}], \"count\": -1}",
            "{\"step\": \"cuda\", \"count\": 99999999999999999999}",
            "\u{0}\u{ff}",
        ] {
            let _ = parse(s, s);
        }
    }
}
