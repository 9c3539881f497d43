//! Running one probe command on the live machine: argv only (no shell), the
//! program resolved on the absolute entries of PATH, stdin closed,
//! stdout/stderr read with a size bound, and a timeout after which the whole
//! process group is killed. A hung `nvidia-smi` (a GPU that fell off the bus)
//! costs at most the timeout, and the timeout itself becomes a fact.
//!
//! rigdoctor runs as a health hook, often as root, so a tool gets only what
//! it needs (issue 8): the environment is built from nothing ([`ToolEnv`]:
//! PATH and LD_LIBRARY_PATH without their relative or empty entries, HOME, the
//! C locale, and the GPU runtime variables the caller lets through; never
//! `LD_PRELOAD`, `PYTHON*`, tokens or cloud keys), and it starts in `/`, so
//! nothing in the directory rigdoctor was started from is found by accident.
//!
//! A tool leaves nothing behind (issue 8 item 3). It runs in its own process
//! group, and when it ends, by itself or at its timeout, the whole group is
//! killed (a daemon it forked, a helper still running). A descendant that
//! left the group (`setsid`, a double fork) is found by the marker every
//! tool's environment carries, `RIGDOCTOR_PROBE_ID=<unique id>`, which its
//! children inherit: `/proc/*/environ` is scanned for it and what carries it
//! is killed, and rigdoctor waits (bounded) until those are gone. What can
//! still escape is a descendant that both leaves the group and replaces its
//! environment (`setsid env -i ...`); finding that one needs a cgroup, which
//! an unprivileged run does not have.

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

/// Which of this process's variables, besides the fixed set, a probe tool
/// inherits: the GPU runtime allowlist (`probe::env::allowed`, handed down
/// by the caller, since this layer sits below the probes).
pub type EnvPass = fn(&str) -> bool;

/// The default [`EnvPass`]: no runtime variables, only the fixed set.
pub fn no_runtime_vars(_: &str) -> bool {
    false
}

/// Variables a tool never gets, even if the runtime allowlist names them
/// (it lists `LD_PRELOAD` and `PYTHONPATH` as facts worth reporting): they
/// load code into the tool (`LD_PRELOAD`, `LD_AUDIT`, ...) or into Python
/// (`PYTHONPATH`, `PYTHONSTARTUP`, ...).
fn never_passed(name: &str) -> bool {
    (name.starts_with("LD_") && name != "LD_LIBRARY_PATH") || name.starts_with("PYTHON")
}

/// The absolute entries of a search path (`PATH`, `LD_LIBRARY_PATH`). An
/// empty or relative entry (`.`, `bin`, `::`) means "the current directory"
/// to the loader and to a shell's lookup; rigdoctor never follows one.
pub fn absolute_entries(value: &std::ffi::OsStr) -> Vec<std::path::PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    value
        .as_bytes()
        .split(|b| *b == b':')
        .filter(|e| e.first() == Some(&b'/'))
        .map(|e| std::path::PathBuf::from(std::ffi::OsStr::from_bytes(e)))
        .collect()
}

fn join_entries(entries: &[std::path::PathBuf]) -> Option<std::ffi::OsString> {
    std::env::join_paths(entries).ok().filter(|j| !j.is_empty())
}

/// The environment a probe tool starts with, built from nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolEnv {
    pub vars: Vec<(std::ffi::OsString, std::ffi::OsString)>,
}

impl ToolEnv {
    /// From this process's environment: PATH and LD_LIBRARY_PATH (absolute
    /// entries only), HOME, `LC_ALL=C`/`LANG=C` (stable, untranslated output
    /// for the parsers), and the variables `pass` lets through.
    pub fn from_process(pass: EnvPass) -> ToolEnv {
        ToolEnv::from_vars(std::env::vars_os(), pass)
    }

