//! Text decoder of Qwen2.5-VL (HF `Qwen2_5_VLTextModel`): a Qwen2 decoder — RMSNorm, GQA
//! attention with q/k/v bias and M-RoPE, SwiGLU — with a KV cache for generation.

use burn::nn::{Embedding, EmbeddingConfig, LinearConfig, RmsNorm, RmsNormConfig};
use burn::prelude::*;
use burn::tensor::ops::PadMode;

use super::attention::{RowCapture, attention, repeat_kv};
use super::config::TextConfig;
use super::lora::Proj;
use super::mlp::Mlp;
use super::rope::apply_rotary;

#[derive(Module, Debug)]
pub struct TextAttention {
    pub q_proj: Proj,
    pub k_proj: Proj,
    pub v_proj: Proj,
    pub o_proj: Proj,
    pub num_heads: usize,
    pub num_kv_heads: usize,
}

#[derive(Module, Debug)]
pub struct DecoderLayer {
    pub self_attn: TextAttention,
    pub mlp: Mlp,
    pub input_layernorm: RmsNorm,
    pub post_attention_layernorm: RmsNorm,
}

#[derive(Module, Debug)]
pub struct TextModel {
    pub embed_tokens: Embedding,
    pub layers: Vec<DecoderLayer>,
    pub norm: RmsNorm,
}

/// Keys and values of past positions, per layer, before GQA repetition: `[B, Hkv, C, D]`,
/// of which the first [`KvCache::len`] positions are filled and the rest are zeros.
///
/// The key axis grows in blocks of [`KV_BLOCK`] positions (`C` = [`KvCache::columns`] of the
/// length), and the causal mask blocks the unfilled ones: generation then multiplies only by
/// key lengths that are multiples of the block, so on a GPU the attention products compile to
/// one kernel each (not one per key length modulo 4: other vector widths and bounds checks),
/// and a decoding step writes its position into the block instead of concatenating a longer
/// cache.
#[derive(Debug, Clone, Default)]
pub struct KvCache {
    layers: Vec<Option<(Tensor<4>, Tensor<4>)>>,
    len: usize,
}

/// The block in which the cache's key axis grows. A multiple of the key tiles of CubeCL's
/// matmul kernels (16 key columns a cube when decoding, 64 in a prompt's pass, on wgpu): the
/// attention products then never need a bounds-checked or narrower-vector variant for the
/// key axis. Natively on lavapipe the baseline student's first answer compiled 12 matmul
/// kernels instead of 17 (95 kernels in all instead of 114).
pub const KV_BLOCK: usize = 64;

impl KvCache {
    pub fn new(num_layers: usize) -> Self {
        Self {
            layers: vec![None; num_layers],
            len: 0,
        }
    }
    /// Number of cached positions.
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// The key columns the cache holds once it has `len` positions: `len` rounded up to
    /// [`KV_BLOCK`]. The decoder's mask must have this many columns.
    pub fn columns(len: usize) -> usize {
        len.next_multiple_of(KV_BLOCK)
    }
}

/// Appends the new positions `new [B, Hkv, S, D]` after the `len` filled ones of `cached`,
/// growing its key axis with zeros to `cols`; returns the whole `[B, Hkv, cols, D]`.
fn append_kv(cached: Option<Tensor<4>>, len: usize, new: Tensor<4>, cols: usize) -> Tensor<4> {
    let s = new.dims()[2];
    let grow = |t: Tensor<4>| {
        let have = t.dims()[2];
        if cols > have {
            t.pad([(0, cols - have), (0, 0)], PadMode::Constant(0.0))
        } else {
            t
        }
    };
    match cached {
        None => grow(new),
        Some(c) => {
            let [b, h, _, d] = new.dims();
            grow(c).slice_assign([0..b, 0..h, len..len + s, 0..d], new)
        }
    }
}

/// A layer's slot in the cache, with the filled length and the columns after this call.
pub struct KvSlot<'a> {
    kv: &'a mut Option<(Tensor<4>, Tensor<4>)>,
    len: usize,
    cols: usize,
}

/// Per-call inputs of the decoder besides the embeddings.
pub struct DecoderInputs<'a> {
    /// `cos`/`sin` tables `[1, 1, S, head_dim]` of the new positions.
    pub cos: Tensor<4>,
    pub sin: Tensor<4>,
    /// `true` = blocked, broadcastable to `[B, H, S, past + S]`.
    pub mask: Tensor<4, Bool>,
    /// Additive score bias (gating), broadcastable to `[B, H, S, past + S]`.
    pub bias: Option<Tensor<4>>,
    /// Layers whose probability rows to capture, and which rows/columns.
    pub capture: Option<(&'a [usize], &'a RowCapture)>,
    pub output_hidden_states: bool,
}

