//! AdamW, the learning-rate schedule and global-norm gradient clipping.

use std::collections::HashSet;

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::tensor::FloatDType;

use super::TrainConfig;
use crate::error::Result;
use crate::lavit::gating::GateSchedule;
use crate::util::read_f32;

/// burn's AdamW (decoupled weight decay) with the run's hyper-parameters; clipping is done
/// globally by [`clip_global_norm`], not per tensor.
pub fn adamw(cfg: &TrainConfig) -> ModuleOptimizer {
    AdamWConfig::new()
        .with_beta_1(cfg.beta1 as f32)
        .with_beta_2(cfg.beta2 as f32)
        .with_epsilon(cfg.epsilon as f32)
        .with_weight_decay(cfg.weight_decay as f32)
        .init()
}

/// Linear warmup to `lr`, then cosine decay to `lr · min_lr_ratio` at the last step. With
/// [`TrainConfig::stage2`] and a two-stage gate, each stage is such a schedule of its own:
/// stage 1 over the closed steps, stage 2 (its own peak and warmup) over the rest.
pub fn lr_at(cfg: &TrainConfig, step: usize) -> f64 {
    if let (Some(s2), GateSchedule::TwoStage { closed_steps }) = (cfg.stage2, cfg.gate)
        && closed_steps > 0
        && closed_steps < cfg.steps
    {
        return if step < closed_steps {
            warmup_cosine(
                cfg.lr,
                cfg.warmup_steps,
                closed_steps,
                cfg.min_lr_ratio,
                step,
            )
        } else {
            warmup_cosine(
                s2.lr,
                s2.warmup_steps,
                cfg.steps - closed_steps,
                cfg.min_lr_ratio,
                step - closed_steps,
            )
        };
    }
    warmup_cosine(cfg.lr, cfg.warmup_steps, cfg.steps, cfg.min_lr_ratio, step)
}

fn warmup_cosine(lr: f64, warmup: usize, steps: usize, min_ratio: f64, step: usize) -> f64 {
    if step < warmup {
        return lr * (step + 1) as f64 / warmup as f64;
    }
    let span = steps.saturating_sub(warmup).max(1) as f64;
    let u = ((step - warmup) as f64 / span).min(1.0);
    let min = lr * min_ratio;
    min + (lr - min) * 0.5 * (1.0 + (std::f64::consts::PI * u).cos())
}

/// Each gradient's `Σ g²`, as a `[1]` tensor on the device, in the order the module visits
/// its parameters (each once).
struct SquaredNorms<'a> {
    grads: &'a GradientsParams,
    seen: HashSet<ParamId>,
    sums: Vec<Tensor<1>>,
}

impl ModuleVisitor for SquaredNorms<'_> {
    fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
        if !self.seen.insert(p.id) {
            return;
        }
        if let Some(g) = self.grads.get::<D>(p.id) {
            self.sums.push(g.square().sum().cast(FloatDType::F32));
        }
    }
}

/// L2 norm of the gradients of `module`'s parameters (the ones `grads` holds): every
/// parameter's `Σ g²` on the device, read back in one awaited read-back and added on the host
/// in `f64`, in the module's visiting order.
pub async fn grad_norm<M: Module>(module: &M, grads: &GradientsParams) -> Result<f64> {
    let mut v = SquaredNorms {
        grads,
        seen: HashSet::new(),
        sums: Vec::new(),
    };
    module.visit(&mut v);
    if v.sums.is_empty() {
        return Ok(0.0);
    }
    let sums = read_f32(Tensor::cat(v.sums, 0)).await?;
    Ok(sums.iter().map(|&x| x as f64).sum::<f64>().sqrt())
}

struct Scale<'a> {
    grads: &'a mut GradientsParams,
    seen: HashSet<ParamId>,
    factor: f64,
}

impl ModuleVisitor for Scale<'_> {
    fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
        if !self.seen.insert(p.id) {
            return;
        }
        if let Some(g) = self.grads.remove::<D>(p.id) {
            self.grads.register::<D>(p.id, g * self.factor);
        }
    }
}

/// Global L2 norm of all gradients; when it exceeds `max_norm`, every gradient is scaled by
/// `max_norm / norm` (torch `clip_grad_norm_`). Returns the norm before clipping.
pub async fn clip_global_norm<M: Module>(
    model: &M,
    grads: &mut GradientsParams,
    max_norm: Option<f64>,
) -> Result<f64> {
    let norm = grad_norm(model, grads).await?;
    if let Some(max) = max_norm
        && norm > max
    {
        let factor = max / (norm + 1e-6);
        model.visit(&mut Scale {
            grads,
            seen: HashSet::new(),
            factor,
        });
    }
    Ok(norm)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_warms_up_and_decays() {
        let cfg = TrainConfig {
            steps: 100,
            lr: 1.0,
            warmup_steps: 10,
            min_lr_ratio: 0.1,
            ..Default::default()
        };
        assert!((lr_at(&cfg, 0) - 0.1).abs() < 1e-12);
        assert!((lr_at(&cfg, 9) - 1.0).abs() < 1e-12);
        assert!((lr_at(&cfg, 10) - 1.0).abs() < 1e-12);
        assert!((lr_at(&cfg, 100) - 0.1).abs() < 1e-12);
        assert!(lr_at(&cfg, 50) < lr_at(&cfg, 20));
    }

    /// With `stage2`, the schedule restarts when the two-stage gate opens: a new warmup to the
    /// stage-2 peak, then a cosine to the end.
    #[test]
    fn stage_two_restarts_the_schedule() {
        let cfg = TrainConfig {
            steps: 100,
            lr: 1.0,
            warmup_steps: 10,
            min_lr_ratio: 0.1,
            gate: GateSchedule::TwoStage { closed_steps: 40 },
            stage2: Some(super::super::Stage2 {
                lr: 0.5,
                warmup_steps: 5,
            }),
            ..Default::default()
        };
        assert!((lr_at(&cfg, 9) - 1.0).abs() < 1e-12);
        assert!(
            (lr_at(&cfg, 39) - 0.1).abs() < 0.01,
            "stage 1 decays by its end"
        );
        assert!(
            (lr_at(&cfg, 40) - 0.1).abs() < 1e-12,
            "stage 2 warms up again"
        );
        assert!((lr_at(&cfg, 44) - 0.5).abs() < 1e-12);
        assert!((lr_at(&cfg, 100) - 0.05).abs() < 1e-12);
        let plain = TrainConfig {
            stage2: None,
            ..cfg.clone()
        };
        assert!(
            lr_at(&plain, 40) > 0.5,
            "without stage2 one schedule runs throughout"
        );
    }
}
