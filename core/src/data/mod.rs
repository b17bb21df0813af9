//! Datasets: the Visual-CoT JSON layout (and, later, benchmarks and the synthetic task).

pub mod synthetic;
pub mod task_tokenizer;
pub mod viscot;

pub use viscot::{Sample, read_viscot, write_viscot};
