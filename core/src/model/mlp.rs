//! SwiGLU feed-forward block shared by both towers (HF `Qwen2_5_VLMLP` with bias in the
//! vision tower, `Qwen2MLP` without bias in the text decoder).

use burn::nn::LinearConfig;
use burn::prelude::*;
use burn::tensor::activation::silu;

use super::lora::Proj;

#[derive(Module, Debug)]
pub struct Mlp {
    pub gate_proj: Proj,
    pub up_proj: Proj,
    pub down_proj: Proj,
}

impl Mlp {
    pub fn new(d: usize, inter: usize, bias: bool, device: &Device) -> Self {
        Self {
            gate_proj: Proj::new(LinearConfig::new(d, inter).with_bias(bias).init(device)),
            up_proj: Proj::new(LinearConfig::new(d, inter).with_bias(bias).init(device)),
            down_proj: Proj::new(LinearConfig::new(inter, d).with_bias(bias).init(device)),
        }
    }

    /// `down(silu(gate(x)) * up(x))`.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let gate = silu(self.gate_proj.forward(x.clone()));
        self.down_proj.forward(gate * self.up_proj.forward(x))
    }
}
