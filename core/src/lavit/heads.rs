//! The two heads that read the latent tokens' last-layer hidden states `h` (DESIGN §1).

use burn::nn::Linear;
use burn::prelude::*;
use burn::tensor::activation::gelu;

use crate::model::init::SeededInit;

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
/// `s = q · H_imgᵀ / √d` (the `1/√d` keeps the softmax in a trainable range).
#[derive(Module, Debug)]
pub struct TrajectoryHead {
    pub q_proj: Linear,
}

impl TrajectoryHead {
    pub fn new(d: usize, init: &mut SeededInit, device: &Device) -> Self {
        Self {
            q_proj: init.linear(d, d, device),
        }
    }
    /// `h [K, d]`, `image_states [N, d]` -> scores `[K, N]` (logits of the gaze distribution).
    pub fn forward(&self, h: Tensor<2>, image_states: Tensor<2>) -> Tensor<2> {
        let d = h.dims()[1];
        let q = self.q_proj.forward(h);
        q.matmul(image_states.transpose()) / (d as f64).sqrt()
    }
}
