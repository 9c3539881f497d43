//! Docs that can drift are generated and checked here.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly on purpose"
)]

mod common;

use common::*;

fn check_or_update(path: &str, generated: &str) {
    let file = root().join(path);
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(&file, generated).unwrap();
        return;
    }
    let on_disk = std::fs::read_to_string(&file).unwrap_or_default();
    assert!(
        on_disk == generated,
        "{path} is out of date; run `UPDATE_DOCS=1 cargo test --test docs`"
    );
}

#[test]
fn rules_reference_is_in_sync() {
    let rules = rigdoctor::diagnose::rules::load(None).unwrap();
    check_or_update(
        "docs/rules.md",
        &rigdoctor::diagnose::rules::reference_markdown(&rules),
    );
}

#[test]
fn readme_commands_exist() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    assert!(
        readme.contains("cargo test"),
        "README must say how to run the tests"
    );
    assert!(
        readme.contains("cargo run --release -- check"),
        "README must say how to run rigdoctor"
    );
    // The sample-rig demo in the README must name a fixture that exists.
    for line in readme
        .lines()
        .filter(|l| l.contains("--replay fixtures/rigs/"))
    {
        let rig = line
            .split("--replay fixtures/rigs/")
            .nth(1)
            .unwrap()
            .split(|c: char| c.is_whitespace() || c == '`')
            .next()
            .unwrap();
        assert!(
            rigs_dir().join(rig).join("capture.json").exists(),
            "README names missing rig {rig}"
        );
    }
    let ci = std::fs::read_to_string(root().join(".ci/run")).unwrap();
    assert!(
        ci.contains("cargo test"),
        ".ci/run must run the README's test command"
    );
}

/// A rule's first diagnosis on its first `fires_on` fixture: a rig
/// replayed in-process, or a watch trace replayed by the binary.
fn finding_on(rule: &rigdoctor::diagnose::rules::Rule) -> (String, serde_json::Value) {
    let id = &rule.spec.id;
    let name = rule
        .spec
        .fires_on
        .first()
        .unwrap_or_else(|| panic!("{id}: no fires_on"));
    let (from, diagnoses) = if rule.spec.area == "watch" {
        let path = root().join("fixtures").join(name);
        let r = run(&[
            "watch",
            "--replay",
            path.to_str().unwrap(),
            "--format",
            "json",
        ]);
        let last = r.stdout.lines().last().unwrap_or_default();
        let v: serde_json::Value = serde_json::from_str(last).unwrap();
        (format!("fixtures/{name}"), v["diagnoses"].clone())
    } else {
        (
            format!("fixtures/rigs/{name}"),
            replay_json(name)["diagnoses"].clone(),
        )
    };
    let d = diagnoses
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == id.as_str())
        .unwrap_or_else(|| panic!("{id} does not fire on {from}"))
        .clone();
    (from, d)
}

#[test]
fn rule_examples_are_in_sync() {
    use rigdoctor::diagnose::examples::{Example, Examples, to_json};
    let rules = rigdoctor::diagnose::rules::load(None).unwrap();
    let mut all = Examples::new();
    for r in &rules {
        let (from, d) = finding_on(r);
        let text = |k: &str| d[k].as_str().unwrap_or_default().to_string();
        all.insert(
            r.spec.id.clone(),
            Example {
                template: r.spec.title.clone(),
                from,
                title: text("title"),
                evidence: text("evidence"),
                explain: text("explain"),
                fix: text("fix"),
            },
        );
    }
    check_or_update("rules/examples.json", &to_json(&all));
}

/// Does `shown` (a README block, `...` lines marking what it leaves out)
/// match `actual` line for line outside the gaps? The error names the first
/// line that is not what the command prints.
fn matches_with_gaps(shown: &[&str], actual: &[&str]) -> Result<(), String> {
    let gap = |l: &str| l.trim() == "...";
    let mut at = 0;
    let mut skipping = false;
    for line in shown {
        if gap(line) {
            skipping = true;
            continue;
        }
        let found = if skipping {
            actual[at..].iter().position(|a| a == line).map(|i| at + i)
        } else {
            (actual.get(at) == Some(line)).then_some(at)
        };
        match found {
            Some(i) => at = i + 1,
            None => return Err(format!("not printed here: {line:?}")),
        }
        skipping = false;
    }
    if at < actual.len() && !skipping {
        return Err(format!("the command goes on: {:?}", actual[at]));
    }
    Ok(())
}

#[test]
fn gaps_match_only_what_is_printed() {
    let actual = ["a", "b", "c", "d"];
    assert!(matches_with_gaps(&["a", "...", "d"], &actual).is_ok());
    assert!(matches_with_gaps(&["a", "b", "...", "c", "d"], &actual).is_ok());
    assert!(matches_with_gaps(&["a", "c", "..."], &actual).is_err());
    assert!(matches_with_gaps(&["a", "b"], &actual).is_err());
    assert!(matches_with_gaps(&["a", "...", "x"], &actual).is_err());
}

/// Issue 14: the README's example pages are what the commands print (at 80
/// columns, piped), so they cannot drift from the tool.
#[test]
fn readme_examples_are_what_rigdoctor_prints() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let mut checked = 0;
    for block in readme.split("```\n").skip(1).step_by(2) {
        let mut lines = block.lines();
        let Some(cmd) = lines.next().and_then(|l| l.strip_prefix("$ rigdoctor ")) else {
            continue;
        };
        let args: Vec<&str> = cmd.split_whitespace().collect();
        let r = run_with(&args, |c| {
            c.current_dir(root());
        });
        assert!(r.code == 0 || r.code == 1, "{cmd}: {}", r.stderr);
        let shown: Vec<&str> = lines.collect();
        let actual: Vec<&str> = r.stdout.lines().collect();
        if let Err(e) = matches_with_gaps(&shown, &actual) {
            panic!(
                "README's `$ rigdoctor {cmd}` is out of date: {e}\nit prints:\n{}",
                r.stdout
            );
        }
        checked += 1;
    }
    assert!(checked >= 1, "no `$ rigdoctor ...` example in the README");
}
