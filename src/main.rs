//! The edge: parse arguments into a validated plan, run it, map the outcome
//! to an exit code (0 nothing at or above --fail-on, 1 problems, 2 rigdoctor
//! could not do its job).

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;

use rigdoctor::cli::{
    CheckFormat, Cli, CompletionShell, ConfigChoice, Format, Plan, SchemaOutput, Target, Terminal,
};
use rigdoctor::diagnose::RuleClass;
use rigdoctor::diagnose::rules::{self, Rule};
use rigdoctor::render;
use rigdoctor::source::archive::CaptureTarget;
use rigdoctor::source::live::Live;
use rigdoctor::source::record::Record;
use rigdoctor::source::replay::Replay;

const EXIT_USAGE: u8 = 2;

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    // A message can name a file of a capture, which is untrusted input.
    eprintln!(
        "rigdoctor: {}",
        rigdoctor::text::escape_controls(&msg.to_string())
    );
    ExitCode::from(EXIT_USAGE)
}

/// Write to stdout; a closed pipe (`rigdoctor check | head`) is not an error.
fn emit(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|_| out.flush());
}

/// `did you mean X? ` for an id close to one of `rules`' (else nothing).
fn did_you_mean(id: &str, rules: &[Rule]) -> String {
    let near = rigdoctor::diagnose::examples::similar(id, rules.iter().map(|r| r.spec.id.as_str()));
    match near.as_slice() {
        [] => String::new(),
        [one] => format!("did you mean {one}? "),
        many => format!("did you mean one of {}? ", many.join(", ")),
    }
}

/// A `--python` that cannot be an interpreter, as a usage error (exit 2).
fn python_problem(p: &rigdoctor::cli::ProbeOptionsPlan) -> Option<String> {
    let value = p.python.as_deref()?;
    rigdoctor::probe::python::interpreter_problem(value, std::env::var("PATH").ok().as_deref())
}

fn load_rules(dir: Option<&std::path::Path>) -> Result<Vec<Rule>, rules::RuleError> {
    rules::load(dir)
}

