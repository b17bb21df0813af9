//! Layer-streamed teacher: extraction with one block of the teacher in memory at a time, for
//! teachers larger than the memory at hand (a 32B teacher on one 24 GB card, a 7B one on a
//! laptop).
//!
//! For a batch of samples: the vision tower runs block by block (each loaded from the
//! safetensors files, applied to every sample's patches, dropped); the token embeddings read
//! only the rows of the tokens present (memory-mapped); then each decoder layer is loaded, run
//! over every sample's hidden states — capturing the answer rows' attention to the image in the
//! last `L` layers — and dropped. The last layer's output gives `V_top`. Everything is computed
//! by the same code as the in-memory model ([`VisionPlan`], [`DecoderLayer::forward`],
//! [`splice`], [`SignalPlan`]), so the signals are equal.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::PathBuf;

use burn::nn::{Linear, LinearConfig, RmsNorm, RmsNormConfig};
use burn::prelude::*;
use burn::tensor::DType;

use super::extract::{ExtractConfig, SignalPlan, TeacherSignals};
use crate::error::{LavitError, Result};
use crate::io::checkpoint::{Checkpoint, HostInputs};
use crate::io::weights::{WeightSource, checkpoint_files, load_module};
use crate::model::attention::causal_mask;
use crate::model::config::Qwen25VlConfig;
use crate::model::lora::Proj;
use crate::model::mlp::Mlp;
use crate::model::rope::{RopeIndex, inv_freq, rope_index, text_cos_sin};
use crate::model::text::{DecoderInputs, DecoderLayer, TextAttention};
use crate::model::vision::{PatchEmbed, PatchMerger, VisionAttention, VisionBlock, VisionPlan};
use crate::model::vlm::splice;

/// A teacher checkpoint read block by block (see the module docs).
pub struct StreamedTeacher {
    pub config: Qwen25VlConfig,
    /// Samples pushed through each loaded block together.
    pub batch: usize,
    files: Vec<PathBuf>,
    device: Device,
    float: DType,
}

/// One sample of a streamed batch: its inputs and the token spans of its steps.
pub struct StreamSample {
    pub inputs: HostInputs,
    pub steps: Vec<Range<usize>>,
}

impl StreamedTeacher {
    pub fn open(ckpt: &Checkpoint, device: &Device) -> Result<Self> {
        Ok(Self {
            config: ckpt.config.clone(),
            batch: 8,
            files: checkpoint_files(&ckpt.dir)?,
            device: device.clone(),
            float: device.settings().float_dtype.into(),
        })
    }

    pub fn device(&self) -> Device {
        self.device.clone()
    }

    /// Bytes the teacher's weights take in the compute dtype (what loading it whole costs).
    pub fn weight_bytes(&self) -> usize {
        let elem = match self.float {
            DType::F64 => 8,
            DType::F16 | DType::BF16 => 2,
            _ => 4,
        };
        self.config.param_counts().total * elem
    }

    fn load<M: burn::store::ModuleSnapshot>(
        &self,
        module: M,
        remap: &[(String, String)],
    ) -> Result<M> {
        let remap: Vec<(&str, &str)> = remap
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        load_module(
            module,
            WeightSource::Files(self.files.clone()),
            &remap,
            self.float,
        )
    }

    /// The signals of every sample of `batch`, equal to [`super::extract_signals`] on the
    /// whole teacher.
    pub fn extract_batch(
        &self,
        batch: &[StreamSample],
        cfg: &ExtractConfig,
    ) -> Result<Vec<TeacherSignals>> {
        let c = &self.config;
        let plans: Vec<SignalPlan> = batch
            .iter()
            .map(|s| {
                SignalPlan::new(
                    &s.inputs,
                    &s.steps,
                    cfg,
                    c.text.num_hidden_layers,
                    c.image_token_id,
                    c.vision.spatial_merge_size,
                )
            })
            .collect::<Result<_>>()?;
        let feats = self.vision_features(batch)?;
        let (mut hidden, ropes) = self.embedded(batch, &feats)?;
        drop(feats);
        let captured = self.decoder_pass(batch, &mut hidden, &ropes, &plans)?;
        Ok(plans
            .iter()
            .zip(hidden)
            .zip(&captured)
            .map(|((p, h), cap)| p.reduce(cap, h))
            .collect())
    }

