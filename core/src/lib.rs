//! lavit-core: LaViT (latent visual thought alignment) on burn.
//!
//! Everything here is backend-generic: functions take a burn [`Device`](burn::tensor::Device)
//! and never name a concrete backend; `lavit-backends` picks one at run time.
//!
//! * [`model`] — Qwen2.5-VL: vision tower, M-RoPE text decoder, attention (teacher and student);
//! * [`io`] — HF `config.json`, safetensors checkpoints, tokenizer, chat template, image processor;
//! * [`lavit`] — the method: latent tokens, heads, losses and their targets, gating, the bottleneck;
//! * [`teacher`] — `V_top` / trajectory extraction (whole or layer-streamed) and the signal store;
//! * [`train`] — the training step in memory ([`train::Trainer`]), optimiser, checkpoints,
//!   samples, a whole run ([`train::job`]);
//! * [`infer`] — generation with a KV cache and the latent tokens' read-out;
//! * [`eval`] — grading, gaze and grounding metrics, the MMVP / BLINK / V* / MMStar readers;
//! * [`bundle`] — a model as a user holds it (teacher or student, with tokenizer and processor);
//! * [`data`] — Visual-CoT datasets, the synthetic task generator and its tokenizer;
//! * [`demo`] — `lavit demo`: the whole pipeline on the synthetic task, its reports, and one
//!   student trained live in memory (the browser's Train panel);
//! * [`perf`] — the workloads `lavit bench` times, and its run;
//! * [`defaults`] — the method's defaults, in one place;
//! * [`error`] — the library's typed errors;
//! * [`util`] — small tensor helpers.

pub mod bundle;
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
pub mod teacher;
#[cfg(feature = "train")]
pub mod train;
pub mod util;

pub use error::{LavitError, Result};
