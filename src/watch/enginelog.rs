//! Engine log lines that say where the work runs (domain.md §12): read on
//! the way through when rigdoctor started the program, never altered.
//!
//! - llama.cpp (`src/llama-model.cpp` `load_tensors`): `offloaded N/M layers
//!   to GPU` (N < M: part of the model on the CPU; 0: all of it), the
//!   per-device model buffer sizes (a `CPU_Mapped` buffer is normal next to a
//!   GPU buffer: token embeddings stay on the host), `not compiled with GPU
//!   offload support`, llamafile's `no GPUs were found; falling back to CPU`,
//!   the KV cache placed on the CPU (`llama_kv_cache...: layer N: dev = CPU`),
//!   the device banners (`found N CUDA devices`, `Found N SYCL devices`);
//! - ollama: `msg="inference compute" ... library=cpu`, `no compatible GPUs
//!   were discovered`, the scheduler's `layers.model=` / `layers.offload=`
//!   (sometimes wrapped over two lines), `ollama ps` `52%/48% CPU/GPU`;
//! - IPEX / SYCL / Level Zero: `_DeviceProperties(name=..., type='gpu')`,
//!   `Native API failed. Native API returns: -5 (PI_ERROR_OUT_OF_RESOURCES)`,
//!   `UR_RESULT_ERROR_*`, `PI_ERROR_*`, `ZE_RESULT_ERROR_*`,
//!   `No device of requested type available`.
//!
//! Lines keep whatever prefix they came with (journald, docker compose,
//! mpirun's `[0] `): every pattern searches inside the line.
//! [`classify`] is pure; [`LogFacts`] folds signals into the summary's facts.

use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

/// What one line says.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Signal {
    /// `offloaded N/M layers to GPU` (llama.cpp), or both ollama scheduler
    /// fields on one line.
    Offloaded { n: u32, m: u32 },
    /// One of ollama's `layers.model=` / `layers.offload=` fields without the other.
    OffloadPart {
        #[serde(default)]
        model: Option<u32>,
        #[serde(default)]
        offload: Option<u32>,
    },
    /// `load_tensors: <DEV> model buffer size = X MiB`.
    Buffer { device: String, mib: f64, gpu: bool },
    /// The build has no GPU backend.
    NoGpuSupport,
    /// The engine found no GPU it can use and runs on the CPU.
    NoGpu,
    /// `found N CUDA devices` and the like.
    Devices { backend: String, count: u32 },
    /// One device the program lists (IPEX `_DeviceProperties`).
    Device { name: String, dev_type: String },
    /// ollama's `inference compute` line.
    Compute { library: String },
    /// `ollama ps`: share of the model on the CPU.
    Processor { cpu_pct: u32 },
    /// A KV-cache layer placed on the CPU.
    KvOnCpu,
    /// A SYCL / Level Zero / Unified Runtime error.
    RuntimeError { code: String, class: String },
}

fn re(p: &str) -> Option<Regex> {
    Regex::new(p).ok()
}

static OFFLOADED: LazyLock<Option<Regex>> =
    LazyLock::new(|| re(r"offloaded (\d+)/(\d+) layers to GPU"));
static OLLAMA_MODEL: LazyLock<Option<Regex>> = LazyLock::new(|| re(r"layers\.model=(\d+)"));
static OLLAMA_OFFLOAD: LazyLock<Option<Regex>> = LazyLock::new(|| re(r"layers\.offload=(\d+)"));
static BUFFER: LazyLock<Option<Regex>> = LazyLock::new(|| {
    re(
        r"load_tensors:\s+(\S+)\s+(?:model\s+)?buffer size\s*=\s*([0-9]+(?:\.[0-9]+)?)\s*(MiB|MB|GiB|KiB)?",
    )
});
static DEVICES: LazyLock<Option<Regex>> =
    LazyLock::new(|| re(r"(?i)\bfound (\d+) (CUDA|ROCm|SYCL|Vulkan|Metal|HIP) devices"));
static SYCL_DETECT: LazyLock<Option<Regex>> = LazyLock::new(|| re(r"\bdetect (\d+) SYCL GPUs"));
static DEVPROPS: LazyLock<Option<Regex>> =
    LazyLock::new(|| re(r"_(?:Xpu)?DeviceProperties\(name='([^']*)'.*?\b(?:dev_)?type='(\w+)'"));
