//! Every engine-log form `watch` reads (issue 9 §4), one real log each from
//! `fixtures/logs/` (source URL in each header): the verdict the log alone
//! gives, the line kept as evidence, and the fix it maps to.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers: a failed setup must fail the test loudly"
)]

use rigdoctor::watch::enginelog::{LogFacts, Signal, ThroughputFacts, classify, throughput};

fn log_lines(rel: &str) -> Vec<String> {
    let path = format!("{}/fixtures/logs/{rel}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert!(text.starts_with("# source:"), "{rel} keeps its source line");
    let head: Vec<&str> = text.lines().take(3).collect();
    assert!(
        head[1].starts_with("# context:") && head[2] == "# ---",
        "{rel}: a 3-line header"
    );
    text.lines().skip(3).map(str::to_string).collect()
}

fn facts(rel: &str) -> LogFacts {
    let mut f = LogFacts::default();
    for l in log_lines(rel) {
        if let Some(s) = classify(&l) {
            f.add(&s, &l);
        }
    }
    f
}

/// The speed reports of a log, folded as `watch` folds them.
fn speeds(rel: &str) -> ThroughputFacts {
    let mut t = ThroughputFacts::default();
    for l in log_lines(rel) {
        if let Some(s) = classify(&l) {
            t.add(&s, &l);
        }
    }
    t
}

/// (log, engine, decode tok/s, prompt tok/s, generated tokens counted, reports):
/// the engine's own last figures, exactly as printed.
type SpeedRow = (
    &'static str,
    &'static str,
    Option<f64>,
    Option<f64>,
    Option<u64>,
    u32,
);
const SPEEDS: &[SpeedRow] = &[
    (
        "llama-cpp-perf-context-print-i5-13400f.log",
        "llama.cpp",
        Some(57.04),
        Some(102.00),
        Some(127),
        2,
    ),
    (
        "llama-cpp-print-timings-xeon-2023.log",
        "llama.cpp",
        Some(4.43),
        Some(43.05),
        Some(510),
        2,
    ),
    (
        "llama-cpp-print-timings-decimal-comma.log",
        "llama.cpp",
        Some(9.85),
        Some(31.40),
        Some(36),
        2,
    ),
    (
        // The real llama.cpp of fixtures/traces/real-llama-cpu.jsonl: its
        // log lines carry a time prefix (`0.20.927.080 I common_perf_print:`).
        "llama-cpp-real-cpu-watch.log",
        "llama.cpp",
        Some(8.12),
        Some(30.21),
        Some(159),
        2,
    ),
    (
        "llama-cpp-common-perf-print-2025.log",
        "llama.cpp",
        Some(105.30),
        Some(420.28),
        Some(511),
        2,
    ),
    (
        "llama-server-print-timing-request.log",
        "llama.cpp",
        Some(11.94),
        Some(55.73),
        Some(275),
        2,
    ),
    (
        "llama-server-tg-progress.log",
        "llama.cpp",
        Some(12.82),
        None,
        None,
        12,
    ),
    (
        "llama-bench-qnn-table.log",
        "llama-bench",
        Some(0.70),
        Some(18.46),
        None,
        2,
    ),
    (
        "llama-bench-cuda-4090-2024-01-pp-space.log",
        "llama-bench",
        Some(98.13),
        Some(7664.00),
        None,
        4,
    ),
    (
        "ollama-run-verbose-mistral.log",
        "ollama",
        Some(24.61),
        Some(53.77),
        Some(120),
        2,
    ),
    (
        "vllm-v0-metrics-avg-throughput.log",
        "vllm",
        Some(41.5),
        None,
        None,
        6,
    ),
    (
        "vllm-v1-loggers-spec-decoding-5090.log",
        "vllm",
        Some(124.5),
        Some(2.5),
        None,
        2,
    ),
    (
        "ipex-llm-benchmark-wrapper-b580.log",
        "ipex-llm",
        Some(70.92),
        None,
        Some(510),
        2,
    ),
];

#[test]
fn issue12_every_engine_speed_form_reads_its_own_figures() {
    for (log, engine, decode, prompt, tokens, reports) in SPEEDS {
        let t = speeds(log);
        assert_eq!(
            (
                t.engine.as_str(),
                t.decode_tps,
                t.prompt_tps,
                t.decode_tokens,
                t.reports
            ),
            (*engine, *decode, *prompt, *tokens, *reports),
            "{log}: {t:#?}"
        );
        if decode.is_some() {
            assert!(!t.decode_line.is_empty(), "{log}: the line is the evidence");
        }
        // Speed says nothing about where the work runs (a device banner, in
        // the llama-bench log, says nothing either).
        let f = facts(log);
        assert_eq!(f.verdict, "unknown", "{log}: {f:#?}");
    }
}

#[test]
fn issue12_the_sampler_speed_is_not_generation_speed() {
    for l in [
        "llama_perf_sampler_print:    sampling time =       8.69 ms /   137 runs   (    0.06 ms per token, 15772.51 tokens per second)",
        "llama_print_timings:      sample time =   301.80 ms /   512 runs   (    0.59 ms per token,  1696.48 tokens per second)",
        "common_perf_print:    samplers time =      45.40 ms /   520 tokens",
        "llama_perf_context_print:       total time =    2343.64 ms /   136 tokens",
        // vLLM's speculative decoding: accepted draft tokens, not the output rate.
        "(APIServer pid=1) INFO 05-07 04:56:17 [metrics.py:101] SpecDecoding metrics: Mean acceptance length: 2.63, Accepted throughput: 76.80 tokens/s, Drafted throughput: 235.49 tokens/s, Accepted: 768 tokens, Drafted: 2355 tokens",
        // llama-bench's combined pp+tg test is neither speed alone.
        "| llama 7B Q4_0 | 3.56 GiB | 6.74 B | CUDA | 99 | pp512+tg128 | 1234.56 ± 1.00 |",
        // ollama's prompt count is not the generated count.
        "prompt eval count:    11 token(s)",
    ] {
        assert_eq!(throughput(l), None, "{l}");
    }
    let t = speeds("llama-cpp-perf-context-print-i5-13400f.log");
    assert_eq!(t.decode_tps, Some(57.04), "not the sampler's 15772.51");
    assert!(
        t.decode_line.contains("eval time =    2226.40 ms"),
        "{t:#?}"
    );
    let t = speeds("llama-cpp-print-timings-xeon-2023.log");
    assert_eq!(t.decode_tps, Some(4.43), "not the sampler's 1696.48");
    // A report of no work is no speed (llama-cpp-python 0.3.0 printed `inf`).
    assert_eq!(
        throughput(
            "llama_perf_context_print:        eval time =       0.00 ms /     1 runs   (    0.00 ms per token,      inf tokens per second)"
        ),
        None
    );
    // vLLM's 0.0 is an interval without that work: the other speed still counts.
    match throughput(
        "INFO 01-22 18:29:30 metrics.py:449] Avg prompt throughput: 0.0 tokens/s, Avg generation throughput: 41.5 tokens/s, Running: 1 reqs",
    ) {
        Some(Signal::Throughput {
            decode_tps,
            prompt_tps,
            ..
        }) => {
            assert_eq!((decode_tps, prompt_tps), (Some(41.5), None));
        }
        other => panic!("{other:?}"),
    }
}

/// (log, verdict, a piece of the evidence line, a piece of the fix).
/// Verdicts: `all-on-gpu`, `part-on-cpu`, `all-on-cpu`, `runtime-error`.
const FORMS: &[(&str, &str, &str, &str)] = &[
    // llama.cpp across releases and backends, healthy
    (
        "llama-cpp-cuda-old-full-offload-kv.log",
        "all-on-gpu",
        "llm_load_tensors: offloaded 41/41 layers to GPU",
        "",
    ),
    (
        "llama-cpp-cuda-new-full-offload-kv.log",
        "all-on-gpu",
        "load_tensors: offloaded 29/29 layers to GPU",
        "",
    ),
    (
        "llama-cpp-sycl-ollama-arc-full-offload-kv.log",
        "all-on-gpu",
        "offloaded 33/33",
        "",
    ),
    (
        "llama-cpp-sycl-iris-xe-comma-decimals.log",
        "all-on-gpu",
        "offloaded 33/33",
        "",
    ),
    (
        "llama-cpp-vulkan-lmstudio-two-gpus-full-offload.log",
        "all-on-gpu",
        "offloaded 37/37",
        "",
    ),
    (
        "llama-cpp-rocm-7900xtx-kv-on-rocm0.log",
        "all-on-gpu",
        "ROCm0 KV buffer size =  4352.00 MiB",
        "",
    ),
    (
        "ipex-llm-llama-cpp-sycl-a770-quickstart.log",
        "all-on-gpu",
        "load_tensors: offloaded 33/33 layers to GPU",
        "",
    ),
    // wrappers: ollama, llama-cpp-python, vLLM on CUDA / ROCm / XPU
    (
        "ollama-cuda-new-engine-device-sizes.log",
        "all-on-gpu",
        "msg=\"model weights\" device=CUDA0",
        "",
    ),
    (
        "ollama-cuda-inference-compute-2080ti.log",
        "all-on-gpu",
        "msg=\"inference compute\"",
        "",
    ),
    (
        "vllm-cuda-platform-detected-0.7.2.log",
        "all-on-gpu",
        "Automatically detected platform cuda.",
        "",
    ),
    (
        "vllm-rocm-platform-then-memory-access-fault.log",
        "runtime-error",
        "Memory access fault by GPU node-1",
        "amdgpu",
    ),
    (
        "vllm-xpu-platform-detected.log",
        "all-on-gpu",
        "Automatically detected platform xpu.",
        "",
    ),
    (
        "vllm-cuda-v0-weights-gpu-blocks.log",
        "all-on-gpu",
        "# GPU blocks: 10039, # CPU blocks: 1310",
        "",
    ),
    (
        "vllm-cuda-0.4.2-tp2-gpu-blocks.log",
        "all-on-gpu",
        "# GPU blocks: 12344",
        "",
    ),
    (
        "vllm-cuda-v1-gpu-kv-cache-tokens.log",
        "all-on-gpu",
        "GPU KV cache size: 1,823,372 tokens",
        "",
    ),
    (
        "ollama-rocm-strix-halo-inference-compute-0.30.log",
        "all-on-gpu",
        "library=ROCm compute=gfx1151",
        "",
    ),
    (
        "ollama-rocm-2023-offloaded-43-of-43.log",
        "all-on-gpu",
        "offloaded 43/43 layers to GPU",
        "",
    ),
    (
        "ollama-rocm-gfx1032-override-inference-compute.log",
        "all-on-gpu",
        "library=rocm compute=gfx1032",
        "",
    ),
    // part on the CPU
    (
        "ollama-cuda-journal-39-of-41-partial.log",
        "part-on-cpu",
        "offloaded 39/41 layers to GPU",
        "-ngl 99",
    ),
    (
        "ollama-cuda-scheduler-offload-37-of-49.log",
        "part-on-cpu",
        "layers.offload=37",
        "-ngl 99",
    ),
    // all on the CPU
    (
        "llama-cpp-sycl-qwen2moe-0-of-25.log",
        "all-on-cpu",
        "offloaded 0/25 layers to GPU",
        "-ngl 99",
    ),
    (
        "llama-cpp-vulkan-0-of-49-new-format.log",
        "all-on-cpu",
        "offloaded 0/49 layers to GPU",
        "-ngl 99",
    ),
    (
        "llama-cpp-cpu-build-kv-on-cpu.log",
        "all-on-cpu",
        "CPU KV buffer size =  1024.00 MiB",
        "-ngl 99",
    ),
    (
        // Our own real llama.cpp CPU build at -lv 4 (fixtures/traces/record.sh
        // machine): every buffer on the CPU.
        "llama-cpp-real-cpu-lv4.log",
        "all-on-cpu",
        "CPU_Mapped model buffer size =   261.50 MiB",
        "-ngl 99",
    ),
    (
        "vllm-cpu-platform-detected.log",
        "all-on-cpu",
        "Automatically detected platform cpu.",
        "vLLM build for your GPU",
    ),
    (
        "vllm-unspecified-platform-no-gpu.log",
        "all-on-cpu",
        "No platform detected",
        "docker run --gpus all",
    ),
    // ollama skipped an AMD GPU its ROCm build has no kernels for
    (
        "ollama-rocm-gfx1032-not-supported-0.3.4.log",
        "all-on-cpu",
        "gpu_type=gfx1032",
        "HSA_OVERRIDE_GFX_VERSION=10.3.0",
    ),
    (
        "ollama-win-gfx1150-not-supported.log",
        "all-on-cpu",
        "gpu_type=gfx1150",
        "no override is known",
    ),
    // runtime errors, per backend
    (
        "llama-cpp-cuda-oom-cudamalloc.log",
        "runtime-error",
        "cudaMalloc failed: out of memory",
        "-c 4096",
    ),
    (
        "llama-cpp-rocm-oom-compute-buffer.log",
        "runtime-error",
        "cudaMalloc failed: out of memory",
        "-c 4096",
    ),
    (
        "torch-cuda-oom-vllm-0.2.5.log",
        "runtime-error",
        "torch.cuda.OutOfMemoryError: CUDA out of memory",
        "--gpu-memory-utilization",
    ),
    (
        "torch-2.5-outofmemoryerror-expandable-segments.log",
        "runtime-error",
        "torch.OutOfMemoryError: CUDA out of memory",
        "expandable_segments",
    ),
    (
        "llama-cpp-vulkan-rtx2060-out-of-device-memory.log",
        "runtime-error",
        "ggml_vulkan: Device memory allocation of size 118497280 failed.",
        "GGML_VK_FORCE_MAX_ALLOCATION_SIZE",
    ),
    (
        "llama-cpp-cuda-no-kernel-image-209.log",
        "runtime-error",
        "no kernel image is available",
        "CMAKE_CUDA_ARCHITECTURES",
    ),
    (
        "llama-cpp-rocm-invalid-device-function-igpu.log",
        "runtime-error",
        "ROCm error: invalid device function",
        "HSA_OVERRIDE_GFX_VERSION",
    ),
    (
        "llama-cpp-python-rocm-cuda-error-invalid-device-function.log",
        "runtime-error",
        "CUDA error: invalid device function",
        "AMDGPU_TARGETS",
    ),
    (
        "rocm-hip-no-binary-for-gpu-rx6600.log",
        "runtime-error",
        "hipErrorNoBinaryForGpu",
        "HSA_OVERRIDE_GFX_VERSION",
    ),
    (
        "ipex-sycl-no-kernel-named-46.log",
        "runtime-error",
        "No kernel named XXX was found",
        "libsycl_cache",
    ),
    (
        "sycl-pi-error-invalid-binary-42.log",
        "runtime-error",
        "PI_ERROR_INVALID_BINARY",
        "libsycl_cache",
    ),
    (
        "llama-cpp-sycl-b70-device-lost.log",
        "runtime-error",
        "UR_RESULT_ERROR_DEVICE_LOST",
        "hang|reset",
    ),
    (
        "ollama-cuda-unspecified-launch-failure.log",
        "runtime-error",
        "CUDA error: unspecified launch failure",
        "Xid 79",
    ),
    (
        "nvidia-kmsg-xid79-fallen-off-the-bus.log",
        "runtime-error",
        "GPU has fallen off the bus",
        "reseat",
    ),
    (
        "llama-cpp-vulkan-device-lost.log",
        "runtime-error",
        "vk::DeviceLostError",
        "Mesa",
    ),
];

#[test]
fn every_log_form_reads_with_its_verdict_evidence_and_fix() {
    let dir = format!("{}/fixtures/logs", env!("CARGO_MANIFEST_DIR"));
    let mut untested: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap())
        // fixtures/logs/vllm/ holds the fit calibration logs (tests/fit_vllm.rs).
        .filter(|e| e.path().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !FORMS.iter().any(|(f, ..)| f == n) && !SPEEDS.iter().any(|(f, ..)| f == n))
        .collect();
    untested.sort();
    assert!(untested.is_empty(), "logs without a row: {untested:?}");
    for (log, verdict, evidence, fix) in FORMS {
        let f = facts(log);
        assert_eq!(f.verdict, *verdict, "{log}: {f:#?}");
        let (line, got_fix) = match *verdict {
            "runtime-error" => (f.errors[0].line.clone(), f.errors[0].fix.clone()),
            "all-on-gpu" => (f.gpu_evidence.clone(), f.fix.clone()),
            _ => (f.evidence.clone(), f.fix.clone()),
        };
        assert!(line.contains(evidence), "{log}: evidence {line:?}");
        if fix.is_empty() {
            assert!(
                got_fix.is_empty(),
                "{log}: nothing to fix on the GPU, got {got_fix:?}"
            );
            assert!(!f.cpu_only && !f.partial && f.errors.is_empty(), "{log}");
        } else {
            assert!(got_fix.contains(fix), "{log}: fix {got_fix:?}");
            assert_eq!(
                f.fix, got_fix,
                "{log}: the verdict's fix is its first error's"
            );
        }
    }
}