    /// The vision tower, block by block: each sample's merged image features.
    fn vision_features(&self, batch: &[StreamSample]) -> Result<Vec<Tensor<2>>> {
        let (c, dev) = (&self.config, &self.device);
        let vplans: Vec<VisionPlan> = batch
            .iter()
            .map(|s| VisionPlan::new(&c.vision, &s.inputs.grids(), dev))
            .collect();
        let embed = self.load(self.patch_embed(), &vision_remap("patch_embed\\."))?;
        let mut patches: Vec<Tensor<2>> = batch
            .iter()
            .zip(&vplans)
            .map(|(s, p)| {
                let (data, shape) = s.inputs.pixel_values();
                p.embed(&embed, Tensor::from_data(TensorData::new(data, shape), dev))
            })
            .collect();
        drop(embed);
        for b in 0..c.vision.depth {
            let block = self.load(
                self.vision_block(),
                &vision_remap(&format!("blocks\\.{b}\\.")),
            )?;
            patches = patches
                .into_iter()
                .zip(&vplans)
                .map(|(x, p)| p.block(b, &block, x))
                .collect();
        }
        let mut merger_remap = vision_remap("merger\\.");
        merger_remap.push((r"^mlp\.0\.".into(), "fc1.".into()));
        merger_remap.push((r"^mlp\.2\.".into(), "fc2.".into()));
        let merger = self.load(self.merger(), &merger_remap)?;
        Ok(patches
            .into_iter()
            .zip(&vplans)
            .map(|(x, p)| p.merge(&merger, x))
            .collect())
    }

    /// Token embeddings (only the rows present, read from the map) with the image features
    /// spliced in, and each sample's rope index.
    fn embedded(
        &self,
        batch: &[StreamSample],
        feats: &[Tensor<2>],
    ) -> Result<(Vec<Tensor<3>>, Vec<RopeIndex>)> {
        let c = &self.config;
        let rows = EmbeddingRows::open(&self.files)?;
        let mut hidden: Vec<Tensor<3>> = Vec::with_capacity(batch.len());
        let mut ropes: Vec<RopeIndex> = Vec::with_capacity(batch.len());
        for (s, f) in batch.iter().zip(feats) {
            let ids = &s.inputs.input_ids;
            let text = rows.embed(ids, c.text.hidden_size, &self.device)?;
            hidden.push(splice(ids, c.image_token_id, text, f));
            ropes.push(
                rope_index(
                    ids,
                    c.image_token_id,
                    &s.inputs.grids(),
                    c.vision.spatial_merge_size,
                )
                .map_err(LavitError::Prompt)?,
            );
        }
        Ok((hidden, ropes))
    }

    /// The decoder layers, one at a time, over every sample's states (updated in place);
    /// returns each sample's captured attention rows of its plan's layers.
    fn decoder_pass(
        &self,
        batch: &[StreamSample],
        hidden: &mut [Tensor<3>],
        ropes: &[RopeIndex],
        plans: &[SignalPlan],
    ) -> Result<Vec<Vec<Tensor<4>>>> {
        let (c, dev) = (&self.config, &self.device);
        let inv = inv_freq(c.text.rope_theta, c.text.head_dim());
        let tables: Vec<(Tensor<4>, Tensor<4>, Tensor<4, Bool>)> = batch
            .iter()
            .zip(ropes)
            .map(|(s, rope)| {
                let n = s.inputs.input_ids.len();
                let hd = c.text.head_dim();
                let (cos, sin) = text_cos_sin(rope, 0..n, &inv, &c.text.mrope_section);
                (
                    Tensor::<2>::from_data(TensorData::new(cos, [n, hd]), dev).unsqueeze::<4>(),
                    Tensor::<2>::from_data(TensorData::new(sin, [n, hd]), dev).unsqueeze::<4>(),
                    causal_mask(n, 0, n, dev),
                )
            })
            .collect();
        let captures: Vec<_> = plans.iter().map(|p| p.capture(dev)).collect();
        let mut captured: Vec<Vec<Tensor<4>>> = vec![Vec::new(); batch.len()];
        for l in 0..c.text.num_hidden_layers {
            let layer = self.load(
                self.decoder_layer(),
                &[
                    (
                        format!(r"^model\.(language_model\.)?layers\.{l}\."),
                        String::new(),
                    ),
                    (r"_proj\.(weight|bias)$".into(), "_proj.inner.$1".into()),
                ],
            )?;
            for (i, x) in hidden.iter_mut().enumerate() {
                let (cos, sin, mask) = tables[i].clone();
                let want = plans[i].layers.contains(&l);
                let inputs = DecoderInputs {
                    cos,
                    sin,
                    mask,
                    bias: None,
                    capture: None,
                    output_hidden_states: false,
                };
                let (out, probs) =
                    layer.forward(x.clone(), &inputs, want.then_some(&captures[i]), None);
                *x = out;
                if let Some(p) = probs {
                    captured[i].push(p);
                }
            }
        }
        Ok(captured)
    }