static LIBRARY: LazyLock<Option<Regex>> = LazyLock::new(|| re(r"\blibrary=([A-Za-z0-9_]+)"));
static SPLIT: LazyLock<Option<Regex>> = LazyLock::new(|| re(r"\b(\d{1,3})%/(\d{1,3})% CPU/GPU\b"));
static KV_CPU: LazyLock<Option<Regex>> =
    LazyLock::new(|| re(r"llama_kv_cache\w*:\s+layer\s+\d+: dev = CPU\b"));
static ERR_CODE: LazyLock<Option<Regex>> = LazyLock::new(|| {
    re(
        r"\b(UR_RESULT_ERROR_[A-Z0-9_]+|PI_ERROR_[A-Z0-9_]+|ZE_RESULT_ERROR_[A-Z0-9_]+|CL_DEVICE_NOT_FOUND|CL_OUT_OF_RESOURCES)\b",
    )
});
static NATIVE: LazyLock<Option<Regex>> = LazyLock::new(|| re(r"Native API returns: (-?\d+)"));

fn caps<'a>(r: &LazyLock<Option<Regex>>, line: &'a str) -> Option<regex::Captures<'a>> {
    r.as_ref()?.captures(line)
}

fn num<T: std::str::FromStr>(c: &regex::Captures<'_>, i: usize) -> Option<T> {
    c.get(i)?.as_str().parse().ok()
}

/// Buffers of these backends live in GPU memory (`Metal_Mapped` is unified
/// memory the GPU works from). `CPU`, `CPU_Mapped`, `*_Host` (pinned host
/// memory) are host RAM.
fn is_gpu_buffer(dev: &str) -> bool {
    if dev.starts_with("CPU") || dev.ends_with("_Host") {
        return false;
    }
    [
        "CUDA", "ROCm", "SYCL", "Vulkan", "Metal", "HIP", "MUSA", "CANN", "OpenCL",
    ]
    .iter()
    .any(|p| dev.starts_with(p))
}

/// Which kind of runtime error a code is, for the fix.
pub fn error_class(code: &str) -> &'static str {
    if code.contains("OUT_OF_RESOURCES")
        || code.contains("OUT_OF_DEVICE_MEMORY")
        || code.contains("OUT_OF_HOST_MEMORY")
    {
        "out-of-memory"
    } else if code.contains("DEVICE_NOT_FOUND")
        || code.contains("UNINITIALIZED")
        || code == "NO_DEVICE"
    {
        "no-device"
    } else if code.contains("DEVICE_LOST") {
        "device-lost"
    } else {
        "other"
    }
}

fn runtime_error(line: &str) -> Option<Signal> {
    let hit = line.contains("Native API failed")
        || line.contains("UR_RESULT_ERROR_")
        || line.contains("PI_ERROR_")
        || line.contains("ZE_RESULT_ERROR_")
        || line.contains("No device of requested type available")
        || line.contains("CL_DEVICE_NOT_FOUND");
    if !hit {
        return None;
    }
    let code = if let Some(c) = caps(&ERR_CODE, line) {
        c.get(1).map(|m| m.as_str().to_string())
    } else if line.contains("No device of requested type available") {
        Some("NO_DEVICE".to_string())
    } else {
        caps(&NATIVE, line).and_then(|c| c.get(1).map(|m| format!("native {}", m.as_str())))
    }
    .unwrap_or_else(|| "unknown".into());
    Some(Signal::RuntimeError {
        class: error_class(&code).to_string(),
        code,
    })
}

