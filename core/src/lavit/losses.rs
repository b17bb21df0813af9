//! The three LaViT losses (docs/ARCHITECTURE.md, "The method, equation by equation"):
//!
//! * `L_ce` — next-token cross-entropy on the assistant turn (latent tokens + answer);
//! * `L_vtop = mean_k (1 − cos(VTopHead(h_k), mean_patches(V_top)))`;
//! * `L_traj = mean_k KL(p_k ‖ softmax(s_k))` with `p_k` from [`super::targets`].
//!
//! `L = L_ce + λ_v L_vtop + λ_t L_traj` (reference λ_v = λ_t = 0.3); each term can be off.

use burn::prelude::*;
use burn::tensor::activation::log_softmax;

/// Mean cross-entropy of `logits [R, V]` against `targets [R]`.
pub fn cross_entropy(logits: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1> {
    let r = targets.dims()[0];
    let logp = log_softmax(logits, 1);
    let picked = logp.gather(1, targets.reshape([r, 1]));
    picked.mean().neg()
}

/// `mean_k (1 − cos(pred_k, target))` for `pred [K, d_T]`, `target [d_T]`
/// (norms clamped at 1e-8 as in `F.cosine_similarity`).
pub fn vtop_loss(pred: Tensor<2>, target: Tensor<1>) -> Tensor<1> {
    let k = pred.dims()[0];
    let t = target.unsqueeze::<2>(); // [1, d_T]
    let dot = (pred.clone() * t.clone()).sum_dim(1); // [K, 1]
    let pn = pred.square().sum_dim(1).sqrt().clamp_min(1e-8);
    let tn = t.square().sum_dim(1).sqrt().clamp_min(1e-8);
    let cos = dot / (pn * tn);
    (cos.neg() + 1.0).reshape([k]).mean()
}

/// `mean_k Σ_n p_kn (log p_kn − log softmax(s_k)_n)` for `scores [K, N]` and target
/// distributions `p [K, N]` (rows sum to 1; zeros allowed).
pub fn trajectory_kl(scores: Tensor<2>, target: Tensor<2>) -> Tensor<1> {
    let k = scores.dims()[0];
    let logq = log_softmax(scores, 1);
    // Σ p log p with 0·log 0 = 0, a constant of the target.
    let safe = target.clone().clamp_min(1e-30);
    let plogp = (target.clone() * safe.log()).sum();
    let cross = (target * logq).sum();
    (plogp - cross) / k as f64
}

/// `L_traj` of one sample: the TrajectoryHead's scores of the latent states `h_lat [K, d]` over
/// the image-token states `h_img [N, d]` against the targets `p [K, N]`; with
/// [`TrajGrad::Detach`] no gradient reaches `h_img`.
pub fn trajectory_loss(
    head: &crate::lavit::heads::TrajectoryHead,
    h_lat: Tensor<2>,
    h_img: Tensor<2>,
    target: Tensor<2>,
    grad: TrajGrad,
) -> Tensor<1> {
    let h_img = match grad {
        TrajGrad::Image => h_img,
        TrajGrad::Detach => h_img.detach(),
    };
    trajectory_kl(head.forward(h_lat, h_img), target)
}

/// Where `L_traj`'s gradient may flow besides the TrajectoryHead and the latent states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TrajGrad {
    /// Into the student's image-token states too (through every decoder layer and the final
    /// norm the LM head shares): the KL may reshape what the image tokens carry. (What a
    /// config without the field means; the method's default is `crate::defaults::TRAJ_GRAD`.)
    #[default]
    Image,
    /// Not into the image-token states (`H_img` detached): only the latent token's query and
    /// the head learn where to look; the image tokens stay what CE makes them.
    Detach,
}

impl TrajGrad {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "image" => Ok(Self::Image),
            "detach" => Ok(Self::Detach),
            o => Err(format!("traj-grad `{o}`: expected image or detach")),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Self::Image => "image",
            Self::Detach => "detach",
        }
    }
}

/// Weights and switches of the total loss.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LossWeights {
    pub ce: bool,
    pub lambda_vtop: f64,
    pub lambda_traj: f64,
    /// Where `L_traj`'s gradient flows.
    #[serde(default)]
    pub traj_grad: TrajGrad,
}

impl Default for LossWeights {
    fn default() -> Self {
        Self {
            ce: true,
            lambda_vtop: crate::defaults::LAMBDA_VTOP,
            lambda_traj: crate::defaults::LAMBDA_TRAJ,
            traj_grad: crate::defaults::TRAJ_GRAD,
        }
    }
}
