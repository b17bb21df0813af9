//! AdamW, the learning-rate schedule and global-norm gradient clipping.

use std::collections::HashSet;

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;

use super::TrainConfig;

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

/// Linear warmup to `lr`, then cosine decay to `lr · min_lr_ratio` at the last step.
pub fn lr_at(cfg: &TrainConfig, step: usize) -> f64 {
    if step < cfg.warmup_steps {
        return cfg.lr * (step + 1) as f64 / cfg.warmup_steps as f64;
    }
    let span = cfg.steps.saturating_sub(cfg.warmup_steps).max(1) as f64;
    let u = ((step - cfg.warmup_steps) as f64 / span).min(1.0);
    let min = cfg.lr * cfg.min_lr_ratio;
    min + (cfg.lr - min) * 0.5 * (1.0 + (std::f64::consts::PI * u).cos())
}

struct SquaredNorm<'a> {
    grads: &'a GradientsParams,
    seen: HashSet<ParamId>,
    acc: f64,
}

impl ModuleVisitor for SquaredNorm<'_> {
    fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
        if !self.seen.insert(p.id) {
            return;
        }
        if let Some(g) = self.grads.get::<D>(p.id) {
            self.acc += g.square().sum().into_scalar::<f32>() as f64;
        }
    }
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
pub fn clip_global_norm<M: Module>(
    model: &M,
    grads: &mut GradientsParams,
    max_norm: Option<f64>,
) -> f64 {
    let mut v = SquaredNorm {
        grads,
        seen: HashSet::new(),
        acc: 0.0,
    };
    model.visit(&mut v);
    let norm = v.acc.sqrt();
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
    norm
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
}
