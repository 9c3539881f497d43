//! The size of the same model re-quantised to a smaller llama.cpp mix,
//! from the tensor shapes and ggml's block sizes: what `llama-quantize`
//! would write, for "a Q4_K_M of this model would fit".
//!
//! Modelled, not copied, on llama.cpp as vendored in llama-cpp-python
//! 0.3.36, `src/llama-quant.cpp` `llama_tensor_get_type_impl`: every
//! weight (a `.weight` of two or more dimensions, not `ffn_gate_inp`)
//! takes the mix's base type, except
//! - the output (and `token_embd` when the output is tied): Q6_K, or Q8_0
//!   in the Q8_0 mix;
//! - `attn_v`: Q6_K in Q4_K_M / Q5_K_M on the `use_more_bits` layers (the
//!   first and last eighth, and every third between); Q5_K / Q4_K in
//!   Q3_K_M (the first two / the rest); Q5_K in IQ4_XS with GQA ≥ 4; a 70B
//!   (80 llama blocks) lifts Q3_K/Q4_K to Q5_K; 8 experts: Q8_0;
//! - `attn_k`: Q8_0 with 8 experts;
//! - `ffn_down` (and `ffn_down_exps`): Q6_K on the `use_more_bits` layers in
//!   Q4_K_M and Q5_K_M; in Q3_K_M Q5_K for the first sixteenth, else Q4_K;
//!   in IQ4_XS Q5_K for the first eighth (no imatrix);
//! - `attn_output`: Q4_K in Q3_K_M; Q5_K with 8 experts in Q3_K_M, Q4_K_M
//!   and IQ4_XS; `attn_qkv`: Q4_K / Q5_K / Q6_K in Q3_K_M / Q4_K_M / Q5_K_M;
//! - a row whose length is not a multiple of the type's block takes
//!   llama.cpp's fallback (Q4_K→Q5_0, Q5_K→Q5_1, Q6_K→Q8_0, Q3_K and
//!   IQ4_XS→IQ4_NL), or stays as it is when that does not divide either.
//!
//! Approximated: the imatrix variants, per-architecture exceptions other
//! than the 70B's `attn_v` and Falcon's, and tensors llama.cpp keeps in F32
//! or F16 for other reasons (those of one dimension stay as they are).

use crate::model::gguf::{self, Gguf};

