//! The live face on this machine (CI has no GPU), fake tools on a test PATH
//! printing real outputs, capture -> replay, timeouts and the privacy of a capture.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly on purpose"
)]

mod common;

use std::path::Path;

use common::*;

fn path_with(dir: &Path) -> String {
    format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

fn facts_and_verdict(v: &serde_json::Value) -> (serde_json::Value, serde_json::Value, Vec<String>) {
    (v["facts"].clone(), v["verdict"].clone(), diagnosis_ids(v))
}

#[test]
fn live_check_on_this_machine_gives_a_verdict() {
    let r = run(&["check", "--format", "json"]);
    assert!(r.code == 0 || r.code == 1, "exit {}: {}", r.code, r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["mode"], "live");
    let has_display = std::fs::read_dir("/sys/bus/pci/devices")
        .map(|rd| {
            rd.filter_map(|e| e.ok()).any(|e| {
                std::fs::read_to_string(e.path().join("class")).is_ok_and(|c| c.starts_with("0x03"))
            })
        })
        .unwrap_or(true);
    if !has_display {
        // The CI machine: no GPU, said plainly, exit 1.
        assert!(
            diagnosis_ids(&v).contains(&"GPU-NONE".to_string()),
            "{:?}",
            diagnosis_ids(&v)
        );
        assert_eq!(r.code, 1);
        let human = run(&["check"]);
        assert!(
            human.stdout.contains("No GPU on this machine"),
            "{}",
            human.stdout
        );
    }
}

#[test]
fn capture_then_replay_gives_the_same_facts_and_verdict() {
    let tmp = tempfile::tempdir().unwrap();
    let cap = tmp.path().join("cap");
    let r = run(&["capture", "-o", cap.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(cap.join("capture.json").exists() && cap.join("env").exists());
    let live: serde_json::Value =
        serde_json::from_str(&run(&["check", "--format", "json"]).stdout).unwrap();
    let replayed: serde_json::Value = serde_json::from_str(
        &run(&[
            "check",
            "--replay",
            cap.to_str().unwrap(),
            "--format",
            "json",
        ])
        .stdout,
    )
    .unwrap();
    assert_eq!(facts_and_verdict(&live), facts_and_verdict(&replayed));
    // A capture refuses to overwrite a directory with content.
    assert_eq!(run(&["capture", "-o", cap.to_str().unwrap()]).code, 2);
}

/// A fake rig: a fixture's sysfs/procfs, a fake sycl-ls printing a corpus
/// output and a fake python3 whose sys.path holds real dist-info directories.
fn fake_rig(tmp: &Path) -> (String, Vec<String>) {
    let tools = tmp.join("bin");
    let site = tmp.join("site-packages");
    for (dir, meta) in [
        (
            "torch-2.1.0a0+cxx11.abi.dist-info",
            "Metadata-Version: 2.1\nName: torch\nVersion: 2.1.0a0+cxx11.abi\n\nlong text\n",
        ),
        (
            "intel_extension_for_pytorch-2.1.10+xpu.dist-info",
            "Metadata-Version: 2.1\nName: intel_extension_for_pytorch\nVersion: 2.1.10+xpu\n",
        ),
    ] {
        std::fs::create_dir_all(site.join(dir)).unwrap();
        std::fs::write(site.join(dir).join("METADATA"), meta).unwrap();
    }
    std::fs::create_dir_all(site.join("six-1.16.0-py3.11.egg-info")).unwrap();
    std::fs::write(
        site.join("six-1.16.0-py3.11.egg-info/PKG-INFO"),
        "Name: six\nVersion: 1.16.0\n",
    )
    .unwrap();
    let listing =
        root().join("fixtures/outputs/sycl-ls/llamacpp-sycl-doc-2025-a770-uhd730-ur-over-l0.txt");
    fake_tools(
        &tools,
        &[
            // Print the corpus output without its 3-line header; show the env it was given.
            (
                "sycl-ls",
                &format!(
                    "tail -n +4 '{}'\necho \"ODS=${{ONEAPI_DEVICE_SELECTOR-unset}}\" >&2",
                    listing.display()
                ),
            ),
            (
                "python3",
                &format!(
                    "echo '{{\"version\": \"3.12.3\", \"executable\": \"/usr/bin/python3\", \"path\": [\"\", \"/nonexistent\", \"{}\"]}}'",
                    site.display()
                ),
            ),
        ],
    );
    let rig = rigs_dir().join("igpu-second/root");
    let args = vec![
        "--sysfs".to_string(),
        rig.join("sys").display().to_string(),
        "--procfs".to_string(),
        rig.join("proc").display().to_string(),
    ];
    (path_with(&tools), args)
}

#[test]
fn live_probes_read_fake_tools_and_trees() {
    let tmp = tempfile::tempdir().unwrap();
    let (path, roots) = fake_rig(tmp.path());
    let mut args: Vec<&str> = roots.iter().map(String::as_str).collect();
    args.extend(["check", "--format", "json"]);
    let r = run_with(&args, |c| {
        c.env("PATH", &path)
            .env("ONEAPI_DEVICE_SELECTOR", "level_zero:0")
            .env("HF_TOKEN", "hf_secret_value");
    });
    assert!(r.code == 0 || r.code == 1, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let f = &v["facts"];
    assert_eq!(f["gpus"].as_array().unwrap().len(), 2);
    assert_eq!(f["sycl"]["devices"].as_array().unwrap().len(), 5);
    // sycl-ls ran without the user's selector, so the listing is complete...
    assert!(
        f["sycl"]["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m == "ODS=unset")
    );
    // ...and rigdoctor applied the selector itself.
    assert_eq!(f["sycl"]["visible"].as_array().unwrap().len(), 1);
    assert_eq!(f["python"]["packages"]["torch"], "2.1.0a0+cxx11.abi");
    assert_eq!(
        f["python"]["packages"]["intel-extension-for-pytorch"],
        "2.1.10+xpu"
    );
    assert_eq!(f["python"]["packages"]["six"], "1.16.0");
    assert_eq!(f["env"]["ONEAPI_DEVICE_SELECTOR"], "level_zero:0");
    assert!(f["env"].get("HF_TOKEN").is_none());
    assert!(!r.stdout.contains("hf_secret_value"));
}

#[test]
fn a_capture_holds_no_secrets_and_replays_identically() {
    let tmp = tempfile::tempdir().unwrap();
    let (path, roots) = fake_rig(tmp.path());
    let cap = tmp.path().join("cap");
    let env = |c: &mut std::process::Command| {
        c.env("PATH", &path)
            .env("ONEAPI_DEVICE_SELECTOR", "level_zero:0")
            .env("HF_TOKEN", "hf_secret_value")
            .env("OLLAMA_API_KEY", "ollama_secret_value")
            .env("HOME", "/home/secret_home_value");
    };
    let mut args: Vec<&str> = roots.iter().map(String::as_str).collect();
    args.extend(["capture", "-o", cap.to_str().unwrap()]);
    let r = run_with(&args, env);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let env_file = std::fs::read_to_string(cap.join("env")).unwrap();
    assert!(
        env_file.contains("ONEAPI_DEVICE_SELECTOR=level_zero:0\n"),
        "{env_file}"
    );
    // No file of the capture holds a value that is not allowlisted.
    fn grep(dir: &Path, needles: &[&str], hits: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap().filter_map(|e| e.ok()) {
            let p = e.path();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                grep(&p, needles, hits);
            } else if ft.is_file() {
                let text = String::from_utf8_lossy(&std::fs::read(&p).unwrap()).into_owned();
                for n in needles {
                    if text.contains(n) {
                        hits.push(format!("{} has {n}", p.display()));
                    }
                }
            }
        }
    }
    let mut hits = Vec::new();
    grep(
        &cap,
        &[
            "hf_secret_value",
            "ollama_secret_value",
            "secret_home_value",
        ],
        &mut hits,
    );
    assert!(hits.is_empty(), "{hits:?}");

    let mut live_args: Vec<&str> = roots.iter().map(String::as_str).collect();
    live_args.extend(["check", "--format", "json"]);
    let live: serde_json::Value = serde_json::from_str(&run_with(&live_args, env).stdout).unwrap();
    let replayed: serde_json::Value = serde_json::from_str(
        &run(&[
            "check",
            "--replay",
            cap.to_str().unwrap(),
            "--format",
            "json",
        ])
        .stdout,
    )
    .unwrap();
    assert_eq!(facts_and_verdict(&live), facts_and_verdict(&replayed));
    // The bridge walk works on the copy: links were kept as links.
    assert_eq!(
        replayed["facts"]["gpus"][1]["effective_link"]["at"],
        "0000:01:00.0"
    );
}

#[test]
fn a_hung_probe_costs_the_timeout_and_is_a_diagnosis() {
    let tmp = tempfile::tempdir().unwrap();
    let tools = tmp.path().join("bin");
    fake_tools(&tools, &[("sycl-ls", "sleep 60")]);
    let rig = rigs_dir().join("dual-a770/root");
    let started = std::time::Instant::now();
    let r = run_with(
        &[
            "--sysfs",
            rig.join("sys").to_str().unwrap(),
            "check",
            "--timeout",
            "1",
            "--format",
            "json",
        ],
        |c| {
            c.env("PATH", path_with(&tools));
        },
    );
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let probe = v["probes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "sycl-ls")
        .unwrap()
        .clone();
    assert_eq!(probe["status"], "timeout");
    assert!(diagnosis_ids(&v).contains(&"PROBE-TIMEOUT".to_string()));
    assert_ne!(v["verdict"], "ok", "an unknown must not read as healthy");
    // Not a timing assertion: only that the 60 s sleep was not waited for.
    assert!(started.elapsed() < std::time::Duration::from_secs(50));
}

#[test]
fn non_utf8_environment_values_do_not_crash() {
    use std::os::unix::ffi::OsStrExt;
    let value = std::ffi::OsStr::from_bytes(b"level_zero:\xff\xfe0");
    let r = run_with(&["check", "--format", "json"], |c| {
        c.env("ONEAPI_DEVICE_SELECTOR", value);
    });
    assert!(r.code == 0 || r.code == 1, "{}", r.stderr);
    assert!(!r.stderr.contains("panicked"));
}

/// The first `python3` on PATH that is a program, not a script (a shim).
fn real_python3() -> Option<std::path::PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .chain(["/usr/bin", "/bin"])
        .map(|d| Path::new(d).join("python3"))
        .find(|p| {
            std::fs::read(p)
                .map(|b| b.starts_with(b"\x7fELF"))
                .unwrap_or(false)
        })
}

/// A pyenv root as pyenv lays it out, in `root`: `shims/python3` is the
/// script pyenv's `libexec/pyenv-rehash` writes (create_prototype_shim,
/// pyenv/pyenv at f6a5b409, byte for byte but for PYENV_ROOT and the path
/// of `pyenv`); `libexec/pyenv` is a stand-in for `pyenv exec` that keeps
/// what `libexec/pyenv-exec` does with a global version (version from
/// `$PYENV_ROOT/version`, that version's bin/ in front of PATH, exec);
/// `versions/3.11/bin/python3` links to `python`. Returns the shim and the
/// interpreter path behind it.
fn pyenv_root(root: &Path, python: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let r = root.display().to_string();
    let write = |p: std::path::PathBuf, text: String| {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    };
    let shim = write(
        root.join("shims/python3"),
        format!(
            "#!/usr/bin/env bash\nset -e\n[ -n \"$PYENV_DEBUG\" ] && set -x\n\nprogram=\"${{0##*/}}\"\n\n\
             export PYENV_ROOT=\"{r}\"\nSHIM_PATH=${{0%/*}}\nif [[ $SHIM_PATH != \"{r}/shims\" ]]; then\n  \
             export _PYENV_SHIM_PATH=\"$SHIM_PATH\"\nfi\nexec \"{r}/libexec/pyenv\" exec \"$program\" \"$@\"\n"
        ),
    );
    write(
        root.join("libexec/pyenv"),
        "#!/usr/bin/env bash\nset -e\n[ \"$1\" = exec ] || exit 1\nshift\n\
         PYENV_VERSION=\"$(cat \"$PYENV_ROOT/version\")\"\nPYENV_COMMAND=\"$1\"\n\
         PYENV_COMMAND_PATH=\"$PYENV_ROOT/versions/$PYENV_VERSION/bin/$PYENV_COMMAND\"\n\
         PYENV_BIN_PATH=\"${PYENV_COMMAND_PATH%/*}\"\nexport PYENV_VERSION\nshift 1\n\
         export PATH=\"${PYENV_BIN_PATH}:${PATH}\"\nexec \"$PYENV_COMMAND_PATH\" \"$@\"\n"
            .to_string(),
    );
    std::fs::write(root.join("version"), "3.11\n").unwrap();
    let bin = root.join("versions/3.11/bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(python, bin.join("python3")).unwrap();
    (shim, bin.join("python3"))
}

/// Issue 15, item 5: a `python3` on PATH that is a pyenv shim is named on
/// the page with the interpreter behind it, and the `--python` that skips
/// it; that `--python` is then taken without a note.
#[test]
fn a_pyenv_shim_is_named_on_the_page() {
    let Some(python) = real_python3() else {
        eprintln!("no python3 program on PATH: skipped");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (shim, behind) = pyenv_root(&tmp.path().join(".pyenv"), &python);
    let path = format!("{}:/usr/bin:/bin", shim.parent().unwrap().display());
    let check = |args: &[&str]| {
        run_with(args, |c| {
            c.env("PATH", &path);
        })
    };
    let r = check(&["check", "--format", "json"]);
    assert!(r.code == 0 || r.code == 1, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let py = &v["facts"]["python"];
    assert_eq!(py["shim"]["kind"], "pyenv", "{py:#}");
    assert_eq!(py["shim"]["path"], shim.display().to_string());
    // What the interpreter said it is, through the shim and pyenv exec.
    assert_eq!(py["interpreter"], behind.display().to_string(), "{py:#}");
    let note = v["diagnoses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == "PY-SHIM")
        .cloned()
        .unwrap_or_default();
    assert_eq!(note["severity"], "info", "{v:#}");
    let fix = note["fix"].as_str().unwrap_or_default();
    assert!(
        fix.contains(&format!("rigdoctor check --python {}", behind.display())),
        "{fix}"
    );
    let page = check(&["check"]).stdout;
    let flat = page.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(flat.contains("i note PY-SHIM"), "{page}");
    assert!(
        flat.contains(&format!("{} is pyenv's shim script", shim.display())),
        "{page}"
    );
    // The fix as printed: no shim, no note.
    let v: serde_json::Value = serde_json::from_str(
        &check(&[
            "check",
            "--python",
            &behind.display().to_string(),
            "--format",
            "json",
        ])
        .stdout,
    )
    .unwrap();
    assert!(
        v["facts"]["python"]["shim"].is_null(),
        "{:#}",
        v["facts"]["python"]
    );
    assert!(!diagnosis_ids(&v).contains(&"PY-SHIM".to_string()));
}

/// The fifth field of a mountinfo line (the mount point), as the kernel
/// writes it (escapes left in: the judged points have none).
fn mount_point(line: &str) -> Option<&str> {
    line.split_ascii_whitespace().nth(4)
}

/// The filesystem type of a mountinfo line: the word after ` - `.
fn fs_type(line: &str) -> Option<&str> {
    let w: Vec<&str> = line.split_ascii_whitespace().collect();
    let sep = w.iter().skip(6).position(|x| *x == "-")? + 6;
    w.get(sep + 1).copied()
}

#[test]
fn the_container_probe_runs_here_and_records_only_the_judged_mounts() {
    const JUDGED: &[&str] = &[
        "/",
        "/dev",
        "/dev/shm",
        "/etc/hostname",
        "/etc/hosts",
        "/etc/resolv.conf",
    ];
    let tmp = tempfile::tempdir().unwrap();
    let cap = tmp.path().join("cap");
    let r = run(&["capture", "-o", cap.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // Read after the capture: the mount table of this test process is the
    // one rigdoctor (its child, same mount namespace) saw.
    let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let judged: Vec<&str> = table
        .lines()
        .filter(|l| mount_point(l).is_some_and(|m| JUDGED.contains(&m)))
        .collect();
    let stored = std::fs::read_to_string(cap.join("cmd/container-mounts.out")).unwrap();
    let stored: Vec<&str> = stored.lines().collect();
    assert!(!stored.is_empty(), "no mount line recorded");
    assert_eq!(stored, judged, "the capture holds exactly the judged lines");
    assert!(
        table.lines().count() > stored.len(),
        "this machine mounts more than the judged points; none of it may be stored"
    );
    // The mount table itself is nowhere in the capture.
    let mut dirs = vec![cap.clone()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            assert_ne!(e.file_name(), "mountinfo", "{} stored", p.display());
            if e.file_type().unwrap().is_dir() {
                dirs.push(p);
            }
        }
    }
    let v: serde_json::Value = serde_json::from_str(
        &run(&[
            "check",
            "--replay",
            cap.to_str().unwrap(),
            "--format",
            "json",
        ])
        .stdout,
    )
    .unwrap();
    let probe = v["probes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "container")
        .unwrap();
    assert_eq!(probe["status"], "ok", "{probe}");
    let c = &v["facts"]["container"];
    let at = |point: &str| {
        judged
            .iter()
            .rev()
            .find(|l| mount_point(l) == Some(point))
            .and_then(|l| fs_type(l))
    };
    assert_eq!(c["root_fs"].as_str(), at("/"));
    assert_eq!(c["dev_fs"].as_str(), at("/dev"));
    // This machine's own kind: a devtmpfs /dev is a host, whatever marker
    // files it has (the development VM has /.dockerenv).
    if at("/dev") == Some("devtmpfs") && at("/") != Some("overlay") {
        assert_eq!(c["inside"], false, "{c}");
    }
    assert_eq!(
        c["dockerenv"],
        Path::new("/.dockerenv").symlink_metadata().is_ok(),
        "{c}"
    );
}

/// Issue 15.2: the built-in rules compile while the probes run, but a
/// broken site rule file is still refused before the first tool starts
/// (a live check can take its whole deadline; the mistake is known at once).
#[test]
fn a_broken_site_rule_fails_before_any_tool_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let tools = tmp.path().join("bin");
    let ran = tmp.path().join("ran");
    let touch = format!("touch '{}'", ran.display());
    fake_tools(&tools, &[("sycl-ls", &touch), ("nvidia-smi", &touch)]);
    let site = tmp.path().join("site");
    std::fs::create_dir_all(&site).unwrap();
    std::fs::write(
        site.join("bad.toml"),
        "[[rule]]\nid = 'SITE-BROKEN'\nseverity = 'warn'\narea = 'gpus'\nclass = 'advice'\nwhen = 'gpus.size() >'\ntitle = 't'\nexplain = 'e'\nfix = 'f'\n",
    )
    .unwrap();
    let rig = rigs_dir().join("dual-a770/root");
    let r = run_with(
        &[
            "--sysfs",
            rig.join("sys").to_str().unwrap(),
            "check",
            "--rules",
            site.to_str().unwrap(),
        ],
        |c| {
            c.env("PATH", path_with(&tools));
        },
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("SITE-BROKEN: `when` does not compile"),
        "{}",
        r.stderr
    );
    assert!(!ran.exists(), "a tool ran before the rules were refused");
    // The same rules, fixed: the tools run.
    std::fs::write(
        site.join("bad.toml"),
        "[[rule]]\nid = 'SITE-BROKEN'\nseverity = 'warn'\narea = 'gpus'\nclass = 'advice'\nwhen = 'gpus.size() > 99'\ntitle = 't'\nexplain = 'e'\nfix = 'f'\n",
    )
    .unwrap();
    let r = run_with(
        &[
            "--sysfs",
            rig.join("sys").to_str().unwrap(),
            "check",
            "--rules",
            site.to_str().unwrap(),
        ],
        |c| {
            c.env("PATH", path_with(&tools));
        },
    );
    assert_ne!(r.code, 2, "{}", r.stderr);
    assert!(ran.exists(), "no tool ran");
}
