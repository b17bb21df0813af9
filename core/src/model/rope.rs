//! Rotary position embeddings of Qwen2.5-VL.
//!
//! * Text: multimodal RoPE (M-RoPE). Every token has three position ids (t, h, w); the rotary
//!   half-dimension is split by `mrope_section` and chunk `i` takes its angle from axis `i % 3`
//!   (HF `Qwen2_5_VLRotaryEmbedding.recomposition_frequencies`). Position ids come from
//!   [`rope_index`], the port of HF `Qwen2_5_VLModel.get_rope_index`.
//! * Vision: 2-D axial RoPE over (row, column) of each patch, in merge-block order
//!   (HF `Qwen2_5_VLVisionRotaryEmbedding` + `vision_utils.get_vision_position_ids`).
//!
//! Angles are computed on the host in f32, exactly as HF does (`pos.float() * inv_freq`), and
//! uploaded as `cos`/`sin` tables of shape `[seq, head_dim]`.

use burn::prelude::*;

/// `inv_freq[i] = 1 / base^(2i / dim)` for `i < dim/2`, in f32 like HF.
pub fn inv_freq(base: f64, dim: usize) -> Vec<f32> {
    (0..dim / 2)
        .map(|i| {
            let exponent = (2 * i) as f32 / dim as f32;
            1.0 / (base as f32).powf(exponent)
        })
        .collect()
}

/// 3-D position ids of one sequence: `[3][seq]` (t, h, w), plus the rope delta HF keeps for
/// decoding (`max position + 1 - seq_len`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RopeIndex {
    pub positions: [Vec<i64>; 3],
    pub delta: i64,
}

impl RopeIndex {
    pub fn len(&self) -> usize {
        self.positions[0].len()
    }
    pub fn is_empty(&self) -> bool {
        self.positions[0].is_empty()
    }
    /// Position ids of `n` text tokens appended after this sequence (decoding).
    pub fn extend_text(&mut self, n: usize) {
        let start = self.len() as i64 + self.delta;
        for axis in &mut self.positions {
            axis.extend((0..n as i64).map(|i| start + i));
        }
    }
}

/// Port of HF `get_rope_index` for images (no video): text runs count up by one on all three
/// axes; an image block of `(t, h, w)` patches (`h, w` before merging) gets
/// `(start + t_i, start + h_i, start + w_i)` over its merged grid, and the text after it
/// resumes at `start + max(h, w) / merge`.
///
/// `image_token_id` marks image placeholder tokens; consecutive placeholders form one image and
/// must match the next grid in `grids` in count.
pub fn rope_index(
    input_ids: &[u32],
    image_token_id: u32,
    grids: &[[usize; 3]],
    spatial_merge_size: usize,
) -> Result<RopeIndex, String> {
    let mut pos: [Vec<i64>; 3] = [vec![], vec![], vec![]];
    let mut current: i64 = 0;
    let mut grid_iter = grids.iter();
    let mut i = 0;
    while i < input_ids.len() {
        if input_ids[i] != image_token_id {
            for axis in &mut pos {
                axis.push(current);
            }
            current += 1;
            i += 1;
            continue;
        }
        let run = input_ids[i..]
            .iter()
            .take_while(|&&t| t == image_token_id)
            .count();
        let [t, h, w] = *grid_iter
            .next()
            .ok_or_else(|| "more image placeholder runs than images".to_string())?;
        let (lh, lw) = (h / spatial_merge_size, w / spatial_merge_size);
        if run != t * lh * lw {
            return Err(format!(
                "image placeholder run of {run} tokens does not match grid {t}x{h}x{w} ({} tokens)",
                t * lh * lw
            ));
        }
        for ti in 0..t {
            for hi in 0..lh {
                for wi in 0..lw {
                    pos[0].push(current + ti as i64);
                    pos[1].push(current + hi as i64);
                    pos[2].push(current + wi as i64);
                }
            }
        }
        current += (h.max(w) / spatial_merge_size) as i64;
        i += run;
    }
    if grid_iter.next().is_some() {
        return Err("fewer image placeholder runs than images".into());
    }
    let max = pos.iter().flatten().copied().max().unwrap_or(-1);
    let delta = max + 1 - input_ids.len() as i64;
    Ok(RopeIndex {
        positions: pos,
        delta,
    })
}

