//! ollama as an engine for `fit` (docs/fit.md "ollama"). Since 0.30 ollama
//! serves every GGUF model with llama.cpp's own `llama-server`
//! (`llm/llama_server.go`, ollama v0.33.0-rc2): it passes
//! `-c num_ctx × OLLAMA_NUM_PARALLEL -np OLLAMA_NUM_PARALLEL`, the KV cache
//! type of `OLLAMA_KV_CACHE_TYPE`, and no `-ngl`, so llama.cpp's `--fit`
//! places the layers. This module holds what ollama adds on top of the
//! llama.cpp model: its settings and their defaults, `--fit`'s placement,
//! and finding a model's GGUF blob from its name.

use std::path::{Path, PathBuf};

use super::split::{self, Compute, LayerSizes};

/// llama.cpp's `--fit` margin per device (`common/common.h`
/// `fit_params_target`: 1 GiB each) unless `LLAMA_ARG_FIT_TARGET` says.
pub const FIT_MARGIN: u64 = 1 << 30;

/// What ollama runs a model with, and where each value came from.
#[derive(Debug, Clone, PartialEq)]
pub struct OllamaSettings {
    /// `num_ctx` (per request slot); None: ollama's VRAM-based default.
    pub num_ctx: Option<u64>,
    /// Where `num_ctx` came from: `--ctx`, `OLLAMA_CONTEXT_LENGTH`.
    pub num_ctx_from: &'static str,
    pub parallel: u64,
    /// `OLLAMA_KV_CACHE_TYPE` as a ggml type code and name.
    pub kv_code: u32,
    pub kv_name: String,
    /// `num_gpu` (`-ngl`); None: llama.cpp's `--fit` decides.
    pub num_gpu: Option<u32>,
    /// `OLLAMA_GPU_OVERHEAD` bytes per GPU (only the default context uses it).
    pub gpu_overhead: u64,
    /// `--fit`'s margin per device, bytes (`LLAMA_ARG_FIT_TARGET`, MiB; one
    /// value for every device or one per device).
    pub fit_margin: Vec<u64>,
    /// "OLLAMA_NUM_PARALLEL=4 (from this shell)", and values ignored.
    pub notes: Vec<String>,
}

impl Default for OllamaSettings {
    fn default() -> Self {
        OllamaSettings {
            num_ctx: None,
            num_ctx_from: "",
            parallel: 1,
            kv_code: 1,
            kv_name: "f16".into(),
            num_gpu: None,
            gpu_overhead: 0,
            fit_margin: Vec::new(),
            notes: Vec::new(),
        }
    }
}

impl OllamaSettings {
    /// The margin for device `i`: the last value given repeats, as
    /// llama.cpp's list arguments do; none given is 1 GiB.
    pub fn margin(&self, i: usize) -> u64 {
        self.fit_margin
            .get(i)
            .or(self.fit_margin.last())
            .copied()
            .unwrap_or(FIT_MARGIN)
    }
}

/// Fill `s` from ollama's variables where the user gave no flag: `var`
/// looks one up (the process environment in the CLI, a map in tests). An
/// unreadable value is ignored with a note, as ollama's `envconfig` does
/// (it logs and keeps the default).
pub fn from_env(s: &mut OllamaSettings, var: &dyn Fn(&str) -> Option<String>) {
    let note = env_note;
    let mut notes = Vec::new();
    if s.num_ctx.is_none()
        && let Some(v) = var("OLLAMA_CONTEXT_LENGTH")
    {
        match v.trim().parse::<u64>() {
            Ok(n) if n > 0 && n <= u64::from(u32::MAX) => {
                s.num_ctx = Some(n);
                s.num_ctx_from = "OLLAMA_CONTEXT_LENGTH";
                notes.push(note("OLLAMA_CONTEXT_LENGTH", &v, true));
            }
            // ollama: 0 is "automatic"; anything else unparsable is ignored.
            _ => notes.push(note("OLLAMA_CONTEXT_LENGTH", &v, false)),
        }
    }
    if let Some(v) = var("OLLAMA_NUM_PARALLEL") {
        match v.trim().parse::<u64>() {
            Ok(n) if (1..=256).contains(&n) && s.parallel == 1 => {
                s.parallel = n;
                notes.push(note("OLLAMA_NUM_PARALLEL", &v, true));
            }
            Ok(_) if s.parallel != 1 => {}
            _ => notes.push(note("OLLAMA_NUM_PARALLEL", &v, false)),
        }
    }
    if s.kv_name == "f16"
        && let Some(v) = var("OLLAMA_KV_CACHE_TYPE")
    {
        match kv_type(&v.trim().to_ascii_lowercase()) {
            Some((name, code)) => {
                s.kv_name = name.into();
                s.kv_code = code;
                notes.push(note("OLLAMA_KV_CACHE_TYPE", &v, true));
            }
            None => notes.push(note("OLLAMA_KV_CACHE_TYPE", &v, false)),
        }
    }
    if let Some(v) = var("OLLAMA_GPU_OVERHEAD") {
        match v.trim().parse::<u64>() {
            Ok(n) => {
                s.gpu_overhead = n;
                notes.push(note("OLLAMA_GPU_OVERHEAD", &v, true));
            }
            Err(_) => notes.push(note("OLLAMA_GPU_OVERHEAD", &v, false)),
        }
    }
    if let Some(v) = var("LLAMA_ARG_FIT_TARGET") {
        let mib: Option<Vec<u64>> = v
            .split(',')
            .take(128)
            .map(|x| x.trim().parse::<u64>().ok())
            .collect();
        match mib {
            Some(m) if !m.is_empty() => {
                s.fit_margin = m.iter().map(|x| x.saturating_mul(1 << 20)).collect();
                notes.push(note("LLAMA_ARG_FIT_TARGET", &v, true));
            }
            _ => notes.push(note("LLAMA_ARG_FIT_TARGET", &v, false)),
        }
    }
    s.notes.extend(notes);
}