    pub fn from_vars(
        vars: impl IntoIterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
        pass: EnvPass,
    ) -> ToolEnv {
        let mut out = Vec::new();
        for (k, v) in vars {
            let Some(name) = k.to_str() else { continue };
            match name {
                "PATH" | "LD_LIBRARY_PATH" => {
                    if let Some(j) = join_entries(&absolute_entries(&v)) {
                        out.push((k, j));
                    }
                }
                "HOME" => out.push((k, v)),
                "LC_ALL" | "LANG" | "LANGUAGE" | "RIGDOCTOR_PROBE_ID" => {}
                _ if name.starts_with("LC_") => {}
                _ if never_passed(name) => {}
                _ if pass(name) => out.push((k, v)),
                _ => {}
            }
        }
        out.push(("LC_ALL".into(), "C".into()));
        out.push(("LANG".into(), "C".into()));
        out.sort();
        ToolEnv { vars: out }
    }

    fn get(&self, name: &str) -> Option<&std::ffi::OsStr> {
        self.vars
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_os_str())
    }

    /// The PATH tools are looked up on (absolute entries only).
    pub fn path(&self) -> Option<&std::ffi::OsStr> {
        self.get("PATH")
    }
}

/// Where `program` is: a name is looked up on the absolute entries of
/// `path` (a relative or empty entry, `.` included, is skipped: a planted
/// `./nvidia-smi` must not run as root); a name with a slash is taken as
/// given, made absolute against the current directory (an explicit
/// `--python ./venv/bin/python`), since tools start in `/`.
pub fn resolve(program: &str, path: Option<&std::ffi::OsStr>) -> Option<std::path::PathBuf> {
    let executable = |p: &std::path::Path| {
        p.is_file() && nix::unistd::access(p, nix::unistd::AccessFlags::X_OK).is_ok()
    };
    if program.is_empty() {
        return None;
    }
    if program.contains('/') {
        let p = std::path::Path::new(program);
        let p = if p.is_absolute() {
            p.to_path_buf()
        } else {
            std::env::current_dir().ok()?.join(p)
        };
        return executable(&p).then_some(p);
    }
    absolute_entries(path?)
        .into_iter()
        .map(|dir| dir.join(program))
        .find(|p| executable(p))
}

/// A probe command's process: argv only, stdin closed, stdout/stderr piped,
/// the environment `env` and nothing else, `/` as its working directory, and
/// its own process group so a timeout kills the helpers it spawned too.
pub fn base_command(program: &std::path::Path, args: &[String], env: &ToolEnv) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_clear()
        .envs(env.vars.iter().map(|(k, v)| (k, v)))
        .current_dir("/")
        .process_group(0);
    cmd
}

/// Run `spec` on this machine with the environment `env`.
pub fn run(spec: &CmdSpec, env: &ToolEnv) -> CmdOutput {
    let start = Instant::now();
    let Some(program) = spec.argv.first() else {
        return CmdOutput::with_status(CmdStatus::Failed("empty argv".into()));
    };
    let Some(resolved) = resolve(program, env.path()) else {
        return CmdOutput::with_status(CmdStatus::Missing);
    };
    // Named on a terminal's progress line while it runs past a second.
    let _busy = crate::progress::start(&spec.name, program, spec.timeout);
    if spec.timeout.is_zero() {
        // The run's deadline has passed (Live cuts the timeout to what is
        // left): do not start what could not be waited for.
        return CmdOutput::with_status(CmdStatus::Timeout);
    }
    let mut cmd = base_command(&resolved, &spec.argv[1..], env);
    for k in &spec.env_remove {
        cmd.env_remove(k);
    }
    let marker = probe_id();
    cmd.env(MARKER_VAR, &marker);
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
        // Wait for the tool to end without reaping it: while it is a zombie
        // its pid (= its group's id) cannot be reused, so killing the group
        // hits only what the tool left in it. Then reap.
        wait_exited_unreaped(pid);
        kill_group(pid);
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
    // What left the group: killed by its marker, before the pipes are
    // drained (an escaped daemon holding them open would cost the grace).
    kill_marked(&marker);
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

/// The variable that marks a tool's descendants (see the module doc).
pub const MARKER_VAR: &str = "RIGDOCTOR_PROBE_ID";

/// A marker no other run shares: this process, when it started its first
/// tool, and a sequence number.
fn probe_id() -> String {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static EPOCH: OnceLock<u128> = OnceLock::new();
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let epoch = EPOCH.get_or_init(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    });
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    format!("{}-{epoch}-{n}", std::process::id())
}

