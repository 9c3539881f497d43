//! vLLM's memory on each GPU for a Hugging Face checkpoint (docs/fit.md,
//! "vLLM"): the weights shard of each tensor-parallel rank, the budget
//! `gpu_memory_utilization × total`, the profiled activation peak and
//! non-torch memory (estimates), CUDA graphs (an estimate), and the rest for
//! the KV cache in blocks of 16 tokens; then vLLM's own verdict (its error
//! text) and the flags that fix it, each checked by sizing it.
//!
//! Modelled on vLLM's source, not copied: `vllm/v1/worker/gpu_worker.py`
//! (`init_device`: `requested_memory = total × gpu_memory_utilization`,
//! the start-up check against free memory; `determine_available_memory`:
//! `requested − (weights + torch peak increase + non-torch increase)`),
//! `vllm/utils/mem_utils.py` (`memory_profiling`),
//! `vllm/v1/core/kv_cache_utils.py` (`get_num_blocks`: available // page //
//! layers; `_check_enough_kv_cache_memory` and its two errors;
//! `estimate_max_model_len`; `get_max_concurrency_for_kv_cache_config`;
//! `_report_kv_cache_config`), `vllm/v1/kv_cache_interface.py` (page size
//! `2 × block × kv_heads × head_size × dtype`), and V0's
//! `vllm/worker/worker.py` (`raise_if_cache_size_invalid`).

use serde::Serialize;

use super::command::{FitDevice, FitFacts, FitHost, FitModel, FitReport, FitSettings, SCHEMA};
use super::devices::{Device, Devices};
use crate::diagnose::{Diagnosis, RuleClass, Severity, human_bytes};
use crate::model::safetensors::{Checkpoint, Config};
use crate::rig::ProbeReport;
use crate::source::Mode;

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;

/// What the CUDA context of the vLLM process itself takes before vLLM's
/// first memory snapshot (outside its accounting, inside the GPU's free
/// memory). An estimate: 250-500 MiB on recent drivers.
pub const CUDA_CONTEXT_BYTES: u64 = 300 * MIB;
/// CUDA's total (`cudaMemGetInfo`, what vLLM multiplies) is less than
/// nvidia-smi's `memory.total` by what the driver reserves: a 3090's
/// 24576 MiB is 23.58 GiB to vLLM (vllm-project/vllm#10517), an H100's
/// 81559 MiB 79.22 GiB (#10511): 430-440 MiB on both.
pub const CUDA_RESERVED_BYTES: u64 = 434 * MIB;
/// Non-torch memory that grows during profiling (cuBLAS workspaces,
/// attention backends' buffers). vLLM logs 0.16-0.25 GiB on 1-2 GPUs
/// (vllm-project/vllm#12126, #13061, #14447); NCCL's buffers are allocated
/// before the snapshot since the V1 worker initialises NCCL first.
pub const NON_TORCH_BYTES: u64 = 256 * MIB;
/// CUDA graphs (piecewise, V1): the capture logs "took 0.3-1 GiB" on 7-14B
/// models; an estimate, counted inside the budget (the newest worker
/// subtracts its own estimate before sizing the KV cache).
pub const CUDA_GRAPH_BYTES: u64 = 512 * MIB;

/// vLLM's engine arguments that fit models.
#[derive(Debug, Clone, PartialEq)]
pub struct VllmSettings {
    pub tensor_parallel_size: u32,
    /// None: the model's own context (config.json).
    pub max_model_len: Option<u64>,
    pub gpu_memory_utilization: f64,
    /// `fp8` (1 byte) instead of the model's dtype.
    pub kv_fp8: bool,
    pub enforce_eager: bool,
    pub block_size: u64,
}

impl Default for VllmSettings {
    fn default() -> Self {
        VllmSettings {
            tensor_parallel_size: 1,
            max_model_len: None,
            gpu_memory_utilization: 0.9,
            kv_fp8: false,
            enforce_eager: false,
            block_size: 16,
        }
    }
}

