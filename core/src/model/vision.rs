//! Vision tower of Qwen2.5-VL (HF `Qwen2_5_VisionTransformerPretrainedModel`).
//!
//! patch embedding → window reordering of merge units → blocks (RMSNorm, attention with 2-D
//! RoPE inside windows, or over the whole image for `fullatt_block_indexes`, RMSNorm, SwiGLU) →
//! patch merger (RMSNorm, 2×2 merge, Linear, GELU, Linear) → inverse window reordering.
//!
//! Field names follow the HF checkpoint keys (`visual.blocks.N.attn.qkv`, …) so weights load
//! by name; the merger's `mlp.0` / `mlp.2` are renamed `fc1` / `fc2` at load time.

use burn::nn::conv::{Conv3d, Conv3dConfig};
use burn::nn::{Linear, LinearConfig, RmsNorm, RmsNormConfig};
use burn::prelude::*;
use burn::tensor::activation::gelu;

use super::attention::attention;
use super::config::VisionConfig;
use super::mlp::Mlp;
use super::rope::{apply_rotary, vision_cos_sin, vision_positions};

/// Conv3d with kernel = stride = `(T, P, P)`: a linear map on flattened patches.
#[derive(Module, Debug)]
pub struct PatchEmbed {
    pub proj: Conv3d,
}

impl PatchEmbed {
    /// `[N, C·T·P·P] -> [N, hidden]` (HF `Qwen2_5_VisionPatchEmbed.forward`).
    pub fn forward(&self, pixels: Tensor<2>) -> Tensor<2> {
        let w = self.proj.weight.val();
        let out = w.dims()[0];
        let w = w.reshape([out as i32, -1]);
        pixels.matmul(w.transpose())
    }
}

/// Self-attention of a vision block: fused `qkv` (with bias), 2-D RoPE, `proj`.
#[derive(Module, Debug)]
pub struct VisionAttention {
    pub qkv: Linear,
    pub proj: Linear,
    pub num_heads: usize,
}

#[derive(Module, Debug)]
pub struct VisionBlock {
    pub norm1: RmsNorm,
    pub norm2: RmsNorm,
    pub attn: VisionAttention,
    pub mlp: Mlp,
}

/// `ln_q` RMSNorm, then `2×2` neighbouring patches concatenated and mapped to the LLM width.
#[derive(Module, Debug)]
pub struct PatchMerger {
    pub ln_q: RmsNorm,
    pub fc1: Linear,
    pub fc2: Linear,
}

#[derive(Module, Debug)]
pub struct VisionTransformer {
    pub patch_embed: PatchEmbed,
    pub blocks: Vec<VisionBlock>,
    pub merger: PatchMerger,
    #[module(skip)]
    pub config: VisionConfig,
}

/// Contiguous attention segments (windows or whole images) of a packed sequence, prepared
/// for one batched attention call: segments are padded to the longest one.
#[derive(Debug, Clone)]
pub struct Segments {
    pub lens: Vec<usize>,
    pub max_len: usize,
    /// Flat index into the packed sequence for each padded slot (pads point at 0).
    gather: Option<Tensor<1, Int>>,
    /// Padded slot of each real token, to undo the padding.
    ungather: Option<Tensor<1, Int>>,
    /// `[n_seg, 1, 1, max_len]`, `true` on padded keys.
    key_mask: Option<Tensor<4, Bool>>,
}

impl Segments {
    pub fn new(lens: Vec<usize>, device: &Device) -> Self {
        let lens: Vec<usize> = lens.into_iter().filter(|&l| l > 0).collect();
        let max_len = lens.iter().copied().max().unwrap_or(0);
        if lens.iter().all(|&l| l == max_len) {
            return Self {
                lens,
                max_len,
                gather: None,
                ungather: None,
                key_mask: None,
            };
        }
        let n = lens.len();
        let mut gather = Vec::with_capacity(n * max_len);
        let mut ungather = Vec::new();
        let mut pad = Vec::with_capacity(n * max_len);
        let mut start = 0i64;
        for (s, &l) in lens.iter().enumerate() {
            for j in 0..max_len {
                let real = j < l;
                gather.push(if real { start + j as i64 } else { 0 });
                pad.push(!real);
                if real {
                    ungather.push((s * max_len + j) as i64);
                }
            }
            start += l as i64;
        }
        let key_mask = Tensor::<1, Bool>::from_data(TensorData::new(pad, [n * max_len]), device)
            .reshape([n, 1, 1, max_len]);
        Self {
            lens,
            max_len,
            gather: Some(Tensor::from_data(
                TensorData::new(gather, [n * max_len]),
                device,
            )),
            ungather: Some(Tensor::from_data(
                TensorData::new(ungather.clone(), [ungather.len()]),
                device,
            )),
            key_mask: Some(key_mask),
        }
    }

