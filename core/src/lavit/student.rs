//! The LaViT student: a Qwen2.5-VL with `K` latent tokens `<lvr1>…<lvrK>` at the start of the
//! assistant turn and the two heads that read them.
//!
//! ```text
//! … <|im_start|>assistant\n <lvr1> … <lvrK> answer text <|im_end|>
//!                           └ latent block ┘└ gated answer ┘
//! ```

use burn::module::Param;
use burn::prelude::*;
use burn::tensor::IndexingUpdateOp;
use serde::{Deserialize, Serialize};

use super::gating::GateLayout;
use super::heads::{HeadStates, TrajScale, TrajectoryHead, VTopHead};
use super::losses::{
    LossWeights, TrajGrad, TrajTarget, VtopTarget, attention_kl, cross_entropy, trajectory_loss,
    vtop_loss, vtop_step_loss,
};
use crate::error::{LavitError, Result};
use crate::io::chat::{ChatTokenizer, Message};
use crate::io::checkpoint::HostInputs;
use crate::io::processor::{ProcessedImage, ProcessorConfig};
use crate::model::attention::RowCapture;
use crate::model::init::SeededInit;
use crate::model::text::DecoderOutput;
use crate::model::vlm::{ForwardOptions, LogitRows, Qwen25Vl, VlmInputs};
use crate::util::{index_tensor, tensor_from};

/// LaViT fields of a student checkpoint (`config.json` → `"lavit"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LavitConfig {
    /// Number of latent tokens `K`.
    pub num_latent: usize,
    /// Token ids of `<lvr1>…<lvrK>`.
    pub latent_token_ids: Vec<u32>,
    /// Teacher hidden size `d_T` (VTopHead output).
    pub d_teacher: usize,
    /// The last-layer states both heads read (training and inference alike).
    #[serde(default)]
    pub head_states: HeadStates,
    /// Scaling of the TrajectoryHead's scores.
    #[serde(default)]
    pub traj_scale: TrajScale,
    /// The bottleneck condition: the answer tokens (after the latent block) and the prompt
    /// text after the image never attend to the image — `g = 0` throughout training, and the
    /// same blocking at inference ([`crate::infer::GenerateConfig::bottleneck`]) — so visual
    /// information reaches the answer only through the latent tokens. Absent in older
    /// checkpoints: `false`.
    #[serde(default)]
    pub bottleneck: bool,
    /// The student decoder layers (0-based) whose latent-token attention is the student's gaze:
    /// what `L_traj` aligns with [`TrajTarget::Attention`] and what inference heatmaps
    /// average. Empty: the last layers of [`crate::infer::GenerateConfig::attn_layers`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gaze_layers: Vec<usize>,
    /// The decoder layer (0-based) whose output the VTopHead reads; `None`: the last layer's
    /// states of `head_states` (as the paper's head).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vtop_layer: Option<usize>,
}

impl Default for LavitConfig {
    /// No latent tokens: a plain Qwen2.5-VL (a teacher, a pre-trained base).
    fn default() -> Self {
        Self {
            num_latent: 0,
            latent_token_ids: vec![],
            d_teacher: 1,
            head_states: HeadStates::default(),
            traj_scale: TrajScale::default(),
            bottleneck: false,
            gaze_layers: vec![],
            vtop_layer: None,
        }
    }
}

impl LavitConfig {
    /// The latent tokens' ids as embedding-table rows.
    pub fn latent_rows(&self) -> Vec<usize> {
        self.latent_token_ids.iter().map(|&i| i as usize).collect()
    }

    /// Checks the layer choices against a decoder of `n_layers` layers.
    pub fn check_layers(&self, n_layers: usize) -> Result<()> {
        let bad = self
            .gaze_layers
            .iter()
            .chain(&self.vtop_layer)
            .find(|&&l| l >= n_layers);
        match bad {
            Some(l) => Err(LavitError::Invalid(format!(
                "layer {l} is not one of the student's {n_layers} decoder layers (0..{})",
                n_layers.saturating_sub(1)
            ))),
            None => Ok(()),
        }
    }
}

/// Latent token strings `<lvr1>…<lvrK>`.
pub fn latent_token_names(k: usize) -> Vec<String> {
    (1..=k).map(|i| format!("<lvr{i}>")).collect()
}

/// Adds `<lvr1>…<lvrK>` to the tokenizer as special tokens (existing ones are reused) and
/// returns their ids.
pub fn add_latent_tokens(tok: &mut ChatTokenizer, k: usize) -> Result<Vec<u32>> {
    let names = latent_token_names(k);
    let added: Vec<tokenizers::AddedToken> = names
        .iter()
        .map(|n| tokenizers::AddedToken::from(n.clone(), true))
        .collect();
    tok.inner.add_special_tokens(&added);
    names
        .iter()
        .map(|n| {
            tok.token_to_id(n)
                .ok_or_else(|| LavitError::Other(format!("could not add {n} to the tokenizer")))
        })
        .collect()
}