/// What fit reports of vLLM's sizing (`facts.fit.settings.vllm`), for the
/// tightest GPU (vLLM gives every rank the fewest blocks any rank has).
#[derive(Debug, Clone, Serialize, schemars::JsonSchema, PartialEq)]
pub struct FitVllm {
    pub tensor_parallel_size: u32,
    pub gpu_memory_utilization: f64,
    pub max_model_len: u64,
    /// `--max-model-len`, or `config` (the model's max_position_embeddings).
    pub max_model_len_source: String,
    /// `auto` (the model's dtype) or `fp8`.
    pub kv_cache_dtype: String,
    pub kv_dtype_bytes: u64,
    pub block_size: u64,
    pub enforce_eager: bool,
    /// vLLM serve's defaults for this GPU size (the profile run's batch).
    pub max_num_batched_tokens: u64,
    pub max_num_seqs: u64,
    /// `gpu_memory_utilization × total` of the tightest GPU.
    pub budget_bytes: u64,
    pub activation_bytes: u64,
    pub non_torch_bytes: u64,
    pub cuda_graph_bytes: u64,
    /// What is left for the KV cache on the tightest GPU (may be negative).
    pub available_kv_bytes: i64,
    /// KV bytes of one token on one GPU, all layers.
    pub bytes_per_token: u64,
    /// One block of `block_size` tokens on one GPU, all layers.
    pub bytes_per_block: u64,
    pub num_gpu_blocks: u64,
    /// `GPU KV cache size: N tokens`.
    pub kv_tokens: u64,
    /// `Maximum concurrency for max_model_len tokens per request`.
    pub max_concurrency: f64,
    /// KV bytes one request of max_model_len needs on one GPU.
    pub needed_kv_bytes: u64,
    /// The largest max_model_len the KV cache holds (vLLM's
    /// estimate_max_model_len), 0 when not even one token fits.
    pub largest_max_model_len: u64,
    /// vLLM's own error at these settings, when it would refuse to start.
    pub error: Option<String>,
}

/// The model as vLLM sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Shape {
    pub layers: u64,
    pub heads: u64,
    pub kv_heads: u64,
    pub head_dim: u64,
    pub hidden: u64,
    pub intermediate: u64,
    pub vocab: u64,
    /// Compute dtype bytes (bf16/fp16: 2; a float32 checkpoint runs in 16 bits).
    pub dtype_bytes: u64,
    /// MLA: the latent width per token and layer.
    pub mla: Option<u64>,
    /// Per layer: a sliding-window layer.
    pub sliding: Vec<bool>,
    pub window: u64,
    pub max_len: u64,
}

fn dtype_bytes_of(name: &str) -> Option<u64> {
    match name.trim_start_matches("torch.") {
        "bfloat16" | "float16" | "half" | "float32" | "float" => Some(2),
        _ => None,
    }
}

impl Shape {
    pub fn from_checkpoint(ck: &Checkpoint) -> Result<Shape, String> {
        let c: &Config = &ck.config;
        let need = |v: Option<u64>, k: &str| {
            v.filter(|x| *x > 0)
                .ok_or_else(|| format!("config.json has no {k} (is this a causal LM?)"))
        };
        let layers = need(c.num_hidden_layers, "num_hidden_layers")?;
        if layers > 4096 {
            return Err(format!(
                "config.json: num_hidden_layers {layers} is not a model"
            ));
        }
        let heads = need(c.num_attention_heads, "num_attention_heads")?;
        let kv_heads = need(c.kv_heads(), "num_key_value_heads")?;
        let head_dim = need(c.head_size(), "head_dim (or hidden_size)")?;
        let hidden = c.hidden_size.unwrap_or(heads * head_dim);
        if [heads, kv_heads, head_dim, hidden]
            .iter()
            .any(|x| *x > 1 << 20)
        {
            return Err("config.json: a head count or size beyond any model".into());
        }
        let dtype_bytes = c
            .torch_dtype
            .as_deref()
            .and_then(dtype_bytes_of)
            .unwrap_or(2);
        let mla = match (c.kv_lora_rank, c.qk_rope_head_dim) {
            (Some(r), Some(p)) if r > 0 => Some(r + p),
            _ => None,
        };
        let window = c.sliding_window.unwrap_or(0);
        let mut sliding = vec![false; layers as usize];
        if window > 0 {
            if c.layer_types.len() == layers as usize {
                for (s, t) in sliding.iter_mut().zip(&c.layer_types) {
                    *s = t.contains("sliding");
                }
            } else {
                // No per-layer list: every layer slides (Mistral 7B v0.1).
                sliding.iter_mut().for_each(|s| *s = true);
            }
        }
        Ok(Shape {
            layers,
            heads,
            kv_heads,
            head_dim,
            hidden,
            intermediate: c.intermediate_size.unwrap_or(4 * hidden),
            vocab: c.vocab_size.unwrap_or(32000),
            dtype_bytes,
            mla,
            sliding,
            window,
            max_len: c.max_position_embeddings.unwrap_or(2048),
        })
    }
}

