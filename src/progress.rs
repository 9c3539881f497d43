//! The progress line: on a terminal, a probe command still running after a
//! second is named on stderr (`importing torch (up to 60 s)…`), and the line
//! is erased when it ends, so the page is never a blank screen for the 13 s a
//! torch import can take. Nothing of it when stderr is not a terminal: a
//! pipe, a log or a health hook sees only the page.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long a command runs before the line names it.
pub const AFTER: Duration = Duration::from_secs(1);

struct Busy {
    id: u64,
    what: String,
    started: Instant,
    timeout: Duration,
}

static RUNNING: Mutex<Vec<Busy>> = Mutex::new(Vec::new());
static NEXT: AtomicU64 = AtomicU64::new(0);

/// A command being run; it leaves the list when dropped.
pub struct Running(u64);

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(mut v) = RUNNING.lock() {
            v.retain(|b| b.id != self.0);
        }
    }
}

/// What a person reads for the probe command `name` (`argv0` when it has
/// no words of its own).
fn words(name: &str, argv0: &str) -> String {
    match name {
        "python-deep" => "importing torch".to_string(),
        "python-sys-path" => format!("asking {argv0} for its packages"),
        _ => format!("running {argv0}"),
    }
}

/// Note that the probe command `name` (`argv0 ...`) runs, for at most `timeout`.
pub fn start(name: &str, argv0: &str, timeout: Duration) -> Running {
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    if let Ok(mut v) = RUNNING.lock() {
        v.push(Busy {
            id,
            what: words(name, crate::text::basename(argv0)),
            started: Instant::now(),
            timeout,
        });
    }
    Running(id)
}

/// The line for what runs at `now`: the longest-running command past
/// [`AFTER`], or None.
fn line(now: Instant) -> Option<String> {
    line_of(&RUNNING.lock().ok()?, now)
}

fn line_of(v: &[Busy], now: Instant) -> Option<String> {
    let b = v
        .iter()
        .filter(|b| now.duration_since(b.started) >= AFTER)
        .min_by_key(|b| b.started)?;
    let more = v.len() - 1;
    let also = if more > 0 {
        format!(" (+{more} more)")
    } else {
        String::new()
    };
    Some(format!(
        "{} (up to {} s)…{also}",
        crate::text::escape_controls(&b.what),
        b.timeout.as_secs().max(1)
    ))
}

/// The reporter thread; [`Reporter::finish`] stops it and erases its line.
pub struct Reporter {
    stop: std::sync::Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Start the line on stderr when `on` (stderr is a terminal and the page is
/// for a person); otherwise a reporter that does nothing.
pub fn report(on: bool, width: usize) -> Reporter {
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let thread = on.then(|| {
        let stop = stop.clone();
        std::thread::spawn(move || {
            use std::io::Write;
            let mut shown = false;
            while !stop.load(Ordering::Relaxed) {
                let mut err = std::io::stderr().lock();
                match line(Instant::now()) {
                    Some(l) => {
                        let l: String = l.chars().take(width.saturating_sub(1).max(20)).collect();
                        let _ = write!(err, "\r\x1b[K{l}");
                        shown = true;
                    }
                    None if shown => {
                        let _ = write!(err, "\r\x1b[K");
                        shown = false;
                    }
                    None => {}
                }
                let _ = err.flush();
                drop(err);
                std::thread::sleep(Duration::from_millis(200));
            }
            if shown {
                let _ = write!(std::io::stderr(), "\r\x1b[K");
            }
        })
    });
    Reporter { stop, thread }
}

impl Reporter {
    pub fn finish(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_names_the_command_running_past_a_second() {
        let t0 = Instant::now();
        let busy = |what: &str, id| Busy {
            id,
            what: what.to_string(),
            started: t0,
            timeout: Duration::from_secs(60),
        };
        let mut v = vec![busy("importing torch", 1)];
        assert_eq!(line_of(&v, t0), None, "not before a second");
        let later = t0 + AFTER;
        assert_eq!(
            line_of(&v, later).as_deref(),
            Some("importing torch (up to 60 s)…")
        );
        v.push(busy("running sycl-ls", 2));
        assert!(line_of(&v, later).unwrap().ends_with("… (+1 more)"));
        assert_eq!(line_of(&[], later), None);
        assert_eq!(words("sycl-ls", "sycl-ls"), "running sycl-ls");
        assert_eq!(
            words("python-sys-path", "python3"),
            "asking python3 for its packages"
        );
        // Registered while it runs, gone when dropped.
        let r = start("x-probe-test", "/bin/x-probe-test", Duration::from_secs(1));
        assert!(
            RUNNING
                .lock()
                .unwrap()
                .iter()
                .any(|b| b.what == "running x-probe-test")
        );
        drop(r);
        assert!(
            !RUNNING
                .lock()
                .unwrap()
                .iter()
                .any(|b| b.what == "running x-probe-test")
        );
    }
}