/// Makes room for token ids `ids` in the embeddings (and an untied LM head): the vocabulary
/// grows to `max(id) + 1` if needed and the rows of `ids` are set to the mean embedding.
pub fn init_latent_embeddings(mut vlm: Qwen25Vl, ids: &[u32]) -> Qwen25Vl {
    let need = ids.iter().map(|&i| i as usize + 1).max().unwrap_or(0);
    let device = vlm.device();
    let emb = vlm.model.embed_tokens.weight.val();
    let [v, d] = emb.dims();
    let new_v = v.max(need);
    let mean = emb.clone().mean_dim(0); // [1, d]
    let mut rows = emb;
    if new_v > v {
        rows = Tensor::cat(vec![rows, mean.clone().expand([new_v - v, d])], 0);
    }
    let idx = index_tensor(
        &ids.iter().map(|&i| i as usize).collect::<Vec<_>>(),
        &device,
    );
    let fill = mean.expand([ids.len(), d]);
    let cur = rows.clone().select(0, idx.clone());
    rows = rows.select_assign(0, idx.clone(), fill - cur, IndexingUpdateOp::Add);
    vlm.model.embed_tokens.weight = Param::from_tensor(rows);
    if let Some(head) = vlm.lm_head.as_mut() {
        let w = head.weight.val(); // [d, V]
        let mean_col = w.clone().mean_dim(1); // [d, 1]
        let mut w2 = w;
        if new_v > v {
            w2 = Tensor::cat(vec![w2, mean_col.clone().expand([d, new_v - v])], 1);
        }
        let cur = w2.clone().select(1, idx.clone());
        w2 = w2.select_assign(
            1,
            idx,
            mean_col.expand([d, ids.len()]) - cur,
            IndexingUpdateOp::Add,
        );
        head.weight = Param::from_tensor(w2);
    }
    vlm.config.text.vocab_size = new_v;
    vlm
}

/// The student: the VLM plus the two heads.
#[derive(Module, Debug)]
pub struct LavitStudent {
    pub vlm: Qwen25Vl,
    pub vtop_head: VTopHead,
    pub traj_head: TrajectoryHead,
    #[module(skip)]
    pub lavit: LavitConfig,
}

impl LavitStudent {
    /// Wraps `vlm` with fresh heads drawn from `seed` (see [`SeededInit`]).
    pub fn new(vlm: Qwen25Vl, lavit: LavitConfig, seed: u64) -> Self {
        let device = vlm.device();
        let d = vlm.config.text.hidden_size;
        let mut init = SeededInit::new(seed);
        Self {
            vtop_head: VTopHead::new(d, lavit.d_teacher, &mut init, &device),
            traj_head: TrajectoryHead::new(
                d,
                lavit.traj_scale,
                lavit.head_states,
                &mut init,
                &device,
            ),
            vlm,
            lavit,
        }
    }
}

/// Teacher-derived targets of one sample, already mapped to the student's grid.
#[derive(Debug, Clone)]
pub struct SampleTargets {
    /// `mean_patches(V_top)`, `[d_T]`.
    pub vtop_mean: Vec<f32>,
    /// `Σ_n p_kn V_top,n` per latent token (`K × d_T`; [`VtopTarget::Step`]), empty when not
    /// prepared.
    pub vtop_step: Vec<Vec<f32>>,
    /// `K` distributions over the student's image tokens.
    pub traj: Vec<Vec<f32>>,
}

/// One training / evaluation sequence of the student.
#[derive(Debug, Clone)]
pub struct StudentSample {
    pub input_ids: Vec<u32>,
    pub images: Vec<ProcessedImage>,
    pub image_positions: Vec<usize>,
    pub latent_positions: Vec<usize>,
    /// First answer token (right after the latent block).
    pub answer_start: usize,
    /// One past the last supervised token (`<|im_end|>`).
    pub end: usize,
    pub targets: Option<SampleTargets>,
}

impl StudentSample {
    /// Prompt (one image + question) → `<lvr…>` → answer → `<|im_end|>`.
    pub fn build(
        tok: &ChatTokenizer,
        processor: &ProcessorConfig,
        image: &image::RgbImage,
        question: &str,
        answer: &str,
        latent_ids: &[u32],
    ) -> Result<Self> {
        let msgs = [Message::user_image_question(1, question)];
        let host = HostInputs::build(tok, processor, std::slice::from_ref(image), &msgs, true)?;
        Self::from_prompt(tok, host, answer, latent_ids)
    }