/// The weights one tensor-parallel rank holds. Column/row-parallel
/// matrices, their biases and the vocab-parallel embedding and LM head
/// divide by `tp`; norms are replicated; K/V projections with fewer KV
/// heads than ranks hold one head per rank (vLLM replicates KV heads).
/// Unquantized float tensors load in the compute dtype (`--dtype auto`).
pub fn weights_per_rank(ck: &Checkpoint, s: &Shape, tp: u64) -> u64 {
    let quantized = ck.config.quant_method.is_some();
    let mut total = 0u64;
    for t in &ck.tensors {
        let mut b = t.bytes;
        if !quantized
            && let Some(bits) = crate::model::safetensors::dtype_bits(&t.dtype)
            && matches!(t.dtype.as_str(), "F32" | "F16" | "BF16" | "F64")
        {
            b = b / (bits / 8).max(1) * s.dtype_bytes;
        }
        let n = &t.name;
        let norm = n.contains("norm") || n.ends_with("ln_f.weight") || n.contains("layernorm");
        let kv = n.contains("k_proj") || n.contains("v_proj");
        let per = if norm || tp <= 1 || (t.shape.len() <= 1 && n.contains("o_proj.bias")) {
            b
        } else if kv && s.kv_heads < tp && s.mla.is_none() {
            b.div_ceil(s.kv_heads)
        } else {
            b.div_ceil(tp)
        };
        total = total.saturating_add(per);
    }
    total.saturating_add(rope_cache(ck, s))
}

/// The rotary embedding's cos/sin cache, allocated with the model and
/// counted in vLLM's "model weights took": `max_position_embeddings ×
/// rotary_dim` in the model's dtype (`vllm/model_executor/layers/
/// rotary_embedding`, `_compute_cos_sin_cache`), on every rank.
pub fn rope_cache(ck: &Checkpoint, s: &Shape) -> u64 {
    let rot = ck
        .config
        .qk_rope_head_dim
        .filter(|_| s.mla.is_some())
        .unwrap_or(s.head_dim);
    s.max_len.saturating_mul(rot).saturating_mul(s.dtype_bytes)
}

/// vLLM serve's defaults for the profile run: `max_num_batched_tokens`
/// and `max_num_seqs` (vllm/engine/arg_utils.py, V1: 8192 and 1024 on
/// GPUs of 70 GiB and more, else 2048 and 256, for the API server).
pub fn serve_defaults(total: u64) -> (u64, u64) {
    if total >= 70 * GIB {
        (8192, 1024)
    } else {
        (2048, 256)
    }
}

/// The activation peak of the profile run on one rank, an estimate: the
/// larger of the MLP step, `T × (3 × intermediate / tp + 3 × hidden) ×
/// dtype` (gate_up's output, the activation's, and the hidden states,
/// residual and attention output), and the sampler's float32 logits of
/// `max_num_seqs` rows. Fitted on vLLM's own log of Llama 3.1 8B at 20000
/// and 29000 profile tokens (2.07 and 2.99 GiB; docs/fit.md).
pub fn activation(s: &Shape, tp: u64, tokens: u64, seqs: u64) -> u64 {
    let per_tok = 3 * (s.intermediate / tp.max(1)) + 3 * s.hidden;
    let mlp = tokens.saturating_mul(per_tok).saturating_mul(s.dtype_bytes);
    let logits = seqs.saturating_mul(s.vocab).saturating_mul(4);
    mlp.max(logits)
}

/// KV sizes on one rank.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Kv {
    /// One layer, one block.
    pub page: u64,
    /// Layers per KV cache group (vLLM's group_size).
    pub group_size: u64,
    pub groups: u64,
}

pub fn kv_layout(s: &Shape, tp: u64, kv_bytes: u64, block: u64) -> Kv {
    let page = match s.mla {
        Some(w) => block * w * kv_bytes,
        None => 2 * block * (s.kv_heads / tp.max(1)).max(1) * s.head_dim * kv_bytes,
    };
    let sw = s.sliding.iter().filter(|x| **x).count() as u64;
    let full = s.layers - sw;
    let (group_size, groups) = if sw == 0 || full == 0 {
        (s.layers, 1)
    } else {
        let g = sw.min(full);
        (g, sw.div_ceil(g) + full.div_ceil(g))
    };
    Kv {
        page,
        group_size,
        groups,
    }
}

/// Blocks one request of `len` tokens needs, over all groups.
fn blocks_for(s: &Shape, kv: &Kv, len: u64, block: u64, batched: u64) -> u64 {
    let full_blocks = len.div_ceil(block);
    let sw_blocks = (s.window.saturating_sub(1) + batched)
        .min(len)
        .div_ceil(block)
        + 1;
    let sw = s.sliding.iter().filter(|x| **x).count() as u64;
    let full = s.layers - sw;
    if kv.groups == 1 {
        if sw > 0 {
            sw_blocks.min(full_blocks)
        } else {
            full_blocks
        }
    } else {
        let g = kv.group_size;
        sw.div_ceil(g) * sw_blocks.min(full_blocks) + full.div_ceil(g) * full_blocks
    }
}