fn main() -> ExitCode {
    // `--deadline` counts from here.
    let started = std::time::Instant::now();
    let cli = Cli::parse();
    let term = Terminal {
        stdout_is_tty: std::io::stdout().is_terminal(),
        no_color: std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()),
    };
    let plan = match cli.plan(term) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    match plan {
        Plan::Check {
            target,
            probe,
            format,
            textfile,
            classes,
            ignore,
            fail_on,
            quiet,
            verbose,
            color,
            rules,
            config,
        } => {
            // NPD shows stdout, not stderr: there, say it on stdout too (exit 2 = Unknown).
            let fail = |msg: String| {
                if format == CheckFormat::Npd {
                    let mut line = format!("rigdoctor failed: {msg}").replace(['\n', '\r'], " ");
                    let mut cut = line.len().min(render::npd::MAX_BYTES);
                    while !line.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    line.truncate(cut);
                    emit(&(line + "\n"));
                }
                fail(msg)
            };
            if matches!(target, Target::Live { .. })
                && let Some(m) = python_problem(&probe)
            {
                return fail(m);
            }
            // The site config: read before the probes, so a broken one
            // costs nothing and says so (exit 2).
            let site = match &config {
                ConfigChoice::File(f) => rigdoctor::site::load(Some(f), false),
                ConfigChoice::Default => {
                    rigdoctor::site::load(None, matches!(target, Target::Live { .. }))
                }
                ConfigChoice::None => Ok(None),
            };
            let site = match site {
                Ok(s) => s,
                Err(e) => return fail(e),
            };
            let rules = rules.or_else(|| site.as_ref().and_then(|s| s.config.rules.clone()));
            let reasons = site
                .as_ref()
                .map(|s| s.config.ignore.clone())
                .unwrap_or_default();
            let opts = probe.options_from(started);
            // A person waiting at a terminal sees which probe is slow.
            let progress = rigdoctor::progress::report(
                std::io::stderr().is_terminal() && format == CheckFormat::Human && !quiet,
                render::human::terminal_width(std::io::stderr()),
            );
            // The rules compile while the probes run (off the critical path).
            // A broken site rule file still fails before the first probe:
            // its few rules compile here, on their own, and again with the
            // built-ins (whose names `suppressed_by` may use).
            if let Some(dir) = rules.as_deref()
                && let Err(e) = rules::load_builtin_where(Some(dir), |_| false)
            {
                return fail(format!("cannot load rules: {e}"));
            }
            // Built-in templates compile only for the rules that fire.
            let load = || rules::load_for_check(rules.as_deref());
            let report = match target {
                Target::Live {
                    sysfs,
                    procfs,
                    devfs,
                } => rigdoctor::check_compiling(
                    &Live::new(sysfs, procfs)
                        .with_devfs(devfs)
                        .with_deadline(opts.deadline)
                        .with_tool_env(rigdoctor::probe::env::allowed),
                    &opts,
                    load,
                ),
                Target::Replay(dir) => match Replay::open(&dir) {
                    Ok(src) => rigdoctor::check_compiling(&src, &opts, load),
                    Err(e) => return fail(e.to_string()),
                },
            };
            progress.finish();
            let (report, known) = match report {
                Ok(r) => r,
                Err(e) => return fail(format!("cannot load rules: {e}")),
            };
            // An --ignore that names no rule would leave everything in,
            // silently: a typo is a usage error, with the id meant.
            let unknown = |i: &String| !known.iter().any(|r| r.spec.id == *i);
            if let Some(bad) = ignore.iter().find(|i| unknown(i)) {
                return fail(format!(
                    "--ignore {bad}: no such rule; {}`rigdoctor rules` lists them",
                    did_you_mean(bad, &known)
                ));
            }
            if let (Some(bad), Some(s)) = (reasons.keys().find(|i| unknown(i)), &site) {
                return fail(format!(
                    "site config {}: [ignore] {bad}: no such rule; {}`rigdoctor rules` lists them",
                    s.path.display(),
                    did_you_mean(bad, &known)
                ));
            }
            let mut ignore = ignore;
            ignore.extend(
                reasons
                    .keys()
                    .filter(|k| !ignore.contains(k))
                    .cloned()
                    .collect::<Vec<_>>(),
            );
            let report = if ignore.is_empty() {
                report
            } else {
                rigdoctor::diagnose::report::ignore_ids_with(report, &ignore, &reasons)
            };
            let report = if classes.is_empty() {
                report
            } else {
                rigdoctor::diagnose::report::keep_classes(report, &classes)
            };
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0);
            if let Some(dir) = &textfile {
                let metrics = render::prometheus::render(&report, now);
                if let Err(e) = render::prometheus::write_textfile(dir, &metrics) {
                    return fail(e.to_string());
                }
            }
            if format == CheckFormat::Npd {
                let all = RuleClass::ALL;
                let asked: &[RuleClass] = if classes.is_empty() { &all } else { &classes };
                let h = rigdoctor::diagnose::report::health(&report, fail_on, asked);
                emit(&(render::npd::line(&h) + "\n"));
                return ExitCode::from(render::npd::exit_code(&h));
            }
            let text = match format {
                CheckFormat::Json => render::json::render(&report),
                CheckFormat::Prometheus => render::prometheus::render(&report, now),
                CheckFormat::Markdown => render::markdown::render(&report),
                CheckFormat::Npd => String::new(), // answered above
                CheckFormat::Human => render::human::page(
                    &report,
                    render::human::Style {
                        color,
                        width: render::human::terminal_width(std::io::stdout()),
                    },
                    match (quiet, verbose) {
                        (true, _) => render::human::Detail::Quiet,
                        (false, true) => render::human::Detail::Verbose,
                        (false, false) => render::human::Detail::Normal,
                    },
                ),
            };
            emit(&text);
            if report.fails(fail_on) {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Plan::Capture {
            output,
            sysfs,
            procfs,
            devfs,
            probe,
        } => {
            if let Some(m) = python_problem(&probe) {
                return fail(m);
            }
            let rules = match load_rules(None) {
                Ok(r) => r,
                Err(e) => return fail(format!("cannot load rules: {e}")),
            };
            let opts = probe.options_from(started);
            let live = Live::new(sysfs, procfs)
                .with_devfs(devfs)
                .with_deadline(opts.deadline)
                .with_tool_env(rigdoctor::probe::env::allowed);
            let target = match CaptureTarget::new(&output) {
                Ok(t) => t,
                Err(e) => {
                    return fail(format!(
                        "cannot write a capture into {}: {e}",
                        output.display()
                    ));
                }
            };
            let rec = match Record::new(live, &target.record_dir()) {
                Ok(r) => r,
                Err(e) => {
                    target.abandon();
                    return fail(format!(
                        "cannot write a capture into {}: {e}",
                        output.display()
                    ));
                }
            };
            let report = rigdoctor::check(&rec, &opts, &rules);
            let mut problems = rec.finish();
            drop(rec);
            let shown = target.shown().display().to_string();
            let attach = if target.is_archive() {
                format!("attach {shown} to the issue")
            } else {
                format!(
                    "rigdoctor capture -o rigdoctor-capture.tar.gz  (or: tar czf rigdoctor-capture.tar.gz -C {shown} .)"
                )
            };
            if let Err(e) = target.finish() {
                problems.push(format!("cannot write {shown}: {e}"));
            }
            emit(&format!(
                "Wrote a capture of this machine to {shown}\n\
                 It holds what rigdoctor read: sysfs/procfs files, probe command outputs and the\n\
                 allowlisted GPU runtime variables (no other environment, secrets redacted).\n\
                 Replay it:      rigdoctor check --replay {shown}\n\
                 Attach it:      {attach}\n\
                 Check summary:  {summary}\n",
                summary = report.summary_line()
            ));
            if problems.is_empty() {
                ExitCode::SUCCESS
            } else {
                for p in &problems {
                    eprintln!(
                        "rigdoctor: capture incomplete: {}",
                        rigdoctor::text::escape_controls(p)
                    );
                }
                ExitCode::from(EXIT_USAGE)
            }
        }
        Plan::Rules { format, rules } => {
            let rules = match load_rules(rules.as_deref()) {
                Ok(r) => r,
                Err(e) => return fail(format!("cannot load rules: {e}")),
            };
            emit(&render_rules(&rules, format));
            ExitCode::SUCCESS
        }
        Plan::Watch(w) => ExitCode::from(rigdoctor::watch::run::run(w)),
        Plan::Fit(f) => run_fit(*f, started),
        Plan::Completions(shell) => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            let shell = match shell {
                CompletionShell::Bash => clap_complete::Shell::Bash,
                CompletionShell::Zsh => clap_complete::Shell::Zsh,
                CompletionShell::Fish => clap_complete::Shell::Fish,
            };
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut cmd, "rigdoctor", &mut out);
            emit(&String::from_utf8_lossy(&out));
            ExitCode::SUCCESS
        }
        Plan::Schema(which) => {
            use rigdoctor::schema::{Output, generate};
            emit(&generate(match which {
                SchemaOutput::Check => Output::Check,
                SchemaOutput::Watch => Output::Watch,
                SchemaOutput::Rules => Output::Rules,
                SchemaOutput::Fit => Output::Fit,
            }));
            ExitCode::SUCCESS
        }
        Plan::Man => match man_page() {
            Ok(page) => {
                emit(&page);
                ExitCode::SUCCESS
            }
            Err(e) => fail(format!("cannot render the man page: {e}")),
        },
        Plan::Explain { id, rules } => {
            let rules = match load_rules(rules.as_deref()) {
                Ok(r) => r,
                Err(e) => return fail(format!("cannot load rules: {e}")),
            };
            match rules.iter().find(|r| r.spec.id.eq_ignore_ascii_case(&id)) {
                Some(r) => {
                    let width = render::human::terminal_width(std::io::stdout());
                    emit(&render::human::explain(r, width));
                    ExitCode::SUCCESS
                }
                None => {
                    let hint = did_you_mean(&id, &rules);
                    fail(format!(
                        "no rule {id:?}; {hint}`rigdoctor rules` lists them"
                    ))
                }
            }
        }
    }
}