/// Block until `pid` (our child) has ended, leaving it unreaped.
fn wait_exited_unreaped(pid: i32) {
    use nix::sys::wait::{Id, WaitPidFlag, waitid};
    use nix::unistd::Pid;
    loop {
        match waitid(
            Id::Pid(Pid::from_raw(pid)),
            WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT,
        ) {
            Err(nix::errno::Errno::EINTR) => continue,
            _ => return,
        }
    }
}

/// The pids of live (not zombie) processes whose environment holds
/// `MARKER_VAR=marker`. The real `/proc`, whatever `--procfs` says: these
/// are processes to kill, not facts to report.
fn marked(marker: &str) -> Vec<i32> {
    let needle = format!("{MARKER_VAR}={marker}");
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else {
                return false;
            };
            env.split(|b| *b == 0).any(|v| v == needle.as_bytes()) && !is_zombie(*pid)
        })
        .collect()
}

fn is_zombie(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the last ')' (the command name may hold one).
        Ok(s) => s
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_none_or(|c| c == 'Z' || c == 'X'),
        Err(_) => true,
    }
}

/// How long to wait for killed escapees to be gone. SIGKILL cannot be
/// caught; this only covers a loaded machine scheduling their exit.
const ESCAPEE_GRACE: Duration = Duration::from_secs(2);

