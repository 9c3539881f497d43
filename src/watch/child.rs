//! `watch -- CMD`: start the program and stay out of its way.
//!
//! - stdin is inherited; stdout and stderr are pipes whose bytes are copied
//!   to rigdoctor's stdout/stderr as they arrive (raw chunks, flushed each
//!   time, never split into lines or altered), and a copy of each chunk goes
//!   to a line splitter for the engine-log classifier. If our side of a pipe
//!   breaks (`| head`), we stop reading it, so the program sees the same
//!   broken pipe it would have seen on its own.
//! - The program stays in rigdoctor's process group. Signals the terminal
//!   sends (Ctrl-C, Ctrl-\, hang-up: `si_code == SI_KERNEL`) already reach
//!   the whole foreground group, so they are *not* forwarded again (a second
//!   Ctrl-C would make llama-cli or Python act differently). Signals sent to
//!   rigdoctor's pid by a process (`kill`, `timeout`) are forwarded once:
//!   INT, TERM, HUP, QUIT, USR1, USR2, unless the sender is a service
//!   manager that signalled the program too ([`manager_reaches_program`]:
//!   slurmstepd, systemd under KillMode=control-group). A signal sent to the
//!   whole group by anyone else reaches the program directly and through us
//!   (twice); that is the one case we cannot tell apart.
//! - rigdoctor exits with the program's status, or 128+N when signal N
//!   killed it (what a shell reports).
//!
//! Caveat (documented in docs/watch.md): the program sees pipes, not the
//! terminal, on stdout/stderr, so programs that check `isatty` may print
//! without colour or buffer stdout (Python: `python -u` or
//! `PYTHONUNBUFFERED=1` if output appears in bursts).

use std::ffi::OsString;
use std::io::{Read, Write};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread;

use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::SignalFd;

use super::enginelog::{LineSplitter, classify, evidence_line};
use super::sample::LogEvent;

/// Signals rigdoctor handles itself (forwards, or stops watching on).
pub const HANDLED: [Signal; 6] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

/// What the terminal shows besides the program's bytes: our status line.
/// One lock for every write to the terminal keeps the two from tearing.
#[derive(Debug, Default)]
pub struct TermState {
    /// The status line is drawn and must be erased before other output.
    pub status_visible: bool,
    /// The program's last byte on stderr / stdout was not a newline.
    pub midline_err: bool,
    pub midline_out: bool,
}

pub type Term = Arc<Mutex<TermState>>;

/// Erase the status line.
pub const CLEAR: &[u8] = b"\r\x1b[2K";

/// Block the handled signals in this thread (and so in every thread started
/// after) and read them from a signalfd instead. Call before any thread.
pub fn take_signals() -> nix::Result<SignalFd> {
    let mut set = SigSet::empty();
    for s in HANDLED {
        set.add(s);
    }
    set.thread_block()?;
    SignalFd::new(&set)
}

/// The program must start with the signal mask a shell would give it:
/// std's `Command` keeps the parent's mask, and ours blocks the handled
/// signals (they are read from a signalfd), so clear it between fork and exec.
pub fn unblock_signals_in_child(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs between fork and exec; it only calls
    // pthread_sigmask, which is async-signal-safe, and allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            SigSet::empty()
                .thread_set_mask()
                .map_err(std::io::Error::from)
        });
    }
}

/// One signal as read from the signalfd.
#[derive(Debug, Clone, Copy)]
pub struct Received {
    pub signo: i32,
    /// Sent by the kernel for the terminal (Ctrl-C): the group got it too.
    pub from_terminal: bool,
    /// The sending process (`ssi_pid`; 0 from the kernel).
    pub sender: i32,
}

/// Read signals forever on a thread; each one goes to `tx`.
pub fn signal_thread(sfd: SignalFd, tx: Sender<Received>) {
    thread::spawn(move || {
        loop {
            match sfd.read_signal() {
                Ok(Some(info)) => {
                    let r = Received {
                        signo: info.ssi_signo as i32,
                        from_terminal: info.ssi_code == nix::libc::SI_KERNEL,
                        sender: info.ssi_pid as i32,
                    };
                    if tx.send(r).is_err() {
                        break;
                    }
                }
                Ok(None) => {}
                Err(nix::errno::Errno::EINTR) => {}
                Err(_) => break,
            }
        }
    });
}