/// What `line` says about where the work runs, if anything.
pub fn classify(line: &str) -> Option<Signal> {
    if line.len() > 8192 {
        return None;
    }
    if let Some(s) = runtime_error(line) {
        return Some(s);
    }
    if line.contains("offload") {
        if let Some(c) = caps(&OFFLOADED, line) {
            return Some(Signal::Offloaded {
                n: num(&c, 1)?,
                m: num(&c, 2)?,
            });
        }
    }
    if line.contains("layers.") {
        let model = caps(&OLLAMA_MODEL, line).and_then(|c| num(&c, 1));
        let offload = caps(&OLLAMA_OFFLOAD, line).and_then(|c| num(&c, 1));
        match (model, offload) {
            (Some(m), Some(n)) => return Some(Signal::Offloaded { n, m }),
            (None, None) => {}
            (model, offload) => return Some(Signal::OffloadPart { model, offload }),
        }
    }
    if line.contains("buffer size") {
        if let Some(c) = caps(&BUFFER, line) {
            let device = c.get(1)?.as_str().to_string();
            let v: f64 = num(&c, 2)?;
            let mib = match c.get(3).map(|m| m.as_str()) {
                Some("GiB") => v * 1024.0,
                Some("KiB") => v / 1024.0,
                _ => v,
            };
            let gpu = is_gpu_buffer(&device);
            return Some(Signal::Buffer { device, mib, gpu });
        }
    }
    if line.contains("not compiled with GPU offload support")
        || line.contains("compiled without GPU support")
    {
        return Some(Signal::NoGpuSupport);
    }
    if line.contains("no usable GPU found")
        || line.contains("no GPUs were found")
        || line.contains("no compatible GPUs were discovered")
        || line.contains("falling back to CPU")
    {
        return Some(Signal::NoGpu);
    }
    if line.contains("inference compute") {
        if let Some(c) = caps(&LIBRARY, line) {
            return Some(Signal::Compute {
                library: c.get(1)?.as_str().to_string(),
            });
        }
    }
    if line.contains("CPU/GPU") {
        if let Some(c) = caps(&SPLIT, line) {
            return Some(Signal::Processor {
                cpu_pct: num(&c, 1)?,
            });
        }
    }
    if line.contains("100% CPU") && !line.contains("GPU") {
        return Some(Signal::Processor { cpu_pct: 100 });
    }
    if line.contains("dev = CPU") && caps(&KV_CPU, line).is_some() {
        return Some(Signal::KvOnCpu);
    }
    if line.contains("evices") {
        if let Some(c) = caps(&DEVICES, line) {
            let backend = c.get(2)?.as_str();
            // Normalise case: "Found 1 Vulkan devices" / "found 4 ROCm devices".
            let backend = ["CUDA", "ROCm", "SYCL", "Vulkan", "Metal", "HIP"]
                .iter()
                .find(|b| b.eq_ignore_ascii_case(backend))
                .map(|b| b.to_string())
                .unwrap_or_else(|| backend.to_string());
            return Some(Signal::Devices {
                backend,
                count: num(&c, 1)?,
            });
        }
    }
    if line.contains("SYCL GPUs") {
        if let Some(c) = caps(&SYCL_DETECT, line) {
            return Some(Signal::Devices {
                backend: "SYCL".into(),
                count: num(&c, 1)?,
            });
        }
    }
    if line.contains("DeviceProperties(") {
        if let Some(c) = caps(&DEVPROPS, line) {
            return Some(Signal::Device {
                name: c.get(1)?.as_str().to_string(),
                dev_type: c.get(2)?.as_str().to_string(),
            });
        }
    }
    None
}

/// The line as kept as evidence: trimmed, at most 300 characters.
pub fn evidence_line(line: &str) -> String {
    let t = line.trim();
    match t.char_indices().nth(300) {
        Some((i, _)) => format!("{}…", &t[..i]),
        None => t.to_string(),
    }
}

/// Splits a byte stream into lines for [`classify`] without holding more
/// than `max` bytes of one line; bytes past that are dropped up to the next
/// newline. `\r` ends a line too (progress bars redraw with it).
pub struct LineSplitter {
    buf: Vec<u8>,
    max: usize,
    overflow: bool,
}

impl LineSplitter {
    pub fn new(max: usize) -> LineSplitter {
        LineSplitter {
            buf: Vec::new(),
            max,
            overflow: false,
        }
    }

    pub fn feed(&mut self, chunk: &[u8], mut f: impl FnMut(&str)) {
        for &b in chunk {
            if b == b'\n' || b == b'\r' {
                if !self.buf.is_empty() {
                    f(&String::from_utf8_lossy(&self.buf));
                }
                self.buf.clear();
                self.overflow = false;
            } else if self.buf.len() < self.max {
                self.buf.push(b);
            } else {
                self.overflow = true;
            }
        }
    }

