//! The matrix products of a training step at a model shape, each timed on its own (`lavit bench
//! --what matmul`): what the backend's matmul reaches on the shapes a step runs, beside
//! PyTorch's on the same list (`bench/reference.py --what matmul --shapes-from`).
//!
//! The list follows the model code (`model/attention.rs`, `model/mlp.rs`, `model/vision.rs`):
//! a `Linear` of `d_in → d_out` over `s` rows is `x · W` (`W` stored `[d_in, d_out]`) forward,
//! `dY · Wᵀ` (right operand a transposed view) and `Xᵀ · dY` (left operand transposed) backward.
//! The frozen vision tower runs forward only; attention scores are `Q · Kᵀ` and `P · V` per head.

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::{Sequence, Timing, timed};
use crate::error::Result;
use crate::model::config::Qwen25VlConfig;

/// Which operand is a transposed view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// `A · B`.
    Nn,
    /// `A · Bᵀ`, `B` stored `[n, k]`.
    Nt,
    /// `Aᵀ · B`, `A` stored `[k, m]`.
    Tn,
}

/// One product `[batch] × ([m, k] · [k, n])` and how often a step runs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MatmulShape {
    pub name: String,
    pub batch: usize,
    pub m: usize,
    pub k: usize,
    pub n: usize,
    pub layout: Layout,
    /// Times per training step (layers × occurrences).
    pub per_step: usize,
}

impl MatmulShape {
    pub fn flops(&self) -> f64 {
        2.0 * (self.batch * self.m * self.k * self.n) as f64
    }
}

/// A `Linear` of `d_in → d_out` over `s` rows (`[s, d_in, d_out]`), `layers` times: forward,
/// and with `backward` the input and weight gradients.
fn linear(out: &mut Vec<MatmulShape>, name: &str, dims: [usize; 3], layers: usize, backward: bool) {
    let [s, d_in, d_out] = dims;
    let mut push = |suffix: &str, m, k, n, layout| {
        out.push(MatmulShape {
            name: format!("{name}{suffix}"),
            batch: 1,
            m,
            k,
            n,
            layout,
            per_step: layers,
        })
    };
    push("", s, d_in, d_out, Layout::Nn);
    if backward {
        push(" dX", s, d_out, d_in, Layout::Nt);
        push(" dW", d_in, s, d_out, Layout::Tn);
    }
}

/// Attention of `heads` heads of width `d` over `s` queries and `t` keys: scores `Q · Kᵀ` and
/// the weighted values `P · V` (with `backward`, their gradients too).
fn attention(out: &mut Vec<MatmulShape>, name: &str, dims: [usize; 4], n: usize, backward: bool) {
    let [heads, s, t, d] = dims;
    let shape = |suffix: &str, m, k, nn, layout| MatmulShape {
        name: format!("{name} {suffix}"),
        batch: heads,
        m,
        k,
        n: nn,
        layout,
        per_step: n,
    };
    out.push(shape("Q·Kᵀ", s, d, t, Layout::Nt));
    out.push(shape("P·V", s, t, d, Layout::Nn));
    if backward {
        out.push(shape("dP = dO·Vᵀ", s, d, t, Layout::Nt));
        out.push(shape("dV = Pᵀ·dO", t, s, d, Layout::Tn));
        out.push(shape("dQ = dS·K", s, t, d, Layout::Nn));
        out.push(shape("dK = dSᵀ·Q", t, s, d, Layout::Tn));
    }
}

/// The products of one training step of `cfg` on `seq` (full fine-tuning of the decoder, the
/// vision tower frozen, logits only on the supervised rows).
pub fn step_matmuls(cfg: &Qwen25VlConfig, seq: &Sequence) -> Vec<MatmulShape> {
    let mut out = Vec::new();
    text_matmuls(&mut out, cfg, seq);
    vision_matmuls(&mut out, cfg, seq);
    out
}

