//! llama.cpp's memory on a GGUF model: weights, KV cache and compute
//! buffers, the way llama.cpp sizes them (sources: `src/llama-kv-cache.cpp`
//! `llama_kv_cache::llama_kv_cache` for the per-layer K/V tensors,
//! `src/llama-kv-cache-iswa.cpp` for the sliding-window cache size,
//! `src/llama-context.cpp` for the context padding and per-sequence split,
//! `src/llama-model.cpp` for the sliding-window patterns of gemma2/gemma3;
//! llama.cpp as vendored in llama-cpp-python 0.3.36). Checked against real
//! llama.cpp logs in `tests/fit_llama_cpp.rs`.

use crate::model::gguf::{self, Gguf};

/// The settings that change llama.cpp's memory (its defaults in
/// [`Settings::default`]: `-c 4096 -b 2048 -ub 512 -np 1 -ctk f16 -ctv f16`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// `-c`: the context, all sequences together.
    pub ctx: u64,
    /// `-np`: parallel sequences (slots).
    pub parallel: u64,
    /// `-ub`: the physical batch.
    pub ubatch: u64,
    /// `-ctk` / `-ctv` as ggml type codes.
    pub type_k: u32,
    pub type_v: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            ctx: 4096,
            parallel: 1,
            ubatch: 512,
            type_k: 1,
            type_v: 1,
        }
    }
}

/// What llama.cpp reads from the metadata to size the KV cache and the
/// compute graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hparams {
    pub arch: String,
    pub n_layer: u64,
    pub n_embd: u64,
    pub n_head: u64,
    /// KV heads per layer (`head_count_kv` may be an array).
    pub n_head_kv: Vec<u64>,
    pub head_k: u64,
    pub head_v: u64,
    pub n_ff: u64,
    pub n_vocab: u64,
    pub n_expert_used: u64,
    /// `attention.sliding_window`, 0 when none.
    pub n_swa: u64,
    /// Which layers use the sliding window.
    pub swa_layers: Vec<bool>,
    /// `context_length`: the training context, 0 when the file does not say.
    pub n_ctx_train: u64,
}

fn u(g: &Gguf, suffix: &str) -> Option<u64> {
    g.arch_get(suffix).and_then(gguf::Value::as_u64)
}

/// Per-layer values of a key that may be a scalar or an array (llama.cpp's
/// `get_key_or_arr`).
fn per_layer(g: &Gguf, suffix: &str, n_layer: u64) -> Option<Vec<u64>> {
    match g.arch_get(suffix)? {
        gguf::Value::Array(items) => {
            let v: Option<Vec<u64>> = items.iter().map(gguf::Value::as_u64).collect();
            let v = v?;
            (v.len() as u64 == n_layer).then_some(v)
        }
        other => {
            let x = other.as_u64()?;
            Some(vec![x; usize::try_from(n_layer).ok()?])
        }
    }
}

/// The sliding-window pattern llama.cpp sets per architecture
/// (`hparams.set_swa_pattern(n)`: layer `il` uses the window when
/// `il % n < n - 1`), unless the file gives `attention.sliding_window_pattern`.
fn swa_pattern(arch: &str) -> Option<u64> {
    match arch {
        "gemma2" => Some(2),
        "gemma3" | "gemma3n" => Some(6),
        "cohere2" => Some(4),
        "llama4" => Some(4),
        _ => None,
    }
}

/// The layers cap: a hostile header may claim any block count; llama.cpp
/// itself limits layers to `LLAMA_MAX_LAYERS` (512).
const MAX_LAYERS: u64 = 512;

impl Hparams {
    pub fn from_gguf(g: &Gguf) -> Result<Hparams, String> {
        let arch = g
            .architecture()
            .ok_or("no general.architecture")?
            .to_string();
        let need = |k: &str| u(g, k).ok_or(format!("no {arch}.{k}"));
        let n_layer = need("block_count")?;
        if n_layer == 0 || n_layer > MAX_LAYERS {
            return Err(format!("{arch}.block_count = {n_layer} (1..={MAX_LAYERS})"));
        }
        let n_embd = need("embedding_length")?;
        let n_head = need("attention.head_count")?;
        if n_head == 0 {
            return Err(format!("{arch}.attention.head_count = 0"));
        }
        let n_head_kv = per_layer(g, "attention.head_count_kv", n_layer)
            .unwrap_or_else(|| vec![n_head; n_layer as usize]);
        let head_k = u(g, "attention.key_length").unwrap_or(n_embd / n_head);
        let head_v = u(g, "attention.value_length").unwrap_or(n_embd / n_head);
        let n_ff = per_layer(g, "feed_forward_length", n_layer)
            .and_then(|v| v.into_iter().max())
            .unwrap_or(0);
        // The vocabulary is token_embd's second dimension (the token list
        // itself is not kept by the header reader).
        let n_vocab = g
            .tensors
            .iter()
            .find(|t| t.name == "token_embd.weight")
            .and_then(|t| t.dims.get(1).copied())
            .ok_or("no token_embd.weight")?;
        let n_expert_used = u(g, "expert_used_count").unwrap_or(0);
        let n_swa = u(g, "attention.sliding_window").unwrap_or(0);
        let pattern = u(g, "attention.sliding_window_pattern").or_else(|| swa_pattern(&arch));
        let swa_layers = (0..n_layer)
            .map(|il| match pattern {
                Some(n) if n_swa > 0 && n > 0 => il % n < n - 1,
                _ => false,
            })
            .collect();
        Ok(Hparams {
            arch,
            n_layer,
            n_embd,
            n_head,
            n_head_kv,
            head_k,
            head_v,
            n_ff,
            n_vocab,
            n_expert_used,
            n_swa,
            swa_layers,
            n_ctx_train: u(g, "context_length").unwrap_or(0),
        })
    }
}