/// Forward `r` to the program unless it got it already: from the terminal
/// (the whole foreground group), or from a service manager that signals
/// every process of the unit or job step ([`manager_reaches_program`]).
/// Returns why it was not forwarded, for the log.
pub fn forward(pid: i32, r: Received, done: &AtomicBool) -> Option<String> {
    if r.from_terminal || done.load(Ordering::SeqCst) {
        return None;
    }
    if let Some(why) = manager_reaches_program(
        std::path::Path::new("/proc"),
        r.sender,
        pid,
        systemd_kill_mode,
    ) {
        return Some(why);
    }
    if let Ok(sig) = Signal::try_from(r.signo) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
    }
    None
}

/// Did the sender of a signal to rigdoctor send it to the program too, at
/// the same time? Service managers stop a unit by signalling each of its
/// processes: Slurm's slurmstepd every process of the job step (its
/// proctrack plugin: cgroup, linuxproc or pgid, all of which hold the
/// program, which stays in rigdoctor's process group), systemd every
/// process of the unit's cgroup under `KillMode=control-group`, its
/// default. Forwarding then makes the program's second signal: llama-server
/// answers "Received second interrupt, terminating immediately" and exits 1.
/// A systemd unit with `KillMode=mixed` or `process` signals only its main
/// process, and then the program needs ours. `kill_mode(unit, user)` asks
/// systemd (None: could not tell, which is read as the default).
/// Anything unreadable means "no": forwarding stays the safe default.
pub fn manager_reaches_program(
    proc_root: &std::path::Path,
    sender: i32,
    program: i32,
    kill_mode: impl Fn(&str, bool) -> Option<String>,
) -> Option<String> {
    if sender <= 0 {
        return None;
    }
    let read =
        |pid: i32, f: &str| std::fs::read_to_string(proc_root.join(pid.to_string()).join(f)).ok();
    let comm = read(sender, "comm")?;
    match comm.trim() {
        "slurmstepd" => Some(format!(
            "slurmstepd (pid {sender}) signals every process of the job step, the program included"
        )),
        "systemd" => {
            // The program must still be in rigdoctor's unit: a manager
            // signals its own cgroup, not one the program moved to.
            let own = read(std::process::id() as i32, "cgroup")?;
            let prog = read(program, "cgroup")?;
            if own != prog {
                return None;
            }
            let unit = unit_of(&own)?;
            let mode = kill_mode(&unit, sender != 1);
            let mode = mode.as_deref().unwrap_or("control-group");
            (mode == "control-group").then(|| {
                format!(
                    "systemd (pid {sender}) stops {unit} with KillMode=control-group: every process of the unit got it"
                )
            })
        }
        _ => None,
    }
}

/// `0::/system.slice/llama.service` → `llama.service`: the unit whose
/// cgroup a process is in (cgroup v2 line; v1's `name=systemd` line).
fn unit_of(cgroup: &str) -> Option<String> {
    let path = cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .or_else(|| {
            cgroup
                .lines()
                .find_map(|l| l.split_once(":name=systemd:").map(|(_, p)| p))
        })?;
    let unit = path.trim().rsplit('/').next()?;
    (unit.ends_with(".service") || unit.ends_with(".scope")).then(|| unit.to_string())
}

