//! The GPUs llama.cpp will see on this rig and their free memory, from the
//! same facts as `check` (after derive: `nvidia.visible`, `amd.visible`,
//! `sycl.visible`). One backend per run: CUDA when nvidia-smi lists GPUs,
//! else ROCm, else Intel (SYCL/Level Zero): a llama.cpp build uses one.

use crate::rig::Rig;

/// One device as fit counts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// llama.cpp's device name: `CUDA0`, `ROCm0`, `SYCL0`.
    pub id: String,
    pub name: String,
    pub pci: Option<String>,
    pub total_bytes: u64,
    /// None when no probe reports the VRAM in use.
    pub used_bytes: Option<u64>,
}

impl Device {
    /// What fit may fill: total minus in use, or the total when the use is
    /// unknown (said in the notes).
    pub fn free_bytes(&self) -> u64 {
        self.total_bytes
            .saturating_sub(self.used_bytes.unwrap_or(0))
    }
}

/// The devices an app sees, and those on the rig before the selector.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Devices {
    /// `cuda`, `rocm`, `sycl`, or empty when none.
    pub backend: String,
    pub visible: Vec<Device>,
    /// Every GPU of that backend, selector ignored (for "the selector
    /// halves what you counted").
    pub all: Vec<Device>,
    /// The variable that narrowed the list, with its value.
    pub selector: Option<String>,
    /// Things the reader must know (a GPU without a VRAM size, use unknown).
    pub notes: Vec<String>,
    /// The host's `MemAvailable` (check's host probe), None when unread.
    pub host_available: Option<u64>,
}

fn nvidia(rig: &Rig) -> Option<Devices> {
    let nv = &rig.nvidia;
    if !nv.listed || nv.gpus.is_empty() {
        return None;
    }
    let mut d = Devices {
        backend: "cuda".into(),
        ..Devices::default()
    };
    let mk = |g: &crate::rig::NvidiaGpu, n: usize, notes: &mut Vec<String>| {
        let Some(total) = g.vram_bytes else {
            notes.push(format!(
                "GPU {} ({}): nvidia-smi gives no memory size; not counted",
                g.index, g.name
            ));
            return None;
        };
        Some(Device {
            id: format!("CUDA{n}"),
            name: g.name.clone(),
            pci: Some(g.pci.clone()),
            total_bytes: total,
            used_bytes: g.vram_used_bytes,
        })
    };
    let mut scratch = Vec::new();
    d.all = nv
        .gpus
        .iter()
        .enumerate()
        .filter_map(|(n, g)| mk(g, n, &mut scratch))
        .collect();
    let mut n = 0;
    for idx in &nv.visible.indices {
        if let Some(g) = nv.gpus.iter().find(|g| g.index == *idx)
            && let Some(dev) = mk(g, n, &mut d.notes)
        {
            d.visible.push(dev);
            n += 1;
        }
    }
    if nv.visible.set {
        d.selector = Some(format!(
            "CUDA_VISIBLE_DEVICES={}",
            nv.visible.value.clone().unwrap_or_default()
        ));
    }
    Some(d)
}

