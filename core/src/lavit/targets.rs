//! Host-side preparation of the trajectory targets `p_k` (docs/ARCHITECTURE.md):
//!
//! teacher steps `p_1..p_T` (min-max normalised maps on the teacher's merged grid) →
//! resampled to the student's `K` latent steps → bilinearly resized to the student's merged
//! grid (`F.interpolate(mode="bilinear", align_corners=False)`) → optional top-K
//! sparsification → renormalised to sum 1. Latent token `k` is aligned with step `k` (not
//! only step 0 and the last latent, the reference's defect 2).

use serde::{Deserialize, Serialize};

/// How many patches of a trajectory map to keep (top-K sparsification of the target).
///
/// The reference keeps a fixed `K = 8` of the ≥ 256 merged tokens of a real image (≤ 3 %); on
/// a small grid a fixed 8 keeps mostly background (8 of the 36 tokens of a 168-px scene), so
/// the default is a fraction of the grid.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TopK {
    /// Every patch: the dense map.
    Dense,
    /// A fixed number of patches.
    Count(usize),
    /// This fraction of the grid's patches, rounded, at least one.
    Fraction(f64),
}

impl TopK {
    /// Patches kept on a grid of `n` (`None` = all).
    pub fn keep(&self, n: usize) -> Option<usize> {
        match *self {
            TopK::Dense => None,
            TopK::Count(k) => Some(k.min(n)),
            TopK::Fraction(f) => Some(((f * n as f64).round() as usize).clamp(1, n.max(1))),
        }
    }

    /// Parses `dense` (or `0`), a count (`8`), or a fraction (`0.05`, `5%`).
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let bad = || {
            format!(
                "top-K `{s}`: expected `dense`, a count (e.g. 8) or a fraction (e.g. 0.05 or 5%)"
            )
        };
        if s == "dense" || s == "0" {
            return Ok(TopK::Dense);
        }
        if let Some(p) = s.strip_suffix('%') {
            let f: f64 = p.trim().parse().map_err(|_| bad())?;
            return TopK::fraction(f / 100.0).ok_or_else(bad);
        }
        if let Ok(k) = s.parse::<usize>() {
            return Ok(TopK::Count(k));
        }
        let f: f64 = s.parse().map_err(|_| bad())?;
        TopK::fraction(f).ok_or_else(bad)
    }

    fn fraction(f: f64) -> Option<Self> {
        (f > 0.0 && f <= 1.0).then_some(TopK::Fraction(f))
    }
}

impl std::fmt::Display for TopK {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TopK::Dense => write!(f, "dense"),
            TopK::Count(k) => write!(f, "{k}"),
            TopK::Fraction(x) => write!(f, "{}%", x * 100.0),
        }
    }
}

/// Min-max normalisation `(x − min) / (max − min)`; a constant map becomes all ones.
pub fn min_max(v: &[f32]) -> Vec<f32> {
    let lo = v.iter().copied().fold(f32::INFINITY, f32::min);
    let hi = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if hi.partial_cmp(&lo) != Some(std::cmp::Ordering::Greater) {
        return vec![1.0; v.len()];
    }
    v.iter().map(|x| (x - lo) / (hi - lo)).collect()
}

/// Indices of the `k` largest values, largest first (ties: lower index first).
pub fn top_k(v: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[b].total_cmp(&v[a]).then(a.cmp(&b)));
    idx.truncate(k.min(v.len()));
    idx
}

/// Resamples `T` step maps to the `k` latent tokens.
///
/// * `T > k`: area pooling — latent `j` gets the mean of the steps that fall in its share
///   `[⌊j·T/k⌋, ⌈(j+1)·T/k⌉)` of the step axis (`F.interpolate(mode="area")`, i.e.
///   `adaptive_avg_pool1d`), so no step is skipped;
/// * `T < k`: linear interpolation at step positions `(j + 0.5)·T/k − 0.5` (clamped), i.e.
///   `F.interpolate(mode="linear", align_corners=False)`;
/// * `T == k`: the maps unchanged.
pub fn resample_steps(steps: &[Vec<f32>], k: usize) -> Vec<Vec<f32>> {
    let t = steps.len();
    assert!(t > 0, "no trajectory steps");
    if t == k {
        return steps.to_vec();
    }
    if t > k {
        return (0..k)
            .map(|j| {
                let lo = j * t / k;
                let hi = ((j + 1) * t).div_ceil(k);
                let n = (hi - lo) as f32;
                let mut m = vec![0f32; steps[0].len()];
                for s in &steps[lo..hi] {
                    for (a, b) in m.iter_mut().zip(s) {
                        *a += b / n;
                    }
                }
                m
            })
            .collect();
    }
    (0..k)
        .map(|j| {
            let pos = ((j as f64 + 0.5) * t as f64 / k as f64 - 0.5).max(0.0);
            let i0 = (pos.floor() as usize).min(t - 1);
            let i1 = (i0 + 1).min(t - 1);
            let w1 = (pos - i0 as f64) as f32;
            steps[i0]
                .iter()
                .zip(&steps[i1])
                .map(|(a, b)| a * (1.0 - w1) + b * w1)
                .collect()
        })
        .collect()
}