    /// Appends the assistant turn to an already tokenised prompt.
    pub fn from_prompt(
        tok: &ChatTokenizer,
        host: HostInputs,
        answer: &str,
        latent_ids: &[u32],
    ) -> Result<Self> {
        let mut ids = host.input_ids;
        let image_positions: Vec<usize> = ids
            .iter()
            .enumerate()
            .filter(|&(_, &t)| t == tok.image_pad)
            .map(|(i, _)| i)
            .collect();
        let latent_start = ids.len();
        ids.extend_from_slice(latent_ids);
        let answer_start = ids.len();
        ids.extend(tok.encode(answer)?);
        ids.push(tok.im_end);
        let end = ids.len();
        Ok(Self {
            input_ids: ids,
            images: host.images,
            image_positions,
            latent_positions: (latent_start..answer_start).collect(),
            answer_start,
            end,
            targets: None,
        })
    }

    pub fn latent_start(&self) -> usize {
        self.latent_positions
            .first()
            .copied()
            .unwrap_or(self.answer_start)
    }

    /// The student's merged image grid `(h, w)` (single image).
    pub fn merged_grid(&self, merge: usize) -> (usize, usize) {
        let g = self.images[0].grid;
        (g[1] / merge, g[2] / merge)
    }

    pub fn gate_layout(&self, gate_prompt: bool) -> GateLayout {
        GateLayout::new(
            self.input_ids.len(),
            self.image_positions.clone(),
            self.latent_start(),
            self.answer_start,
            gate_prompt,
        )
    }

    pub fn to_inputs(&self, device: &Device) -> VlmInputs {
        HostInputs {
            input_ids: self.input_ids.clone(),
            images: self.images.clone(),
        }
        .to_device(device)
    }
}

/// The loss terms of one sample (scalars `[1]`; `None` when switched off or without targets).
pub struct LossParts {
    pub total: Tensor<1>,
    pub ce: Option<Tensor<1>>,
    pub vtop: Option<Tensor<1>>,
    pub traj: Option<Tensor<1>>,
    /// `mean_k −ln(mass of latent k's attention on the image)` ([`TrajTarget::Attention`]).
    pub traj_mass: Option<Tensor<1>>,
    /// The latent tokens' attention over the image tokens, `[K, N]`, averaged over the gaze
    /// layers and heads: what `traj` compares with the targets ([`TrajTarget::Attention`]).
    pub gaze: Option<Tensor<2>>,
    /// Number of supervised tokens (for throughput).
    pub tokens: usize,
}

/// Forward + the three losses for one sample under open fraction `g` of the gate (`g = 0`
/// and the prompt gated too when the student has the bottleneck).
pub fn sample_losses(
    student: &LavitStudent,
    sample: &StudentSample,
    weights: &LossWeights,
    g: f64,
    gate_prompt: bool,
) -> Result<LossParts> {
    let device = student.vlm.device();
    let lavit = &student.lavit;
    let (g, gate_prompt) = if lavit.bottleneck {
        (0.0, true)
    } else {
        (g, gate_prompt)
    };
    let inputs = sample.to_inputs(&device);
    let bias = sample.gate_layout(gate_prompt).bias(g, &device);
    // CE rows: logits at p predict the token at p + 1, for supervised tokens
    // latent_start..end.
    let sup: Vec<usize> = (sample.latent_start()..sample.end).collect();
    let rows: Vec<usize> = sup.iter().map(|p| p - 1).collect();
    let logits = if weights.ce {
        LogitRows::Rows(Box::new(index_tensor(&rows, &device)))
    } else {
        LogitRows::None
    };
    let targets = sample.targets.as_ref();
    let attention_traj = targets.is_some()
        && weights.lambda_traj > 0.0
        && weights.traj_target == TrajTarget::Attention;
    let gaze = gaze_layers(lavit, student.vlm.config.text.num_hidden_layers);
    let capture = RowCapture::new(
        index_tensor(&sample.latent_positions, &device),
        index_tensor(&sample.image_positions, &device),
    )
    .detach_keys(weights.traj_grad == TrajGrad::Detach);
    let out = student.vlm.forward(
        &inputs,
        ForwardOptions {
            logits,
            bias,
            capture: attention_traj.then_some((gaze.as_slice(), &capture)),
            output_hidden_states: lavit.vtop_layer.is_some(),
        },
    )?;
    let mut parts = LossParts {
        total: Tensor::<1>::zeros([1], &device),
        ce: None,
        vtop: None,
        traj: None,
        traj_mass: None,
        gaze: None,
        tokens: sup.len(),
    };
    if let Some(l) = out.logits {
        let tgt: Vec<usize> = sup.iter().map(|&p| sample.input_ids[p] as usize).collect();
        let c = cross_entropy(l, index_tensor(&tgt, &device));
        parts.total = parts.total + c.clone();
        parts.ce = Some(c);
    }
    if let Some(t) = targets {
        alignment_losses(student, sample, t, weights, out.decoder, &mut parts)?;
    }
    Ok(parts)
}

