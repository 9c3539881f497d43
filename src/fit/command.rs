//! `rigdoctor fit`: a GGUF model against the rig's GPUs for llama.cpp, the
//! verdict and the flags that make it fit. The JSON has the check shape
//! (`schema`, `verdict`, `diagnoses[]`, `facts`, `probes[]`); the stable
//! facts are `facts.fit.verdict`, `facts.fit.gpu_layers`,
//! `facts.fit.model.weights_bytes`, `facts.fit.model.layers` and
//! `facts.fit.devices[]` (`id`, `free_bytes`, `weights_bytes`, `kv_bytes`,
//! `compute_bytes`).

use serde::Serialize;

use super::devices::{Device, Devices};
use super::llama_cpp::{self, Hparams, Settings};
use super::ollama::{self, OllamaSettings};
use super::quant;
use super::split::{self, Compute, LayerSizes, Placement, SplitSettings};
use crate::diagnose::{Diagnosis, RuleClass, Severity, human_bytes};
use crate::model::gguf::{self, Gguf};
use crate::rig::ProbeReport;
use crate::source::Mode;

pub const SCHEMA: &str = "rigdoctor/fit/1";

/// What the user asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The model path as given (shown, not re-opened).
    pub model: String,
    pub settings: Settings,
    pub split: SplitSettings,
    /// `--kv-type` as given (`f16`, `q8_0`, `q4_0`).
    pub kv_type: String,
    pub engine: Engine,
}

