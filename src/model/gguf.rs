//! The GGUF header: metadata key/values and tensor infos, never the weights.
//!
//! Layout (ggml `docs/gguf.md`, `ggml/src/gguf.cpp`): magic `GGUF`, u32
//! version (2 or 3; 1 had u32 counts and is long gone), u64 tensor count,
//! u64 key/value count, the key/values, the tensor infos (name, u32 n_dims,
//! u64 dims, u32 ggml type, u64 offset into the data section), padding to
//! `general.alignment` (default 32), then the data. All little-endian.
//!
//! A model file is outside input: every count and length is checked against
//! a cap before anything is allocated for it, and against what is left of the
//! header budget, so a hostile or truncated header is an error, never a panic
//! or an allocation the size of a number it wrote. Strings in big arrays (the
//! tokenizer's vocabulary) are skipped, not kept: fit needs their count only.

use std::fmt;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// Bytes of header we read at most. A 256k-token vocabulary with its merges
/// is about 20 MB; the chat template a few tens of KB.
pub const MAX_HEADER_BYTES: u64 = 256 << 20;
/// ggml's own tensor count cap is `SIZE_MAX / sizeof(gguf_tensor_info)`; real
/// models have hundreds (a 70B: 723) to a few tens of thousands (old MoE
/// files with one tensor per expert).
pub const MAX_TENSORS: u64 = 1 << 20;
pub const MAX_KV: u64 = 1 << 16;
/// A key or a tensor name (ggml: `GGML_MAX_NAME` is 64 for tensor names).
pub const MAX_NAME: u64 = 1 << 16;
/// A string value (a chat template, a license text).
pub const MAX_STRING: u64 = 16 << 20;
/// Numeric arrays longer than this keep only their length (per-layer arrays
/// have one entry per block, a few hundred at most).
pub const MAX_KEPT_ARRAY: u64 = 1 << 16;
/// ggml's `GGML_MAX_DIMS`.
pub const MAX_DIMS: u32 = 4;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GgufError(pub String);

impl fmt::Display for GgufError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for GgufError {}

fn err<T>(msg: impl Into<String>) -> Result<T, GgufError> {
    Err(GgufError(msg.into()))
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    Str(String),
    U64(u64),
    I64(i64),
    F64(f64),
    /// Numeric or bool items, widened; kept when at most [`MAX_KEPT_ARRAY`].
    Array(Vec<Value>),
    /// An array whose items were skipped (strings, nested arrays, or too
    /// long to keep): its element type code and its length.
    Skipped {
        elem: u32,
        len: u64,
    },
}

impl Value {
    /// A non-negative integer, whatever its width.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(v.into()),
            Value::U16(v) => Some(v.into()),
            Value::U32(v) => Some(v.into()),
            Value::U64(v) => Some(v),
            Value::I8(v) => u64::try_from(v).ok(),
            Value::I16(v) => u64::try_from(v).ok(),
            Value::I32(v) => u64::try_from(v).ok(),
            Value::I64(v) => u64::try_from(v).ok(),
            Value::Bool(v) => Some(v.into()),
            _ => None,
        }
    }
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(v) => Some(v.into()),
            Value::F64(v) => Some(v),
            _ => self.as_u64().map(|v| v as f64),
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
    /// The length of an array value (kept or skipped).
    pub fn array_len(&self) -> Option<u64> {
        match self {
            Value::Array(v) => Some(v.len() as u64),
            Value::Skipped { len, .. } => Some(*len),
            _ => None,
        }
    }
}

