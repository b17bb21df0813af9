//! The training loop held in memory: a student, its AdamW state and the data order, advanced
//! one optimiser step at a time.
//!
//! A [`Trainer`] touches no filesystem and reads the device back only through awaited
//! read-backs — one per micro-batch (its loss terms together) and one per step (every
//! gradient's `Σ g²` together, for the clipping norm) — and keeps time with `web_time`, so the
//! same step runs natively, where [`super::train_on`] blocks on it and writes checkpoints and
//! metrics around it, and in a browser on WebGPU, where a buffer can only be mapped
//! asynchronously and there is no file to write.

use std::collections::BTreeMap;

use burn::optim::{GradientsAccumulator, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::tensor::FloatDType;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use web_time::Instant;

use super::checkpoint::TrainState;
use super::optim::{clip_global_norm, grad_norm, lr_at};
use super::{DataCursor, Replicas, StepLog, TermGrads, TrainConfig, parallel};
use crate::error::{LavitError, Result};
use crate::lavit::student::{LavitStudent, StudentSample, sample_losses};
use crate::util::read_f32;

/// A run in memory: call [`Trainer::step`] until [`Trainer::finished`].
pub struct Trainer<S> {
    /// `None` only inside a step, while the optimiser owns it.
    student: Option<LavitStudent>,
    optim: ModuleOptimizer,
    state: TrainState,
    order: Vec<usize>,
    samples: S,
}

impl<S: AsRef<[StudentSample]>> Trainer<S> {
    /// A fresh run of `cfg` on `samples`: LoRA adapters attached and the frozen base cast
    /// where `cfg` asks ([`super::prepare`]), a new AdamW, step 0.
    pub fn new(student: LavitStudent, samples: S, cfg: TrainConfig) -> Result<Self> {
        super::check_config(samples.as_ref(), &cfg)?;
        let student = super::prepare(student, &cfg)?;
        let state = TrainState {
            step: 0,
            cursor: DataCursor { epoch: 0, index: 0 },
            seed: cfg.seed,
            config: cfg,
        };
        let optim = super::optim::adamw(&state.config);
        Ok(Self::with_state(student, optim, state, samples))
    }

    /// A run continued at `state` (its config is the run's) with `optim`'s moments: what a
    /// loaded checkpoint gives. `student` has its adapters already; it is made trainable here.
    pub fn resume(
        student: LavitStudent,
        optim: ModuleOptimizer,
        state: TrainState,
        samples: S,
    ) -> Self {
        let student = super::trainable(student, &state.config);
        Self::with_state(student, optim, state, samples)
    }

    fn with_state(
        student: LavitStudent,
        optim: ModuleOptimizer,
        state: TrainState,
        samples: S,
    ) -> Self {
        let order = epoch_order(
            samples.as_ref().len(),
            state.config.seed,
            state.cursor.epoch,
        );
        Self {
            student: Some(student),
            optim,
            state,
            order,
            samples,
        }
    }

    /// The student after the steps done so far (autodiff parameters; `.valid()` to answer).
    pub fn student(&self) -> &LavitStudent {
        self.student
            .as_ref()
            .expect("the student is only lent out inside a step")
    }

    pub fn into_student(self) -> LavitStudent {
        self.student
            .expect("the student is only lent out inside a step")
    }

    pub fn optimizer(&self) -> &ModuleOptimizer {
        &self.optim
    }

    /// Steps done, data cursor, seed and config: what a checkpoint's `state.json` holds.
    pub fn state(&self) -> &TrainState {
        &self.state
    }

    pub fn config(&self) -> &TrainConfig {
        &self.state.config
    }

    /// Whether every step of the config has been taken.
    pub fn finished(&self) -> bool {
        self.state.step >= self.state.config.steps
    }

    /// One optimiser step on this device.
    pub async fn step(&mut self) -> Result<StepLog> {
        self.step_on(&Replicas::default()).await
    }

    /// One optimiser step: the next `grad_accum` samples' forward and backward passes (dealt
    /// to `replicas` when there are several), global-norm clipping, the AdamW update. A
    /// non-finite loss or gradient norm is an error, and the student stays as it was.
    pub async fn step_on(&mut self, replicas: &Replicas) -> Result<StepLog> {
        let samples = self.samples.as_ref();
        let cfg = &self.state.config;
        let step = self.state.step;
        let batch = next_batch(&mut self.state.cursor, &mut self.order, samples.len(), cfg);
        let student = self.student.as_ref().expect("a student between steps");
        let t0 = Instant::now();
        // The bottleneck keeps the gate closed throughout (sample_losses applies it too).
        let g = if student.lavit.bottleneck {
            0.0
        } else {
            cfg.gate.open_fraction(step)
        };
        let per_term = if cfg.term_grads_every > 0 && step.is_multiple_of(cfg.term_grads_every) {
            Some(term_grads(student, &samples[batch[0]], cfg, g).await?)
        } else {
            None
        };
        let micro = if replicas.parallel() {
            parallel::data_parallel(student, replicas, &batch, samples, cfg, g)?
        } else {
            micro_batches(student, &batch, samples, cfg, g, false).await?
        };
        if let Some(i) = micro.non_finite {
            return Err(LavitError::NonFinite(format!(
                "non-finite loss at step {step} (sample {i}); stopped"
            )));
        }
        let mut acc = micro.acc;
        let mut grads = acc.grads();
        let grad_norm = clip_global_norm(student, &mut grads, cfg.clip_norm).await?;
        if !grad_norm.is_finite() {
            return Err(LavitError::NonFinite(format!(
                "non-finite gradient norm at step {step}; stopped before updating"
            )));
        }
        let lr = lr_at(cfg, step);
        let student = self.student.take().expect("a student between steps");
        self.student = Some(self.optim.step(lr, student, grads));
        self.state.step += 1;
        Ok(StepLog {
            step: step + 1,
            lr,
            gate: g,
            loss: micro.sum,
            ce: micro.ce,
            vtop: micro.vtop,
            traj: micro.traj,
            traj_mass: micro.traj_mass,
            grad_norm,
            tokens_per_s: micro.tokens as f64 / t0.elapsed().as_secs_f64().max(1e-9),
            term_grads: per_term,
        })
    }
}

/// The summed gradients and loss statistics of some micro-batches of one step (each loss
/// scaled by `1 / grad_accum`).
pub(super) struct MicroBatches {
    pub(super) acc: GradientsAccumulator<LavitStudent>,
    sum: f64,
    ce: Option<f64>,
    vtop: Option<f64>,
    traj: Option<f64>,
    traj_mass: Option<f64>,
    tokens: usize,
    /// The first sample whose loss was not finite.
    pub(super) non_finite: Option<usize>,
}

impl MicroBatches {
    /// Adds `m`'s loss statistics (not its gradients) to these.
    pub(super) fn add_stats(&mut self, m: MicroBatches) {
        self.sum += m.sum;
        for (mine, theirs) in [
            (&mut self.ce, m.ce),
            (&mut self.vtop, m.vtop),
            (&mut self.traj, m.traj),
            (&mut self.traj_mass, m.traj_mass),
        ] {
            if let Some(v) = theirs {
                *mine.get_or_insert(0.0) += v;
            }
        }
        self.tokens += m.tokens;
        self.non_finite = self.non_finite.or(m.non_finite);
    }

    pub(super) fn empty() -> Self {
        Self {
            acc: GradientsAccumulator::new(),
            sum: 0.0,
            ce: None,
            vtop: None,
            traj: None,
            traj_mass: None,
            tokens: 0,
            non_finite: None,
        }
    }
}

/// Forward + backward of the samples `batch` (indices into `samples`) on `student`. A
/// non-finite loss ends the micro-batches there, unless `finish` (a collective all-reduce:
/// every replica must run every backward pass). Each sample's loss and its terms come back in
/// one read-back.
pub(super) async fn micro_batches(
    student: &LavitStudent,
    batch: &[usize],
    samples: &[StudentSample],
    cfg: &TrainConfig,
    g: f64,
    finish: bool,
) -> Result<MicroBatches> {
    let mut out = MicroBatches::empty();
    let n = cfg.grad_accum as f64;
    for &i in batch {
        let parts = sample_losses(student, &samples[i], &cfg.loss, g, cfg.gate_prompt)?;
        let total = parts.total / n;
        let terms = [parts.ce, parts.vtop, parts.traj, parts.traj_mass];
        let values = read_scalars(
            std::iter::once(Some(&total))
                .chain(terms.iter().map(Option::as_ref))
                .flatten(),
        )
        .await?;
        let value = values[0] as f64;
        if !value.is_finite() {
            out.non_finite = out.non_finite.or(Some(i));
            if !finish {
                return Ok(out);
            }
        }
        out.sum += value;
        let mut read = values[1..].iter();
        for (t, acc) in terms.iter().zip([
            &mut out.ce,
            &mut out.vtop,
            &mut out.traj,
            &mut out.traj_mass,
        ]) {
            if t.is_some() {
                let v = *read.next().expect("one value per present term");
                *acc.get_or_insert(0.0) += v as f64 / n;
            }
        }
        out.tokens += parts.tokens;
        let grads = GradientsParams::from_grads(total.backward(), student);
        out.acc.accumulate(student, grads);
    }
    Ok(out)
}

/// The values of some `[1]` tensors, detached, in one read-back.
async fn read_scalars<'a>(ts: impl Iterator<Item = &'a Tensor<1>>) -> Result<Vec<f32>> {
    let list: Vec<Tensor<1>> = ts
        .map(|t| t.clone().detach().reshape([1]).cast(FloatDType::F32))
        .collect();
    read_f32(Tensor::cat(list, 0)).await
}

