//! llama.cpp's layer split: which device each layer goes to for `-ngl`,
//! `--tensor-split` and `--split-mode layer|none`, and what that puts on
//! each device. Pure arithmetic; the devices are only their free bytes.
//!
//! The behaviour modelled (llama.cpp as vendored in llama-cpp-python
//! 0.3.36; nothing is copied, see docs/fit.md):
//! - `src/llama-model.cpp` `llama_model_base::load_tensors`: the layers are
//!   the `n_layer` blocks plus one output layer (index `n_layer`). The last
//!   `ngl` of those go to the GPUs (`i_gpu_start = max(n_layer + 1 - ngl,
//!   0)`); the input layer (`token_embd`) always stays on the CPU. The GPU
//!   layer `il` goes to the first device whose cumulative, normalised split
//!   is above `(il - i_gpu_start) / act_gpu_layers` (`std::upper_bound`, in
//!   `float`). The split is `--tensor-split` when given and not all zero,
//!   else each device's free memory.
//! - `src/llama.cpp` `llama_model_load`: `--split-mode none` keeps only the
//!   main GPU (`-mg`, default 0).
//! - `src/llama-model-loader.cpp` `create_tensor`: a tied output (no
//!   `output.weight`) duplicates `token_embd` into the output layer's buffer
//!   when that is not the CPU's.
//! - `src/llama-kv-cache.cpp`: each layer's K and V live on its layer's
//!   device (with the default `-kvo`, offload KQV on).

use crate::model::gguf::Gguf;

/// Bytes of the model by llama.cpp layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerSizes {
    /// The input layer (`token_embd`, position and token-type embeddings):
    /// on the CPU whatever `-ngl` says.
    pub input: u64,
    /// Weights of each block `blk.N.*`.
    pub blocks: Vec<u64>,
    /// The output layer's own tensors (`output.weight`, `output_norm.*`,
    /// and any other tensor outside the blocks).
    pub output: u64,
    /// `token_embd`'s bytes when the output is tied to it: a second copy
    /// on the output layer's device when that is a GPU.
    pub tied_output: u64,
    /// KV cache bytes of each block.
    pub kv: Vec<u64>,
    /// Bytes of each block's expert tensors (`ffn_{up,down,gate,gate_up}_exps`
    /// and `_chexps`, llama.cpp's `LLM_FFN_EXPS_REGEX`); 0 for dense blocks.
    pub experts: Vec<u64>,
    /// `--n-cpu-moe N`: the experts of blocks `0..N` stay in host memory
    /// whatever device their block is on (`--cpu-moe`: every block).
    pub cpu_moe: usize,
    /// The matrix tensors of each block and (last) of the output layer, for
    /// `--split-mode row` ([`place_row`]).
    pub rows: Vec<Vec<RowTensor>>,
}

/// One matrix weight as the row split sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowTensor {
    pub ggml_type: u32,
    /// `ne[0]`: elements per row.
    pub ne0: u64,
    /// `ggml_nrows`: `ne[1] × ne[2] × ne[3]`.
    pub nrows: u64,
    pub bytes: u64,
    /// An expert tensor (kept on the host by `--n-cpu-moe`).
    pub expert: bool,
}

impl LayerSizes {
    /// The blocks (`block_count`).
    pub fn n_layer(&self) -> usize {
        self.blocks.len()
    }
    /// Block `il`'s weights that go to its device (its experts stay on the
    /// host under `--n-cpu-moe`).
    pub fn block_on_gpu(&self, il: usize) -> u64 {
        let b = self.blocks[il];
        if il < self.cpu_moe {
            b.saturating_sub(self.experts.get(il).copied().unwrap_or(0))
        } else {
            b
        }
    }
    /// Experts kept on the host by `--n-cpu-moe` for blocks on a GPU.
    fn host_experts(&self, il: usize) -> u64 {
        if il < self.cpu_moe {
            self.experts.get(il).copied().unwrap_or(0)
        } else {
            0
        }
    }
    /// The model has expert tensors.
    pub fn is_moe(&self) -> bool {
        self.experts.iter().any(|&e| e > 0)
    }
}

