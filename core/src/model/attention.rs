//! The one attention routine of both towers.
//!
//! `softmax(Q Kᵀ · scale + mask + bias) V` (HF `eager_attention_forward`), computed by burn's
//! fused `attention` op, with two extras the LaViT method needs:
//!
//! * an additive `bias` on the scores (curriculum sensory gating adds `ln g` on image keys);
//! * a [`RowCapture`]: the probability rows of chosen query positions restricted to chosen key
//!   columns. They are recomputed for those rows only (`Q[rows] Kᵀ`), so the memory held per
//!   captured layer is `O(heads · rows · keys)`, never the full `[heads, S, S]` matrix of every
//!   layer that the reference implementation materialises (its defect 3).

use std::cell::Cell;

use burn::prelude::*;
use burn::tensor::activation::softmax;
use burn::tensor::module::attention as fused_attention;
use burn::tensor::ops::AttentionModuleOptions;

/// Query rows × key columns whose attention probabilities a forward pass should return.
#[derive(Debug, Clone)]
pub struct RowCapture {
    /// Query positions (indices into the current query block).
    pub rows: Tensor<1, Int>,
    /// Key positions (indices into the full key sequence, cache included).
    pub cols: Tensor<1, Int>,
    /// Compute the captured rows against detached keys: their gradient reaches the queries
    /// only (a loss on them moves what the captured rows look for, not what the keys hold).
    pub detach_keys: bool,
}

impl RowCapture {
    pub fn new(rows: Tensor<1, Int>, cols: Tensor<1, Int>) -> Self {
        Self {
            rows,
            cols,
            detach_keys: false,
        }
    }

    /// The same capture with keys detached or not ([`Self::detach_keys`]).
    pub fn detach_keys(mut self, detach: bool) -> Self {
        self.detach_keys = detach;
        self
    }
}

thread_local! {
    /// Elements of attention probabilities that captures on this thread produced since the
    /// last [`reset_capture_counter`]; lets tests bound extraction memory instead of trusting
    /// a claim.
    static CAPTURED_ELEMENTS: Cell<usize> = const { Cell::new(0) };
    /// Largest score block (elements) that one capture on this thread computed.
    static CAPTURE_PEAK_BLOCK: Cell<usize> = const { Cell::new(0) };
}

/// Resets this thread's capture counters (see [`capture_counters`]).
pub fn reset_capture_counter() {
    CAPTURED_ELEMENTS.with(|c| c.set(0));
    CAPTURE_PEAK_BLOCK.with(|c| c.set(0));
}

/// `(total elements returned by captures, largest score block computed for one capture)` on
/// this thread.
pub fn capture_counters() -> (usize, usize) {
    (
        CAPTURED_ELEMENTS.with(Cell::get),
        CAPTURE_PEAK_BLOCK.with(Cell::get),
    )
}

/// `repeat_kv`: `[B, Hkv, S, D] -> [B, Hkv * n_rep, S, D]`, head `h` reading kv head `h / n_rep`.
pub fn repeat_kv(x: Tensor<4>, n_rep: usize) -> Tensor<4> {
    if n_rep == 1 {
        return x;
    }
    let [b, hkv, s, d] = x.dims();
    x.unsqueeze_dim::<5>(2)
        .expand([b, hkv, n_rep, s, d])
        .reshape([b, hkv * n_rep, s, d])
}

/// Scaled dot-product attention.
///
/// * `q`: `[B, H, Sq, D]`; `k`, `v`: `[B, H, Sk, D]` (repeat GQA heads before calling).
/// * `mask`: `true` = may not attend (broadcastable to `[B, H, Sq, Sk]`).
/// * `bias`: added to the scores (broadcastable to `[B, H, Sq, Sk]`); `-inf` blocks.
/// * `capture`: also return `softmax(...)[.., rows, cols]` as `[B, H, rows, cols]`.
pub fn attention(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    mask: Option<Tensor<4, Bool>>,
    bias: Option<Tensor<4>>,
    capture: Option<&RowCapture>,
) -> (Tensor<4>, Option<Tensor<4>>) {
    let [b, h, sq, d] = q.dims();
    let sk = k.dims()[2];
    let scale = 1.0 / (d as f64).sqrt();
    let captured = capture.map(|c| {
        let rows = c.rows.clone();
        let n_rows = rows.dims()[0];
        let q_rows = q.clone().select(2, rows.clone());
        let keys = if c.detach_keys {
            k.clone().detach()
        } else {
            k.clone()
        };
        let mut scores = q_rows.matmul(keys.swap_dims(2, 3)) * scale;
        if let Some(m) = &mask {
            let m = m.clone().expand([b, h, sq, sk]).select(2, rows.clone());
            scores = scores.mask_fill(m, f32::NEG_INFINITY);
        }
        if let Some(bi) = &bias {
            scores = scores + bi.clone().expand([b, h, sq, sk]).select(2, rows);
        }
        let probs = softmax(scores, 3).select(3, c.cols.clone());
        CAPTURE_PEAK_BLOCK.with(|c| c.set(c.get().max(b * h * n_rows * sk)));
        CAPTURED_ELEMENTS.with(|c| c.set(c.get() + probs.dims().iter().product::<usize>()));
        probs
    });
    let options = AttentionModuleOptions {
        scale: Some(scale),
        softcap: None,
        is_causal: false,
    };
    let mask = mask.map(|m| m.expand([b, h, sq, sk]));
    let bias = bias.map(|bi| bi.expand([b, h, sq, sk]));
    let out = fused_attention(q, k, v, mask, bias, options);
    (out, captured)
}

/// Causal mask for `sq` new queries after `past` cached keys: query `i` may see keys
/// `0..=past + i`. Shape `[1, 1, sq, keys]`, `true` = blocked; `keys ≥ past + sq`, the
/// columns from `past + sq` on (a KV cache's unfilled padding) blocked for every query.
pub fn causal_mask(sq: usize, past: usize, keys: usize, device: &Device) -> Tensor<4, Bool> {
    debug_assert!(
        keys >= past + sq,
        "{keys} key columns for {past} + {sq} positions"
    );
    Tensor::<2, Bool>::tril_mask([sq, keys], past as i64, device).unsqueeze::<4>()
}