#[test]
fn runtime_errors_keep_their_code_class_and_backend() {
    for (log, code, class, backend) in [
        (
            "llama-cpp-cuda-oom-cudamalloc.log",
            "cudaErrorMemoryAllocation",
            "out-of-memory",
            "cuda",
        ),
        (
            "torch-cuda-oom-vllm-0.2.5.log",
            "OutOfMemoryError",
            "out-of-memory",
            "cuda",
        ),
        (
            "llama-cpp-vulkan-rtx2060-out-of-device-memory.log",
            "ErrorOutOfDeviceMemory",
            "out-of-memory",
            "vulkan",
        ),
        (
            "llama-cpp-cuda-no-kernel-image-209.log",
            "cudaErrorNoKernelImageForDevice",
            "no-kernel",
            "cuda",
        ),
        (
            "llama-cpp-rocm-invalid-device-function-igpu.log",
            "invalid device function",
            "no-kernel",
            "rocm",
        ),
        (
            "rocm-hip-no-binary-for-gpu-rx6600.log",
            "hipErrorNoBinaryForGpu",
            "no-kernel",
            "rocm",
        ),
        (
            "ipex-sycl-no-kernel-named-46.log",
            "PI_ERROR_INVALID_KERNEL_NAME",
            "no-kernel",
            "sycl",
        ),
        (
            "sycl-pi-error-invalid-binary-42.log",
            "PI_ERROR_INVALID_BINARY",
            "no-kernel",
            "sycl",
        ),
        (
            "llama-cpp-sycl-b70-device-lost.log",
            "UR_RESULT_ERROR_DEVICE_LOST",
            "device-lost",
            "sycl",
        ),
        (
            "ollama-cuda-unspecified-launch-failure.log",
            "cudaErrorLaunchFailure",
            "device-lost",
            "cuda",
        ),
        (
            "nvidia-kmsg-xid79-fallen-off-the-bus.log",
            "Xid 79",
            "device-lost",
            "nvidia",
        ),
        (
            "llama-cpp-vulkan-device-lost.log",
            "ErrorDeviceLost",
            "device-lost",
            "vulkan",
        ),
        (
            "vllm-rocm-platform-then-memory-access-fault.log",
            "Memory access fault by GPU",
            "device-lost",
            "rocm",
        ),
    ] {
        let f = facts(log);
        let e = &f.errors[0];
        assert_eq!(
            (e.code.as_str(), e.class.as_str(), e.backend.as_str()),
            (code, class, backend),
            "{log}"
        );
    }
    // One event, one finding: the Vulkan allocation and its vk:: line share a code.
    let f = facts("llama-cpp-vulkan-rtx2060-out-of-device-memory.log");
    assert_eq!((f.errors.len(), f.errors[0].count), (1, 2));
}

