//! A Hugging Face model directory, read for its shapes only: the headers of
//! its `*.safetensors` files and its `config.json`, never the weights.
//!
//! A safetensors file (huggingface/safetensors, `safetensors/src/tensor.rs`):
//! an 8-byte little-endian header length N, N bytes of JSON mapping each
//! tensor name to `{"dtype", "shape", "data_offsets": [begin, end]}` (offsets
//! into the data that follows the header) plus an optional `__metadata__`
//! map of strings, then the data. A sharded checkpoint lists its shards in
//! `model.safetensors.index.json` (`weight_map`: tensor name -> file name).
//!
//! Everything here is outside input: the header length is capped (the
//! safetensors library's own cap is 100 MB; real headers are kilobytes to a
//! few MB) and checked against the file's size before anything is read, every
//! tensor's offsets must lie inside the file and match its dtype and shape,
//! shard names must be plain file names, and no file may be reached through
//! a symbolic link that leaves the directory (except into the Hugging Face
//! cache's own `blobs/`, where `snapshots/<rev>/` links point).

use std::collections::BTreeSet;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// One header's JSON at most (bytes).
pub const MAX_HEADER_BYTES: u64 = 32 << 20;
/// All headers of a checkpoint together (a 671B model's 163 shards: ~30 MB).
pub const MAX_TOTAL_HEADER_BYTES: u64 = 256 << 20;
/// `config.json` and the index file.
pub const MAX_JSON_BYTES: u64 = 16 << 20;
/// Shards of one checkpoint.
pub const MAX_SHARDS: usize = 4096;
/// Tensors over all shards.
pub const MAX_TENSORS: usize = 1 << 20;
/// Dimensions of one tensor.
pub const MAX_DIMS: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafetensorsError(pub String);

impl fmt::Display for SafetensorsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SafetensorsError {}

fn err<T>(msg: impl Into<String>) -> Result<T, SafetensorsError> {
    Err(SafetensorsError(msg.into()))
}

/// One tensor's header entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tensor {
    pub name: String,
    pub dtype: String,
    pub shape: Vec<u64>,
    /// `end - begin`, exact.
    pub bytes: u64,
}

/// Bits per element of a safetensors dtype (`Dtype` in safetensors'
/// `tensor.rs`), None for one it does not define.
pub fn dtype_bits(d: &str) -> Option<u64> {
    Some(match d {
        "BOOL" | "U8" | "I8" | "F8_E4M3" | "F8_E5M2" | "F8_E8M0" => 8,
        "F4" => 4,
        "F6_E2M3" | "F6_E3M2" => 6,
        "U16" | "I16" | "F16" | "BF16" => 16,
        "U32" | "I32" | "F32" => 32,
        "U64" | "I64" | "F64" => 64,
        _ => return None,
    })
}

/// The architecture facts of `config.json` that the memory of an engine
/// depends on. For a multimodal config the text model's (`text_config`,
/// `llm_config`, `language_config`) win over the top level.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    pub architecture: String,
    pub model_type: String,
    pub num_hidden_layers: Option<u64>,
    pub hidden_size: Option<u64>,
    pub intermediate_size: Option<u64>,
    pub num_attention_heads: Option<u64>,
    pub num_key_value_heads: Option<u64>,
    pub head_dim: Option<u64>,
    pub vocab_size: Option<u64>,
    /// The smallest of the context keys vLLM reads (`max_position_embeddings`,
    /// `n_positions`, `max_seq_len`, `seq_length`, `max_sequence_length`,
    /// `model_max_length`).
    pub max_position_embeddings: Option<u64>,
    /// `torch_dtype` (or transformers' newer `dtype`).
    pub torch_dtype: Option<String>,
    /// `quantization_config.quant_method` (also `compression_config`).
    pub quant_method: Option<String>,
    /// `sliding_window` when sliding attention is on (Qwen2's
    /// `use_sliding_window: false` turns it off).
    pub sliding_window: Option<u64>,
    /// `layer_types` (`sliding_attention` / `full_attention`, ...).
    pub layer_types: Vec<String>,
    /// Routed experts (`num_local_experts`, `num_experts`, `n_routed_experts`).
    pub num_experts: Option<u64>,
    pub num_experts_per_tok: Option<u64>,
    /// Multi-head latent attention (DeepSeek V2/V3): its KV is one latent
    /// vector of `kv_lora_rank + qk_rope_head_dim` per token and layer.
    pub kv_lora_rank: Option<u64>,
    pub qk_rope_head_dim: Option<u64>,
    /// Keys were found under a nested text config.
    pub nested: Option<String>,
}