/// Whose memory model: llama.cpp as given, or ollama running llama.cpp
/// with its own settings (src/fit/ollama.rs).
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Engine {
    #[default]
    LlamaCpp,
    Ollama(OllamaSettings),
    /// vLLM on a Hugging Face directory (src/fit/vllm.rs; its own build).
    Vllm(super::vllm::VllmSettings),
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct FitReport {
    #[schemars(extend("const" = "rigdoctor/fit/1"))]
    pub schema: &'static str,
    /// `ok` (fits), `warn` (partial), `error` (no-fit), as check's verdict.
    #[schemars(extend("enum" = ["ok", "warn", "error"]))]
    pub verdict: &'static str,
    pub mode: Mode,
    pub diagnoses: Vec<Diagnosis>,
    pub facts: FitFacts,
    pub probes: Vec<ProbeReport>,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct FitFacts {
    pub fit: Fit,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Fit {
    /// `llama.cpp` or `ollama`.
    pub engine: &'static str,
    /// `fits`: every layer on the GPUs; `partial`: `gpu_layers` of
    /// `total_layers`; `no-fit`: none.
    #[schemars(extend("enum" = ["fits", "partial", "no-fit"]))]
    pub verdict: &'static str,
    /// Layers on the GPUs as llama.cpp counts them (`-ngl`, the output
    /// layer included): the requested ones when they fit, else the most
    /// that fit.
    pub gpu_layers: u32,
    /// `model.layers + 1`: llama.cpp's "offloaded N/M layers" M.
    pub total_layers: u32,
    pub settings: FitSettings,
    pub model: FitModel,
    /// `cuda`, `rocm`, `sycl`, or empty when there is no GPU.
    pub backend: String,
    /// The variable that narrows the GPUs apps see, when set.
    pub selector: Option<String>,
    /// GPUs of that backend on the rig, before the selector.
    pub gpus_on_rig: u32,
    pub devices: Vec<FitDevice>,
    /// What stays in host memory (the input layer, CPU layers and their KV).
    pub host: FitHost,
    /// The largest smaller quantisation of the same model (llama.cpp's
    /// mixes, sized from the shapes) with every layer on the GPUs, when
    /// this file does not fit; null when it fits or none does.
    pub smaller_quant: Option<FitQuant>,
    /// `--n-cpu-moe N`: the smallest N with every other tensor on the GPUs,
    /// for a MoE model that does not fit; null otherwise.
    pub n_cpu_moe_fix: Option<u32>,
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct FitQuant {
    /// `Q8_0`, `Q6_K`, `Q5_K_M`, `Q4_K_M`, `IQ4_XS` or `Q3_K_M`.
    pub mix: String,
    /// The estimated weights of the re-quantised file (not this file).
    pub weights_bytes: u64,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct FitSettings {
    /// `-c` as given.
    pub ctx: u64,
    /// Cells llama.cpp allocates (padded to 256).
    pub ctx_cells: u64,
    pub parallel: u64,
    pub ubatch: u64,
    pub kv_type: String,
    /// `-ngl` as given; null: all.
    pub ngl: Option<u32>,
    /// `layer`, `row` or `none` (llama.cpp); `tensor` (vLLM).
    pub split_mode: &'static str,
    /// `--n-cpu-moe` (the first N blocks' experts on the host); null when
    /// not given; `--cpu-moe` is the block count.
    pub n_cpu_moe: Option<u32>,
    pub tensor_split: Vec<f32>,
    /// What ollama ran llama.cpp with (null for llama.cpp itself).
    pub ollama: Option<FitOllama>,
    /// vLLM's sizing (null for the GGUF engines).
    pub vllm: Option<super::vllm::FitVllm>,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct FitOllama {
    /// `num_ctx` per slot, after the cap at the model's training context.
    pub num_ctx: u64,
    /// Where it came from: `--ctx`, `OLLAMA_CONTEXT_LENGTH`, or
    /// `default` (ollama's VRAM-based default).
    pub num_ctx_source: String,
    /// The model's `context_length`, 0 when the file does not say.
    pub n_ctx_train: u64,
    /// `OLLAMA_NUM_PARALLEL`.
    pub parallel: u64,
    /// llama.cpp's `--fit` placed the layers (no `num_gpu` given).
    pub auto_layers: bool,
    /// `--fit`'s margin kept free on each GPU, bytes.
    pub fit_margin_bytes: Vec<u64>,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct FitModel {
    pub path: String,
    pub architecture: String,
    /// The block count.
    pub layers: u32,
    /// The sum of the tensors' data bytes, exact.
    pub weights_bytes: u64,
    /// The KV cache of every layer at these settings.
    pub kv_bytes: u64,
    /// The compute buffer estimate of one device holding everything.
    pub compute_bytes: u64,
    /// The output is tied to `token_embd` (a copy goes to the output's GPU).
    pub tied_output: bool,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct FitDevice {
    /// llama.cpp's name for it: `CUDA0`, `ROCm0`, `SYCL0`.
    pub id: String,
    pub name: String,
    pub pci: Option<String>,
    pub total_bytes: u64,
    /// Null when no probe reports it (then all of it counts as free).
    pub used_bytes: Option<u64>,
    pub free_bytes: u64,
    /// Layers placed on it (the output layer counts as one).
    pub layers: u32,
    pub weights_bytes: u64,
    pub kv_bytes: u64,
    pub compute_bytes: u64,
    /// weights + KV + compute.
    pub need_bytes: u64,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct FitHost {
    pub layers: u32,
    /// The input embeddings, the CPU layers and the experts kept on the
    /// host (mapped from the file with llama.cpp's default mmap).
    pub weights_bytes: u64,
    /// Of those, the experts of GPU layers kept on the host (`--n-cpu-moe`).
    pub experts_bytes: u64,
    pub kv_bytes: u64,
    /// weights + KV.
    pub need_bytes: u64,
    /// `MemAvailable` of /proc/meminfo (check's host probe); null when
    /// it could not be read.
    pub available_bytes: Option<u64>,
    /// need within available; null when available is unknown.
    pub fits: Option<bool>,
}

/// The model's shapes and the arithmetic at any setting.
struct Model<'a> {
    g: &'a Gguf,
    h: Hparams,
    /// `--n-cpu-moe`: blocks whose experts stay on the host.
    cpu_moe: usize,
}

impl Model<'_> {
    fn at(&self, s: &Settings) -> Result<(LayerSizes, Compute), String> {
        let kv = llama_cpp::kv_cache(&self.h, s)?;
        let mut sizes = split::layer_sizes(self.g, &kv.layer_bytes);
        sizes.cpu_moe = self.cpu_moe.min(sizes.n_layer());
        Ok((sizes, llama_cpp::compute_parts(&self.h, s)))
    }
}

/// The placement for `ngl` with the request's split mode: by layer, or
/// (`--split-mode row`) by layer with every matrix divided by rows.
fn place_mode(
    sizes: &LayerSizes,
    c: Compute,
    ngl: u32,
    split_v: &[f32],
    devs: &[Device],
    sp: &SplitSettings,
) -> Placement {
    if sp.row && !sp.single_gpu {
        split::place_row(sizes, c, ngl, split_v, &row_starts(devs, sp))
    } else {
        split::place(sizes, c, ngl, split_v)
    }
}

/// Where each device's rows start in the split buffer: `--tensor-split`
/// when given, else the backend's default, each device's total VRAM.
fn row_starts(devs: &[Device], sp: &SplitSettings) -> Vec<f32> {
    let given = sp.tensor_split.iter().take(devs.len()).any(|&x| x != 0.0);
    let w: Vec<f32> = (0..devs.len())
        .map(|i| {
            if given {
                sp.tensor_split.get(i).copied().unwrap_or(0.0)
            } else {
                devs[i].total_bytes as f32
            }
        })
        .collect();
    split::row_starts(&w)
}

fn gib(n: u64) -> String {
    human_bytes(n as f64)
}

fn frees(d: &[Device]) -> Vec<u64> {
    d.iter().map(Device::free_bytes).collect()
}

/// The devices llama.cpp uses with these settings (split-mode none: the first).
fn used<'a>(d: &'a [Device], s: &SplitSettings) -> &'a [Device] {
    if s.single_gpu {
        &d[..d.len().min(1)]
    } else {
        d
    }
}

fn fits_all(m: &Model, s: &Settings, devs: &[Device], sp: &SplitSettings) -> Result<bool, String> {
    let (sizes, c) = m.at(s)?;
    let devs = used(devs, sp);
    let free = frees(devs);
    let split = split::effective_split(&free, sp);
    let p = place_mode(&sizes, c, sizes.n_layer() as u32 + 1, &split, devs, sp);
    Ok(!devs.is_empty() && p.fits(&free))
}

pub fn build(
    g: &Gguf,
    req: &Request,
    devs: &Devices,
    mode: Mode,
    probes: Vec<ProbeReport>,
) -> Result<FitReport, String> {
    let h = Hparams::from_gguf(g)?;
    let cpu_moe = req.split.cpu_moe.map_or(0, |n| n as usize);
    let m = Model { g, h, cpu_moe };
    let mut notes = devs.notes.clone();
    let (s, oll) = match &req.engine {
        Engine::LlamaCpp => (req.settings, None),
        Engine::Ollama(o) => {
            let (s, f) = ollama_settings(o, &m.h, &devs.visible, &mut notes);
            (s, Some((o, f)))
        }
        Engine::Vllm(_) => return Err("vLLM reads a model directory: fit::vllm::build".into()),
    };
    let (sizes, compute) = m.at(&s)?;
    let n_layer = sizes.n_layer() as u32;
    let total = n_layer + 1;
    let want = req.split.ngl.unwrap_or(total).min(total);
    let on = used(&devs.visible, &req.split);
    let free = frees(on);
    let split_v = split::effective_split(&free, &req.split);
    let place_at = |n: u32| place_mode(&sizes, compute, n, &split_v, on, &req.split);
    let asked = place_at(want);
    let (placement, fits_asked): (Placement, bool) = if let Some((o, _)) = oll
        && req.split.ngl.is_none()
    {
        let p = ollama_place(&sizes, compute, &free, o);
        let all = p.gpu_layers() == total;
        (p, all)
    } else if asked.fits(&free) {
        (asked, true)
    } else {
        let best = (0..=want)
            .rev()
            .find(|&n| place_at(n).fits(&free))
            .unwrap_or(0);
        (place_at(best), false)
    };
    let gpu_layers = if on.is_empty() {
        0
    } else {
        placement.gpu_layers()
    };
    let verdict = if gpu_layers == 0 {
        "no-fit"
    } else if gpu_layers == total {
        "fits"
    } else {
        "partial"
    };

    if req.split.single_gpu && devs.visible.len() > 1 {
        notes.push(format!(
            "--split-mode none: only {} is used of {} GPUs",
            devs.visible[0].id,
            devs.visible.len()
        ));
    }

    let row_on_cuda = req.split.row && !req.split.single_gpu && devs.backend != "sycl";
    if req.split.row && on.len() > 1 {
        notes.push(
            "--split-mode row: every matrix of a GPU layer is divided by rows over all the GPUs; the layer's norms, KV cache and compute stay on its device"
                .into(),
        );
    }
    let row_moe = req.split.row
        && !req.split.single_gpu
        && devs.backend == "sycl"
        && sizes.is_moe()
        && sizes.cpu_moe < sizes.n_layer();

    // The fixes, each checked by placing it.
    let mut fixes: Vec<String> = Vec::new();
    if let Some((o, _)) = oll
        && verdict != "fits"
        && !on.is_empty()
    {
        fixes = ollama_fixes(&m, &s, o, devs, req.split.ngl)?;
    } else if verdict != "fits" && !on.is_empty() {
        let full = format!("-ngl {total}");
        if on.len() > 1
            && !req.split.single_gpu
            && !req.split.row
            && let Some(counts) = split::balanced_split(&sizes, compute, &free)
        {
            let ts: Vec<String> = counts.iter().map(u32::to_string).collect();
            fixes.push(format!(
                "{full} --tensor-split {}    # whole layers per GPU, by what each has free",
                ts.join(",")
            ));
        }
        if s.type_k == 1 && s.type_v == 1 {
            let q8 = Settings {
                type_k: 8,
                type_v: 8,
                ..s
            };
            if fits_all(&m, &q8, &devs.visible, &req.split)? {
                fixes.push(format!(
                    "{full} -ctk q8_0 -ctv q8_0 -fa on    # KV cache in q8_0 (half of f16; a quantized V cache needs flash attention)"
                ));
            }
        }
        // The largest context that fits with every layer on the GPUs.
        let best = largest_ctx(llama_cpp::n_ctx(&s), |c| {
            fits_all(&m, &Settings { ctx: c, ..s }, &devs.visible, &req.split)
        })?;
        if best > 0 {
            fixes.push(format!(
                "{full} -c {best}    # the largest context that fits on the GPUs"
            ));
        }
        let most = (0..=total)
            .rev()
            .find(|&n| place_at(n).fits(&free))
            .unwrap_or(0);
        if !fits_asked && gpu_layers > 0 {
            fixes.push(format!(
                "-ngl {gpu_layers}    # the most layers that fit; the rest runs on the CPU, slower"
            ));
        } else if fits_asked && most > want {
            fixes.push(format!("-ngl {most}    # the most layers that fit"));
        }
        if devs.all.len() > devs.visible.len() && fits_all(&m, &s, &devs.all, &req.split)? {
            let var = match devs.backend.as_str() {
                "rocm" => "HIP_VISIBLE_DEVICES",
                "sycl" => "ONEAPI_DEVICE_SELECTOR",
                _ => "CUDA_VISIBLE_DEVICES",
            };
            let list: Vec<String> = (0..devs.all.len()).map(|i| i.to_string()).collect();
            let val = if var == "ONEAPI_DEVICE_SELECTOR" {
                format!("level_zero:{}", list.join(","))
            } else {
                list.join(",")
            };
            fixes.push(format!(
                "export {var}={val}    # every GPU: the model fits on all {}",
                devs.all.len()
            ));
        }
    }

    // A MoE model: the smallest --n-cpu-moe with every other tensor on the
    // GPUs (llama.cpp's -ncmoe keeps blocks 0..N's experts in host memory).
    let mut n_cpu_moe_fix = None;
    if verdict != "fits"
        && oll.is_none()
        && !on.is_empty()
        && sizes.is_moe()
        && req.split.cpu_moe.is_none()
    {
        // One sizing, N moved: each try is a placement, O(layers).
        let all_devs = used(&devs.visible, &req.split);
        let all_free = frees(all_devs);
        let all_split = split::effective_split(&all_free, &req.split);
        let mut sz = sizes.clone();
        for n in 1..=n_layer {
            sz.cpu_moe = n as usize;
            let p = place_mode(&sz, compute, total, &all_split, all_devs, &req.split);
            if p.fits(&all_free) {
                let host: u64 = sz.experts.iter().take(n as usize).sum();
                fixes.insert(
                    0,
                    format!(
                        "-ngl {total} --n-cpu-moe {n}    # the experts of the first {n} layers in host memory ({}), every other tensor on the GPUs",
                        gib(host)
                    ),
                );
                n_cpu_moe_fix = Some(n);
                break;
            }
        }
    }
    // The largest smaller quantisation of this model that fits.
    let mut smaller_quant = None;
    if verdict != "fits" && !on.is_empty() {
        let now = g.weights_bytes();
        for mix in quant::LADDER {
            let Some(q) = quant::requantise(g, mix) else {
                continue;
            };
            let w = q.weights_bytes();
            if w >= now {
                continue;
            }
            let qm = Model {
                g: &q,
                h: m.h.clone(),
                cpu_moe: m.cpu_moe,
            };
            let ok = match oll {
                Some((o, _)) => ollama_all(&qm, &s, &devs.visible, o)?,
                None => fits_all(&qm, &s, &devs.visible, &req.split)?,
            };
            if ok {
                fixes.push(format!(
                    "# a {mix} of this model, about {} of weights (an estimate from the tensor shapes of what llama-quantize would write), fits with every layer on the GPUs",
                    gib(w)
                ));
                smaller_quant = Some(FitQuant {
                    mix: mix.into(),
                    weights_bytes: w,
                });
                break;
            }
        }
    }

    let mut diagnoses = Vec::new();
    let mut diag =
        |id: &str, severity, title: String, evidence: String, explain: &str, fix: String| {
            diagnoses.push(Diagnosis {
                id: id.into(),
                severity,
                class: RuleClass::UserEnv,
                area: "fit".into(),
                gpu: None,
                title,
                evidence,
                explain: explain.into(),
                fix,
                refs: vec!["docs/fit.md".into()],
                could_not_look: false,
            });
        };
    let need: Vec<String> = on
        .iter()
        .zip(&place_at(want).devices)
        .map(|(d, u)| {
            format!(
                "{} needs {} of {} free",
                d.id,
                gib(u.total()),
                gib(d.free_bytes())
            )
        })
        .collect();
    let fix_text = if fixes.is_empty() {
        "a smaller quantisation of the model, or a GPU with more memory".to_string()
    } else {
        fixes.join("\n")
    };
    match verdict {
        "no-fit" if on.is_empty() => diag(
            "FIT-NO-GPU",
            Severity::Error,
            "No GPU llama.cpp can use: the model would run on the CPU".into(),
            if devs.all.is_empty() {
                "no GPU with a known memory size on this rig".into()
            } else {
                format!(
                    "{} hides every GPU",
                    devs.selector
                        .clone()
                        .unwrap_or_else(|| "the selector".into())
                )
            },
            "llama.cpp offloads layers only to GPUs its backend lists; with none it loads everything into host memory.",
            "check the rig first: rigdoctor check".into(),
        ),
        "no-fit" => diag(
            "FIT-NO-FIT",
            Severity::Error,
            "The model does not fit on the GPUs, not even one layer".into(),
            need.join("; "),
            "Even the output layer with its compute buffer is larger than the free VRAM.",
            fix_text,
        ),
        "partial" if !fits_asked => diag(
            "FIT-PARTIAL",
            Severity::Warn,
            format!("Only {gpu_layers} of {total} layers fit on the GPUs at these settings"),
            need.join("; "),
            "llama.cpp gives the GPUs whole layers; those that do not fit stay on the CPU (with -ngl set too high the load fails instead). Each layer on the CPU slows every token.",
            fix_text,
        ),
        "partial" => diag(
            "FIT-PARTIAL",
            Severity::Warn,
            format!("-ngl {want} puts {gpu_layers} of {total} layers on the GPUs"),
            need.join("; "),
            "The other layers run on the CPU, which slows every token.",
            fix_text,
        ),
        _ => {}
    }
    if row_on_cuda && !on.is_empty() {
        diag(
            "FIT-ROW-UNSUPPORTED",
            Severity::Error,
            format!(
                "--split-mode row: this llama.cpp has no row split for {}; the load stops",
                devs.backend.to_uppercase()
            ),
            format!(
                "llama.cpp (as vendored in llama-cpp-python 0.3.36) stops with \"device {} does not support split buffers\": only its SYCL backend provides one",
                on[0].id
            ),
            "make_gpu_buft_list asks each backend for ggml_backend_split_buffer_type; the CUDA/HIP backend no longer registers one (its multi-GPU parallel mode is --split-mode tensor).",
            "--split-mode layer    # whole layers per GPU (the placement above is the row split's, for older builds)".into(),
        );
    }
    if row_moe {
        diag(
            "FIT-ROW-MOE",
            Severity::Error,
            "--split-mode row with a MoE model: the SYCL backend aborts on the expert tensors".into(),
            "ggml-sycl asserts \"mul_mat_id does not support split buffers\", and the expert tensors are placed in the split buffer".into(),
            "The row split covers only plain matrix products; the experts' MUL_MAT_ID does not accept a split weight.",
            "--split-mode layer, or --cpu-moe to keep the experts in host memory".into(),
        );
    }
    let host_need = placement.host.weights.saturating_add(placement.host.kv);
    let host_fits = devs.host_available.map(|a| host_need <= a);
    if host_fits == Some(false) {
        let avail = devs.host_available.unwrap_or(0);
        diag(
            "FIT-HOST-MEMORY",
            Severity::Error,
            format!(
                "What stays on the CPU ({}) is more than the host's available memory ({})",
                gib(host_need),
                gib(avail)
            ),
            format!(
                "host: weights {} (input embeddings, CPU layers, experts kept on the host) + KV {}; MemAvailable {}",
                gib(placement.host.weights),
                gib(placement.host.kv),
                gib(avail)
            ),
            "llama.cpp maps the weights from the file (mmap, its default): the pages that do not fit are dropped and read from disk again on every token; the KV cache is allocated memory. With --no-mmap or --mlock, or when the KV cache alone does not fit, the load swaps or is OOM-killed.",
            "free host memory, or put more on the GPUs (see the other fixes), or a smaller quantisation".into(),
        );
    } else if host_fits.is_none() && host_need > sizes.input {
        notes.push(format!(
            "host memory: MemAvailable could not be read; {} stays on the CPU, not checked against it",
            gib(host_need)
        ));
    }
    if let Some(sel) = &devs.selector
        && devs.all.len() > devs.visible.len()
    {
        let all: u64 = devs.all.iter().map(Device::free_bytes).sum();
        let vis: u64 = devs.visible.iter().map(Device::free_bytes).sum();
        diag(
            "FIT-SELECTOR",
            Severity::Info,
            format!(
                "{sel} leaves {} of {} GPUs: {} of {} free VRAM",
                devs.visible.len(),
                devs.all.len(),
                gib(vis),
                gib(all)
            ),
            sel.to_string(),
            "Apps see only the GPUs the variable lists; fit counts those.",
            "unset it, or list every GPU, if the model is meant to use them all".into(),
        );
    }

    let devices = on
        .iter()
        .zip(&placement.devices)
        .map(|(d, u)| FitDevice {
            id: d.id.clone(),
            name: d.name.clone(),
            pci: d.pci.clone(),
            total_bytes: d.total_bytes,
            used_bytes: d.used_bytes,
            free_bytes: d.free_bytes(),
            layers: u.layers,
            weights_bytes: u.weights,
            kv_bytes: u.kv,
            compute_bytes: u.compute,
            need_bytes: u.total(),
        })
        .collect();
    let kv_type = match &req.engine {
        Engine::Ollama(o) => o.kv_name.clone(),
        Engine::LlamaCpp | Engine::Vllm(_) => req.kv_type.clone(),
    };
    let worst = diagnoses.iter().map(|d| d.severity).max();
    Ok(FitReport {
        schema: SCHEMA,
        verdict: match (verdict, worst) {
            (_, Some(Severity::Error)) => "error",
            ("fits", Some(Severity::Warn)) => "warn",
            ("fits", _) => "ok",
            ("partial", _) => "warn",
            _ => "error",
        },
        mode,
        diagnoses,
        facts: FitFacts {
            fit: Fit {
                engine: if oll.is_some() { "ollama" } else { "llama.cpp" },
                verdict,
                gpu_layers,
                total_layers: total,
                settings: FitSettings {
                    ctx: s.ctx,
                    ctx_cells: llama_cpp::n_ctx(&s),
                    parallel: s.parallel,
                    ubatch: s.ubatch,
                    kv_type,
                    ngl: req.split.ngl,
                    split_mode: if req.split.single_gpu {
                        "none"
                    } else if req.split.row {
                        "row"
                    } else {
                        "layer"
                    },
                    n_cpu_moe: req.split.cpu_moe.map(|n| n.min(n_layer)),
                    tensor_split: req.split.tensor_split.clone(),
                    ollama: oll.map(|(_, f)| f),
                    vllm: None,
                },
                model: FitModel {
                    path: req.model.clone(),
                    architecture: m.h.arch.clone(),
                    layers: n_layer,
                    weights_bytes: g.weights_bytes(),
                    kv_bytes: sizes.kv.iter().sum(),
                    compute_bytes: compute.logits.saturating_add(compute.activations),
                    tied_output: sizes.tied_output > 0,
                },
                backend: devs.backend.clone(),
                selector: devs.selector.clone(),
                gpus_on_rig: devs.all.len() as u32,
                devices,
                host: FitHost {
                    layers: placement.host.layers,
                    weights_bytes: placement.host.weights,
                    experts_bytes: (0..sizes.cpu_moe)
                        .filter(|&i| placement_on_gpu(&sizes, placement.ngl, i))
                        .map(|i| sizes.experts[i])
                        .sum(),
                    kv_bytes: placement.host.kv,
                    need_bytes: host_need,
                    available_bytes: devs.host_available,
                    fits: host_fits,
                },
                smaller_quant,
                n_cpu_moe_fix,
                notes,
            },
        },
        probes,
    })
}

/// Block `il` is on a GPU at `ngl` (the last `ngl` of the `n_layer + 1`).
fn placement_on_gpu(sizes: &LayerSizes, ngl: u32, il: usize) -> bool {
    il >= (sizes.n_layer() + 1).saturating_sub(ngl as usize)
}

/// The largest multiple of 256 below `limit` for which `fits` holds (memory
/// grows with the context, so a binary search), 0 when none does.
fn largest_ctx(
    limit: u64,
    mut fits: impl FnMut(u64) -> Result<bool, String>,
) -> Result<u64, String> {
    let (mut lo, mut hi) = (0u64, limit / 256);
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if mid * 256 < limit && fits(mid * 256)? {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    Ok(lo * 256)
}

/// The llama.cpp settings ollama runs with: `-c num_ctx × parallel -np
/// parallel`, its KV type; `num_ctx` from the flag or the variable, else
/// its VRAM-based default, capped at the training context.
fn ollama_settings(
    o: &OllamaSettings,
    h: &Hparams,
    visible: &[Device],
    notes: &mut Vec<String>,
) -> (Settings, FitOllama) {
    let totals: Vec<u64> = visible.iter().map(|d| d.total_bytes).collect();
    let (asked, source) = match o.num_ctx {
        Some(n) if o.num_ctx_from == "OLLAMA_CONTEXT_LENGTH" => (n, "OLLAMA_CONTEXT_LENGTH"),
        Some(n) => (n, "--ctx"),
        None => (ollama::default_num_ctx(&totals, o.gpu_overhead), "default"),
    };
    let num_ctx = ollama::effective_num_ctx(asked, h.n_ctx_train);
    notes.extend(o.notes.iter().cloned());
    if num_ctx < asked {
        notes.push(format!(
            "num_ctx {asked} is more than the model's training context; ollama runs it with {num_ctx}"
        ));
    }
    if source == "default" {
        notes.push(format!(
            "num_ctx {asked}: ollama's default for {} of VRAM (262144 from 47 GiB, 32768 from 23 GiB, else 4096); set OLLAMA_CONTEXT_LENGTH or num_ctx to change it",
            human_bytes(totals.iter().map(|t| t.saturating_sub(o.gpu_overhead)).sum::<u64>() as f64)
        ));
    }
    let s = Settings {
        ctx: num_ctx.saturating_mul(o.parallel).min(u64::from(u32::MAX)),
        parallel: o.parallel,
        type_k: o.kv_code,
        type_v: o.kv_code,
        ..Settings::default()
    };
    let f = FitOllama {
        num_ctx,
        num_ctx_source: source.into(),
        n_ctx_train: h.n_ctx_train,
        parallel: o.parallel,
        auto_layers: o.num_gpu.is_none(),
        fit_margin_bytes: (0..visible.len()).map(|i| o.margin(i)).collect(),
    };
    (s, f)
}

/// llama.cpp `--fit`'s placement on these devices (ollama passes no `-ngl`).
fn ollama_place(
    sizes: &LayerSizes,
    compute: Compute,
    free: &[u64],
    o: &OllamaSettings,
) -> Placement {
    let margins: Vec<u64> = (0..free.len()).map(|i| o.margin(i)).collect();
    let counts = ollama::fit_auto(sizes, compute, free, &margins);
    let n: u32 = counts.iter().sum();
    let split: Vec<f32> = counts.iter().map(|&c| c as f32).collect();
    split::place(sizes, compute, n, &split)
}

/// Every layer on the GPUs under ollama with settings `s`.
fn ollama_all(
    m: &Model,
    s: &Settings,
    devs: &[Device],
    o: &OllamaSettings,
) -> Result<bool, String> {
    let (sizes, c) = m.at(s)?;
    let p = ollama_place(&sizes, c, &frees(devs), o);
    Ok(!devs.is_empty() && p.gpu_layers() == sizes.n_layer() as u32 + 1)
}

/// ollama's fixes, each checked by placing it: the service's variables.
fn ollama_fixes(
    m: &Model,
    s: &Settings,
    o: &OllamaSettings,
    devs: &Devices,
    num_gpu: Option<u32>,
) -> Result<Vec<String>, String> {
    let mut env: Vec<String> = Vec::new();
    if num_gpu.is_some() {
        let auto = OllamaSettings {
            num_gpu: None,
            ..o.clone()
        };
        if ollama_all(m, s, &devs.visible, &auto)? {
            env.push("# drop num_gpu from the Modelfile or request: llama.cpp then fits the layers itself".into());
        }
    }
    if s.type_k == 1 && s.type_v == 1 {
        let q8 = Settings {
            type_k: 8,
            type_v: 8,
            ..*s
        };
        if ollama_all(m, &q8, &devs.visible, o)? {
            env.push("Environment=\"OLLAMA_KV_CACHE_TYPE=q8_0\"    # KV cache in q8_0, half of f16 (before ollama 0.30 also OLLAMA_FLASH_ATTENTION=1)".into());
        }
    }
    if s.parallel > 1 {
        let one = Settings {
            ctx: s.ctx / s.parallel,
            parallel: 1,
            ..*s
        };
        if ollama_all(m, &one, &devs.visible, o)? {
            env.push(format!(
                "Environment=\"OLLAMA_NUM_PARALLEL=1\"    # one slot: {} parallel slots each hold a full context of KV cache",
                s.parallel
            ));
        }
    }
    // The largest num_ctx (per slot) with every layer on the GPUs.
    let best = largest_ctx(s.ctx / s.parallel.max(1), |c| {
        let t = Settings {
            ctx: c * s.parallel,
            ..*s
        };
        ollama_all(m, &t, &devs.visible, o)
    })?;
    if best > 0 {
        env.push(format!(
            "Environment=\"OLLAMA_CONTEXT_LENGTH={best}\"    # the largest context that fits on the GPUs (per request: \"options\": {{\"num_ctx\": {best}}})"
        ));
    }
    if devs.all.len() > devs.visible.len() && ollama_all(m, s, &devs.all, o)? {
        env.push(format!(
            "# {} hides GPUs: remove it from the service, the model fits on all {}",
            devs.selector
                .clone()
                .unwrap_or_else(|| "the selector".into()),
            devs.all.len()
        ));
    }
    if env.is_empty() {
        return Ok(Vec::new());
    }
    let mut out =
        vec!["sudo systemctl edit ollama.service    # under [Service], one of:".to_string()];
    out.extend(env);
    out.push("sudo systemctl restart ollama".into());
    Ok(out)
}

/// Read the model's header; every failure is a sentence (exit 2).
pub fn read_model(path: &std::path::Path) -> Result<Gguf, String> {
    gguf::read_file(path).map_err(|e| format!("{}: {e}", path.display()))
}

pub fn render_json(r: &FitReport) -> String {
    serde_json::to_string_pretty(r).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}")) + "\n"
}

/// The page: model, settings, one line per device, the verdict and fixes.
pub fn render_human(r: &FitReport) -> String {
    use crate::text::escape_controls as esc;
    let f = &r.facts.fit;
    let m = &f.model;
    let s = &f.settings;
    let mut out = format!(
        "rigdoctor {} · fit · {}\n\n",
        env!("CARGO_PKG_VERSION"),
        match r.mode {
            Mode::Replay => "replay of a capture",
            _ => "this machine",
        }
    );
    out += &format!(
        "  model     {}: {}, {} layers, {} of weights{}\n",
        esc(&m.path),
        esc(&m.architecture),
        m.layers,
        gib(m.weights_bytes),
        if m.tied_output { " (tied output)" } else { "" }
    );
    if let Some(o) = &s.ollama {
        out += &format!(
            "  ollama    num_ctx {} ({}) × {} slot{}; layers {}\n",
            o.num_ctx,
            if o.num_ctx_source == "default" {
                "its default for this VRAM"
            } else {
                o.num_ctx_source.as_str()
            },
            o.parallel,
            if o.parallel == 1 { "" } else { "s" },
            if o.auto_layers {
                format!(
                    "placed by llama.cpp --fit, keeping {} free per GPU",
                    o.fit_margin_bytes
                        .first()
                        .map_or("1 GiB".to_string(), |b| gib(*b))
                )
            } else {
                "from num_gpu".to_string()
            }
        );
    }
    out += &format!(
        "  settings  llama.cpp -c {} ({} cells) -np {} -ctk {k} -ctv {k} -ngl {} --split-mode {}{}\n",
        s.ctx,
        s.ctx_cells,
        s.parallel,
        s.ngl.map_or(
            if s.ollama.as_ref().is_some_and(|o| o.auto_layers) {
                "auto".to_string()
            } else {
                "all".to_string()
            },
            |n| n.to_string()
        ),
        s.split_mode,
        if s.tensor_split.is_empty() {
            String::new()
        } else {
            format!(
                " --tensor-split {}",
                s.tensor_split
                    .iter()
                    .map(|x| x.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            )
        },
        k = esc(&s.kv_type)
    );
    out += &format!(
        "  needs     KV cache {}, compute about {}\n\n",
        gib(m.kv_bytes),
        gib(m.compute_bytes)
    );
    for d in &f.devices {
        out += &format!(
            "  {:<6} {}: {} free; {} layer{}: weights {} + KV {} + compute {} = {}\n",
            d.id,
            esc(&d.name),
            gib(d.free_bytes),
            d.layers,
            if d.layers == 1 { "" } else { "s" },
            gib(d.weights_bytes),
            gib(d.kv_bytes),
            gib(d.compute_bytes),
            gib(d.need_bytes)
        );
    }
    out += &format!(
        "  {:<6} {} layers and token_embd{}: weights {} + KV {} = {}{}\n",
        "host",
        f.host.layers,
        if f.host.experts_bytes > 0 {
            format!(" and {} of experts", gib(f.host.experts_bytes))
        } else {
            String::new()
        },
        gib(f.host.weights_bytes),
        gib(f.host.kv_bytes),
        gib(f.host.need_bytes),
        match f.host.available_bytes {
            Some(a) => format!(" of {} available", gib(a)),
            None => String::new(),
        }
    );
    for n in &f.notes {
        out += &format!("  note   {}\n", esc(n));
    }
    out += "\n";
    for d in &r.diagnoses {
        let mark = match d.severity {
            Severity::Error => "✗ error",
            Severity::Warn => "! warn ",
            Severity::Info => "· info ",
        };
        out += &format!("{mark} {}  {}\n", d.id, esc(&d.title));
        out += &format!("    evidence {}\n", esc(&d.evidence));
        let mut first = true;
        for line in d.fix.lines() {
            out += &format!(
                "    {} {}\n",
                if first { "fix     " } else { "        " },
                esc(line)
            );
            first = false;
        }
    }
    out += &format!(
        "verdict: {} — {} of {} layers on the GPUs{}\n",
        f.verdict,
        f.gpu_layers,
        f.total_layers,
        if f.host.fits == Some(false) {
            "; host memory too small"
        } else {
            ""
        }
    );
    out
}