/// The note for a variable read from rigdoctor's own environment.
fn env_note(k: &str, v: &str, used: bool) -> String {
    let short: String = v.chars().take(40).collect();
    let v = crate::text::escape_controls(&short);
    if used {
        format!(
            "{k}={v} from this shell (the ollama service has its own environment: systemctl show ollama -p Environment)"
        )
    } else {
        format!("{k}={v} is not a value ollama reads; its default applies")
    }
}

/// The KV cache types ollama passes on (`--cache-type-k/-v`).
pub fn kv_type(v: &str) -> Option<(&'static str, u32)> {
    match v {
        "f16" | "" => Some(("f16", 1)),
        "q8_0" => Some(("q8_0", 8)),
        "q4_0" => Some(("q4_0", 2)),
        _ => None,
    }
}

/// ollama's default `num_ctx` when neither the request, the Modelfile nor
/// `OLLAMA_CONTEXT_LENGTH` sets one (`server/routes.go`, "vram-based
/// default context"): by the GPUs' total memory less `OLLAMA_GPU_OVERHEAD`
/// each, 262144 from 47 GiB, 32768 from 23 GiB, else 4096.
pub fn default_num_ctx(totals: &[u64], overhead: u64) -> u64 {
    const GIB: u64 = 1 << 30;
    let vram: u64 = totals.iter().map(|t| t.saturating_sub(overhead)).sum();
    if vram >= 47 * GIB {
        262_144
    } else if vram >= 23 * GIB {
        32_768
    } else {
        4096
    }
}

/// The context ollama asks for: `num_ctx` capped at the model's training
/// context (`llm/server.go` `NewLlamaServer`: "requested context size too
/// large for model"), at least 4 (`getRunner`).
pub fn effective_num_ctx(num_ctx: u64, n_ctx_train: u64) -> u64 {
    let n = if n_ctx_train > 0 {
        num_ctx.min(n_ctx_train)
    } else {
        num_ctx
    };
    n.max(4)
}

