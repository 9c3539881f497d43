//! Command-line flags (clap) and the validated plan they become. Conflicting
//! options fail here, before any work starts, and the plan is unit-tested
//! without running anything (ripgrep's lowargs → hiargs split).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use crate::diagnose::{RuleClass, Severity};
use crate::probe::ProbeOptions;
use crate::source::Deadline;

#[derive(Debug, Parser)]
#[command(
    name = "rigdoctor",
    version,
    about = "A doctor for local-AI GPU rigs: finds the configuration traps that fail silently and prints the fix.",
    after_help = "Exit codes: 0 nothing at or above --fail-on, 1 problems found, 2 rigdoctor could not do its job."
)]
pub struct Cli {
    /// Read sysfs from PATH instead of /sys (for tests and containers).
    #[arg(long, global = true, value_name = "PATH")]
    pub sysfs: Option<PathBuf>,
    /// Read procfs from PATH instead of /proc.
    #[arg(long, global = true, value_name = "PATH")]
    pub procfs: Option<PathBuf>,
    /// Look for device nodes below PATH instead of /dev (with --sysfs: the
    /// nodes of that tree's machine; without it they are not judged).
    #[arg(long, global = true, value_name = "PATH")]
    pub devfs: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Human,
    Json,
}

/// The shells `rigdoctor completions` writes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

/// The outputs `rigdoctor schema` describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SchemaOutput {
    /// `check --format json` (rigdoctor/check/1)
    Check,
    /// one line of `watch --format json` (rigdoctor/watch/1)
    Watch,
    /// `rules --format json`
    Rules,
    /// `fit --format json` (rigdoctor/fit/1)
    Fit,
}

/// `check`'s output formats: [`Format`]'s plus those only a check report has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CheckFormat {
    Human,
    Json,
    /// The Prometheus text exposition format (node_exporter's textfile collector).
    Prometheus,
    /// A block to paste into a GitHub issue.
    Markdown,
    /// node-problem-detector's custom plugin protocol: one line of at most 80
    /// bytes; exit 0 OK, 1 NonOK, 2 Unknown.
    Npd,
}

/// `--format npd`'s `--deadline` when none is given: under node-problem-
/// detector's default plugin timeout of 5 s, with room to start and print.
pub const NPD_DEFAULT_DEADLINE: f64 = 4.0;