impl Config {
    /// KV heads (default: the attention heads, as transformers does).
    pub fn kv_heads(&self) -> Option<u64> {
        self.num_key_value_heads.or(self.num_attention_heads)
    }

    /// `head_dim`, else `hidden_size / num_attention_heads`.
    pub fn head_size(&self) -> Option<u64> {
        self.head_dim.or_else(|| {
            let h = self.hidden_size?;
            let n = self.num_attention_heads?;
            (n > 0).then(|| h / n)
        })
    }
}

/// A model directory: its tensors and its config.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Checkpoint {
    pub dir: PathBuf,
    /// File names, in the order read.
    pub shards: Vec<String>,
    pub tensors: Vec<Tensor>,
    pub config: Config,
}

impl Checkpoint {
    /// The sum of the tensors' data bytes, exact.
    pub fn weights_bytes(&self) -> u64 {
        self.tensors
            .iter()
            .fold(0u64, |a, t| a.saturating_add(t.bytes))
    }

    /// The dtype holding the most bytes (`BF16` for most checkpoints).
    pub fn main_dtype(&self) -> Option<String> {
        let mut by: Vec<(String, u64)> = Vec::new();
        for t in &self.tensors {
            match by.iter_mut().find(|(d, _)| *d == t.dtype) {
                Some(e) => e.1 = e.1.saturating_add(t.bytes),
                None => by.push((t.dtype.clone(), t.bytes)),
            }
        }
        by.into_iter().max_by_key(|(_, b)| *b).map(|(d, _)| d)
    }
}

fn u64_of(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| {
        v.as_f64()
            .filter(|f| *f >= 0.0 && f.fract() == 0.0)
            .map(|f| f as u64)
    })
}

