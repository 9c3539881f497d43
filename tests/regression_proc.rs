//! Regression tests for the process side of issue 8 ("safe to run as root"):
//! a run deadline (item 11), with real processes: fake tools on a test PATH
//! and the real binary.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly on purpose"
)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

/// A PATH of the fake tools first, then the system's (for `sh`, `sleep`, python3).
fn test_path(tools: &Path) -> String {
    format!("{}:/usr/local/bin:/usr/bin:/bin", tools.display())
}

fn json(r: &Run) -> serde_json::Value {
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}\n{}", r.stdout, r.stderr))
}

fn probe<'a>(v: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    v["probes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no probe {name}: {}", v["probes"]))
}

/// Item 11: `--deadline` bounds the whole run. Two hung tools (each would
/// sleep 60 s, and `--timeout 30` alone would wait 30 s for them) are cut at
/// the 3 s deadline and reported as timed out *because of the deadline*.
///
/// What is asserted cannot depend on how much CPU the run gets: the probes
/// say the run deadline stopped them, and the run ended far under the 30 s
/// the tools' own timeout would have taken. A tighter wall bound (it was
/// deadline + 1.5 s) failed on a loaded 2-core box, where the CPU work after
/// the deadline stretches by seconds; the speed target is `bench/npd.sh`.
/// Nothing here asserts that a quick tool finished before the deadline: on a
/// loaded machine it may not have started yet (then it is not started at all,
/// and also reported as stopped by the deadline).
#[test]
fn issue8_item11_deadline_stops_hung_probes_and_bounds_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let tools = tmp.path().join("bin");
    fake_tools(
        &tools,
        &[("sycl-ls", "exec sleep 60"), ("nvidia-smi", "sleep 60")],
    );
    let path = test_path(&tools);
    let t = Instant::now();
    let r = run_with(
        &[
            "check",
            "--format",
            "json",
            "--timeout",
            "30",
            "--deadline",
            "3",
        ],
        |c| {
            c.env("PATH", &path);
        },
    );
    let wall = t.elapsed();
    assert!(r.code == 0 || r.code == 1, "exit {}: {}", r.code, r.stderr);
    assert!(
        wall < Duration::from_secs(25),
        "the run took {wall:?} with --deadline 3, as if it had waited for the 30 s timeout"
    );
    let v = json(&r);
    for name in ["sycl-ls", "nvidia-smi"] {
        let p = probe(&v, name);
        assert_eq!(p["status"], "timeout", "{p}");
        assert!(
            p["detail"]
                .as_str()
                .unwrap()
                .contains("run deadline (--deadline 3 s)"),
            "{p}"
        );
    }
}

/// Item 11, the other side: a tool that times out on its own `--timeout`
/// well before the deadline is not blamed on the deadline.
#[test]
fn issue8_item11_own_timeout_is_not_called_the_deadline() {
    let tmp = tempfile::tempdir().unwrap();
    let tools = tmp.path().join("bin");
    fake_tools(&tools, &[("xpu-smi", "sleep 30")]);
    let path = test_path(&tools);
    let r = run_with(
        &[
            "check",
            "--format",
            "json",
            "--timeout",
            "1",
            "--deadline",
            "60",
        ],
        |c| {
            c.env("PATH", &path);
        },
    );
    let v = json(&r);
    let p = probe(&v, "xpu-smi-discovery");
    assert_eq!(p["status"], "timeout", "{p}");
    assert!(!p["detail"].as_str().unwrap().contains("deadline"), "{p}");
}

