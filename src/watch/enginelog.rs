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
    /// ollama skipped an AMD GPU whose gfx target its ROCm build has no
    /// kernels for: `msg="amdgpu is not supported" gpu=0 gpu_type=gfx1032
    /// supported_types="[gfx1030 gfx1100]"` (Linux), `(supported
    /// types:[gfx1103])" gpu_type=gfx1150` (Windows).
    GfxUnsupported { gfx: String, supported: Vec<String> },
    /// `ollama ps`: share of the model on the CPU.
    Processor { cpu_pct: u32 },
    /// A KV-cache layer placed on the CPU.
    KvOnCpu,
    /// A runtime error of the GPU stack (SYCL / Level Zero / Unified
    /// Runtime, CUDA, HIP, Vulkan, PyTorch, the NVIDIA kernel driver).
    RuntimeError { code: String, class: String },
    /// `llama_kv_cache_init: CUDA0 KV buffer size = X MiB` (every llama.cpp
    /// release names the KV cache's device this way), ollama's
    /// `msg="kv cache" device=CUDA0 size="1.8 GiB"`.
    KvBuffer { device: String, mib: f64, gpu: bool },
    /// `load_tensors: layer 12 assigned to device CUDA0` (verbose loaders).
    LayerOn { device: String, gpu: bool },
    /// vLLM's `Automatically detected platform cuda.` (`cpu`, `rocm`, `xpu`,
    /// ...); `unspecified` for `No platform detected`.
    Platform { name: String },
    /// vLLM's KV cache on the device: `# GPU blocks: N, # CPU blocks: M`
    /// (the CPU blocks are swap space, not a CPU cache) or V1's `GPU KV
    /// cache size: N tokens`.
    GpuKv { count: u64, unit: String },
    /// The engine's own speed report (docs/watch.md "Throughput"): decode
    /// (generated tokens per second) and/or prompt (prompt tokens per
    /// second), and the tokens the report covers when it says so.
    Throughput {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        decode_tps: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        prompt_tps: Option<f64>,
        /// Generated tokens this report covers (llama.cpp `eval time ... /
        /// N runs`, IPEX-LLM `N tokens in all`), when it says.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tokens: Option<u64>,
        /// `llama.cpp`, `llama-bench`, `ollama`, `vllm`, `ipex-llm`.
        engine: String,
    },
    /// ollama `--verbose`'s `eval count: N token(s)` (generated tokens; the
    /// rate follows on its own line).
    Generated { tokens: u64 },
    /// The GPU behind a backend device, for its memory bandwidth
    /// (`src/watch/bound.rs`): `using device SYCL0 (Intel(R) Arc(TM) A770
    /// Graphics)` (device `SYCL0`), CUDA/HIP's `  Device 0: NVIDIA GeForce
    /// RTX 4090, compute capability 8.9` (device `0`: the index of the
    /// `CUDA0` / `ROCm0` buffers), `ggml_vulkan: 0 = AMD Radeon RX 7900 XTX
    /// (RADV NAVI31) | uma: 0` (device `Vulkan0`).
    DeviceName { device: String, name: String },
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
        r"load_tensors:\s+(\S+)\s+(?:model\s+)?buffer size\s*=\s*([0-9]+(?:[.,][0-9]+)?)\s*(MiB|MB|GiB|KiB)?",
    )
});
static DEVICES: LazyLock<Option<Regex>> =
    LazyLock::new(|| re(r"(?i)\bfound (\d+) (CUDA|ROCm|SYCL|Vulkan|Metal|HIP) devices"));
static SYCL_DETECT: LazyLock<Option<Regex>> = LazyLock::new(|| re(r"\bdetect (\d+) SYCL GPUs"));
static DEVPROPS: LazyLock<Option<Regex>> =
    LazyLock::new(|| re(r"_(?:Xpu)?DeviceProperties\(name='([^']*)'.*?\b(?:dev_)?type='(\w+)'"));
