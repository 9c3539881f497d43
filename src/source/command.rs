//! Running one probe command on the live machine: argv only (no shell), the
//! program resolved on PATH with `which`, stdin closed, stdout/stderr read
//! with a size bound, and a timeout after which the whole process group is
//! killed. A hung `nvidia-smi` (a GPU that fell off the bus) costs at most the
//! timeout, and the timeout itself becomes a fact.

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use super::{CmdOutput, CmdSpec, CmdStatus, MAX_OUTPUT_BYTES};

/// How long to wait for the pipes to drain after the child ended. A daemon
/// the probe left behind may hold them open; we do not wait for it.
const DRAIN_GRACE: Duration = Duration::from_millis(250);

/// Read a pipe to its end, keeping at most `limit` bytes.
fn read_bounded(mut r: impl std::io::Read, limit: usize) -> (Vec<u8>, bool) {
    let mut kept = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let mut truncated = false;
    loop {
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let room = limit.saturating_sub(kept.len());
                if n > room {
                    truncated = true;
                }
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    (kept, truncated)
}

fn spawn_reader<R: std::io::Read + Send + 'static>(
    r: Option<R>,
) -> mpsc::Receiver<(Vec<u8>, bool)> {
    let (tx, rx) = mpsc::channel();
    if let Some(r) = r {
        thread::spawn(move || {
            let _ = tx.send(read_bounded(r, MAX_OUTPUT_BYTES));
        });
    } else {
        let _ = tx.send((Vec::new(), false));
    }
    rx
}

/// A probe command's process: argv only, stdin closed, stdout/stderr piped,
/// the C locale (stable, untranslated output for the parsers), and its own
/// process group so a timeout kills the helpers it spawned too.
pub fn base_command(program: &std::path::Path, args: &[String]) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("LC_ALL", "C")
        .env("LANG", "C")
        .process_group(0);
    cmd
}

/// Run `spec` on this machine.
pub fn run(spec: &CmdSpec) -> CmdOutput {
    let start = Instant::now();
    let Some(program) = spec.argv.first() else {
        return CmdOutput::with_status(CmdStatus::Failed("empty argv".into()));
    };
    let resolved = match which::which(program) {
        Ok(p) => p,
        Err(_) => return CmdOutput::with_status(CmdStatus::Missing),
    };
    if spec.timeout.is_zero() {
        // The run's deadline has passed (Live cuts the timeout to what is
        // left): do not start what could not be waited for.
        return CmdOutput::with_status(CmdStatus::Timeout);
    }
    let mut cmd = base_command(&resolved, &spec.argv[1..]);
    for k in &spec.env_remove {
        cmd.env_remove(k);
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let mut out = CmdOutput::with_status(CmdStatus::Failed(e.to_string()));
            out.duration_ms = start.elapsed().as_millis() as u64;
            return out;
        }
    };
    let pid = child.id() as i32;
    let out_rx = spawn_reader(child.stdout.take());
    let err_rx = spawn_reader(child.stderr.take());

    let (wait_tx, wait_rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = wait_tx.send(child.wait());
    });

    let status = match wait_rx.recv_timeout(spec.timeout) {
        Ok(Ok(st)) => match (st.code(), st.signal()) {
            (Some(c), _) => CmdStatus::Exit(c),
            (None, Some(s)) => CmdStatus::Signal(s),
            (None, None) => CmdStatus::Failed("ended without status".into()),
        },
        Ok(Err(e)) => CmdStatus::Failed(e.to_string()),
        Err(_) => {
            kill_group(pid);
            // Reap it so no zombie is left; SIGKILL cannot be ignored.
            let _ = wait_rx.recv_timeout(Duration::from_secs(2));
            CmdStatus::Timeout
        }
    };
    let (stdout, t1) = out_rx.recv_timeout(DRAIN_GRACE).unwrap_or_default();
    let (stderr, t2) = err_rx.recv_timeout(DRAIN_GRACE).unwrap_or_default();
    CmdOutput {
        status,
        stdout,
        stderr,
        duration_ms: start.elapsed().as_millis() as u64,
        truncated: t1 || t2,
    }
}

fn kill_group(pid: i32) {
    use nix::sys::signal::{Signal, killpg};
    use nix::unistd::Pid;
    let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(argv: &[&str], timeout_ms: u64) -> CmdSpec {
        CmdSpec::new("t", argv, Duration::from_millis(timeout_ms))
    }

    #[test]
    fn captures_stdout_stderr_and_exit_code() {
        let out = run(&spec(
            &["sh", "-c", "printf out; printf err >&2; exit 3"],
            5000,
        ));
        assert_eq!(out.status, CmdStatus::Exit(3));
        assert_eq!(out.stdout, b"out");
        assert_eq!(out.stderr, b"err");
    }

    #[test]
    fn missing_program_is_missing() {
        let out = run(&spec(&["rigdoctor-no-such-tool-xyz"], 1000));
        assert_eq!(out.status, CmdStatus::Missing);
    }

    #[test]
    fn hung_program_is_killed_at_the_timeout() {
        let t = Instant::now();
        // The child also starts a grandchild that would keep the pipe open.
        let out = run(&spec(&["sh", "-c", "sleep 30 & sleep 30"], 300));
        assert_eq!(out.status, CmdStatus::Timeout);
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "took {:?}",
            t.elapsed()
        );
    }

    #[test]
    fn output_is_bounded() {
        let out = run(&spec(&["sh", "-c", "head -c 9000000 /dev/zero"], 20000));
        assert_eq!(out.stdout.len(), MAX_OUTPUT_BYTES);
        assert!(out.truncated);
        assert_eq!(out.status, CmdStatus::Exit(0));
    }

    #[test]
    fn selector_variables_can_be_removed() {
        let mut s = spec(
            &["sh", "-c", "printf %s \"${RIGDOCTOR_TEST_VAR-unset}\""],
            5000,
        );
        s.env_remove.push("RIGDOCTOR_TEST_VAR".into());
        // SAFETY: test-only; no other thread of this test reads this variable.
        unsafe { std::env::set_var("RIGDOCTOR_TEST_VAR", "set") };
        let out = run(&s);
        assert_eq!(out.stdout, b"unset");
    }
}
