//! A long-lived telemetry child (`nvidia-smi ... -lms N`, `xpu-smi dump`):
//! spawned once (argv resolved with `which`, never a shell, stdin closed, in
//! its own process group so the terminal's Ctrl-C does not hit it), its
//! stdout read line by line on a thread into the latest row per GPU. It is
//! killed (the whole group) when the watch ends; if rigdoctor dies first,
//! its next write hits a closed pipe and it ends by SIGPIPE.

use std::collections::HashMap;
use std::io::Read;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Instant;

use super::enginelog::LineSplitter;
use crate::source::command::ToolEnv;

/// One GPU's reading from a streaming tool.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SmiRow {
    /// The tool's device index (`0`, `1`, ...).
    pub index: u32,
    /// PCI address normalised to `0000:01:00.0`, when the tool printed it.
    pub pci: Option<String>,
    /// Busy %, None for `N/A` / `[Not Supported]`.
    pub util: Option<f64>,
    pub mem_bytes: Option<u64>,
    pub power_w: Option<f64>,
}

/// Turns the tool's lines into rows; keeps its own header state.
pub trait LineParser: Send {
    fn line(&mut self, line: &str) -> Option<SmiRow>;
}

#[derive(Debug, Default)]
pub struct State {
    /// Latest row per device index, with when it arrived.
    pub rows: HashMap<u32, (SmiRow, Instant)>,
    /// `starting`, `ok`, `exited`.
    pub status: String,
    /// The tool's first words on stderr when it ended (`NVIDIA-SMI has failed ...`).
    pub detail: String,
}

pub struct Stream {
    pub name: &'static str,
    child: Child,
    state: Arc<Mutex<State>>,
}

/// A probe command (source::command: its own small environment, `/` as its
/// directory) whose child does not inherit the watcher's blocked signals.
fn command(program: &std::path::Path, args: &[String], env: &ToolEnv) -> Command {
    let mut cmd = crate::source::command::base_command(program, args, env);
    super::child::unblock_signals_in_child(&mut cmd);
    cmd
}