/// The student's gaze layers: its `gaze_layers`, or every decoder layer.
pub fn gaze_layers(lavit: &LavitConfig, n_layers: usize) -> Vec<usize> {
    if lavit.gaze_layers.is_empty() {
        (0..n_layers).collect()
    } else {
        lavit.gaze_layers.clone()
    }
}

/// `L_vtop` and `L_traj` of one sample from its decoder output, added to `parts`.
fn alignment_losses(
    student: &LavitStudent,
    sample: &StudentSample,
    t: &SampleTargets,
    weights: &LossWeights,
    decoder: DecoderOutput,
    parts: &mut LossParts,
) -> Result<()> {
    let device = student.vlm.device();
    let lavit = &student.lavit;
    let k = sample.latent_positions.len();
    let n = sample.image_positions.len();
    let lat = index_tensor(&sample.latent_positions, &device);
    if weights.lambda_traj > 0.0 && (t.traj.len() != k || t.traj.iter().any(|r| r.len() != n)) {
        return Err(LavitError::Invalid(format!(
            "trajectory targets are {}x{} but the student has {k} latent tokens and {n} image tokens",
            t.traj.len(),
            t.traj.first().map(|r| r.len()).unwrap_or(0)
        )));
    }
    let last = match lavit.head_states {
        HeadStates::PostNorm => decoder.last_hidden_state.clone(),
        HeadStates::PreNorm => decoder.pre_norm_last.clone(),
    };
    let [_, s, d] = last.dims();
    let h = last.reshape([s, d]);
    if weights.lambda_vtop > 0.0 {
        // The VTopHead reads its layer's output (hidden_states[l + 1]) or the last states.
        let states = match lavit.vtop_layer {
            Some(l) if l + 1 < decoder.hidden_states.len().saturating_sub(1) => {
                decoder.hidden_states[l + 1].clone().reshape([s, d])
            }
            _ => h.clone(),
        };
        let pred = student.vtop_head.forward(states.select(0, lat.clone()));
        let l = match weights.vtop_target {
            VtopTarget::Mean => {
                vtop_loss(pred, tensor_from(t.vtop_mean.clone(), [d_t(t)], &device))
            }
            VtopTarget::Step => {
                if t.vtop_step.len() != k {
                    return Err(LavitError::Invalid(format!(
                        "{} per-step V_top targets for {k} latent tokens",
                        t.vtop_step.len()
                    )));
                }
                let flat: Vec<f32> = t.vtop_step.iter().flatten().copied().collect();
                vtop_step_loss(pred, tensor_from(flat, [k, d_t(t)], &device))
            }
        };
        parts.total = parts.total.clone() + l.clone() * weights.lambda_vtop;
        parts.vtop = Some(l);
    }
    if weights.lambda_traj > 0.0 {
        let flat: Vec<f32> = t.traj.iter().flatten().copied().collect();
        let target = tensor_from(flat, [k, n], &device);
        let l = match weights.traj_target {
            TrajTarget::Head => {
                let h_img = h
                    .clone()
                    .select(0, index_tensor(&sample.image_positions, &device));
                let h_lat = h.select(0, lat);
                trajectory_loss(&student.traj_head, h_lat, h_img, target, weights.traj_grad)
            }
            TrajTarget::Attention => {
                let gaze = mean_captured(&decoder.captured, k, n);
                let (kl, neg_log_mass) = attention_kl(gaze.clone(), target);
                parts.gaze = Some(gaze);
                parts.traj_mass = Some(neg_log_mass.clone());
                if weights.traj_mass > 0.0 {
                    parts.total = parts.total.clone()
                        + neg_log_mass * (weights.lambda_traj * weights.traj_mass);
                }
                kl
            }
        };
        parts.total = parts.total.clone() + l.clone() * weights.lambda_traj;
        parts.traj = Some(l);
    }
    Ok(())
}

fn d_t(t: &SampleTargets) -> usize {
    t.vtop_mean.len()
}

/// Captured `[1, H, K, N]` rows of several layers → their mean over layers and heads `[K, N]`.
pub fn mean_captured(captured: &[(usize, Tensor<4>)], k: usize, n: usize) -> Tensor<2> {
    let mut acc: Option<Tensor<2>> = None;
    for (_, p) in captured {
        let h = p.dims()[1];
        let m = p.clone().sum_dim(1).reshape([k, n]) / h as f64;
        acc = Some(match acc {
            Some(a) => a + m,
            None => m,
        });
    }
    acc.expect("at least one captured layer") / captured.len().max(1) as f64
}