/// llama.cpp's `LLM_FFN_EXPS_REGEX` (`common/common.h`):
/// `\.ffn_(up|down|gate|gate_up)_(ch|)exps`, searched in the name.
pub fn is_expert(name: &str) -> bool {
    ["up", "down", "gate", "gate_up"].iter().any(|k| {
        name.contains(&format!(".ffn_{k}_exps")) || name.contains(&format!(".ffn_{k}_chexps"))
    })
}

/// Tensors llama.cpp keeps in the input layer (`LLM_TENSOR_LAYER_INPUT` in
/// `src/llama-arch.cpp`).
fn is_input(name: &str) -> bool {
    [
        "token_embd.",
        "pos_embd.",
        "token_types.",
        "per_layer_token_embd.",
    ]
    .iter()
    .any(|p| name.starts_with(p))
}

/// Split the model's tensors by layer. `kv` is the KV cache per block
/// ([`crate::fit::llama_cpp::Kv::layer_bytes`]); its length is the block count.
pub fn layer_sizes(g: &Gguf, kv: &[u64]) -> LayerSizes {
    let n_layer = kv.len();
    let mut s = LayerSizes {
        input: 0,
        blocks: vec![0; n_layer],
        output: 0,
        tied_output: 0,
        kv: kv.to_vec(),
        experts: vec![0; n_layer],
        cpu_moe: 0,
        rows: vec![Vec::new(); n_layer + 1],
    };
    let mut has_output = false;
    let mut embd = None;
    for t in &g.tensors {
        let block = t
            .name
            .strip_prefix("blk.")
            .and_then(|r| r.split('.').next())
            .and_then(|n| n.parse::<usize>().ok());
        let row = row_tensor(t);
        match block {
            Some(b) if b < n_layer => {
                s.blocks[b] = s.blocks[b].saturating_add(t.bytes);
                if is_expert(&t.name) {
                    s.experts[b] = s.experts[b].saturating_add(t.bytes);
                }
                s.rows[b].extend(row);
            }
            // A block past block_count (an MTP/NextN head): llama.cpp
            // loads those with the output; count them there, not lose them.
            Some(_) => {
                s.output = s.output.saturating_add(t.bytes);
                s.rows[n_layer].extend(row);
            }
            None if is_input(&t.name) => {
                s.input = s.input.saturating_add(t.bytes);
                if t.name == "token_embd.weight" {
                    embd = Some(t);
                }
            }
            None => {
                if t.name == "output.weight" {
                    has_output = true;
                }
                s.output = s.output.saturating_add(t.bytes);
                s.rows[n_layer].extend(row);
            }
        }
    }
    if !has_output && let Some(e) = embd {
        s.tied_output = e.bytes;
        s.rows[n_layer].extend(row_tensor(e));
    }
    s
}

/// A tensor the row split divides: a matrix (two or more dimensions with
/// more than one row).
fn row_tensor(t: &crate::model::gguf::TensorInfo) -> Option<RowTensor> {
    let ne0 = *t.dims.first()?;
    let nrows = t
        .dims
        .iter()
        .skip(1)
        .try_fold(1u64, |a, &d| a.checked_mul(d))?;
    (t.dims.len() >= 2 && nrows > 1).then(|| RowTensor {
        ggml_type: t.ggml_type,
        ne0,
        nrows,
        bytes: t.bytes,
        expert: is_expert(&t.name),
    })
}

/// How the user runs llama.cpp.
#[derive(Debug, Clone, PartialEq)]
pub struct SplitSettings {
    /// `-ngl`; None is "all" (llama.cpp's `n_layer + 1`).
    pub ngl: Option<u32>,
    /// `--split-mode none`: only the main GPU (device 0) is used.
    pub single_gpu: bool,
    /// `--tensor-split`; empty or all zero means "by free memory".
    pub tensor_split: Vec<f32>,
    /// `--split-mode row` ([`place_row`]).
    pub row: bool,
    /// `--n-cpu-moe N` (`--cpu-moe`: `u32::MAX`, every block).
    pub cpu_moe: Option<u32>,
}

