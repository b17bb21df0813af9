//! Generation with a KV cache (greedy or temperature / top-p) and the read-out of the
//! student's latent visual thoughts: for each latent token, the TrajectoryHead distribution
//! over the image tokens and the raw attention-to-image map (mean over heads and the last `L`
//! layers).
//!
//! Options of the reference evaluation: `force_lvr` appends the latent block to the prompt
//! instead of waiting for the model to emit it; `mask_lvr` hides the latent tokens from the
//! answer tokens.

use burn::prelude::*;
use burn::tensor::activation::softmax;
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde::{Deserialize, Serialize};

use crate::error::{LavitError, Result};
use crate::lavit::heads::{HeadStates, TrajectoryHead};
use crate::model::attention::RowCapture;
use crate::model::text::KvCache;
use crate::model::vlm::{Qwen25Vl, VlmInputs};
use crate::util::{index_tensor, read_f32};

/// Sampling and read-out settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GenerateConfig {
    pub max_new_tokens: usize,
    /// 0 = greedy.
    pub temperature: f64,
    pub top_p: f64,
    pub seed: u64,
    /// Generation stops after any of these ids (e.g. `<|im_end|>`).
    pub stop_ids: Vec<u32>,
    /// Append the latent block to the prompt.
    pub force_lvr: bool,
    /// Hide latent tokens from the tokens after them.
    pub mask_lvr: bool,
    /// Layers averaged for the raw attention map (last `L`).
    pub attn_layers: usize,
}

impl Default for GenerateConfig {
    fn default() -> Self {
        Self {
            max_new_tokens: 64,
            temperature: 0.0,
            top_p: 1.0,
            seed: 0,
            stop_ids: vec![],
            force_lvr: false,
            mask_lvr: false,
            attn_layers: 8,
        }
    }
}

/// One latent token's read-out.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LatentStep {
    pub token: u32,
    pub position: usize,
    /// `softmax(TrajectoryHead)` over the image tokens (student only).
    pub head_map: Option<Vec<f32>>,
    /// Attention of the latent token to the image tokens, mean over heads and last layers.
    pub attn_map: Vec<f32>,
}

/// Result of [`generate`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Generation {
    /// Newly generated ids (forced latent tokens excluded).
    pub tokens: Vec<u32>,
    pub latent_steps: Vec<LatentStep>,
    /// Image token positions in the sequence.
    pub image_positions: Vec<usize>,
}

/// Picks the next token from `logits` (`[vocab]`).
fn sample(logits: &[f32], cfg: &GenerateConfig, rng: &mut StdRng) -> u32 {
    let argmax = || {
        logits
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, _)| i as u32)
            .unwrap_or(0)
    };
    if cfg.temperature <= 0.0 {
        return argmax();
    }
    let t = cfg.temperature as f32;
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut probs: Vec<(usize, f32)> = logits
        .iter()
        .map(|&l| ((l - max) / t).exp())
        .enumerate()
        .collect();
    let z: f32 = probs.iter().map(|p| p.1).sum();
    probs.iter_mut().for_each(|p| p.1 /= z);
    probs.sort_by(|a, b| b.1.total_cmp(&a.1));
    let mut keep = 0;
    let mut cum = 0.0;
    for p in &probs {
        keep += 1;
        cum += p.1;
        if cum >= cfg.top_p as f32 {
            break;
        }
    }
    let kept = &probs[..keep];
    let total: f32 = kept.iter().map(|p| p.1).sum();
    let mut r = rng.random::<f32>() * total;
    for &(i, p) in kept {
        if r < p {
            return i as u32;
        }
        r -= p;
    }
    kept.last().map(|p| p.0 as u32).unwrap_or_else(argmax)
}

/// Generates from `inputs`. `latent_ids` are the student's `<lvr…>` ids (empty for a base
/// model); `traj_head` reads the latent states when given. Blocks on [`generate_async`].
pub fn generate(
    model: &Qwen25Vl,
    traj_head: Option<&TrajectoryHead>,
    inputs: &VlmInputs,
    latent_ids: &[u32],
    cfg: &GenerateConfig,
) -> Result<Generation> {
    pollster::block_on(generate_async(model, traj_head, inputs, latent_ids, cfg))
}