    /// `[N, H, D] -> [n_seg, H, max_len, D]`.
    fn pack(&self, x: Tensor<3>) -> Tensor<4> {
        let [_, h, d] = x.dims();
        let x = match &self.gather {
            Some(idx) => x.select(0, idx.clone()),
            None => x,
        };
        x.reshape([self.lens.len(), self.max_len, h, d])
            .swap_dims(1, 2)
    }

    /// `[n_seg, H, max_len, D] -> [N, H·D]`.
    fn unpack(&self, x: Tensor<4>) -> Tensor<2> {
        let [n, h, l, d] = x.dims();
        let x = x.swap_dims(1, 2).reshape([n * l, h * d]);
        match &self.ungather {
            Some(idx) => x.select(0, idx.clone()),
            None => x,
        }
    }
}

/// HF `get_vision_window_index`: the permutation of merge units that makes every
/// `w × w`-unit window contiguous (windows row-major, units row-major inside a window, edge
/// windows smaller), and the window lengths in patches.
pub fn window_index(grids: &[[usize; 3]], merge: usize, window: usize) -> (Vec<usize>, Vec<usize>) {
    let unit = merge * merge;
    let mut index = Vec::new();
    let mut lens = Vec::new();
    let mut offset = 0;
    for &[t, h, w] in grids {
        let (lh, lw) = (h / merge, w / merge);
        let nwh = lh.div_ceil(window);
        let nww = lw.div_ceil(window);
        for ti in 0..t {
            for wh in 0..nwh {
                for ww in 0..nww {
                    let mut n = 0;
                    for y in wh * window..((wh + 1) * window).min(lh) {
                        for x in ww * window..((ww + 1) * window).min(lw) {
                            index.push(offset + ti * lh * lw + y * lw + x);
                            n += 1;
                        }
                    }
                    lens.push(n * unit);
                }
            }
        }
        offset += t * lh * lw;
    }
    (index, lens)
}

impl VisionTransformer {
    pub fn new(config: &VisionConfig, device: &Device) -> Self {
        let d = config.hidden_size;
        let norm = || RmsNormConfig::new(d).with_epsilon(1e-6).init(device);
        let blocks = (0..config.depth)
            .map(|_| VisionBlock {
                norm1: norm(),
                norm2: norm(),
                attn: VisionAttention {
                    qkv: LinearConfig::new(d, 3 * d).init(device),
                    proj: LinearConfig::new(d, d).init(device),
                    num_heads: config.num_heads,
                },
                mlp: Mlp::new(d, config.intermediate_size, true, device),
            })
            .collect();
        let merged = d * config.spatial_merge_size * config.spatial_merge_size;
        let kernel = [
            config.temporal_patch_size,
            config.patch_size,
            config.patch_size,
        ];
        Self {
            patch_embed: PatchEmbed {
                proj: Conv3dConfig::new([config.in_channels, d], kernel)
                    .with_stride(kernel)
                    .with_bias(false)
                    .init(device),
            },
            blocks,
            merger: PatchMerger {
                ln_q: norm(),
                fc1: LinearConfig::new(merged, merged).init(device),
                fc2: LinearConfig::new(merged, config.out_hidden_size).init(device),
            },
            config: config.clone(),
        }
    }

    /// `pixel_values [N, C·T·P·P]` of all images (processor order) and their `(t, h, w)`
    /// patch grids → merged image features `[N / merge², out_hidden]` in the same order.
    pub fn forward(&self, pixel_values: Tensor<2>, grids: &[[usize; 3]]) -> Tensor<2> {
        let plan = VisionPlan::new(&self.config, grids, &pixel_values.device());
        let mut x = plan.embed(&self.patch_embed, pixel_values);
        for (i, block) in self.blocks.iter().enumerate() {
            x = plan.block(i, block, x);
        }
        plan.merge(&self.merger, x)
    }
}

/// The per-call geometry of the vision tower for a set of images: window reordering, rotary
/// tables and attention segments. Split out so that the tower can also run one block at a
/// time with blocks loaded one by one (the streamed teacher), computing exactly what
/// [`VisionTransformer::forward`] computes.
pub struct VisionPlan {
    config: VisionConfig,
    unit: usize,
    order: Tensor<1, Int>,
    inverse: Tensor<1, Int>,
    cos: Tensor<3>,
    sin: Tensor<3>,
    windows: Segments,
    full: Segments,
}

