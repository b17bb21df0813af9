//! Seeded parameter initialisation on the host.
//!
//! burn's initialisers draw from the device's global RNG, and burn parameters are lazy: they
//! are drawn on first use. Two models built concurrently in one process (tests, a demo that
//! trains several students) would then interleave their draws and differ from run to run.
//! Everything we initialise ourselves — LaViT heads, LoRA adapters, fresh checkpoints — draws
//! from an explicit seeded RNG instead, so the same seed gives the same model on every backend.

use burn::module::Param;
use burn::nn::Linear;
use burn::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};

/// A seeded source of initial parameter values.
pub struct SeededInit {
    rng: StdRng,
}

impl SeededInit {
    pub fn new(seed: u64) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// `U(-bound, bound)` of `shape`.
    pub fn uniform<const D: usize>(
        &mut self,
        shape: [usize; D],
        bound: f64,
        device: &Device,
    ) -> Tensor<D> {
        let b = bound as f32;
        self.draw(shape, device, |rng| rng.random_range(-b..=b))
    }

    /// `N(0, std²)` of `shape`.
    pub fn normal<const D: usize>(
        &mut self,
        shape: [usize; D],
        std: f64,
        device: &Device,
    ) -> Tensor<D> {
        let dist = Normal::new(0.0f32, std as f32).expect("a finite, non-negative std");
        self.draw(shape, device, |rng| dist.sample(rng))
    }

    fn draw<const D: usize>(
        &mut self,
        shape: [usize; D],
        device: &Device,
        mut sample: impl FnMut(&mut StdRng) -> f32,
    ) -> Tensor<D> {
        let n = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| sample(&mut self.rng)).collect();
        Tensor::from_data(TensorData::new(v, shape), device)
    }

    /// A `Linear(d_in, d_out)` with bias, drawn like burn's `LinearConfig` default and
    /// PyTorch's `nn.Linear`: weight and bias `U(-k, k)`, `k = 1/√d_in`.
    pub fn linear(&mut self, d_in: usize, d_out: usize, device: &Device) -> Linear {
        let k = 1.0 / (d_in as f64).sqrt();
        Linear {
            weight: Param::from_tensor(self.uniform([d_in, d_out], k, device)),
            bias: Some(Param::from_tensor(self.uniform([d_out], k, device))),
        }
    }
}

/// HF-style initialisation (`_init_weights` of Qwen2.5-VL): weights `N(0, std)`, biases 0,
/// norm scales 1.
struct HfInit {
    path: Vec<String>,
    std: f64,
    init: SeededInit,
    /// Dtype of the frozen LoRA base's matrices ([`super::lora::is_frozen_base`]), if cast.
    base: Option<burn::tensor::DType>,
}

impl burn::module::ModuleMapper for HfInit {
    fn enter_module(&mut self, name: &str, _container: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container: &str) {
        self.path.pop();
    }
    fn map_float<const D: usize>(
        &mut self,
        param: burn::module::Param<Tensor<D>>,
    ) -> burn::module::Param<Tensor<D>> {
        let path = self.path.join(".");
        let std = self.std;
        let init = &mut self.init;
        let base = self
            .base
            .filter(|_| D == 2 && super::lora::is_frozen_base(&path));
        param.map(|t| {
            let (dims, device) = (t.dims(), t.device());
            let dtype = base.unwrap_or(t.dtype());
            if D == 1 {
                if path.contains("norm") || path.contains("ln_q") {
                    Tensor::ones(dims, &device)
                } else {
                    Tensor::zeros(dims, &device)
                }
            } else {
                init.normal(dims, std, &device).cast(dtype)
            }
        })
    }
}

/// Re-initialises every parameter of `m` the way HF does for a fresh model, drawing from
/// `seed`.
pub fn hf_init<M: burn::module::Module>(m: M, std: f64, seed: u64) -> M {
    hf_init_with_base(m, std, seed, None)
}

/// [`hf_init`] with the text decoder's projection matrices drawn straight into `base` (e.g.
/// bf16 for a half-precision frozen LoRA base), one tensor at a time: the model never exists
/// in f32 as a whole. Same values as [`hf_init`] then a cast.
pub fn hf_init_with_base<M: burn::module::Module>(
    m: M,
    std: f64,
    seed: u64,
    base: Option<burn::tensor::DType>,
) -> M {
    m.map(&mut HfInit {
        path: vec![],
        std,
        init: SeededInit::new(seed),
        base,
    })
}
