//! `check --deep`: the Python import check, run against a fake `python3` on a
//! test PATH that prints what the real script would print, built from real
//! import errors and device listings in the corpus (fixtures/outputs/python-deep).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly on purpose"
)]

mod common;

use std::path::{Path, PathBuf};

use common::*;
use serde_json::json;

/// A corpus file without its 3-line header.
fn body(name: &str) -> String {
    let text =
        std::fs::read_to_string(root().join("fixtures/outputs/python-deep").join(name)).unwrap();
    text.split_once("# ---\n")
        .map(|(_, b)| b.to_string())
        .unwrap()
}

/// The last line of a corpus file, without the markdown bold a reporter added.
fn last_line(name: &str) -> String {
    let b = body(name);
    let l = b.lines().last().unwrap().replace("**", "");
    l.trim().to_string()
}

struct FakePython {
    _tmp: tempfile::TempDir,
    path: String,
    /// Touched when the import check runs.
    marker: PathBuf,
}

/// A `python3` that answers the sys.path query of the package probe, and
/// for the import check (recognized by the script's marker line) runs `deep`.
fn fake_python(deep: &str) -> FakePython {
    let tmp = tempfile::tempdir().unwrap();
    let bin = tmp.path().join("bin");
    let marker = tmp.path().join("deep-ran");
    let exe = bin.join("python3");
    let sys_path = json!({"version": "3.11.9", "executable": exe, "path": []}).to_string();
    fake_tools(
        &bin,
        &[(
            "python3",
            &format!(
                "[ \"$1\" = -I ] || {{ echo 'not isolated' >&2; exit 9; }}\ncase \"$3\" in\n*rigdoctor-deep*) touch '{}'\n{deep} ;;\n*) echo '{sys_path}' ;;\nesac",
                marker.display()
            ),
        )],
    );
    FakePython {
        path: format!("{}:/usr/bin:/bin", bin.display()),
        _tmp: tmp,
        marker,
    }
}

/// The JSON lines of the import check, written to a file the fake prints.
fn script_output(dir: &Path, lines: &[serde_json::Value]) -> PathBuf {
    let p = dir.join("deep.jsonl");
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&p, text).unwrap();
    p
}

fn sysfs() -> String {
    rigs_dir()
        .join("dual-a770/root/sys")
        .to_string_lossy()
        .into_owned()
}

fn check(path: &str, extra: &[&str]) -> (serde_json::Value, std::time::Duration) {
    let sys = sysfs();
    let mut args = vec!["--sysfs", sys.as_str(), "check", "--format", "json"];
    args.extend_from_slice(extra);
    let t = std::time::Instant::now();
    let r = run_with(&args, |c| {
        c.env("PATH", path).env_remove("ONEAPI_DEVICE_SELECTOR");
    });
    assert!(r.code == 0 || r.code == 1, "{}", r.stderr);
    (serde_json::from_str(&r.stdout).unwrap(), t.elapsed())
}

fn probe<'a>(v: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    v["probes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
}

