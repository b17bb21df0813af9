//! Training the LaViT student (burn autodiff): AdamW with decoupled weight decay, warmup +
//! cosine decay, gradient accumulation, global-norm clipping, frozen vision tower,
//! curriculum sensory gating, atomic resumable checkpoints, a JSONL metrics log, and a stop
//! with a clear message on a non-finite loss.

pub mod checkpoint;
pub mod data;
pub mod job;
pub mod optim;
pub mod parallel;
pub mod trainer;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{LavitError, Result};
use crate::io::weights::WeightDtype;
use crate::lavit::gating::GateSchedule;
use crate::lavit::losses::LossWeights;
use crate::lavit::student::{LavitStudent, StudentSample};
use crate::model::lora::{LoraConfig, TrainEmbeddings, cast_frozen_base};
use checkpoint::{load_checkpoint, save_checkpoint};
pub use parallel::{AllReduce, Replicas};
pub use trainer::Trainer;

/// Everything that defines a training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub steps: usize,
    pub lr: f64,
    pub warmup_steps: usize,
    /// Cosine decay from `lr` to `lr · min_lr_ratio` after warmup.
    pub min_lr_ratio: f64,
    pub weight_decay: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub epsilon: f64,
    pub grad_accum: usize,
    /// Global gradient-norm clip (`None` = off).
    pub clip_norm: Option<f64>,
    pub loss: LossWeights,
    pub gate: GateSchedule,
    /// Also gate the prompt text after the image.
    pub gate_prompt: bool,
    pub freeze_vision: bool,
    /// Train LoRA adapters on the text decoder (plus embeddings and heads) instead of all of it.
    pub lora: Option<LoraConfig>,
    /// Checkpoint every N optimiser steps (0 = only at the end).
    pub checkpoint_every: usize,
    pub seed: u64,
    /// Every N steps, also log each loss term's own gradient norm by parameter group
    /// (`term_grads` in metrics.jsonl; 0 = never). Costs one extra forward + backward per
    /// active term on those steps.
    #[serde(default)]
    pub term_grads_every: usize,
    /// Two-stage gating only: restart the learning-rate schedule when the gate opens.
    #[serde(default)]
    pub stage2: Option<Stage2>,
    /// Gradient checkpointing (burn's balanced strategy): memory-bound activations are
    /// recomputed in the backward pass instead of kept; compute-bound ones are still cached.
    /// Same losses and gradients, less memory, more time.
    #[serde(default)]
    pub grad_checkpointing: bool,
    /// LoRA only: store the frozen decoder projections in this dtype (bf16 or f16; the
    /// adapters, norms, embeddings and heads stay f32) — [`crate::model::lora::cast_frozen_base`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_dtype: Option<WeightDtype>,
}

/// The second stage of a two-stage run as a fresh schedule (the reference runs stage 2 as a
/// new run with its own warmup and a lower learning rate).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Stage2 {
    /// Peak learning rate of stage 2.
    pub lr: f64,
    pub warmup_steps: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            steps: 1000,
            lr: 5e-6,
            warmup_steps: 30,
            min_lr_ratio: 0.1,
            weight_decay: crate::defaults::WEIGHT_DECAY,
            beta1: crate::defaults::ADAM_BETAS.0,
            beta2: crate::defaults::ADAM_BETAS.1,
            epsilon: crate::defaults::ADAM_EPSILON,
            grad_accum: 16,
            clip_norm: Some(1.0),
            loss: LossWeights::default(),
            gate: crate::defaults::GATE,
            gate_prompt: true,
            freeze_vision: true,
            lora: None,
            checkpoint_every: 100,
            seed: 0,
            term_grads_every: 0,
            stage2: None,
            grad_checkpointing: false,
            base_dtype: None,
        }
    }
}

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepLog {
    pub step: usize,
    pub lr: f64,
    pub gate: f64,
    pub loss: f64,
    pub ce: Option<f64>,
    pub vtop: Option<f64>,
    pub traj: Option<f64>,
    /// `mean_k −ln(latent k's attention mass on the image)` (attention-target `L_traj`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traj_mass: Option<f64>,
    pub grad_norm: f64,
    pub tokens_per_s: f64,
    /// Each loss term's gradient norm, by parameter group (steps of `term_grads_every`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub term_grads: Option<BTreeMap<String, TermGrads>>,
}