/// Item 2: a probe tool gets only the environment it needs. A fake
/// `xpu-smi` on the test PATH dumps what it got: the allowlisted runtime
/// variable, PATH (absolute entries only), HOME and the C locale, in `/`;
/// never LD_PRELOAD, tokens, cloud keys, PYTHON* or the user's locale.
#[test]
fn issue8_item2_tools_get_only_the_environment_they_need() {
    let tmp = tempfile::tempdir().unwrap();
    let tools = tmp.path().join("bin");
    let dump = tmp.path().join("env.txt");
    let cwd = tmp.path().join("pwd.txt");
    fake_tools(
        &tools,
        &[(
            "xpu-smi",
            &format!(
                "env > '{}'; pwd > '{}'; echo 'No device discovered'",
                dump.display(),
                cwd.display()
            ),
        )],
    );
    let path = format!(".::{}:relative/bin:/usr/bin:/bin:", tools.display());
    let r = run_with(&["check", "--format", "json"], |c| {
        c.current_dir(tmp.path())
            .env("PATH", &path)
            .env("HOME", tmp.path())
            .env("LD_PRELOAD", "/nonexistent/rigdoctor-test-preload.so")
            .env("LD_LIBRARY_PATH", ":/opt/rigdoctor-test/lib:lib")
            .env("HF_TOKEN", "hf_rigdoctor_test_secret")
            .env("AWS_SECRET_ACCESS_KEY", "aws_rigdoctor_test_secret")
            .env("PYTHONPATH", tmp.path())
            .env("LANG", "de_DE.UTF-8")
            .env("LC_MESSAGES", "de_DE.UTF-8")
            .env("ZES_ENABLE_SYSMAN", "1");
    });
    assert!(r.code == 0 || r.code == 1, "exit {}: {}", r.code, r.stderr);
    let text = std::fs::read_to_string(&dump).expect("the fake xpu-smi ran");
    let got: std::collections::BTreeMap<&str, &str> =
        text.lines().filter_map(|l| l.split_once('=')).collect();
    // What sh itself adds (PWD, SHLVL, `_`) is not ours to judge.
    let names: Vec<&str> = got
        .keys()
        .copied()
        .filter(|k| !matches!(*k, "PWD" | "OLDPWD" | "SHLVL" | "_"))
        .collect();
    for n in &names {
        assert!(
            [
                "PATH",
                "LD_LIBRARY_PATH",
                "HOME",
                "LC_ALL",
                "LANG",
                "ZES_ENABLE_SYSMAN",
                "RIGDOCTOR_PROBE_ID",
            ]
            .contains(n),
            "the tool got {n}: {text}"
        );
    }
    assert_eq!(got.get("ZES_ENABLE_SYSMAN"), Some(&"1"), "{text}");
    assert_eq!(got.get("LC_ALL"), Some(&"C"), "{text}");
    assert_eq!(got.get("LANG"), Some(&"C"), "{text}");
    assert_eq!(got.get("LD_LIBRARY_PATH"), Some(&"/opt/rigdoctor-test/lib"));
    assert_eq!(
        got.get("PATH").copied(),
        Some(format!("{}:/usr/bin:/bin", tools.display()).as_str())
    );
    assert!(!text.contains("rigdoctor_test_secret") && !text.contains("preload"));
    assert_eq!(std::fs::read_to_string(&cwd).unwrap(), "/\n");
}

/// Item 2: relative and empty PATH entries are skipped when a tool is looked
/// up. Tools planted in the current directory (`.`, an empty entry) and in a
/// relative `bin` entry never run, even as the first match; the page says
/// PATH had such entries.
#[test]
fn issue8_item2_relative_path_entries_are_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("work");
    let marker = tmp.path().join("ran");
    let plant = format!("echo \"$0\" >> '{}'", marker.display());
    fake_tools(
        &work,
        &[
            ("nvidia-smi", &plant),
            ("sycl-ls", &plant),
            ("python3", &plant),
        ],
    );
    fake_tools(
        &work.join("bin"),
        &[("clinfo", &plant), ("rocminfo", &plant)],
    );
    let path = ".::bin:/usr/local/bin:/usr/bin:/bin:";
    let r = run_with(&["check", "--format", "json"], |c| {
        c.current_dir(&work).env("PATH", path);
    });
    assert!(r.code == 0 || r.code == 1, "exit {}: {}", r.code, r.stderr);
    assert!(
        !marker.exists(),
        "planted tools ran: {}",
        std::fs::read_to_string(&marker).unwrap_or_default()
    );
    let v = json(&r);
    assert_eq!(probe(&v, "nvidia-smi")["status"], "missing");
    assert!(diagnosis_ids(&v).contains(&"PATH-RELATIVE".to_string()));
    let human = run_with(&["check", "--color", "never"], |c| {
        c.current_dir(&work).env("PATH", path);
    });
    // The page wraps to its width: compare the words.
    let words = human
        .stdout
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        words.contains("PATH has a relative or empty entry; rigdoctor skipped it"),
        "{}",
        human.stdout
    );
    assert!(!marker.exists());
}

