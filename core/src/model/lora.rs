//! Linear projections with an optional LoRA adapter (Hu et al. 2021):
//! `y = x Wᵀ + b + (α / r) · x Aᵀ Bᵀ`, `A ~ Kaiming`, `B = 0` at start, merged into `W` on
//! export. The frozen base stays a burn `Linear`, so checkpoints load unchanged (the loader
//! maps `*_proj.weight` to `*_proj.inner.weight`).

use burn::module::Param;
use burn::nn::Linear;

use super::init::SeededInit;
use burn::prelude::*;
use serde::{Deserialize, Serialize};

/// The low-rank update of one projection (burn orientation: `a [in, r]`, `b [r, out]`).
#[derive(Module, Debug)]
pub struct Lora {
    pub a: Param<Tensor<2>>,
    pub b: Param<Tensor<2>>,
    pub scale: f64,
}

/// A projection: the base `Linear` plus an optional LoRA update.
#[derive(Module, Debug)]
pub struct Proj {
    pub inner: Linear,
    pub lora: Option<Lora>,
}

impl Proj {
    pub fn new(inner: Linear) -> Self {
        Self { inner, lora: None }
    }

    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let y = self.inner.forward(x.clone());
        match &self.lora {
            None => y,
            Some(l) => {
                let a = l.a.val().unsqueeze::<D>();
                let b = l.b.val().unsqueeze::<D>();
                y + x.matmul(a).matmul(b) * l.scale
            }
        }
    }

    /// Attaches a fresh adapter of rank `r`: `A ~ U(-1/√d_in, 1/√d_in)` (PEFT's
    /// Kaiming-uniform), `B = 0`, so the adapted layer starts equal to the base one.
    pub fn with_lora(
        mut self,
        r: usize,
        alpha: f64,
        init: &mut SeededInit,
        device: &Device,
    ) -> Self {
        let [d_in, d_out] = self.inner.weight.dims();
        let a = Param::from_tensor(init.uniform([d_in, r], 1.0 / (d_in as f64).sqrt(), device));
        let b = Param::from_tensor(Tensor::zeros([r, d_out], device));
        self.lora = Some(Lora {
            a,
            b,
            scale: alpha / r as f64,
        });
        self
    }

    /// Folds the adapter into the base weight (`W += (α/r) A B`) and drops it.
    pub fn merge(mut self) -> Self {
        if let Some(l) = self.lora.take() {
            let w = self.inner.weight.val() + l.a.val().matmul(l.b.val()) * l.scale;
            self.inner.weight = Param::from_tensor(w);
        }
        self
    }

    /// Parameters of the adapter (0 without one).
    pub fn lora_params(&self) -> usize {
        self.lora
            .as_ref()
            .map(|l| l.a.dims().iter().product::<usize>() + l.b.dims().iter().product::<usize>())
            .unwrap_or(0)
    }
}

/// LoRA settings: rank, alpha and which text-decoder projections get an adapter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoraConfig {
    pub rank: usize,
    pub alpha: f64,
    /// Any of `q_proj k_proj v_proj o_proj gate_proj up_proj down_proj`.
    pub targets: Vec<String>,
}

impl Default for LoraConfig {
    fn default() -> Self {
        Self {
            rank: 16,
            alpha: 32.0,
            targets: Self::ALL_TARGETS.map(String::from).to_vec(),
        }
    }
}

impl LoraConfig {
    pub const ALL_TARGETS: [&'static str; 7] = [
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    ];

    pub fn validate(&self) -> Result<(), String> {
        if self.rank == 0 {
            return Err("LoRA rank must be positive".into());
        }
        if let Some(t) = self
            .targets
            .iter()
            .find(|t| !Self::ALL_TARGETS.contains(&t.as_str()))
        {
            return Err(format!(
                "unknown LoRA target `{t}` (one of {})",
                Self::ALL_TARGETS.join(", ")
            ));
        }
        Ok(())
    }
}

impl LoraConfig {
    /// Adapter parameters this config adds to a decoder of shape `t`: `r · (in + out)` per
    /// targeted projection per layer.
    pub fn param_count(&self, t: &super::config::TextConfig) -> usize {
        let (d, hd, i) = (t.hidden_size, t.head_dim(), t.intermediate_size);
        let per: usize = self
            .targets
            .iter()
            .map(|name| {
                let (a, b) = match name.as_str() {
                    "q_proj" => (d, t.num_attention_heads * hd),
                    "k_proj" | "v_proj" => (d, t.num_key_value_heads * hd),
                    "o_proj" => (t.num_attention_heads * hd, d),
                    "gate_proj" | "up_proj" => (d, i),
                    "down_proj" => (i, d),
                    _ => (0, 0),
                };
                self.rank * (a + b)
            })
            .sum();
        per * t.num_hidden_layers
    }
}