/// One loss term's gradient norm over all trainable parameters and per group: the heads, the
/// text decoder's layers and final norm, the embeddings (and LM head), the vision tower.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TermGrads {
    pub total: f64,
    pub heads: f64,
    pub decoder: f64,
    pub embeddings: f64,
    pub vision: f64,
}

/// Puts every autodiff parameter of `student` under burn's balanced checkpointing strategy,
/// so the whole step's graph (the tensors derived from them) uses it.
pub fn with_checkpointing(student: LavitStudent) -> LavitStudent {
    struct Balanced;
    impl burn::module::ModuleMapper for Balanced {
        fn map_float<const D: usize>(
            &mut self,
            param: burn::module::Param<burn::tensor::Tensor<D>>,
        ) -> burn::module::Param<burn::tensor::Tensor<D>> {
            param.map(|t| {
                if t.is_autodiff() {
                    t.with_gradient_checkpointing_strategy(
                        burn::tensor::GradientCheckpointingStrategy::Balanced,
                    )
                } else {
                    t
                }
            })
        }
    }
    student.map(&mut Balanced)
}

/// The data order: a fresh seeded shuffle per epoch; `(epoch, cursor)` is the resume point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataCursor {
    pub epoch: usize,
    pub index: usize,
}

/// Where a run writes: `checkpoint/`, `metrics.jsonl`.
pub struct RunDir {
    pub dir: PathBuf,
}

impl RunDir {
    pub fn metrics(&self) -> PathBuf {
        self.dir.join("metrics.jsonl")
    }
    pub fn checkpoint(&self) -> PathBuf {
        self.dir.join("checkpoint")
    }
}

/// Locks the run directory `out` (creating it) for this process: a second `lavit train` into
/// it is refused while this one runs ([`crate::io::lock`]).
pub fn lock_run(out: &Path) -> Result<crate::io::lock::DirLock> {
    crate::io::lock::DirLock::acquire(out, ".lavit-train.lock", "lavit train")
}

/// Trains `student` on `samples` (parameters are switched to autodiff here; the returned
/// student is too — call `.valid()` for inference). With `resume`, continues from
/// `out/checkpoint` if present. `on_step` sees each step's log and the updated student
/// (progress bars, periodic exports); returning `false` stops the run at once, without a
/// checkpoint (as a kill would).
pub fn train(
    student: LavitStudent,
    samples: &[StudentSample],
    cfg: &TrainConfig,
    out: &Path,
    resume: bool,
    on_step: &mut dyn FnMut(&StepLog, &LavitStudent) -> bool,
) -> Result<LavitStudent> {
    let single = Replicas::default();
    train_on(student, samples, cfg, out, resume, &single, on_step)
}