/// Parse one safetensors header from `r` (the whole file or its start),
/// `file_len` bytes long.
pub fn parse_header<R: Read>(
    mut r: R,
    file_len: u64,
    what: &str,
) -> Result<Vec<Tensor>, SafetensorsError> {
    let mut len8 = [0u8; 8];
    if file_len < 8 {
        return err(format!(
            "{what}: {file_len} bytes, shorter than the 8-byte header length: truncated or not safetensors"
        ));
    }
    r.read_exact(&mut len8)
        .map_err(|e| SafetensorsError(format!("{what}: cannot read the header length: {e}")))?;
    let n = u64::from_le_bytes(len8);
    if n > MAX_HEADER_BYTES {
        return err(format!(
            "{what}: the header claims {n} bytes (more than {MAX_HEADER_BYTES}): a damaged or hostile file"
        ));
    }
    if n > file_len - 8 {
        return err(format!(
            "{what}: the header claims {n} bytes but the file has {} after the length: truncated or damaged",
            file_len - 8
        ));
    }
    if n < 2 {
        return err(format!(
            "{what}: a header of {n} bytes cannot hold a JSON object"
        ));
    }
    let mut buf = Vec::with_capacity(n as usize);
    r.by_ref()
        .take(n)
        .read_to_end(&mut buf)
        .map_err(|e| SafetensorsError(format!("{what}: cannot read the header: {e}")))?;
    if (buf.len() as u64) < n {
        return err(format!(
            "{what}: the header is {} of {n} bytes: truncated",
            buf.len()
        ));
    }
    if buf.first() != Some(&b'{') {
        return err(format!(
            "{what}: the header does not start with '{{': not a safetensors file"
        ));
    }
    let v: Value = serde_json::from_slice(&buf)
        .map_err(|e| SafetensorsError(format!("{what}: the header is not JSON: {e}")))?;
    drop(buf);
    let Value::Object(map) = v else {
        return err(format!("{what}: the header is not a JSON object"));
    };
    let data_len = file_len - 8 - n;
    let mut out = Vec::with_capacity(map.len().min(MAX_TENSORS));
    for (name, e) in map {
        if name == "__metadata__" {
            continue;
        }
        let bad = |m: &str| SafetensorsError(format!("{what}: tensor {name:?}: {m}"));
        let dtype = e
            .get("dtype")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("no dtype"))?
            .to_string();
        let shape_v = e
            .get("shape")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("no shape"))?;
        if shape_v.len() > MAX_DIMS {
            return Err(bad(&format!(
                "{} dimensions (at most {MAX_DIMS})",
                shape_v.len()
            )));
        }
        let shape: Vec<u64> = shape_v
            .iter()
            .map(|d| u64_of(d).ok_or_else(|| bad("a dimension is not a non-negative integer")))
            .collect::<Result<_, _>>()?;
        let off = e
            .get("data_offsets")
            .and_then(Value::as_array)
            .filter(|a| a.len() == 2)
            .ok_or_else(|| bad("no data_offsets [begin, end]"))?;
        let (Some(begin), Some(end)) = (u64_of(&off[0]), u64_of(&off[1])) else {
            return Err(bad("data_offsets are not non-negative integers"));
        };
        if begin > end || end > data_len {
            return Err(bad(&format!(
                "data_offsets [{begin}, {end}] lie outside the {data_len} data bytes: truncated or damaged"
            )));
        }
        let bytes = end - begin;
        if let Some(bits) = dtype_bits(&dtype) {
            let numel = shape
                .iter()
                .try_fold(1u64, |a, &d| a.checked_mul(d))
                .ok_or_else(|| bad("its shape overflows"))?;
            let want = numel
                .checked_mul(bits)
                .map(|b| b.div_ceil(8))
                .ok_or_else(|| bad("its size overflows"))?;
            if want != bytes {
                return Err(bad(&format!(
                    "{dtype} {shape:?} is {want} bytes but its data_offsets span {bytes}"
                )));
            }
        }
        out.push(Tensor {
            name,
            dtype,
            shape,
            bytes,
        });
        if out.len() > MAX_TENSORS {
            return err(format!("{what}: more than {MAX_TENSORS} tensors"));
        }
    }
    Ok(out)
}

/// Read a JSON file of the directory, capped.
fn read_json(path: &Path, what: &str) -> Result<Value, SafetensorsError> {
    let f = std::fs::File::open(path)
        .map_err(|e| SafetensorsError(format!("{what}: cannot open: {e}")))?;
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    if len > MAX_JSON_BYTES {
        return err(format!(
            "{what}: {len} bytes (more than {MAX_JSON_BYTES}): not a config file"
        ));
    }
    let mut buf = Vec::new();
    f.take(MAX_JSON_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(|e| SafetensorsError(format!("{what}: cannot read: {e}")))?;
    if buf.len() as u64 > MAX_JSON_BYTES {
        return err(format!("{what}: more than {MAX_JSON_BYTES} bytes"));
    }
    serde_json::from_slice(&buf).map_err(|e| SafetensorsError(format!("{what}: not JSON: {e}")))
}

/// A shard name must be a plain file name: no separator, not `.`/`..`,
/// not absolute.
pub fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains('/')
        && !name.contains('\\')
        && !name.contains('\0')
        && !name.contains("..")
}

