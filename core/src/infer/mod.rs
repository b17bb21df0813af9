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
use crate::lavit::gating::GateLayout;
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
    /// Layers averaged for the raw attention map (last `L`), unless `gaze_layers` names them.
    pub attn_layers: usize,
    /// The decoder layers (0-based) averaged for the raw attention map; empty: the last
    /// `attn_layers`. A student's own ([`crate::lavit::LavitConfig::gaze_layers`]) when it has
    /// them.
    #[serde(default)]
    pub gaze_layers: Vec<usize>,
    /// The bottleneck condition ([`crate::lavit::LavitConfig::bottleneck`]): the prompt text
    /// after the image (in the prefill) and every generated token that is not a latent token
    /// never attend to the image; latent tokens do. Without the prefill's gate, the text after
    /// the image would read it and carry it to the answer through its cached keys and values.
    #[serde(default)]
    pub bottleneck: bool,
    /// Keep the logits each generated token was chosen from ([`Generation::logits`]).
    #[serde(default)]
    pub return_logits: bool,
    /// Answer tokens fed after the prompt (and the forced latent block) before sampling starts,
    /// as if generated (the start of an answer to continue from); not part of
    /// [`Generation::tokens`].
    #[serde(default)]
    pub answer_prefix: Vec<u32>,
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
            attn_layers: crate::defaults::TRAJ_LAYERS,
            gaze_layers: vec![],
            bottleneck: false,
            return_logits: false,
            answer_prefix: vec![],
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
    /// The logits `[vocab]` each of `tokens` was chosen from (with
    /// [`GenerateConfig::return_logits`]; else empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub logits: Vec<Vec<f32>>,
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
    let mut g = Generator::new(model, traj_head, &inputs, latent_ids, cfg)?;
    let mut logits = g.prefill(&inputs, forced_start).await?;
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let (mut tokens, mut all_logits) = (Vec::new(), Vec::new());
    let mut prefix = cfg.answer_prefix.iter().copied();
    loop {
        let next = match prefix.next() {
            Some(t) => t,
            None if tokens.len() == cfg.max_new_tokens => break,
            None => {
                let values = read_f32(logits).await?;
                let next = sample(&values, cfg, &mut rng);
                tokens.push(next);
                if cfg.return_logits {
                    all_logits.push(values);
                }
                if cfg.stop_ids.contains(&next) {
                    break;
                }
                next
            }
        };
        logits = g.feed(next).await?;
    }
    Ok(Generation {
        tokens,
        latent_steps: g.run.latent_steps,
        image_positions: g.image_positions,
        logits: all_logits,
    })
}

/// The state of one generation: the KV cache, the rope index and what it collects about the
/// latent tokens.
struct Generator<'a> {
    model: &'a Qwen25Vl,
    cfg: &'a GenerateConfig,
    latent_ids: &'a [u32],
    /// Decoder layers whose attention makes the latent maps.
    layers: Vec<usize>,
    image_positions: Vec<usize>,
    cols: Tensor<1, Int>,
    cache: KvCache,
    rope: Option<crate::model::rope::RopeIndex>,
    run: Run<'a>,
}

impl<'a> Generator<'a> {
    fn new(
        model: &'a Qwen25Vl,
        traj_head: Option<&'a TrajectoryHead>,
        inputs: &VlmInputs,
        latent_ids: &'a [u32],
        cfg: &'a GenerateConfig,
    ) -> Result<Self> {
        let image_positions: Vec<usize> = inputs
            .input_ids
            .iter()
            .enumerate()
            .filter(|&(_, &t)| t == model.config.image_token_id)
            .map(|(i, _)| i)
            .collect();
        let n_layers = model.config.text.num_hidden_layers;
        Ok(Self {
            model,
            cfg,
            latent_ids,
            layers: read_layers(cfg, n_layers)?,
            cols: index_tensor(&image_positions, &model.device()),
            cache: KvCache::new(n_layers),
            rope: None,
            run: Run {
                latent_steps: Vec::new(),
                latent_positions: Vec::new(),
                head: traj_head,
                head_states: traj_head.map(|h| h.states).unwrap_or_default(),
                n_img: image_positions.len(),
                h_img: None,
            },
            image_positions,
        })
    }