#[test]
fn buffers_and_kv_cache_name_their_device() {
    let f = facts("llama-cpp-cuda-old-full-offload-kv.log");
    assert_eq!(f.buffers, "CPU 1641 MiB, CUDA0 5434 MiB, CUDA1 13990 MiB");
    assert_eq!(f.kv_buffers, "CUDA0 1536 MiB, CUDA1 3584 MiB");
    let f = facts("llama-cpp-sycl-iris-xe-comma-decimals.log");
    assert_eq!(f.gpu_buffer_mib, 4095.05, "a decimal comma is a decimal");
    let f = facts("ollama-cuda-new-engine-device-sizes.log");
    assert_eq!(
        (f.buffers.as_str(), f.kv_buffers.as_str()),
        ("CUDA0 4198 MiB", "CUDA0 1843 MiB")
    );
    let f = facts("llama-cpp-cpu-build-kv-on-cpu.log");
    assert_eq!((f.kv_cpu_mib, f.kv_gpu_mib), (1024.0, 0.0));
}

#[test]
fn near_misses_are_not_errors_or_cpu() {
    for l in [
        // vLLM's advice, not an error
        "INFO 07-17 23:41:30 model_runner.py:851] CUDA graphs can take additional 1~3 GiB memory per GPU. If you are running out of memory, consider decreasing `gpu_memory_utilization` or enforcing eager mode.",
        // llama.cpp's hint after a failed load
        "common_init_from_params: failed to create context with model 'models/large/Apertus-70B-Instruct-2509-IQ4_XS.gguf', try reducing --n-gpu-layers if you're running out of VRAM",
        // vLLM's CPU blocks are swap space
        "INFO 05-25 00:00:40 distributed_gpu_executor.py:45] # GPU blocks: 12344, # CPU blocks: 4096",
        // harmless: it falls back to a plain host allocation (llama.cpp #9271)
        "ggml_vulkan: Failed to allocate pinned memory.",
    ] {
        let mut f = LogFacts::default();
        if let Some(s) = classify(l) {
            f.add(&s, l);
        }
        assert!(
            f.errors.is_empty() && !f.cpu_only && !f.partial,
            "{l}: {f:#?}"
        );
    }
    // A banner alone, a warning alone: nothing said where the work runs.
    let mut f = LogFacts::default();
    let l = "ggml_cuda_init: found 2 ROCm devices (Total VRAM: 31898 MiB):";
    f.add(&classify(l).unwrap(), l);
    assert_eq!(f.verdict, "unknown");
}

