//! The two heads that read the latent tokens' last-layer hidden states `h` (the paper's
//! "what to see" and "where to look").

use burn::nn::Linear;
use burn::prelude::*;
use burn::tensor::activation::gelu;
use serde::{Deserialize, Serialize};

use crate::model::init::SeededInit;
use crate::util::transposed_row_major;

/// Which last-layer states the heads read (for the latent tokens and the image tokens alike).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HeadStates {
    /// After the final RMSNorm (what the LM head reads).
    #[default]
    PostNorm,
    /// The last decoder layer's output before the final norm (where `V_top` is taken from on
    /// the teacher's side).
    PreNorm,
}

impl HeadStates {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "post-norm" => Ok(Self::PostNorm),
            "pre-norm" => Ok(Self::PreNorm),
            o => Err(format!("head states `{o}`: expected post-norm or pre-norm")),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Self::PostNorm => "post-norm",
            Self::PreNorm => "pre-norm",
        }
    }
}

/// Scaling of the TrajectoryHead's scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TrajScale {
    /// `q · H_imgᵀ / √d` (ours: keeps the softmax in a trainable range at real widths).
    #[default]
    InvSqrtD,
    /// `q · H_imgᵀ` (the reference implementation's head; reproduced for its checkpoints).
    None,
}

/// "What to see": `Linear(d, d) → GELU → Linear(d, d_T)`, compared with the mean of the
/// teacher's `V_top` by cosine.
#[derive(Module, Debug)]
pub struct VTopHead {
    pub fc1: Linear,
    pub fc2: Linear,
}

impl VTopHead {
    pub fn new(d: usize, d_teacher: usize, init: &mut SeededInit, device: &Device) -> Self {
        Self {
            fc1: init.linear(d, d, device),
            fc2: init.linear(d, d_teacher, device),
        }
    }
    /// `[K, d] -> [K, d_T]`.
    pub fn forward(&self, h: Tensor<2>) -> Tensor<2> {
        self.fc2.forward(gelu(self.fc1.forward(h)))
    }
}

/// "Where to look": `q = W h`, scores over the student's own image-token states
/// `s = q · H_imgᵀ / √d` (the `1/√d` keeps the softmax in a trainable range; [`TrajScale`]).
#[derive(Module, Debug)]
pub struct TrajectoryHead {
    pub q_proj: Linear,
    #[module(skip)]
    pub scale: TrajScale,
    /// The states it reads (the student's [`HeadStates`]; inference reads the same ones).
    #[module(skip)]
    pub states: HeadStates,
}

impl TrajectoryHead {
    pub fn new(
        d: usize,
        scale: TrajScale,
        states: HeadStates,
        init: &mut SeededInit,
        device: &Device,
    ) -> Self {
        Self {
            q_proj: init.linear(d, d, device),
            scale,
            states,
        }
    }
    /// `h [K, d]`, `image_states [N, d]` -> scores `[K, N]` (logits of the gaze distribution).
    pub fn forward(&self, h: Tensor<2>, image_states: Tensor<2>) -> Tensor<2> {
        let d = h.dims()[1];
        let s = self
            .q_proj
            .forward(h)
            .matmul(transposed_row_major(image_states));
        match self.scale {
            TrajScale::InvSqrtD => s / (d as f64).sqrt(),
            TrajScale::None => s,
        }
    }
}