/// `GGML_PAD`.
fn pad(x: u64, n: u64) -> u64 {
    x.div_ceil(n).saturating_mul(n)
}

/// llama.cpp pads the context to 256 cells (`llama_context`: "n_ctx is
/// padded") and splits it evenly between the sequences (non-unified cache:
/// one stream per sequence of `n_ctx / n_seq` cells).
pub fn n_ctx(s: &Settings) -> u64 {
    pad(s.ctx.max(1), 256)
}

/// The KV cache: per layer, cells × (row of K + row of V).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kv {
    /// Cells of every stream together, full-attention layers.
    pub cells: u64,
    /// Cells of every stream together, sliding-window layers (0 if none).
    pub cells_swa: u64,
    /// Bytes per layer, in layer order (what goes on the layer's device).
    pub layer_bytes: Vec<u64>,
}

impl Kv {
    pub fn bytes(&self) -> u64 {
        self.layer_bytes.iter().sum()
    }
}

pub fn kv_cache(h: &Hparams, s: &Settings) -> Result<Kv, String> {
    let n_seq = s.parallel.max(1);
    let per_seq = n_ctx(s) / n_seq;
    let cells = per_seq * n_seq;
    // llama_kv_cache_iswa: size_swa = min(size_base, PAD(n_swa + n_ubatch, 256))
    // per stream (n_swa * n_seq_max only with a unified cache).
    let swa_per_seq = per_seq.min(pad(h.n_swa.saturating_add(s.ubatch), 256));
    let any_swa = h.swa_layers.iter().any(|&b| b);
    let cells_swa = if any_swa { swa_per_seq * n_seq } else { 0 };
    let mut layer_bytes = Vec::with_capacity(h.n_head_kv.len());
    for (il, &hkv) in h.n_head_kv.iter().enumerate() {
        let k = gguf::row_size(s.type_k, hkv.saturating_mul(h.head_k))
            .ok_or("K row is not a whole number of blocks of the KV type")?;
        let v = gguf::row_size(s.type_v, hkv.saturating_mul(h.head_v))
            .ok_or("V row is not a whole number of blocks of the KV type")?;
        let c = if h.swa_layers.get(il).copied().unwrap_or(false) {
            cells_swa
        } else {
            cells
        };
        layer_bytes.push(c.saturating_mul(k.saturating_add(v)));
    }
    Ok(Kv {
        cells,
        cells_swa,
        layer_bytes,
    })
}

/// The compute buffer of one device holding the whole model, an estimate
/// (the graph allocator's peak is not arithmetic on the shapes): the
/// logits of a ubatch in f32 plus the widest live activations, the FFN's
/// (gate, up and their product, times the experts used) or the
/// attention's, whichever is larger. Checked within 10 % or 64 MiB.
pub fn compute_bytes(h: &Hparams, s: &Settings) -> u64 {
    let c = compute_parts(h, s);
    c.logits.saturating_add(c.activations)
}

/// [`compute_bytes`] in its two parts: the logits go with the output
/// layer's device, the activations with every device that holds a layer
/// (`fit::split`).
pub fn compute_parts(h: &Hparams, s: &Settings) -> crate::fit::split::Compute {
    let experts = h.n_expert_used.max(1);
    let ffn = 3u64.saturating_mul(h.n_ff).saturating_mul(experts);
    let attn = 2u64
        .saturating_mul(h.n_embd)
        .saturating_add(h.n_head.saturating_mul(h.head_k));
    let per_token = |floats: u64| s.ubatch.saturating_mul(4).saturating_mul(floats);
    crate::fit::split::Compute {
        logits: per_token(h.n_vocab),
        activations: per_token(ffn.max(attn)),
    }
}

/// The whole prediction for one device holding every layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Estimate {
    pub weights_bytes: u64,
    pub kv: Kv,
    pub compute_bytes: u64,
}

pub fn estimate(g: &Gguf, s: &Settings) -> Result<Estimate, String> {
    let h = Hparams::from_gguf(g)?;
    Ok(Estimate {
        weights_bytes: g.weights_bytes(),
        kv: kv_cache(&h, s)?,
        compute_bytes: compute_bytes(&h, s),
    })
}