/// Where each layer goes: `Some(device)` or None for the CPU; `n_layer + 1`
/// entries, the last one the output layer.
pub fn assign(n_layer: usize, ngl: u32, split: &[f32]) -> Vec<Option<usize>> {
    let total = n_layer + 1;
    let n_dev = split.len();
    let ngl = ngl as usize;
    let start = total.saturating_sub(ngl);
    let act = if n_dev == 0 { 0 } else { ngl.min(total) };
    // Cumulative and normalised, in f32 as llama.cpp does it, so a layer on
    // a boundary lands where llama.cpp puts it.
    let mut cum = Vec::with_capacity(n_dev);
    let mut sum = 0.0f32;
    for &x in split {
        sum += x;
        cum.push(sum);
    }
    for c in &mut cum {
        *c /= sum;
    }
    (0..total)
        .map(|il| {
            if il < start || il - start >= act || sum.is_nan() || sum <= 0.0 {
                return None;
            }
            let x = (il - start) as f32 / act as f32;
            let dev = cum.iter().position(|&c| c > x).unwrap_or(n_dev - 1);
            Some(dev)
        })
        .collect()
}

/// The compute buffer estimate split the way the layers are: the device
/// with the output layer holds the logits; every device with a layer holds
/// the activations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compute {
    pub logits: u64,
    pub activations: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceUse {
    /// Layers on the device (the output layer counts as one).
    pub layers: u32,
    pub weights: u64,
    pub kv: u64,
    pub compute: u64,
}

impl DeviceUse {
    pub fn total(&self) -> u64 {
        self.weights
            .saturating_add(self.kv)
            .saturating_add(self.compute)
    }
}

/// What one setting puts where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// `-ngl` as llama.cpp counts it (at most `n_layer + 1`).
    pub ngl: u32,
    /// Per device, in the order given.
    pub devices: Vec<DeviceUse>,
    /// What stays in host memory: the input layer and the CPU layers
    /// (weights and KV; the host compute buffer is not modelled).
    pub host: DeviceUse,
}

impl Placement {
    /// Every device's use is within its free bytes.
    pub fn fits(&self, free: &[u64]) -> bool {
        self.devices.iter().zip(free).all(|(d, &f)| d.total() <= f)
    }
    pub fn gpu_layers(&self) -> u32 {
        self.devices.iter().map(|d| d.layers).sum()
    }
}

/// The split llama.cpp uses: the tensor split when given and not all zero
/// (missing entries are 0), else the free bytes, as f32. With `single_gpu`
/// only the first device counts.
pub fn effective_split(free: &[u64], s: &SplitSettings) -> Vec<f32> {
    let n = if s.single_gpu {
        free.len().min(1)
    } else {
        free.len()
    };
    let given = s.tensor_split.iter().take(n).any(|&x| x != 0.0);
    (0..n)
        .map(|i| {
            if given {
                s.tensor_split.get(i).copied().unwrap_or(0.0)
            } else {
                free[i] as f32
            }
        })
        .collect()
}

