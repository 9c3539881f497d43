//! Issue 8 item 5: garbage is never healthy. Each tool's output in a fixture
//! capture is replaced by garbage (random bytes, printable noise, NULs, one
//! huge line, a cut-off first line, another tool's output) and the capture
//! is checked in-process. Whatever the tool printed, its probe is never `ok`
//! when the output is not one of its layouts, and a healthy rig never keeps
//! verdict `ok`. The captures are not copied: a Source wraps the replay and
//! answers for the one command under test.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly on purpose"
)]

mod common;

use std::collections::BTreeMap;

use common::*;
use rigdoctor::diagnose::rules::{self, Rule};
use rigdoctor::probe::ProbeOptions;
use rigdoctor::source::replay::Replay;
use rigdoctor::source::{
    CmdOutput, CmdSpec, CmdStatus, EnvFilter, Listing, Mode, Producer, Read, Source,
};

/// A replayed capture in which one command printed `stdout` and exited 0.
struct Swap<'a> {
    inner: &'a Replay,
    name: &'a str,
    stdout: &'a [u8],
}

impl Swap<'_> {
    fn output(&self) -> CmdOutput {
        let mut o = CmdOutput::with_status(CmdStatus::Exit(0));
        o.stdout = self.stdout.to_vec();
        // The package list carries its interpreter on stderr.
        if self.name == "python-packages" {
            o.stderr = b"interpreter=/usr/bin/python3\nversion=3.12.3\n".to_vec();
        }
        o
    }
}

impl Source for Swap<'_> {
    fn mode(&self) -> Mode {
        self.inner.mode()
    }
    fn read(&self, path: &str) -> Read {
        self.inner.read(path)
    }
    fn list(&self, path: &str) -> Listing {
        self.inner.list(path)
    }
    fn link(&self, path: &str) -> Option<String> {
        self.inner.link(path)
    }
    fn env_vars(&self, allow: EnvFilter<'_>) -> Vec<(String, String)> {
        self.inner.env_vars(allow)
    }
    fn stat(&self, path: &str) -> rigdoctor::source::devfs::NodeStat {
        self.inner.stat(path)
    }
    fn run(&self, spec: &CmdSpec) -> CmdOutput {
        if spec.name == self.name {
            self.output()
        } else {
            self.inner.run(spec)
        }
    }
    fn computed(&self, name: &str, produce: Producer<'_>) -> CmdOutput {
        if name == self.name {
            self.output()
        } else {
            self.inner.computed(name, produce)
        }
    }
    fn env_problem(&self) -> Option<(&'static str, String)> {
        self.inner.env_problem()
    }
    fn refusals(&self) -> Vec<String> {
        self.inner.refusals()
    }
}

/// xorshift64*: the same garbage on every run and machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| (self.next() >> 56) as u8).collect()
    }
    fn text(&mut self, n: usize) -> Vec<u8> {
        const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;:!?()[]{}<>/\\|-_=+*&^%$#@~`'\"\t\n\n\n";
        (0..n)
            .map(|_| CHARS[(self.next() % CHARS.len() as u64) as usize])
            .collect()
    }
}

/// The kinds of garbage, each named for the failure message.
fn mutations(original: &[u8], others: &[(&str, Vec<u8>)], seed: u64) -> Vec<(String, Vec<u8>)> {
    let mut rng = Rng(seed | 1);
    let mut out = Vec::new();
    for n in [1usize, 17, 300, 4096] {
        let mut b = rng.bytes(n);
        // Whitespace alone is an empty answer, not garbage.
        b.push(b'#');
        b.push(0xff);
        out.push((format!("random {n} bytes"), b));
    }
    for n in [40usize, 2000] {
        let mut t = rng.text(n);
        t.push(b'z');
        out.push((format!("random text {n} bytes"), t));
    }
    out.push(("NULs".into(), vec![0u8; 512]));
    out.push(("one huge line".into(), vec![b'x'; 200_000]));
    out.push((
        "invalid UTF-8".into(),
        [
            0xc3u8, 0x28, 0xa0, 0xa1, 0xe2, 0x28, 0xa1, 0xf0, 0x90, 0x28, 0xbc,
        ]
        .repeat(40),
    ));
    // The first line cut in half: a paste or a pipe that died at once.
    let text = String::from_utf8_lossy(original);
    if let Some(first) = text
        .lines()
        .map(str::trim_end)
        .find(|l| l.trim().len() >= 8)
    {
        let cut: String = first.chars().take(first.chars().count() / 2).collect();
        out.push(("first line cut in half".into(), cut.into_bytes()));
    }
    for (name, other) in others {
        out.push((format!("the output of {name}"), other.clone()));
    }
    out
}