/// [`generate`] with asynchronous read-backs (logits, maps): what WebGPU in the browser needs.
pub async fn generate_async(
    model: &Qwen25Vl,
    traj_head: Option<&TrajectoryHead>,
    inputs: &VlmInputs,
    latent_ids: &[u32],
    cfg: &GenerateConfig,
) -> Result<Generation> {
    let device = model.device();
    let mut inputs = inputs.clone();
    let forced_start = inputs.input_ids.len();
    if cfg.force_lvr {
        if latent_ids.is_empty() {
            return Err(LavitError::Invalid(
                "force_lvr needs a model with latent tokens".into(),
            ));
        }
        inputs.input_ids.extend_from_slice(latent_ids);
    }
    let image_positions: Vec<usize> = inputs
        .input_ids
        .iter()
        .enumerate()
        .filter(|&(_, &t)| t == model.config.image_token_id)
        .map(|(i, _)| i)
        .collect();
    let n_layers = model.config.text.num_hidden_layers;
    let l = cfg.attn_layers.clamp(1, n_layers);
    let layers: Vec<usize> = (n_layers - l..n_layers).collect();
    let cols = index_tensor(&image_positions, &device);
    let mut latent_steps = Vec::new();
    let mut latent_positions: Vec<usize> = Vec::new();

    // Prefill (capturing the forced latent rows, if any).
    let forced: Vec<usize> = if cfg.force_lvr {
        (forced_start..inputs.input_ids.len()).collect()
    } else {
        vec![]
    };
    let prefill_capture = RowCapture {
        rows: index_tensor(&forced, &device),
        cols: cols.clone(),
    };
    let capture = (!forced.is_empty() && !image_positions.is_empty())
        .then_some((layers.as_slice(), &prefill_capture));
    let mut cache = KvCache::new(n_layers);
    let (mut logits, mut rope, out) = model.prefill(&inputs, &mut cache, capture)?;
    // The states the TrajectoryHead was trained on.
    let head_states = traj_head.map(|h| h.states).unwrap_or_default();
    let read = |o: &crate::model::text::DecoderOutput| match head_states {
        HeadStates::PostNorm => o.last_hidden_state.clone(),
        HeadStates::PreNorm => o.pre_norm_last.clone(),
    };
    let [_, s, d] = out.last_hidden_state.dims();
    let hidden = read(&out).reshape([s, d]);
    let h_img = (!image_positions.is_empty()).then(|| hidden.clone().select(0, cols.clone()));
    if !forced.is_empty() {
        let h_lat = hidden.select(0, index_tensor(&forced, &device));
        let attn = mean_maps(&out.captured, image_positions.len()).await?;
        let heads = head_maps(traj_head, h_lat, h_img.as_ref()).await?;
        for (i, &pos) in forced.iter().enumerate() {
            latent_steps.push(LatentStep {
                token: inputs.input_ids[pos],
                position: pos,
                head_map: heads.as_ref().map(|h| h[i].clone()),
                attn_map: attn.as_ref().map(|a| a[i].clone()).unwrap_or_default(),
            });
        }
        latent_positions.extend(&forced);
    }

    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let mut tokens = Vec::new();
    for _ in 0..cfg.max_new_tokens {
        let next = sample(&read_f32(logits).await?, cfg, &mut rng);
        tokens.push(next);
        if cfg.stop_ids.contains(&next) {
            break;
        }
        let pos = cache.len();
        let is_latent = latent_ids.contains(&next);
        // Feed the token; capture its attention when it is a latent token.
        let step_capture = RowCapture {
            rows: index_tensor(&[0], &device),
            cols: cols.clone(),
        };
        let cap = (is_latent && !image_positions.is_empty())
            .then_some((layers.as_slice(), &step_capture));
        let blocked: Vec<usize> = if cfg.mask_lvr && !is_latent {
            latent_positions.clone()
        } else {
            vec![]
        };
        let (lg, out) = model.decode_step(next, &mut rope, &mut cache, cap, &blocked)?;
        logits = lg;
        if is_latent {
            let h_lat = read(&out).reshape([1, d]);
            let heads = head_maps(traj_head, h_lat, h_img.as_ref()).await?;
            let attn = mean_maps(&out.captured, image_positions.len()).await?;
            latent_steps.push(LatentStep {
                token: next,
                position: pos,
                head_map: heads.map(|mut h| h.remove(0)),
                attn_map: attn.map(|mut a| a.remove(0)).unwrap_or_default(),
            });
            latent_positions.push(pos);
        }
    }
    Ok(Generation {
        tokens,
        latent_steps,
        image_positions,
    })
}

/// Mean over captured layers and heads: per captured row, a map over the image tokens.
async fn mean_maps(captured: &[(usize, Tensor<4>)], n_img: usize) -> Result<Option<Vec<Vec<f32>>>> {
    let mut acc: Option<Tensor<2>> = None;
    for (_, p) in captured {
        let [_, h, r, _] = p.dims();
        let m = p.clone().sum_dim(1).reshape([r, n_img]) / h as f64;
        acc = Some(match acc {
            Some(a) => a + m,
            None => m,
        });
    }
    let n = captured.len();
    let Some(a) = acc else { return Ok(None) };
    let v = read_f32(a / n as f64).await?;
    Ok(Some(v.chunks(n_img).map(|c| c.to_vec()).collect()))
}

/// `softmax(TrajectoryHead(h_lat, H_img))` rows.
async fn head_maps(
    head: Option<&TrajectoryHead>,
    h_lat: Tensor<2>,
    h_img: Option<&Tensor<2>>,
) -> Result<Option<Vec<Vec<f32>>>> {
    let (Some(head), Some(h_img)) = (head, h_img) else {
        return Ok(None);
    };
    let n = h_img.dims()[0];
    let p = softmax(head.forward(h_lat, h_img.clone()), 1);
    Ok(Some(
        read_f32(p).await?.chunks(n).map(|c| c.to_vec()).collect(),
    ))
}

/// An answer with its latent visual thoughts: what `lavit infer` prints and the browser demo
/// draws.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Thoughts {
    /// The decoded answer (latent and special tokens removed).
    pub answer: String,
    /// Generated ids, as [`Generation::tokens`].
    pub tokens: Vec<u32>,
    /// Merged image grid `(h, w)` of the maps.
    pub grid: (usize, usize),
    pub latent_steps: Vec<LatentStep>,
}