fn amd(rig: &Rig) -> Option<Devices> {
    let a = &rig.amd;
    if !a.listed || a.agents.is_empty() {
        return None;
    }
    let mut d = Devices {
        backend: "rocm".into(),
        ..Devices::default()
    };
    let mem = |pci: &Option<String>| -> (Option<u64>, Option<u64>) {
        let Some(p) = pci else { return (None, None) };
        if let Some(g) = rig.gpus.iter().find(|g| &g.pci == p)
            && g.vram_bytes.is_some()
        {
            return (g.vram_bytes, g.vram_used_bytes);
        }
        match a.smi_devices.iter().find(|s| s.pci.as_ref() == Some(p)) {
            Some(s) if s.vram_bytes.is_some() => (s.vram_bytes, s.vram_used_bytes),
            // rocm-smi missing or silent about VRAM: amd-smi, its successor.
            _ => match a.smi.gpus.iter().find(|s| s.pci.as_ref() == Some(p)) {
                Some(s) => (s.vram_bytes, s.vram_used_bytes),
                None => (None, None),
            },
        }
    };
    let mk = |ag: &crate::rig::AmdAgent, n: usize, notes: &mut Vec<String>| {
        if ag.integrated == Some(true) {
            return None;
        }
        let (total, used) = mem(&ag.pci);
        let Some(total) = total else {
            notes.push(format!(
                "ROCm GPU {} ({}): no probe gives its VRAM size; not counted",
                ag.index,
                ag.marketing_name.as_deref().unwrap_or(&ag.name)
            ));
            return None;
        };
        Some(Device {
            id: format!("ROCm{n}"),
            name: ag.marketing_name.clone().unwrap_or_else(|| ag.name.clone()),
            pci: ag.pci.clone(),
            total_bytes: total,
            used_bytes: used,
        })
    };
    let mut scratch = Vec::new();
    let mut n = 0;
    for ag in &a.agents {
        if let Some(dev) = mk(ag, n, &mut scratch) {
            d.all.push(dev);
            n += 1;
        }
    }
    let mut n = 0;
    for idx in &a.visible.indices {
        if let Some(ag) = a.agents.iter().find(|g| g.index == *idx)
            && let Some(dev) = mk(ag, n, &mut d.notes)
        {
            d.visible.push(dev);
            n += 1;
        }
    }
    let var = [
        ("ROCR_VISIBLE_DEVICES", &a.visible.rocr),
        (
            a.visible
                .hip_var
                .as_deref()
                .unwrap_or("HIP_VISIBLE_DEVICES"),
            &a.visible.hip,
        ),
    ];
    let set: Vec<String> = var
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
        .collect();
    if !set.is_empty() {
        d.selector = Some(set.join(" "));
    }
    Some(d)
}

fn intel(rig: &Rig) -> Option<Devices> {
    // The discrete Intel GPUs on the bus, in bus order (Level Zero's order).
    let bus: Vec<&crate::rig::Gpu> = rig
        .gpus
        .iter()
        .filter(|g| g.vendor == "intel" && g.compute && g.discrete == Some(true))
        .collect();
    if bus.is_empty() {
        return None;
    }
    let mut d = Devices {
        backend: "sycl".into(),
        ..Devices::default()
    };
    let mut n = 0;
    for g in &bus {
        let Some(total) = g.vram_bytes else {
            d.notes.push(format!(
                "{} at {}: no probe gives its VRAM size; not counted",
                g.name, g.pci
            ));
            continue;
        };
        d.all.push(Device {
            id: format!("SYCL{n}"),
            name: g.name.clone(),
            pci: Some(g.pci.clone()),
            total_bytes: total,
            used_bytes: g.vram_used_bytes,
        });
        n += 1;
    }
    d.visible = d.all.clone();
    // The selector's view: sycl-ls after ONEAPI_DEVICE_SELECTOR and
    // ZE_AFFINITY_MASK lists discrete Level Zero GPUs without their PCI
    // address; keep that many, in order (Level Zero lists by bus order).
    let s = &rig.sycl;
    if s.listed {
        let seen = s
            .visible
            .iter()
            .filter(|v| v.backend == "level_zero" && v.kind == "gpu" && v.integrated != Some(true))
            .count();
        if seen < d.visible.len() {
            d.visible.truncate(seen);
            let mut sel = Vec::new();
            if let Some(v) = &s.selector {
                sel.push(format!("ONEAPI_DEVICE_SELECTOR={v}"));
            }
            if let Some(v) = rig.env.get("ZE_AFFINITY_MASK") {
                sel.push(format!("ZE_AFFINITY_MASK={v}"));
            }
            if !sel.is_empty() {
                d.selector = Some(sel.join(" "));
            }
        }
    }
    Some(d)
}

pub fn devices(rig: &Rig) -> Devices {
    let mut d = nvidia(rig)
        .or_else(|| amd(rig))
        .or_else(|| intel(rig))
        .unwrap_or_default();
    d.host_available = rig.host.mem_available_bytes;
    for dev in &d.visible {
        if dev.used_bytes.is_none() {
            d.notes.push(format!(
                "{} ({}): no probe reports the VRAM in use; all {} counted as free",
                dev.id,
                dev.name,
                crate::diagnose::human_bytes(dev.total_bytes as f64)
            ));
        }
    }
    d
}
