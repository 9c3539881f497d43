//! Shared by the `watch` integration tests: a fake sysfs GPU tree whose
//! counters a thread advances, a fake `nvidia-smi` that prints real CSV lines
//! from the corpus, a thresholds file, and a runner for the real binary.
#![allow(dead_code, reason = "each test file uses a part")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers: a failed setup must fail the test loudly"
)]

use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_rigdoctor");

pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(rel)
}

/// A GPU in the fake tree.
pub struct FakeGpu {
    pub dev: PathBuf,
}

/// A fake `/sys` laid out like the kernel's: class/drm/cardN links into
/// devices/, `device` and `device/driver` are links.
pub struct FakeSys {
    pub root: PathBuf,
    stop: Arc<AtomicBool>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl FakeSys {
    pub fn new(dir: &Path) -> FakeSys {
        let root = dir.join("sys");
        std::fs::create_dir_all(root.join("class/drm")).unwrap();
        FakeSys {
            root,
            stop: Arc::new(AtomicBool::new(false)),
            threads: Vec::new(),
        }
    }

    fn card(&self, card: &str, addr: &str, driver: &str, vendor: &str) -> FakeGpu {
        let dev = self.root.join(format!("devices/pci0000:00/{addr}"));
        std::fs::create_dir_all(dev.join("drm").join(card)).unwrap();
        std::fs::create_dir_all(self.root.join(format!("bus/pci/drivers/{driver}"))).unwrap();
        symlink(
            format!("../../../bus/pci/drivers/{driver}"),
            dev.join("driver"),
        )
        .unwrap();
        symlink(
            format!("../../../{addr}"),
            dev.join("drm").join(card).join("device"),
        )
        .unwrap();
        symlink(
            format!("../../devices/pci0000:00/{addr}/drm/{card}"),
            self.root.join("class/drm").join(card),
        )
        .unwrap();
        std::fs::write(dev.join("vendor"), format!("{vendor}\n")).unwrap();
        FakeGpu { dev }
    }

    /// An amdgpu card with a fixed `gpu_busy_percent` and VRAM in use.
    pub fn amdgpu(&self, card: &str, addr: &str, busy: u32, vram_gib: u64) -> FakeGpu {
        let g = self.card(card, addr, "amdgpu", "0x1002");
        std::fs::write(g.dev.join("gpu_busy_percent"), format!("{busy}\n")).unwrap();
        std::fs::write(
            g.dev.join("mem_info_vram_used"),
            format!("{}\n", vram_gib << 30),
        )
        .unwrap();
        g
    }

    pub fn set_amd_busy(g: &FakeGpu, busy: u32) {
        std::fs::write(g.dev.join("gpu_busy_percent"), format!("{busy}\n")).unwrap();
    }

    /// An xe card whose gtidle idle residency a thread advances as if the
    /// GPU were `busy` % busy, and whose hwmon energy counter advances at 50 W.
    ///
    /// Only `busy = 100` is exact: the residency then never moves, so every
    /// sample reads 100 % busy however late the thread runs. Below 100 the
    /// reading depends on the thread keeping up (a thread the loaded machine
    /// holds back for 60 ms makes a 0.2 s sample of an idle card read 30 %
    /// busy), so a test that needs an idle GPU uses amdgpu's
    /// `gpu_busy_percent` (a plain value) instead (issue 8 item 10).
    pub fn xe(&mut self, card: &str, addr: &str, busy: f64) -> FakeGpu {
        let g = self.card(card, addr, "xe", "0x8086");
        let idle = g.dev.join("tile0/gt0/gtidle/idle_residency_ms");
        std::fs::create_dir_all(idle.parent().unwrap()).unwrap();
        std::fs::write(&idle, "1000\n").unwrap();
        let energy = g.dev.join("hwmon/hwmon2/energy1_input");
        std::fs::create_dir_all(energy.parent().unwrap()).unwrap();
        std::fs::write(&energy, "0\n").unwrap();
        let stop = self.stop.clone();
        self.threads.push(thread::spawn(move || {
            let t0 = Instant::now();
            while !stop.load(Ordering::SeqCst) {
                let ms = t0.elapsed().as_secs_f64() * 1000.0;
                if busy < 100.0 {
                    let idle_ms = 1000.0 + ms * (1.0 - busy / 100.0);
                    let _ = std::fs::write(&idle, format!("{}\n", idle_ms as u64));
                }
                let _ = std::fs::write(&energy, format!("{}\n", (ms * 50_000.0) as u64));
                thread::sleep(Duration::from_millis(20));
            }
        }));
        g
    }
}

impl Drop for FakeSys {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// A directory holding a fake `nvidia-smi` that prints, every 0.2 s, the
/// real CSV lines (header and rows) of a corpus file, whatever it is asked.
pub fn fake_nvidia_smi(dir: &Path, corpus: &str) -> PathBuf {
    let text =
        std::fs::read_to_string(fixture(&format!("outputs/nvidia-smi-query/{corpus}"))).unwrap();
    let lines: Vec<String> = text
        .lines()
        .skip(3)
        .filter(|l| !l.trim().is_empty())
        .map(|l| format!("'{}'", l.replace('\'', "'\\''")))
        .collect();
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let script = format!(
        "#!/bin/sh\n# fake nvidia-smi: real lines from fixtures/outputs/nvidia-smi-query/{corpus}\nwhile :; do\n  printf '%s\\n' {}\n  sleep 0.2\ndone\n",
        lines.join(" ")
    );
    let p = bin.join("nvidia-smi");
    std::fs::write(&p, script).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

/// Thresholds for a loaded 2-core test machine: other builds share the
/// CPU, so a burner may get well under the default 1.7 cores. The
/// classification logic is the same; unit tests cover the default scaling.
pub fn test_thresholds(dir: &Path) -> PathBuf {
    let p = dir.join("thresholds.toml");
    std::fs::write(
        &p,
        "# tests run next to other builds on 2 cores\nfallback_cores = 0.4\nbusy_cores = 0.25\ndispatch_max_cores = 0.3\nfault_seconds = 0.8\n",
    )
    .unwrap();
    p
}

/// PATH with `extra` first.
pub fn path_with(extra: Option<&Path>) -> String {
    let base = std::env::var("PATH").unwrap_or_default();
    match extra {
        Some(p) => format!("{}:{base}", p.display()),
        None => base,
    }
}

/// A CPU burner that ends by itself: `n` busy loops for `secs` seconds.
pub fn burner(n: usize, secs: u32) -> Vec<String> {
    let one = format!("timeout {secs} sh -c 'while :; do :; done'");
    let all = vec![one; n].join(" & ");
    vec!["sh".into(), "-c".into(), format!("{all}; wait")]
}

pub fn run(args: &[&str], path: &str) -> Output {
    Command::new(BIN)
        .args(args)
        .env("PATH", path)
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// The JSON Lines of a `--format json` output.
pub fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

pub fn of_type<'a>(lines: &'a [Value], t: &str) -> Vec<&'a Value> {
    lines.iter().filter(|v| v["type"] == t).collect()
}

pub fn verdicts(lines: &[Value]) -> Vec<String> {
    of_type(lines, "verdict")
        .iter()
        .map(|v| v["verdict"].as_str().unwrap().to_string())
        .collect()
}

pub fn summary(lines: &[Value]) -> Value {
    of_type(lines, "summary")
        .last()
        .map(|v| (*v).clone())
        .expect("a summary line")
}

pub fn diagnosis_ids(summary: &Value) -> Vec<String> {
    summary["diagnoses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_string())
        .collect()
}

/// Seconds spent in `verdict` according to the summary facts.
pub fn seconds_in(summary: &Value, verdict: &str) -> f64 {
    summary["facts"]["watch"]["verdicts"][verdict]
        .as_f64()
        .unwrap()
}

/// A fake `/proc` (for `--procfs`) holding one process, `pid`, whose CPU
/// counter (`utime` in `/proc/PID/stat`) a thread advances as if it kept
/// `cores` cores busy: the watch tests decide how busy the watched program
/// is, instead of hoping a real busy loop gets its share of a loaded machine
/// (issue 8 item 10). The thread rewrites the file every 20 ms by rename, so
/// a reader never sees it half written; however late the thread runs, the
/// counter only grows, and a window sees `cores` on average over the time it
/// spans. The process never ends by itself: run the watch with `--duration`.
pub struct FakeProc {
    pub root: PathBuf,
    pub pid: u32,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

fn fake_stat(pid: u32, ticks: u64) -> String {
    // Fields 1-24 of proc(5): pid (comm) state ppid pgrp session tty tpgid
    // flags minflt cminflt majflt cmajflt utime stime cutime cstime priority
    // nice num_threads itrealvalue starttime vsize rss, then the rest.
    format!(
        "{pid} (fake-engine) R 1 {pid} {pid} 0 -1 4194304 100 0 0 0 {ticks} 0 0 0 20 0 8 0 4242 1000000000 25600 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"
    )
}

impl FakeProc {
    pub fn new(dir: &Path, pid: u32, cores: f64) -> FakeProc {
        FakeProc::reading(dir, pid, cores, 0.0)
    }

    /// Also reading at `mib_s` MiB/s (`rchar` in `/proc/PID/io`).
    pub fn reading(dir: &Path, pid: u32, cores: f64, mib_s: f64) -> FakeProc {
        let root = dir.join("proc");
        let p = root.join(pid.to_string());
        std::fs::create_dir_all(p.join(format!("task/{pid}"))).unwrap();
        std::fs::create_dir_all(p.join("fd")).unwrap();
        std::fs::create_dir_all(p.join("fdinfo")).unwrap();
        std::fs::write(p.join(format!("task/{pid}/children")), "").unwrap();
        let io = p.join("io");
        let io_text = |rchar: u64| format!("rchar: {rchar}\nwchar: 0\nread_bytes: 0\n");
        std::fs::write(&io, io_text(0)).unwrap();
        let stat = p.join("stat");
        std::fs::write(&stat, fake_stat(pid, 0)).unwrap();
        let clk = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .ok()
            .flatten()
            .unwrap_or(100) as f64;
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            thread::spawn(move || {
                let t0 = Instant::now();
                let tmp = stat.with_extension("tmp");
                while !stop.load(Ordering::SeqCst) {
                    let secs = t0.elapsed().as_secs_f64();
                    let ticks = (secs * cores * clk) as u64;
                    std::fs::write(&tmp, fake_stat(pid, ticks)).unwrap();
                    std::fs::rename(&tmp, &stat).unwrap();
                    std::fs::write(&tmp, io_text((secs * mib_s * 1048576.0) as u64)).unwrap();
                    std::fs::rename(&tmp, &io).unwrap();
                    thread::sleep(Duration::from_millis(20));
                }
            })
        };
        FakeProc {
            root,
            pid,
            stop,
            thread: Some(thread),
        }
    }

    /// The process's directory (`fd/`, `fdinfo/` are there, empty).
    pub fn dir(&self) -> PathBuf {
        self.root.join(self.pid.to_string())
    }
}

impl Drop for FakeProc {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `rigdoctor watch --pid` on a [`FakeProc`], with `--duration secs`.
pub fn watch_fake_pid(
    sys: &FakeSys,
    proc: &FakeProc,
    thresholds: &Path,
    out: &Path,
    extra: &[&str],
    secs: &str,
    path: &str,
) -> (i32, Vec<Value>) {
    let pid = proc.pid.to_string();
    let mut args: Vec<&str> = vec![
        "--sysfs",
        sys.root.to_str().unwrap(),
        "--procfs",
        proc.root.to_str().unwrap(),
        "watch",
        "--pid",
        &pid,
        "--interval",
        "0.2",
        "--window",
        "1",
        "--duration",
        secs,
        "--format",
        "json",
        "--thresholds",
        thresholds.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let o = run(&args, path);
    let text = std::fs::read_to_string(out)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stderr)));
    (o.status.code().unwrap_or(-1), json_lines(&text))
}