    /// The last line when the stream ends without a newline.
    pub fn finish(&mut self, mut f: impl FnMut(&str)) {
        if !self.buf.is_empty() {
            f(&String::from_utf8_lossy(&self.buf));
        }
        self.buf.clear();
    }
}

/// A runtime error seen in the log, once per code.
#[derive(Debug, Clone, Serialize, PartialEq, schemars::JsonSchema)]
pub struct ErrorFact {
    pub code: String,
    pub class: String,
    pub line: String,
    pub count: u32,
}

/// What the engine logs said over the whole run: the `watch.log` facts.
/// Absent numbers are -1 so rules compare without null checks.
#[derive(Debug, Clone, Serialize, PartialEq, schemars::JsonSchema)]
pub struct LogFacts {
    /// rigdoctor read the program's output (`watch -- CMD`).
    pub read: bool,
    /// Lines that said something (signals).
    pub signals: u32,
    pub offloaded: i64,
    pub layers: i64,
    pub offload_line: String,
    pub gpu_buffer_mib: f64,
    pub cpu_buffer_mib: f64,
    /// `CUDA0 3621 MiB, CPU_Mapped 4945 MiB`.
    pub buffers: String,
    pub no_gpu_support: bool,
    pub no_gpu: bool,
    pub no_gpu_line: String,
    /// ollama's compute library (`cuda`, `rocm`, `vulkan`, `cpu`), "" if not seen.
    pub compute_library: String,
    pub compute_line: String,
    /// `ollama ps` share on the CPU, -1 if not seen.
    pub processor_cpu_pct: i64,
    pub kv_on_cpu: u32,
    /// `2 CUDA devices`, `Intel(R) Arc(TM) A770 Graphics (gpu)`.
    pub devices: Vec<String>,
    pub errors: Vec<ErrorFact>,
    /// Everything on the CPU, by the log's own words.
    pub cpu_only: bool,
    /// Part of the model (or its KV cache) on the CPU, by the log's own words.
    pub partial: bool,
    /// The line that makes `cpu_only` or `partial` true.
    pub evidence: String,
    #[serde(skip)]
    pending_model: Option<u32>,
    #[serde(skip)]
    pending_offload: Option<u32>,
}

impl Default for LogFacts {
    fn default() -> Self {
        LogFacts {
            read: false,
            signals: 0,
            offloaded: -1,
            layers: -1,
            offload_line: String::new(),
            gpu_buffer_mib: 0.0,
            cpu_buffer_mib: 0.0,
            buffers: String::new(),
            no_gpu_support: false,
            no_gpu: false,
            no_gpu_line: String::new(),
            compute_library: String::new(),
            compute_line: String::new(),
            processor_cpu_pct: -1,
            kv_on_cpu: 0,
            devices: Vec::new(),
            errors: Vec::new(),
            cpu_only: false,
            partial: false,
            evidence: String::new(),
            pending_model: None,
            pending_offload: None,
        }
    }
}

const MAX_ERRORS: usize = 8;
const MAX_DEVICES: usize = 16;