fn read_cmd(rig: &str, name: &str) -> Option<Vec<u8>> {
    let dir = rigs_dir().join(rig).join("cmd");
    let status = std::fs::read_to_string(dir.join(format!("{name}.status"))).ok()?;
    (status.trim() == "0").then(|| std::fs::read(dir.join(format!("{name}.out"))).ok())?
}

fn rules() -> &'static [Rule] {
    static RULES: std::sync::OnceLock<Vec<Rule>> = std::sync::OnceLock::new();
    RULES.get_or_init(|| rules::load(None).unwrap())
}

fn check(src: &dyn Source) -> serde_json::Value {
    serde_json::to_value(rigdoctor::check(src, &ProbeOptions::default(), rules())).unwrap()
}

fn status_of(report: &serde_json::Value, probe: &str) -> String {
    // `amd-smi static` is the command behind the amd-smi probe's report.
    let probe = if probe == "amd-smi-static" {
        "amd-smi"
    } else {
        probe
    };
    report["probes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == probe)
        .map(|p| p["status"].as_str().unwrap().to_string())
        .unwrap_or_else(|| "absent".into())
}

/// Outputs of other tools to feed as "wrong tool's output".
fn other_outputs(tool: &str) -> Vec<(&'static str, Vec<u8>)> {
    const SOURCES: &[(&str, &str)] = &[
        ("nv-2x3090-nvlink", "nvidia-smi"),
        ("nv-2x3090-nvlink", "nvidia-smi-q"),
        ("nv-2x3090-nvlink", "nvidia-smi-topo-m"),
        ("nv-2x3090-nvlink", "nvidia-smi-topo-p2p"),
        ("nv-2x3090-nvlink", "nvidia-smi-nvlink"),
        ("amd-7900xtx", "rocminfo"),
        ("amd-7900xtx", "rocm-smi"),
        ("dual-a770", "sycl-ls"),
        ("dual-a770", "python-packages"),
        ("b580-xpu-smi-ok", "xpu-smi-discovery"),
        ("b580-named", "clinfo"),
        ("a770-b580-new-runtime", "sycl-ls-verbose"),
    ];
    // A tool and its own variants read each other's layouts on purpose
    // (sycl-ls --verbose starts with the concise list).
    let family = |n: &str| n.split('-').next().unwrap_or(n).to_string();
    SOURCES
        .iter()
        .filter(|(_, n)| family(n) != family(tool))
        .map(|(rig, n)| (*n, read_cmd(rig, n).unwrap_or_else(|| panic!("{rig}: {n}"))))
        .collect()
}

/// Run every mutation of `tool`'s output in `rig`; return the failures.
fn garbage_cases(rig: &str, tool: &str, healthy: bool, seed: u64) -> (usize, Vec<String>) {
    let original = read_cmd(rig, tool).unwrap_or_else(|| panic!("{rig} has no {tool} output"));
    let replay = Replay::open(&rigs_dir().join(rig)).unwrap();
    let base = check(&replay);
    assert_eq!(
        status_of(&base, tool),
        "ok",
        "{rig}: {tool} must read as-is"
    );
    if healthy {
        assert_eq!(base["verdict"], "ok", "{rig} is not healthy any more");
    }
    let mut failures = Vec::new();
    let cases = mutations(&original, &other_outputs(tool), seed);
    for (what, bytes) in &cases {
        let src = Swap {
            inner: &replay,
            name: tool,
            stdout: bytes,
        };
        let r = check(&src);
        let status = status_of(&r, tool);
        assert!(
            r["rule_errors"].as_array().unwrap().is_empty(),
            "{rig} {tool} {what}: {}",
            r["rule_errors"]
        );
        // A half line may still read as a (short) answer; then the rig
        // must not be called healthy.
        let strict = what != "first line cut in half";
        if strict && status == "ok" {
            failures.push(format!("{rig}: {tool} fed {what}: probe ok"));
        }
        if healthy && r["verdict"] == "ok" {
            failures.push(format!(
                "{rig}: {tool} fed {what}: verdict ok (probe {status})"
            ));
        }
    }
    (cases.len(), failures)
}

fn run_all(pairs: &[(&str, &str, bool)]) -> usize {
    let mut total = 0;
    let mut failures = Vec::new();
    for (i, (rig, tool, healthy)) in pairs.iter().enumerate() {
        let (n, f) = garbage_cases(rig, tool, *healthy, 0x9e37_79b9 + i as u64);
        total += n;
        failures.extend(f);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    total
}

#[test]
fn nvidia_outputs_replaced_by_garbage_are_never_ok() {
    let mut pairs = Vec::new();
    for rig in ["nv-2x3090-nvlink", "nv-2xh100nvl"] {
        for tool in [
            "nvidia-smi",
            "nvidia-smi-q",
            "nvidia-smi-topo-m",
            "nvidia-smi-topo-p2p",
            "nvidia-smi-nvlink",
        ] {
            pairs.push((rig, tool, true));
        }
    }
    assert!(run_all(&pairs) >= 150);
}

#[test]
fn amd_intel_and_python_outputs_replaced_by_garbage_are_never_ok() {
    let pairs = [
        ("amd-7900xtx", "rocminfo", true),
        ("amd-7900xtx", "rocm-smi", true),
        ("amd-igpu-hidden", "rocm-smi", true),
        ("amd-7900xtx", "python-packages", true),
        ("dual-a770", "sycl-ls", true),
        ("dual-a770", "python-packages", true),
        ("a770-b580-new-runtime", "sycl-ls-verbose", true),
        ("b580-xpu-smi-ok", "xpu-smi-discovery", false),
        ("b580-named", "clinfo", false),
        ("deep-ok", "python-deep", true),
    ];
    assert!(run_all(&pairs) >= 140);
}

#[test]
fn amd_smi_outputs_replaced_by_garbage_are_never_ok() {
    let pairs = [
        ("amd-2xrx6600-tp-p2p-off", "amd-smi-static", true),
        ("amd-2xrx6600-tp-p2p-off", "amd-smi-topology", true),
        ("amd-8xmi308x-xgmi", "rocm-smi-showtopo", true),
    ];
    assert!(run_all(&pairs) >= 40);
}

#[test]
fn an_unreadable_env_file_is_not_no_variables() {
    let rig = rigs_dir().join("dual-a770");
    let original = std::fs::read(rig.join("env")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("rig");
    let ok = std::process::Command::new("cp")
        .args(["-a", rig.to_str().unwrap(), copy.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(ok.success());
    let others = other_outputs("env");
    let mut failures = Vec::new();
    let mut n = 0;
    for (what, bytes) in mutations(&original, &others[..3], 7) {
        // Half of `PATH=/usr/bin:...` is still a variable.
        if what == "first line cut in half" {
            continue;
        }
        n += 1;
        std::fs::write(copy.join("env"), &bytes).unwrap();
        let r = check(&Replay::open(&copy).unwrap());
        let status = status_of(&r, "env");
        if status == "ok" || r["verdict"] == "ok" {
            failures.push(format!(
                "env fed {what}: probe {status}, verdict {}",
                r["verdict"]
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(n >= 10);
    // The intact file still reads, and a few bad lines do not lose the good ones.
    let mut damaged = original.clone();
    damaged.extend_from_slice(b"\x00\x01 not a variable\n");
    std::fs::write(copy.join("env"), &damaged).unwrap();
    let r = check(&Replay::open(&copy).unwrap());
    assert_eq!(status_of(&r, "env"), "unparsed");
    assert!(
        r["facts"]["env"]["PATH"].is_string(),
        "{}",
        r["facts"]["env"]
    );
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for d in r["diagnoses"].as_array().unwrap() {
        *counts.entry(d["id"].as_str().unwrap()).or_default() += 1;
    }
    assert_eq!(counts.get("PROBE-UNPARSED"), Some(&1), "{counts:?}");
}

#[test]
fn an_empty_answer_is_still_an_answer() {
    // Without NVLink, `nvidia-smi nvlink -s` prints nothing; with no package
    // installed the list is empty. Neither is garbage.
    let replay = Replay::open(&rigs_dir().join("nv-2x3090-nvlink")).unwrap();
    for tool in ["nvidia-smi-nvlink", "python-packages"] {
        let src = Swap {
            inner: &replay,
            name: tool,
            stdout: b"",
        };
        assert_eq!(status_of(&check(&src), tool), "ok", "{tool}");
    }
}

#[test]
fn live_nvidia_smi_without_a_table_is_not_healthy() {
    // Issue 8: on a node with NVIDIA GPUs on the bus, an nvidia-smi that
    // exits 0 and prints no table gave verdict ok and exit 0 even with
    // --fail-on info. Here it is a script in front of PATH.
    let dir = tempfile::tempdir().unwrap();
    let tools = dir.path().join("bin");
    fake_tools(&tools, &[("nvidia-smi", "echo; exit 0")]);
    let root = rigs_dir().join("nv-2x3090-nvlink/root");
    let path = format!("{}:/usr/bin:/bin", tools.display());
    let r = run_with(
        &[
            "--sysfs",
            root.join("sys").to_str().unwrap(),
            "--procfs",
            root.join("proc").to_str().unwrap(),
            "check",
            "--format",
            "json",
            "--fail-on",
            "warn",
        ],
        |c| {
            c.env("PATH", &path);
        },
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_ne!(v["verdict"], "ok");
    assert_eq!(status_of(&v, "nvidia-smi"), "unparsed");
    let d = v["diagnoses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == "PROBE-UNPARSED")
        .expect("PROBE-UNPARSED");
    assert!(
        d["evidence"].as_str().unwrap().contains("0000:41:00.0"),
        "{}",
        d["evidence"]
    );
}