/// What a decoder pass returns.
pub struct DecoderOutput {
    /// Output of the final norm `[B, S, d]`.
    pub last_hidden_state: Tensor<3>,
    /// Output of the last decoder layer before the final norm (LaViT `V_top` source).
    pub pre_norm_last: Tensor<3>,
    /// Input embeddings and the output of every layer (the last one after the final norm, as
    /// HF returns `hidden_states`), when requested.
    pub hidden_states: Vec<Tensor<3>>,
    /// `(layer, [B, H, rows, cols])` for captured layers.
    pub captured: Vec<(usize, Tensor<4>)>,
}

impl TextModel {
    pub fn new(c: &TextConfig, device: &Device) -> Self {
        let hd = c.head_dim();
        let norm = || {
            RmsNormConfig::new(c.hidden_size)
                .with_epsilon(c.rms_norm_eps)
                .init(device)
        };
        let layers = (0..c.num_hidden_layers)
            .map(|_| DecoderLayer {
                self_attn: TextAttention {
                    q_proj: Proj::new(
                        LinearConfig::new(c.hidden_size, c.num_attention_heads * hd).init(device),
                    ),
                    k_proj: Proj::new(
                        LinearConfig::new(c.hidden_size, c.num_key_value_heads * hd).init(device),
                    ),
                    v_proj: Proj::new(
                        LinearConfig::new(c.hidden_size, c.num_key_value_heads * hd).init(device),
                    ),
                    o_proj: Proj::new(
                        LinearConfig::new(c.num_attention_heads * hd, c.hidden_size)
                            .with_bias(false)
                            .init(device),
                    ),
                    num_heads: c.num_attention_heads,
                    num_kv_heads: c.num_key_value_heads,
                },
                mlp: Mlp::new(c.hidden_size, c.intermediate_size, false, device),
                input_layernorm: norm(),
                post_attention_layernorm: norm(),
            })
            .collect();
        Self {
            embed_tokens: EmbeddingConfig::new(c.vocab_size, c.hidden_size).init(device),
            layers,
            norm: norm(),
        }
    }

    /// Runs the decoder layers on `inputs_embeds [B, S, d]`, appending to `cache` if given.
    pub fn forward(
        &self,
        inputs_embeds: Tensor<3>,
        inp: DecoderInputs<'_>,
        mut cache: Option<&mut KvCache>,
    ) -> DecoderOutput {
        let mut x = inputs_embeds;
        let mut hidden_states = Vec::new();
        let mut captured = Vec::new();
        if inp.output_hidden_states {
            hidden_states.push(x.clone());
        }
        let n = self.layers.len();
        let new = x.dims()[1];
        let (len, cols) = match cache.as_deref() {
            Some(c) => (c.len, KvCache::columns(c.len + new)),
            None => (0, 0),
        };
        for (i, layer) in self.layers.iter().enumerate() {
            let capture = inp
                .capture
                .filter(|(layers, _)| layers.contains(&i))
                .map(|(_, c)| c);
            let past = cache.as_deref_mut().map(|c| KvSlot {
                kv: &mut c.layers[i],
                len,
                cols,
            });
            let (out, probs) = layer.forward(x, &inp, capture, past);
            x = out;
            if let Some(p) = probs {
                captured.push((i, p));
            }
            if inp.output_hidden_states && i + 1 < n {
                hidden_states.push(x.clone());
            }
        }
        if let Some(c) = cache {
            c.len = len + new;
        }
        let pre_norm_last = x.clone();
        let last = self.norm.forward(x);
        if inp.output_hidden_states {
            hidden_states.push(last.clone());
        }
        DecoderOutput {
            last_hidden_state: last,
            pre_norm_last,
            hidden_states,
            captured,
        }
    }
}

impl DecoderLayer {
    /// One decoder layer (HF `Qwen2_5_VLDecoderLayer.forward`): returns its output and, with
    /// `capture`, the captured probability rows.
    pub fn forward(
        &self,
        x: Tensor<3>,
        inp: &DecoderInputs<'_>,
        capture: Option<&RowCapture>,
        past: Option<KvSlot<'_>>,
    ) -> (Tensor<3>, Option<Tensor<4>>) {
        let (attn, probs) =
            self.self_attn
                .forward(self.input_layernorm.forward(x.clone()), inp, capture, past);
        let x = x + attn;
        let out = x.clone() + self.mlp.forward(self.post_attention_layernorm.forward(x));
        (out, probs)
    }
}