/// Kill every process carrying `marker`, and wait (bounded) until none is
/// left; several passes, since one may fork while the scan runs. Returns how
/// many were killed.
fn kill_marked(marker: &str) -> usize {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let mut killed = std::collections::BTreeSet::new();
    let until = Instant::now() + ESCAPEE_GRACE;
    loop {
        let left = marked(marker);
        if left.is_empty() || Instant::now() >= until {
            return killed.len();
        }
        for pid in left {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            killed.insert(pid);
        }
        thread::sleep(Duration::from_millis(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    fn spec(argv: &[&str], timeout_ms: u64) -> CmdSpec {
        CmdSpec::new("t", argv, Duration::from_millis(timeout_ms))
    }

    fn vars(v: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        v.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect()
    }

    fn sys_env() -> ToolEnv {
        ToolEnv::from_vars(vars(&[("PATH", "/usr/bin:/bin")]), no_runtime_vars)
    }

    fn run_sys(s: &CmdSpec) -> CmdOutput {
        run(s, &sys_env())
    }

    #[test]
    fn captures_stdout_stderr_and_exit_code() {
        let out = run_sys(&spec(
            &["sh", "-c", "printf out; printf err >&2; exit 3"],
            5000,
        ));
        assert_eq!(out.status, CmdStatus::Exit(3));
        assert_eq!(out.stdout, b"out");
        assert_eq!(out.stderr, b"err");
    }

    #[test]
    fn missing_program_is_missing() {
        let out = run_sys(&spec(&["rigdoctor-no-such-tool-xyz"], 1000));
        assert_eq!(out.status, CmdStatus::Missing);
    }

    #[test]
    fn hung_program_is_killed_at_the_timeout() {
        // The child also starts a grandchild that would keep the pipe open;
        // the 30 s sleeps would make a missed kill plain.
        let out = run_sys(&spec(&["sh", "-c", "sleep 30 & sleep 30"], 300));
        assert_eq!(out.status, CmdStatus::Timeout);
    }

    #[test]
    fn output_is_bounded() {
        let out = run_sys(&spec(&["sh", "-c", "head -c 9000000 /dev/zero"], 20000));
        assert_eq!(out.stdout.len(), MAX_OUTPUT_BYTES);
        assert!(out.truncated);
        assert_eq!(out.status, CmdStatus::Exit(0));
    }

    #[test]
    fn selector_variables_can_be_removed() {
        let env = ToolEnv::from_vars(
            vars(&[("PATH", "/usr/bin:/bin"), ("ZE_AFFINITY_MASK", "0")]),
            |n| n.starts_with("ZE_"),
        );
        let script = "printf %s \"${ZE_AFFINITY_MASK-unset}\"";
        assert_eq!(run(&spec(&["sh", "-c", script], 5000), &env).stdout, b"0");
        let mut s = spec(&["sh", "-c", script], 5000);
        s.env_remove.push("ZE_AFFINITY_MASK".into());
        assert_eq!(run(&s, &env).stdout, b"unset");
    }

    #[test]
    fn issue8_item2_tool_env_is_built_from_nothing() {
        let everything = |_: &str| true;
        let e = ToolEnv::from_vars(
            vars(&[
                ("PATH", ".:/opt/x/bin::bin:/usr/bin:"),
                ("LD_LIBRARY_PATH", ":/opt/intel/lib:lib"),
                ("HOME", "/root"),
                ("LD_PRELOAD", "/tmp/evil.so"),
                ("LD_AUDIT", "/tmp/evil.so"),
                ("PYTHONPATH", "/tmp"),
                ("PYTHONSTARTUP", "/tmp/s.py"),
                ("LANG", "de_DE.UTF-8"),
                ("LC_MESSAGES", "de_DE.UTF-8"),
                ("RIGDOCTOR_PROBE_ID", "planted"),
                ("ZES_ENABLE_SYSMAN", "1"),
            ]),
            everything,
        );
        let got: Vec<(String, String)> = e
            .vars
            .iter()
            .map(|(k, v)| (k.to_string_lossy().into(), v.to_string_lossy().into()))
            .collect();
        let want: Vec<(String, String)> = [
            ("HOME", "/root"),
            ("LANG", "C"),
            ("LC_ALL", "C"),
            ("LD_LIBRARY_PATH", "/opt/intel/lib"),
            ("PATH", "/opt/x/bin:/usr/bin"),
            ("ZES_ENABLE_SYSMAN", "1"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(got, want);
        // Without a pass-list only the fixed set is left; a PATH of only
        // relative entries is no PATH at all.
        let e = ToolEnv::from_vars(
            vars(&[("PATH", ".:bin"), ("HF_TOKEN", "hf_x"), ("ZE_X", "1")]),
            no_runtime_vars,
        );
        let names: Vec<_> = e.vars.iter().map(|(k, _)| k.clone()).collect();
        assert_eq!(names, vec![OsString::from("LANG"), "LC_ALL".into()]);
        assert_eq!(resolve("sh", e.path()), None);
    }

    #[test]
    fn issue8_item2_resolve_skips_relative_and_empty_entries() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let tool = d.path().join("rigdoctor-fake-tool");
        std::fs::write(&tool, "#!/bin/sh\n").unwrap_or_else(|e| panic!("{e}"));
        let noexec = d.path().join("rigdoctor-noexec");
        std::fs::write(&noexec, "").unwrap_or_else(|e| panic!("{e}"));
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("{e}"));
        let dir = d.path().to_string_lossy().into_owned();
        let path = |p: &str| OsString::from(p);
        assert_eq!(
            resolve("rigdoctor-fake-tool", Some(&path(&format!(".::{dir}")))),
            Some(tool.clone())
        );
        assert_eq!(resolve("rigdoctor-noexec", Some(&path(&dir))), None);
        // The same directory as a relative entry (../../tmp/..., from the
        // current directory) holds the tool, and is skipped.
        let cwd = std::env::current_dir().unwrap_or_else(|e| panic!("{e}"));
        let rel = format!(
            "{}{}",
            "../".repeat(cwd.components().count() - 1),
            &dir[1..]
        );
        assert!(
            std::path::Path::new(&rel)
                .join("rigdoctor-fake-tool")
                .is_file()
        );
        assert_eq!(resolve("rigdoctor-fake-tool", Some(&path(&rel))), None);
        assert_eq!(resolve("rigdoctor-fake-tool", None), None);
        assert_eq!(resolve("", Some(&path(&dir))), None);
        // A path with a slash is taken as given.
        assert_eq!(resolve(&tool.to_string_lossy(), None), Some(tool.clone()));
    }

    #[test]
    fn issue8_item2_tools_start_in_root() {
        let out = run_sys(&spec(&["sh", "-c", "pwd"], 5000));
        assert_eq!(out.stdout, b"/\n");
    }
}
