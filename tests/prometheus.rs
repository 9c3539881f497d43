//! `--format prometheus` and `--textfile`, checked by the real consumers:
//! Debian's `prometheus-node-exporter` (its textfile collector, scraped over
//! HTTP) and `promtool check metrics`. `.ci/run` installs both and sets
//! RIGDOCTOR_CI=1, which turns a missing tool into a failure; elsewhere the
//! tests say they are skipped and why.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly on purpose"
)]

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Rigs with different verdicts, vendors and blind probes, and what must show.
const RIGS: &[(&str, &str, &str)] = &[
    // (rig, verdict, a diagnosis id that must have a series)
    ("b580-x4-degraded", "warn", "PCI-LINK-DEGRADED"),
    ("nv-smi-timeout", "error", "NV-SMI-HANG"),
    ("a770-rebar-off", "warn", "PCI-REBAR-OFF"),
    ("amd-6700xt-no-override", "error", "AMD-GFX-OVERRIDE-NEEDED"),
    ("dual-a770", "ok", ""),
    ("no-gpu", "error", "GPU-NONE"),
];

fn tool(name: &str) -> Option<std::path::PathBuf> {
    match which(name) {
        Some(p) => Some(p),
        None if std::env::var_os("RIGDOCTOR_CI").is_some() => {
            panic!("{name} is not installed; .ci/run installs it (apt-get install {name})")
        }
        None => {
            eprintln!("SKIPPED: {name} is not installed (Debian: apt-get install {name})");
            None
        }
    }
}