/// The mixes fit offers, largest first.
pub const LADDER: [&str; 6] = ["Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "IQ4_XS", "Q3_K_M"];

const Q3_K: u32 = 11;
const Q4_K: u32 = 12;
const Q5_K: u32 = 13;
const Q6_K: u32 = 14;
const Q8_0: u32 = 8;
const IQ4_XS: u32 = 23;
const IQ4_NL: u32 = 20;
const Q5_0: u32 = 6;
const Q5_1: u32 = 7;

fn base(mix: &str) -> Option<u32> {
    Some(match mix {
        "Q8_0" => Q8_0,
        "Q6_K" => Q6_K,
        "Q5_K_M" => Q5_K,
        "Q4_K_M" => Q4_K,
        "IQ4_XS" => IQ4_XS,
        "Q3_K_M" => Q3_K,
        _ => return None,
    })
}

/// `use_more_bits` of llama-quant.cpp.
fn more_bits(i: u64, n: u64) -> bool {
    i < n / 8 || i >= 7 * n / 8 || (i as i64 - (n / 8) as i64).rem_euclid(3) == 2
}

/// The layer of a block tensor (`blk.N.`).
fn layer(name: &str) -> Option<u64> {
    name.strip_prefix("blk.")?.split('.').next()?.parse().ok()
}

/// The type llama-quantize gives `name` in `mix`.
fn type_for(name: &str, mix: &str, m: &Shape) -> u32 {
    let b = match base(mix) {
        Some(b) => b,
        None => return Q8_0,
    };
    let il = layer(name).unwrap_or(0);
    let n = m.n_layer.max(1);
    let is = |k: &str| name.contains(&format!(".{k}.")) || name.contains(&format!(".{k}_"));
    if name == "output.weight" || (m.tied && name == "token_embd.weight") {
        return if b == Q8_0 { Q8_0 } else { Q6_K };
    }
    if name.starts_with("token_embd.") {
        return b;
    }
    if is("attn_v") {
        let mut t = match mix {
            "Q4_K_M" | "Q5_K_M" if more_bits(il, n) => Q6_K,
            "Q3_K_M" if il < 2 => Q5_K,
            "Q3_K_M" => Q4_K,
            "IQ4_XS" if m.gqa >= 4 => Q5_K,
            _ => b,
        };
        if m.is_70b && (t == Q3_K || t == Q4_K) {
            t = Q5_K;
        }
        if m.n_expert == 8 {
            t = Q8_0;
        }
        return t;
    }
    if is("attn_k") && m.n_expert == 8 {
        return Q8_0;
    }
    if is("ffn_down") {
        return match mix {
            "Q4_K_M" | "Q5_K_M" if more_bits(il, n) => Q6_K,
            "Q3_K_M" if il < n / 16 => Q5_K,
            "Q3_K_M" => Q4_K,
            "IQ4_XS" if il < n / 8 => Q5_K,
            _ => b,
        };
    }
    if is("attn_output") {
        return match mix {
            "Q3_K_M" | "Q4_K_M" | "IQ4_XS" if m.n_expert == 8 => Q5_K,
            "Q3_K_M" => Q4_K,
            _ => b,
        };
    }
    if is("attn_qkv") {
        return match mix {
            "Q3_K_M" => Q4_K,
            "Q4_K_M" => Q5_K,
            "Q5_K_M" => Q6_K,
            _ => b,
        };
    }
    b
}

/// What the rules read from the model.
struct Shape {
    n_layer: u64,
    n_expert: u64,
    gqa: u64,
    tied: bool,
    is_70b: bool,
}

/// The mix's type for a tensor of row length `ne0`, with llama.cpp's
/// fallback when the row is not a whole number of blocks.
fn with_fallback(t: u32, ne0: u64, orig: u32) -> u32 {
    let fits = |t: u32| gguf::row_size(t, ne0).is_some();
    if fits(t) {
        return t;
    }
    let f = match t {
        Q4_K => Q5_0,
        Q5_K => Q5_1,
        Q6_K => Q8_0,
        Q3_K | IQ4_XS => IQ4_NL,
        _ => orig,
    };
    if fits(f) { f } else { orig }
}

/// The model's tensors re-typed to `mix` (sizes recomputed from the
/// shapes), or None for a mix not modelled.
pub fn requantise(g: &Gguf, mix: &str) -> Option<Gguf> {
    base(mix)?;
    let u = |k: &str| g.arch_get(k).and_then(gguf::Value::as_u64);
    let n_head = u("attention.head_count").unwrap_or(1).max(1);
    let n_head_kv = u("attention.head_count_kv").unwrap_or(n_head).max(1);
    let n_layer = u("block_count").unwrap_or(0);
    let shape = Shape {
        n_layer,
        n_expert: u("expert_count").unwrap_or(0),
        gqa: n_head / n_head_kv,
        tied: !g.tensors.iter().any(|t| t.name == "output.weight"),
        is_70b: g.architecture() == Some("llama") && n_layer == 80,
    };
    let mut out = g.clone();
    for t in &mut out.tensors {
        let quantised = t.name.ends_with(".weight")
            && t.dims.len() >= 2
            && !t.name.contains("ffn_gate_inp")
            && !t.name.contains("norm");
        if !quantised {
            continue;
        }
        let ne0 = t.dims[0];
        let ty = with_fallback(type_for(&t.name, mix, &shape), ne0, t.ggml_type);
        let rows = t
            .dims
            .iter()
            .skip(1)
            .try_fold(1u64, |a, &d| a.checked_mul(d));
        if let (Some(r), Some(rows)) = (gguf::row_size(ty, ne0), rows) {
            t.ggml_type = ty;
            t.bytes = r.saturating_mul(rows);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn use_more_bits_is_llama_quants() {
        // 32 layers: 0-3, 28-31, and 4 + 3k + 2 = 6, 9, ..., 27.
        let on: Vec<u64> = (0..32).filter(|&i| more_bits(i, 32)).collect();
        assert_eq!(
            on,
            vec![0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31]
        );
    }

    #[test]
    fn fallback_when_the_row_is_not_whole_blocks() {
        assert_eq!(with_fallback(Q4_K, 4096, 1), Q4_K);
        assert_eq!(with_fallback(Q4_K, 4096 + 32, 1), Q5_0);
        assert_eq!(with_fallback(Q6_K, 96, 1), Q8_0);
        assert_eq!(with_fallback(Q4_K, 7, 1), 1, "nothing divides: unchanged");
    }
}