/// M-RoPE `cos`/`sin` tables `[seq, head_dim]` for positions `pos` (HF
/// `Qwen2_5_VLRotaryEmbedding.forward`): angle of rotary pair `j` uses axis `axis(j)` where
/// the pairs are split by `mrope_section`, and the half-table is duplicated (`cat(f, f)`).
pub fn text_cos_sin(
    pos: &RopeIndex,
    range: std::ops::Range<usize>,
    inv_freq: &[f32],
    mrope_section: &[usize],
) -> (Vec<f32>, Vec<f32>) {
    let half = inv_freq.len();
    let mut axis_of = Vec::with_capacity(half);
    for (a, &n) in mrope_section.iter().enumerate() {
        axis_of.extend(std::iter::repeat_n(a % 3, n));
    }
    let dim = 2 * half;
    let n = range.len();
    let mut cos = vec![0f32; n * dim];
    let mut sin = vec![0f32; n * dim];
    for (row, s) in range.enumerate() {
        for j in 0..half {
            let p = pos.positions[axis_of[j]][s] as f32;
            let angle = p * inv_freq[j];
            let (sn, cs) = angle.sin_cos();
            cos[row * dim + j] = cs;
            cos[row * dim + half + j] = cs;
            sin[row * dim + j] = sn;
            sin[row * dim + half + j] = sn;
        }
    }
    (cos, sin)
}

/// Per-patch (row, column) of the vision tower in merge-block order (HF
/// `get_vision_position_ids`): blocks of `merge × merge` patches are contiguous.
pub fn vision_positions(grids: &[[usize; 3]], merge: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    for &[t, h, w] in grids {
        for _ in 0..t {
            for bh in 0..h / merge {
                for bw in 0..w / merge {
                    for mh in 0..merge {
                        for mw in 0..merge {
                            out.push((bh * merge + mh, bw * merge + mw));
                        }
                    }
                }
            }
        }
    }
    out
}

/// Vision `cos`/`sin` tables `[n_patches, head_dim]` for patches listed in `order` (indices
/// into [`vision_positions`]). Layout per row: `cat(f_h, f_w, f_h, f_w)` where
/// `f_* = pos * inv_freq` and `inv_freq` has `head_dim / 4` entries.
pub fn vision_cos_sin(
    positions: &[(usize, usize)],
    order: &[usize],
    head_dim: usize,
    theta: f64,
) -> (Vec<f32>, Vec<f32>) {
    let inv = inv_freq(theta, head_dim / 2);
    let q = inv.len();
    let mut cos = vec![0f32; order.len() * head_dim];
    let mut sin = vec![0f32; order.len() * head_dim];
    for (row, &p) in order.iter().enumerate() {
        let (ph, pw) = positions[p];
        for (j, &f) in inv.iter().enumerate() {
            for (k, pos) in [(0, ph), (1, pw)] {
                let angle = pos as f32 * f;
                let (sn, cs) = angle.sin_cos();
                for rep in 0..2 {
                    let col = rep * 2 * q + k * q + j;
                    cos[row * head_dim + col] = cs;
                    sin[row * head_dim + col] = sn;
                }
            }
        }
    }
    (cos, sin)
}

/// `x * cos + rotate_half(x) * sin` with `rotate_half(x) = cat(-x2, x1)` (HF
/// `apply_rotary_pos_emb`). `cos`/`sin` broadcast against `x` on all but the last axis.
pub fn apply_rotary<const D: usize>(x: Tensor<D>, cos: Tensor<D>, sin: Tensor<D>) -> Tensor<D> {
    let dim = x.dims()[D - 1];
    let half = dim / 2;
    let x1 = x.clone().narrow(D - 1, 0, half);
    let x2 = x.clone().narrow(D - 1, half, half);
    let rotated = Tensor::cat(vec![x2.neg(), x1], D - 1);
    x * cos + rotated * sin
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rope_index_text_image_text() {
        // 2 text, image 1x4x6 (=> 2x3 merged = 6 tokens), 3 text.
        let ids = [1, 2, 9, 9, 9, 9, 9, 9, 3, 4, 5];
        let r = rope_index(&ids, 9, &[[1, 4, 6]], 2).unwrap();
        assert_eq!(r.positions[0], vec![0, 1, 2, 2, 2, 2, 2, 2, 5, 6, 7]);
        assert_eq!(r.positions[1], vec![0, 1, 2, 2, 2, 3, 3, 3, 5, 6, 7]);
        assert_eq!(r.positions[2], vec![0, 1, 2, 3, 4, 2, 3, 4, 5, 6, 7]);
        assert_eq!(r.delta, 8 - 11);
    }

    #[test]
    fn rope_index_rejects_mismatch() {
        assert!(rope_index(&[9, 9, 9], 9, &[[1, 4, 4]], 2).is_err());
        assert!(rope_index(&[1, 2], 9, &[[1, 4, 4]], 2).is_err());
        assert!(rope_index(&[9, 9, 9, 9], 9, &[], 2).is_err());
    }

    #[test]
    fn vision_positions_are_block_major() {
        let p = vision_positions(&[[1, 2, 4]], 2);
        assert_eq!(
            p,
            vec![
                (0, 0),
                (0, 1),
                (1, 0),
                (1, 1),
                (0, 2),
                (0, 3),
                (1, 2),
                (1, 3)
            ]
        );
    }
}
