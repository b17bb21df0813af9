//! The cross-crate test suite in one binary (one link of burn instead of one per file). The
//! precision tests are separate binaries: a device's float dtype is set once per process.

mod backends;
mod bottleneck;
mod conformance;
mod gating;
mod generation;
mod hf_parity;
mod layering;
mod losses;
mod matmul;
mod model_gradients;
mod qwen_tokenizer;
mod student;
mod teacher;
mod training;