#[test]
fn deep_is_never_run_without_the_flag() {
    let tmp = tempfile::tempdir().unwrap();
    let out = script_output(tmp.path(), &[json!({"step": "done"})]);
    let fake = fake_python(&format!("cat '{}'", out.display()));
    let (v, _) = check(&fake.path, &[]);
    assert!(v["facts"]["python"]["deep"].is_null());
    assert!(probe(&v, "python-deep").is_none());
    assert_eq!(v["facts"]["python"]["version"], "3.11.9");
    // Nor in a capture: no cmd/python-deep.* at all.
    let cap = tmp.path().join("cap");
    let sys = sysfs();
    let r = run_with(
        &["--sysfs", &sys, "capture", "-o", cap.to_str().unwrap()],
        |c| {
            c.env("PATH", &fake.path);
        },
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(cap.join("cmd/python-packages.status").exists());
    let deep_files: Vec<_> = std::fs::read_dir(cap.join("cmd"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("python-deep"))
        .collect();
    assert!(deep_files.is_empty(), "{deep_files:?}");
    assert!(!fake.marker.exists(), "the import check ran without --deep");
}

#[test]
fn deep_classifies_real_import_errors() {
    let python = json!({"step": "python", "version": "3.11.9"});
    let torch =
        |v: &str| json!({"step": "torch", "version": v, "xpu_build": null, "cuda_build": null});
    let no_xpu = json!({"step": "xpu", "error": format!("AttributeError: {}", last_line("ipexllm9768-torch-no-attribute-xpu.txt"))});
    let cases: Vec<(&str, Vec<serde_json::Value>, &str)> = vec![
        (
            "abi-mismatch",
            vec![
                python.clone(),
                torch("2.0.1"),
                json!({"step": "ipex", "installed": true, "error": last_line("oneapisamples1596-max-ipex-undefined-symbol-abi-mismatch.txt")}),
                no_xpu.clone(),
            ],
            "PY-IMPORT-ABI-MISMATCH",
        ),
        (
            "oneccl-missing",
            vec![
                python.clone(),
                torch("2.7.0+xpu"),
                json!({"step": "ipex", "installed": true, "error": last_line("ipex820-oneccl-import-error.txt")}),
            ],
            "PY-IMPORT-ONECCL-MISSING",
        ),
        (
            "not-linked-xpu",
            vec![
                python.clone(),
                torch("2.1.0a0+cxx11.abi"),
                json!({"step": "ipex", "installed": false}),
                no_xpu.clone(),
                json!({"step": "xpu_tensor", "error": last_line("lcm71-not-linked-xpu-traceback.txt")}),
            ],
            "PY-IMPORT-NOT-LINKED-XPU",
        ),
    ];
    for (kind, mut lines, rule) in cases {
        lines.push(json!({"step": "done"}));
        let tmp = tempfile::tempdir().unwrap();
        let out = script_output(tmp.path(), &lines);
        let fake = fake_python(&format!("cat '{}'", out.display()));
        let (v, _) = check(&fake.path, &["--deep"]);
        let deep = &v["facts"]["python"]["deep"];
        assert_eq!(deep["error_kind"], kind, "{deep:#}");
        assert_eq!(deep["completed"], true);
        assert_eq!(probe(&v, "python-deep").unwrap()["status"], "ok");
        assert!(
            diagnosis_ids(&v).contains(&rule.to_string()),
            "{kind}: {:?}",
            diagnosis_ids(&v)
        );
        assert!(fake.marker.exists());
    }
}

/// `_DeviceProperties(name='...', ..., total_memory=15473MB, ...)` lines, as
/// the script would report them.
fn devices_from_repr(text: &str) -> Vec<serde_json::Value> {
    let field = |line: &str, key: &str| -> Option<String> {
        let rest = line
            .split(&format!(" {key}="))
            .nth(1)
            .or_else(|| line.split(&format!("({key}=")).nth(1))?;
        let v = match rest.strip_prefix('\'') {
            Some(quoted) => quoted.split('\'').next()?,
            None => rest.split([',', ')']).next()?.trim(),
        };
        Some(v.to_string())
    };
    text.lines()
        .filter(|l| l.contains("DeviceProperties("))
        .enumerate()
        .map(|(i, l)| {
            let mb: u64 = field(l, "total_memory")
                .unwrap()
                .trim_end_matches("MB")
                .parse()
                .unwrap();
            let device_id = field(l, "device_id")
                .map(|h| u64::from_str_radix(h.trim_start_matches("0x"), 16).unwrap());
            json!({
                "index": i,
                "name": field(l, "name"),
                "platform": field(l, "platform_name"),
                "total_memory": mb * 1024 * 1024,
                "driver_version": field(l, "driver_version"),
                "device_id": device_id,
                "integrated": field(l, "is_integrated_gpu").map(|x| x == "1"),
            })
        })
        .collect()
}

#[test]
fn deep_lists_devices_from_real_property_lines() {
    // Four A770s and the UHD 770 iGPU, IPEX 2.1.40 (notes-4x-a770-*).
    let devs = devices_from_repr(&body(
        "notes-4x-a770-uhd770-ipex-2.1.40-device-properties.txt",
    ));
    assert_eq!(devs.len(), 5);
    let tmp = tempfile::tempdir().unwrap();
    let out = script_output(
        tmp.path(),
        &[
            json!({"step": "python", "version": "3.11.9"}),
            json!({"step": "torch", "version": "2.1.0.post3+cxx11.abi", "xpu_build": null, "cuda_build": null}),
            json!({"step": "ipex", "installed": true, "version": "2.1.40+xpu"}),
            json!({"step": "xpu", "available": true, "count": devs.len(), "devices": devs}),
            json!({"step": "done"}),
        ],
    );
    let fake = fake_python(&format!("cat '{}'", out.display()));
    let (v, _) = check(&fake.path, &["--deep"]);
    let deep = &v["facts"]["python"]["deep"];
    assert_eq!(deep["xpu_device_count"], 5);
    assert_eq!(deep["ipex_version"], "2.1.40+xpu");
    let d = &deep["xpu_devices"];
    assert_eq!(d[0]["name"], "Intel(R) Arc(TM) A770 Graphics");
    assert_eq!(d[0]["total_memory_bytes"], 15473u64 * 1024 * 1024);
    assert_eq!(d[0]["integrated"], false);
    // The iGPU reports shared RAM; derive marks it integrated from its name.
    assert_eq!(d[4]["integrated"], true);
    assert!(!diagnosis_ids(&v).iter().any(|i| i.starts_with("PY-")));

    // The newest repr carries the PCI id and is_integrated_gpu (torch-xpu-ops #3891).
    let max = devices_from_repr(&body(
        "torchxpuops3891-max1550-xpudeviceproperties-llc-is-integrated.txt",
    ));
    let parsed = rigdoctor::probe::python_deep::parse(
        &format!(
            "{}\n",
            json!({"step": "xpu", "available": true, "count": max.len(), "devices": max})
        ),
        "",
    );
    assert_eq!(parsed.xpu_devices.len(), 2);
    assert_eq!(parsed.xpu_devices[0].device_id.as_deref(), Some("0x0bd5"));
    assert_eq!(parsed.xpu_devices[0].integrated, Some(false));
    assert_eq!(
        parsed.xpu_devices[0].total_memory_bytes,
        Some(65520 * 1024 * 1024)
    );
}

#[test]
fn a_hung_import_costs_the_deep_timeout() {
    let fake = fake_python("sleep 60");
    let (v, took) = check(
        &fake.path,
        &["--deep", "--deep-timeout", "1", "--timeout", "5"],
    );
    let p = probe(&v, "python-deep").unwrap();
    assert_eq!(p["status"], "timeout", "{p}");
    assert!(p["detail"].as_str().unwrap().contains("--deep-timeout"));
    // Import advice, not the GPU tools' (PROBE-TIMEOUT).
    let ids = diagnosis_ids(&v);
    assert!(ids.contains(&"PROBE-DEEP-TIMEOUT".to_string()), "{ids:?}");
    assert!(!ids.contains(&"PROBE-TIMEOUT".to_string()), "{ids:?}");
    // The packages were read with the ordinary timeout and are not lost.
    assert_eq!(probe(&v, "python-packages").unwrap()["status"], "ok");
    assert_ne!(v["verdict"], "ok");
    // Not a timing assertion: only that the 60 s sleep was not waited for.
    assert!(took < std::time::Duration::from_secs(40), "{took:?}");
}

#[test]
fn a_deep_capture_replays_the_import_check() {
    let tmp = tempfile::tempdir().unwrap();
    let out = script_output(
        tmp.path(),
        &[
            json!({"step": "python", "version": "3.11.9"}),
            json!({"step": "torch", "error": "ModuleNotFoundError: No module named 'torch'"}),
            json!({"step": "done"}),
        ],
    );
    let fake = fake_python(&format!("cat '{}'", out.display()));
    let cap = tmp.path().join("cap");
    let sys = sysfs();
    let r = run_with(
        &[
            "--sysfs",
            &sys,
            "capture",
            "--deep",
            "-o",
            cap.to_str().unwrap(),
        ],
        |c| {
            c.env("PATH", &fake.path);
        },
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(cap.join("cmd/python-deep.out").exists());
    let (live, _) = check(&fake.path, &["--deep"]);
    let replayed = replay_json_dir(&cap);
    assert_eq!(live["facts"], replayed["facts"]);
    assert_eq!(
        replayed["facts"]["python"]["deep"]["error_kind"],
        "no-module"
    );
    assert!(diagnosis_ids(&replayed).contains(&"PY-IMPORT-NO-MODULE".to_string()));
    // --deep does not apply to a replay: the capture holds the import check.
    let r = run(&["check", "--replay", cap.to_str().unwrap(), "--deep"]);
    assert_eq!(r.code, 2);
}

fn replay_json_dir(dir: &Path) -> serde_json::Value {
    let r = run(&[
        "check",
        "--replay",
        dir.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert!(r.code == 0 || r.code == 1, "{}", r.stderr);
    serde_json::from_str(&r.stdout).unwrap()
}

/// The real script on the real interpreter, with stand-in `torch` and
/// `intel_extension_for_pytorch` packages installed in a venv (the checked
/// environment: rigdoctor runs the interpreter isolated, so PYTHONPATH is
/// not followed): every step of the script runs, and the JSON it prints is
/// what the parser reads.
#[test]
fn the_script_runs_on_a_real_interpreter() {
    let has_python = std::process::Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_python {
        eprintln!("skipped: no python3");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let venv = tmp.path().join("venv");
    let made = std::process::Command::new("python3")
        .args(["-m", "venv", "--without-pip"])
        .arg(&venv)
        .status()
        .is_ok_and(|s| s.success());
    if !made {
        eprintln!("skipped: python3 cannot make a venv");
        return;
    }
    let pkgs = std::fs::read_dir(venv.join("lib"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("site-packages"))
        .find(|p| p.is_dir())
        .unwrap();
    std::fs::create_dir_all(pkgs.join("torch")).unwrap();
    std::fs::create_dir_all(pkgs.join("intel_extension_for_pytorch")).unwrap();
    std::fs::write(
        pkgs.join("torch/__init__.py"),
        r#"__version__ = "2.7.0+xpu"
class version:
    xpu = "20250004"
    cuda = None
class _Props:
    name = "Intel(R) Arc(TM) A770 Graphics"
    platform_name = "Intel(R) oneAPI Unified Runtime over Level-Zero"
    total_memory = 16225243136
    driver_version = "1.6.33578+11"
    device_id = 0x56A0
    is_integrated_gpu = 0
class xpu:
    @staticmethod
    def is_available():
        return True
    @staticmethod
    def device_count():
        return 2
    @staticmethod
    def get_device_properties(i):
        return _Props()
"#,
    )
    .unwrap();
    // The undefined symbol of oneAPI-samples #1596, raised at import.
    std::fs::write(
        pkgs.join("intel_extension_for_pytorch/__init__.py"),
        format!(
            "raise ImportError({:?})\n",
            last_line("oneapisamples1596-max-ipex-undefined-symbol-abi-mismatch.txt")
                .trim_start_matches("ImportError: ")
        ),
    )
    .unwrap();
    let sys = sysfs();
    let python = venv.join("bin/python3");
    let r = run(&[
        "--sysfs",
        &sys,
        "check",
        "--deep",
        "--python",
        python.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert!(r.code == 0 || r.code == 1, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let deep = &v["facts"]["python"]["deep"];
    assert_eq!(deep["completed"], true, "{deep:#}");
    assert_eq!(deep["torch_version"], "2.7.0+xpu");
    assert_eq!(deep["torch_xpu_build"], "20250004");
    assert_eq!(deep["ipex_installed"], true);
    assert_eq!(deep["error_kind"], "abi-mismatch");
    assert_eq!(deep["error_step"], "ipex");
    assert_eq!(deep["xpu_available"], true);
    assert_eq!(deep["xpu_device_count"], 2);
    assert_eq!(deep["xpu_devices"][1]["device_id"], "0x56a0");
    assert_eq!(deep["xpu_devices"][1]["integrated"], false);
    assert_eq!(deep["xpu_devices"][1]["total_memory_bytes"], 16225243136u64);
    assert!(diagnosis_ids(&v).contains(&"PY-IMPORT-ABI-MISMATCH".to_string()));
}
