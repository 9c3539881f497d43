//! Exit codes, options and the edges of the command line.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly on purpose"
)]

mod common;

use common::*;

fn replay(rig: &str, extra: &[&str]) -> Run {
    let dir = rigs_dir().join(rig);
    let mut args = vec!["check", "--replay", dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    run(&args)
}

#[test]
fn exit_codes_follow_fail_on() {
    // (rig, worst severity) -> expected exit code for --fail-on error / warn / info
    let cases = [
        ("bnb-mask", [0, 0, 0]),               // nothing at all
        ("dual-a770", [0, 0, 1]),              // a note (IPEX end of life)
        ("b580-bogus-x1-endpoint", [0, 0, 1]), // a note only
        ("a770-rebar-off", [0, 1, 1]),         // a warning
        ("no-gpu", [1, 1, 1]),                 // an error
    ];
    for (rig, want) in cases {
        for (level, code) in ["error", "warn", "info"].iter().zip(want) {
            let r = replay(rig, &["--fail-on", level, "--quiet"]);
            assert_eq!(r.code, code, "{rig} --fail-on {level}: {}", r.stdout);
        }
        // The default is --fail-on error.
        assert_eq!(replay(rig, &["--quiet"]).code, want[0], "{rig} default");
    }
}

#[test]
fn usage_errors_and_unreadable_captures_exit_2() {
    let r = run(&["check", "--fail-on", "sometimes"]);
    assert_eq!(r.code, 2);
    let r = run(&["--sysfs", "/tmp", "check", "--replay", "x"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("--replay"), "{}", r.stderr);
    let r = run(&["check", "--replay", "/nonexistent/capture"]);
    assert_eq!(r.code, 2);
    let empty = tempfile::tempdir().unwrap();
    let r = run(&["check", "--replay", empty.path().to_str().unwrap()]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("capture.json"), "{}", r.stderr);
    let r = run(&["explain", "NO-SUCH-RULE"]);
    assert_eq!(r.code, 2);
}

#[test]
fn json_has_the_fixed_shape() {
    let v = replay_json("a770-rebar-off");
    assert_eq!(v["schema"], "rigdoctor/check/1");
    assert_eq!(v["verdict"], "warn");
    let d = &v["diagnoses"][0];
    for k in [
        "id", "severity", "title", "evidence", "explain", "fix", "refs",
    ] {
        assert!(d.get(k).is_some(), "diagnosis lacks {k}");
    }
    for p in v["probes"].as_array().unwrap() {
        for k in ["name", "status", "duration_ms", "detail"] {
            assert!(p.get(k).is_some(), "probe lacks {k}");
        }
    }
    let f = &v["facts"];
    for k in ["gpus", "sycl", "env", "python"] {
        assert!(f.get(k).is_some(), "facts lack {k}");
    }
    let g = &f["gpus"][0];
    for k in [
        "pci",
        "vendor",
        "device_id",
        "name",
        "driver",
        "discrete",
        "vram_bytes",
        "link",
        "effective_link",
        "rebar",
    ] {
        assert!(g.get(k).is_some(), "gpu lacks {k}");
    }
    for k in ["speed_gts", "width", "max_speed_gts", "max_width"] {
        assert!(g["link"].get(k).is_some(), "link lacks {k}");
    }
    assert!(g["effective_link"].get("at").is_some());
    for k in ["devices", "visible", "selector_error"] {
        assert!(f["sycl"].get(k).is_some(), "sycl lacks {k}");
    }
    let dev = &f["sycl"]["devices"][0];
    for k in [
        "backend", "type", "index", "platform", "name", "version", "driver",
    ] {
        assert!(dev.get(k).is_some(), "sycl device lacks {k}");
    }
    assert!(f["python"]["packages"].is_object());
}

#[test]
fn selector_facts_on_a_parse_error() {
    let v = replay_json("selector-triple");
    let s = &v["facts"]["sycl"];
    assert_eq!(s["selector"], "level_zero:gpu:0");
    assert_eq!(
        s["selector_error"],
        "Error parsing selector string \"level_zero:gpu:0\"  Too many colons (:)"
    );
    assert_eq!(s["selector_fix"], "level_zero:0");
    assert_eq!(s["visible"].as_array().unwrap().len(), 0);
    let fix = v["diagnoses"][0]["fix"].as_str().unwrap();
    assert_eq!(fix, "export ONEAPI_DEVICE_SELECTOR='level_zero:0'");
}

#[test]
fn visible_devices_after_mask_and_selector() {
    let v = replay_json("selector-ok");
    let vis = v["facts"]["sycl"]["visible"].as_array().unwrap();
    assert_eq!(vis.len(), 1);
    assert_eq!(
        (vis[0]["backend"].as_str(), vis[0]["index"].as_u64()),
        (Some("level_zero"), Some(0))
    );
    assert_eq!(vis[0]["name"], "Intel(R) Arc(TM) A770 Graphics");
}

#[test]
fn color_is_off_when_piped_and_on_when_forced() {
    let dir = rigs_dir().join("a770-rebar-off");
    let d = dir.to_str().unwrap();
    assert!(!run(&["check", "--replay", d]).stdout.contains('\u{1b}'));
    assert!(
        run(&["check", "--replay", d, "--color", "always"])
            .stdout
            .contains('\u{1b}')
    );
    let r = run_with(&["check", "--replay", d, "--color", "auto"], |c| {
        c.env("NO_COLOR", "1");
    });
    assert!(!r.stdout.contains('\u{1b}'));
}

#[test]
fn rules_and_explain() {
    let r = run(&["rules"]);
    assert_eq!(r.code, 0);
    assert!(r.stdout.contains("PCI-REBAR-OFF"));
    let r = run(&["rules", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert!(v.as_array().unwrap().len() >= 12);
    assert!(v[0].get("severity").is_some() && v[0].get("title").is_some());
    let class = |id: &str| {
        v.as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .map(|r| r["class"].clone())
    };
    assert_eq!(class("NV-SMI-HANG"), Some("hardware".into()));
    assert_eq!(class("SYCL-L0-MISSING"), Some("node-config".into()));
    assert_eq!(class("SYCL-SELECTOR-PARSE"), Some("user-env".into()));
    assert_eq!(class("GPU-VRAM-MIXED"), Some("advice".into()));
    let r = run(&["explain", "pci-rebar-off"]);
    assert_eq!(r.code, 0);
    assert!(
        r.stdout
            .starts_with("PCI-REBAR-OFF  [warning, class node-config, area gpus]"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("Why it matters"));
}

/// `explain` reads as prose for every built-in rule: no `{{ }}` template,
/// what it finds, and the finding as it reads on its `fires_on` fixture;
/// `rules` has no title that is only an ellipsis or a hole.
#[test]
fn explain_renders_every_rule_from_its_fixture() {
    let rules = rigdoctor::diagnose::rules::load(None).unwrap();
    for rule in &rules {
        let id = &rule.spec.id;
        let r = run(&["explain", id]);
        assert_eq!(r.code, 0, "{id}: {}", r.stderr);
        let page = &r.stdout;
        assert!(
            !page.contains("{{") && !page.contains("}}"),
            "{id}:\n{page}"
        );
        assert!(page.contains("What it finds\n"), "{id}:\n{page}");
        let from = rule.spec.fires_on.first().unwrap();
        assert!(
            page.contains("--replay fixtures/") && page.contains(from.as_str()),
            "{id}:\n{page}"
        );
        // The example's finding heads its own block, with its id.
        assert!(page.contains(&format!(" {id}  ")), "{id}:\n{page}");
    }
    let listing = run(&["rules"]).stdout;
    for line in listing.lines() {
        assert!(!line.contains('…') && !line.contains("<value>"), "{line}");
    }
}

#[test]
fn explain_suggests_the_id_meant() {
    let r = run(&["explain", "PCI-REBAR"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("did you mean PCI-REBAR-OFF?"),
        "{}",
        r.stderr
    );
    let r = run(&["explain", "NV-SMI-HNAG"]);
    assert!(r.stderr.contains("NV-SMI-HANG"), "{}", r.stderr);
    let r = run(&["explain", "no-such-thing-at-all"]);
    assert_eq!(r.code, 2);
    assert!(!r.stderr.contains("did you mean"), "{}", r.stderr);
    assert!(
        r.stderr.contains("`rigdoctor rules` lists them"),
        "{}",
        r.stderr
    );
}

#[test]
fn site_rules_add_and_replace() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("site.toml"),
        r#"
[[rule]]
id = "SITE-NEEDS-TWO-GPUS"
severity = "error"
area = "gpus"
class = "hardware"
when = "gpus.filter(g, g.compute && g.discrete == true).size() < 2"
title = "This node needs two discrete GPUs, it has {{ gpus.filter(g, g.compute && g.discrete == true).size() }}"
explain = "Our serving layout uses tensor parallel 2."
fix = "Check the second card."

[[rule]]
id = "PCI-REBAR-OFF"
severity = "error"
area = "gpus"
class = "node-config"
each = "gpus.filter(g, g.compute && g.vendor == 'intel' && g.discrete == true)"
when = "it.rebar == false"
title = "ReBAR off on {{ it.pci }} (site policy: error)"
explain = "x"
fix = "y"
"#,
    )
    .unwrap();
    let rules = dir.path().to_str().unwrap();
    let r = replay("a770-rebar-off", &["--rules", rules, "--format", "json"]);
    assert_eq!(r.code, 1);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let ids = diagnosis_ids(&v);
    assert!(ids.contains(&"SITE-NEEDS-TWO-GPUS".to_string()), "{ids:?}");
    let rebar = v["diagnoses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == "PCI-REBAR-OFF")
        .unwrap();
    assert_eq!(rebar["severity"], "error");
    // The site's class and the GPU the diagnosis is about are in the JSON.
    assert_eq!(rebar["class"], "node-config");
    assert_eq!(rebar["gpu"], "0000:03:00.0");
    assert_eq!(
        rebar["title"],
        "ReBAR off on 0000:03:00.0 (site policy: error)"
    );
    // A site rule that replaces a built-in one is explained as itself: no
    // example of the built-in rule, its holes named, no raw template.
    let r = run(&["explain", "SITE-NEEDS-TWO-GPUS", "--rules", rules]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        !r.stdout.contains("{{") && !r.stdout.contains("Example"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("it has <value>"), "{}", r.stdout);
    let r = run(&["explain", "PCI-REBAR-OFF", "--rules", rules]);
    assert!(
        r.stdout.contains("ReBAR off on <pci> (site policy: error)"),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("Example"), "{}", r.stdout);
    // A broken site rule is rigdoctor failing its job: exit 2, with the reason.
    std::fs::write(dir.path().join("zz-bad.toml"), "[[rule]]\nid = 'BAD-ONE'\nseverity = 'warn'\narea = 'gpus'\nclass = 'advice'\nwhen = '1 +'\ntitle = 't'\nexplain = 'e'\nfix = 'f'\n").unwrap();
    let r = replay("a770-rebar-off", &["--rules", rules]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("BAD-ONE"), "{}", r.stderr);
    assert!(r.stderr.contains("does not compile"), "{}", r.stderr);
}

#[test]
fn a_site_rule_without_a_class_is_refused_naming_rule_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("site.toml");
    std::fs::write(&file, "[[rule]]\nid = 'SITE-NO-CLASS'\nseverity = 'warn'\narea = 'gpus'\nwhen = 'true'\ntitle = 't'\nexplain = 'e'\nfix = 'f'\n").unwrap();
    let r = replay("a770-rebar-off", &["--rules", dir.path().to_str().unwrap()]);
    assert_eq!(r.code, 2);
    let want = format!("{}: SITE-NO-CLASS: no `class`", file.display());
    assert!(r.stderr.contains(&want), "{}", r.stderr);
    assert!(
        r.stderr.contains("hardware, node-config, user-env, advice"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_closed_pipe_is_not_a_crash() {
    use std::io::Read;
    use std::process::{Command, Stdio};
    let dir = rigs_dir().join("no-gpu");
    let mut child = Command::new(bin())
        .args(["check", "--replay", dir.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader goes away at once, like `| head -0`
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(!err.contains("panicked"), "{err}");
    assert!(status.code().is_some(), "killed by a signal");
}

/// A `--python` that cannot be an interpreter is a usage error that names
/// it (exit 2), not a page saying no Python was found.
#[test]
fn a_bad_python_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    for (value, says) in [
        (
            "/nonexistent/python3",
            "--python /nonexistent/python3: no such file",
        ),
        (dir.path().to_str().unwrap(), "is a directory"),
        ("python-that-is-not-there", "not found on PATH"),
    ] {
        for cmd in ["check", "capture"] {
            let mut args = vec![cmd, "--python", value];
            let out = dir.path().join("cap");
            if cmd == "capture" {
                args.extend(["-o", out.to_str().unwrap()]);
            }
            let r = run(&args);
            assert_eq!(r.code, 2, "{cmd} {value}: {}", r.stderr);
            assert!(r.stderr.contains(says), "{cmd} {value}: {}", r.stderr);
            assert!(r.stdout.is_empty(), "{}", r.stdout);
            assert!(!out.exists());
        }
    }
    // npd shows stdout only: the reason is there too.
    let r = run(&[
        "check",
        "--python",
        "/nonexistent/python3",
        "--format",
        "npd",
    ]);
    assert_eq!(r.code, 2);
    assert!(r.stdout.contains("no such file"), "{}", r.stdout);
}

/// `--ignore ID` leaves a finding out of the page, the JSON, the verdict and
/// the exit code, and says so; an id that names no rule is a usage error.
#[test]
fn ignore_leaves_a_finding_out_and_says_so() {
    let r = replay("b580-x4-slot", &["--fail-on", "warn"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    let r = replay(
        "b580-x4-slot",
        &[
            "--fail-on",
            "warn",
            "--ignore",
            "pci-link-slot",
            "--color",
            "never",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(
        !r.stdout.contains("! warning PCI-LINK-SLOT"),
        "{}",
        r.stdout
    );
    let words = r.stdout.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        words.contains("ignored (--ignore): PCI-LINK-SLOT"),
        "{}",
        r.stdout
    );
    assert!(!words.contains("sits in an x4 slot"), "{}", r.stdout);
    let r = replay(
        "b580-x4-slot",
        &[
            "--format",
            "json",
            "--ignore",
            "PCI-LINK-SLOT,SYCL-IGPU-VISIBLE",
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["verdict"], "ok");
    assert!(diagnosis_ids(&v).is_empty(), "{v}");
    assert_eq!(
        v["ignored"],
        serde_json::json!(["PCI-LINK-SLOT", "SYCL-IGPU-VISIBLE"])
    );
    // Nothing ignored: no `ignored` key (the JSON of every other run is as before).
    let r = replay("b580-x4-slot", &["--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert!(v.get("ignored").is_none());
    let r = replay("b580-x4-slot", &["--ignore", "PCI-LINK-SLOTT"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .contains("--ignore PCI-LINK-SLOTT: no such rule; did you mean PCI-LINK-SLOT?"),
        "{}",
        r.stderr
    );
}

/// Issue 14: on a terminal, a probe still running after a second is named on
/// stderr and erased when it ends; piped, nothing of it. The terminal is a
/// pty made by util-linux `script` (skipped where it is missing); the slow
/// probe is a fake python3 that sleeps 3 s before answering.
#[test]
fn a_slow_probe_is_named_on_a_terminal_only() {
    use std::os::unix::fs::PermissionsExt;
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: no `script` to make a pty");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let py = dir.path().join("python3");
    std::fs::write(
        &py,
        "#!/bin/sh\nsleep 3\necho '{\"version\": \"3.12.3\", \"executable\": \"/x/python3\", \"path\": []}'\n",
    )
    .unwrap();
    std::fs::set_permissions(&py, std::fs::Permissions::from_mode(0o755)).unwrap();
    let py = py.to_str().unwrap();
    let cmd = format!("{} check --color never --python {py}", bin());
    let r = std::process::Command::new("script")
        .args(["-q", "-e", "-c", &cmd, "/dev/null"])
        .env_remove("COLUMNS")
        .output()
        .unwrap();
    let tty = String::from_utf8_lossy(&r.stdout);
    assert!(
        tty.contains("asking python3 for its packages (up to 5 s)…"),
        "{tty}"
    );
    // Erased before the page: the page's first line follows the erase.
    assert!(tty.contains("\r\x1b[Krigdoctor "), "{tty:?}");
    let piped = run(&["check", "--color", "never", "--python", py]);
    assert!(!piped.stderr.contains("(up to"), "{}", piped.stderr);
    assert!(!piped.stdout.contains("(up to"), "{}", piped.stdout);
}

/// Issue 14: a site accepts a finding once, in its config file, with the
/// reason the next reader sees; a config that is wrong, or that another
/// user could have written, stops the check (exit 2) instead of being
/// half-read.
#[test]
fn site_config_accepts_findings_with_a_reason() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let rules_dir = dir.path().join("rules.d");
    std::fs::create_dir(&rules_dir).unwrap();
    std::fs::write(
        rules_dir.join("site.toml"),
        r#"
[[rule]]
id = "SITE-NEEDS-THREE-GPUS"
severity = "warn"
area = "gpus"
class = "hardware"
when = "gpus.filter(g, g.compute).size() < 3"
title = "This node needs three GPUs"
explain = "Our layout."
fix = "Add one."
"#,
    )
    .unwrap();
    let config = dir.path().join("config.toml");
    let write = |text: String| {
        std::fs::write(&config, text).unwrap();
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
    };
    write(format!(
        "rules = {:?}\n\n[ignore]\npci-link-slot = \"slots 1 and 2 are split x8/x8 by design (OPS-1234)\"\n",
        rules_dir.to_str().unwrap()
    ));
    let cfg = config.to_str().unwrap();
    let r = replay(
        "nv-2x2060-bus-only",
        &["--config", cfg, "--fail-on", "warn", "--color", "never"],
    );
    // The accepted finding is gone; the site's own rule (from its rules
    // directory) still counts.
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        !r.stdout.contains("! warning PCI-LINK-SLOT"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("SITE-NEEDS-THREE-GPUS"), "{}", r.stdout);
    let words = r.stdout.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        words.contains("accepted by the site config: PCI-LINK-SLOT"),
        "{}",
        r.stdout
    );
    assert!(
        words
            .contains("accepted PCI-LINK-SLOT: slots 1 and 2 are split x8/x8 by design (OPS-1234)"),
        "{}",
        r.stdout
    );
    let r = replay("nv-2x2060-bus-only", &["--config", cfg, "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["ignored"], serde_json::json!(["PCI-LINK-SLOT"]));
    assert_eq!(
        v["ignored_reasons"]["PCI-LINK-SLOT"],
        "slots 1 and 2 are split x8/x8 by design (OPS-1234)"
    );
    // A replay reads no site config unless given one: the capture's
    // findings as the rules give them.
    let r = replay("nv-2x2060-bus-only", &["--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert!(
        v.get("ignored").is_none() && v.get("ignored_reasons").is_none(),
        "{v}"
    );
    assert!(diagnosis_ids(&v).contains(&"PCI-LINK-SLOT".to_string()));

    // Refused, each naming the file and the reason.
    for (text, why) in [
        (
            "[ignore]\nPCI-LINK-SLOTT = \"x\"\n",
            "did you mean PCI-LINK-SLOT?",
        ),
        ("[ignore]\nPCI-LINK-SLOT = \"\"\n", "needs a reason"),
        ("ignore_all = true\n", "ignore_all"),
        ("rules = \"rules.d\"\n", "absolute path"),
    ] {
        write(text.to_string());
        let r = replay("nv-2x2060-bus-only", &["--config", cfg]);
        assert_eq!(r.code, 2, "{text}: {}", r.stdout);
        assert!(
            r.stderr.contains(cfg) && r.stderr.contains(why),
            "{text}: {}",
            r.stderr
        );
    }
    write("[ignore]\nPCI-LINK-SLOT = \"by design\"\n".into());
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o664)).unwrap();
    let r = replay("nv-2x2060-bus-only", &["--config", cfg]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("chmod go-w"), "{}", r.stderr);
    let r = replay(
        "nv-2x2060-bus-only",
        &["--config", dir.path().join("absent.toml").to_str().unwrap()],
    );
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("absent.toml"), "{}", r.stderr);
}