/// KV bytes one request of `len` tokens needs on one rank.
pub fn needed(s: &Shape, kv: &Kv, len: u64, block: u64, batched: u64) -> u64 {
    let b = blocks_for(s, kv, len, block, batched);
    if kv.groups == 1 {
        b.saturating_mul(kv.page).saturating_mul(s.layers)
    } else {
        b.saturating_mul(kv.page).saturating_mul(kv.group_size)
    }
}

/// One rank's sizing.
#[derive(Debug, Clone, PartialEq)]
pub struct Rank {
    pub budget: u64,
    pub weights: u64,
    pub activation: u64,
    pub non_torch: u64,
    pub graphs: u64,
    /// budget − weights − activation − non_torch − graphs.
    pub available: i64,
    pub start_free: u64,
}

fn size_rank(d: &Device, s: &Shape, weights: u64, v: &VllmSettings) -> (Rank, u64, u64) {
    let tp = u64::from(v.tensor_parallel_size);
    let total = cuda_total(d);
    let budget = (total as f64 * v.gpu_memory_utilization).floor() as u64;
    let (t, seqs) = serve_defaults(total);
    let act = activation(s, tp, t, seqs);
    let graphs = if v.enforce_eager { 0 } else { CUDA_GRAPH_BYTES };
    let used = weights
        .saturating_add(act)
        .saturating_add(NON_TORCH_BYTES)
        .saturating_add(graphs);
    let available = budget as i64 - used.min(i64::MAX as u64) as i64;
    (
        Rank {
            budget,
            weights,
            activation: act,
            non_torch: NON_TORCH_BYTES,
            graphs,
            available,
            start_free: start_free(d),
        },
        t,
        seqs,
    )
}

/// The total vLLM sees: CUDA's, below nvidia-smi's by the driver's reserve.
pub fn cuda_total(d: &Device) -> u64 {
    if d.id.starts_with("CUDA") {
        d.total_bytes.saturating_sub(CUDA_RESERVED_BYTES)
    } else {
        d.total_bytes
    }
}

/// Free memory at vLLM's first snapshot: the probe's free (on CUDA's
/// scale) less this process's own context.
fn start_free(d: &Device) -> u64 {
    let reserved = d.total_bytes - cuda_total(d);
    d.free_bytes()
        .saturating_sub(reserved)
        .saturating_sub(CUDA_CONTEXT_BYTES)
}

/// The whole sizing at some settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Sizing {
    pub ranks: Vec<Rank>,
    pub kv: Kv,
    pub kv_bytes: u64,
    pub max_model_len: u64,
    pub batched: u64,
    pub seqs: u64,
    pub num_blocks: u64,
    pub tokens: u64,
    pub needed: u64,
    pub concurrency: f64,
    pub largest: u64,
    pub error: Option<String>,
    /// The GPUs the ranks run on.
    pub used: usize,
}

impl Sizing {
    pub fn fits(&self) -> bool {
        self.error.is_none()
    }
    fn min_available(&self) -> i64 {
        self.ranks.iter().map(|r| r.available).min().unwrap_or(0)
    }
}

fn gib2(b: f64) -> String {
    format!("{:.2}", b / GIB as f64)
}