/// Place the model for `ngl` layers with `split` (one entry per device).
pub fn place(sizes: &LayerSizes, compute: Compute, ngl: u32, split: &[f32]) -> Placement {
    let n_layer = sizes.n_layer();
    let ngl = ngl.min(n_layer as u32 + 1);
    let where_ = assign(n_layer, ngl, split);
    let mut devices = vec![DeviceUse::default(); split.len()];
    let mut host = DeviceUse {
        weights: sizes.input,
        ..DeviceUse::default()
    };
    for (il, dev) in where_.iter().enumerate() {
        let (w, kv) = if il < n_layer {
            if dev.is_some() {
                host.weights = host.weights.saturating_add(sizes.host_experts(il));
                (sizes.block_on_gpu(il), sizes.kv[il])
            } else {
                (sizes.blocks[il], sizes.kv[il])
            }
        } else {
            let tied = if dev.is_some() { sizes.tied_output } else { 0 };
            (sizes.output.saturating_add(tied), 0)
        };
        let d = match dev {
            Some(i) => &mut devices[*i],
            None => &mut host,
        };
        d.layers += 1;
        d.weights = d.weights.saturating_add(w);
        d.kv = d.kv.saturating_add(kv);
    }
    let out_dev = where_.last().copied().flatten();
    for (i, d) in devices.iter_mut().enumerate() {
        if d.layers > 0 {
            d.compute = compute.activations;
            if out_dev == Some(i) {
                d.compute = d.compute.saturating_add(compute.logits);
            }
        }
    }
    Placement { ngl, devices, host }
}

/// The largest `ngl` (0 ..= n_layer + 1) whose placement fits every
/// device's free bytes with this split; 0 fits always (nothing on a GPU).
pub fn max_ngl(sizes: &LayerSizes, compute: Compute, split: &[f32], free: &[u64]) -> u32 {
    let top = sizes.n_layer() as u32 + 1;
    (0..=top)
        .rev()
        .find(|&n| place(sizes, compute, n, split).fits(free))
        .unwrap_or(0)
}

/// A `--tensor-split` in layers per device that puts every layer on the
/// GPUs within their free bytes, when one exists: each device in turn
/// takes as many whole layers as fit, the last takes the rest and the
/// output layer. Checked by placing it (llama.cpp's split of layer counts
/// gives exactly those counts).
pub fn balanced_split(sizes: &LayerSizes, compute: Compute, free: &[u64]) -> Option<Vec<u32>> {
    let n_layer = sizes.n_layer();
    let total = n_layer + 1;
    let n_dev = free.len();
    if n_dev == 0 {
        return None;
    }
    let layer_bytes = |il: usize| -> u64 {
        if il < n_layer {
            sizes.block_on_gpu(il).saturating_add(sizes.kv[il])
        } else {
            sizes
                .output
                .saturating_add(sizes.tied_output)
                .saturating_add(compute.logits)
        }
    };
    let mut counts = vec![0u32; n_dev];
    let mut il = 0;
    for (d, &f) in free.iter().enumerate() {
        if d == n_dev - 1 {
            counts[d] = (total - il) as u32;
            break;
        }
        let mut used = compute.activations;
        // The output layer is the last device's; this one stops before it.
        while il < n_layer && used.saturating_add(layer_bytes(il)) <= f {
            used = used.saturating_add(layer_bytes(il));
            counts[d] += 1;
            il += 1;
        }
    }
    let split: Vec<f32> = counts.iter().map(|&c| c as f32).collect();
    let p = place(sizes, compute, total as u32, &split);
    (p.gpu_layers() as usize == total && p.fits(free)).then_some(counts)
}

/// The row split's rounding of the rows given to a device, by type (the
/// SYCL backend's `get_row_rounding` in `ggml/src/ggml-sycl/ggml-sycl.cpp`,
/// for Arc-class devices, whose compute capability is above `VER_GEN9`).
fn row_rounding(ty: u32) -> u64 {
    match ty {
        0 | 1 | 30 => 1,      // F32, F16 (BF16 as F16)
        6 | 7 | 8 | 14 => 64, // Q5_0, Q5_1, Q8_0, Q6_K
        _ => 128,             // Q4_0, Q4_1, the other K and IQ types
    }
}

/// ggml-sycl's `MATRIX_ROW_PADDING`: each device's slice is padded by the
/// bytes of `512 - ne0 % 512` elements when `ne0` is not a multiple of 512.
const MATRIX_ROW_PADDING: u64 = 512;