/// `systemctl show -p KillMode --value UNIT` (with `--user` for a user
/// manager), 2 s at most, argv only, no environment but what it needs.
fn systemd_kill_mode(unit: &str, user: bool) -> Option<String> {
    let systemctl = ["/usr/bin/systemctl", "/bin/systemctl"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())?;
    let mut cmd = Command::new(systemctl);
    if user {
        cmd.arg("--user");
    }
    cmd.args(["show", "-p", "KillMode", "--value", "--", unit])
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .current_dir("/");
    for v in ["XDG_RUNTIME_DIR", "DBUS_SESSION_BUS_ADDRESS"] {
        if let Some(x) = std::env::var_os(v).filter(|_| user) {
            cmd.env(v, x);
        }
    }
    let mut child = cmd.spawn().ok()?;
    let end = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if std::time::Instant::now() < end => {
                thread::sleep(std::time::Duration::from_millis(20));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
    let mut out = String::new();
    child
        .stdout
        .take()?
        .take(256)
        .read_to_string(&mut out)
        .ok()?;
    let mode = out.trim();
    (!mode.is_empty()).then(|| mode.to_string())
}

/// The shell's view of an exit status: the code, or 128+signal.
pub fn exit_code(st: &ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    match (st.code(), st.signal()) {
        (Some(c), _) => c,
        (None, Some(s)) => 128 + s,
        _ => 1,
    }
}

#[derive(Clone, Copy)]
enum Dest {
    Stdout,
    Stderr,
}

fn write_dest(d: Dest, bytes: &[u8]) -> std::io::Result<()> {
    match d {
        Dest::Stdout => {
            let mut o = std::io::stdout().lock();
            o.write_all(bytes)?;
            o.flush()
        }
        Dest::Stderr => {
            let mut e = std::io::stderr().lock();
            e.write_all(bytes)?;
            e.flush()
        }
    }
}

fn pump(
    mut from: impl Read,
    dest: Dest,
    stream: &'static str,
    term: Option<Term>,
    log: Sender<LogEvent>,
    done: Sender<()>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut split = LineSplitter::new(8192);
    let mut send = |l: &str| {
        if let Some(signal) = classify(l) {
            let _ = log.send(LogEvent {
                stream: stream.into(),
                signal,
                line: evidence_line(l),
            });
        }
    };
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        let chunk = &buf[..n];
        let written = match &term {
            Some(t) => match t.lock() {
                Ok(mut st) => {
                    if st.status_visible {
                        let _ = write_dest(Dest::Stderr, CLEAR);
                        st.status_visible = false;
                    }
                    let r = write_dest(dest, chunk);
                    let mid = chunk.last() != Some(&b'\n');
                    match dest {
                        Dest::Stdout => st.midline_out = mid,
                        Dest::Stderr => st.midline_err = mid,
                    }
                    r
                }
                Err(_) => write_dest(dest, chunk),
            },
            None => write_dest(dest, chunk),
        };
        split.feed(chunk, &mut send);
        if written.is_err() {
            // Our reader went away: close our end so the program sees it too.
            break;
        }
    }
    split.finish(&mut send);
    let _ = done.send(());
}

/// A started program.
pub struct Started {
    pub pid: i32,
    /// The exit status arrives here when the program ends.
    pub exited: Receiver<ExitStatus>,
    /// One message per output pipe when it is drained.
    pub drained: Receiver<()>,
    pub done: Arc<AtomicBool>,
}

