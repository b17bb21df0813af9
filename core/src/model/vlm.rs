//! The vision-language model (HF `Qwen2_5_VLForConditionalGeneration`): vision tower, image
//! features spliced into the token embeddings at `<|image_pad|>` positions, M-RoPE text
//! decoder, LM head (tied to the embeddings or not). Teacher and student are this same type.

use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::ops::PadMode;

use super::attention::{RowCapture, causal_mask};
use super::config::Qwen25VlConfig;
use super::new_rows::NewTokenRows;
use super::rope::{RopeIndex, inv_freq, rope_index, text_cos_sin};
use super::text::{DecoderInputs, DecoderOutput, KvCache, TextModel};
use super::vision::VisionTransformer;
use crate::error::{LavitError, Result};

#[derive(Module, Debug)]
pub struct Qwen25Vl {
    pub visual: VisionTransformer,
    pub model: TextModel,
    /// `None` when the LM head is tied to `model.embed_tokens`.
    pub lm_head: Option<Linear>,
    /// Rows of added tokens that train on their own while the table and the head stay frozen
    /// (LoRA with `TrainEmbeddings::NewTokens`); `None` in every loaded or exported model.
    pub new_rows: Option<NewTokenRows>,
    #[module(skip)]
    pub config: Qwen25VlConfig,
}

/// Token embeddings `text [S, d]` with the image features `feats [N_img, d]` in place of the
/// `image_token` placeholders (runs of text and image rows concatenated in sequence order) →
/// `[1, S, d]`.
pub fn splice(ids: &[u32], image_token: u32, text: Tensor<2>, feats: &Tensor<2>) -> Tensor<3> {
    let s = ids.len();
    let mut parts = Vec::new();
    let (mut i, mut img_row) = (0, 0);
    while i < s {
        let is_img = ids[i] == image_token;
        let run = ids[i..]
            .iter()
            .take_while(|&&t| (t == image_token) == is_img)
            .count();
        if is_img {
            parts.push(feats.clone().narrow(0, img_row, run));
            img_row += run;
        } else {
            parts.push(text.clone().narrow(0, i, run));
        }
        i += run;
    }
    Tensor::cat(parts, 0).unsqueeze::<3>()
}

/// One sequence: token ids with image placeholders, and the images' patches.
#[derive(Debug, Clone)]
pub struct VlmInputs {
    pub input_ids: Vec<u32>,
    /// `[N_patches, C·T·P·P]` of all images in order, or `None` for text only.
    pub pixel_values: Option<Tensor<2>>,
    /// `(t, h, w)` patch grid of each image.
    pub grids: Vec<[usize; 3]>,
}

/// Which rows of the LM head to compute.
#[derive(Debug, Clone, Default)]
pub enum LogitRows {
    #[default]
    All,
    Last,
    Rows(Box<Tensor<1, Int>>),
    None,
}

/// Options of a forward pass.
#[derive(Default)]
pub struct ForwardOptions<'a> {
    pub logits: LogitRows,
    pub output_hidden_states: bool,
    /// Capture attention probabilities of these layers at these rows/columns.
    pub capture: Option<(&'a [usize], &'a RowCapture)>,
    /// Additive attention bias `[1, 1, S, S]` (curriculum sensory gating).
    pub bias: Option<Tensor<4>>,
}

/// What a forward pass returns.
pub struct VlmOutput {
    /// `[rows, vocab]` for the requested rows.
    pub logits: Option<Tensor<2>>,
    pub decoder: DecoderOutput,
    /// Merged image features `[N_img, d]` (vision tower output).
    pub image_embeds: Option<Tensor<2>>,
    pub rope: RopeIndex,
}

impl Qwen25Vl {
    /// A model with lazily initialised random weights (load a checkpoint to fill them).
    pub fn new(config: &Qwen25VlConfig, device: &Device) -> Self {
        let t = &config.text;
        Self {
            visual: VisionTransformer::new(&config.vision, device),
            model: TextModel::new(t, device),
            lm_head: (!config.tie_word_embeddings).then(|| {
                LinearConfig::new(t.hidden_size, t.vocab_size)
                    .with_bias(false)
                    .init(device)
            }),
            new_rows: None,
            config: config.clone(),
        }
    }

    pub fn device(&self) -> Device {
        self.model.embed_tokens.weight.val().device()
    }

    /// `[rows, d] -> [rows, vocab]`.
    pub fn lm_logits(&self, h: Tensor<2>) -> Tensor<2> {
        let frozen = match &self.lm_head {
            Some(head) => head.forward(h.clone()),
            None => h
                .clone()
                .matmul(self.model.embed_tokens.weight.val().transpose()),
        };
        match &self.new_rows {
            Some(rows) => rows.logits(h, frozen),
            None => frozen,
        }
    }