static GPU_TYPE: LazyLock<Option<Regex>> = LazyLock::new(|| re(r"\bgpu_type=(gfx[0-9a-f]{3,4})\b"));
static SUPPORTED_TYPES: LazyLock<Option<Regex>> =
    LazyLock::new(|| re(r#"supported[_ ]types[=:]\s*"?\[([a-z0-9 ,]*)\]"#));
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
static KV_BUFFER: LazyLock<Option<Regex>> = LazyLock::new(|| {
    re(r"\b(\S+)\s+KV buffer size\s*=\s*([0-9]+(?:[.,][0-9]+)?)\s*(MiB|MB|GiB|KiB)?")
});
static OLLAMA_DEVICE_SIZE: LazyLock<Option<Regex>> = LazyLock::new(|| {
    re(
        r#"msg="(model weights|kv cache)" device=(\S+) size="([0-9]+(?:\.[0-9]+)?) ?(GiB|MiB|KiB|B)""#,
    )
});
static LAYER_ON: LazyLock<Option<Regex>> =
    LazyLock::new(|| re(r"load_tensors: layer\s+\d+ assigned to device (\S+?),?(?:\s|$)"));
static PLATFORM: LazyLock<Option<Regex>> =
    LazyLock::new(|| re(r"Automatically detected platform ([A-Za-z0-9_]+)"));
static VLLM_BLOCKS: LazyLock<Option<Regex>> =
    LazyLock::new(|| re(r"# (?:GPU|gpu|cuda|CUDA|xpu|XPU) blocks: (\d+)"));
static VLLM_KV_TOKENS: LazyLock<Option<Regex>> =
    LazyLock::new(|| re(r"GPU KV cache size: ([0-9][0-9,]*) tokens"));
static MISSING_LIB: LazyLock<Option<Regex>> = LazyLock::new(|| {
    re(
        r"error while loading shared libraries: ([A-Za-z0-9_.+-]{1,80}): cannot open shared object file",
    )
});
/// llama.cpp's timings, every release since June 2023 (`llama_print_timings:`,
/// `llama_perf_context_print:`, llama-server's `print_timing`):
/// `prompt eval time = 88.24 ms / 9 tokens (9.80 ms per token, 102.00 tokens per second)`,
/// `eval time = 2226.40 ms / 127 runs (17.53 ms per token, 57.04 tokens per second)`.
/// `sample time` / `sampling time` lines carry "tokens per second" too: the
/// sampler's speed, never generation speed; the pattern needs `eval time`.
/// Under a locale with a decimal comma printf writes `9,85 tokens per second`.
static LLAMA_TIMING: LazyLock<Option<Regex>> = LazyLock::new(|| {
    re(
        r"(?:^|[\s|:])(prompt eval|eval) time\s*=\s*[0-9]+[.,]?[0-9]* ms /\s*(\d+) (?:tokens|runs)\s*\(\s*[0-9]+[.,]?[0-9]* ms per token,\s*([0-9]+[.,]?[0-9]*) tokens per second\)",
    )
});
/// llama-server's progress while it generates: `n_decoded = 136, tg = 11.90 t/s`.
static LLAMA_TG_PROGRESS: LazyLock<Option<Regex>> =
    LazyLock::new(|| re(r"\bn_decoded =\s*\d+, tg =\s*([0-9.]+) t/s"));
/// llama-server's progress through a long prompt:
/// `prompt processing, n_tokens = 15360, progress = 0.56, t = 9.52 s / 1613.98 tokens per second`.
static LLAMA_PP_PROGRESS: LazyLock<Option<Regex>> = LazyLock::new(|| {
    re(
        r"\bprompt processing, n_tokens =\s*\d+, progress = [0-9.]+, t =\s*[0-9.]+ s /\s*([0-9.]+) tokens per second",
    )
});
/// A llama-bench markdown row: `| llama 1B F16 | ... |  pp512 |  18.46 ± 1.73 |`
/// (before mid-2024: `pp 512`); `@ d4096` (a depth) may follow the test;
/// `pp512+tg128` (pg) is neither speed alone.
static LLAMA_BENCH_ROW: LazyLock<Option<Regex>> =
    LazyLock::new(|| re(r"^\|.*\|\s*(pp|tg) ?\d+(?: @ d\d+)?\s*\|\s*([0-9.]+) ± [0-9.]+\s*\|$"));
/// ollama `--verbose` (and `/set verbose`): `eval rate: 24.61 tokens/s`,
/// `prompt eval rate: 53.77 tokens/s`, `eval count: 120 token(s)`.
static OLLAMA_RATE: LazyLock<Option<Regex>> =
    LazyLock::new(|| re(r"^\s*(prompt eval|eval) rate:\s+([0-9.]+) tokens/s\s*$"));
static OLLAMA_COUNT: LazyLock<Option<Regex>> =
    LazyLock::new(|| re(r"^\s*eval count:\s+(\d+) token\(s\)\s*$"));
/// vLLM's periodic stats (V0 `metrics.py`, V1 `loggers.py`):
/// `Avg prompt throughput: 0.0 tokens/s, Avg generation throughput: 77.3 tokens/s, ...`.
static VLLM_TPUT: LazyLock<Option<Regex>> = LazyLock::new(|| {
    re(r"Avg prompt throughput: ([0-9.]+) tokens/s, Avg generation throughput: ([0-9.]+) tokens/s")
});
/// IPEX-LLM's `BenchmarkWrapper`: `=========Rest tokens cost average 0.1117s (31 tokens in all)=========`
/// (newer releases add ` and 6.55 GB`): seconds per generated token after the first.
static IPEX_REST: LazyLock<Option<Regex>> =
    LazyLock::new(|| re(r"Rest tokens? cost average ([0-9.]+) ?s \((\d+) tokens in all\)"));
static USING_DEVICE: LazyLock<Option<Regex>> = LazyLock::new(|| {
    re(r"\busing device ([A-Za-z]+[0-9]+) \(([^()]{1,120}(?:\([^()]{0,20}\)[^()]{0,60}){0,4})\)")
});
static CUDA_DEVICE: LazyLock<Option<Regex>> =
    LazyLock::new(|| re(r"^\s*Device (\d+): ([^,]{1,120}), (?:compute capability|gfx)"));
static VULKAN_DEVICE: LazyLock<Option<Regex>> =
    LazyLock::new(|| re(r"ggml_vulkan: (\d+) = ([^|]{1,120}?) \([^()|]*\) \|"));
static XID: LazyLock<Option<Regex>> = LazyLock::new(|| re(r"NVRM: Xid \([^)]*\): (\d+)"));

fn caps<'a>(r: &LazyLock<Option<Regex>>, line: &'a str) -> Option<regex::Captures<'a>> {
    r.as_ref()?.captures(line)
}

fn num<T: std::str::FromStr>(c: &regex::Captures<'_>, i: usize) -> Option<T> {
    c.get(i)?.as_str().parse().ok()
}

/// Buffers of these backends live in GPU memory (`Metal_Mapped` is unified
/// memory the GPU works from). `CPU`, `CPU_Mapped`, `*_Host` (pinned host
/// memory) are host RAM.
pub fn is_gpu_buffer(dev: &str) -> bool {
    if dev.starts_with("CPU") || dev.ends_with("_Host") {
        return false;
    }
    [
        "CUDA", "ROCm", "SYCL", "Vulkan", "Metal", "HIP", "MUSA", "CANN", "OpenCL",
    ]
    .iter()
    .any(|p| dev.starts_with(p))
}

/// A size with its unit, in MiB. `4095,05` (a decimal comma: the locale
/// of the machine that printed it) reads as 4095.05.
fn size_mib(c: &regex::Captures<'_>, value: usize, unit: usize) -> Option<f64> {
    let v: f64 = c.get(value)?.as_str().replace(',', ".").parse().ok()?;
    Some(match c.get(unit).map(|m| m.as_str()) {
        Some("GiB") => v * 1024.0,
        Some("KiB") => v / 1024.0,
        Some("B") => v / 1048576.0,
        _ => v,
    })
}

/// Which kind of runtime error a code is, for the fix: `out-of-memory`,
/// `no-kernel` (the binary has no code for this device), `no-device`,
/// `device-lost`, `missing-library` (the dynamic loader did not find a
/// library: the code is its soname), `other`.
pub fn error_class(code: &str) -> &'static str {
    if code.starts_with("lib") && code.contains(".so") {
        "missing-library"
    } else if code.contains("OUT_OF_RESOURCES")
        || code.contains("OUT_OF_DEVICE_MEMORY")
        || code.contains("OUT_OF_HOST_MEMORY")
        || matches!(
            code,
            "cudaErrorMemoryAllocation"
                | "OutOfMemoryError"
                | "ErrorOutOfDeviceMemory"
                | "buffer allocation failed"
        )
    {
        "out-of-memory"
    } else if code.contains("INVALID_BINARY")
        || code.contains("INVALID_KERNEL_NAME")
        || code.contains("BUILD_PROGRAM_FAILURE")
        || matches!(
            code,
            "cudaErrorNoKernelImageForDevice"
                | "invalid device function"
                | "hipErrorNoBinaryForGpu"
                | "No kernel named"
        )
    {
        "no-kernel"
    } else if code.contains("DEVICE_NOT_FOUND")
        || code.contains("UNINITIALIZED")
        || code == "NO_DEVICE"
    {
        "no-device"
    } else if code.contains("DEVICE_LOST")
        || matches!(
            code,
            "cudaErrorLaunchFailure" | "ErrorDeviceLost" | "Xid 79" | "Memory access fault by GPU"
        )
    {
        "device-lost"
    } else {
        "other"
    }
}

