//! The environment variables that steer GPU runtimes, and only those.
//!
//! This allowlist is the privacy boundary of a capture: a name not matched
//! here is never read, never stored, never printed. Names that look like
//! credentials are refused even when a prefix matches (`OLLAMA_API_KEY`).

use std::collections::BTreeMap;

use crate::rig::ProbeReport;
use crate::source::Source;

/// Prefixes of variables read by oneAPI/SYCL/Level Zero, CUDA/NCCL, ROCm/HIP,
/// OpenMP/MPI/oneCCL, IPEX/ipex-llm, ollama and ggml (`GGML_VK_VISIBLE_DEVICES`),
/// and the Vulkan loader and Mesa's device-select layer (`VK_ICD_FILENAMES`,
/// `VK_DRIVER_FILES`, `VK_LOADER_DRIVERS_SELECT`, `MESA_VK_DEVICE_SELECT`).
const PREFIXES: &[&str] = &[
    "ONEAPI_", "SYCL_", "ZE_", "ZES_", "ZEL_", "UR_", "CUDA_", "NCCL_", "HIP_", "ROCR_", "ROCM_",
    "HSA_", "GPU_", "OMP_", "KMP_", "I_MPI_", "CCL_", "FI_", "IPEX_", "BIGDL_", "OLLAMA_", "GGML_",
    "LLAMA_", "VLLM_", "PYTORCH_", "TORCH_", "NVIDIA_", "OCL_", "NEO", "PTI_", "VK_", "MESA_VK_",
];

/// Exact names.
const NAMES: &[&str] = &[
    "PATH",
    "LD_LIBRARY_PATH",
    "LD_PRELOAD",
    "PYTHONPATH",
    "VIRTUAL_ENV",
    "CONDA_PREFIX",
    "CONDA_DEFAULT_ENV",
    "CMPLR_ROOT",
    "MKLROOT",
    "TBBROOT",
    "SETVARS_COMPLETED",
    "USE_XETLA",
    "ENABLE_SDP_FUSION",
    "RenderCompressedBuffersEnabled",
    "DRI_PRIME",
    "CUDA_VISIBLE_DEVICES",
    // Set by systemd-nspawn, LXC and Podman for the container's processes
    // (docker, podman, lxc, systemd-nspawn): probe::container.
    "container",
];

/// Substrings that mark a credential; such a variable is never read.
const SECRET_MARKS: &[&str] = &[
    "TOKEN",
    "SECRET",
    "PASSWORD",
    "PASSWD",
    "PASSPHRASE",
    "PASSKEY",
    "API_KEY",
    "APIKEY",
    "ACCESS_KEY",
    "PRIVATE",
    "CREDENTIAL",
    "AUTH",
    "BEARER",
    "COOKIE",
    "SESSION",
    "SIGNATURE",
];

/// Name endings that mark a credential (`NCCL_IB_PSK`, `CCL_KVS_PASS`,
/// `VLLM_HF_PAT`). Checked on the `_`-separated last word so `..._PATH` or
/// `..._PASSES` stay readable.
const SECRET_SUFFIXES: &[&str] = &["_KEY", "_PASS", "_PW", "_PWD", "_PSK", "_PAT", "_CREDS"];

/// Does this name look like it holds a credential?
pub fn secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    SECRET_MARKS.iter().any(|m| upper.contains(m))
        || SECRET_SUFFIXES.iter().any(|s| upper.ends_with(s))
}

/// Is this variable one rigdoctor may read?
pub fn allowed(name: &str) -> bool {
    if secret_name(name) {
        return false;
    }
    NAMES.contains(&name) || PREFIXES.iter().any(|p| name.starts_with(p))
}

pub fn probe(src: &dyn Source) -> (BTreeMap<String, String>, ProbeReport) {
    let vars: BTreeMap<String, String> = src.env_vars(&allowed).into_iter().collect();
    if let Some((status, detail)) = src.env_problem() {
        return (vars, ProbeReport::new("env", status, 0, detail));
    }
    let detail = format!("{} allowlisted variables", vars.len());
    (vars, ProbeReport::new("env", "ok", 0, detail))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_variables_are_allowed() {
        for n in [
            "ONEAPI_DEVICE_SELECTOR",
            "SYCL_DEVICE_FILTER",
            "ZE_AFFINITY_MASK",
            "ZES_ENABLE_SYSMAN",
            "CUDA_VISIBLE_DEVICES",
            "HSA_OVERRIDE_GFX_VERSION",
            "LD_LIBRARY_PATH",
            "OLLAMA_NUM_GPU",
            "NEOReadDebugKeys",
            "GGML_VK_VISIBLE_DEVICES",
            "VK_ICD_FILENAMES",
            "VK_DRIVER_FILES",
            "VK_LOADER_DRIVERS_SELECT",
            "MESA_VK_DEVICE_SELECT",
            "CUDA_PATH",
            "OMP_NUM_PASSES",
            "ONEAPI_ROOT",
        ] {
            assert!(allowed(n), "{n}");
        }
    }

    #[test]
    fn everything_else_and_credentials_are_refused() {
        for n in [
            "HOME",
            "USER",
            "HF_TOKEN",
            "OPENAI_API_KEY",
            "AWS_SECRET_ACCESS_KEY",
            "OLLAMA_API_KEY",
            "VLLM_API_KEY",
            "GGML_AUTH_TOKEN",
            "SSH_AUTH_SOCK",
            "PATHX",
            "ld_library_path",
            "CCL_KVS_PASS",
            "NCCL_IB_PSK",
            "OLLAMA_PASSPHRASE",
            "VLLM_SSL_PASSKEY",
            "GGML_HF_PAT",
            "OLLAMA_BEARER",
            "VLLM_SESSION_ID",
            "TORCH_PRIVATE_KEY_FILE",
            "OLLAMA_ACCESS_KEY_ID",
            "ZE_DB_PWD",
        ] {
            assert!(!allowed(n), "{n}");
        }
    }
}