    /// Splits the rows of token ids `ids` off the embedding table (and an untied head) into
    /// [`NewTokenRows`], so that only they train; a no-op when already split.
    pub fn split_new_rows(mut self, ids: &[usize]) -> Self {
        if self.new_rows.is_none() && !ids.is_empty() {
            let rows =
                NewTokenRows::split(ids, &mut self.model.embed_tokens, self.lm_head.as_mut());
            self.new_rows = Some(rows);
        }
        self
    }

    /// Writes split-off rows back into the table and the head (before an export).
    pub fn merge_new_rows(mut self) -> Self {
        if let Some(rows) = self.new_rows.take() {
            rows.merge_into(&mut self.model.embed_tokens, self.lm_head.as_mut());
        }
        self
    }

    /// Token embeddings `[1, S, d]` with image features in place of the placeholders, and the
    /// image features themselves.
    pub fn embed(&self, inputs: &VlmInputs) -> Result<(Tensor<3>, Option<Tensor<2>>)> {
        let device = self.device();
        let ids = &inputs.input_ids;
        let s = ids.len();
        if s == 0 {
            return Err(LavitError::Invalid("empty token sequence".into()));
        }
        let vocab = self.config.text.vocab_size;
        if let Some(&bad) = ids.iter().find(|&&t| t as usize >= vocab) {
            return Err(LavitError::Invalid(format!(
                "token id {bad} is outside the model's vocabulary ({vocab})"
            )));
        }
        let id_tensor = Tensor::<1, Int>::from_data(
            TensorData::new(ids.iter().map(|&i| i as i64).collect::<Vec<_>>(), [s]),
            &device,
        );
        let text = self
            .model
            .embed_tokens
            .forward(id_tensor.unsqueeze::<2>())
            .reshape([s, self.config.text.hidden_size]);
        let text = match &self.new_rows {
            Some(rows) => rows.embed(ids, text),
            None => text,
        };
        let image_token = self.config.image_token_id;
        let n_placeholders = ids.iter().filter(|&&t| t == image_token).count();
        let Some(pixels) = &inputs.pixel_values else {
            if n_placeholders > 0 {
                return Err(LavitError::Prompt(format!(
                    "{n_placeholders} image placeholder tokens but no image"
                )));
            }
            return Ok((text.unsqueeze::<3>(), None));
        };
        let unit = self.config.vision.spatial_merge_size.pow(2);
        let expected_patches: usize = inputs.grids.iter().map(|g| g[0] * g[1] * g[2]).sum();
        if pixels.dims()[0] != expected_patches
            || pixels.dims()[1] != self.config.vision.patch_dim()
        {
            return Err(LavitError::Invalid(format!(
                "pixel_values {:?} do not match grids {:?} (expected [{expected_patches}, {}])",
                pixels.dims(),
                inputs.grids,
                self.config.vision.patch_dim()
            )));
        }
        if n_placeholders * unit != expected_patches {
            return Err(LavitError::Prompt(format!(
                "the prompt has {n_placeholders} image placeholder tokens but the image(s) give {} features",
                expected_patches / unit
            )));
        }
        let feats = self.visual.forward(pixels.clone(), &inputs.grids);
        Ok((splice(ids, image_token, text, &feats), Some(feats)))
    }

    /// M-RoPE tables `[1, 1, len, head_dim]` for `range` of the sequence positions.
    pub fn rope_tables(
        &self,
        rope: &RopeIndex,
        range: std::ops::Range<usize>,
    ) -> (Tensor<4>, Tensor<4>) {
        let t = &self.config.text;
        let hd = t.head_dim();
        let inv = inv_freq(t.rope_theta, hd);
        let n = range.len();
        let (cos, sin) = text_cos_sin(rope, range, &inv, &t.mrope_section);
        let device = self.device();
        let cos = Tensor::<2>::from_data(TensorData::new(cos, [n, hd]), &device).unsqueeze::<4>();
        let sin = Tensor::<2>::from_data(TensorData::new(sin, [n, hd]), &device).unsqueeze::<4>();
        (cos, sin)
    }

    /// Position ids (HF `get_rope_index`) of `inputs`.
    pub fn rope_index(&self, inputs: &VlmInputs) -> Result<RopeIndex> {
        rope_index(
            &inputs.input_ids,
            self.config.image_token_id,
            &inputs.grids,
            self.config.vision.spatial_merge_size,
        )
        .map_err(LavitError::Prompt)
    }

    /// Full forward pass over one sequence (no cache): training, teacher extraction, parity.
    pub fn forward(&self, inputs: &VlmInputs, opts: ForwardOptions<'_>) -> Result<VlmOutput> {
        let rope = self.rope_index(inputs)?;
        let (decoder, image_embeds) = self.run(
            inputs,
            &rope,
            DecodeExtras {
                bias: opts.bias,
                capture: opts.capture,
                output_hidden_states: opts.output_hidden_states,
                blocked: &[],
            },
            None,
        )?;
        let logits = self.head_rows(&decoder.last_hidden_state, opts.logits);
        Ok(VlmOutput {
            logits,
            decoder,
            image_embeds,
            rope,
        })
    }

