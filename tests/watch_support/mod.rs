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
                let idle_ms = 1000.0 + ms * (1.0 - busy / 100.0);
                let _ = std::fs::write(&idle, format!("{}\n", idle_ms as u64));
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