/// A ggml tensor type: its block size (elements) and type size (bytes per
/// block). From ggml's `type_traits` (`ggml/src/ggml.c`), the same table as
/// gguf-py's `GGML_QUANT_SIZES`. Codes 4, 5 (Q4_2, Q4_3) and 31-33, 36-38
/// (the removed `_4_4`-style repacked types) are gone from ggml: a file
/// using them does not load there either.
pub fn type_traits(code: u32) -> Option<(&'static str, u64, u64)> {
    const QK_K: u64 = 256;
    Some(match code {
        0 => ("F32", 1, 4),
        1 => ("F16", 1, 2),
        2 => ("Q4_0", 32, 2 + 16),
        3 => ("Q4_1", 32, 2 + 2 + 16),
        6 => ("Q5_0", 32, 2 + 4 + 16),
        7 => ("Q5_1", 32, 2 + 2 + 4 + 16),
        8 => ("Q8_0", 32, 2 + 32),
        9 => ("Q8_1", 32, 2 + 2 + 32),
        10 => ("Q2_K", QK_K, 2 + 2 + QK_K / 16 + QK_K / 4),
        11 => ("Q3_K", QK_K, 2 + QK_K / 4 + QK_K / 8 + 12),
        12 => ("Q4_K", QK_K, 2 + 2 + QK_K / 2 + 12),
        13 => ("Q5_K", QK_K, 2 + 2 + QK_K / 2 + QK_K / 8 + 12),
        14 => ("Q6_K", QK_K, 2 + QK_K / 2 + QK_K / 4 + QK_K / 16),
        15 => ("Q8_K", QK_K, 4 + QK_K + QK_K / 8),
        16 => ("IQ2_XXS", QK_K, 2 + QK_K / 4),
        17 => ("IQ2_XS", QK_K, 2 + QK_K / 4 + QK_K / 32),
        18 => ("IQ3_XXS", QK_K, 2 + QK_K / 4 + QK_K / 8),
        19 => ("IQ1_S", QK_K, 2 + QK_K / 8 + QK_K / 16),
        20 => ("IQ4_NL", 32, 2 + 16),
        21 => ("IQ3_S", QK_K, 2 + QK_K / 4 + QK_K / 8 + QK_K / 32 + 4),
        22 => ("IQ2_S", QK_K, 2 + QK_K / 4 + QK_K / 16),
        23 => ("IQ4_XS", QK_K, 2 + 2 + QK_K / 2 + QK_K / 64),
        24 => ("I8", 1, 1),
        25 => ("I16", 1, 2),
        26 => ("I32", 1, 4),
        27 => ("I64", 1, 8),
        28 => ("F64", 1, 8),
        29 => ("IQ1_M", QK_K, QK_K / 8 + QK_K / 16 + QK_K / 32),
        30 => ("BF16", 1, 2),
        34 => ("TQ1_0", QK_K, 2 + 4 * 13),
        35 => ("TQ2_0", QK_K, 2 + 64),
        39 => ("MXFP4", 32, 1 + 16),
        40 => ("NVFP4", 64, 4 + 32),
        41 => ("Q1_0", 128, 2 + 16),
        42 => ("Q2_0", 64, 2 + 16),
        _ => return None,
    })
}

/// The type code of a type name (`f16`, `q8_0`, ...), for `--kv-type`.
pub fn type_by_name(name: &str) -> Option<u32> {
    (0..64).find(|&c| type_traits(c).is_some_and(|(n, _, _)| n.eq_ignore_ascii_case(name)))
}

