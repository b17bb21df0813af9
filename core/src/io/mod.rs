//! Reading and writing what Hugging Face checkpoints are made of: `config.json`,
//! safetensors weights, `tokenizer.json`, the chat template and the image processor.

pub mod chat;
pub mod checkpoint;
pub mod config;
#[cfg(not(target_arch = "wasm32"))]
pub mod hub;
pub mod lock;
pub mod processor;
pub mod tensors;
pub mod weights;

pub use chat::{ChatTokenizer, Content, Message};
pub use checkpoint::{Checkpoint, load_model};
pub use processor::{ProcessedImage, ProcessorConfig};
