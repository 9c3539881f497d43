//! Issue 8 item 6: control sequences in tool output never reach the terminal.
//! The fixture rig `escapes-in-output` has an nvidia-smi whose failure text
//! carries a window-title change (`ESC ] 0 ; ... BEL`), a clear-screen
//! (`ESC [ 2 J`), a carriage return and a one-byte C1 CSI; a watch trace made
//! from `traces/runtime-error.jsonl` carries the same in its target, a GPU
//! label and an engine-log line. Every human page shows them escaped.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly on purpose"
)]

mod common;

use common::*;

const HOSTILE: [char; 4] = ['\u{1b}', '\u{7}', '\r', '\u{9b}'];

/// No control character but newline and, with colour, our own SGR colour
/// sequences (`ESC [ digits ; ... m`).
fn assert_terminal_safe(page: &str, colour: bool, what: &str) {
    let sgr = regex::Regex::new(r"\x1b\[[0-9;]*m").unwrap();
    let rest = if colour {
        sgr.replace_all(page, "").into_owned()
    } else {
        page.to_string()
    };
    let bad: Vec<(usize, char)> = rest
        .char_indices()
        .filter(|(_, c)| c.is_control() && *c != '\n')
        .collect();
    assert!(
        bad.is_empty(),
        "{what}: raw control characters {bad:?} in\n{}",
        page.escape_debug()
    );
}

#[test]
fn check_page_shows_tool_escapes_escaped() {
    let rig = rigs_dir().join("escapes-in-output");
    let raw = std::fs::read_to_string(rig.join("cmd/nvidia-smi.out")).unwrap();
    assert!(
        HOSTILE.iter().all(|c| raw.contains(*c)),
        "the fixture lost its escapes"
    );
    for colour in ["never", "always"] {
        let r = run(&[
            "check",
            "--replay",
            rig.to_str().unwrap(),
            "--color",
            colour,
        ]);
        assert_eq!(r.code, 1, "{}", r.stderr);
        assert_terminal_safe(&r.stdout, colour == "always", colour);
        assert_terminal_safe(&r.stderr, false, "stderr");
        // The text is still there, readable and escaped.
        assert!(
            r.stdout
                .contains("\\e]0;you have been pwned\\x07\\e[2J\\e[HFailed to"),
            "{}",
            r.stdout
        );
    }
    // Quiet mode prints the same diagnoses, so the same escapes.
    let r = run(&["check", "--replay", rig.to_str().unwrap(), "--quiet"]);
    assert_terminal_safe(&r.stdout, false, "--quiet");
    // JSON carries the C0 controls as JSON escapes (serde), never raw; it is
    // for scripts, which get the text as the tool printed it.
    let r = run(&[
        "check",
        "--replay",
        rig.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert!(
        !r.stdout.chars().any(|c| (c as u32) < 0x20 && c != '\n'),
        "raw C0 control in JSON"
    );
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let detail = v["probes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "nvidia-smi")
        .unwrap()["detail"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(detail.contains("\u{1b}]0;"), "{detail}");
}

#[test]
fn watch_page_shows_trace_escapes_escaped() {
    let trace =
        std::fs::read_to_string(root().join("fixtures/traces/runtime-error.jsonl")).unwrap();
    assert!(trace.contains("\"label\":\"card0\""));
    assert!(trace.contains("RuntimeError: Native API failed"));
    let hostile = trace
        .replacen(
            "\"target\":\"",
            "\"target\":\"\\u001b]0;pwned\\u0007\\u001b[2J",
            1,
        )
        .replace("\"label\":\"card0\"", "\"label\":\"card\\u001b[2J0\\r\"")
        .replace(
            "RuntimeError: Native API failed",
            "\\u001b]0;pwned\\u0007RuntimeError: Native API failed\\u009b2J",
        );
    let dir = std::env::temp_dir().join(format!("rigdoctor-escapes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("hostile.jsonl");
    std::fs::write(&path, hostile).unwrap();
    for colour in ["never", "always"] {
        let r = run(&[
            "watch",
            "--replay",
            path.to_str().unwrap(),
            "--color",
            colour,
        ]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert_terminal_safe(&r.stdout, colour == "always", colour);
        assert_terminal_safe(&r.stderr, false, "stderr");
        assert!(r.stdout.contains("\\e]0;pwned\\x07"), "{}", r.stdout);
        assert!(r.stdout.contains("card\\e[2J0\\r busy"), "{}", r.stdout);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