/// [`train`] data-parallel over `replicas` ([`parallel`]; none or one device = the student's
/// own): each step's `grad_accum` micro-batches are dealt round-robin to the replicas, each
/// replica computes and sums its gradients on its own device (in its own thread), and the sums
/// are all-reduced on the student's device before one optimiser step there; the updated
/// weights go out to the replicas at the next step. The result equals single-device training
/// with the same `grad_accum` up to float summation order.
pub fn train_on(
    student: LavitStudent,
    samples: &[StudentSample],
    cfg: &TrainConfig,
    out: &Path,
    resume: bool,
    replicas: &Replicas,
    on_step: &mut dyn FnMut(&StepLog, &LavitStudent) -> bool,
) -> Result<LavitStudent> {
    replicas.check(cfg.grad_accum)?;
    check_config(samples, cfg)?;
    let _communication = replicas.context();
    let run = RunDir {
        dir: out.to_path_buf(),
    };
    let _lock = lock_run(out)?;
    let mut trainer = start(student, samples, cfg, &run, resume)?;
    let mut metrics = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(run.metrics())
        .map_err(|e| LavitError::io(run.metrics(), e))?;
    while !trainer.finished() {
        let log = pollster::block_on(trainer.step_on(replicas)).map_err(|e| match e {
            LavitError::NonFinite(m) => LavitError::NonFinite(format!(
                "{m} — the last good checkpoint is in {}",
                run.checkpoint().display()
            )),
            e => e,
        })?;
        let line = serde_json::to_string(&log).expect("log serialises") + "\n";
        metrics
            .write_all(line.as_bytes())
            .map_err(|e| LavitError::io(run.metrics(), e))?;
        if !on_step(&log, trainer.student()) {
            return Ok(trainer.into_student());
        }
        let step = trainer.state().step;
        if step == cfg.steps
            || (cfg.checkpoint_every > 0 && step.is_multiple_of(cfg.checkpoint_every))
        {
            save_checkpoint(
                &run.checkpoint(),
                trainer.student(),
                trainer.optimizer(),
                trainer.state(),
            )?;
        }
        crate::error::failpoint!("train::after_step");
    }
    Ok(trainer.into_student())
}

/// Refuses a run that cannot start: no samples, no steps, a half-precision base without LoRA.
fn check_config(samples: &[StudentSample], cfg: &TrainConfig) -> Result<()> {
    if samples.is_empty() {
        return Err(LavitError::Invalid("no training samples".into()));
    }
    check_base_dtype(cfg)?;
    if cfg.grad_accum == 0 || cfg.steps == 0 {
        return Err(LavitError::Invalid(
            "steps and grad_accum must be positive".into(),
        ));
    }
    Ok(())
}

/// The run's starting point: a fresh [`Trainer`] (LoRA adapters attached if configured), or
/// with `resume` the adapters, AdamW moments and state restored from `run`'s checkpoint.
fn start<'a>(
    student: LavitStudent,
    samples: &'a [StudentSample],
    cfg: &TrainConfig,
    run: &RunDir,
    resume: bool,
) -> Result<Trainer<&'a [StudentSample]>> {
    if resume {
        checkpoint::recover_checkpoint(&run.checkpoint())?;
    }
    if !(resume && run.checkpoint().join("state.json").is_file()) {
        let _ = std::fs::remove_file(run.metrics());
        return Trainer::new(student, samples, cfg.clone());
    }
    let mut student = student;
    if let Some(l) = &cfg.lora {
        student = attach_lora(student, l, cfg.seed)?;
    }
    if let Some(dtype) = cfg.base_dtype {
        student = cast_frozen_base(student, dtype.into());
    }
    let optim = optim::adamw(cfg);
    let (student, mut state, optim) = load_checkpoint(&run.checkpoint(), student, optim)?;
    let changed = changed_fields(&state.config, cfg);
    if !changed.is_empty() {
        tracing::warn!(
            "resuming with settings that differ from the checkpoint's: {} (the new ones apply from step {})",
            changed.join(", "),
            state.step
        );
        state.config = cfg.clone();
    }
    truncate_metrics(&run.metrics(), state.step)?;
    Ok(Trainer::resume(student, optim, state, samples))
}

/// The fields of `new` that differ from `old` (`loss.lambda_traj` style paths).
fn changed_fields(old: &TrainConfig, new: &TrainConfig) -> Vec<String> {
    fn walk(path: &str, a: &serde_json::Value, b: &serde_json::Value, out: &mut Vec<String>) {
        match (a, b) {
            (serde_json::Value::Object(x), serde_json::Value::Object(y)) => {
                let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
                for k in keys {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    let null = serde_json::Value::Null;
                    walk(
                        &p,
                        x.get(k).unwrap_or(&null),
                        y.get(k).unwrap_or(&null),
                        out,
                    );
                }
            }
            _ if a != b => out.push(format!("{path} {a} → {b}")),
            _ => {}
        }
    }
    let mut out = Vec::new();
    let (a, b) = (serde_json::to_value(old), serde_json::to_value(new));
    if let (Ok(a), Ok(b)) = (a, b) {
        walk("", &a, &b, &mut out);
    }
    out
}

