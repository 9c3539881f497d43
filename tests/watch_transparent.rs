//! `rigdoctor watch -- CMD` is transparent: the program's stdout/stderr bytes,
//! exit status and signals are what they would be without rigdoctor.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers: a failed setup must fail the test loudly"
)]

mod watch_support;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::Duration;

use watch_support::*;

/// Run `argv` directly and under `rigdoctor watch --output FILE --` (so
/// rigdoctor's own lines stay out of stderr); return both outputs.
fn both(argv: &[&str], stdin: Option<&[u8]>) -> (std::process::Output, std::process::Output) {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("rigdoctor.txt");
    let go = |mut c: Command| {
        c.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut ch = c.spawn().unwrap();
        if let (Some(data), Some(mut i)) = (stdin, ch.stdin.take()) {
            use std::io::Write;
            i.write_all(data).unwrap();
        }
        ch.wait_with_output().unwrap()
    };
    let mut direct = Command::new(argv[0]);
    direct.args(&argv[1..]);
    let mut watched = Command::new(BIN);
    watched
        .args(["watch", "--interval", "0.2", "--window", "0.4", "--output"])
        .arg(&out)
        .arg("--")
        .args(argv);
    (go(direct), go(watched))
}

#[test]
fn binary_bytes_without_a_trailing_newline_pass_through() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data.bin");
    // Every byte value, a megabyte of it, a partial line at the end.
    let mut bytes: Vec<u8> = (0..=255u8).cycle().take(1 << 20).collect();
    bytes.extend_from_slice(b"\r\nno newline at the end");
    std::fs::write(&data, &bytes).unwrap();
    let script = format!(
        "cat '{p}'; printf 'err\\000\\377\\n'; cat '{p}' >&2; printf 'tail'; printf 'etail' >&2",
        p = data.display()
    );
    let (a, b) = both(&["sh", "-c", &script], None);
    assert_eq!(a.stdout.len(), bytes.len() + 4 + 4 + 1 + 1);
    assert!(a.stdout == b.stdout, "stdout differs");
    assert!(a.stderr == b.stderr, "stderr differs");
    assert_eq!(a.status.code(), b.status.code());
}

#[test]
fn exit_status_is_the_programs() {
    for code in [0, 1, 7, 255] {
        let (a, b) = both(&["sh", "-c", &format!("exit {code}")], None);
        assert_eq!(a.status.code(), Some(code));
        assert_eq!(b.status.code(), Some(code));
    }
    // Killed by a signal: rigdoctor reports 128+N, as a shell does.
    let (_, b) = both(&["sh", "-c", "kill -TERM $$"], None);
    assert_eq!(b.status.code(), Some(128 + 15));
    let (_, b) = both(&["sh", "-c", "kill -KILL $$"], None);
    assert_eq!(b.status.code(), Some(128 + 9));
}

#[test]
fn stdin_is_the_programs() {
    let input = b"line one\n\x00binary\xfflast";
    let (a, b) = both(&["cat"], Some(input));
    assert_eq!(a.stdout, input);
    assert_eq!(b.stdout, input);
}

#[test]
fn the_program_starts_with_a_clean_signal_mask() {
    // rigdoctor blocks the signals it forwards; the program must not inherit that.
    // grep reads its own status (a shell's mask changes while it forks).
    let (a, b) = both(&["grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status"], None);
    assert!(String::from_utf8_lossy(&a.stdout).contains("SigBlk:\t0000000000000000"));
    assert_eq!(a.stdout, b.stdout);
}

/// A test runner started in the background of a non-interactive shell, or
/// under `nohup`, ignores INT, QUIT and HUP, and an ignored signal stays
/// ignored across exec: the `sh` below could then not trap it (POSIX), and
/// the test would fail for a reason that is not rigdoctor's. rigdoctor
/// itself rightly passes dispositions on unchanged, so reset them here.
fn default_dispositions(cmd: &mut Command) {
    use nix::sys::signal::{SigHandler, Signal, signal};
    use std::os::unix::process::CommandExt;
    // SAFETY: between fork and exec only async-signal-safe calls are made;
    // signal(2) is one, and nothing here allocates.
    unsafe {
        cmd.pre_exec(|| {
            for s in [
                Signal::SIGINT,
                Signal::SIGQUIT,
                Signal::SIGHUP,
                Signal::SIGTERM,
            ] {
                signal(s, SigHandler::SigDfl).map_err(std::io::Error::from)?;
            }
            Ok(())
        });
    }
}