impl LogFacts {
    pub fn add(&mut self, signal: &Signal, line: &str) {
        self.signals = self.signals.saturating_add(1);
        match signal {
            Signal::Offloaded { n, m } => self.offloaded(*n, *m, line),
            Signal::OffloadPart { model, offload } => {
                if model.is_some() {
                    self.pending_model = *model;
                }
                if offload.is_some() {
                    self.pending_offload = *offload;
                }
                if let (Some(m), Some(n)) = (self.pending_model, self.pending_offload) {
                    self.pending_model = None;
                    self.pending_offload = None;
                    self.offloaded(n, m, line);
                }
            }
            Signal::Buffer { device, mib, gpu } => {
                if *gpu {
                    self.gpu_buffer_mib += mib;
                } else {
                    self.cpu_buffer_mib += mib;
                }
                if !self.buffers.is_empty() {
                    self.buffers.push_str(", ");
                }
                self.buffers.push_str(&format!("{device} {mib:.0} MiB"));
            }
            Signal::NoGpuSupport => {
                self.no_gpu_support = true;
                self.no_gpu_line = evidence_line(line);
            }
            Signal::NoGpu => {
                self.no_gpu = true;
                self.no_gpu_line = evidence_line(line);
            }
            Signal::Devices { backend, count } => {
                self.device(format!("{count} {backend} devices"));
            }
            Signal::Device { name, dev_type } => {
                self.device(format!("{name} ({dev_type})"));
            }
            Signal::Compute { library } => {
                self.compute_library = library.clone();
                self.compute_line = evidence_line(line);
            }
            Signal::Processor { cpu_pct } => {
                self.processor_cpu_pct = i64::from(*cpu_pct);
            }
            Signal::KvOnCpu => self.kv_on_cpu = self.kv_on_cpu.saturating_add(1),
            Signal::RuntimeError { code, class } => {
                if let Some(e) = self.errors.iter_mut().find(|e| &e.code == code) {
                    e.count = e.count.saturating_add(1);
                } else if self.errors.len() < MAX_ERRORS {
                    self.errors.push(ErrorFact {
                        code: code.clone(),
                        class: class.clone(),
                        line: evidence_line(line),
                        count: 1,
                    });
                }
            }
        }
        self.judge(line);
    }

    fn device(&mut self, d: String) {
        if !self.devices.contains(&d) && self.devices.len() < MAX_DEVICES {
            self.devices.push(d);
        }
    }

    fn offloaded(&mut self, n: u32, m: u32, line: &str) {
        self.offloaded = i64::from(n);
        self.layers = i64::from(m);
        self.offload_line = evidence_line(line);
        // A new model load: its buffers follow.
        self.gpu_buffer_mib = 0.0;
        self.cpu_buffer_mib = 0.0;
        self.buffers.clear();
    }