    fn patch_embed(&self) -> PatchEmbed {
        blocks(&self.config, &self.device).patch_embed()
    }

    fn vision_block(&self) -> VisionBlock {
        blocks(&self.config, &self.device).vision_block()
    }

    fn merger(&self) -> PatchMerger {
        blocks(&self.config, &self.device).merger()
    }

    fn decoder_layer(&self) -> DecoderLayer {
        blocks(&self.config, &self.device).decoder_layer()
    }
}

/// Builders of the model's blocks one at a time (for streaming them from or to disk).
pub struct Blocks<'a> {
    config: &'a Qwen25VlConfig,
    device: Device,
}

/// The block builders of `config` on `device`.
pub fn blocks<'a>(config: &'a Qwen25VlConfig, device: &Device) -> Blocks<'a> {
    Blocks {
        config,
        device: device.clone(),
    }
}

impl Blocks<'_> {
    pub fn patch_embed(&self) -> PatchEmbed {
        let v = &self.config.vision;
        let kernel = [v.temporal_patch_size, v.patch_size, v.patch_size];
        PatchEmbed {
            proj: burn::nn::conv::Conv3dConfig::new([v.in_channels, v.hidden_size], kernel)
                .with_stride(kernel)
                .with_bias(false)
                .init(&self.device),
        }
    }

    pub fn vision_block(&self) -> VisionBlock {
        let v = &self.config.vision;
        let d = v.hidden_size;
        VisionBlock {
            norm1: norm(d, 1e-6, &self.device),
            norm2: norm(d, 1e-6, &self.device),
            attn: VisionAttention {
                qkv: LinearConfig::new(d, 3 * d).init(&self.device),
                proj: LinearConfig::new(d, d).init(&self.device),
                num_heads: v.num_heads,
            },
            mlp: Mlp::new(d, v.intermediate_size, true, &self.device),
        }
    }

    pub fn merger(&self) -> PatchMerger {
        let v = &self.config.vision;
        let merged = v.hidden_size * v.spatial_merge_size * v.spatial_merge_size;
        PatchMerger {
            ln_q: norm(v.hidden_size, 1e-6, &self.device),
            fc1: linear(merged, merged, true, &self.device),
            fc2: linear(merged, v.out_hidden_size, true, &self.device),
        }
    }

    pub fn decoder_layer(&self) -> DecoderLayer {
        let t = &self.config.text;
        let hd = t.head_dim();
        let dev = &self.device;
        DecoderLayer {
            self_attn: TextAttention {
                q_proj: Proj::new(linear(t.hidden_size, t.num_attention_heads * hd, true, dev)),
                k_proj: Proj::new(linear(t.hidden_size, t.num_key_value_heads * hd, true, dev)),
                v_proj: Proj::new(linear(t.hidden_size, t.num_key_value_heads * hd, true, dev)),
                o_proj: Proj::new(linear(
                    t.num_attention_heads * hd,
                    t.hidden_size,
                    false,
                    dev,
                )),
                num_heads: t.num_attention_heads,
                num_kv_heads: t.num_key_value_heads,
            },
            mlp: Mlp::new(t.hidden_size, t.intermediate_size, false, dev),
            input_layernorm: norm(t.hidden_size, t.rms_norm_eps, dev),
            post_attention_layernorm: norm(t.hidden_size, t.rms_norm_eps, dev),
        }
    }
}

fn norm(d: usize, eps: f64, device: &Device) -> RmsNorm {
    RmsNormConfig::new(d).with_epsilon(eps).init(device)
}

fn linear(i: usize, o: usize, bias: bool, device: &Device) -> Linear {
    LinearConfig::new(i, o).with_bias(bias).init(device)
}

/// Renames `visual.<part>…` (hub layout) and `model.visual.<part>…` (newer layout) to the
/// part's own module paths.
fn vision_remap(part: &str) -> Vec<(String, String)> {
    vec![
        (format!(r"^(model\.)?visual\.{part}"), String::new()),
        // The MLP projections keep their base Linear in `inner` (as in the text decoder).
        (r"_proj\.(weight|bias)$".into(), "_proj.inner.$1".into()),
    ]
}