/// The bytes of `t` on each device with row fractions `starts` (device
/// `i`'s rows begin at `nrows × starts[i]`, rounded down to the type's
/// rounding; the last device takes the rest), as `get_row_split` and
/// `ggml_backend_sycl_split_buffer_init_tensor` allocate them.
pub fn row_bytes(t: &RowTensor, starts: &[f32]) -> Vec<u64> {
    let n = starts.len();
    let r = row_rounding(t.ggml_type);
    let row = t.bytes.checked_div(t.nrows).unwrap_or(0);
    let pad = if t.ne0 % MATRIX_ROW_PADDING != 0 {
        crate::model::gguf::row_size(t.ggml_type, MATRIX_ROW_PADDING - t.ne0 % MATRIX_ROW_PADDING)
            .unwrap_or(0)
    } else {
        0
    };
    let at = |i: usize| -> u64 {
        let x = (t.nrows as f64 * f64::from(starts[i])) as u64;
        x - x % r
    };
    (0..n)
        .map(|i| {
            let low = if i == 0 { 0 } else { at(i) };
            let high = if i + 1 == n { t.nrows } else { at(i + 1) };
            let rows = high.saturating_sub(low);
            if rows == 0 {
                0
            } else {
                rows.saturating_mul(row).saturating_add(pad)
            }
        })
        .collect()
}

/// The row fractions the split buffer uses: where each device's rows start,
/// from `--tensor-split` when given (normalised, cumulative from 0), else
/// the backend's default split by total VRAM (`default_tensor_split`).
pub fn row_starts(split: &[f32]) -> Vec<f32> {
    let sum: f32 = split.iter().sum();
    let mut acc = 0.0f32;
    split
        .iter()
        .map(|&x| {
            let s = if sum > 0.0 { acc / sum } else { 0.0 };
            acc += x;
            s
        })
        .collect()
}