pub fn size(ck: &Checkpoint, s: &Shape, v: &VllmSettings, devs: &[Device]) -> Sizing {
    let tp = u64::from(v.tensor_parallel_size.max(1));
    let len = v.max_model_len.unwrap_or(s.max_len);
    let kv_bytes = if v.kv_fp8 { 1 } else { s.dtype_bytes };
    let kv = kv_layout(s, tp, kv_bytes, v.block_size);
    let used = (tp as usize).min(devs.len());
    let weights = weights_per_rank(ck, s, tp);
    let mut ranks = Vec::new();
    let (mut batched, mut seqs) = (2048, 256);
    for d in &devs[..used] {
        let (r, t, q) = size_rank(d, s, weights, v);
        batched = t;
        seqs = q;
        ranks.push(r);
    }
    let mut sz = Sizing {
        ranks,
        kv,
        kv_bytes,
        max_model_len: len,
        batched,
        seqs,
        num_blocks: 0,
        tokens: 0,
        needed: 0,
        concurrency: 0.0,
        largest: 0,
        error: None,
        used,
    };
    let avail = sz.min_available();
    let per_block_all = kv.page.saturating_mul(kv.group_size).max(1);
    if avail > 0 {
        sz.num_blocks = avail as u64 / kv.page.max(1) / kv.group_size.max(1);
        sz.tokens = sz.num_blocks / kv.groups.max(1) * v.block_size;
    }
    sz.needed = needed(s, &kv, len, v.block_size, batched);
    let per_req_blocks = sz.needed.div_ceil(per_block_all).max(1);
    sz.concurrency = sz.num_blocks as f64 / per_req_blocks as f64;
    // vLLM's estimate_max_model_len: a binary search over 1..=len.
    let fits_len = |l: u64| avail > 0 && needed(s, &kv, l, v.block_size, batched) <= avail as u64;
    sz.largest = if fits_len(1) {
        let (mut lo, mut hi) = (1u64, len);
        while lo < hi {
            let mid = lo + (hi - lo).div_ceil(2);
            if fits_len(mid) {
                lo = mid
            } else {
                hi = mid - 1
            }
        }
        lo
    } else {
        0
    };
    // vLLM's checks, in the order it makes them.
    if used < tp as usize {
        sz.error = Some(format!(
            "--tensor-parallel-size {tp} needs {tp} GPUs; {} visible (vLLM: the number of required GPUs exceeds the total number of available GPUs)",
            devs.len()
        ));
    } else if s.heads % tp != 0 {
        sz.error = Some(format!(
            "Total number of attention heads ({}) must be divisible by tensor parallel size ({tp}).",
            s.heads
        ));
    } else if let Some((i, r)) = sz
        .ranks
        .iter()
        .enumerate()
        .find(|(_, r)| r.start_free < r.budget)
    {
        let d = &devs[i];
        sz.error = Some(format!(
            "Free memory on device ({}/{} GiB) on startup is less than desired GPU memory utilization ({}, {} GiB). Decrease GPU memory utilization or reduce GPU memory used by other processes.",
            gib2(r.start_free as f64),
            gib2(cuda_total(d) as f64),
            v.gpu_memory_utilization,
            gib2(r.budget as f64)
        ));
    } else if avail <= 0 {
        sz.error = Some(
            "No available memory for the cache blocks. Try increasing `gpu_memory_utilization` when initializing the engine.".into(),
        );
    } else if sz.needed > avail as u64 {
        let est = if sz.largest > 0 {
            format!(
                "Based on the available memory, the estimated maximum model length is {}. ",
                sz.largest
            )
        } else {
            String::new()
        };
        sz.error = Some(format!(
            "To serve at least one request with the models's max seq len ({len}), ({} GiB KV cache is needed, which is larger than the available KV cache memory ({} GiB). {est}Try increasing `gpu_memory_utilization` or decreasing `max_model_len` when initializing the engine. (vLLM V0: The model's max seq len ({len}) is larger than the maximum number of tokens that can be stored in KV cache ({}).)",
            gib2(sz.needed as f64),
            gib2(avail as f64),
            sz.tokens
        ));
    }
    sz
}

/// Flags that make it start, each checked by sizing it.
fn fixes(
    ck: &Checkpoint,
    s: &Shape,
    v: &VllmSettings,
    devs: &[Device],
    sz: &Sizing,
) -> Vec<String> {
    let mut out = Vec::new();
    let try_ = |w: &VllmSettings| size(ck, s, w, devs).fits();
    let len = sz.max_model_len;
    if sz.largest > 0 && sz.largest < len && sz.ranks.iter().all(|r| r.start_free >= r.budget) {
        out.push(format!(
            "--max-model-len {}    # the longest request the KV cache holds at these settings",
            sz.largest
        ));
    }
    if !v.kv_fp8 {
        let w = VllmSettings {
            kv_fp8: true,
            ..v.clone()
        };
        if try_(&w) {
            out.push(
                "--kv-cache-dtype fp8    # half the KV cache of 16-bit (a little accuracy)".into(),
            );
        }
    }
    // The utilisation: the least that fits, up to what every GPU has free.
    let cap = devs
        .iter()
        .take(sz.used)
        .map(|d| start_free(d) as f64 / cuda_total(d).max(1) as f64)
        .fold(0.99f64, f64::min);
    let cap = (cap * 100.0).floor() / 100.0;
    if cap < v.gpu_memory_utilization - 1e-9 {
        let w = VllmSettings {
            gpu_memory_utilization: cap,
            ..v.clone()
        };
        if try_(&w) {
            out.push(format!(
                "--gpu-memory-utilization {cap:.2}    # what the GPUs have free (other processes use the rest)"
            ));
        }
    } else {
        let mut u = (v.gpu_memory_utilization * 100.0).round() as u64 + 1;
        while u as f64 / 100.0 <= cap + 1e-9 {
            let w = VllmSettings {
                gpu_memory_utilization: u as f64 / 100.0,
                ..v.clone()
            };
            if try_(&w) {
                out.push(format!(
                    "--gpu-memory-utilization {:.2}    # a larger share of each GPU for vLLM",
                    u as f64 / 100.0
                ));
                break;
            }
            u += 1;
        }
    }
    for tp in [2u32, 4, 8] {
        if tp <= v.tensor_parallel_size || tp as usize > devs.len() {
            continue;
        }
        let w = VllmSettings {
            tensor_parallel_size: tp,
            ..v.clone()
        };
        if try_(&w) {
            out.push(format!(
                "--tensor-parallel-size {tp}    # the weights and KV cache split over {tp} GPUs"
            ));
            break;
        }
    }
    if !v.enforce_eager {
        let w = VllmSettings {
            enforce_eager: true,
            ..v.clone()
        };
        if try_(&w) {
            out.push(format!(
                "--enforce-eager    # no CUDA graphs: about {} more for the KV cache, slower decoding",
                human_bytes(CUDA_GRAPH_BYTES as f64)
            ));
        }
    }
    out
}

