//! `fit`: will a model run on these GPUs, and how. The memory models of the
//! engines are pure arithmetic on a model's shapes (`model`) and the
//! engine's settings; they know nothing of the rig.

pub mod command;
pub mod devices;
pub mod llama_cpp;
pub mod ollama;
pub mod quant;
pub mod split;
pub mod vllm;