    /// Runs the prompt (the latent block from `forced_start` on, if forced), under the
    /// bottleneck's gate when it applies; records the forced latent tokens; returns the last
    /// position's logits.
    async fn prefill(&mut self, inputs: &VlmInputs, forced_start: usize) -> Result<Tensor<2>> {
        let device = self.model.device();
        let s = inputs.input_ids.len();
        let forced: Vec<usize> = (forced_start..s).collect();
        let capture = RowCapture::new(index_tensor(&forced, &device), self.cols.clone());
        let capture = (!forced.is_empty() && self.run.n_img > 0)
            .then_some((self.layers.as_slice(), &capture));
        let bias = self
            .cfg
            .bottleneck
            .then(|| {
                GateLayout::new(s, self.image_positions.clone(), forced_start, s, true)
                    .bias(0.0, &device)
            })
            .flatten();
        let (logits, rope, out) = self.model.prefill(inputs, &mut self.cache, capture, bias)?;
        self.rope = Some(rope);
        let [_, s, d] = out.last_hidden_state.dims();
        let hidden = self.run.read(&out).reshape([s, d]);
        self.run.h_img = (self.run.n_img > 0).then(|| hidden.clone().select(0, self.cols.clone()));
        if !forced.is_empty() {
            let h_lat = hidden.select(0, index_tensor(&forced, &device));
            let tokens: Vec<u32> = forced.iter().map(|&p| inputs.input_ids[p]).collect();
            self.run
                .record(&forced, &tokens, h_lat, &out.captured)
                .await?;
        }
        Ok(logits)
    }

    /// Feeds one token: a latent token sees the image and its attention is captured; any other
    /// token does not see the image under the bottleneck, nor the latent tokens under
    /// `mask_lvr`. Returns its logits.
    async fn feed(&mut self, token: u32) -> Result<Tensor<2>> {
        let device = self.model.device();
        let pos = self.cache.len();
        let is_latent = self.latent_ids.contains(&token);
        let capture = RowCapture::new(index_tensor(&[0], &device), self.cols.clone());
        let cap = (is_latent && self.run.n_img > 0).then_some((self.layers.as_slice(), &capture));
        let mut blocked: Vec<usize> = Vec::new();
        if self.cfg.mask_lvr && !is_latent {
            blocked.extend(&self.run.latent_positions);
        }
        if self.cfg.bottleneck && !is_latent {
            blocked.extend(&self.image_positions);
        }
        let rope = self.rope.as_mut().expect("prefill before feed");
        let (logits, out) = self
            .model
            .decode_step(token, rope, &mut self.cache, cap, &blocked)?;
        if is_latent {
            let d = out.last_hidden_state.dims()[2];
            let h_lat = self.run.read(&out).reshape([1, d]);
            self.run
                .record(&[pos], &[token], h_lat, &out.captured)
                .await?;
        }
        Ok(logits)
    }
}

/// The decoder layers whose attention makes the latent maps: `cfg.gaze_layers`, or the last
/// `cfg.attn_layers`.
fn read_layers(cfg: &GenerateConfig, n_layers: usize) -> Result<Vec<usize>> {
    if cfg.gaze_layers.is_empty() {
        let l = cfg.attn_layers.clamp(1, n_layers);
        return Ok((n_layers - l..n_layers).collect());
    }
    match cfg.gaze_layers.iter().find(|&&l| l >= n_layers) {
        Some(l) => Err(LavitError::Invalid(format!(
            "gaze layer {l} is not one of the model's {n_layers} decoder layers"
        ))),
        None => Ok(cfg.gaze_layers.clone()),
    }
}

/// What a generation collects about its latent tokens.
struct Run<'a> {
    latent_steps: Vec<LatentStep>,
    latent_positions: Vec<usize>,
    head: Option<&'a TrajectoryHead>,
    /// The states the TrajectoryHead was trained on.
    head_states: HeadStates,
    n_img: usize,
    /// The image tokens' states the TrajectoryHead scores against (from the prefill).
    h_img: Option<Tensor<2>>,
}

impl Run<'_> {
    fn read(&self, o: &crate::model::text::DecoderOutput) -> Tensor<3> {
        match self.head_states {
            HeadStates::PostNorm => o.last_hidden_state.clone(),
            HeadStates::PreNorm => o.pre_norm_last.clone(),
        }
    }

    /// Records latent tokens `tokens` at `positions`: their head maps from `h_lat [R, d]` and
    /// their attention maps from the captured rows.
    async fn record(
        &mut self,
        positions: &[usize],
        tokens: &[u32],
        h_lat: Tensor<2>,
        captured: &[(usize, Tensor<4>)],
    ) -> Result<()> {
        let attn = mean_maps(captured, self.n_img).await?;
        let heads = head_maps(self.head, h_lat, self.h_img.as_ref()).await?;
        for (i, (&pos, &token)) in positions.iter().zip(tokens).enumerate() {
            self.latent_steps.push(LatentStep {
                token,
                position: pos,
                head_map: heads.as_ref().map(|h| h[i].clone()),
                attn_map: attn.as_ref().map(|a| a[i].clone()).unwrap_or_default(),
            });
        }
        self.latent_positions.extend(positions);
        Ok(())
    }
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