/// Start `argv` with stdout/stderr piped through us. `term_out`: also
/// coordinate stdout with the status line (stdout is the same terminal).
pub fn start(
    argv: &[OsString],
    term: Term,
    term_out: bool,
    log: Sender<LogEvent>,
) -> std::io::Result<Started> {
    let Some((prog, args)) = argv.split_first() else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "no command",
        ));
    };
    let mut cmd = Command::new(prog);
    cmd.args(args)
        .stdin(Stdio::inherit())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    unblock_signals_in_child(&mut cmd);
    let mut child: Child = cmd.spawn()?;
    let pid = child.id() as i32;
    let (dtx, drained) = std::sync::mpsc::channel();
    if let Some(out) = child.stdout.take() {
        let (log, dtx) = (log.clone(), dtx.clone());
        let t = term_out.then(|| term.clone());
        thread::spawn(move || pump(out, Dest::Stdout, "stdout", t, log, dtx));
    }
    if let Some(err) = child.stderr.take() {
        let (log, dtx, t) = (log.clone(), dtx.clone(), Some(term.clone()));
        thread::spawn(move || pump(err, Dest::Stderr, "stderr", t, log, dtx));
    }
    let done = Arc::new(AtomicBool::new(false));
    let (etx, exited) = std::sync::mpsc::channel();
    let d = done.clone();
    thread::spawn(move || {
        use std::os::unix::process::ExitStatusExt;
        // wait() fails only if the child was reaped elsewhere: report exit 1.
        let st = child
            .wait()
            .unwrap_or_else(|_| ExitStatus::from_raw(1 << 8));
        d.store(true, Ordering::SeqCst);
        let _ = etx.send(st);
    });
    Ok(Started {
        pid,
        exited,
        drained,
        done,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A /proc with the sender's comm and both cgroups.
    fn proc_tree(sender_comm: &str, own: &str, prog: &str) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let put = |pid: u32, f: &str, text: &str| {
            let dir = d.path().join(pid.to_string());
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(f), text).unwrap();
        };
        put(1, "comm", &format!("{sender_comm}\n"));
        put(4242, "comm", &format!("{sender_comm}\n"));
        put(std::process::id(), "cgroup", own);
        put(777, "cgroup", prog);
        d
    }

    const UNIT: &str = "0::/system.slice/llama.service\n";

    #[test]
    fn a_manager_that_signals_the_whole_unit_is_not_echoed() {
        let cg = |_: &str, _: bool| Some("control-group".to_string());
        let t = proc_tree("systemd", UNIT, UNIT);
        let why = manager_reaches_program(t.path(), 1, 777, cg).unwrap();
        assert!(
            why.contains("llama.service") && why.contains("KillMode=control-group"),
            "{why}"
        );
        // systemd could not be asked: its default, control-group.
        assert!(manager_reaches_program(t.path(), 1, 777, |_, _| None).is_some());
        // A user manager is asked with --user.
        let user = std::cell::Cell::new(false);
        manager_reaches_program(t.path(), 4242, 777, |_, u| {
            user.set(u);
            None
        });
        assert!(user.get());
        let t = proc_tree("slurmstepd", "0::/x\n", "0::/y\n");
        let why = manager_reaches_program(t.path(), 4242, 777, cg).unwrap();
        assert!(why.contains("job step"), "{why}");
    }

    #[test]
    fn anyone_else_or_a_main_only_stop_is_forwarded() {
        let cg = |_: &str, _: bool| Some("control-group".to_string());
        // KillMode=mixed: only the main process (rigdoctor) got SIGTERM.
        let t = proc_tree("systemd", UNIT, UNIT);
        assert_eq!(
            manager_reaches_program(t.path(), 1, 777, |_, _| Some("mixed".into())),
            None
        );
        // The program left the unit's cgroup.
        let t = proc_tree("systemd", UNIT, "0::/system.slice/other.service\n");
        assert_eq!(manager_reaches_program(t.path(), 1, 777, cg), None);
        // A cgroup that is no unit.
        let t = proc_tree("systemd", "0::/init.scope/x\n", "0::/init.scope/x\n");
        assert_eq!(manager_reaches_program(t.path(), 1, 777, cg), None);
        // kill from a shell, a container's init; the kernel; a sender gone.
        for comm in ["bash", "tini", "kill"] {
            let t = proc_tree(comm, UNIT, UNIT);
            assert_eq!(
                manager_reaches_program(t.path(), 1, 777, cg),
                None,
                "{comm}"
            );
        }
        let t = proc_tree("systemd", UNIT, UNIT);
        assert_eq!(manager_reaches_program(t.path(), 0, 777, cg), None);
        assert_eq!(manager_reaches_program(t.path(), 99999, 777, cg), None);
    }

    #[test]
    fn the_unit_of_a_cgroup() {
        assert_eq!(unit_of(UNIT).as_deref(), Some("llama.service"));
        assert_eq!(
            unit_of("0::/user.slice/user-1000.slice/session-3.scope\n").as_deref(),
            Some("session-3.scope")
        );
        assert_eq!(
            unit_of("12:pids:/x\n1:name=systemd:/system.slice/ollama.service\n").as_deref(),
            Some("ollama.service")
        );
        assert_eq!(unit_of("0::/\n"), None);
        assert_eq!(unit_of("garbage"), None);
    }
}