    /// The one decoder pass of [`Self::forward`], [`Self::prefill`] and [`Self::decode_step`]:
    /// embeds `inputs` (the new tokens; their positions follow `cache`), builds the rope tables
    /// of those positions and the causal mask — with `extras.blocked` key positions hidden
    /// too — and runs the decoder, appending to `cache` when given.
    fn run(
        &self,
        inputs: &VlmInputs,
        rope: &RopeIndex,
        extras: DecodeExtras<'_>,
        cache: Option<&mut KvCache>,
    ) -> Result<(DecoderOutput, Option<Tensor<2>>)> {
        let (embeds, image_embeds) = self.embed(inputs)?;
        let s = inputs.input_ids.len();
        let past = cache.as_ref().map(|c| c.len()).unwrap_or(0);
        // The keys: the cache's columns (its padding blocked by the causal mask), else the
        // new positions alone.
        let keys = match cache {
            Some(_) => KvCache::columns(past + s),
            None => s,
        };
        let (cos, sin) = self.rope_tables(rope, past..past + s);
        let device = self.device();
        let mut mask = causal_mask(s, past, keys, &device);
        if !extras.blocked.is_empty() {
            let mut m = vec![false; keys];
            for &b in extras.blocked.iter().filter(|&&b| b < past) {
                m[b] = true;
            }
            let hidden = Tensor::<1, Bool>::from_data(TensorData::new(m, [keys]), &device)
                .reshape([1, 1, 1, keys]);
            mask = mask.bool_or(hidden);
        }
        let bias = extras.bias.map(|b| match keys - b.dims()[3] {
            0 => b,
            pad => b.pad([(0, pad)], PadMode::Constant(0.0)),
        });
        let decoder = self.model.forward(
            embeds,
            DecoderInputs {
                cos,
                sin,
                mask,
                bias,
                capture: extras.capture,
                output_hidden_states: extras.output_hidden_states,
            },
            cache,
        );
        Ok((decoder, image_embeds))
    }

    fn head_rows(&self, last: &Tensor<3>, rows: LogitRows) -> Option<Tensor<2>> {
        let [_, s, d] = last.dims();
        let h = last.clone().reshape([s, d]);
        match rows {
            LogitRows::All => Some(self.lm_logits(h)),
            LogitRows::Last => Some(self.lm_logits(h.narrow(0, s - 1, 1))),
            LogitRows::Rows(idx) => Some(self.lm_logits(h.select(0, *idx))),
            LogitRows::None => None,
        }
    }

    /// Prefill for generation: runs the prompt (with an additive attention `bias`
    /// `[1, 1, S, S]`, e.g. the bottleneck's gate), fills `cache`, returns the last-position
    /// logits `[1, vocab]`, the rope index (extended as tokens are decoded) and the output.
    pub fn prefill(
        &self,
        inputs: &VlmInputs,
        cache: &mut KvCache,
        capture: Option<(&[usize], &RowCapture)>,
        bias: Option<Tensor<4>>,
    ) -> Result<(Tensor<2>, RopeIndex, DecoderOutput)> {
        let rope = self.rope_index(inputs)?;
        let (out, _) = self.run(
            inputs,
            &rope,
            DecodeExtras {
                capture,
                bias,
                ..Default::default()
            },
            Some(cache),
        )?;
        let logits = self
            .head_rows(&out.last_hidden_state, LogitRows::Last)
            .expect("rows");
        Ok((logits, rope, out))
    }

    /// One decoding step: appends `token`'s position to `rope`, runs it against `cache`; the
    /// token may not see the key positions in `blocked` (e.g. latent tokens under
    /// `mask_lvr`). Returns the logits `[1, vocab]` and the decoder output of that position.
    pub fn decode_step(
        &self,
        token: u32,
        rope: &mut RopeIndex,
        cache: &mut KvCache,
        capture: Option<(&[usize], &RowCapture)>,
        blocked: &[usize],
    ) -> Result<(Tensor<2>, DecoderOutput)> {
        rope.extend_text(1);
        let ids = VlmInputs {
            input_ids: vec![token],
            pixel_values: None,
            grids: vec![],
        };
        let (out, _) = self.run(
            &ids,
            rope,
            DecodeExtras {
                capture,
                blocked,
                ..Default::default()
            },
            Some(cache),
        )?;
        let logits = self
            .head_rows(&out.last_hidden_state, LogitRows::Last)
            .expect("rows");
        Ok((logits, out))
    }
}

/// What a decoder pass adds to the causal mask and returns besides the last states.
#[derive(Default)]
struct DecodeExtras<'a> {
    bias: Option<Tensor<4>>,
    capture: Option<(&'a [usize], &'a RowCapture)>,
    output_hidden_states: bool,
    /// Key positions hidden from every new token.
    blocked: &'a [usize],
}