/// Which GPU stack printed an error line, for the fix: `sycl`, `cuda`,
/// `rocm`, `vulkan`, `xpu` (PyTorch on Intel), `nvidia` (the kernel
/// driver), "" when the line does not say.
pub fn error_backend(code: &str, line: &str) -> &'static str {
    if error_class(code) == "missing-library" {
        return library_backend(code);
    }
    if code.starts_with("UR_")
        || code.starts_with("PI_")
        || code.starts_with("ZE_")
        || code.starts_with("CL_")
        || code.starts_with("native ")
        || code == "NO_DEVICE"
        || code == "No kernel named"
    {
        "sycl"
    } else if code.starts_with("Xid") {
        "nvidia"
    } else if code == "ErrorOutOfDeviceMemory"
        || code == "ErrorDeviceLost"
        || line.contains("ggml_vulkan")
        || line.contains("vk::")
    {
        "vulkan"
    } else if code.starts_with("hip")
        || code == "Memory access fault by GPU"
        || line.contains("ROCm")
        || line.contains("HIP")
        || line.contains("hipError")
    {
        "rocm"
    } else if line.contains("XPU") {
        "xpu"
    } else if line.contains("CUDA") || line.contains("cuda") {
        "cuda"
    } else {
        ""
    }
}

const FIX_OOM_SYCL: &str = "llama-server -m model.gguf -ngl 99 -c 4096 -b 512   # less context / smaller batch (or a smaller quant)\n\
export IPEX_LLM_LOW_MEM=1                          # IPEX-LLM\n\
export UR_L0_ENABLE_RELAXED_ALLOCATION_LIMITS=1    # Level Zero: allow allocations over 4 GiB";
const FIX_OOM_VULKAN: &str = "llama-server -m model.gguf -ngl 99 -c 4096 -ub 512   # less context / a smaller micro-batch (or fewer -ngl layers)\n\
GGML_VK_FORCE_MAX_ALLOCATION_SIZE=1073741824 llama-server ...   # a driver that fails big single allocations (llama.cpp #5441)";
const FIX_OOM_GPU: &str = "nvidia-smi   # (rocm-smi / xpu-smi) another process holding VRAM?\n\
llama-server -m model.gguf -ngl 99 -c 4096     # llama.cpp / ollama: less context, a smaller quant, or fewer -ngl layers\n\
vllm serve MODEL --gpu-memory-utilization 0.85 --max-model-len 8192   # vLLM: a smaller KV reservation\n\
export PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True   # PyTorch: fragmentation (as its message says); else a smaller batch";
const FIX_KERNEL_CUDA: &str = "nvidia-smi --query-gpu=name,compute_cap --format=csv   # the card's compute capability\n\
cmake -B build -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=61   # llama.cpp: build for it (8.6 -> 86)\n\
python -c 'import torch; print(torch.cuda.get_arch_list())'   # PyTorch / vLLM: the wheel must list sm_<cc>; else install one that does";
const FIX_KERNEL_ROCM: &str = "rocminfo | grep -m1 -o 'gfx[0-9a-f]*'   # the card's gfx target\n\
cmake -B build -DGGML_HIP=ON -DAMDGPU_TARGETS=gfx1030   # llama.cpp: build for it\n\
export HSA_OVERRIDE_GFX_VERSION=10.3.0   # a card with no kernels of its own (RDNA2; 11.0.0 RDNA3): rigdoctor check says which";
const FIX_KERNEL_SYCL: &str = "rm -rf ~/.cache/libsycl_cache   # a stale JIT cache (SYCL_CACHE_PERSISTENT=1) built for another device or driver\n\
rigdoctor check   # oneAPI, compute runtime and IPEX releases that belong together\n\
# an ahead-of-time build for another GPU (-fsycl-targets): rebuild for this one, or install the build made for it";
const FIX_NO_DEVICE: &str = "rigdoctor check\n\
sycl-ls --ignore-device-selectors    # does the runtime see the GPU at all?\n\
ls -l /dev/dri/renderD*; groups     # is this user in the render group?";
const FIX_LOST_SYCL: &str = "sudo dmesg | grep -iE \"hang|reset\" | tail -20\n\
# a GPU hang or reset: update the kernel driver and compute runtime (libze-intel-gpu1, intel-opencl-icd)";
const FIX_LOST_NVIDIA: &str = "sudo dmesg | grep -i 'NVRM: Xid' | tail -20   # Xid 79 = the GPU fell off the bus\n\
# Xid 79: reseat the card, check its power cables, PSU and riser; nvidia-smi -r or a reboot brings it back\n\
# no Xid: an unstable overclock or a driver bug: reset clocks (nvidia-smi -rgc), update the driver";
const FIX_LOST_ROCM: &str = "sudo dmesg | grep -iE 'amdgpu|gpu reset|page fault|MES' | tail -20\n\
# a GPU fault or reset under ROCm: update the kernel and linux-firmware (or amdgpu-dkms-firmware) together with ROCm";
const FIX_LOST_VULKAN: &str = "sudo dmesg | grep -iE 'hang|reset|Xid|ring' | tail -20\n\
# the GPU hung or was reset under Vulkan: update the driver (Mesa); if it recurs under load, lower -ngl or -ub";
const FIX_OTHER_SYCL: &str = "rigdoctor check\n\
SYCL_UR_TRACE=1 <your command> 2>&1 | tail -50    # which call failed";

/// Whose library a soname is: oneAPI's (`sycl`), CUDA's, ROCm's, the
/// Vulkan loader's, or "" (the program's own, or unknown).
fn library_backend(soname: &str) -> &'static str {
    const ONEAPI: &[&str] = &[
        "libsycl",
        "libmkl_",
        "libsvml",
        "libimf",
        "libintlc",
        "libirng",
        "libiomp5",
        "libur_",
        "libze_loader",
        "libdnnl",
        "libtbb",
        "libumf",
        "libtcm",
        "libccl",
        "libpti",
    ];
    const CUDA: &[&str] = &[
        "libcuda",
        "libcublas",
        "libnvrtc",
        "libcudnn",
        "libnccl",
        "libcusparse",
    ];
    const ROCM: &[&str] = &[
        "libamdhip64",
        "libhipblas",
        "librocblas",
        "libhsa-runtime64",
        "librocm",
    ];
    if ONEAPI.iter().any(|p| soname.starts_with(p)) {
        "sycl"
    } else if CUDA.iter().any(|p| soname.starts_with(p)) {
        "cuda"
    } else if ROCM.iter().any(|p| soname.starts_with(p)) {
        "rocm"
    } else if soname.starts_with("libvulkan") {
        "vulkan"
    } else {
        ""
    }
}