fn parse_class(s: &str) -> Result<RuleClass, String> {
    RuleClass::parse(s).ok_or_else(|| {
        format!(
            "not a class; one of {}",
            RuleClass::ALL.map(|c| c.as_str()).join(", ")
        )
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FailOn {
    Error,
    Warn,
    Info,
}

/// `check`'s site config: the default file (live checks only), a file
/// named with `--config`, or none (`--no-config`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigChoice {
    Default,
    File(PathBuf),
    None,
}

#[derive(Debug, clap::Args)]
pub struct ProbeArgs {
    /// Seconds each probe command may take before it is killed.
    #[arg(long, default_value_t = 5, value_name = "SECS")]
    pub timeout: u64,
    /// The Python interpreter whose installed packages to read (default: python3 on PATH).
    #[arg(long, value_name = "PATH")]
    pub python: Option<String>,
    /// Also import torch (and IPEX) in that interpreter and ask what it sees: slow, loads the GPU runtime.
    #[arg(long)]
    pub deep: bool,
    /// Seconds the --deep import check may take [default: 60].
    #[arg(long, value_name = "SECS")]
    pub deep_timeout: Option<u64>,
    /// Seconds the whole run may take: probes still running then are stopped and reported as timed out.
    #[arg(long, value_name = "SECS")]
    pub deadline: Option<f64>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Look at this machine (or a capture) and diagnose it.
    Check {
        /// Diagnose a capture (a directory, or a .tar.gz of one) instead of this machine.
        #[arg(long, value_name = "CAPTURE")]
        replay: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = CheckFormat::Human)]
        format: CheckFormat,
        /// Also write the Prometheus metrics to DIR/rigdoctor.prom (atomically), for
        /// node_exporter's --collector.textfile.directory.
        #[arg(long, value_name = "DIR")]
        textfile: Option<PathBuf>,
        /// Only diagnoses of these action classes (hardware, node-config, user-env,
        /// advice; comma-separated) count and are shown.
        #[arg(long = "class", value_name = "CLASS,...", value_delimiter = ',', value_parser = parse_class)]
        classes: Vec<RuleClass>,
        /// Leave out the findings of rule ID, a problem this site has accepted
        /// (repeatable, or ID,ID); the summary names what was left out.
        #[arg(long = "ignore", value_name = "ID", value_delimiter = ',')]
        ignore: Vec<String>,
        /// Exit with 1 when a problem at or above this severity is found.
        #[arg(long, value_enum, default_value_t = FailOn::Error)]
        fail_on: FailOn,
        /// Print only the problems and the summary line.
        #[arg(long, short)]
        quiet: bool,
        /// Also print what each area saw, every GPU's facts (driver, VRAM,
        /// PCIe link, Resizable BAR) and each probe with its status and time.
        #[arg(long, short, conflicts_with = "quiet")]
        verbose: bool,
        #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
        color: ColorChoice,
        /// Add site rules from DIR/*.toml (a rule with a built-in id replaces it).
        #[arg(long, value_name = "DIR")]
        rules: Option<PathBuf>,
        /// The site config to read (accepted findings, site rules) [default:
        /// /etc/rigdoctor/config.toml for a live check; a replay reads none
        /// unless given one].
        #[arg(long, value_name = "FILE", conflicts_with = "no_config")]
        config: Option<PathBuf>,
        /// Read no site config: every finding, as the rules give it.
        #[arg(long)]
        no_config: bool,
        #[command(flatten)]
        probe: ProbeArgs,
    },
    /// Write a capture of this machine (the bug-report bundle) into a new DIR, or
    /// into FILE.tar.gz (.tgz) as one gzip tarball.
    Capture {
        #[arg(long, short, value_name = "DIR|FILE.tar.gz")]
        output: PathBuf,
        #[command(flatten)]
        probe: ProbeArgs,
    },
    /// List the rules.
    Rules {
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
        #[arg(long, value_name = "DIR")]
        rules: Option<PathBuf>,
    },
    /// Print one rule in full.
    Explain {
        id: String,
        #[arg(long, value_name = "DIR")]
        rules: Option<PathBuf>,
    },
    /// Print a shell completion script (bash, zsh or fish) to stdout.
    #[command(
        after_help = "Install:\n  rigdoctor completions bash > /usr/share/bash-completion/completions/rigdoctor\n  rigdoctor completions zsh > /usr/share/zsh/vendor-completions/_rigdoctor\n  rigdoctor completions fish > /usr/share/fish/vendor_completions.d/rigdoctor.fish"
    )]
    Completions {
        #[arg(value_enum)]
        shell: CompletionShell,
    },
    /// Print the man page (roff) to stdout: rigdoctor man > rigdoctor.1
    Man,
    /// Print the JSON Schema of an output (docs/schema/*.json; for packagers
    /// and for regenerating those files).
    #[command(hide = true)]
    Schema {
        #[arg(value_enum)]
        output: SchemaOutput,
    },
    /// Will this model fit on the GPUs, and how (llama.cpp, ollama: a GGUF
    /// file; vllm: a Hugging Face directory): reads the model's headers
    /// only, the GPUs from the same probes as check.
    #[command(
        after_help = "Examples:\n  rigdoctor fit model.gguf\n  rigdoctor fit model.gguf --ctx 32768 --kv-type q8_0\n  rigdoctor fit llama3.1:8b --engine ollama\n  rigdoctor fit model.gguf --replay fixtures/rigs/nv-2x3090-nvlink --format json\n  rigdoctor fit ./Llama-3.1-8B-Instruct --engine vllm --max-model-len 8192\n\nExit codes: 0 fits, 1 partial or does not fit at these settings, 2 cannot read the model or the rig."
    )]
    Fit(FitArgs),
    /// Watch a live inference run and say when it falls back to the CPU.
    #[command(
        after_help = "Examples:\n  rigdoctor watch -- llama-server -m model.gguf -ngl 99\n  rigdoctor watch --pid $(pgrep -f 'ollama serve')\n  rigdoctor watch --record run.jsonl -- python generate.py\n  rigdoctor watch --replay run.jsonl --format json\n\nExit codes: the program's own status (128+N if signal N ended it) unless --fail-on is met (1);\n2 when rigdoctor cannot do its job; 127/126 when the command cannot be found/started."
    )]
    Watch(WatchArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SplitMode {
    /// Whole layers per GPU (llama.cpp's default).
    Layer,
    /// Only the main GPU (-mg 0).
    None,
    /// Each matrix divided by rows across the GPUs (llama.cpp's SYCL backend).
    Row,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KvType {
    F16,
    #[value(name = "q8_0")]
    Q8_0,
    #[value(name = "q4_0")]
    Q4_0,
}

#[derive(Debug, clap::Args)]
pub struct FitArgs {
    /// The GGUF model file (only its header is read); with --engine ollama
    /// also a model name (`llama3.1:8b`), found in OLLAMA_MODELS,
    /// ~/.ollama/models or the service's /usr/share/ollama/.ollama/models;
    /// with --engine vllm a Hugging Face model directory (config.json and
    /// the *.safetensors headers are read).
    #[arg(value_name = "MODEL.gguf")]
    pub model: PathBuf,
    /// The engine whose memory model to use: llama.cpp, ollama or vllm.
    #[arg(long, default_value = "llama.cpp", value_name = "ENGINE")]
    pub engine: String,
    /// llama.cpp -c: the context, all slots together [default: 4096]; ollama
    /// num_ctx, per slot [default: OLLAMA_CONTEXT_LENGTH, else ollama's
    /// default for the VRAM].
    #[arg(long, value_name = "N")]
    pub ctx: Option<u64>,
    /// llama.cpp -ngl: layers on the GPUs [default: all].
    #[arg(long, value_name = "N")]
    pub ngl: Option<u32>,
    #[arg(long, value_enum, default_value_t = SplitMode::Layer)]
    pub split_mode: SplitMode,
    /// llama.cpp --n-cpu-moe: keep the experts of the first N layers in host memory.
    #[arg(long, value_name = "N")]
    pub n_cpu_moe: Option<u32>,
    /// llama.cpp --cpu-moe: keep every layer's experts in host memory.
    #[arg(long, conflicts_with = "n_cpu_moe")]
    pub cpu_moe: bool,
    /// llama.cpp --tensor-split: the share of each GPU, comma-separated.
    #[arg(long, value_name = "A,B,...", value_delimiter = ',')]
    pub tensor_split: Vec<f32>,
    /// llama.cpp -ctk/-ctv, ollama OLLAMA_KV_CACHE_TYPE: the KV cache type [default: f16].
    #[arg(long, value_enum)]
    pub kv_type: Option<KvType>,
    /// llama.cpp -np, ollama OLLAMA_NUM_PARALLEL: parallel slots [default: 1].
    #[arg(long, value_name = "N")]
    pub parallel: Option<u64>,
    /// vLLM --tensor-parallel-size: GPUs the weights are split over [default: 1].
    #[arg(long, value_name = "N", alias = "tp")]
    pub tensor_parallel_size: Option<u32>,
    /// vLLM --max-model-len [default: the model's max_position_embeddings].
    #[arg(long, value_name = "N")]
    pub max_model_len: Option<u64>,
    /// vLLM --gpu-memory-utilization: the share of each GPU's total memory [default: 0.9].
    #[arg(long, value_name = "F")]
    pub gpu_memory_utilization: Option<f64>,
    /// vLLM --kv-cache-dtype [default: auto].
    #[arg(long, value_name = "auto|fp8", value_parser = ["auto", "fp8"])]
    pub kv_cache_dtype: Option<String>,
    /// vLLM --enforce-eager: no CUDA graphs.
    #[arg(long)]
    pub enforce_eager: bool,
    /// Take the GPUs from a capture (a directory, or a .tar.gz of one).
    #[arg(long, value_name = "CAPTURE")]
    pub replay: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// Seconds each probe command may take before it is killed.
    #[arg(long, default_value_t = 5, value_name = "SECS")]
    pub timeout: u64,
}

/// `rigdoctor fit`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct FitPlan {
    pub model: PathBuf,
    pub target: Target,
    pub request: crate::fit::command::Request,
    pub format: Format,
    pub probe: ProbeOptionsPlan,
}

/// The largest context accepted: llama.cpp's context is a u32 of cells.
pub const MAX_FIT_CTX: u64 = u32::MAX as u64;

fn fit_plan(
    a: FitArgs,
    sysfs: Option<PathBuf>,
    procfs: Option<PathBuf>,
    devfs: Option<PathBuf>,
) -> Result<FitPlan, String> {
    let is_ollama = a.engine.eq_ignore_ascii_case("ollama");
    let is_vllm = a.engine.eq_ignore_ascii_case("vllm");
    let vllm_flags = a.tensor_parallel_size.is_some()
        || a.max_model_len.is_some()
        || a.gpu_memory_utilization.is_some()
        || a.kv_cache_dtype.is_some()
        || a.enforce_eager;
    if vllm_flags && !is_vllm {
        return Err("--tensor-parallel-size, --max-model-len, --gpu-memory-utilization, --kv-cache-dtype and --enforce-eager are vLLM flags: add --engine vllm".into());
    }
    let vllm = if is_vllm {
        Some(vllm_settings(&a)?)
    } else {
        None
    };
    if !a.engine.eq_ignore_ascii_case("llama.cpp") && !is_ollama && !is_vllm {
        let known = ["ipex-llm"];
        return Err(if known.iter().any(|k| a.engine.eq_ignore_ascii_case(k)) {
            format!(
                "--engine {}: not modelled yet; llama.cpp, ollama and vllm are (docs/fit.md)",
                a.engine
            )
        } else {
            format!(
                "--engine {}: unknown engine; llama.cpp, ollama and vllm are modelled",
                a.engine
            )
        });
    }
    if let Some(c) = a.ctx
        && (c == 0 || c > MAX_FIT_CTX)
    {
        return Err(format!("--ctx {c} must be 1 to {MAX_FIT_CTX}"));
    }
    if let Some(p) = a.parallel
        && (p == 0 || p > 256)
    {
        return Err(format!("--parallel {p} must be 1 to 256"));
    }
    if is_ollama && (a.n_cpu_moe.is_some() || a.cpu_moe) {
        return Err(
            "--n-cpu-moe and --cpu-moe are llama.cpp flags; ollama does not pass them".into(),
        );
    }
    if is_ollama && (a.split_mode != SplitMode::Layer || !a.tensor_split.is_empty()) {
        return Err(
            "--split-mode and --tensor-split are llama.cpp flags; ollama splits by layer across every GPU it sees"
                .into(),
        );
    }
    if a.tensor_split.iter().any(|x| !x.is_finite() || *x < 0.0) {
        return Err("--tensor-split takes non-negative numbers (e.g. 3,1)".into());
    }
    if a.tensor_split.len() > 128 {
        return Err("--tensor-split has more entries than llama.cpp's 128 devices".into());
    }
    if a.split_mode == SplitMode::None && !a.tensor_split.is_empty() {
        return Err("--split-mode none uses one GPU; --tensor-split does not apply".into());
    }
    let target = match a.replay {
        Some(dir) => {
            if sysfs.is_some() || procfs.is_some() || devfs.is_some() {
                return Err(
                    "--replay reads only the capture; --sysfs/--procfs/--devfs do not apply".into(),
                );
            }
            Target::Replay(dir)
        }
        None => Target::Live {
            sysfs,
            procfs,
            devfs,
        },
    };
    let (kv_name, kv_code) = match a.kv_type.unwrap_or(KvType::F16) {
        KvType::F16 => ("f16", 1),
        KvType::Q8_0 => ("q8_0", 8),
        KvType::Q4_0 => ("q4_0", 2),
    };
    let (engine, model) = if is_ollama {
        // ollama's own variables, from this process's environment: a value
        // that is not UTF-8 is reported as unreadable, never dropped silently.
        let var = |k: &str| {
            std::env::var_os(k).map(|v| v.into_string().unwrap_or_else(|_| "(not UTF-8)".into()))
        };
        let mut o = crate::fit::ollama::OllamaSettings {
            num_ctx: a.ctx,
            num_ctx_from: if a.ctx.is_some() { "--ctx" } else { "" },
            parallel: a.parallel.unwrap_or(1),
            kv_code,
            kv_name: kv_name.into(),
            num_gpu: a.ngl,
            ..crate::fit::ollama::OllamaSettings::default()
        };
        // A flag wins over the variable: mark the flags as given.
        let flags_kv = a.kv_type.is_some();
        let flags_np = a.parallel.is_some();
        let env = |k: &str| match k {
            "OLLAMA_KV_CACHE_TYPE" if flags_kv => None,
            "OLLAMA_NUM_PARALLEL" if flags_np => None,
            _ => var(k),
        };
        crate::fit::ollama::from_env(&mut o, &env);
        let arg = a.model.to_string_lossy().into_owned();
        let model = if crate::fit::ollama::is_path(&arg) {
            a.model.clone()
        } else {
            let roots = crate::fit::ollama::model_roots(
                std::env::var_os("OLLAMA_MODELS").map(PathBuf::from),
                std::env::var_os("HOME").map(PathBuf::from),
            );
            crate::fit::ollama::resolve(&arg, &roots)?
        };
        (crate::fit::command::Engine::Ollama(o), model)
    } else if let Some(v) = vllm {
        (crate::fit::command::Engine::Vllm(v), a.model.clone())
    } else {
        (crate::fit::command::Engine::LlamaCpp, a.model.clone())
    };
    let probe = probe_plan(&ProbeArgs {
        timeout: a.timeout,
        python: None,
        deep: false,
        deep_timeout: None,
        deadline: None,
    })?;
    Ok(FitPlan {
        request: crate::fit::command::Request {
            model: a.model.display().to_string(),
            settings: crate::fit::llama_cpp::Settings {
                ctx: a.ctx.unwrap_or(4096),
                parallel: a.parallel.unwrap_or(1),
                type_k: kv_code,
                type_v: kv_code,
                ..crate::fit::llama_cpp::Settings::default()
            },
            split: crate::fit::split::SplitSettings {
                ngl: a.ngl,
                single_gpu: a.split_mode == SplitMode::None,
                tensor_split: a.tensor_split,
                row: a.split_mode == SplitMode::Row,
                cpu_moe: if a.cpu_moe {
                    Some(u32::MAX)
                } else {
                    a.n_cpu_moe
                },
            },
            kv_type: kv_name.into(),
            engine,
        },
        model,
        target,
        format: a.format,
        probe,
    })
}

/// vLLM's engine arguments, validated (`--engine vllm`).
fn vllm_settings(a: &FitArgs) -> Result<crate::fit::vllm::VllmSettings, String> {
    if a.ctx.is_some()
        || a.ngl.is_some()
        || a.parallel.is_some()
        || a.kv_type.is_some()
        || a.split_mode == SplitMode::None
        || !a.tensor_split.is_empty()
    {
        return Err("--ctx, --ngl, --parallel, --kv-type, --split-mode and --tensor-split are llama.cpp flags; vLLM's are --max-model-len, --tensor-parallel-size, --kv-cache-dtype".into());
    }
    let tp = a.tensor_parallel_size.unwrap_or(1);
    if tp == 0 || tp > 64 {
        return Err(format!("--tensor-parallel-size {tp} must be 1 to 64"));
    }
    let u = a.gpu_memory_utilization.unwrap_or(0.9);
    if !u.is_finite() || u <= 0.0 || u > 1.0 {
        return Err(format!(
            "--gpu-memory-utilization {u} must be above 0 and at most 1 (vLLM's range)"
        ));
    }
    if let Some(l) = a.max_model_len
        && (l == 0 || l > 1 << 32)
    {
        return Err(format!("--max-model-len {l} must be 1 to {}", 1u64 << 32));
    }
    Ok(crate::fit::vllm::VllmSettings {
        tensor_parallel_size: tp,
        max_model_len: a.max_model_len,
        gpu_memory_utilization: u,
        kv_fp8: a.kv_cache_dtype.as_deref() == Some("fp8"),
        enforce_eager: a.enforce_eager,
        ..crate::fit::vllm::VllmSettings::default()
    })
}

#[derive(Debug, clap::Args)]
pub struct WatchArgs {
    /// Watch a running process (and its children and threads).
    #[arg(long, value_name = "PID")]
    pub pid: Option<i32>,
    /// Write rigdoctor's own output to FILE instead of stderr (-- CMD) or stdout (--pid, --replay).
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Seconds between samples [default: 1].
    #[arg(long, value_name = "SECS")]
    pub interval: Option<f64>,
    /// Seconds per classified window [default: 5].
    #[arg(long, value_name = "SECS")]
    pub window: Option<f64>,
    /// Stop watching after SECS (a started program keeps running; its status is still ours).
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,
    /// human: status line and summary; json: JSON Lines (samples, verdicts, summary).
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// Write the samples to FILE (JSON Lines) for --replay or a bug report.
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
    /// Classify a recorded trace instead of watching (no live reads).
    #[arg(long, value_name = "FILE")]
    pub replay: Option<PathBuf>,
    /// Exit with 1 when the run fell back to the CPU (fallback), or when a
    /// diagnosis at or above warn/error was made.
    #[arg(long, value_enum, value_name = "LEVEL")]
    pub fail_on: Option<crate::watch::FailOn>,
    /// Override verdict thresholds from a TOML file (docs/watch.md).
    #[arg(long, value_name = "FILE")]
    pub thresholds: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
    /// Add site rules from DIR/*.toml.
    #[arg(long, value_name = "DIR")]
    pub rules: Option<PathBuf>,
    /// The command to start and watch, after `--`.
    #[arg(last = true, value_name = "CMD", value_parser = clap::value_parser!(std::ffi::OsString))]
    pub command: Vec<std::ffi::OsString>,
}

/// Where the facts come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Live {
        sysfs: Option<PathBuf>,
        procfs: Option<PathBuf>,
        devfs: Option<PathBuf>,
    },
    Replay(PathBuf),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    Check {
        target: Target,
        probe: ProbeOptionsPlan,
        format: CheckFormat,
        textfile: Option<PathBuf>,
        /// `--class`: the classes kept; empty keeps all.
        classes: Vec<RuleClass>,
        /// `--ignore`: rule ids (upper case) whose findings are left out.
        ignore: Vec<String>,
        fail_on: Severity,
        quiet: bool,
        /// `--verbose`: the human page also shows facts and probe times.
        verbose: bool,
        color: bool,
        rules: Option<PathBuf>,
        /// Which site config to read.
        config: ConfigChoice,
    },
    Capture {
        output: PathBuf,
        sysfs: Option<PathBuf>,
        procfs: Option<PathBuf>,
        devfs: Option<PathBuf>,
        probe: ProbeOptionsPlan,
    },
    Rules {
        format: Format,
        rules: Option<PathBuf>,
    },
    Explain {
        id: String,
        rules: Option<PathBuf>,
    },
    Completions(CompletionShell),
    Man,
    Schema(SchemaOutput),
    Watch(crate::watch::WatchPlan),
    Fit(Box<FitPlan>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProbeOptionsPlan {
    pub timeout: Duration,
    pub python: Option<String>,
    /// `--deep`: run the Python import check.
    pub deep: bool,
    pub deep_timeout: Duration,
    /// `--deadline`: seconds for the whole run, from its start.
    pub deadline: Option<f64>,
}

/// The import check's timeout when `--deep-timeout` is not given.
pub const DEFAULT_DEEP_TIMEOUT: Duration = Duration::from_secs(60);

impl ProbeOptionsPlan {
    /// The options of a run that began at `started` (the deadline counts
    /// from there). The same [`Deadline`] must bound the live source:
    /// `Live::with_deadline(opts.deadline)`.
    pub fn options_from(&self, started: std::time::Instant) -> ProbeOptions {
        ProbeOptions {
            timeout: self.timeout,
            python: self.python.clone(),
            deep: self.deep,
            deep_timeout: self.deep_timeout,
            deadline: self.deadline.map(|s| Deadline::after(started, s)),
        }
    }

    /// The options of a run that begins now.
    pub fn options(&self) -> ProbeOptions {
        self.options_from(std::time::Instant::now())
    }
}

/// What the environment says about colour; passed in so the plan is testable.
#[derive(Debug, Clone, Copy)]
pub struct Terminal {
    pub stdout_is_tty: bool,
    pub no_color: bool,
}

fn secs(name: &str, v: Option<f64>, min: f64) -> Result<Option<f64>, String> {
    match v {
        Some(x) if !x.is_finite() || x < min => {
            Err(format!("--{name} is in seconds and must be at least {min}"))
        }
        Some(x) if x > 86400.0 * 365.0 => {
            Err(format!("--{name} of more than a year is surely a mistake"))
        }
        other => Ok(other),
    }
}

fn watch_plan(
    a: WatchArgs,
    sysfs: Option<PathBuf>,
    procfs: Option<PathBuf>,
) -> Result<crate::watch::WatchPlan, String> {
    use crate::watch::{WatchPlan, WatchTarget};
    let target = match (a.pid, a.replay.clone(), a.command.is_empty()) {
        (Some(_), Some(_), _) | (Some(_), _, false) | (_, Some(_), false) => {
            return Err("watch one thing: --pid PID, -- CMD ARGS..., or --replay FILE".into());
        }
        (Some(pid), None, true) => {
            if pid <= 0 {
                return Err(format!("--pid {pid} is not a process id"));
            }
            WatchTarget::Pid(pid)
        }
        (None, Some(f), true) => WatchTarget::Replay(f),
        (None, None, false) => WatchTarget::Command(a.command),
        (None, None, true) => {
            return Err(
                "nothing to watch: give --pid PID, or the command after `--` (rigdoctor watch -- llama-server ...), or --replay FILE"
                    .into(),
            );
        }
    };
    if let WatchTarget::Replay(_) = target {
        if sysfs.is_some() || procfs.is_some() {
            return Err("--replay reads only the trace; --sysfs/--procfs do not apply".into());
        }
        if a.record.is_some() || a.duration.is_some() {
            return Err(
                "--replay classifies a finished trace; --record/--duration do not apply".into(),
            );
        }
    }
    let interval = secs("interval", a.interval, 0.05)?;
    let window = secs("window", a.window, 0.05)?;
    let duration = secs("duration", a.duration, 0.05)?;
    let (i, w) = (
        interval.unwrap_or(crate::watch::DEFAULT_INTERVAL),
        window.unwrap_or(crate::watch::DEFAULT_WINDOW),
    );
    if (interval.is_some() || window.is_some() || !matches!(target, WatchTarget::Replay(_)))
        && w < i
    {
        return Err(format!(
            "--window ({w} s) must be at least one --interval ({i} s)"
        ));
    }
    if a.output.is_some() && a.output == a.record {
        return Err("--output and --record must be different files".into());
    }
    Ok(WatchPlan {
        target,
        sysfs,
        procfs,
        output: a.output,
        interval,
        window,
        duration,
        format: a.format,
        record: a.record,
        fail_on: a.fail_on,
        thresholds: a.thresholds,
        color: a.color,
        rules: a.rules,
    })
}

fn probe_plan(a: &ProbeArgs) -> Result<ProbeOptionsPlan, String> {
    if a.timeout == 0 {
        return Err("--timeout must be at least 1 second".into());
    }
    if a.timeout > 3600 {
        return Err("--timeout is in seconds; more than an hour is surely a mistake".into());
    }
    let deep_timeout = match (a.deep, a.deep_timeout) {
        (false, Some(_)) => {
            return Err("--deep-timeout applies to the --deep import check; add --deep".into());
        }
        (_, Some(0)) => return Err("--deep-timeout must be at least 1 second".into()),
        (_, Some(s)) if s > 3600 => {
            return Err(
                "--deep-timeout is in seconds; more than an hour is surely a mistake".into(),
            );
        }
        (_, Some(s)) => Duration::from_secs(s),
        (_, None) => DEFAULT_DEEP_TIMEOUT,
    };
    let deadline = match a.deadline {
        Some(d) if !d.is_finite() || d < 0.1 => {
            return Err("--deadline is in seconds and must be at least 0.1".into());
        }
        Some(d) if d > 86400.0 => {
            return Err("--deadline is in seconds; more than a day is surely a mistake".into());
        }
        d => d,
    };
    Ok(ProbeOptionsPlan {
        timeout: Duration::from_secs(a.timeout),
        python: a.python.clone(),
        deep: a.deep,
        deep_timeout,
        deadline,
    })
}

impl Cli {
    /// Validate the flags into a plan. Errors are usage errors (exit 2).
    pub fn plan(self, term: Terminal) -> Result<Plan, String> {
        match self.command {
            Command::Check {
                replay,
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
                no_config,
                probe,
            } => {
                let target = match replay {
                    Some(dir) => {
                        if self.sysfs.is_some() || self.procfs.is_some() || self.devfs.is_some() {
                            return Err(
                                "--replay reads only the capture; --sysfs/--procfs/--devfs do not apply"
                                    .into(),
                            );
                        }
                        if probe.python.is_some() {
                            return Err(
                                "--replay reads only the capture; --python does not apply".into()
                            );
                        }
                        if probe.deep {
                            return Err("--replay reads only the capture; it holds the import \
                                 check if it was made with `capture --deep`"
                                .into());
                        }
                        Target::Replay(dir)
                    }
                    None => Target::Live {
                        sysfs: self.sysfs,
                        procfs: self.procfs,
                        devfs: self.devfs,
                    },
                };
                let color = match color {
                    ColorChoice::Always => true,
                    ColorChoice::Never => false,
                    ColorChoice::Auto => {
                        term.stdout_is_tty && !term.no_color && format == CheckFormat::Human
                    }
                };
                let mut probe = probe_plan(&probe)?;
                if format == CheckFormat::Npd && probe.deadline.is_none() {
                    probe.deadline = Some(NPD_DEFAULT_DEADLINE);
                }
                let mut classes = classes;
                classes.sort();
                classes.dedup();
                let mut ignore: Vec<String> = ignore
                    .iter()
                    .map(|i| i.trim().to_ascii_uppercase())
                    .filter(|i| !i.is_empty())
                    .collect();
                ignore.sort();
                ignore.dedup();
                Ok(Plan::Check {
                    target,
                    probe,
                    format,
                    textfile,
                    classes,
                    ignore,
                    fail_on: match fail_on {
                        FailOn::Error => Severity::Error,
                        FailOn::Warn => Severity::Warn,
                        FailOn::Info => Severity::Info,
                    },
                    quiet,
                    verbose,
                    color,
                    rules,
                    config: match (config, no_config) {
                        (Some(f), _) => ConfigChoice::File(f),
                        (None, true) => ConfigChoice::None,
                        (None, false) => ConfigChoice::Default,
                    },
                })
            }
            Command::Capture { output, probe } => Ok(Plan::Capture {
                output,
                sysfs: self.sysfs,
                procfs: self.procfs,
                devfs: self.devfs,
                probe: probe_plan(&probe)?,
            }),
            Command::Rules { format, rules } => Ok(Plan::Rules { format, rules }),
            Command::Explain { id, rules } => Ok(Plan::Explain { id, rules }),
            Command::Completions { shell } => Ok(Plan::Completions(shell)),
            Command::Man => Ok(Plan::Man),
            Command::Schema { output } => Ok(Plan::Schema(output)),
            Command::Watch(a) => Ok(Plan::Watch(watch_plan(a, self.sysfs, self.procfs)?)),
            Command::Fit(a) => Ok(Plan::Fit(Box::new(fit_plan(
                a,
                self.sysfs,
                self.procfs,
                self.devfs,
            )?))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTY: Terminal = Terminal {
        stdout_is_tty: true,
        no_color: false,
    };

    fn plan(args: &[&str], term: Terminal) -> Result<Plan, String> {
        let mut v = vec!["rigdoctor"];
        v.extend_from_slice(args);
        Cli::try_parse_from(v)
            .map_err(|e| e.to_string())?
            .plan(term)
    }

    #[test]
    fn check_defaults() {
        let Plan::Check {
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
        } = plan(&["check"], TTY).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            target,
            Target::Live {
                sysfs: None,
                procfs: None,
                devfs: None
            }
        );
        assert_eq!(probe.timeout, Duration::from_secs(5));
        assert!(!probe.deep, "the import check never runs unasked");
        assert_eq!(probe.deep_timeout, DEFAULT_DEEP_TIMEOUT);
        assert_eq!(
            (format, textfile, fail_on, quiet, color, rules),
            (CheckFormat::Human, None, Severity::Error, false, true, None)
        );
        assert!(!verbose, "the page is not verbose unless asked");
        assert_eq!(config, ConfigChoice::Default);
        assert!(matches!(
            plan(&["check", "--no-config"], TTY).unwrap(),
            Plan::Check {
                config: ConfigChoice::None,
                ..
            }
        ));
        assert!(plan(&["check", "--no-config", "--config", "/x"], TTY).is_err());
        assert!(
            plan(&["check", "-q", "-v"], TTY).is_err(),
            "quiet and verbose contradict each other"
        );
        assert!(matches!(
            plan(&["check", "-v"], TTY).unwrap(),
            Plan::Check { verbose: true, .. }
        ));
        assert!(classes.is_empty(), "every class counts unless asked");
        assert!(ignore.is_empty(), "nothing is ignored unless asked");
        let ignored = match plan(
            &[
                "check",
                "--ignore",
                "pci-link-slot,VER-IPEX-EOL",
                "--ignore",
                " PCI-LINK-SLOT",
            ],
            TTY,
        )
        .unwrap()
        {
            Plan::Check { ignore, .. } => ignore,
            _ => panic!(),
        };
        assert_eq!(ignored, ["PCI-LINK-SLOT", "VER-IPEX-EOL"]);
    }

    #[test]
    fn color_follows_tty_no_color_and_flag() {
        let color = |args: &[&str], term| match plan(args, term).unwrap() {
            Plan::Check { color, .. } => color,
            _ => panic!(),
        };
        assert!(!color(
            &["check"],
            Terminal {
                stdout_is_tty: false,
                no_color: false
            }
        ));
        assert!(!color(
            &["check"],
            Terminal {
                stdout_is_tty: true,
                no_color: true
            }
        ));
        assert!(color(
            &["check", "--color", "always"],
            Terminal {
                stdout_is_tty: false,
                no_color: true
            }
        ));
        assert!(!color(&["check", "--color", "never"], TTY));
        assert!(!color(&["check", "--format", "json"], TTY));
    }

    #[test]
    fn conflicts_fail_before_work() {
        assert!(plan(&["--sysfs", "/tmp", "check", "--replay", "x"], TTY).is_err());
        assert!(
            plan(
                &["check", "--replay", "x", "--python", "/usr/bin/python3"],
                TTY
            )
            .is_err()
        );
        assert!(plan(&["check", "--timeout", "0"], TTY).is_err());
        assert!(plan(&["check", "--fail-on", "sometimes"], TTY).is_err());
    }

    fn watch(args: &[&str]) -> Result<crate::watch::WatchPlan, String> {
        match plan(args, TTY)? {
            Plan::Watch(w) => Ok(w),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn watch_targets() {
        use crate::watch::WatchTarget;
        let w = watch(&["watch", "--pid", "42"]).unwrap();
        assert_eq!(w.target, WatchTarget::Pid(42));
        assert_eq!((w.interval, w.window, w.fail_on), (None, None, None));
        let w = watch(&[
            "watch",
            "--interval",
            "0.5",
            "--",
            "llama-cli",
            "-ngl",
            "99",
            "--",
            "x",
        ])
        .unwrap();
        assert_eq!(
            w.target,
            WatchTarget::Command(
                ["llama-cli", "-ngl", "99", "--", "x"]
                    .iter()
                    .map(std::ffi::OsString::from)
                    .collect()
            ),
            "everything after the first `--` is the program's, dashes included"
        );
        assert_eq!(w.interval, Some(0.5));
        let w = watch(&[
            "watch",
            "--replay",
            "t.jsonl",
            "--format",
            "json",
            "--fail-on",
            "fallback",
        ])
        .unwrap();
        assert_eq!(w.target, WatchTarget::Replay("t.jsonl".into()));
        assert_eq!(w.fail_on, Some(crate::watch::FailOn::Fallback));
        let w = watch(&["--sysfs", "/tmp/s", "watch", "--pid", "1"]).unwrap();
        assert_eq!(w.sysfs, Some("/tmp/s".into()));
    }

    #[test]
    fn watch_conflicts_fail_before_work() {
        for bad in [
            &["watch"][..],
            &["watch", "--pid", "1", "--", "sleep", "1"],
            &["watch", "--pid", "1", "--replay", "t"],
            &["watch", "--replay", "t", "--", "sleep", "1"],
            &["watch", "--pid", "0"],
            &["watch", "--pid", "1", "--interval", "0"],
            &["watch", "--pid", "1", "--interval", "-1"],
            &["watch", "--pid", "1", "--interval", "NaN"],
            &["watch", "--pid", "1", "--interval", "2", "--window", "1"],
            &["watch", "--pid", "1", "--window", "0.5"],
            &["watch", "--pid", "1", "--duration", "0"],
            &["watch", "--pid", "1", "--fail-on", "sometimes"],
            &["watch", "--pid", "1", "--output", "x", "--record", "x"],
            &["--procfs", "/p", "watch", "--replay", "t"],
            &["watch", "--replay", "t", "--record", "r"],
            &["watch", "--replay", "t", "--duration", "3"],
            &["watch", "sleep", "1"],
        ] {
            assert!(watch(bad).is_err(), "{bad:?} should be refused");
        }
        // A window of one interval is fine; replay keeps the trace's timing.
        assert!(watch(&["watch", "--pid", "1", "--interval", "2", "--window", "2"]).is_ok());
        assert!(watch(&["watch", "--replay", "t", "--window", "10"]).is_ok());
    }

    #[test]
    fn global_roots_and_capture() {
        let p = plan(
            &["check", "--sysfs", "/tmp/sys", "--fail-on", "warn", "-q"],
            TTY,
        )
        .unwrap();
        let Plan::Check {
            target,
            fail_on,
            quiet,
            ..
        } = p
        else {
            panic!()
        };
        assert_eq!(
            target,
            Target::Live {
                sysfs: Some("/tmp/sys".into()),
                procfs: None,
                devfs: None
            }
        );
        assert_eq!((fail_on, quiet), (Severity::Warn, true));
        assert!(matches!(
            plan(&["capture", "-o", "/tmp/x"], TTY).unwrap(),
            Plan::Capture { .. }
        ));
        assert!(plan(&["capture"], TTY).is_err());
    }

    #[test]
    fn deep_and_its_own_timeout() {
        let probe = |args: &[&str]| match plan(args, TTY).unwrap() {
            Plan::Check { probe, .. } | Plan::Capture { probe, .. } => probe,
            _ => panic!(),
        };
        let p = probe(&["check", "--deep"]);
        assert!(p.deep);
        assert_eq!(p.deep_timeout, Duration::from_secs(60));
        // The per-probe --timeout does not shorten the import check.
        let p = probe(&["check", "--deep", "--timeout", "2", "--deep-timeout", "1"]);
        assert_eq!(
            (p.timeout, p.deep_timeout),
            (Duration::from_secs(2), Duration::from_secs(1))
        );
        assert_eq!(p.options().deep_timeout, Duration::from_secs(1));
        assert!(probe(&["capture", "-o", "/tmp/x", "--deep"]).deep);
        assert!(!probe(&["capture", "-o", "/tmp/x"]).deep);
        // Mistakes fail before any work.
        assert!(plan(&["check", "--deep-timeout", "5"], TTY).is_err());
        assert!(plan(&["check", "--deep", "--deep-timeout", "0"], TTY).is_err());
        assert!(plan(&["check", "--deep", "--deep-timeout", "7200"], TTY).is_err());
        assert!(plan(&["check", "--replay", "x", "--deep"], TTY).is_err());
    }

    #[test]
    fn npd_gets_a_deadline_under_npds_timeout_and_classes_parse() {
        let check = |args: &[&str]| match plan(args, TTY).unwrap() {
            Plan::Check { probe, classes, .. } => (probe.deadline, classes),
            _ => panic!(),
        };
        assert_eq!(
            check(&["check", "--format", "npd"]).0,
            Some(NPD_DEFAULT_DEADLINE)
        );
        const { assert!(NPD_DEFAULT_DEADLINE < 5.0) };
        assert_eq!(
            check(&["check", "--format", "npd", "--deadline", "2"]).0,
            Some(2.0)
        );
        assert_eq!(check(&["check", "--format", "json"]).0, None);
        assert_eq!(
            check(&[
                "check",
                "--class",
                "node-config,hardware",
                "--class",
                "hardware"
            ])
            .1,
            vec![RuleClass::Hardware, RuleClass::NodeConfig]
        );
        let e = plan(&["check", "--class", "hardwear"], TTY).err().unwrap();
        assert!(
            e.contains("one of hardware, node-config, user-env, advice"),
            "{e}"
        );
    }

    #[test]
    fn issue8_item11_deadline_is_validated_and_counts_from_the_start() {
        let probe = |args: &[&str]| match plan(args, TTY).unwrap() {
            Plan::Check { probe, .. } | Plan::Capture { probe, .. } => probe,
            _ => panic!(),
        };
        assert_eq!(probe(&["check"]).deadline, None);
        assert_eq!(probe(&["check", "--deadline", "2.5"]).deadline, Some(2.5));
        assert_eq!(
            probe(&["capture", "-o", "/tmp/x", "--deadline", "3"]).deadline,
            Some(3.0)
        );
        for bad in ["0", "-1", "NaN", "inf", "100000", "soon"] {
            assert!(
                plan(&["check", "--deadline", bad], TTY).is_err(),
                "--deadline {bad} should be refused"
            );
        }
        let start = std::time::Instant::now();
        let d = probe(&["check", "--deadline", "2"])
            .options_from(start)
            .deadline
            .unwrap();
        assert_eq!(d.at, start + Duration::from_secs(2));
        assert_eq!(d.secs, 2.0);
        // A command's own timeout is cut to what is left, never lengthened.
        assert!(d.clamp(Duration::from_secs(5)) <= Duration::from_secs(2));
        assert_eq!(d.clamp(Duration::from_millis(1)), Duration::from_millis(1));
    }
}