/// Layers per device as llama.cpp's `--fit` places a dense model when no
/// `-ngl` is given (`common/fit.cpp` `common_params_fit_impl`): if every
/// layer fits with the default split within each device's free memory less
/// its margin, that; otherwise the devices are filled back to front, the
/// last one first (it holds the output layer), each with as many whole
/// layers as stay within its target. Layers left over run on the CPU.
pub fn fit_auto(sizes: &LayerSizes, compute: Compute, free: &[u64], margins: &[u64]) -> Vec<u32> {
    let n_dev = free.len();
    let total = sizes.n_layer() as u32 + 1;
    if n_dev == 0 {
        return Vec::new();
    }
    let targets: Vec<u64> = free
        .iter()
        .zip(margins)
        .map(|(f, m)| f.saturating_sub(*m))
        .collect();
    let by_free: Vec<f32> = free.iter().map(|&f| f as f32).collect();
    let default = split::place(sizes, compute, total, &by_free);
    if default.fits(&targets) {
        return default.devices.iter().map(|d| d.layers).collect();
    }
    let mut counts = vec![0u32; n_dev];
    let fits_dev = |counts: &[u32], id: usize| -> bool {
        let n: u32 = counts.iter().sum();
        let split: Vec<f32> = counts.iter().map(|&c| c as f32).collect();
        let p = split::place(sizes, compute, n, &split);
        p.devices[id].total() <= targets[id]
    };
    for id in (0..n_dev).rev() {
        let unassigned = total - counts.iter().sum::<u32>();
        // Memory grows with the layers given, so the most that fit is a
        // binary search (llama.cpp's false position finds the same bound).
        let (mut lo, mut hi) = (0u32, unassigned);
        while lo < hi {
            let mid = (lo + hi).div_ceil(2);
            let mut t = counts.clone();
            t[id] = mid;
            if fits_dev(&t, id) {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        counts[id] = lo;
    }
    counts
}

/// Why a model name could not be turned into its GGUF file.
pub type ResolveError = String;

/// `[host/][namespace/]model[:tag]` as ollama parses it (`types/model/name.go`):
/// defaults `registry.ollama.ai`, `library`, `latest`; every part starts
/// with a letter, digit or `_` and holds only those and `-` `.` (`.` not in
/// the namespace, `:` only in the host), so a part is never `..`.
pub fn manifest_rel(name: &str) -> Result<PathBuf, ResolveError> {
    if name.is_empty() || name.len() > 350 {
        return Err("not an ollama model name".into());
    }
    let (path, tag) = match name.rsplit_once(':') {
        Some((p, t)) if !t.contains('/') => (p, t),
        _ => (name, "latest"),
    };
    let parts: Vec<&str> = path.split('/').collect();
    let (host, ns, model) = match parts.as_slice() {
        [m] => ("registry.ollama.ai", "library", *m),
        [n, m] => ("registry.ollama.ai", *n, *m),
        [h, n, m] => (*h, *n, *m),
        _ => return Err(format!("{name:?} is not [host/][namespace/]model[:tag]")),
    };
    let ok = |s: &str, dot: bool, colon: bool| {
        let b = s.as_bytes();
        !b.is_empty()
            && b.len() <= 80
            && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
            && b.iter().all(|&c| {
                c.is_ascii_alphanumeric()
                    || c == b'_'
                    || c == b'-'
                    || (c == b'.' && dot)
                    || (c == b':' && colon)
            })
    };
    if !(ok(host, true, true)
        && ok(ns, false, false)
        && ok(model, true, false)
        && ok(tag, true, false))
    {
        return Err(format!("{name:?} is not a valid ollama model name"));
    }
    Ok(["manifests", host, ns, model, tag].iter().collect())
}

/// The digest of the manifest's model layer
/// (`application/vnd.ollama.image.model`), `sha256:<64 hex>`.
pub fn model_digest(manifest: &str) -> Result<String, ResolveError> {
    let v: serde_json::Value =
        serde_json::from_str(manifest).map_err(|e| format!("the manifest is not JSON: {e}"))?;
    let layer = v
        .get("layers")
        .and_then(|l| l.as_array())
        .and_then(|l| {
            l.iter().find(|x| {
                x.get("mediaType").and_then(|m| m.as_str())
                    == Some("application/vnd.ollama.image.model")
            })
        })
        .ok_or("the manifest has no model layer (application/vnd.ollama.image.model)")?;
    let d = layer
        .get("digest")
        .and_then(|d| d.as_str())
        .ok_or("the model layer has no digest")?;
    let hex = d
        .strip_prefix("sha256:")
        .or_else(|| d.strip_prefix("sha256-"))
        .filter(|h| h.len() == 64 && h.bytes().all(|c| c.is_ascii_hexdigit()))
        .ok_or_else(|| {
            format!(
                "the model layer's digest {:?} is not sha256:<64 hex>",
                d.chars().take(80).collect::<String>()
            )
        })?;
    Ok(format!("sha256-{}", hex.to_ascii_lowercase()))
}

/// The largest manifest read (real ones are under 1 KiB).
const MAX_MANIFEST: u64 = 1 << 20;

/// Where ollama keeps its models: `OLLAMA_MODELS`, else `~/.ollama/models`
/// of this user, and of the Linux service's `ollama` user
/// (`/usr/share/ollama`, scripts/install.sh).
pub fn model_roots(ollama_models: Option<PathBuf>, home: Option<PathBuf>) -> Vec<PathBuf> {
    let mut r = Vec::new();
    if let Some(m) = ollama_models.filter(|p| !p.as_os_str().is_empty()) {
        r.push(m);
    }
    if let Some(h) = home.filter(|p| p.is_absolute()) {
        r.push(h.join(".ollama/models"));
    }
    r.push(PathBuf::from("/usr/share/ollama/.ollama/models"));
    r
}

/// The GGUF blob of an ollama model name, from the first root that holds
/// its manifest.
pub fn resolve(name: &str, roots: &[PathBuf]) -> Result<PathBuf, ResolveError> {
    let rel = manifest_rel(name)?;
    let mut looked = Vec::new();
    for root in roots {
        let m = root.join(&rel);
        looked.push(m.display().to_string());
        let Ok(meta) = std::fs::metadata(&m) else {
            continue;
        };
        if !meta.is_file() || meta.len() > MAX_MANIFEST {
            return Err(format!("{}: not a manifest file", m.display()));
        }
        let text = std::fs::read_to_string(&m).map_err(|e| format!("{}: {e}", m.display()))?;
        let blob = root
            .join("blobs")
            .join(model_digest(&text).map_err(|e| format!("{}: {e}", m.display()))?);
        return if blob.is_file() {
            Ok(blob)
        } else {
            Err(format!(
                "{}: the model blob {} is missing (ollama pull {name})",
                m.display(),
                blob.display()
            ))
        };
    }
    Err(format!(
        "no ollama model {name:?} (looked for {}); pull it with: ollama pull {name}",
        looked.join(", ")
    ))
}

/// Whether `arg` is a file path rather than a model name.
pub fn is_path(arg: &str) -> bool {
    Path::new(arg).is_file()
        || arg.ends_with(".gguf")
        || arg.starts_with('/')
        || arg.starts_with('.')
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn names_map_to_manifest_paths_as_ollama_lays_them_out() {
        assert_eq!(
            manifest_rel("gemma:2b").unwrap(),
            PathBuf::from("manifests/registry.ollama.ai/library/gemma/2b")
        );
        assert_eq!(
            manifest_rel("llama3.1").unwrap(),
            PathBuf::from("manifests/registry.ollama.ai/library/llama3.1/latest")
        );
        assert_eq!(
            manifest_rel("hf.co/bartowski/Qwen2.5-7B-GGUF:Q4_K_M").unwrap(),
            PathBuf::from("manifests/hf.co/bartowski/Qwen2.5-7B-GGUF/Q4_K_M")
        );
        for bad in [
            "../x",
            "a/../../etc",
            "x:..",
            "a/b/c/d",
            "",
            "a b",
            ".hidden",
            "ns.x/m",
        ] {
            assert!(manifest_rel(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_default_context_follows_the_vram_tiers() {
        const G: u64 = 1 << 30;
        assert_eq!(default_num_ctx(&[8 * G], 0), 4096);
        assert_eq!(default_num_ctx(&[24 * G], 0), 32_768);
        assert_eq!(default_num_ctx(&[24 * G], 2 * G), 4096, "overhead counts");
        assert_eq!(default_num_ctx(&[24 * G, 24 * G], 0), 262_144);
        assert_eq!(default_num_ctx(&[], 0), 4096);
        assert_eq!(effective_num_ctx(262_144, 131_072), 131_072);
        assert_eq!(effective_num_ctx(8192, 0), 8192);
    }

    /// 20 blocks of 1 GiB (weights + KV), an output layer of 1 GiB.
    fn sizes() -> LayerSizes {
        const G: u64 = 1 << 30;
        LayerSizes {
            input: G,
            blocks: vec![G / 2; 20],
            output: G,
            tied_output: 0,
            kv: vec![G / 2; 20],
            experts: vec![0; 20],
            cpu_moe: 0,
            rows: vec![Vec::new(); 21],
        }
    }

    #[test]
    fn fit_fills_the_gpus_back_to_front_within_their_margins() {
        const G: u64 = 1 << 30;
        let c = Compute {
            logits: 0,
            activations: 0,
        };
        let m = [G, G];
        // Everything fits with the default split: untouched (by free memory).
        assert_eq!(fit_auto(&sizes(), c, &[12 * G, 12 * G], &m), [11, 10]);
        // 10 + 6 GiB free, 9 + 5 usable: the last GPU takes the output and 4
        // blocks, the first the 9 blocks before them; 7 stay on the CPU.
        assert_eq!(fit_auto(&sizes(), c, &[10 * G, 6 * G], &m), [9, 5]);
        // A GPU with less than its margin free gets nothing.
        assert_eq!(fit_auto(&sizes(), c, &[10 * G, G / 2], &m), [9, 0]);
        assert_eq!(fit_auto(&sizes(), c, &[], &[]), Vec::<u32>::new());
    }

    #[test]
    fn unreadable_variables_keep_ollamas_defaults() {
        let env = |k: &str| match k {
            "OLLAMA_NUM_PARALLEL" => Some("four".to_string()),
            "OLLAMA_KV_CACHE_TYPE" => Some("Q8_0".to_string()),
            "OLLAMA_CONTEXT_LENGTH" => Some("0".to_string()),
            "LLAMA_ARG_FIT_TARGET" => Some("512,2048".to_string()),
            _ => None,
        };
        let mut s = OllamaSettings::default();
        from_env(&mut s, &env);
        assert_eq!((s.parallel, s.kv_code, s.num_ctx), (1, 8, None));
        assert_eq!(s.margin(0), 512 << 20);
        assert_eq!(s.margin(5), 2048 << 20, "the last value repeats");
        assert_eq!(s.notes.len(), 4, "{:?}", s.notes);
    }
}