/// Resolve `dir/name`, refusing a link that leaves the directory. The
/// Hugging Face cache keeps `snapshots/<rev>/NAME` as a link into the same
/// model's `blobs/`; that one is allowed.
fn inside(dir: &Path, name: &str) -> Result<PathBuf, SafetensorsError> {
    if !plain_name(name) {
        return err(format!(
            "shard name {name:?} is not a plain file name in the model directory"
        ));
    }
    let p = dir.join(name);
    let real =
        std::fs::canonicalize(&p).map_err(|e| SafetensorsError(format!("{}: {e}", p.display())))?;
    let root = std::fs::canonicalize(dir)
        .map_err(|e| SafetensorsError(format!("{}: {e}", dir.display())))?;
    let in_dir = real.parent() == Some(root.as_path());
    let in_blobs = root
        .parent()
        .filter(|s| s.file_name().is_some_and(|n| n == "snapshots"))
        .and_then(Path::parent)
        .map(|repo| repo.join("blobs"))
        .is_some_and(|b| real.parent() == Some(b.as_path()));
    if !in_dir && !in_blobs {
        return err(format!(
            "{name}: a link that leaves the model directory (to {}); refused",
            real.display()
        ));
    }
    Ok(real)
}

fn first_u64(m: &serde_json::Map<String, Value>, keys: &[&str]) -> Option<u64> {
    keys.iter().find_map(|k| m.get(*k).and_then(u64_of))
}

/// The facts of a parsed `config.json`.
pub fn config_facts(v: &Value) -> Config {
    let empty = serde_json::Map::new();
    let top = v.as_object().unwrap_or(&empty);
    let mut c = Config {
        architecture: top
            .get("architectures")
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .and_then(Value::as_str)
            .unwrap_or("")
            .chars()
            .take(128)
            .collect(),
        model_type: top
            .get("model_type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .chars()
            .take(128)
            .collect(),
        ..Config::default()
    };
    let nested = ["text_config", "llm_config", "language_config"]
        .iter()
        .find_map(|k| top.get(*k).and_then(Value::as_object).map(|m| (*k, m)));
    // A key from the text config when it has it, else from the top level.
    let get = |k: &str| -> Option<&Value> {
        nested
            .and_then(|(_, m)| m.get(k))
            .filter(|v| !v.is_null())
            .or_else(|| top.get(k).filter(|v| !v.is_null()))
    };
    let num = |keys: &[&str]| keys.iter().find_map(|k| get(k).and_then(u64_of));
    c.nested = nested.map(|(k, _)| k.to_string());
    c.num_hidden_layers = num(&["num_hidden_layers", "n_layer", "num_layers", "n_layers"]);
    c.hidden_size = num(&["hidden_size", "n_embd", "d_model"]);
    c.intermediate_size = num(&["intermediate_size", "ffn_dim", "n_inner"]);
    c.num_attention_heads = num(&["num_attention_heads", "n_head", "num_heads"]);
    c.num_key_value_heads = num(&["num_key_value_heads", "num_kv_heads", "n_head_kv"]);
    c.head_dim = num(&["head_dim"]);
    c.vocab_size = num(&["vocab_size"]);
    let ctx_keys = [
        "max_position_embeddings",
        "n_positions",
        "max_seq_len",
        "seq_length",
        "max_sequence_length",
        "model_max_length",
    ];
    let mut ctx: Option<u64> = None;
    for m in [nested.map(|(_, m)| m), Some(top)].into_iter().flatten() {
        if let Some(x) = first_u64(m, &ctx_keys) {
            ctx = Some(ctx.map_or(x, |c| c.min(x)));
            break;
        }
    }
    c.max_position_embeddings = ctx;
    c.torch_dtype = get("torch_dtype")
        .or_else(|| get("dtype"))
        .and_then(Value::as_str)
        .map(|s| s.chars().take(32).collect());
    c.quant_method = ["quantization_config", "compression_config"]
        .iter()
        .find_map(|k| top.get(*k).or_else(|| get(k)))
        .and_then(|q| {
            q.get("quant_method")
                .or_else(|| q.get("format"))
                .and_then(Value::as_str)
                .map(|s| s.chars().take(64).collect())
        });
    let sliding_on = get("use_sliding_window").and_then(Value::as_bool) != Some(false);
    c.sliding_window = get("sliding_window")
        .and_then(u64_of)
        .filter(|w| *w > 0 && sliding_on);
    c.layer_types = get("layer_types")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .take(1 << 16)
                .map(|t| t.as_str().unwrap_or("").chars().take(64).collect())
                .collect()
        })
        .unwrap_or_default();
    c.num_experts = num(&["num_local_experts", "num_experts", "n_routed_experts"]);
    c.num_experts_per_tok = num(&["num_experts_per_tok", "moe_topk"]);
    c.kv_lora_rank = num(&["kv_lora_rank"]);
    c.qk_rope_head_dim = num(&["qk_rope_head_dim"]);
    c
}