/// The real interpreter's executable (not a pyenv shim), so a test may move
/// HOME; None when this machine has no python3.
fn real_python() -> Option<String> {
    let o = std::process::Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .ok()?;
    let exe = String::from_utf8_lossy(&o.stdout).trim().to_string();
    (o.status.success() && exe.starts_with('/')).then_some(exe)
}

fn python_version(python: &str) -> String {
    let o = std::process::Command::new(python)
        .args(["-c", "import sys; print('%d.%d' % sys.version_info[:2])"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// Item 1: nothing from the working directory, PYTHONPATH, PYTHONSTARTUP or
/// the user's site directory runs. Real modules that record their import
/// (`json.py`, which the sys.path query imports; `torch.py`, which `--deep`
/// imports; `sitecustomize.py`; a `usercustomize.py` in the user site of
/// HOME) are planted in a temp working directory, on PYTHONPATH and in HOME;
/// `check`, `check --deep` and `capture` run the real python3 from there.
/// The probes must have run (a probe that did not start proves nothing).
#[test]
fn issue8_item1_planted_python_modules_never_run() {
    let Some(python) = real_python() else {
        eprintln!("skipped: no python3");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("work");
    let pypath = tmp.path().join("pypath");
    let home = tmp.path().join("home");
    let user_site = home.join(format!(
        ".local/lib/python{}/site-packages",
        python_version(&python)
    ));
    let marker = tmp.path().join("imported");
    for d in [&work, &pypath, &user_site] {
        std::fs::create_dir_all(d).unwrap();
    }
    let plant = |dir: &Path, module: &str| {
        std::fs::write(
            dir.join(format!("{module}.py")),
            format!(
                "open({:?}, 'a').write('{module} from {}\\n')\n",
                marker.display(),
                dir.display()
            ),
        )
        .unwrap();
    };
    for m in ["json", "torch", "sitecustomize", "site"] {
        plant(&work, m);
        plant(&pypath, m);
    }
    plant(&user_site, "usercustomize");
    plant(&work, "startup");
    let setup = |c: &mut std::process::Command| {
        c.current_dir(&work)
            .env("PYTHONPATH", &pypath)
            .env("PYTHONSTARTUP", work.join("startup.py"))
            .env("PYTHONHOME", &pypath)
            .env("HOME", &home);
    };
    // The plain check: the package probe asks python3 for sys.path.
    let r = run_with(&["check", "--python", &python, "--format", "json"], setup);
    let v = json(&r);
    assert_eq!(probe(&v, "python-packages")["status"], "ok", "{}", r.stdout);
    // --deep imports torch on purpose, from the checked environment only.
    let r = run_with(
        &["check", "--deep", "--python", &python, "--format", "json"],
        setup,
    );
    let v = json(&r);
    let deep = probe(&v, "python-deep");
    assert!(
        deep["status"] == "ok" || deep["status"] == "failed",
        "the import check ran: {deep}"
    );
    assert_eq!(v["facts"]["python"]["deep"]["completed"], true, "{deep}");
    // capture runs the same probes.
    let cap = tmp.path().join("cap");
    let r = run_with(
        &["capture", "-o", cap.to_str().unwrap(), "--python", &python],
        setup,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        !marker.exists(),
        "planted modules ran:\n{}",
        std::fs::read_to_string(&marker).unwrap_or_default()
    );
}

/// Live (not zombie) processes whose command line holds `tag`, via /proc.
fn alive_with_tag(tag: &str) -> Vec<(i32, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().filter_map(|e| e.ok()) {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| Some(s.rsplit_once(')')?.1.trim_start().starts_with(['Z', 'X'])))
            .unwrap_or(true);
        if cmd.contains(tag) && !zombie {
            out.push((pid, cmd));
        }
    }
    out
}

/// Item 3: no orphans. Fake tools leave behind a background child (same
/// process group), a `setsid` child (its own session) and a `setsid`
/// grandchild whose parent exits at once (reparented away from the tool);
/// one tool exits 0 at once, another hangs and is killed at its timeout.
/// Each leftover carries a unique tag in its argv; after rigdoctor returns,
/// /proc must hold none of them alive. rigdoctor itself waits until the
/// processes it killed are gone, so the check needs no sleep.
#[test]
fn issue8_item3_no_orphans_after_a_tool_ends_or_times_out() {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let tag = format!("rigdoctor-orphan-test-{}-{nanos}", std::process::id());
    let tmp = tempfile::tempdir().unwrap();
    let tools = tmp.path().join("bin");
    let seen = tmp.path().join("seen");
    std::fs::create_dir_all(&seen).unwrap();
    // A leftover: says it started, then sleeps in 1 s steps (so nothing
    // outlives a failed test by more than a second once it is killed). Its
    // argv carries the tag.
    let stay = tmp.path().join("stay");
    std::fs::write(
        &stay,
        "#!/bin/sh\ntouch \"$1\"\nwhile :; do sleep 1; done\n",
    )
    .unwrap();
    std::fs::set_permissions(&stay, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let (s, d) = (stay.display(), seen.display());
    let started = |names: &[&str]| {
        let all: Vec<String> = names.iter().map(|n| format!("[ -e {d}/{n} ]")).collect();
        format!("until {}; do sleep 0.05; done", all.join(" && "))
    };
    // Exits 0 once its three leftovers run: a background child (same
    // group), a setsid child, and a setsid grandchild whose parent is gone.
    let quick = format!(
        "{s} {d}/bg {tag}-bg &\nsetsid {s} {d}/ss {tag}-ss &\nsh -c 'setsid {s} {d}/gc {tag}-gc & exit 0'\n{}\necho 'No device discovered'",
        started(&["bg", "ss", "gc"])
    );
    // Hangs (killed at the timeout) with a setsid child and a background one.
    let hung = format!(
        "setsid {s} {d}/hs {tag}-hs &\n{s} {d}/hb {tag}-hb &\n{}\nsleep 300",
        started(&["hs", "hb"])
    );
    fake_tools(&tools, &[("xpu-smi", &quick), ("clinfo", &hung)]);
    let path = test_path(&tools);
    let r = run_with(&["check", "--format", "json", "--timeout", "5"], |c| {
        c.env("PATH", &path);
    });
    let left = alive_with_tag(&tag);
    // Clean up before asserting, so a failure leaves nothing behind either.
    for (pid, _) in &left {
        let _ = std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status();
    }
    assert!(r.code == 0 || r.code == 1, "exit {}: {}", r.code, r.stderr);
    let v = json(&r);
    assert_eq!(probe(&v, "clinfo")["status"], "timeout");
    assert_ne!(probe(&v, "xpu-smi-discovery")["status"], "timeout");
    // Every leftover really started (the test is not vacuous) ...
    for n in ["bg", "ss", "gc", "hs", "hb"] {
        assert!(seen.join(n).exists(), "{n} never started");
    }
    // ... and none is left.
    assert!(left.is_empty(), "left running: {left:#?}");
}
