//! The files a packager ships, made by the binary: shell completions
//! (clap_complete), the man page (clap_mangen), and the Markdown block a
//! user pastes into an issue (an insta snapshot per rig).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly on purpose"
)]

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::*;

fn on_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
}

/// `SHELL -n` (parse, do not run) on a script, where the shell is installed.
fn parses_in(shell: &str, args: &[&str], script: &str) {
    if !on_path(shell) {
        eprintln!(
            "SKIPPED: {shell} is not installed; its completion script is checked by content only"
        );
        return;
    }
    let mut c = Command::new(shell)
        .args(args)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let o = c.wait_with_output().unwrap();
    assert!(
        o.status.success(),
        "{shell}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn completions_for_bash_zsh_and_fish() {
    let bash = run(&["completions", "bash"]);
    assert_eq!(bash.code, 0, "{}", bash.stderr);
    // The subcommands and the formats a user tabs through.
    for word in [
        "check",
        "capture",
        "watch",
        "explain",
        "completions",
        "man",
        "prometheus",
        "npd",
        "markdown",
        "--textfile",
        "--class",
    ] {
        assert!(bash.stdout.contains(word), "bash completion lacks {word}");
    }
    parses_in("bash", &["-n"], &bash.stdout);

    let zsh = run(&["completions", "zsh"]);
    assert_eq!(zsh.code, 0);
    assert!(
        zsh.stdout.starts_with("#compdef rigdoctor"),
        "{}",
        &zsh.stdout[..40]
    );
    assert!(zsh.stdout.contains("--deadline"));
    parses_in("zsh", &["-n"], &zsh.stdout);

    let fish = run(&["completions", "fish"]);
    assert_eq!(fish.code, 0);
    assert!(fish.stdout.contains("complete -c rigdoctor"));
    assert!(fish.stdout.contains("node-config"), "class values complete");
    parses_in("fish", &["--no-execute"], &fish.stdout);

    let bad = run(&["completions", "powershell"]);
    assert_eq!(bad.code, 2);
}

#[test]
fn the_man_page_covers_every_subcommand_and_renders_cleanly() {
    let r = run(&["man"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let page = &r.stdout;
    assert!(page.contains(".TH rigdoctor 1"), "{}", &page[..200]);
    for sub in [
        "CHECK",
        "CAPTURE",
        "RULES",
        "EXPLAIN",
        "WATCH",
        "COMPLETIONS",
        "MAN",
    ] {
        assert!(
            page.contains(&format!(".SH \"RIGDOCTOR {sub}\"")),
            "no section for {sub}"
        );
    }
    for flag in ["textfile", "class", "deadline", "fail\\-on"] {
        assert!(page.contains(&format!("\\-\\-{flag}")), "no --{flag}");
    }
    assert!(page.contains(".SH \"EXIT STATUS\""));
    if !on_path("groff") {
        eprintln!("SKIPPED: groff is not installed; the page is checked by content only");
        return;
    }
    // -ww: every warning; -z: no output, only the diagnostics.
    let mut c = Command::new("groff")
        .args(["-man", "-Tutf8", "-ww", "-z"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(page.as_bytes()).unwrap();
    let o = c.wait_with_output().unwrap();
    assert!(
        o.status.success() && o.stderr.is_empty(),
        "groff: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The paste block, per rig: a blind probe, a multi-GPU error with a GPU
/// address, a healthy rig, and a rig whose tool output holds escape codes.
#[test]
fn markdown_paste_blocks() {
    for rig in [
        "nv-smi-timeout",
        "a770-rebar-off",
        "dual-a770",
        "selector-triple",
        "escapes-in-output",
    ] {
        let d = rigs_dir().join(rig);
        if !d.exists() {
            panic!("fixture {rig} is gone");
        }
        let r = run(&[
            "check",
            "--replay",
            d.to_str().unwrap(),
            "--format",
            "markdown",
        ]);
        assert!(r.code == 0 || r.code == 1, "{rig}: {}", r.stderr);
        assert!(
            !r.stdout.contains('\u{1b}'),
            "{rig}: a raw escape reached the paste block"
        );
        insta::assert_snapshot!(format!("markdown__{rig}"), r.stdout);
    }
}