/// Start `rigdoctor watch -- sh` with a trap on `sig`; wait for "ready";
/// send `sig` to rigdoctor; the program must see it exactly once.
fn forwarded_once(sig: &str) {
    let d = tempfile::tempdir().unwrap();
    let script = format!(
        "n=0; trap 'n=$((n+1)); echo got $n' {sig}; echo ready; i=0; while [ $i -lt 30 ]; do sleep 0.1; i=$((i+1)); [ $n -gt 0 ] && [ $i -gt 5 ] && break; done; exit $((40+n))"
    );
    let mut cmd = Command::new(BIN);
    default_dispositions(&mut cmd);
    let mut ch = cmd
        .args(["watch", "--interval", "0.2", "--window", "0.4", "--output"])
        .arg(d.path().join("o.txt"))
        .args(["--", "sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(ch.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n");
    std::thread::sleep(Duration::from_millis(100));
    let ok = Command::new("kill")
        .args([&format!("-{sig}"), &ch.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    let st = ch.wait().unwrap();
    assert_eq!(rest, "got 1\n", "{sig}: seen once");
    assert_eq!(st.code(), Some(41), "{sig}: the program's own exit status");
}

#[test]
fn sigint_sigterm_sighup_are_forwarded_once() {
    for sig in ["INT", "TERM", "HUP"] {
        forwarded_once(sig);
    }
}

#[test]
fn a_closed_stdout_reaches_the_program() {
    // `rigdoctor watch -- yes | head -1`: yes must end by SIGPIPE as it would alone.
    let d = tempfile::tempdir().unwrap();
    let mut ch = Command::new(BIN)
        .args(["watch", "--output"])
        .arg(d.path().join("o.txt"))
        .args(["--", "yes"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = [0u8; 2];
    ch.stdout.as_mut().unwrap().read_exact(&mut first).unwrap();
    drop(ch.stdout.take());
    let st = ch.wait().unwrap();
    assert_eq!(&first, b"y\n");
    assert_eq!(st.code(), Some(128 + 13), "yes was ended by SIGPIPE");
}

#[test]
fn a_missing_command_is_127_and_rigdoctor_problems_do_not_touch_the_program() {
    let o = run(
        &["watch", "--", "rigdoctor-no-such-program"],
        &path_with(None),
    );
    assert_eq!(o.status.code(), Some(127));
    // Telemetry roots that do not exist: the program still runs and its status is kept.
    let o = run(
        &[
            "--sysfs",
            "/nonexistent/sys",
            "--procfs",
            "/nonexistent/proc",
            "watch",
            "--interval",
            "0.2",
            "--window",
            "0.4",
            "--",
            "sh",
            "-c",
            "echo out; exit 3",
        ],
        &path_with(None),
    );
    assert_eq!(o.status.code(), Some(3));
    assert_eq!(o.stdout, b"out\n");
}

#[test]
fn rigdoctors_own_lines_go_to_stderr_by_default() {
    let o = run(
        &[
            "watch",
            "--interval",
            "0.2",
            "--window",
            "0.4",
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2; sleep 1",
        ],
        &path_with(None),
    );
    assert_eq!(o.stdout, b"out\n", "stdout is the program's alone");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("err\n"), "{err}");
    assert!(err.contains("rigdoctor watch"), "{err}");
    assert!(err.contains("Time in each verdict"), "{err}");
}

#[test]
fn usage_errors_exit_2_before_anything_starts() {
    let d = tempfile::tempdir().unwrap();
    let marker = d.path().join("started");
    let touch = format!("touch '{}'", marker.display());
    let bad = d.path().join("bad.toml");
    std::fs::write(&bad, "gpu_idle_pct = 500.0\n").unwrap();
    for args in [
        vec![
            "watch",
            "--thresholds",
            bad.to_str().unwrap(),
            "--",
            "sh",
            "-c",
            &touch,
        ],
        vec![
            "watch",
            "--output",
            "/nonexistent/dir/out",
            "--",
            "sh",
            "-c",
            &touch,
        ],
        vec!["watch", "--interval", "0", "--", "sh", "-c", &touch],
    ] {
        let o = run(&args, &path_with(None));
        assert_eq!(o.status.code(), Some(2), "{args:?}");
    }
    assert!(!marker.exists(), "the program never started");
    let o = run(
        &["watch", "--replay", "/nonexistent/trace.jsonl"],
        &path_with(None),
    );
    assert_eq!(o.status.code(), Some(2));
    let not_a_trace = d.path().join("x.jsonl");
    std::fs::write(&not_a_trace, "{\"hello\": 1}\n").unwrap();
    let o = run(
        &["watch", "--replay", not_a_trace.to_str().unwrap()],
        &path_with(None),
    );
    assert_eq!(o.status.code(), Some(2));
}