/// Bytes of a row of `n` elements of type `code` (ggml `ggml_row_size`);
/// None when `n` is not a whole number of blocks or the type is unknown.
pub fn row_size(code: u32, n: u64) -> Option<u64> {
    let (_, blck, ts) = type_traits(code)?;
    if n % blck != 0 {
        return None;
    }
    (n / blck).checked_mul(ts)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    pub dims: Vec<u64>,
    pub ggml_type: u32,
    /// Offset inside the data section.
    pub offset: u64,
    /// `ggml_nbytes` of the tensor: its data bytes, exact.
    pub bytes: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Gguf {
    pub version: u32,
    pub alignment: u64,
    pub kv: Vec<(String, Value)>,
    pub tensors: Vec<TensorInfo>,
    /// Where the data section starts in the file.
    pub data_offset: u64,
    /// The file's length, when read from a file.
    pub file_len: Option<u64>,
}

impl Gguf {
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.kv.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
    pub fn architecture(&self) -> Option<&str> {
        self.get("general.architecture").and_then(Value::as_str)
    }
    /// `<arch>.<suffix>`, the way llama.cpp's `LLM_KV` names a key.
    pub fn arch_get(&self, suffix: &str) -> Option<&Value> {
        let arch = self.architecture()?;
        self.get(&format!("{arch}.{suffix}"))
    }
    /// The sum of every tensor's data bytes.
    pub fn weights_bytes(&self) -> u64 {
        self.tensors.iter().map(|t| t.bytes).sum()
    }
}

/// A reader that counts what it has consumed against the header budget.
struct Cursor<R> {
    inner: R,
    pos: u64,
    budget: u64,
}

impl<R: Read> Cursor<R> {
    fn bytes<const N: usize>(&mut self, what: &str) -> Result<[u8; N], GgufError> {
        let mut b = [0u8; N];
        self.fill(&mut b, what)?;
        Ok(b)
    }
    fn fill(&mut self, buf: &mut [u8], what: &str) -> Result<(), GgufError> {
        let n = buf.len() as u64;
        if self.pos.saturating_add(n) > self.budget {
            return err(format!(
                "GGUF header is larger than {} MiB at byte {} ({what}): not read further",
                self.budget >> 20,
                self.pos
            ));
        }
        match self.inner.read_exact(buf) {
            Ok(()) => {
                self.pos += n;
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => err(format!(
                "GGUF header is truncated at byte {} (reading {what})",
                self.pos
            )),
            Err(e) => err(format!("cannot read the GGUF header: {e}")),
        }
    }
    /// Consume `n` bytes without keeping them.
    fn skip(&mut self, n: u64, what: &str) -> Result<(), GgufError> {
        if self.pos.saturating_add(n) > self.budget {
            return err(format!(
                "GGUF header is larger than {} MiB at byte {} ({what}): not read further",
                self.budget >> 20,
                self.pos
            ));
        }
        let got = std::io::copy(&mut (&mut self.inner).take(n), &mut std::io::sink())
            .map_err(|e| GgufError(format!("cannot read the GGUF header: {e}")))?;
        self.pos += got;
        if got < n {
            return err(format!(
                "GGUF header is truncated at byte {} (reading {what})",
                self.pos
            ));
        }
        Ok(())
    }
    fn u32(&mut self, what: &str) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.bytes(what)?))
    }
    fn u64(&mut self, what: &str) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.bytes(what)?))
    }
    /// A GGUF string: u64 length, then that many bytes (UTF-8 by the spec).
    fn string(&mut self, max: u64, what: &str) -> Result<String, GgufError> {
        let at = self.pos;
        let len = self.u64(what)?;
        if len > max {
            return err(format!(
                "GGUF {what} at byte {at} claims {len} bytes (more than {max}): a damaged or hostile file"
            ));
        }
        // The budget check comes before the allocation.
        if self.pos.saturating_add(len) > self.budget {
            return err(format!(
                "GGUF header is larger than {} MiB at byte {} ({what}): not read further",
                self.budget >> 20,
                self.pos
            ));
        }
        let mut buf = vec![0u8; len as usize];
        self.fill(&mut buf, what)?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }
    fn skip_string(&mut self, what: &str) -> Result<(), GgufError> {
        let at = self.pos;
        let len = self.u64(what)?;
        if len > MAX_STRING {
            return err(format!(
                "GGUF {what} at byte {at} claims {len} bytes (more than {MAX_STRING}): a damaged or hostile file"
            ));
        }
        self.skip(len, what)
    }

    fn scalar(&mut self, ty: u32, key: &str) -> Result<Value, GgufError> {
        Ok(match ty {
            0 => Value::U8(self.bytes::<1>(key)?[0]),
            1 => Value::I8(i8::from_le_bytes(self.bytes(key)?)),
            2 => Value::U16(u16::from_le_bytes(self.bytes(key)?)),
            3 => Value::I16(i16::from_le_bytes(self.bytes(key)?)),
            4 => Value::U32(self.u32(key)?),
            5 => Value::I32(i32::from_le_bytes(self.bytes(key)?)),
            6 => Value::F32(f32::from_le_bytes(self.bytes(key)?)),
            7 => match self.bytes::<1>(key)?[0] {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => {
                    return err(format!(
                        "GGUF key {key:?}: bool byte {b} is neither 0 nor 1"
                    ));
                }
            },
            8 => Value::Str(self.string(MAX_STRING, &format!("value of {key:?}"))?),
            10 => Value::U64(self.u64(key)?),
            11 => Value::I64(i64::from_le_bytes(self.bytes(key)?)),
            12 => Value::F64(f64::from_le_bytes(self.bytes(key)?)),
            _ => return err(format!("GGUF key {key:?} has unknown value type {ty}")),
        })
    }

    fn value(&mut self, ty: u32, key: &str) -> Result<Value, GgufError> {
        if ty != 9 {
            return self.scalar(ty, key);
        }
        let elem = self.u32(key)?;
        let len = self.u64(key)?;
        let size = match elem {
            0 | 1 | 7 => Some(1u64),
            2 | 3 => Some(2),
            4..=6 => Some(4),
            10..=12 => Some(8),
            8 => None,
            9 => return err(format!("GGUF key {key:?}: nested arrays are not supported")),
            _ => return err(format!("GGUF key {key:?}: array of unknown type {elem}")),
        };
        match size {
            // Strings: each has its own length; skip them one by one. Every
            // string costs at least its 8-byte length, so `len` is bounded by
            // the budget and a hostile count fails there.
            None => {
                if len > (self.budget - self.pos.min(self.budget)) / 8 {
                    return err(format!(
                        "GGUF key {key:?}: an array of {len} strings is larger than what is left of the {} MiB header budget",
                        self.budget >> 20
                    ));
                }
                for _ in 0..len {
                    self.skip_string(key)?;
                }
                Ok(Value::Skipped { elem, len })
            }
            Some(sz) => {
                let Some(total) = len.checked_mul(sz) else {
                    return err(format!("GGUF key {key:?}: array length {len} overflows"));
                };
                if len > MAX_KEPT_ARRAY {
                    self.skip(total, key)?;
                    return Ok(Value::Skipped { elem, len });
                }
                if self.pos.saturating_add(total) > self.budget {
                    return err(format!(
                        "GGUF header is larger than {} MiB at byte {} ({key}): not read further",
                        self.budget >> 20,
                        self.pos
                    ));
                }
                let mut items = Vec::with_capacity(len as usize);
                for _ in 0..len {
                    items.push(self.scalar(elem, key)?);
                }
                Ok(Value::Array(items))
            }
        }
    }
}