/// The fix for a library the loader did not find. A libsycl soname names
/// the oneAPI year the program was linked against (checks/pins.toml
/// `[[libsycl]]`), so the fix says which release to source or install.
fn missing_library_fix(soname: &str, backend: &str) -> String {
    if let Some(l) = crate::derive::pins::libsycl_line(soname) {
        let y = l.year;
        let source = if y >= 2024 {
            format!(
                "source /opt/intel/oneapi/{latest}/oneapi-vars.sh   # a {y}.1+ release; {y}.0: source /opt/intel/oneapi/compiler/{y}.0/env/vars.sh and mkl/{y}.0/env/vars.sh",
                latest = l.latest
            )
        } else {
            format!(
                "source /opt/intel/oneapi/compiler/<the {y} release ls printed>/env/vars.sh && source /opt/intel/oneapi/mkl/<its release>/env/vars.sh"
            )
        };
        return format!(
            "# the program is linked against {soname}: the oneAPI {y} runtime ({y}.0 to {latest}); this shell loads another year's release, or none
ls -d /opt/intel/oneapi/{y}.* /opt/intel/oneapi/compiler/{y}.* 2>/dev/null   # a {y} release installed?
{source}
# none installed: install oneAPI {latest} next to the other release (its oneMKL too), or as wheels: pip install {wheel} and export LD_LIBRARY_PATH=\"$VIRTUAL_ENV/lib:$LD_LIBRARY_PATH\" ($CONDA_PREFIX/lib in conda)
# ipex-llm[cpp] ollama / llama.cpp: rigdoctor check names the release its build needs; its portable zip carries its own runtime (do not source oneAPI for it)",
            latest = l.latest,
            wheel = l.wheel
        );
    }
    let first = match backend {
        "sycl" => {
            "# a oneAPI library: source the oneAPI release the program was built with (setvars.sh takes `latest`); rigdoctor check lists the installed releases"
        }
        "cuda" => {
            "# a CUDA library: install the CUDA runtime (or the torch / engine build) of the CUDA major version the program was built for"
        }
        "rocm" => {
            "# a ROCm library: install the ROCm release the program was built for, or add /opt/rocm/lib to LD_LIBRARY_PATH"
        }
        "vulkan" => "sudo apt install libvulkan1   # the Vulkan loader",
        _ => {
            "# the program's own library: start it from its directory (ipex-llm: the one init-ollama / init-llama-cpp made) or add that directory to LD_LIBRARY_PATH"
        }
    };
    format!("{first}\nldd <the program> | grep 'not found'   # every library it misses")
}

/// The fix for an error of this class printed by this backend.
pub fn error_fix(class: &str, backend: &str, code: &str) -> String {
    match (class, backend) {
        ("missing-library", _) => missing_library_fix(code, backend),
        ("out-of-memory", "sycl") => FIX_OOM_SYCL.into(),
        ("out-of-memory", "vulkan") => FIX_OOM_VULKAN.into(),
        ("out-of-memory", _) => FIX_OOM_GPU.into(),
        ("no-kernel", "sycl") => FIX_KERNEL_SYCL.into(),
        ("no-kernel", "rocm") => FIX_KERNEL_ROCM.into(),
        // llama.cpp's HIP builds said "CUDA error: invalid device function"
        // until 2024: the line does not tell which vendor it is.
        ("no-kernel", _) if code == "invalid device function" => {
            format!("{FIX_KERNEL_ROCM}\n{FIX_KERNEL_CUDA}")
        }
        ("no-kernel", _) => FIX_KERNEL_CUDA.into(),
        ("no-device", _) => FIX_NO_DEVICE.into(),
        ("device-lost", "sycl") => FIX_LOST_SYCL.into(),
        ("device-lost", "vulkan") => FIX_LOST_VULKAN.into(),
        ("device-lost", "rocm") => FIX_LOST_ROCM.into(),
        ("device-lost", _) => FIX_LOST_NVIDIA.into(),
        (_, "sycl") => FIX_OTHER_SYCL.into(),
        _ => "rigdoctor check".into(),
    }
}

/// The error a line reports, by its code, if it reports one.
fn error_code(line: &str) -> Option<String> {
    if line.contains("error while loading shared libraries") {
        return caps(&MISSING_LIB, line).and_then(|c| c.get(1).map(|m| m.as_str().to_string()));
    }
    let sycl = line.contains("Native API failed")
        || line.contains("UR_RESULT_ERROR_")
        || line.contains("PI_ERROR_")
        || line.contains("ZE_RESULT_ERROR_")
        || line.contains("No device of requested type available")
        || line.contains("CL_DEVICE_NOT_FOUND");
    if sycl {
        let code = if let Some(c) = caps(&ERR_CODE, line) {
            c.get(1).map(|m| m.as_str().to_string())
        } else if line.contains("No device of requested type available") {
            Some("NO_DEVICE".to_string())
        } else {
            caps(&NATIVE, line).and_then(|c| c.get(1).map(|m| format!("native {}", m.as_str())))
        };
        return Some(code.unwrap_or_else(|| "unknown".into()));
    }
    // Every pattern below is the runtime's own wording, matched whole:
    // "If you are running out of memory, consider ..." (vLLM's advice) is
    // not an error.
    let code = if line.contains("OutOfMemoryError") && line.contains("out of memory") {
        // torch.cuda.OutOfMemoryError / torch.OutOfMemoryError (CUDA, ROCm, XPU)
        "OutOfMemoryError"
    } else if line.contains("cudaMalloc failed: out of memory")
        || line.contains("CUDA error: out of memory")
        || line.contains("CUDA out of memory")
    {
        "cudaErrorMemoryAllocation"
    } else if line.contains("ErrorOutOfDeviceMemory")
        || (line.contains("ggml_vulkan: Device memory allocation of size")
            && line.contains("failed"))
    {
        "ErrorOutOfDeviceMemory"
    } else if line.contains("failed to allocate") && line.contains(" buffer of size") {
        // ggml's alloc_tensor_range / ggml_gallocr_reserve_n, any backend
        "buffer allocation failed"
    } else if line.contains("no kernel image is available") {
        "cudaErrorNoKernelImageForDevice"
    } else if line.contains("hipErrorNoBinaryForGpu") {
        "hipErrorNoBinaryForGpu"
    } else if line.contains("invalid device function") {
        "invalid device function"
    } else if line.contains("No kernel named") && line.contains("was found") {
        "No kernel named"
    } else if line.contains("unspecified launch failure") {
        "cudaErrorLaunchFailure"
    } else if line.contains("DeviceLostError")
        || line.contains("ErrorDeviceLost")
        || line.contains("VK_ERROR_DEVICE_LOST")
    {
        "ErrorDeviceLost"
    } else if line.contains("Memory access fault by GPU") {
        // ROCm's HSA runtime: a GPU page fault that ends the process.
        "Memory access fault by GPU"
    } else if line.contains("NVRM: Xid") {
        return caps(&XID, line).and_then(|c| c.get(1).map(|m| format!("Xid {}", m.as_str())));
    } else {
        return None;
    };
    Some(code.to_string())
}