/// Read a model directory: `config.json`, then the shards the index lists
/// or, without an index, every `*.safetensors` file in it.
pub fn read_dir(dir: &Path) -> Result<Checkpoint, SafetensorsError> {
    let meta =
        std::fs::metadata(dir).map_err(|e| SafetensorsError(format!("{}: {e}", dir.display())))?;
    if !meta.is_dir() {
        return err(format!(
            "{}: not a directory (vLLM takes a Hugging Face model directory with config.json and *.safetensors)",
            dir.display()
        ));
    }
    let cfg_path =
        inside(dir, "config.json").map_err(|e| SafetensorsError(format!("config.json: {e}")))?;
    let config = config_facts(&read_json(&cfg_path, "config.json")?);
    let index = dir.join("model.safetensors.index.json");
    let shards: Vec<String> = if std::fs::symlink_metadata(&index).is_ok() {
        let p = inside(dir, "model.safetensors.index.json")?;
        let v = read_json(&p, "model.safetensors.index.json")?;
        let Some(map) = v.get("weight_map").and_then(Value::as_object) else {
            return err("model.safetensors.index.json has no weight_map");
        };
        let mut set = BTreeSet::new();
        for f in map.values() {
            let Some(name) = f.as_str() else {
                return err("model.safetensors.index.json: a weight_map value is not a file name");
            };
            if !plain_name(name) {
                return err(format!(
                    "model.safetensors.index.json names shard {name:?}: not a plain file name in the model directory"
                ));
            }
            set.insert(name.to_string());
            if set.len() > MAX_SHARDS {
                return err(format!("the index lists more than {MAX_SHARDS} shards"));
            }
        }
        set.into_iter().collect()
    } else {
        let rd = std::fs::read_dir(dir)
            .map_err(|e| SafetensorsError(format!("{}: {e}", dir.display())))?;
        let mut names = Vec::new();
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".safetensors") {
                names.push(name);
                if names.len() > MAX_SHARDS {
                    return err(format!("more than {MAX_SHARDS} *.safetensors files"));
                }
            }
        }
        names.sort();
        names
    };
    if shards.is_empty() {
        return err(format!(
            "{}: no *.safetensors file (vLLM's default load format needs them)",
            dir.display()
        ));
    }
    let mut tensors = Vec::new();
    let mut total_header = 0u64;
    for name in &shards {
        let p = inside(dir, name)?;
        let f = std::fs::File::open(&p)
            .map_err(|e| SafetensorsError(format!("{name}: cannot open: {e}")))?;
        let len = f
            .metadata()
            .map_err(|e| SafetensorsError(format!("{name}: {e}")))?
            .len();
        let t = parse_header(std::io::BufReader::new(f), len, name)?;
        total_header = total_header.saturating_add(t.len() as u64 * 64);
        if total_header > MAX_TOTAL_HEADER_BYTES || tensors.len() + t.len() > MAX_TENSORS {
            return err(format!(
                "more than {MAX_TENSORS} tensors over the shards: refused"
            ));
        }
        tensors.extend(t);
    }
    Ok(Checkpoint {
        dir: dir.to_path_buf(),
        shards,
        tensors,
        config,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    fn file(header: &str, data: u64) -> Vec<u8> {
        let mut v = (header.len() as u64).to_le_bytes().to_vec();
        v.extend_from_slice(header.as_bytes());
        v.resize(v.len() + data as usize, 0);
        v
    }

    #[test]
    fn a_header_gives_exact_bytes() {
        let h = r#"{"__metadata__":{"format":"pt"},"a":{"dtype":"BF16","shape":[2,3],"data_offsets":[0,12]},"b":{"dtype":"F32","shape":[4],"data_offsets":[12,28]}}"#;
        let f = file(h, 28);
        let t = parse_header(&f[..], f.len() as u64, "x").unwrap();
        assert_eq!(t.iter().map(|t| t.bytes).sum::<u64>(), 28);
    }

    #[test]
    fn hostile_headers_are_errors() {
        // Length past the end.
        let mut f = file("{}", 0);
        f[..8].copy_from_slice(&1000u64.to_le_bytes());
        let e = parse_header(&f[..], f.len() as u64, "x").unwrap_err();
        assert!(e.0.contains("truncated"), "{e}");
        // Huge length.
        f[..8].copy_from_slice(&u64::MAX.to_le_bytes());
        let e = parse_header(&f[..], f.len() as u64, "x").unwrap_err();
        assert!(e.0.contains("hostile"), "{e}");
        // Offsets past the data.
        let h = r#"{"a":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}}"#;
        let f = file(h, 2);
        assert!(parse_header(&f[..], f.len() as u64, "x").is_err());
        // Shape and offsets disagree.
        let h = r#"{"a":{"dtype":"BF16","shape":[3],"data_offsets":[0,4]}}"#;
        let f = file(h, 4);
        assert!(parse_header(&f[..], f.len() as u64, "x").is_err());
        // Overflowing shape.
        let h = r#"{"a":{"dtype":"BF16","shape":[18446744073709551615,4],"data_offsets":[0,4]}}"#;
        let f = file(h, 4);
        assert!(parse_header(&f[..], f.len() as u64, "x").is_err());
        // Too short.
        assert!(parse_header(&[1u8, 2][..], 2, "x").is_err());
    }

    #[test]
    fn names() {
        assert!(plain_name("model-00001-of-00004.safetensors"));
        for bad in ["../x.safetensors", "/etc/passwd", "a/b", "..", "a\\b", ""] {
            assert!(!plain_name(bad), "{bad}");
        }
    }

    #[test]
    fn text_config_nesting_and_sliding() {
        let v: Value = serde_json::from_str(
            r#"{"architectures":["Gemma3ForConditionalGeneration"],"model_type":"gemma3",
            "text_config":{"num_hidden_layers":34,"num_key_value_heads":4,"head_dim":256,
            "num_attention_heads":8,"hidden_size":2560,"sliding_window":1024,
            "max_position_embeddings":131072},"torch_dtype":"bfloat16"}"#,
        )
        .unwrap();
        let c = config_facts(&v);
        assert_eq!(c.num_hidden_layers, Some(34));
        assert_eq!(c.kv_heads(), Some(4));
        assert_eq!(c.head_size(), Some(256));
        assert_eq!(c.sliding_window, Some(1024));
        assert_eq!(c.torch_dtype.as_deref(), Some("bfloat16"));
        assert_eq!(c.nested.as_deref(), Some("text_config"));
        let q: Value = serde_json::from_str(
            r#"{"num_hidden_layers":28,"hidden_size":3584,"num_attention_heads":28,"sliding_window":131072,"use_sliding_window":false}"#,
        )
        .unwrap();
        let c = config_facts(&q);
        assert_eq!(c.sliding_window, None);
        assert_eq!(c.head_size(), Some(128));
    }
}
