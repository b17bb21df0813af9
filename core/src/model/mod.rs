//! Qwen2.5-VL in burn: the one model type that serves as teacher and student.

pub mod attention;
pub mod config;
pub mod init;
pub mod lora;
pub mod mlp;
pub mod new_rows;
pub mod rope;
pub mod text;
pub mod vision;
pub mod vlm;

pub use attention::RowCapture;
pub use config::{Qwen25VlConfig, TextConfig, VisionConfig};
pub use text::KvCache;
pub use vlm::{ForwardOptions, LogitRows, Qwen25Vl, VlmInputs, VlmOutput};