fn runtime_error(line: &str) -> Option<Signal> {
    let code = error_code(line)?;
    Some(Signal::RuntimeError {
        class: error_class(&code).to_string(),
        code,
    })
}

/// A speed the engine reported: finite and above zero, else nothing was said
/// (llama-cpp-python 0.3.0 printed `0.00 ms ... inf tokens per second`).
fn speed(c: &regex::Captures<'_>, i: usize) -> Option<f64> {
    let v: f64 = c.get(i)?.as_str().replace(',', ".").parse().ok()?;
    (v.is_finite() && v > 0.0).then_some(v)
}

fn tput(decode: Option<f64>, prompt: Option<f64>, tokens: Option<u64>, engine: &str) -> Signal {
    Signal::Throughput {
        decode_tps: decode,
        prompt_tps: prompt,
        tokens,
        engine: engine.into(),
    }
}

/// The engine's own speed reports (pure; see the patterns above).
pub fn throughput(line: &str) -> Option<Signal> {
    if line.contains("tokens per second") {
        if let Some(c) = caps(&LLAMA_TIMING, line) {
            let v = speed(&c, 3)?;
            return Some(if c.get(1)?.as_str() == "eval" {
                tput(Some(v), None, num(&c, 2), "llama.cpp")
            } else {
                tput(None, Some(v), None, "llama.cpp")
            });
        }
        if let Some(c) = caps(&LLAMA_PP_PROGRESS, line) {
            return Some(tput(None, Some(speed(&c, 1)?), None, "llama.cpp"));
        }
        return None;
    }
    if line.contains(" t/s") {
        if let Some(c) = caps(&LLAMA_TG_PROGRESS, line) {
            return Some(tput(Some(speed(&c, 1)?), None, None, "llama.cpp"));
        }
    }
    if line.contains(" ± ") && line.starts_with('|') {
        if let Some(c) = caps(&LLAMA_BENCH_ROW, line.trim_end()) {
            let v = speed(&c, 2)?;
            return Some(if c.get(1)?.as_str() == "tg" {
                tput(Some(v), None, None, "llama-bench")
            } else {
                tput(None, Some(v), None, "llama-bench")
            });
        }
    }
    if line.contains(" rate:") {
        if let Some(c) = caps(&OLLAMA_RATE, line) {
            let v = speed(&c, 2)?;
            return Some(if c.get(1)?.as_str() == "eval" {
                tput(Some(v), None, None, "ollama")
            } else {
                tput(None, Some(v), None, "ollama")
            });
        }
    }
    if line.contains("eval count:") && !line.contains("prompt eval count") {
        if let Some(c) = caps(&OLLAMA_COUNT, line) {
            return Some(Signal::Generated {
                tokens: num(&c, 1)?,
            });
        }
    }
    if line.contains("Avg generation throughput") {
        if let Some(c) = caps(&VLLM_TPUT, line) {
            // 0.0 is an interval without that kind of work, not a speed.
            let (p, d) = (speed(&c, 1), speed(&c, 2));
            return (p.is_some() || d.is_some()).then(|| tput(d, p, None, "vllm"));
        }
    }
    if line.contains("tokens in all") {
        if let Some(c) = caps(&IPEX_REST, line) {
            let secs: f64 = num(&c, 1)?;
            if !(secs.is_finite() && secs > 0.0) {
                return None;
            }
            // Two decimals, as every other engine prints its speed.
            let tps = super::sample::round2(1.0 / secs);
            return Some(tput(Some(tps), None, num(&c, 2), "ipex-llm"));
        }
    }
    None
}

