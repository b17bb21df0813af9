//! lavit-core: LaViT (latent visual thought alignment) on burn.
//!
//! Everything here is backend-generic: functions take a burn [`Device`](burn::tensor::Device)
//! and never name a concrete backend; `lavit-backends` picks one at run time.
//!
//! * [`model`] — Qwen2.5-VL (vision tower, M-RoPE text decoder), teacher and student alike;
//! * [`io`] — HF `config.json`, safetensors checkpoints, tokenizer, chat template, processor;
//! * [`lavit`] — latent tokens, heads, losses, trajectory targets, curriculum sensory gating;
//! * [`teacher`] — `V_top` / trajectory extraction and the signal store.

pub mod data;
pub mod defaults;
#[cfg(feature = "train")]
pub mod demo;
pub mod error;
pub mod eval;
pub mod infer;
pub mod io;
pub mod lavit;
pub mod model;
#[cfg(feature = "train")]
pub mod perf;
pub mod student;
pub mod teacher;
#[cfg(feature = "train")]
pub mod train;
pub mod util;

pub use error::{LavitError, Result};