/// Parse a GGUF header from `r`. `file_len`, when known, bounds the tensor
/// data (a tensor past the end of the file means the file is truncated).
pub fn parse<R: Read>(r: R, file_len: Option<u64>) -> Result<Gguf, GgufError> {
    parse_with_budget(r, file_len, MAX_HEADER_BYTES)
}

pub fn parse_with_budget<R: Read>(
    r: R,
    file_len: Option<u64>,
    budget: u64,
) -> Result<Gguf, GgufError> {
    let mut c = Cursor {
        inner: r,
        pos: 0,
        budget,
    };
    let magic: [u8; 4] = c.bytes("magic")?;
    if &magic != b"GGUF" {
        return err(format!(
            "not a GGUF file: it starts with {:02x?}, not \"GGUF\"",
            magic
        ));
    }
    let version = c.u32("version")?;
    match version {
        2 | 3 => {}
        1 => return err("GGUF version 1 (2023) is not supported: convert the model again"),
        v if v.swap_bytes() == 2 || v.swap_bytes() == 3 => {
            return err("a big-endian GGUF file: not supported");
        }
        v => return err(format!("unknown GGUF version {v}")),
    }
    let n_tensors = c.u64("tensor count")?;
    let n_kv = c.u64("key/value count")?;
    if n_tensors > MAX_TENSORS {
        return err(format!(
            "GGUF header claims {n_tensors} tensors (more than {MAX_TENSORS}): a damaged or hostile file"
        ));
    }
    if n_kv > MAX_KV {
        return err(format!(
            "GGUF header claims {n_kv} metadata keys (more than {MAX_KV}): a damaged or hostile file"
        ));
    }
    let mut kv: Vec<(String, Value)> = Vec::new();
    for _ in 0..n_kv {
        let key = c.string(MAX_NAME, "key")?;
        let ty = c.u32(&key)?;
        let v = c.value(ty, &key)?;
        if kv.iter().any(|(k, _)| *k == key) {
            // ggml's gguf_init refuses duplicate keys too.
            return err(format!("GGUF key {key:?} appears twice"));
        }
        kv.push((key, v));
    }
    let alignment = match kv.iter().find(|(k, _)| k == "general.alignment") {
        None => 32,
        Some((_, v)) => match v.as_u64() {
            Some(a) if a > 0 && a.is_power_of_two() && a <= 1 << 30 => a,
            _ => {
                return err(format!(
                    "GGUF general.alignment {v:?} is not a power of two"
                ));
            }
        },
    };
    let mut tensors: Vec<TensorInfo> = Vec::new();
    for _ in 0..n_tensors {
        let name = c.string(MAX_NAME, "tensor name")?;
        let n_dims = c.u32(&name)?;
        if n_dims == 0 || n_dims > MAX_DIMS {
            return err(format!(
                "GGUF tensor {name:?} has {n_dims} dimensions (ggml allows 1 to {MAX_DIMS})"
            ));
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            dims.push(c.u64(&name)?);
        }
        let ggml_type = c.u32(&name)?;
        let offset = c.u64(&name)?;
        let Some((tname, blck, _)) = type_traits(ggml_type) else {
            return err(format!(
                "GGUF tensor {name:?} has unknown ggml type {ggml_type}"
            ));
        };
        // ggml checks that the element count fits in int64.
        let elems = dims
            .iter()
            .try_fold(1u64, |a, &d| a.checked_mul(d))
            .filter(|&n| n <= i64::MAX as u64);
        if elems.is_none() {
            return err(format!("GGUF tensor {name:?}: shape {dims:?} overflows"));
        }
        let bytes = dims[1..]
            .iter()
            .try_fold(row_size(ggml_type, dims[0]), |a, &d| {
                Some(a.and_then(|a| a.checked_mul(d)))
            })
            .flatten();
        let Some(bytes) = bytes else {
            return err(format!(
                "GGUF tensor {name:?}: a row of {} is not a whole number of {tname} blocks of {blck}",
                dims[0]
            ));
        };
        if offset % alignment != 0 {
            return err(format!(
                "GGUF tensor {name:?}: offset {offset} is not a multiple of the alignment {alignment}"
            ));
        }
        if tensors.iter().any(|t| t.name == name) {
            return err(format!("GGUF tensor {name:?} appears twice"));
        }
        tensors.push(TensorInfo {
            name,
            dims,
            ggml_type,
            offset,
            bytes,
        });
    }
    let data_offset = c.pos.div_ceil(alignment).saturating_mul(alignment);
    // Tensors must not overlap (ggml requires each to start where the last
    // one, padded, ended) and must lie inside the file.
    let mut spans: Vec<(u64, u64, &str)> = tensors
        .iter()
        .map(|t| (t.offset, t.offset.saturating_add(t.bytes), t.name.as_str()))
        .collect();
    spans.sort_unstable();
    for w in spans.windows(2) {
        if w[1].0 < w[0].1 {
            return err(format!(
                "GGUF tensors {:?} and {:?} overlap",
                w[0].2, w[1].2
            ));
        }
    }
    if let (Some(len), Some(last)) = (file_len, spans.iter().map(|s| s.1).max()) {
        let end = data_offset.saturating_add(last);
        if end > len {
            return err(format!(
                "the GGUF file is truncated: its tensors end at byte {end}, the file has {len}"
            ));
        }
    }
    Ok(Gguf {
        version,
        alignment,
        kv,
        tensors,
        data_offset,
        file_len,
    })
}

