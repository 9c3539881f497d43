//! ollama's service against this shell: the variables the server reads
//! that the user exported here but the service runs without (systemd
//! starts it with the unit's environment, never a login shell's).

use crate::rig::{Rig, ShellOnlyVar};

/// Variables `ollama serve` (or the runtimes it loads) reads. Not
/// `OLLAMA_HOST`: the CLI client reads it too, to find the server.
fn server_reads(name: &str) -> bool {
    (name.starts_with("OLLAMA_") && name != "OLLAMA_HOST")
        || [
            "CUDA_VISIBLE_DEVICES",
            "HIP_VISIBLE_DEVICES",
            "ROCR_VISIBLE_DEVICES",
            "GPU_DEVICE_ORDINAL",
            "HSA_OVERRIDE_GFX_VERSION",
            "ONEAPI_DEVICE_SELECTOR",
            "ZE_AFFINITY_MASK",
            "GGML_VK_VISIBLE_DEVICES",
        ]
        .contains(&name)
}

pub fn derive(rig: &mut Rig) {
    let env = rig.env.clone();
    let Some(svc) = rig.ollama_service.as_mut() else {
        return;
    };
    let (seen, service_env) = match &svc.process_env {
        Some(p) => ("process", p.clone()),
        None => ("unit", svc.env.clone()),
    };
    svc.shell_only = env
        .iter()
        .filter(|(k, _)| server_reads(k))
        .filter(|(k, v)| service_env.get(*k) != Some(v))
        .take(32)
        .map(|(k, v)| ShellOnlyVar {
            name: k.clone(),
            shell: v.clone(),
            service: service_env.get(k).cloned(),
            seen_in: seen.into(),
        })
        .collect();
}