impl TextAttention {
    /// HF `Qwen2_5_VLAttention.forward`.
    fn forward(
        &self,
        x: Tensor<3>,
        inp: &DecoderInputs<'_>,
        capture: Option<&RowCapture>,
        past: Option<KvSlot<'_>>,
    ) -> (Tensor<3>, Option<Tensor<4>>) {
        let [b, s, _] = x.dims();
        let (h, hkv) = (self.num_heads, self.num_kv_heads);
        let split = |t: Tensor<3>, heads: usize| {
            t.reshape([b as i32, s as i32, heads as i32, -1])
                .swap_dims(1, 2)
        };
        let q = split(self.q_proj.forward(x.clone()), h);
        let k = split(self.k_proj.forward(x.clone()), hkv);
        let v = split(self.v_proj.forward(x), hkv);
        let q = apply_rotary(q, inp.cos.clone(), inp.sin.clone());
        let k = apply_rotary(k, inp.cos.clone(), inp.sin.clone());
        let (k, v) = match past {
            Some(KvSlot { kv, len, cols }) => {
                let (pk, pv) = kv.take().unzip();
                let k = append_kv(pk, len, k, cols);
                let v = append_kv(pv, len, v, cols);
                *kv = Some((k.clone(), v.clone()));
                (k, v)
            }
            None => (k, v),
        };
        let k = repeat_kv(k, h / hkv);
        let v = repeat_kv(v, h / hkv);
        let (out, probs) = attention(q, k, v, Some(inp.mask.clone()), inp.bias.clone(), capture);
        let out = out.swap_dims(1, 2).reshape([b as i32, s as i32, -1]);
        (self.o_proj.forward(out), probs)
    }
}

impl DecoderLayer {
    /// The layer's seven projections by their HF names (the LoRA targets), in one list.
    pub fn projections(&self) -> [(&'static str, &Proj); 7] {
        let (a, m) = (&self.self_attn, &self.mlp);
        [
            ("q_proj", &a.q_proj),
            ("k_proj", &a.k_proj),
            ("v_proj", &a.v_proj),
            ("o_proj", &a.o_proj),
            ("gate_proj", &m.gate_proj),
            ("up_proj", &m.up_proj),
            ("down_proj", &m.down_proj),
        ]
    }

    /// Replaces each projection by `f(name, projection)`, in the order of [`Self::projections`].
    pub fn map_projections(self, mut f: impl FnMut(&str, Proj) -> Proj) -> Self {
        let (a, m) = (self.self_attn, self.mlp);
        Self {
            self_attn: TextAttention {
                q_proj: f("q_proj", a.q_proj),
                k_proj: f("k_proj", a.k_proj),
                v_proj: f("v_proj", a.v_proj),
                o_proj: f("o_proj", a.o_proj),
                ..a
            },
            mlp: super::mlp::Mlp {
                gate_proj: f("gate_proj", m.gate_proj),
                up_proj: f("up_proj", m.up_proj),
                down_proj: f("down_proj", m.down_proj),
            },
            ..self
        }
    }
}

impl TextModel {
    /// Attaches LoRA adapters to the chosen projections of every decoder layer.
    /// `A` matrices are drawn from `seed`.
    pub fn apply_lora(mut self, cfg: &super::lora::LoraConfig, seed: u64, device: &Device) -> Self {
        let mut init = super::init::SeededInit::new(seed);
        self.layers = self
            .layers
            .into_iter()
            .map(|l| {
                l.map_projections(|name, p| {
                    if cfg.targets.iter().any(|t| t == name) {
                        p.with_lora(cfg.rank, cfg.alpha, &mut init, device)
                    } else {
                        p
                    }
                })
            })
            .collect();
        self
    }

    /// Folds every adapter into its base weight.
    pub fn merge_lora(mut self) -> Self {
        self.layers = self
            .layers
            .into_iter()
            .map(|l| l.map_projections(|_, p| p.merge()))
            .collect();
        self
    }

    /// Freezes everything of the decoder except the LoRA adapters and the token embeddings
    /// (the latent tokens' rows must learn).
    pub fn freeze_base_for_lora(mut self) -> Self {
        self.layers = self
            .layers
            .into_iter()
            .map(|l| {
                let mut l = l.map_projections(|_, p| Proj {
                    inner: p.inner.no_grad(),
                    lora: p.lora,
                });
                l.input_layernorm = l.input_layernorm.no_grad();
                l.post_attention_layernorm = l.post_attention_layernorm.no_grad();
                l
            })
            .collect();
        self.norm = self.norm.no_grad();
        self
    }

    /// Number of LoRA parameters attached.
    pub fn lora_params(&self) -> usize {
        self.layers
            .iter()
            .flat_map(|l| l.projections().map(|(_, p)| p.lora_params()))
            .sum()
    }
}