fn which(name: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

fn metrics_of(rig: &str) -> String {
    let d = rigs_dir().join(rig);
    let r = run(&[
        "check",
        "--replay",
        d.to_str().unwrap(),
        "--format",
        "prometheus",
    ]);
    assert!(r.code == 0 || r.code == 1, "{rig}: {}", r.stderr);
    r.stdout
}

/// The value of the one sample whose line starts with `series` (name and labels).
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn output_passes_promtool_for_several_rigs() {
    let Some(promtool) = tool("promtool") else {
        return;
    };
    for (rig, _, _) in RIGS {
        let text = metrics_of(rig);
        let mut c = Command::new(&promtool)
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        c.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
        let o = c.wait_with_output().unwrap();
        assert!(
            o.status.success() && o.stdout.is_empty() && o.stderr.is_empty(),
            "{rig}: promtool says:\n{}{}\n---\n{text}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

#[test]
fn exposition_has_help_type_and_no_timestamps() {
    for (rig, verdict, id) in RIGS {
        let text = metrics_of(rig);
        let mut families = Vec::new();
        for l in text.lines() {
            if let Some(rest) = l.strip_prefix("# TYPE ") {
                let name = rest.split(' ').next().unwrap();
                assert!(!families.contains(&name.to_string()), "{rig}: {name} twice");
                families.push(name.to_string());
                continue;
            }
            if l.starts_with('#') {
                continue;
            }
            // name{labels} value, and nothing after the value (a timestamp).
            let after_labels = l.rsplit_once('}').map(|(_, v)| v).unwrap_or(l);
            let fields: Vec<&str> = after_labels.split_whitespace().collect();
            let n = if l.contains('}') { 1 } else { 2 };
            assert_eq!(fields.len(), n, "{rig}: a timestamp or junk in {l:?}");
            let name = l.split(['{', ' ']).next().unwrap();
            assert!(
                families.iter().any(|f| f == name),
                "{rig}: {name} has no # TYPE before it"
            );
            assert!(
                text.contains(&format!("# HELP {name} ")),
                "{rig}: {name} without HELP"
            );
        }
        assert_eq!(
            value(
                &text,
                &format!("rigdoctor_verdict{{verdict=\"{verdict}\"}}")
            ),
            Some(1.0),
            "{rig}"
        );
        if !id.is_empty() {
            assert!(
                text.contains(&format!("rigdoctor_diagnosis{{id=\"{id}\"")),
                "{rig}: no series for {id}\n{text}"
            );
        }
        assert_eq!(value(&text, "rigdoctor_rule_errors"), Some(0.0), "{rig}");
    }
}

#[test]
fn one_gpu_diagnoses_carry_the_gpu_and_counts_add_up() {
    let text = metrics_of("b580-x4-degraded");
    assert!(text.contains(
        "rigdoctor_diagnosis{id=\"PCI-LINK-DEGRADED\",severity=\"warn\",class=\"hardware\",area=\"gpus\",gpu=\"0000:03:00.0\"} 1"
    ), "{text}");
    assert_eq!(
        value(
            &text,
            "rigdoctor_diagnoses{severity=\"warn\",class=\"hardware\"}"
        ),
        Some(1.0)
    );
    // The B580's link is judged at its card's upstream port, x4 of x8 at 16 GT/s.
    assert_eq!(
        value(&text, "rigdoctor_gpu_pcie_link_width{gpu=\"0000:03:00.0\"}"),
        Some(4.0)
    );
    assert_eq!(
        value(
            &text,
            "rigdoctor_gpu_pcie_link_max_width{gpu=\"0000:03:00.0\"}"
        ),
        Some(8.0)
    );
    assert_eq!(
        value(
            &text,
            "rigdoctor_gpu_pcie_link_speed_transfers_per_second{gpu=\"0000:03:00.0\"}"
        ),
        Some(16e9)
    );
    // A hung nvidia-smi shows as a blind probe, not as health.
    let text = metrics_of("nv-smi-timeout");
    assert_eq!(
        value(
            &text,
            "rigdoctor_probe_status{probe=\"nvidia-smi\",status=\"timeout\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            "rigdoctor_probe_status{probe=\"nvidia-smi\",status=\"ok\"}"
        ),
        Some(0.0)
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// GET /metrics with a plain HTTP/1.0 request (no client library needed).
fn scrape(port: u16) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    let (head, body) = body.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.0 200")
        .then(|| body.to_string())
        .or_else(|| head.starts_with("HTTP/1.1 200").then(|| body.to_string()))
}

struct Exporter {
    child: Child,
    port: u16,
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The real node_exporter with only the textfile collector, on a free port.
fn start_exporter(bin: &Path, dir: &Path) -> Exporter {
    for _attempt in 0..5 {
        let port = free_port();
        let child = Command::new(bin)
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--collector.disable-defaults")
            .arg("--collector.textfile")
            .arg(format!("--collector.textfile.directory={}", dir.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut ex = Exporter { child, port };
        // Readiness, not a timing assertion: a loaded machine just waits longer.
        let until = Instant::now() + Duration::from_secs(60);
        while Instant::now() < until {
            if let Ok(Some(_)) = ex.child.try_wait() {
                break; // the port was taken after all: try another
            }
            if scrape(port).is_some() {
                return ex;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = ex.child.kill();
    }
    panic!("prometheus-node-exporter did not come up");
}

#[test]
fn node_exporter_reads_the_textfile_of_several_rigs() {
    let Some(bin) = tool("prometheus-node-exporter") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ex = start_exporter(&bin, dir.path());
    for (rig, verdict, id) in RIGS {
        let d = rigs_dir().join(rig);
        let r = run(&[
            "check",
            "--replay",
            d.to_str().unwrap(),
            "--quiet",
            "--textfile",
            dir.path().to_str().unwrap(),
        ]);
        assert!(r.code == 0 || r.code == 1, "{rig}: {}", r.stderr);
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(
            names,
            vec!["rigdoctor.prom".to_string()],
            "no temp file left"
        );
        let body = scrape(ex.port).expect("scrape /metrics");
        assert_eq!(
            value(&body, "node_textfile_scrape_error"),
            Some(0.0),
            "{rig}: node_exporter refused the file:\n{body}"
        );
        for family in [
            "rigdoctor_build_info",
            "rigdoctor_last_run_timestamp_seconds",
            "rigdoctor_verdict",
            "rigdoctor_diagnoses",
            "rigdoctor_probe_status",
            "rigdoctor_probe_duration_seconds",
        ] {
            assert!(
                body.contains(&format!("# TYPE {family} gauge")),
                "{rig}: {family}"
            );
        }
        assert!(
            body.contains(&format!(
                "rigdoctor_build_info{{version=\"{}\"}} 1",
                env!("CARGO_PKG_VERSION")
            )),
            "{rig}"
        );
        assert_eq!(
            value(
                &body,
                &format!("rigdoctor_verdict{{verdict=\"{verdict}\"}}")
            ),
            Some(1.0),
            "{rig}"
        );
        if !id.is_empty() {
            assert!(
                body.lines().any(|l| l.starts_with("rigdoctor_diagnosis{")
                    && l.contains(&format!("id=\"{id}\""))),
                "{rig}: {id} missing from the scrape"
            );
        }
        if *rig != "no-gpu" {
            assert!(body.contains("rigdoctor_gpu_info{"), "{rig}: no GPU info");
        }
    }
}

/// contrib/systemd: the units pass `systemd-analyze verify`, and the
/// service's command line, pointed at a fixture and a temporary directory,
/// writes a textfile that node_exporter would read.
#[test]
fn the_systemd_units_verify_and_their_command_works() {
    let unit_dir = root().join("contrib/systemd");
    let service = std::fs::read_to_string(unit_dir.join("rigdoctor-textfile.service")).unwrap();
    let exec = service
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart");
    let argv: Vec<&str> = exec.split_whitespace().collect();
    assert_eq!(argv[0], "/usr/local/bin/rigdoctor");
    let textdir = argv
        .iter()
        .position(|a| *a == "--textfile")
        .map(|i| argv[i + 1])
        .expect("--textfile DIR");
    assert_eq!(
        textdir, "/var/lib/prometheus/node-exporter",
        "Debian's default"
    );
    assert!(service.contains(&format!("ReadWritePaths={textdir}")));

    let out = tempfile::tempdir().unwrap();
    let rig = rigs_dir().join("b580-x4-degraded");
    let mut args: Vec<&str> = argv[1..]
        .iter()
        .map(|a| {
            if *a == textdir {
                out.path().to_str().unwrap()
            } else {
                a
            }
        })
        .collect();
    args.extend(["--replay", rig.to_str().unwrap()]);
    let r = run(&args);
    // Exit 1 (problems found) is listed as success in the unit.
    assert!(service.contains("SuccessExitStatus=1"));
    assert!(r.code == 0 || r.code == 1, "{}", r.stderr);
    let text = std::fs::read_to_string(out.path().join("rigdoctor.prom")).unwrap();
    assert!(text.contains("rigdoctor_diagnosis{id=\"PCI-LINK-DEGRADED\""));

    let Some(analyze) = which("systemd-analyze") else {
        eprintln!("SKIPPED: systemd-analyze verify (systemd is not installed)");
        return;
    };
    // verify insists the command exists: check a copy that names our binary.
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("rigdoctor-textfile.service"),
        service.replace("/usr/local/bin/rigdoctor", bin()),
    )
    .unwrap();
    std::fs::copy(
        unit_dir.join("rigdoctor-textfile.timer"),
        tmp.path().join("rigdoctor-textfile.timer"),
    )
    .unwrap();
    let o = Command::new(analyze)
        .args(["verify", "--man=no"])
        .arg(tmp.path().join("rigdoctor-textfile.service"))
        .arg(tmp.path().join("rigdoctor-textfile.timer"))
        .output()
        .unwrap();
    assert!(
        o.status.success() && o.stderr.is_empty(),
        "systemd-analyze verify: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}