impl VisionPlan {
    pub fn new(config: &VisionConfig, grids: &[[usize; 3]], device: &Device) -> Self {
        let c = config;
        let merge = c.spatial_merge_size;
        let unit = merge * merge;
        let (win_index, win_lens) = window_index(grids, merge, c.merger_window_size());
        let full_lens: Vec<usize> = grids
            .iter()
            .flat_map(|&[t, h, w]| std::iter::repeat_n(h * w, t))
            .collect();
        // Patch order after window reordering of merge units.
        let order: Vec<usize> = win_index
            .iter()
            .flat_map(|&u| (0..unit).map(move |k| u * unit + k))
            .collect();
        let n = order.len();
        let positions = vision_positions(grids, merge);
        let (cos, sin) = vision_cos_sin(&positions, &order, c.head_dim(), c.rope_theta);
        let hd = c.head_dim();
        let cos =
            Tensor::<2>::from_data(TensorData::new(cos, [n, hd]), device).unsqueeze_dim::<3>(1);
        let sin =
            Tensor::<2>::from_data(TensorData::new(sin, [n, hd]), device).unsqueeze_dim::<3>(1);
        let order = Tensor::<1, Int>::from_data(
            TensorData::new(order.iter().map(|&i| i as i64).collect::<Vec<_>>(), [n]),
            device,
        );
        // Undoes the window permutation of the merged units (HF: `argsort(window_index)`).
        let mut inverse = vec![0i64; win_index.len()];
        for (pos, &u) in win_index.iter().enumerate() {
            inverse[u] = pos as i64;
        }
        let inverse =
            Tensor::<1, Int>::from_data(TensorData::new(inverse, [win_index.len()]), device);
        Self {
            config: config.clone(),
            unit,
            order,
            inverse,
            cos,
            sin,
            windows: Segments::new(win_lens, device),
            full: Segments::new(full_lens, device),
        }
    }

    /// Patch embedding, in window order.
    pub fn embed(&self, patch_embed: &PatchEmbed, pixel_values: Tensor<2>) -> Tensor<2> {
        patch_embed
            .forward(pixel_values)
            .select(0, self.order.clone())
    }

    /// Block `i` (window or full attention as the config says).
    pub fn block(&self, i: usize, block: &VisionBlock, x: Tensor<2>) -> Tensor<2> {
        let segs = if self.config.fullatt_block_indexes.contains(&i) {
            &self.full
        } else {
            &self.windows
        };
        block.forward(x, self.cos.clone(), self.sin.clone(), segs)
    }

    /// The merger, back in the images' order.
    pub fn merge(&self, merger: &PatchMerger, x: Tensor<2>) -> Tensor<2> {
        merger.forward(x, self.unit).select(0, self.inverse.clone())
    }
}

impl VisionBlock {
    pub fn forward(
        &self,
        x: Tensor<2>,
        cos: Tensor<3>,
        sin: Tensor<3>,
        segs: &Segments,
    ) -> Tensor<2> {
        let x = x.clone() + self.attn.forward(self.norm1.forward(x), cos, sin, segs);
        x.clone() + self.mlp.forward(self.norm2.forward(x))
    }
}

impl VisionAttention {
    /// HF `Qwen2_5_VLVisionAttention.forward` (non-flash path: attention per segment).
    pub fn forward(
        &self,
        x: Tensor<2>,
        cos: Tensor<3>,
        sin: Tensor<3>,
        segs: &Segments,
    ) -> Tensor<2> {
        let [n, d] = x.dims();
        let h = self.num_heads;
        let hd = d / h;
        let qkv = self.qkv.forward(x).reshape([n, 3, h, hd]);
        let q = qkv.clone().narrow(1, 0, 1).reshape([n, h, hd]);
        let k = qkv.clone().narrow(1, 1, 1).reshape([n, h, hd]);
        let v = qkv.narrow(1, 2, 1).reshape([n, h, hd]);
        let q = apply_rotary(q, cos.clone(), sin.clone());
        let k = apply_rotary(k, cos, sin);
        let (q, k, v) = (segs.pack(q), segs.pack(k), segs.pack(v));
        let mask = segs.key_mask.clone();
        let (out, _) = attention(q, k, v, mask, None, None);
        self.proj.forward(segs.unpack(out))
    }
}

impl PatchMerger {
    /// HF `Qwen2_5_VLPatchMerger.forward`: `fc2(gelu(fc1(ln_q(x).view(-1, unit·d))))`.
    pub fn forward(&self, x: Tensor<2>, unit: usize) -> Tensor<2> {
        let [n, d] = x.dims();
        let x = self.ln_q.forward(x).reshape([n / unit, unit * d]);
        self.fc2.forward(gelu(self.fc1.forward(x)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_index_pads_edges() {
        // llm grid 3x5 with window 2: windows (2x2,2x2,2x1 / 1x2,1x2,1x1)
        let (idx, lens) = window_index(&[[1, 6, 10]], 2, 2);
        assert_eq!(idx.len(), 15);
        assert_eq!(&idx[..4], &[0, 1, 5, 6]);
        assert_eq!(lens, vec![16, 16, 8, 8, 8, 4]);
        let mut sorted = idx.clone();
        sorted.sort();
        assert_eq!(sorted, (0..15).collect::<Vec<_>>());
    }
}