/// Attaches LoRA adapters to `student`'s decoder (unless it has them, e.g. from a resumed
/// run) and, with [`TrainEmbeddings::NewTokens`], splits the latent tokens' rows off the
/// embedding table and the LM head so that only they train.
pub fn attach_lora(mut student: LavitStudent, l: &LoraConfig, seed: u64) -> Result<LavitStudent> {
    l.validate().map_err(LavitError::Invalid)?;
    if student.vlm.model.lora_params() == 0 {
        let device = student.vlm.device();
        student.vlm.model = student.vlm.model.apply_lora(l, seed, &device);
    }
    if l.embeddings == TrainEmbeddings::NewTokens {
        let ids = student.lavit.latent_rows();
        student.vlm = student.vlm.split_new_rows(&ids);
    }
    Ok(student)
}

/// [`attach_lora`], the frozen base cast to `cfg.base_dtype` and [`trainable`]: a student
/// ready for its first step under `cfg` (what `lavit bench --what train` times).
pub fn prepare(student: LavitStudent, cfg: &TrainConfig) -> Result<LavitStudent> {
    check_base_dtype(cfg)?;
    let mut student = match &cfg.lora {
        Some(l) => attach_lora(student, l, cfg.seed)?,
        None => student,
    };
    if let Some(dtype) = cfg.base_dtype {
        student = cast_frozen_base(student, dtype.into());
    }
    Ok(trainable(student, cfg))
}

/// A half-precision base needs LoRA: without it the base is what trains.
fn check_base_dtype(cfg: &TrainConfig) -> Result<()> {
    match (cfg.base_dtype, &cfg.lora) {
        (Some(d), None) if d != WeightDtype::F32 => Err(LavitError::Invalid(format!(
            "a {d} frozen base needs LoRA (a LoRA rank): without it every weight trains"
        ))),
        _ => Ok(()),
    }
}

/// Parameters become autodiff-tracked; the vision tower stays frozen by default, the LoRA base
/// frozen (and the embedding table and LM head when the new tokens' rows are split off),
/// checkpointing on where asked.
pub fn trainable(student: LavitStudent, cfg: &TrainConfig) -> LavitStudent {
    let mut student = student.train();
    if cfg.freeze_vision {
        student.vlm.visual = student.vlm.visual.clone().no_grad();
    }
    if cfg.lora.is_some() {
        student.vlm.model = student.vlm.model.freeze_base_for_lora();
    }
    if student.vlm.new_rows.is_some() {
        student.vlm.model.embed_tokens = student.vlm.model.embed_tokens.clone().no_grad();
        student.vlm.lm_head = student.vlm.lm_head.clone().map(|h| h.no_grad());
    }
    if cfg.grad_checkpointing {
        student = with_checkpointing(student);
    }
    student
}

/// Drops metric lines after `step` (a resumed run rewrites them).
fn truncate_metrics(path: &Path, step: usize) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    let kept: String = text
        .lines()
        .filter(|l| serde_json::from_str::<StepLog>(l).is_ok_and(|s| s.step <= step))
        .map(|l| format!("{l}\n"))
        .collect();
    crate::io::checkpoint::write_atomic(path, kept.as_bytes())
}

/// Reads `metrics.jsonl`.
pub fn read_metrics(path: &Path) -> Result<Vec<StepLog>> {
    let text = std::fs::read_to_string(path).map_err(|e| LavitError::Io {
        path: path.into(),
        source: e,
    })?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l).map_err(|e| LavitError::Json {
                path: path.to_path_buf(),
                source: e,
            })
        })
        .collect()
}
