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

    /// `x Wᵀ + b (+ the adapter)` over the last axis of `x`. Every row goes through one 2-D
    /// matrix product (`[.., d_in]` viewed as `[rows, d_in]`): on the wgpu backend each batch
    /// layout of a matmul is a kernel of its own, compiled once per process, and a browser
    /// compiles each for about a second on a software adapter (web-demo/README.md).
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let mut dims = x.dims();
        let rows = dims[..D - 1].iter().product::<usize>();
        let y = self.forward_rows(x.reshape([rows, dims[D - 1]]));
        dims[D - 1] = y.dims()[1];
        y.reshape(dims)
    }

    fn forward_rows(&self, x: Tensor<2>) -> Tensor<2> {
        let y = self.base(x.clone());
        match &self.lora {
            None => y,
            Some(l) => y + x.matmul(l.a.val()).matmul(l.b.val()) * l.scale,
        }
    }

    /// The frozen base `x Wᵀ + b`. A base stored in half precision ([`cast_frozen_base`]) runs
    /// like autocast: `x` rounded to the weight's dtype for the matmul (the CPU backend
    /// accumulates it in f32), the result and the bias add back in `x`'s dtype. No f32 copy of
    /// the weight is made, so none is kept for the backward pass either.
    fn base(&self, x: Tensor<2>) -> Tensor<2> {
        let w = self.inner.weight.val();
        let (wd, xd) = (w.dtype(), x.dtype());
        if wd == xd {
            return self.inner.forward(x);
        }
        let y = x.cast(wd).matmul(w).cast(xd);
        match &self.inner.bias {
            Some(b) => y + b.val().cast(xd).unsqueeze::<2>(),
            None => y,
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

    /// Folds the adapter into the base weight (`W += (α/r) A B`, in the adapter's dtype, so a
    /// half-precision base comes back in f32) and drops it.
    pub fn merge(mut self) -> Self {
        if let Some(l) = self.lora.take() {
            let delta = l.a.val().matmul(l.b.val()) * l.scale;
            let w = self.inner.weight.val().cast(delta.dtype()) + delta;
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

/// LoRA settings: rank, alpha, which text-decoder projections get an adapter and which
/// embedding rows train.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoraConfig {
    pub rank: usize,
    pub alpha: f64,
    /// Any of `q_proj k_proj v_proj o_proj gate_proj up_proj down_proj`.
    pub targets: Vec<String>,
    /// Absent in older runs' configs: the default, [`TrainEmbeddings::NewTokens`].
    #[serde(default)]
    pub embeddings: TrainEmbeddings,
}

impl Default for LoraConfig {
    fn default() -> Self {
        Self {
            rank: 16,
            alpha: 32.0,
            targets: Self::ALL_TARGETS.map(String::from).to_vec(),
            embeddings: TrainEmbeddings::default(),
        }
    }
}

/// Which rows of the token embeddings (and of a tied or untied LM head) train under LoRA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TrainEmbeddings {
    /// Only the added (latent) tokens' rows ([`super::new_rows::NewTokenRows`]), as PEFT's
    /// `trainable_token_indices`: no `[V, d]` gradient or optimiser state.
    #[default]
    NewTokens,
    /// The whole table and head.
    All,
}

impl std::str::FromStr for TrainEmbeddings {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "new-tokens" => Ok(Self::NewTokens),
            "all" => Ok(Self::All),
            o => Err(format!("`{o}`: expected new-tokens or all")),
        }
    }
}

impl std::fmt::Display for TrainEmbeddings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::NewTokens => "new-tokens",
            Self::All => "all",
        })
    }
}

/// Whether the parameter at module path `path` belongs to the frozen base of a LoRA-adapted
/// decoder: a text-decoder projection's own weight (`[vlm.]model.layers.N.….inner.weight`).
pub fn is_frozen_base(path: &str) -> bool {
    (path.starts_with("model.layers.") || path.contains(".model.layers."))
        && (path.ends_with(".inner") || path.contains(".inner."))
}

/// Stores the frozen base's weight matrices ([`is_frozen_base`]) as `dtype` (e.g. bf16): half
/// the memory of the decoder, whose projections then run as [`Proj`] describes. Biases, norms,
/// embeddings, the vision tower and the adapters keep their dtype.
pub fn cast_frozen_base<M: burn::module::Module>(m: M, dtype: burn::tensor::DType) -> M {
    struct Cast {
        path: Vec<String>,
        dtype: burn::tensor::DType,
    }
    impl burn::module::ModuleMapper for Cast {
        fn enter_module(&mut self, name: &str, _container: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _name: &str, _container: &str) {
            self.path.pop();
        }
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            if D == 2 && is_frozen_base(&self.path.join(".")) {
                let dtype = self.dtype;
                param.map(|t| t.cast(dtype))
            } else {
                param
            }
        }
    }
    m.map(&mut Cast {
        path: vec![],
        dtype,
    })
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