/// Bilinear resize of a row-major `h × w` map to `oh × ow`, with PyTorch's
/// `align_corners=False` source coordinates `(i + 0.5)·scale − 0.5` clamped at 0.
pub fn bilinear_resize(map: &[f32], (h, w): (usize, usize), (oh, ow): (usize, usize)) -> Vec<f32> {
    assert_eq!(map.len(), h * w, "map size does not match its grid");
    if (h, w) == (oh, ow) {
        return map.to_vec();
    }
    let coord = |i: usize, n_in: usize, n_out: usize| -> (usize, usize, f32) {
        let scale = n_in as f32 / n_out as f32;
        let src = ((i as f32 + 0.5) * scale - 0.5).max(0.0);
        let i0 = (src.floor() as usize).min(n_in - 1);
        let i1 = (i0 + 1).min(n_in - 1);
        (i0, i1, src - i0 as f32)
    };
    let mut out = Vec::with_capacity(oh * ow);
    for y in 0..oh {
        let (y0, y1, fy) = coord(y, h, oh);
        for x in 0..ow {
            let (x0, x1, fx) = coord(x, w, ow);
            let top = map[y0 * w + x0] * (1.0 - fx) + map[y0 * w + x1] * fx;
            let bot = map[y1 * w + x0] * (1.0 - fx) + map[y1 * w + x1] * fx;
            out.push(top * (1.0 - fy) + bot * fy);
        }
    }
    out
}

/// Keeps the `k` largest entries, zeroes the rest.
pub fn sparsify_top_k(v: &[f32], k: usize) -> Vec<f32> {
    let keep = top_k(v, k);
    let mut out = vec![0.0; v.len()];
    for i in keep {
        out[i] = v[i];
    }
    out
}

/// Clamps at 0 and scales to sum 1 (uniform if the map is all zero).
pub fn normalise(v: &[f32]) -> Vec<f32> {
    let clamped: Vec<f32> = v.iter().map(|x| x.max(0.0)).collect();
    let s: f32 = clamped.iter().sum();
    if s <= 0.0 {
        return vec![1.0 / v.len() as f32; v.len()];
    }
    clamped.iter().map(|x| x / s).collect()
}

/// Full target pipeline: `T` teacher maps on `teacher_grid` → `k` distributions on
/// `student_grid` (row-major, `k × (h·w)`), top-K taken on the student's grid.
pub fn trajectory_targets(
    steps: &[Vec<f32>],
    teacher_grid: (usize, usize),
    student_grid: (usize, usize),
    k: usize,
    keep: TopK,
) -> Vec<Vec<f32>> {
    let n = student_grid.0 * student_grid.1;
    resample_steps(steps, k)
        .iter()
        .map(|m| {
            let r = bilinear_resize(m, teacher_grid, student_grid);
            let r = match keep.keep(n) {
                Some(kk) => sparsify_top_k(&r, kk),
                None => r,
            };
            normalise(&r)
        })
        .collect()
}