/// The report, in fit's shape.
pub fn build(
    ck: &Checkpoint,
    path: &str,
    v: &VllmSettings,
    devs: &Devices,
    mode: Mode,
    probes: Vec<ProbeReport>,
) -> Result<FitReport, String> {
    let s = Shape::from_checkpoint(ck)?;
    if let Some(l) = v.max_model_len
        && l > s.max_len
    {
        return Err(format!(
            "--max-model-len {l} is more than the model's max_position_embeddings ({}); vLLM refuses it (VLLM_ALLOW_LONG_MAX_MODEL_LEN=1 overrides, at the risk of wrong outputs)",
            s.max_len
        ));
    }
    let mut notes = devs.notes.clone();
    let on = &devs.visible;
    let sz = size(ck, &s, v, on);
    let fits = sz.fits() && !on.is_empty();
    let verdict = if fits { "fits" } else { "no-fit" };
    let fx = if fits || on.is_empty() {
        Vec::new()
    } else {
        fixes(ck, &s, v, on, &sz)
    };
    let tp = u64::from(v.tensor_parallel_size.max(1));
    let avail = sz.min_available();
    let kv_alloc = sz
        .num_blocks
        .saturating_mul(sz.kv.page)
        .saturating_mul(sz.kv.group_size);
    let devices: Vec<FitDevice> = on
        .iter()
        .take(sz.used)
        .zip(&sz.ranks)
        .map(|(d, r)| {
            let compute = r.activation + r.non_torch + r.graphs;
            FitDevice {
                id: d.id.clone(),
                name: d.name.clone(),
                pci: d.pci.clone(),
                total_bytes: d.total_bytes,
                used_bytes: d.used_bytes,
                free_bytes: d.free_bytes(),
                layers: s.layers as u32,
                weights_bytes: r.weights,
                kv_bytes: kv_alloc,
                compute_bytes: compute,
                need_bytes: r.weights + compute + kv_alloc,
            }
        })
        .collect();
    if on.len() > sz.used && sz.used > 0 {
        notes.push(format!(
            "vLLM uses the first {} of {} visible GPUs (--tensor-parallel-size {tp})",
            sz.used,
            on.len()
        ));
    }
    notes.push(format!(
        "estimates: activation peak {} (profile run of {} tokens, {} sequences), non-torch {}, CUDA graphs {}, this process's CUDA context {} (docs/fit.md)",
        human_bytes(sz.ranks.first().map_or(0, |r| r.activation) as f64),
        sz.batched,
        sz.seqs,
        human_bytes(NON_TORCH_BYTES as f64),
        if v.enforce_eager {
            "none (--enforce-eager)".to_string()
        } else {
            human_bytes(CUDA_GRAPH_BYTES as f64)
        },
        human_bytes(CUDA_CONTEXT_BYTES as f64)
    ));
    if let Some(q) = &ck.config.quant_method {
        notes.push(format!(
            "quantized checkpoint ({q}): weights counted as stored"
        ));
    }
    if s.sliding.iter().any(|x| *x) {
        notes.push(format!(
            "{} of {} layers use a {}-token sliding window; vLLM's hybrid KV cache keeps only the window for them",
            s.sliding.iter().filter(|x| **x).count(),
            s.layers,
            s.window
        ));
    }
    let mut diagnoses = Vec::new();
    let fix_text = if fx.is_empty() {
        "a smaller (quantized) model, or more or larger GPUs".to_string()
    } else {
        let mut t = vec!["vllm serve MODEL ... plus one of:".to_string()];
        t.extend(fx);
        t.join("\n")
    };
    if on.is_empty() {
        diagnoses.push(diag(
            "FIT-NO-GPU",
            Severity::Error,
            "No GPU vLLM can use".into(),
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
            "vLLM's CUDA/ROCm build needs a GPU; without one it does not start.",
            "check the rig first: rigdoctor check".into(),
        ));
    } else if let Some(e) = &sz.error {
        let per: Vec<String> = on
            .iter()
            .zip(&sz.ranks)
            .map(|(d, r)| {
                format!(
                    "{}: budget {} ({} × {}) − weights {} − activations {} − non-torch {} − CUDA graphs {} = {} for the KV cache",
                    d.id,
                    gib(r.budget),
                    v.gpu_memory_utilization,
                    gib(cuda_total(d)),
                    gib(r.weights),
                    gib(r.activation),
                    gib(r.non_torch),
                    gib(r.graphs),
                    if r.available < 0 {
                        format!("−{}", gib(r.available.unsigned_abs()))
                    } else {
                        gib(r.available as u64)
                    }
                )
            })
            .collect();
        diagnoses.push(diag(
            "FIT-VLLM-NO-FIT",
            Severity::Error,
            if avail > 0 && sz.needed > avail as u64 && sz.ranks.iter().all(|r| r.start_free >= r.budget) {
                format!(
                    "vLLM will not start: a {}-token request needs {} of KV cache per GPU, {} is left",
                    sz.max_model_len,
                    gib(sz.needed),
                    gib(avail as u64)
                )
            } else {
                format!("vLLM will not start: {}", first_sentence(e))
            },
            format!("{}; vLLM says: {e}", per.join("; ")),
            "vLLM reserves gpu_memory_utilization of each GPU's total memory, loads the weights, profiles one batch, and gives the rest to the KV cache; it refuses to start when that cannot hold one request of max_model_len tokens.",
            fix_text,
        ));
    }
    if let Some(sel) = &devs.selector
        && devs.all.len() > devs.visible.len()
    {
        diagnoses.push(diag(
            "FIT-SELECTOR",
            Severity::Info,
            format!(
                "{sel} leaves {} of {} GPUs",
                devs.visible.len(),
                devs.all.len()
            ),
            sel.to_string(),
            "vLLM sees only the GPUs the variable lists; fit counts those.",
            "unset it, or list every GPU, if the model is meant to use them all".into(),
        ));
    }
    let fv = FitVllm {
        tensor_parallel_size: v.tensor_parallel_size,
        gpu_memory_utilization: v.gpu_memory_utilization,
        max_model_len: sz.max_model_len,
        max_model_len_source: if v.max_model_len.is_some() {
            "--max-model-len".into()
        } else {
            "config".into()
        },
        kv_cache_dtype: if v.kv_fp8 {
            "fp8".into()
        } else {
            "auto".into()
        },
        kv_dtype_bytes: sz.kv_bytes,
        block_size: v.block_size,
        enforce_eager: v.enforce_eager,
        max_num_batched_tokens: sz.batched,
        max_num_seqs: sz.seqs,
        budget_bytes: sz.ranks.iter().map(|r| r.budget).min().unwrap_or(0),
        activation_bytes: sz.ranks.first().map_or(0, |r| r.activation),
        non_torch_bytes: NON_TORCH_BYTES,
        cuda_graph_bytes: sz.ranks.first().map_or(0, |r| r.graphs),
        available_kv_bytes: avail,
        bytes_per_token: sz.kv.page / v.block_size.max(1) * s.layers,
        bytes_per_block: sz.kv.page * s.layers,
        num_gpu_blocks: sz.num_blocks,
        kv_tokens: sz.tokens,
        max_concurrency: (sz.concurrency * 100.0).floor() / 100.0,
        needed_kv_bytes: sz.needed,
        largest_max_model_len: sz.largest,
        error: sz.error.clone(),
    };
    let layers = s.layers as u32;
    Ok(FitReport {
        schema: SCHEMA,
        verdict: if fits { "ok" } else { "error" },
        mode,
        diagnoses,
        facts: FitFacts {
            fit: super::command::Fit {
                engine: "vllm",
                verdict,
                gpu_layers: if fits { layers } else { 0 },
                total_layers: layers,
                settings: FitSettings {
                    ctx: sz.max_model_len,
                    ctx_cells: sz.tokens,
                    parallel: fv.max_concurrency.floor() as u64,
                    ubatch: sz.batched,
                    kv_type: if v.kv_fp8 {
                        "fp8".into()
                    } else {
                        ck.config
                            .torch_dtype
                            .clone()
                            .unwrap_or_else(|| "auto".into())
                    },
                    ngl: None,
                    split_mode: "tensor",
                    tensor_split: Vec::new(),
                    n_cpu_moe: None,
                    ollama: None,
                    vllm: Some(fv),
                },
                model: FitModel {
                    path: path.to_string(),
                    architecture: if ck.config.architecture.is_empty() {
                        ck.config.model_type.clone()
                    } else {
                        ck.config.architecture.clone()
                    },
                    layers,
                    weights_bytes: ck.weights_bytes(),
                    kv_bytes: sz.needed.saturating_mul(tp),
                    compute_bytes: sz
                        .ranks
                        .first()
                        .map_or(0, |r| r.activation + r.non_torch + r.graphs),
                    tied_output: false,
                },
                backend: devs.backend.clone(),
                selector: devs.selector.clone(),
                gpus_on_rig: devs.all.len() as u32,
                devices,
                host: FitHost {
                    layers: 0,
                    weights_bytes: 0,
                    experts_bytes: 0,
                    kv_bytes: 0,
                    need_bytes: 0,
                    available_bytes: devs.host_available,
                    fits: None,
                },
                smaller_quant: None,
                n_cpu_moe_fix: None,
                notes,
            },
        },
        probes,
    })
}