/// What `line` says about where the work runs, or how fast, if anything.
pub fn classify(line: &str) -> Option<Signal> {
    if line.len() > 8192 {
        return None;
    }
    if let Some(s) = throughput(line) {
        return Some(s);
    }
    if let Some(s) = runtime_error(line) {
        return Some(s);
    }
    if line.contains("KV buffer size") {
        if let Some(c) = caps(&KV_BUFFER, line) {
            let device = c.get(1)?.as_str().to_string();
            let mib = size_mib(&c, 2, 3)?;
            let gpu = is_gpu_buffer(&device);
            return Some(Signal::KvBuffer { device, mib, gpu });
        }
    }
    if line.contains(" device=") && line.contains(" size=") {
        if let Some(c) = caps(&OLLAMA_DEVICE_SIZE, line) {
            let device = c.get(2)?.as_str().to_string();
            let mib = size_mib(&c, 3, 4)?;
            let gpu = is_gpu_buffer(&device);
            return Some(if c.get(1)?.as_str() == "kv cache" {
                Signal::KvBuffer { device, mib, gpu }
            } else {
                Signal::Buffer { device, mib, gpu }
            });
        }
    }
    if line.contains("assigned to device") {
        if let Some(c) = caps(&LAYER_ON, line) {
            let device = c.get(1)?.as_str().to_string();
            let gpu = is_gpu_buffer(&device);
            return Some(Signal::LayerOn { device, gpu });
        }
    }
    if line.contains("detected platform") {
        if let Some(c) = caps(&PLATFORM, line) {
            return Some(Signal::Platform {
                name: c.get(1)?.as_str().to_ascii_lowercase(),
            });
        }
    }
    if line.contains("No platform detected") {
        return Some(Signal::Platform {
            name: "unspecified".into(),
        });
    }
    if line.contains(" blocks: ") {
        if let Some(c) = caps(&VLLM_BLOCKS, line) {
            return Some(Signal::GpuKv {
                count: num(&c, 1)?,
                unit: "blocks".into(),
            });
        }
    }
    if line.contains("GPU KV cache size:") {
        if let Some(c) = caps(&VLLM_KV_TOKENS, line) {
            return Some(Signal::GpuKv {
                count: c.get(1)?.as_str().replace(',', "").parse().ok()?,
                unit: "tokens".into(),
            });
        }
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
            let mib = size_mib(&c, 2, 3)?;
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
    if line.contains("amdgpu is not supported") {
        if let Some(c) = caps(&GPU_TYPE, line) {
            let supported = caps(&SUPPORTED_TYPES, line)
                .and_then(|s| s.get(1).map(|m| m.as_str().to_string()))
                .map(|list| {
                    list.split([' ', ','])
                        .filter(|t| t.starts_with("gfx"))
                        .take(32)
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default();
            return Some(Signal::GfxUnsupported {
                gfx: c.get(1)?.as_str().to_string(),
                supported,
            });
        }
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
    device_name(line)
}

/// Which GPU a backend device is (see [`Signal::DeviceName`]).
fn device_name(line: &str) -> Option<Signal> {
    let named = |device: String, name: &str| {
        let name = name.trim();
        (!name.is_empty()).then(|| Signal::DeviceName {
            device,
            name: name.to_string(),
        })
    };
    if line.contains("using device ") {
        if let Some(c) = caps(&USING_DEVICE, line) {
            return named(c.get(1)?.as_str().to_string(), c.get(2)?.as_str());
        }
    }
    if line.contains("Device ") {
        if let Some(c) = caps(&CUDA_DEVICE, line) {
            return named(c.get(1)?.as_str().to_string(), c.get(2)?.as_str());
        }
    }
    if line.contains("ggml_vulkan: ") {
        if let Some(c) = caps(&VULKAN_DEVICE, line) {
            return named(format!("Vulkan{}", c.get(1)?.as_str()), c.get(2)?.as_str());
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
    /// `sycl`, `cuda`, `rocm`, `vulkan`, `xpu`, `nvidia`, "" (see [`error_backend`]).
    pub backend: String,
    pub line: String,
    pub count: u32,
    /// What to run or change, for this class on this backend.
    pub fix: String,
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
    /// The gfx target ollama skipped for want of kernels ("" if none), the
    /// targets its build lists, and the line.
    pub unsupported_gfx: String,
    pub unsupported_supported: Vec<String>,
    pub unsupported_line: String,
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
    /// KV cache buffers (llama.cpp `KV buffer size`, ollama `kv cache`).
    pub kv_gpu_mib: f64,
    pub kv_cpu_mib: f64,
    /// `CUDA0 224 MiB, CPU 448 MiB`.
    pub kv_buffers: String,
    /// Layers a verbose llama.cpp loader assigned to a GPU / to the CPU.
    pub layers_gpu: u32,
    pub layers_cpu: u32,
    /// vLLM's platform (`cuda`, `rocm`, `xpu`, `cpu`, `unspecified`), "" if not seen.
    pub platform: String,
    /// vLLM's KV cache on the device (`# GPU blocks`, `GPU KV cache size`), -1 if not seen.
    pub gpu_kv: i64,
    /// Everything on the GPU, by the log's own words (and nothing says otherwise).
    pub on_gpu: bool,
    /// The line that makes `on_gpu` true.
    pub gpu_evidence: String,
    /// `runtime-error`, `all-on-cpu`, `part-on-cpu`, `all-on-gpu`, or
    /// `unknown` when no line said where the work runs.
    pub verdict: String,
    /// What to do about the verdict ("" when there is nothing to fix).
    pub fix: String,
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
            unsupported_gfx: String::new(),
            unsupported_supported: Vec::new(),
            unsupported_line: String::new(),
            processor_cpu_pct: -1,
            kv_on_cpu: 0,
            devices: Vec::new(),
            errors: Vec::new(),
            cpu_only: false,
            partial: false,
            evidence: String::new(),
            kv_gpu_mib: 0.0,
            kv_cpu_mib: 0.0,
            kv_buffers: String::new(),
            layers_gpu: 0,
            layers_cpu: 0,
            platform: String::new(),
            gpu_kv: -1,
            on_gpu: false,
            gpu_evidence: String::new(),
            verdict: "unknown".into(),
            fix: String::new(),
            pending_model: None,
            pending_offload: None,
        }
    }
}

const MAX_ERRORS: usize = 8;
const MAX_DEVICES: usize = 16;

impl LogFacts {
    pub fn add(&mut self, signal: &Signal, line: &str) {
        if matches!(
            signal,
            Signal::Throughput { .. } | Signal::Generated { .. } | Signal::DeviceName { .. }
        ) {
            // Speed says nothing about where the work runs (`ThroughputFacts`),
            // nor does a device's name (`bound`).
            return;
        }
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
            Signal::GfxUnsupported { gfx, supported } => {
                self.unsupported_gfx = gfx.clone();
                self.unsupported_supported = supported.clone();
                self.unsupported_line = evidence_line(line);
            }
            Signal::Processor { cpu_pct } => {
                self.processor_cpu_pct = i64::from(*cpu_pct);
            }
            Signal::KvOnCpu => self.kv_on_cpu = self.kv_on_cpu.saturating_add(1),
            Signal::KvBuffer { device, mib, gpu } => {
                if *gpu {
                    self.kv_gpu_mib += mib;
                } else {
                    self.kv_cpu_mib += mib;
                }
                if !self.kv_buffers.is_empty() {
                    self.kv_buffers.push_str(", ");
                }
                self.kv_buffers.push_str(&format!("{device} {mib:.0} MiB"));
            }
            Signal::LayerOn { gpu, .. } => {
                if *gpu {
                    self.layers_gpu = self.layers_gpu.saturating_add(1);
                } else {
                    self.layers_cpu = self.layers_cpu.saturating_add(1);
                }
            }
            Signal::Platform { name } => self.platform = name.clone(),
            Signal::GpuKv { count, .. } => self.gpu_kv = i64::try_from(*count).unwrap_or(i64::MAX),
            Signal::Throughput { .. } | Signal::Generated { .. } | Signal::DeviceName { .. } => {}
            Signal::RuntimeError { code, class } => {
                if let Some(e) = self.errors.iter_mut().find(|e| &e.code == code) {
                    e.count = e.count.saturating_add(1);
                } else if self.errors.len() < MAX_ERRORS {
                    let backend = error_backend(code, line);
                    self.errors.push(ErrorFact {
                        code: code.clone(),
                        class: class.clone(),
                        backend: backend.to_string(),
                        line: evidence_line(line),
                        count: 1,
                        fix: error_fix(class, backend, code),
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
        self.kv_gpu_mib = 0.0;
        self.kv_cpu_mib = 0.0;
        self.kv_buffers.clear();
        self.layers_gpu = 0;
        self.layers_cpu = 0;
    }

    fn judge(&mut self, line: &str) {
        let before = (self.cpu_only, self.partial);
        let was_on_gpu = self.on_gpu;
        let full_offload = self.offloaded > 0 && self.offloaded >= self.layers;
        let platform_cpu = self.platform == "cpu" || self.platform == "unspecified";
        let gpu_library = !self.compute_library.is_empty() && self.compute_library != "cpu";
        // Anything at all that puts weights, KV cache or the engine on a GPU.
        let gpu_signal = self.offloaded > 0
            || self.gpu_buffer_mib > 0.0
            || self.kv_gpu_mib > 0.0
            || self.layers_gpu > 0
            || self.gpu_kv > 0
            || (!self.platform.is_empty() && !platform_cpu)
            || gpu_library;
        self.cpu_only = self.no_gpu_support
            || self.no_gpu
            || self.offloaded == 0
            || self.compute_library == "cpu"
            || self.processor_cpu_pct == 100
            || platform_cpu
            // ollama skipped the AMD GPU, and nothing put work on another.
            || (!self.unsupported_gfx.is_empty() && !gpu_signal)
            // Model or KV buffers (or layers) only on the host, and nothing says otherwise.
            || (!gpu_signal
                && self.offloaded < 0
                && (self.cpu_buffer_mib > 0.0 || self.kv_cpu_mib > 0.0 || self.layers_cpu > 0));
        let weights_on_gpu = full_offload || self.gpu_buffer_mib > 0.0 || self.layers_gpu > 0;
        self.partial = !self.cpu_only
            && ((self.offloaded > 0 && self.offloaded < self.layers)
                || (self.processor_cpu_pct > 0 && self.processor_cpu_pct < 100)
                || (self.kv_on_cpu > 0 && !full_offload)
                // The KV cache in host RAM while the weights are on the GPU (-nkvo).
                || (self.kv_cpu_mib > 0.0 && self.kv_gpu_mib == 0.0 && weights_on_gpu)
                || (self.offloaded < 0 && self.layers_cpu > 0 && self.layers_gpu > 0));
        // A full offload later in the run (a reload) clears an earlier verdict.
        if (self.cpu_only, self.partial) != before && (self.cpu_only || self.partial) {
            self.evidence = evidence_line(line);
        }
        self.on_gpu =
            !self.cpu_only && !self.partial && (full_offload || (self.offloaded < 0 && gpu_signal));
        if !self.on_gpu {
            self.gpu_evidence.clear();
        } else if full_offload {
            self.gpu_evidence = self.offload_line.clone();
        } else if !was_on_gpu {
            self.gpu_evidence = evidence_line(line);
        }
        self.verdict = if !self.errors.is_empty() {
            "runtime-error"
        } else if self.cpu_only {
            "all-on-cpu"
        } else if self.partial {
            "part-on-cpu"
        } else if self.on_gpu {
            "all-on-gpu"
        } else {
            "unknown"
        }
        .to_string();
        self.fix = self.fix_for_verdict();
    }

    /// ollama has no kernels for the card's gfx target: the override of a
    /// close supported target (checks/amd-gfx.toml) in the service, or a
    /// build that lists the target.
    fn fix_unsupported_gfx(&self) -> String {
        let gfx = &self.unsupported_gfx;
        let listed = if self.unsupported_supported.is_empty() {
            String::new()
        } else {
            format!(" (it lists {})", self.unsupported_supported.join(" "))
        };
        // The program's own list decides when it printed one: an override
        // to a target it lacks would not load either.
        let over = if self.unsupported_supported.is_empty() {
            crate::derive::amd::suggested(gfx)
        } else {
            crate::derive::amd::torch_override(gfx, &self.unsupported_supported)
        };
        match over {
            Some(v) => format!(
                "sudo systemctl edit ollama.service   # ollama's ROCm build has no kernels for {gfx}{listed}; add:\n\
                 # [Service]\n\
                 # Environment=\"HSA_OVERRIDE_GFX_VERSION={v}\"\n\
                 sudo systemctl daemon-reload && sudo systemctl restart ollama\n\
                 journalctl -u ollama | grep -E 'skipping rocm gfx compatibility check|inference compute'   # expect library=rocm"
            ),
            None => format!(
                "# ollama's ROCm build has no kernels for {gfx}{listed}, and no override is known to work for it\n\
                 curl -fsSL https://ollama.com/install.sh | sh   # a newer ollama (its ROCm list grows), or the Vulkan backend: OLLAMA_VULKAN=1"
            ),
        }
    }

    /// What to do about the verdict, by its cause.
    fn fix_for_verdict(&self) -> String {
        match self.verdict.as_str() {
            "runtime-error" => self
                .errors
                .first()
                .map(|e| e.fix.clone())
                .unwrap_or_default(),
            "all-on-cpu" if self.no_gpu_support => FIX_CPU_BUILD.into(),
            "all-on-cpu" if self.platform == "cpu" || self.platform == "unspecified" => {
                FIX_CPU_VLLM.into()
            }
            "all-on-cpu" if !self.unsupported_gfx.is_empty() => self.fix_unsupported_gfx(),
            "all-on-cpu" if self.no_gpu || self.compute_library == "cpu" => FIX_CPU_NO_GPU.into(),
            "all-on-cpu" => FIX_CPU_LAYERS.into(),
            "part-on-cpu"
                if self.offloaded >= 0
                    && self.offloaded >= self.layers
                    && (self.kv_cpu_mib > 0.0 || self.kv_on_cpu > 0) =>
            {
                FIX_KV_ON_CPU.into()
            }
            "part-on-cpu" => FIX_PARTIAL.into(),
            _ => String::new(),
        }
    }
}

/// What the engine said about its speed over the run: `watch.throughput`.
/// Unknown is null (a script reading the summary must not take -1 for a speed).
#[derive(Debug, Clone, Default, Serialize, PartialEq, schemars::JsonSchema)]
pub struct ThroughputFacts {
    /// Generated tokens per second, the engine's last report.
    pub decode_tps: Option<f64>,
    /// Prompt tokens per second, the engine's last report.
    pub prompt_tps: Option<f64>,
    /// The engine that said it (`llama.cpp`, `llama-bench`, `ollama`, `vllm`, `ipex-llm`), "" if none.
    pub engine: String,
    /// Generated tokens the reports counted over the run (llama.cpp `eval
    /// time` runs, ollama `eval count`, IPEX-LLM `tokens in all`); null
    /// when no report gave a count (vLLM, llama-bench).
    pub decode_tokens: Option<u64>,
    /// Speed reports read.
    pub reports: u32,
    /// The lines of the last decode / prompt report.
    pub decode_line: String,
    pub prompt_line: String,
}

impl ThroughputFacts {
    /// Fold in one signal; true when it was a speed report.
    pub fn add(&mut self, signal: &Signal, line: &str) -> bool {
        match signal {
            Signal::Throughput {
                decode_tps,
                prompt_tps,
                tokens,
                engine,
            } => {
                self.reports = self.reports.saturating_add(1);
                self.engine = engine.clone();
                if let Some(d) = decode_tps {
                    self.decode_tps = Some(*d);
                    self.decode_line = evidence_line(line);
                }
                if let Some(p) = prompt_tps {
                    self.prompt_tps = Some(*p);
                    self.prompt_line = evidence_line(line);
                }
                if let Some(n) = tokens {
                    self.count(*n);
                }
                true
            }
            Signal::Generated { tokens } => {
                self.count(*tokens);
                true
            }
            _ => false,
        }
    }

    fn count(&mut self, n: u64) {
        self.decode_tokens = Some(self.decode_tokens.unwrap_or(0).saturating_add(n));
    }
}

const FIX_CPU_BUILD: &str = "cmake -B build -DGGML_CUDA=ON   # a build with a GPU backend (-DGGML_HIP=ON AMD, -DGGML_SYCL=ON Intel, -DGGML_VULKAN=ON any)\n\
CMAKE_ARGS=\"-DGGML_CUDA=on\" pip install --force-reinstall --no-cache-dir llama-cpp-python   # llama-cpp-python: a GPU wheel";
const FIX_CPU_VLLM: &str = "python -c 'import torch; print(torch.__version__, torch.cuda.is_available())'   # a +cpu torch, or no GPU visible\n\
nvidia-smi   # in the container too: docker run --gpus all (AMD: --device /dev/kfd --device /dev/dri)\n\
# install the vLLM build for your GPU (CUDA, ROCm or XPU), not the CPU one";
const FIX_CPU_NO_GPU: &str = "journalctl -u ollama | grep -iE 'inference compute|compatible GPU|rocm|cuda'   # ollama: why it chose the CPU\n\
rigdoctor check   # driver, runtime, device visibility, render group";
const FIX_CPU_LAYERS: &str = "llama-server -m model.gguf -ngl 99   # --n-gpu-layers: 0 (the default of many builds) keeps every layer on the CPU\n\
llama-cli --list-devices             # \"(none)\": no GPU backend in this build, or no usable GPU";
const FIX_KV_ON_CPU: &str = "llama-server -m model.gguf -ngl 99 -c 4096   # without -nkvo / --no-kv-offload: the KV cache belongs on the GPU; a smaller -c if it does not fit";
const FIX_PARTIAL: &str = "llama-server -m model.gguf -ngl 99          # every layer on the GPU\n\
llama-server -m model.gguf -ngl 99 -c 4096  # does not fit? a smaller context or quant (Q4_K_M) frees VRAM\n\
# ollama: a smaller num_ctx or model (IPEX-LLM's build: OLLAMA_NUM_GPU=999)";

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
    fn a_missing_libsycl_names_the_oneapi_year() {
        // ipex-llm's ollama (a 2024 build) on oneAPI 2025.0, and in a Docker
        // image whose setvars.sh took `latest`.
        for rel in [
            "libsycl/ipexllm12763-ollama-needs-libsycl-so-7-oneapi-2025.0-installed.txt",
            "libsycl/mattcurf-ollama-intel-gpu-20-docker-bigdl-ollama-libsycl-so-7-setvars-latest.txt",
        ] {
            let (f, _) = facts(rel);
            assert_eq!(
                f.errors.len(),
                1,
                "{rel}: the `ls -l` of libsycl.so.8 is no error"
            );
            let e = &f.errors[0];
            assert_eq!(
                (e.code.as_str(), e.class.as_str(), e.backend.as_str()),
                ("libsycl.so.7", "missing-library", "sycl")
            );
            assert!(
                e.fix.contains("the oneAPI 2024 runtime (2024.0 to 2024.2)"),
                "{}",
                e.fix
            );
            assert!(
                e.fix
                    .contains("source /opt/intel/oneapi/2024.2/oneapi-vars.sh"),
                "{}",
                e.fix
            );
            assert!(
                e.fix.contains("pip install intel-sycl-rt==2024.2.1"),
                "{}",
                e.fix
            );
            assert_eq!(f.verdict, "runtime-error");
            assert_eq!(f.fix, e.fix);
        }
        // An upstream llama.cpp SYCL release (2025 build) on oneAPI 2026.1.
        let (f, _) = facts(
            "libsycl/llama-cpp-25573-b9964-sycl-release-needs-libsycl-so-8-oneapi-2026.1.txt",
        );
        let codes: Vec<_> = f
            .errors
            .iter()
            .map(|e| (e.code.as_str(), e.count))
            .collect();
        assert_eq!(
            codes,
            vec![("libsycl.so.8", 2), ("libmkl_sycl_blas.so.5", 1)]
        );
        assert!(
            f.errors[0]
                .fix
                .contains("oneAPI 2025 runtime (2025.0 to 2025.3)")
        );
        assert!(
            f.errors[1].fix.starts_with("# a oneAPI library"),
            "{}",
            f.errors[1].fix
        );
    }

    #[test]
    fn a_missing_library_of_the_program_is_not_a_oneapi_pin() {
        let (f, _) = facts("libsycl/ipexllm12546-ollama-libmllama-so-missing-not-a-soname.txt");
        let e = &f.errors[0];
        assert_eq!(
            (e.code.as_str(), e.class.as_str(), e.backend.as_str()),
            ("libmllama.so", "missing-library", "")
        );
        assert!(!e.fix.contains("oneAPI 20"), "{}", e.fix);
        assert!(
            e.fix.starts_with("# the program's own library"),
            "{}",
            e.fix
        );
        // Not a loader error: a path that merely names libsycl.
        assert_eq!(
            classify("lrwxrwxrwx 1 root root 14 libsycl.so -> ./libsycl.so.8"),
            None
        );
        assert_eq!(classify("error while loading shared libraries: "), None);
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