#[test]
fn ollama_names_the_skipped_gfx_target_and_what_its_build_lists() {
    let f = facts("ollama-rocm-gfx1032-not-supported-0.3.4.log");
    assert_eq!(f.unsupported_gfx, "gfx1032");
    assert_eq!(
        f.unsupported_supported,
        ["gfx1030", "gfx1100", "gfx1101", "gfx1102"]
    );
    // The override is one the build lists, in the card's own family.
    assert!(
        f.fix.contains("sudo systemctl edit ollama.service"),
        "{}",
        f.fix
    );
    let f = facts("ollama-win-gfx1150-not-supported.log");
    assert_eq!(
        (
            f.unsupported_gfx.as_str(),
            f.unsupported_supported.as_slice()
        ),
        ("gfx1150", ["gfx1103".to_string()].as_slice())
    );
    assert!(!f.fix.contains("HSA_OVERRIDE_GFX_VERSION=11"), "{}", f.fix);
}

/// Issue 12 item 2: the GPU behind each backend device, as the engine
/// names it, and the decode bound from the buffer sizes the same real log
/// printed (the arithmetic is in `src/watch/bound.rs`'s tests).
#[test]
fn issue12_device_names_and_the_bound_from_real_logs() {
    use rigdoctor::watch::bound::{BoundInputs, compute};
    let inputs = |rel: &str| {
        let mut b = BoundInputs::default();
        for l in log_lines(rel) {
            if let Some(s) = classify(&l) {
                b.add(&s);
            }
        }
        b
    };
    let names = |b: &BoundInputs| b.names.clone();
    let s = |a: &str, b: &str| (a.to_string(), b.to_string());
    let a770 = inputs("ipex-llm-llama-cpp-sycl-a770-quickstart.log");
    assert_eq!(
        names(&a770),
        vec![s("SYCL0", "Intel(R) Arc(TM) A770 Graphics")]
    );
    // SYCL0 4095.05 MiB + KV 128 MiB at 512 GB/s; CPU_Mapped 70.31 MiB is the
    // token embeddings of a 33/33 offload.
    let f = compute(&a770, None, None, 0.25);
    assert_eq!(f.decode_tps, Some(115.6), "{}", f.arithmetic);
    assert_eq!(f.bytes_source, "engine-log");
    let two = inputs("llama-cpp-cuda-old-full-offload-kv.log");
    assert_eq!(
        names(&two),
        vec![
            s("0", "NVIDIA GeForce RTX 4070 Ti"),
            s("1", "NVIDIA GeForce RTX 3090 Ti")
        ]
    );
    // (5434.38 + 1536) MiB at 504 GB/s + (13989.53 + 3584) MiB at 1008 GB/s
    // = 14.50 + 18.28 ms; the CPU buffer (token embeddings) is not counted.
    let f = compute(&two, None, None, 0.25);
    assert_eq!(f.ms_per_token, Some(32.783), "{}", f.arithmetic);
    assert_eq!(f.decode_tps, Some(30.5));
    let rocm = inputs("llama-cpp-rocm-invalid-device-function-igpu.log");
    assert_eq!(
        names(&rocm),
        vec![
            s("0", "AMD Radeon RX 9070"),
            s("1", "AMD Radeon 740M Graphics")
        ]
    );
    // Our own real run (llama.cpp CPU build, -lv 4): CPU_Mapped 261.50 MiB
    // + KV 64.00 MiB over host memory at the stated 51.2 GB/s = 6.666 ms,
    // 150.0 tok/s. CPU_REPACK's 193.50 MiB are the same weights laid out
    // again, not counted twice (counting them said 94.1 tok/s).
    let cpu = inputs("llama-cpp-real-cpu-lv4.log");
    let f = compute(&cpu, Some(44.54), None, 0.25);
    assert_eq!(f.ms_per_token, Some(6.666), "{}", f.arithmetic);
    assert_eq!(f.decode_tps, Some(150.0), "{}", f.arithmetic);
    let repack = f.devices.iter().find(|d| d.device == "CPU_REPACK").unwrap();
    assert!(!repack.counted, "{}", f.arithmetic);
    assert!(
        f.arithmetic.contains("CPU_REPACK 193.50 MiB not counted"),
        "{}",
        f.arithmetic
    );
    // A log with buffers but no device name: unknown, never guessed.
    let f = compute(
        &inputs("llama-cpp-cuda-new-full-offload-kv.log"),
        Some(50.0),
        None,
        0.25,
    );
    assert_eq!((f.decode_tps, f.verdict.as_str()), (None, "unknown"));
    assert!(
        f.unknown_why.contains("did not name the GPU behind CUDA0"),
        "{}",
        f.unknown_why
    );
}
