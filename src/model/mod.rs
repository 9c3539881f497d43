//! Model files, read for their shapes only (never the weights): what `fit`
//! needs to predict the memory a model takes. Below derive in the pipeline:
//! it reads a file the user named and knows nothing of the rig.

pub mod gguf;
pub mod safetensors;