/// `rigdoctor fit`: the model's header first (a bad file fails before any
/// probe runs), then the rig, then the report.
fn run_fit(f: rigdoctor::cli::FitPlan, started: std::time::Instant) -> ExitCode {
    use rigdoctor::fit::{command, devices};
    // vLLM reads a Hugging Face directory; the GGUF engines a GGUF header.
    let (g, ck) = if matches!(f.request.engine, command::Engine::Vllm(_)) {
        match rigdoctor::model::safetensors::read_dir(&f.model) {
            Ok(c) => (None, Some(c)),
            Err(e) => return fail(format!("cannot read the model: {e}")),
        }
    } else {
        match command::read_model(&f.model) {
            Ok(g) => (Some(g), None),
            Err(e) => return fail(format!("cannot read the model: {e}")),
        }
    };
    if matches!(f.target, Target::Live { .. })
        && let Some(m) = python_problem(&f.probe)
    {
        return fail(m);
    }
    let opts = f.probe.options_from(started);
    let (rig, probes, mode) = match &f.target {
        Target::Live {
            sysfs,
            procfs,
            devfs,
        } => {
            let live = Live::new(sysfs.clone(), procfs.clone())
                .with_devfs(devfs.clone())
                .with_deadline(opts.deadline)
                .with_tool_env(rigdoctor::probe::env::allowed);
            let (r, p) = rigdoctor::look_rig(&live, &opts);
            (r, p, rigdoctor::source::Mode::Live)
        }
        Target::Replay(dir) => match Replay::open(dir) {
            Ok(src) => {
                let (r, p) = rigdoctor::look_rig(&src, &opts);
                (r, p, rigdoctor::source::Mode::Replay)
            }
            Err(e) => return fail(e.to_string()),
        },
    };
    let devs = devices::devices(&rig);
    let built = match (&g, &ck, &f.request.engine) {
        (_, Some(ck), command::Engine::Vllm(v)) => {
            rigdoctor::fit::vllm::build(ck, &f.request.model, v, &devs, mode, probes)
        }
        (Some(g), _, _) => command::build(g, &f.request, &devs, mode, probes),
        _ => Err("no model read".into()),
    };
    let report = match built {
        Ok(r) => r,
        Err(e) => {
            return fail(format!("cannot size {}: {e}", f.model.display()));
        }
    };
    emit(&match f.format {
        Format::Json => command::render_json(&report),
        Format::Human if ck.is_some() => rigdoctor::fit::vllm::render_human(&report),
        Format::Human => command::render_human(&report),
    });
    if report.facts.fit.verdict == "fits" && report.verdict != "error" {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// One page for the whole tool: clap_mangen's page for `rigdoctor`, then a
/// section per subcommand with its synopsis and options (clap_mangen makes
/// one page per subcommand; packagers ship one rigdoctor.1).
fn man_page() -> std::io::Result<String> {
    let mut cmd = <Cli as clap::CommandFactory>::command();
    cmd.build();
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut out)?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = sub.get_name();
        out.extend_from_slice(format!(".SH \"RIGDOCTOR {}\"\n", name.to_uppercase()).as_bytes());
        let man = clap_mangen::Man::new(sub.clone());
        let mut part = Vec::new();
        man.render_synopsis_section(&mut part)?;
        man.render_description_section(&mut part)?;
        man.render_options_section(&mut part)?;
        // Their own section headings become sub-headings of this one.
        let part = String::from_utf8_lossy(&part)
            .replace(".SH SYNOPSIS\n", "")
            .replace(".SH DESCRIPTION\n", ".PP\n")
            .replace(".SH OPTIONS\n", ".SS Options\n");
        out.extend_from_slice(part.as_bytes());
    }
    out.extend_from_slice(
        b".SH \"EXIT STATUS\"\n.TP\n0\nnothing at or above \\fB--fail-on\\fR (for \\fB--format npd\\fR: OK)\n\
          .TP\n1\nproblems found at or above \\fB--fail-on\\fR (npd: NonOK)\n\
          .TP\n2\nrigdoctor could not do its job: bad usage, unreadable capture, broken site rule \
          (npd: Unknown, also when a probe that matters could not look)\n\
          .SH \"SEE ALSO\"\nThe rule reference docs/rules.md, the JSON format docs/json.md and \
          docs/integrations.md (Prometheus, node-problem-detector, Slurm) in the source tree.\n",
    );
    Ok(String::from_utf8_lossy(&out).into_owned())
}

fn render_rules(rules: &[Rule], format: Format) -> String {
    match format {
        Format::Json => {
            let v: Vec<rules::Listing> = rules.iter().map(rules::Listing::of).collect();
            serde_json::to_string_pretty(&v).unwrap_or_default() + "\n"
        }
        Format::Human => {
            let w = rules.iter().map(|r| r.spec.id.len()).max().unwrap_or(0);
            rules
                .iter()
                .map(|r| {
                    format!(
                        "{:<w$}  {:<7}  {:<11}  {}\n",
                        r.spec.id,
                        r.spec.severity.word(),
                        r.class.as_str(),
                        rigdoctor::diagnose::examples::summary(r)
                    )
                })
                .collect()
        }
    }
}