/// The decoder's products, forward and backward, and the LM head on the supervised rows.
fn text_matmuls(out: &mut Vec<MatmulShape>, cfg: &Qwen25VlConfig, seq: &Sequence) {
    let t = &cfg.text;
    let (s, h, hd, ff) = (seq.len(), t.hidden_size, t.head_dim(), t.intermediate_size);
    let kv = t.num_key_value_heads * hd;
    let layers = t.num_hidden_layers;
    linear(out, "text q/o proj", [s, h, h], 2 * layers, true);
    linear(out, "text k/v proj", [s, h, kv], 2 * layers, true);
    linear(out, "text MLP gate/up", [s, h, ff], 2 * layers, true);
    linear(out, "text MLP down", [s, ff, h], layers, true);
    let rows = seq.answer.end - seq.prompt_len;
    linear(
        out,
        "LM head (supervised rows)",
        [rows, h, t.vocab_size],
        1,
        true,
    );
    let dims = [t.num_attention_heads, s, s, hd];
    attention(out, "text attention", dims, layers, true);
}

/// The frozen vision tower's products (forward only) over the image's patches.
fn vision_matmuls(out: &mut Vec<MatmulShape>, cfg: &Qwen25VlConfig, seq: &Sequence) {
    let v = &cfg.vision;
    let images = &seq.host.images;
    let p: usize = images
        .iter()
        .map(|i| i.grid.iter().product::<usize>())
        .sum();
    let (vh, ff, depth) = (v.hidden_size, v.intermediate_size, v.depth);
    linear(out, "vision patch embed", [p, v.patch_dim(), vh], 1, false);
    linear(out, "vision qkv", [p, vh, 3 * vh], depth, false);
    linear(out, "vision proj", [p, vh, vh], depth, false);
    linear(out, "vision MLP gate/up", [p, vh, ff], 2 * depth, false);
    linear(out, "vision MLP down", [p, ff, vh], depth, false);
    let full = v.fullatt_block_indexes.len();
    let dims = [v.num_heads, p, p, v.head_dim()];
    attention(out, "vision full attention", dims, full, false);
    // The other blocks attend within windows of `window_size` pixels a side.
    let win = (v.window_size / v.patch_size).pow(2).clamp(1, p);
    let dims = [v.num_heads * p.div_ceil(win), win, win, v.head_dim()];
    attention(
        out,
        "vision window attention",
        dims,
        depth.saturating_sub(full),
        false,
    );
    let unit = v.spatial_merge_size * v.spatial_merge_size;
    let (merged, q) = (vh * unit, p / unit);
    linear(out, "vision merger fc1", [q, merged, merged], 1, false);
    linear(
        out,
        "vision merger fc2",
        [q, merged, v.out_hidden_size],
        1,
        false,
    );
}

/// Times `shape` on `device`: the median of `iters` products after `warmup`, each finished by
/// reading one element of the result back (f32; rank 3 with a leading batch of 1 for a
/// `Linear`, as the decoder's `[1, s, d]` activations call it).
pub fn time_matmul(
    shape: &MatmulShape,
    warmup: usize,
    iters: usize,
    device: &Device,
) -> Result<Timing> {
    let MatmulShape { batch, m, k, n, .. } = *shape;
    let dist = burn::tensor::Distribution::Uniform(-1.0, 1.0);
    let a = match shape.layout {
        Layout::Tn => Tensor::<3>::random([batch, k, m], dist, device).swap_dims(1, 2),
        _ => Tensor::<3>::random([batch, m, k], dist, device),
    };
    let b = match shape.layout {
        Layout::Nt => Tensor::<3>::random([batch, n, k], dist, device).swap_dims(1, 2),
        _ => Tensor::<3>::random([batch, k, n], dist, device),
    };
    timed(warmup, iters, || {
        let c = a.clone().matmul(b.clone());
        let _ = c.slice([0..1, 0..1, 0..1]).into_data();
        Ok(())
    })
}