impl Stream {
    /// Start `argv`; Err says why not (`missing` when not on PATH).
    pub fn start(
        name: &'static str,
        argv: &[String],
        mut parser: Box<dyn LineParser>,
    ) -> Result<Stream, (String, String)> {
        let Some(program) = argv.first() else {
            return Err(("failed".into(), "empty argv".into()));
        };
        // The telemetry tools need no runtime variables; the GPU they report
        // on is chosen by their own flags.
        let env = ToolEnv::from_process(crate::source::command::no_runtime_vars);
        let resolved = crate::source::command::resolve(program, env.path())
            .ok_or_else(|| ("missing".to_string(), format!("{program} is not on PATH")))?;
        let mut child = command(&resolved, &argv[1..], &env)
            .spawn()
            .map_err(|e| ("failed".to_string(), format!("{program}: {e}")))?;
        let state = Arc::new(Mutex::new(State {
            status: "starting".into(),
            ..State::default()
        }));
        let stderr_text = Arc::new(Mutex::new(String::new()));
        if let Some(mut err) = child.stderr.take() {
            let keep = stderr_text.clone();
            thread::spawn(move || {
                let mut buf = [0u8; 1024];
                let mut kept = Vec::new();
                loop {
                    match err.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if kept.len() < 300 {
                                kept.extend_from_slice(&buf[..n.min(300 - kept.len())]);
                                if let Ok(mut k) = keep.lock() {
                                    *k = String::from_utf8_lossy(&kept).trim().to_string();
                                }
                            }
                        }
                    }
                }
            });
        }
        if let Some(mut out) = child.stdout.take() {
            let st = state.clone();
            thread::spawn(move || {
                let mut split = LineSplitter::new(4096);
                let mut buf = [0u8; 8192];
                loop {
                    match out.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => split.feed(&buf[..n], |l| {
                            if let Some(row) = parser.line(l) {
                                if let Ok(mut s) = st.lock() {
                                    s.status = "ok".into();
                                    s.rows.insert(row.index, (row, Instant::now()));
                                }
                            }
                        }),
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(_) => break,
                    }
                }
                // Give the stderr reader a moment to catch the tool's last words.
                thread::sleep(std::time::Duration::from_millis(50));
                if let Ok(mut s) = st.lock() {
                    s.status = "exited".into();
                    s.detail = stderr_text
                        .lock()
                        .map(|t| t.lines().next().unwrap_or("").to_string())
                        .unwrap_or_default();
                }
            });
        }
        Ok(Stream { name, child, state })
    }

    /// Rows that arrived within `max_age_s`; and the stream's status.
    pub fn fresh(&self, max_age_s: f64) -> (Vec<SmiRow>, String, String) {
        let Ok(s) = self.state.lock() else {
            return (Vec::new(), "failed".into(), "lock poisoned".into());
        };
        let now = Instant::now();
        let mut rows: Vec<SmiRow> = s
            .rows
            .values()
            .filter(|(_, at)| now.duration_since(*at).as_secs_f64() <= max_age_s)
            .map(|(r, _)| r.clone())
            .collect();
        rows.sort_by_key(|r| r.index);
        (rows, s.status.clone(), s.detail.clone())
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        use nix::sys::signal::{Signal, killpg};
        use nix::unistd::Pid;
        let _ = killpg(Pid::from_raw(self.child.id() as i32), Signal::SIGKILL);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Split a CSV line from nvidia-smi / xpu-smi: comma-separated, fields
/// padded with spaces, no quoting in practice (names have no commas).
pub fn fields(line: &str) -> Vec<&str> {
    line.split(',').map(str::trim).collect()
}

/// A number with its unit glued on or apart (`35 %`, `678 MiB`, `281.13`,
/// `14.61 W`); `N/A`, `[N/A]`, `[Not Supported]`, empty -> None.
pub fn number(v: &str) -> Option<f64> {
    let v = v.trim();
    let end = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
        .unwrap_or(v.len());
    let n: f64 = v.get(..end)?.parse().ok()?;
    n.is_finite().then_some(n)
}

/// `00000000:01:00.0` (nvidia-smi) -> `0000:01:00.0` (sysfs), lower case.
pub fn normalize_pci(v: &str) -> Option<String> {
    let v = v.trim().to_ascii_lowercase();
    let (dom, rest) = v.split_once(':')?;
    let dom = u32::from_str_radix(dom, 16).ok()?;
    let addr = format!("{dom:04x}:{rest}");
    crate::probe::pci::is_pci_address(&addr).then_some(addr)
}

/// A header field name without its unit: `memory.used [MiB]` -> `memory.used`,
/// `GPU Utilization (%)` -> `GPU Utilization`.
pub fn field_name(v: &str) -> &str {
    let v = v.trim();
    match v.find(['[', '(']) {
        Some(b) => v[..b].trim(),
        None => v,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_units() {
        assert_eq!(number("35 %"), Some(35.0));
        assert_eq!(number("678 MiB"), Some(678.0));
        assert_eq!(number(" 281.13"), Some(281.13));
        assert_eq!(number("N/A"), None);
        assert_eq!(number("[N/A]"), None);
        assert_eq!(number("[Not Supported]"), None);
        assert_eq!(number(""), None);
    }

    #[test]
    fn pci_and_field_names() {
        assert_eq!(
            normalize_pci("00000000:0F:00.0").as_deref(),
            Some("0000:0f:00.0")
        );
        assert_eq!(normalize_pci("junk"), None);
        assert_eq!(field_name(" memory.used [MiB]"), "memory.used");
        assert_eq!(field_name("utilization.gpu [%]"), "utilization.gpu");
        assert_eq!(field_name("GPU Utilization (%)"), "GPU Utilization");
        assert_eq!(field_name("index"), "index");
        assert_eq!(field_name("DeviceId"), "DeviceId");
    }

    struct Echo;
    impl LineParser for Echo {
        fn line(&mut self, line: &str) -> Option<SmiRow> {
            Some(SmiRow {
                index: line.trim().parse().ok()?,
                ..SmiRow::default()
            })
        }
    }

    #[test]
    fn a_stream_is_read_and_killed() {
        let argv: Vec<String> = [
            "sh",
            "-c",
            "i=0; while :; do echo $i; i=$((i+1)); sleep 0.05; done",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let s = Stream::start("t", &argv, Box::new(Echo)).unwrap();
        let t0 = Instant::now();
        while s.fresh(10.0).0.len() < 3 && t0.elapsed().as_secs() < 10 {
            thread::sleep(std::time::Duration::from_millis(20));
        }
        let (rows, status, _) = s.fresh(10.0);
        assert!(rows.len() >= 3 && status == "ok");
        let pid = s.child.id();
        drop(s);
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    }

    #[test]
    fn a_missing_tool_is_missing() {
        let argv = vec!["rigdoctor-no-such-smi".to_string()];
        let Err((status, _)) = Stream::start("t", &argv, Box::new(Echo)) else {
            panic!()
        };
        assert_eq!(status, "missing");
    }
}
