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
    let [k, d] = pred.dims();
    vtop_step_loss(pred, target.unsqueeze::<2>().expand([k, d]))
}

/// `mean_k (1 − cos(pred_k, target_k))` for `pred`, `target [K, d_T]`: each latent token its
/// own target (the per-step `V_top`, [`VtopTarget::Step`]).
pub fn vtop_step_loss(pred: Tensor<2>, target: Tensor<2>) -> Tensor<1> {
    let k = pred.dims()[0];
    let dot = (pred.clone() * target.clone()).sum_dim(1); // [K, 1]
    let pn = pred.square().sum_dim(1).sqrt().clamp_min(1e-8);
    let tn = target.square().sum_dim(1).sqrt().clamp_min(1e-8);
    let cos = dot / (pn * tn);
    (cos.neg() + 1.0).reshape([k]).mean()
}

/// `L_traj` on the latent tokens' own attention ([`TrajTarget::Attention`]): `attn [K, N]` is
/// each latent's attention to the `N` image keys (softmax over *all* keys, mean over heads and
/// the chosen layers), so a row sums to its mass on the image `m_k ≤ 1`. Returns
/// `(mean_k KL(p_k ‖ attn_k / m_k), mean_k −ln m_k)`: the KL of the renormalised map, which
/// does not see how much the latent looks at the image at all, and the term that does
/// (`KL(p ‖ attn) = KL(p ‖ attn / m) − ln m`, so weight 1 on it is the KL against the raw rows).
pub fn attention_kl(attn: Tensor<2>, target: Tensor<2>) -> (Tensor<1>, Tensor<1>) {
    let k = attn.dims()[0];
    let mass = attn.clone().sum_dim(1).clamp_min(1e-12); // [K, 1]
    let logq = (attn.clamp_min(1e-30) / mass.clone()).log();
    let safe = target.clone().clamp_min(1e-30);
    let plogp = (target.clone() * safe.log()).sum();
    let cross = (target * logq).sum();
    let kl = (plogp - cross) / k as f64;
    let neg_log_mass = mass.log().neg().reshape([k]).mean();
    (kl, neg_log_mass)
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
    /// config without the field means; the method's default is `TRAJ_GRAD` in `defaults.rs`.)
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

/// What `L_traj` aligns with the teacher's step maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TrajTarget {
    /// The TrajectoryHead's distribution `softmax(W h_k · H_imgᵀ)` (the paper's head): a side
    /// head that the loss can satisfy by itself, without the latent token looking anywhere.
    #[default]
    Head,
    /// Latent token `k`'s own attention over the image keys — mean over heads and the
    /// student's gaze layers, renormalised over the image ([`attention_kl`]) — so the gradient
    /// moves what the latent reads, which is what the tokens after it see.
    Attention,
}

impl TrajTarget {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "head" => Ok(Self::Head),
            "attention" => Ok(Self::Attention),
            o => Err(format!("traj-target `{o}`: expected head or attention")),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Self::Head => "head",
            Self::Attention => "attention",
        }
    }
}

/// What `L_vtop` compares the VTopHead's output of latent `k` with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VtopTarget {
    /// `mean_n V_top,n`: one question-agnostic vector for every latent (the reference's).
    #[default]
    Mean,
    /// `Σ_n p_kn V_top,n`: the teacher's image states weighted by its step-`k` map (its steps
    /// pooled to `K` and renormalised on its own grid) — what the teacher saw at step `k`.
    Step,
}

impl VtopTarget {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "mean" => Ok(Self::Mean),
            "step" => Ok(Self::Step),
            o => Err(format!("vtop-target `{o}`: expected mean or step")),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Self::Mean => "mean",
            Self::Step => "step",
        }
    }
}

/// Weights and switches of the total loss.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LossWeights {
    pub ce: bool,
    pub lambda_vtop: f64,
    pub lambda_traj: f64,
    /// Where `L_traj`'s gradient flows: with [`TrajTarget::Head`] into the image-token states
    /// or not; with [`TrajTarget::Attention`] into the keys (every key of the captured
    /// layers) or not — the latent's query learns either way.
    #[serde(default)]
    pub traj_grad: TrajGrad,
    /// What `L_traj` aligns.
    #[serde(default)]
    pub traj_target: TrajTarget,
    /// With [`TrajTarget::Attention`]: weight of `−ln(mass on the image)` beside the KL of the
    /// renormalised map (0 = the mass is only reported).
    #[serde(default)]
    pub traj_mass: f64,
    /// What `L_vtop` compares with.
    #[serde(default)]
    pub vtop_target: VtopTarget,
}
