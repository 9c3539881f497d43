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
//!   rigdoctor's pid by a process (`kill`, systemd, Slurm) are forwarded once:
//!   INT, TERM, HUP, QUIT, USR1, USR2. A signal sent to the whole group
//!   reaches the program directly and through us (twice); that is the one
//!   case we cannot tell apart.
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

/// Forward `r` to the program unless the terminal already delivered it.
pub fn forward(pid: i32, r: Received, done: &AtomicBool) {
    if r.from_terminal || done.load(Ordering::SeqCst) {
        return;
    }
    if let Ok(sig) = Signal::try_from(r.signo) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
    }
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