/// Read the header of the GGUF file at `path`: only the header, through a
/// buffered reader. The path is the user's own argument; it must be a
/// regular file (a FIFO would block, a directory is a different format).
pub fn read_file(path: &Path) -> Result<Gguf, GgufError> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        // A FIFO opened for reading blocks until a writer comes.
        .custom_flags((nix::fcntl::OFlag::O_NONBLOCK | nix::fcntl::OFlag::O_NOCTTY).bits())
        .open(path)
        .map_err(|e| GgufError(format!("cannot open {}: {e}", path.display())))?;
    let meta = f
        .metadata()
        .map_err(|e| GgufError(format!("cannot stat {}: {e}", path.display())))?;
    if !meta.is_file() {
        return err(format!("{} is not a regular file", path.display()));
    }
    let mut f = f;
    f.seek(SeekFrom::Start(0))
        .map_err(|e| GgufError(format!("cannot read {}: {e}", path.display())))?;
    parse(
        std::io::BufReader::with_capacity(1 << 16, f),
        Some(meta.len()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(out: &mut Vec<u8>, v: &str) {
        out.extend((v.len() as u64).to_le_bytes());
        out.extend(v.as_bytes());
    }

    /// A minimal valid header: one u32 key, one F32 tensor of 4x2.
    fn tiny() -> Vec<u8> {
        let mut b = b"GGUF".to_vec();
        b.extend(3u32.to_le_bytes());
        b.extend(1u64.to_le_bytes());
        b.extend(1u64.to_le_bytes());
        s(&mut b, "llama.block_count");
        b.extend(4u32.to_le_bytes());
        b.extend(7u32.to_le_bytes());
        s(&mut b, "t");
        b.extend(2u32.to_le_bytes());
        b.extend(4u64.to_le_bytes());
        b.extend(2u64.to_le_bytes());
        b.extend(0u32.to_le_bytes());
        b.extend(0u64.to_le_bytes());
        b
    }

    #[test]
    fn tiny_header_parses() {
        let g = parse(&tiny()[..], None).unwrap();
        assert_eq!(g.get("llama.block_count"), Some(&Value::U32(7)));
        assert_eq!(g.tensors[0].bytes, 32);
        assert_eq!(g.data_offset % 32, 0);
    }

    #[test]
    fn every_prefix_is_a_clean_error() {
        let b = tiny();
        for n in 0..b.len() {
            let e = parse(&b[..n], None).unwrap_err();
            assert!(e.0.contains("truncated"), "{n}: {e}");
        }
    }

    #[test]
    fn huge_counts_and_lengths_fail_before_allocating() {
        let mut b = tiny();
        b[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(parse(&b[..], None).unwrap_err().0.contains("tensors"));
        let mut b = tiny();
        b[16..24].copy_from_slice(&(MAX_KV + 1).to_le_bytes());
        assert!(parse(&b[..], None).unwrap_err().0.contains("metadata keys"));
        let mut b = tiny();
        b[24..32].copy_from_slice(&(u64::MAX - 3).to_le_bytes());
        assert!(parse(&b[..], None).unwrap_err().0.contains("claims"));
    }

    #[test]
    fn type_sizes_match_ggml() {
        assert_eq!(row_size(12, 4096), Some(4096 / 256 * 144)); // Q4_K
        assert_eq!(row_size(8, 4096), Some(128 * 34)); // Q8_0
        assert_eq!(row_size(14, 256), Some(210)); // Q6_K
        assert_eq!(row_size(2, 33), None);
        assert_eq!(type_by_name("q8_0"), Some(8));
        assert_eq!(type_by_name("f16"), Some(1));
        assert_eq!(type_traits(4), None);
    }
}