/// Per-latent `V_top` targets ([`crate::lavit::losses::VtopTarget::Step`]): the teacher's `T`
/// step maps (on its own grid, `N` cells) pooled to `k` steps ([`resample_steps`]) and
/// renormalised to sum 1, each weighting the teacher's image states `vtop [N × d]`:
/// `target_k = Σ_n p_kn V_top,n`.
pub fn vtop_step_targets(steps: &[Vec<f32>], vtop: &[f32], d: usize, k: usize) -> Vec<Vec<f32>> {
    resample_steps(steps, k)
        .iter()
        .map(|m| {
            let p = normalise(m);
            let mut t = vec![0f32; d];
            for (w, row) in p.iter().zip(vtop.chunks_exact(d)) {
                for (a, b) in t.iter_mut().zip(row) {
                    *a += w * b;
                }
            }
            t
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_max_and_constant() {
        assert_eq!(min_max(&[1.0, 3.0, 2.0]), vec![0.0, 1.0, 0.5]);
        assert_eq!(min_max(&[2.0, 2.0]), vec![1.0, 1.0]);
    }

    #[test]
    fn resize_identity_and_mass() {
        let m: Vec<f32> = (0..12).map(|i| i as f32).collect();
        assert_eq!(bilinear_resize(&m, (3, 4), (3, 4)), m);
        let up = bilinear_resize(&m, (3, 4), (6, 8));
        assert_eq!(up.len(), 48);
        assert!((up[0] - 0.0).abs() < 1e-6 && (up[47] - 11.0).abs() < 1e-6);
    }

    #[test]
    fn steps_resampling() {
        let steps = vec![vec![0.0, 1.0], vec![1.0, 0.0]];
        assert_eq!(resample_steps(&steps, 2), steps);
        let four = resample_steps(&steps, 4);
        assert_eq!(four.len(), 4);
        assert_eq!(four[0], vec![0.0, 1.0]);
        assert_eq!(four[3], vec![1.0, 0.0]);
        let one = resample_steps(&steps, 1);
        assert_eq!(one[0], vec![0.5, 0.5]);
    }

    /// T > K pools neighbouring steps (area average), so every step reaches a latent token:
    /// five steps onto two latents average steps 0–2 and 2–4 (torch `adaptive_avg_pool1d`
    /// windows), four onto two average pairs.
    #[test]
    fn more_steps_than_latents_are_pooled() {
        let steps: Vec<Vec<f32>> = (0..5).map(|i| vec![i as f32, 10.0 * i as f32]).collect();
        let two = resample_steps(&steps, 2);
        assert_eq!(two, vec![vec![1.0, 10.0], vec![3.0, 30.0]]);
        let four: Vec<Vec<f32>> = steps[..4].to_vec();
        assert_eq!(
            resample_steps(&four, 2),
            vec![vec![0.5, 5.0], vec![2.5, 25.0]]
        );
        // A spike in the middle step: both pooling windows hold it (half its weight each);
        // linear resampling at step positions 0.25 and 1.75 would keep a quarter each.
        let mut spiky = vec![vec![0.0f32; 2]; 3];
        spiky[1] = vec![3.0, 0.0];
        let pooled = resample_steps(&spiky, 2);
        assert!((pooled[0][0] - 1.5).abs() < 1e-6 && (pooled[1][0] - 1.5).abs() < 1e-6);
    }

    #[test]
    fn top_k_scales_with_the_grid() {
        assert_eq!(TopK::parse("8").unwrap(), TopK::Count(8));
        assert_eq!(TopK::parse("dense").unwrap(), TopK::Dense);
        assert_eq!(TopK::parse("0").unwrap(), TopK::Dense);
        assert_eq!(TopK::parse("5%").unwrap(), TopK::Fraction(0.05));
        assert_eq!(TopK::parse("0.25").unwrap(), TopK::Fraction(0.25));
        assert!(TopK::parse("150%").is_err() && TopK::parse("many").is_err());
        let f = TopK::Fraction(1.0 / 32.0);
        assert_eq!(f.keep(256), Some(8)); // the reference's 8 of a 16 × 16 grid
        assert_eq!(f.keep(36), Some(1)); // floor of one on a 6 × 6 grid
        assert_eq!(TopK::Fraction(0.1).keep(36), Some(4));
        assert_eq!(TopK::Count(8).keep(4), Some(4));
        assert_eq!(TopK::Dense.keep(36), None);
        for t in [TopK::Dense, TopK::Count(8), TopK::Fraction(0.05)] {
            assert_eq!(TopK::parse(&t.to_string()).unwrap(), t);
        }
    }

    /// A step map that puts all its weight on one cell picks that cell's `V_top` row; a
    /// uniform map gives the mean; steps are pooled to the latent count first.
    #[test]
    fn per_step_vtop_weights_the_image_states_by_the_step_map() {
        let vtop = vec![1.0, 0.0, 0.0, 2.0, 4.0, 4.0]; // 3 cells × d = 2
        let steps = vec![vec![0.0, 1.0, 0.0], vec![1.0, 1.0, 1.0]];
        let t = vtop_step_targets(&steps, &vtop, 2, 2);
        assert_eq!(t[0], vec![0.0, 2.0]);
        let mean = [5.0 / 3.0, 2.0];
        assert!(t[1].iter().zip(mean).all(|(a, b)| (a - b).abs() < 1e-6));
        let pooled = vtop_step_targets(&steps, &vtop, 2, 1);
        assert_eq!(pooled.len(), 1);
        // Pooled map [0.5, 1, 0.5] / 2: rows weighted 1/4, 1/2, 1/4.
        assert!((pooled[0][0] - 1.25).abs() < 1e-6 && (pooled[0][1] - 2.0).abs() < 1e-6);
    }

    #[test]
    fn targets_sum_to_one_and_sparsify() {
        let steps = vec![vec![0.1, 0.9, 0.3, 0.2, 0.0, 0.5]];
        let t = trajectory_targets(&steps, (2, 3), (4, 6), 2, TopK::Count(3));
        for row in &t {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
            assert_eq!(row.iter().filter(|&&v| v > 0.0).count(), 3);
        }
    }
}