/// `--split-mode row` (llama.cpp `src/llama-model.cpp`
/// `make_gpu_buft_list`: each GPU's buffer list starts with the backend's
/// split buffer type; `select_weight_buft` takes it for every weight the
/// backend accepts there): the layers are assigned as for the layer split
/// (their KV, norms and compute on that device), and every matrix of a GPU
/// layer is divided by rows over all the devices by `starts`. Experts kept
/// on the host by `--n-cpu-moe` stay there.
pub fn place_row(
    sizes: &LayerSizes,
    compute: Compute,
    ngl: u32,
    split: &[f32],
    starts: &[f32],
) -> Placement {
    let mut p = place(sizes, compute, ngl, split);
    let n_layer = sizes.n_layer();
    let where_ = assign(n_layer, p.ngl, split);
    for (il, dev) in where_.iter().enumerate() {
        let Some(d) = dev else { continue };
        let Some(ts) = sizes.rows.get(il) else {
            continue;
        };
        for t in ts {
            if t.expert && il < sizes.cpu_moe {
                continue;
            }
            p.devices[*d].weights = p.devices[*d].weights.saturating_sub(t.bytes);
            for (i, b) in row_bytes(t, starts).into_iter().enumerate() {
                if let Some(x) = p.devices.get_mut(i) {
                    x.weights = x.weights.saturating_add(b);
                }
            }
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizes(n: usize, block: u64, kv: u64, output: u64) -> LayerSizes {
        LayerSizes {
            input: 100,
            blocks: vec![block; n],
            output,
            tied_output: 0,
            kv: vec![kv; n],
            experts: vec![0; n],
            cpu_moe: 0,
            rows: vec![Vec::new(); n + 1],
        }
    }

    const NO_COMPUTE: Compute = Compute {
        logits: 0,
        activations: 0,
    };

    #[test]
    fn ngl_takes_the_last_layers_and_the_output_first() {
        // 4 blocks + output; -ngl 1 is the output layer alone, as llama.cpp's
        // "offloading output layer to GPU" then "0 repeating layers".
        let a = assign(4, 1, &[1.0]);
        assert_eq!(a, vec![None, None, None, None, Some(0)]);
        let a = assign(4, 3, &[1.0]);
        assert_eq!(a, vec![None, None, Some(0), Some(0), Some(0)]);
        assert_eq!(assign(4, 0, &[1.0]), vec![None; 5]);
        // More than n_layer + 1 is all of them.
        assert_eq!(assign(4, 99, &[1.0]), vec![Some(0); 5]);
        // No device: everything on the CPU.
        assert_eq!(assign(4, 99, &[]), vec![None; 5]);
    }

    #[test]
    fn even_split_of_33_layers_over_two_cards() {
        // An 8B (32 blocks + output) on two equal cards: 17 / 16 in
        // llama.cpp (layer 16 of 33 is at 0.4848 < 0.5, so device 0).
        let a = assign(32, 33, &[24.0, 24.0]);
        let on0 = a.iter().filter(|d| **d == Some(0)).count();
        let on1 = a.iter().filter(|d| **d == Some(1)).count();
        assert_eq!((on0, on1), (17, 16));
        assert_eq!(a[32], Some(1), "the output layer is on the last device");
    }

    #[test]
    fn layer_counts_as_a_split_give_those_counts() {
        for (n0, n1) in [(1u32, 32u32), (10, 23), (20, 13), (32, 1)] {
            let a = assign(32, 33, &[n0 as f32, n1 as f32]);
            let on0 = a.iter().filter(|d| **d == Some(0)).count() as u32;
            assert_eq!(on0, n0, "--tensor-split {n0},{n1}");
        }
        // A zero entry leaves its device empty.
        let a = assign(4, 5, &[0.0, 1.0]);
        assert!(a.iter().all(|d| *d == Some(1)));
    }

    #[test]
    fn placement_sums_weights_kv_compute_per_device() {
        let s = sizes(4, 10, 2, 7);
        let c = Compute {
            logits: 5,
            activations: 3,
        };
        let p = place(&s, c, 5, &[1.0, 1.0]);
        // 5 layers over 2 equal cards: 0, 1, 2 (0/5, 1/5, 2/5 < 0.5) on
        // device 0; 3 and the output on device 1.
        assert_eq!(p.devices[0].layers, 3);
        assert_eq!(p.devices[0].weights, 30);
        assert_eq!(p.devices[0].kv, 6);
        assert_eq!(p.devices[0].compute, 3);
        assert_eq!(p.devices[1].layers, 2);
        assert_eq!(p.devices[1].weights, 10 + 7);
        assert_eq!(p.devices[1].kv, 2);
        assert_eq!(p.devices[1].compute, 3 + 5);
        assert_eq!(p.host.weights, 100, "token_embd stays on the CPU");
        assert_eq!(p.host.layers, 0);
        // -ngl 2: block 3 and the output on the GPUs, the rest on the host.
        let p = place(&s, c, 2, &[1.0, 1.0]);
        assert_eq!(p.gpu_layers(), 2);
        assert_eq!(p.host.weights, 100 + 30);
        assert_eq!(p.host.kv, 6);
    }

    #[test]
    fn a_tied_output_is_copied_only_onto_a_gpu() {
        let mut s = sizes(2, 10, 0, 1);
        s.tied_output = 50;
        let p = place(&s, NO_COMPUTE, 3, &[1.0]);
        assert_eq!(p.devices[0].weights, 10 + 10 + 1 + 50);
        let p = place(&s, NO_COMPUTE, 2, &[1.0]);
        assert_eq!(p.devices[0].weights, 10 + 1 + 50);
        let p = place(&s, NO_COMPUTE, 0, &[1.0]);
        assert_eq!(p.host.weights, 100 + 20 + 1, "no second copy on the CPU");
    }

    #[test]
    fn max_ngl_is_the_largest_that_fits() {
        let s = sizes(10, 100, 10, 50);
        // One device of 600: the output (50) and 5 blocks (550) = 600.
        assert_eq!(max_ngl(&s, NO_COMPUTE, &[1.0], &[600]), 6);
        assert_eq!(max_ngl(&s, NO_COMPUTE, &[1.0], &[49]), 0);
        assert_eq!(max_ngl(&s, NO_COMPUTE, &[1.0], &[10_000]), 11);
    }

    #[test]
    fn split_follows_free_memory_unless_given() {
        let s = SplitSettings {
            ngl: None,
            single_gpu: false,
            tensor_split: vec![],
            row: false,
            cpu_moe: None,
        };
        assert_eq!(effective_split(&[24, 8], &s), vec![24.0, 8.0]);
        let s = SplitSettings {
            tensor_split: vec![0.0, 0.0],
            ..s
        };
        assert_eq!(effective_split(&[24, 8], &s), vec![24.0, 8.0]);
        let s = SplitSettings {
            tensor_split: vec![3.0],
            ..s
        };
        assert_eq!(effective_split(&[24, 8], &s), vec![3.0, 0.0]);
        let s = SplitSettings {
            single_gpu: true,
            ..s
        };
        assert_eq!(effective_split(&[24, 8], &s), vec![3.0]);
    }

    #[test]
    fn balanced_split_fills_unequal_cards() {
        // 24 + 8 units of room; 30 blocks of 1 and an output of 1.
        let s = sizes(30, 1, 0, 1);
        let free = [24, 8];
        // By free memory (3:1) device 1 gets 8 layers: fits exactly.
        let split = [24.0, 8.0];
        assert!(place(&s, NO_COMPUTE, 31, &split).fits(&free));
        // With compute on both (2 units of logits on the output's device, 1
        // of activations on each) and 26 + 10 of room, the free-memory split
        // puts 23 layers on device 0 and overfills device 1 (7 blocks, the
        // output, 3 of compute: 11); the balanced one moves 2 layers over.
        let c = Compute {
            logits: 2,
            activations: 1,
        };
        let free = [26, 10];
        assert!(!place(&s, c, 31, &[26.0, 10.0]).fits(&free));
        let b = balanced_split(&s, c, &free).unwrap();
        assert_eq!(b, vec![25, 6]);
        let p = place(&s, c, 31, &[25.0, 6.0]);
        assert!(p.fits(&free));
        assert_eq!(p.gpu_layers(), 31);
        assert_eq!(p.devices[1].total(), 9);
        assert_eq!(balanced_split(&s, c, &[10, 10]), None);
    }

    #[test]
    fn row_split_rounds_rows_and_pads_each_slice() {
        // Q4_K, 5120 per row (20 blocks of 144 bytes), 27648 rows, split 3:1:
        // device 1 starts at row 20736 (a multiple of 128).
        let t = RowTensor {
            ggml_type: 12,
            ne0: 5120,
            nrows: 27648,
            bytes: 27648 * 2880,
            expert: false,
        };
        let starts = row_starts(&[3.0, 1.0]);
        assert_eq!(starts, vec![0.0, 0.75]);
        assert_eq!(row_bytes(&t, &starts), vec![20736 * 2880, 6912 * 2880]);
        // Q8_0 rounds to 64 rows: 1000 rows at 0.5 start device 1 at 448.
        let t = RowTensor {
            ggml_type: 8,
            ne0: 4096,
            nrows: 1000,
            bytes: 1000 * 4352,
            expert: false,
        };
        assert_eq!(row_bytes(&t, &[0.0, 0.5]), vec![448 * 4352, 552 * 4352]);
        // 4864 per row is not a multiple of 512: each slice is padded by the
        // bytes of 256 more elements (one Q4_K block, 144 bytes).
        let t = RowTensor {
            ggml_type: 12,
            ne0: 4864,
            nrows: 256,
            bytes: 256 * 19 * 144,
            expert: false,
        };
        assert_eq!(
            row_bytes(&t, &[0.0, 0.5]),
            vec![128 * 19 * 144 + 144, 128 * 19 * 144 + 144]
        );
        // A device with no rows gets nothing, not the padding.
        assert_eq!(row_bytes(&t, &[0.0, 1.0])[1], 0);
    }
}