/// The gradient of each active loss term of `sample`, taken on its own.
async fn term_grads(
    student: &LavitStudent,
    sample: &StudentSample,
    cfg: &TrainConfig,
    g: f64,
) -> Result<BTreeMap<String, TermGrads>> {
    let mut out = BTreeMap::new();
    for term in ["ce", "vtop", "traj"] {
        let parts = sample_losses(student, sample, &cfg.loss, g, cfg.gate_prompt)?;
        let t = match term {
            "ce" => parts.ce,
            "vtop" => parts.vtop,
            _ => parts.traj,
        };
        let Some(t) = t else { continue };
        let grads = GradientsParams::from_grads(t.backward(), student);
        let m = &student.vlm.model;
        let heads = grad_norm(&student.vtop_head, &grads)
            .await?
            .hypot(grad_norm(&student.traj_head, &grads).await?);
        let decoder = grad_norm(&m.layers, &grads)
            .await?
            .hypot(grad_norm(&m.norm, &grads).await?);
        let mut embeddings = grad_norm(&m.embed_tokens, &grads).await?;
        if let Some(h) = &student.vlm.lm_head {
            embeddings = embeddings.hypot(grad_norm(h, &grads).await?);
        }
        if let Some(r) = &student.vlm.new_rows {
            embeddings = embeddings.hypot(grad_norm(r, &grads).await?);
        }
        out.insert(
            term.to_string(),
            TermGrads {
                total: grad_norm(student, &grads).await?,
                heads,
                decoder,
                embeddings,
                vision: grad_norm(&student.vlm.visual, &grads).await?,
            },
        );
    }
    Ok(out)
}

/// The data order: a fresh seeded shuffle per epoch.
pub(super) fn epoch_order(n: usize, seed: u64, epoch: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = StdRng::seed_from_u64(seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    order.shuffle(&mut rng);
    order
}

/// The next step's `grad_accum` sample indices in data order, starting a new seeded epoch
/// order when one runs out.
fn next_batch(
    cursor: &mut DataCursor,
    order: &mut Vec<usize>,
    n: usize,
    cfg: &TrainConfig,
) -> Vec<usize> {
    let mut batch = Vec::with_capacity(cfg.grad_accum);
    for _ in 0..cfg.grad_accum {
        if cursor.index >= order.len() {
            *cursor = DataCursor {
                epoch: cursor.epoch + 1,
                index: 0,
            };
            *order = epoch_order(n, cfg.seed, cursor.epoch);
        }
        batch.push(order[cursor.index]);
        cursor.index += 1;
    }
    batch
}