fn gib(n: u64) -> String {
    human_bytes(n as f64)
}

fn first_sentence(e: &str) -> String {
    let s = e.split(". ").next().unwrap_or(e);
    s.chars().take(160).collect()
}

fn diag(
    id: &str,
    severity: Severity,
    title: String,
    evidence: String,
    explain: &str,
    fix: String,
) -> Diagnosis {
    Diagnosis {
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
    }
}

/// The page for a person.
pub fn render_human(r: &FitReport) -> String {
    use crate::text::escape_controls as esc;
    let f = &r.facts.fit;
    let m = &f.model;
    let mut out = format!(
        "rigdoctor {} · fit · {}\n\n",
        env!("CARGO_PKG_VERSION"),
        match r.mode {
            Mode::Replay => "replay of a capture",
            _ => "this machine",
        }
    );
    out += &format!(
        "  model     {}: {}, {} layers, {} of weights\n",
        esc(&m.path),
        esc(&m.architecture),
        m.layers,
        gib(m.weights_bytes)
    );
    if let Some(v) = &f.settings.vllm {
        out += &format!(
            "  settings  vllm serve --tensor-parallel-size {} --max-model-len {} ({}) --gpu-memory-utilization {} --kv-cache-dtype {}{}\n",
            v.tensor_parallel_size,
            v.max_model_len,
            if v.max_model_len_source == "config" {
                "the model's"
            } else {
                "given"
            },
            v.gpu_memory_utilization,
            esc(&v.kv_cache_dtype),
            if v.enforce_eager {
                " --enforce-eager"
            } else {
                ""
            }
        );
        out += &format!(
            "  KV cache  {} per token per GPU, {} per block of {}; {} blocks = {} tokens; a {}-token request needs {}; concurrency {:.2}x\n",
            gib(v.bytes_per_token),
            gib(v.bytes_per_block),
            v.block_size,
            v.num_gpu_blocks,
            v.kv_tokens,
            v.max_model_len,
            gib(v.needed_kv_bytes),
            v.max_concurrency
        );
        if v.largest_max_model_len > 0 {
            out += &format!(
                "  longest   --max-model-len {} fits at these settings\n",
                v.largest_max_model_len
            );
        }
    }
    out += "\n";
    for d in &f.devices {
        out += &format!(
            "  {:<6} {}: {} free; weights {} + activations, graphs {} + KV {} = {}\n",
            d.id,
            esc(&d.name),
            gib(d.free_bytes),
            gib(d.weights_bytes),
            gib(d.compute_bytes),
            gib(d.kv_bytes),
            gib(d.need_bytes)
        );
    }
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
        for (i, line) in d.fix.lines().enumerate() {
            out += &format!(
                "    {} {}\n",
                if i == 0 { "fix     " } else { "        " },
                esc(line)
            );
        }
    }
    out += &format!("verdict: {}\n", f.verdict);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn llama8b() -> Shape {
        Shape {
            layers: 32,
            heads: 32,
            kv_heads: 8,
            head_dim: 128,
            hidden: 4096,
            intermediate: 14336,
            vocab: 128256,
            dtype_bytes: 2,
            mla: None,
            sliding: vec![false; 32],
            window: 0,
            max_len: 131072,
        }
    }

    #[test]
    fn blocks_follow_vllm_arithmetic() {
        let s = llama8b();
        let kv = kv_layout(&s, 1, 2, 16);
        // 2 × 16 × 8 × 128 × 2 bytes per layer; 2 MiB per block over 32 layers.
        assert_eq!(kv.page * 32, 2 * MIB);
        let kv2 = kv_layout(&s, 2, 2, 16);
        assert_eq!(kv2.page * 32, MIB);
        assert_eq!(needed(&s, &kv, 8192, 16, 2048), 512 * 2 * MIB);
    }

    #[test]
    fn sliding_layers_keep_the_window() {
        let mut s = llama8b();
        s.window = 1024;
        for (i, x) in s.sliding.iter_mut().enumerate() {
            *x = i % 2 == 0;
        }
        let kv = kv_layout(&s, 1, 2, 16);
        assert_eq!((kv.group_size, kv.groups), (16, 2));
        // full: 8192/16 = 512 blocks; sliding: (1023 + 2048)/16 ceil + 1 = 193.
        assert_eq!(needed(&s, &kv, 8192, 16, 2048), (512 + 193) * kv.page * 16);
    }
}