/// Rows of the token embedding matrix read from the memory-mapped checkpoint, so a batch
/// touches only the rows of the tokens it holds (a 7B teacher's matrix is 2 GB in f32).
struct EmbeddingRows {
    map: memmap2::Mmap,
    /// Byte range of the matrix, its dtype and width.
    range: Range<usize>,
    dtype: safetensors::Dtype,
    width: usize,
    path: PathBuf,
}

impl EmbeddingRows {
    const KEYS: [&'static str; 2] = [
        "model.embed_tokens.weight",
        "model.language_model.embed_tokens.weight",
    ];

    fn open(files: &[PathBuf]) -> Result<Self> {
        for path in files {
            let header = crate::io::tensors::safetensors_header(path)?;
            if !header.iter().any(|(k, _)| Self::KEYS.contains(&k.as_str())) {
                continue;
            }
            let file = std::fs::File::open(path).map_err(|e| LavitError::Io {
                path: path.clone(),
                source: e,
            })?;
            // SAFETY: the checkpoint is opened read-only; a writer changing it while we read
            // would corrupt only the embeddings we compute, as with any other reader.
            let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| LavitError::Io {
                path: path.clone(),
                source: e,
            })?;
            let bad = |m: String| LavitError::Weights {
                path: path.clone(),
                message: m,
            };
            let st = safetensors::SafeTensors::deserialize(&map)
                .map_err(|e| bad(format!("not a safetensors file ({e})")))?;
            let key = Self::KEYS
                .iter()
                .find(|k| st.tensor(k).is_ok())
                .ok_or_else(|| bad("no embedding matrix".into()))?;
            let view = st.tensor(key).map_err(|e| bad(e.to_string()))?;
            let [_, width] = view.shape()[..] else {
                return Err(bad(format!("{key} has shape {:?}", view.shape())));
            };
            let start = view.data().as_ptr() as usize - map.as_ptr() as usize;
            let range = start..start + view.data().len();
            let dtype = view.dtype();
            return Ok(Self {
                map,
                range,
                dtype,
                width,
                path: path.clone(),
            });
        }
        Err(LavitError::MissingTensors(
            "model.embed_tokens.weight (in no checkpoint file)".into(),
        ))
    }

    /// `[S, d]` embeddings of `ids`.
    fn embed(&self, ids: &[u32], d: usize, device: &Device) -> Result<Tensor<2>> {
        if d != self.width {
            return Err(LavitError::ShapeMismatch {
                key: "model.embed_tokens.weight".into(),
                expected: vec![0, d],
                found: vec![0, self.width],
            });
        }
        let elem = match self.dtype {
            safetensors::Dtype::F32 => 4,
            safetensors::Dtype::F16 | safetensors::Dtype::BF16 => 2,
            other => {
                return Err(LavitError::Weights {
                    path: self.path.clone(),
                    message: format!("embeddings of dtype {other:?}"),
                });
            }
        };
        let bytes = &self.map[self.range.clone()];
        let vocab = bytes.len() / (elem * d);
        let mut out = Vec::with_capacity(ids.len() * d);
        let mut cache: BTreeMap<u32, Range<usize>> = BTreeMap::new();
        for &id in ids {
            if id as usize >= vocab {
                return Err(LavitError::Invalid(format!(
                    "token id {id} is outside the model's vocabulary ({vocab})"
                )));
            }
            if let Some(r) = cache.get(&id) {
                let row: Vec<f32> = out[r.clone()].to_vec();
                out.extend(row);
                continue;
            }
            let row = &bytes[id as usize * d * elem..(id as usize + 1) * d * elem];
            let at = out.len();
            match self.dtype {
                safetensors::Dtype::F32 => out.extend(
                    row.chunks_exact(4)
                        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
                ),
                safetensors::Dtype::F16 => out.extend(
                    row.chunks_exact(2)
                        .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()),
                ),
                _ => out.extend(
                    row.chunks_exact(2)
                        .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32()),
                ),
            }
            cache.insert(id, at..at + d);
        }
        Ok(Tensor::<2>::from_data(
            TensorData::new(out, [ids.len(), d]),
            device,
        ))
    }
}

/// Whether a teacher of `weight_bytes` fits `budget` bytes with room for activations (a
/// quarter of the budget).
pub fn fits(weight_bytes: usize, budget: usize) -> bool {
    weight_bytes.saturating_mul(4) <= budget.saturating_mul(3)
}