    fn judge(&mut self, line: &str) {
        let before = (self.cpu_only, self.partial);
        let full_offload = self.offloaded > 0 && self.offloaded >= self.layers;
        self.cpu_only = self.no_gpu_support
            || self.no_gpu
            || self.offloaded == 0
            || self.compute_library == "cpu"
            || self.processor_cpu_pct == 100
            // Model buffers only on the host, and no offload line says otherwise.
            || (self.cpu_buffer_mib > 0.0 && self.gpu_buffer_mib == 0.0 && self.offloaded < 0);
        self.partial = !self.cpu_only
            && ((self.offloaded > 0 && self.offloaded < self.layers)
                || (self.processor_cpu_pct > 0 && self.processor_cpu_pct < 100)
                || (self.kv_on_cpu > 0 && !full_offload));
        // A full offload later in the run (a reload) clears an earlier verdict.
        if (self.cpu_only, self.partial) != before && (self.cpu_only || self.partial) {
            self.evidence = evidence_line(line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A corpus file's lines, without its three-line header.
    fn lines(rel: &str) -> Vec<String> {
        let text = std::fs::read_to_string(format!(
            "{}/fixtures/outputs/{rel}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        assert!(text.starts_with("# source:"), "{rel} keeps its source line");
        text.lines().skip(3).map(String::from).collect()
    }

    fn facts(rel: &str) -> (LogFacts, Vec<Signal>) {
        let mut f = LogFacts::default();
        let mut sigs = Vec::new();
        for l in lines(rel) {
            if let Some(s) = classify(&l) {
                f.add(&s, &l);
                sigs.push(s);
            }
        }
        (f, sigs)
    }

    #[test]
    fn llama_cpp_zero_layers_is_cpu_only() {
        let (f, _) =
            facts("llama-cpp/llama-cpp-3616-llava-2x3090-offloaded-0-of-35-despite-ngl.txt");
        assert_eq!((f.offloaded, f.layers), (0, 35));
        assert!(f.cpu_only && !f.partial);
        assert_eq!(f.devices, vec!["2 CUDA devices"]);
        let (f, _) = facts("llama-cpp/llama-cpp-6787-h800-ngl90-offloaded-0-of-33.txt");
        assert_eq!((f.offloaded, f.layers), (0, 33));
        assert!(f.cpu_only);
        assert_eq!(f.cpu_buffer_mib, 5459.93);
        assert_eq!(f.devices, vec!["1 CUDA devices"]);
        assert!(f.evidence.contains("offloaded 0/33"), "{}", f.evidence);
    }

    #[test]
    fn llama_cpp_no_gpu_build_and_llamafile() {
        let (f, _) = facts("llama-cpp/llama-cpp-9153-win-not-compiled-with-gpu-offload.txt");
        assert!(f.no_gpu_support && f.cpu_only);
        assert!(
            f.no_gpu_line
                .contains("--gpu-layers option will be ignored")
        );
        let (f, _) = facts("llama-cpp/llamafile-263-arch-no-gpus-found-falling-back-to-cpu.txt");
        assert!(f.no_gpu && f.cpu_only);
    }

    #[test]
    fn llama_cpp_partial_offloads() {
        let (f, _) = facts("llama-cpp/llm-llama-cpp-19-offloaded-1-of-35-vram-used-2023.txt");
        assert_eq!((f.offloaded, f.layers), (1, 35));
        assert!(f.partial && !f.cpu_only);
        let (f, _) = facts("llama-cpp/lmstudio-1360-offloaded-20-of-49-debug-timestamps.txt");
        assert_eq!((f.offloaded, f.layers), (20, 49));
        assert!(f.partial);
        assert_eq!(f.gpu_buffer_mib, 3621.44);
        assert_eq!(f.cpu_buffer_mib, 4944.60);
        assert_eq!(f.buffers, "CPU_Mapped 4945 MiB, CUDA0 3621 MiB");
        let (f, _) = facts("llama-cpp/gguf-parser-go-42-ngl1-output-layer-only-rocm0.txt");
        assert_eq!((f.offloaded, f.layers), (1, 29));
        assert_eq!(f.gpu_buffer_mib, 80.60, "ROCm0 buffer, unit cut off");
    }

    #[test]
    fn devices_are_listed() {
        let (f, _) = facts("llama-cpp/ggml-rocm-init-4x-mi50-devices.txt");
        assert_eq!(f.devices, vec!["4 ROCm devices"]);
        assert!(
            !f.cpu_only && !f.partial,
            "a device banner alone says nothing bad"
        );
        let (f, sigs) = facts("ipex/notes-4x-a770-uhd770-ipex-2.1.40-device-properties.txt");
        assert_eq!(sigs.len(), 5);
        assert_eq!(f.devices[0], "Intel(R) Arc(TM) A770 Graphics (gpu)");
        assert_eq!(f.devices.len(), 2, "identical devices are listed once");
    }

    #[test]
    fn ollama_full_offload_with_cpu_mapped_is_fine() {
        for rel in [
            "ollama/ollama-11986-split-cuda0-cuda2-81-of-81-cpu-mapped.txt",
            "ollama/ollama-9415-journal-load-tensors-43-of-43-cuda0-cpu-mapped.txt",
        ] {
            let (f, _) = facts(rel);
            assert!(f.offloaded > 0 && f.offloaded == f.layers, "{rel}");
            assert!(f.gpu_buffer_mib > 0.0 && f.cpu_buffer_mib > 0.0, "{rel}");
            assert!(
                !f.cpu_only && !f.partial,
                "{rel}: CPU_Mapped next to a GPU buffer is normal"
            );
        }
    }

    #[test]
    fn ollama_cpu_and_partial() {
        let (f, _) = facts("ollama/compose-ollama-0125-no-gpu-inference-compute-cpu-low-vram.txt");
        assert_eq!(f.compute_library, "cpu");
        assert!(f.cpu_only);
        let (f, _) = facts("ollama/docker-logs-frame-header-garbage-ollama-096-no-gpu.txt");
        assert!(f.no_gpu && f.compute_library == "cpu" && f.cpu_only);
        let (f, _) =
            facts("ollama/nixpkgs-375910-rx6900xt-no-suitable-rocm-falling-back-to-cpu.txt");
        assert!(f.no_gpu && f.cpu_only);
        let (f, _) = facts("ollama/ollama-3301-4070tisuper-journal-offloaded-30-of-81.txt");
        assert_eq!((f.offloaded, f.layers), (30, 81));
        assert!(f.partial);
        let (f, _) = facts("ollama/ollama-9181-offload-decision-4gpu-44-of-81-wrapped.txt");
        assert_eq!(
            (f.offloaded, f.layers),
            (44, 81),
            "fields wrapped over two lines"
        );
        assert!(f.partial);
        let (f, _) = facts("ollama/ollama-11676-ps-52-48-cpu-gpu-context-forever.txt");
        assert_eq!(f.processor_cpu_pct, 52);
        assert!(f.partial);
        let (f, _) = facts("ollama/ollama-12586-journal-kv-cache-layers-on-cpu-german-month.txt");
        assert!(f.kv_on_cpu >= 4);
        assert!(f.partial, "KV cache on the CPU");
        let (f, _) = facts("ollama/nixpkgs-308206-rx580-amdgpu-version-file-missing-cpu.txt");
        assert!(!f.cpu_only && !f.partial, "a warning alone is not evidence");
    }

    #[test]
    fn sycl_and_level_zero_errors() {
        let (f, _) = facts("ipex/ipex359-a770-native-api-5-1-997-gpu-hang.txt");
        let codes: Vec<_> = f.errors.iter().map(|e| e.code.as_str()).collect();
        assert_eq!(
            codes,
            vec![
                "PI_ERROR_OUT_OF_RESOURCES",
                "PI_ERROR_DEVICE_NOT_FOUND",
                "native -997"
            ]
        );
        assert_eq!(f.errors[0].class, "out-of-memory");
        assert_eq!(f.errors[1].class, "no-device");
        let (f, _) = facts("ipex/ipexllm11786-4xarc-fp6-native-api-5-rank-prefixed.txt");
        assert_eq!(f.errors[0].code, "PI_ERROR_OUT_OF_RESOURCES");
        assert!(f.errors[0].line.starts_with("[0] RuntimeError"));
        let (f, _) = facts("ipex/ipexllm10575-a750-native-api-999-unknown-pi-error.txt");
        assert_eq!(
            (f.errors[0].code.as_str(), f.errors[0].count),
            ("native -999", 2)
        );
        let (f, _) = facts("ipex/sdnext1526-arc-native-api-5-rich-log-wrapped.txt");
        assert_eq!(f.errors[0].code, "PI_ERROR_OUT_OF_RESOURCES");
        let (f, _) = facts("ipex/llvm15841-max1550-native-api-995-p2p.txt");
        assert_eq!(f.errors[0].code, "native -995");
        let (f, _) = facts("ipex/oneapisamples1337-pi-error-device-not-found-source-build.txt");
        assert_eq!(f.errors[0].class, "no-device");
        let (f, _) = facts("ipex/ipex266-fedora-a770-zello-world-ze-uninitialized.txt");
        assert_eq!(f.errors[0].code, "ZE_RESULT_ERROR_UNINITIALIZED");
        let (f, _) = facts("ipex/sycl-oracle-ur-result-error-uninitialized-2026.2.0.txt");
        assert_eq!(f.errors[0].code, "UR_RESULT_ERROR_UNINITIALIZED");
        assert_eq!(f.errors[0].class, "no-device");
        assert!(f.errors[0].count > 1);
    }

    #[test]
    fn broken_lines_do_not_panic() {
        for l in [
            "",
            "offloaded /35 layers to GPU",
            "offloaded 99999999999999999999/1 layers to GPU",
            "load_tensors: buffer size =",
            "msg=\"inference compute\"",
            "layers.model=",
            "\u{1b}[31mNative API failed\u{1b}[0m",
            "DeviceProperties(name='x",
        ] {
            let _ = classify(l);
        }
        assert_eq!(
            classify("\u{1b}[0mload_tensors: offloaded 3/4 layers to GPU\r"),
            Some(Signal::Offloaded { n: 3, m: 4 })
        );
    }

    #[test]
    fn splitter_bounds_lines_and_keeps_the_last() {
        let mut s = LineSplitter::new(8);
        let mut got = Vec::new();
        s.feed(b"abc\nlong line here\r\npart", |l| got.push(l.to_string()));
        s.feed(b"ial\n", |l| got.push(l.to_string()));
        s.feed(b"tail", |l| got.push(l.to_string()));
        s.finish(|l| got.push(l.to_string()));
        assert_eq!(got, vec!["abc", "long lin", "partial", "tail"]);
    }
}
