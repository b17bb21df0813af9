//! Teacher signals (the LaViT paper's "what to see" and "where to look"; docs/ARCHITECTURE.md): `V_top` and the attention trajectory, from one forward pass
//! over `prompt + answer`.
//!
//! * `V_top` — output of the last decoder layer, before the final norm, at the image-token
//!   positions: `[N_img, d_T]`.
//! * trajectory — for reasoning step `t` (a token span of the answer): the attention of the
//!   step's tokens to the image tokens, averaged over heads, over the step's query rows and over
//!   the last `L` layers, min-max normalised: `p_t ∈ [0,1]^{N_img}`; plus its top-K patches.
//!
//! Only the answer rows × image columns of the last `L` layers are computed
//! ([`crate::model::attention::RowCapture`]), never a full `[heads, S, S]` matrix per layer.

use std::ops::Range;

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{LavitError, Result};
use crate::io::chat::ChatTokenizer;
use crate::io::checkpoint::HostInputs;
use crate::lavit::targets::{TopK, min_max, top_k};
use crate::model::attention::RowCapture;
use crate::model::vlm::{ForwardOptions, LogitRows, Qwen25Vl};
use crate::util::{index_tensor, to_vec_f32};

/// Which query rows make a step's trajectory map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TrajRows {
    /// The step's own tokens: where the teacher looks while it writes this step.
    #[default]
    Step,
    /// Every position after the image up to the end of the step (question, earlier steps and
    /// this one), as the reference implementation averages them.
    SinceImage,
}

impl TrajRows {
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        match s {
            "step" => Ok(Self::Step),
            "since-image" => Ok(Self::SinceImage),
            o => Err(format!(
                "trajectory rows `{o}`: expected step or since-image"
            )),
        }
    }
}

/// Extraction settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ExtractConfig {
    /// Last `L` decoder layers averaged for the trajectory (reference: 8).
    pub layers: usize,
    /// Top-K patches recorded per step.
    pub top_k: TopK,
    /// The query rows of each step's map.
    #[serde(default)]
    pub rows: TrajRows,
}

impl Default for ExtractConfig {
    fn default() -> Self {
        Self {
            layers: crate::defaults::TRAJ_LAYERS,
            top_k: crate::defaults::TRAJ_TOP_K,
            rows: TrajRows::default(),
        }
    }
}

/// What the teacher yields for one sample.
#[derive(Debug, Clone, PartialEq)]
pub struct TeacherSignals {
    /// `[N_img × d_T]`, row-major.
    pub vtop: Vec<f32>,
    pub d_teacher: usize,
    /// `T` maps over the `N_img` image tokens, min-max normalised.
    pub traj: Vec<Vec<f32>>,
    /// Top-K image-token indices per step.
    pub topk: Vec<Vec<usize>>,
    /// The teacher's merged image grid `(h, w)`; `h · w = N_img`.
    pub grid: (usize, usize),
}

impl TeacherSignals {
    pub fn n_img(&self) -> usize {
        self.grid.0 * self.grid.1
    }
    /// `mean_patches(V_top)`.
    pub fn vtop_mean(&self) -> Vec<f32> {
        let n = self.n_img();
        let mut m = vec![0f32; self.d_teacher];
        for row in self.vtop.chunks_exact(self.d_teacher) {
            for (a, b) in m.iter_mut().zip(row) {
                *a += b;
            }
        }
        m.iter_mut().for_each(|x| *x /= n as f32);
        m
    }
}

/// Splits an answer into reasoning steps: by lines if it has several, else by sentences.
/// Separators stay attached to the end of their step, so the steps concatenate back to the
/// answer exactly.
pub fn split_steps(answer: &str) -> Vec<String> {
    let by_lines: Vec<String> = answer.split_inclusive('\n').map(str::to_string).collect();
    let pieces = if by_lines.iter().filter(|s| !s.trim().is_empty()).count() > 1 {
        by_lines
    } else {
        let mut out = Vec::new();
        let mut cur = String::new();
        let chars: Vec<char> = answer.chars().collect();
        for (i, &c) in chars.iter().enumerate() {
            cur.push(c);
            let end = matches!(c, '.' | '?' | '!' | ';')
                && chars.get(i + 1).is_none_or(|n| n.is_whitespace());
            if end {
                out.push(std::mem::take(&mut cur));
            }
        }
        if !cur.is_empty() {
            out.push(cur);
        }
        out
    };
    // Merge whitespace-only pieces into their neighbour.
    let mut steps: Vec<String> = Vec::new();
    for p in pieces {
        if p.trim().is_empty()
            && let Some(last) = steps.last_mut()
        {
            last.push_str(&p);
            continue;
        }
        if steps.last().is_some_and(|l: &String| l.trim().is_empty()) {
            let prev = steps.pop().unwrap_or_default();
            steps.push(prev + &p);
        } else {
            steps.push(p);
        }
    }
    if steps.is_empty() {
        steps.push(answer.to_string());
    }
    steps
}

/// Appends the steps' tokens to `prompt`; returns the full ids and each step's token range.
pub fn append_steps(
    tok: &ChatTokenizer,
    prompt: &[u32],
    steps: &[String],
) -> Result<(Vec<u32>, Vec<Range<usize>>)> {
    let mut ids = prompt.to_vec();
    let mut spans = Vec::new();
    for s in steps {
        let start = ids.len();
        ids.extend(tok.encode(s)?);
        if ids.len() == start {
            continue;
        }
        spans.push(start..ids.len());
    }
    if spans.is_empty() {
        return Err(LavitError::Invalid("the answer has no tokens".into()));
    }
    Ok((ids, spans))
}

/// What extracting one sample needs besides the teacher: which key columns are the image,
/// which query rows are captured, which layers, and how the rows make each step.
pub struct SignalPlan {
    cols: Vec<usize>,
    rows: Vec<usize>,
    step_rows: Vec<Range<usize>>,
    /// Captured decoder layers (the last `L`).
    pub layers: Vec<usize>,
    grid: (usize, usize),
    top_k: crate::lavit::targets::TopK,
}

impl SignalPlan {
    /// The plan for `inputs` (prompt + answer, one image) of a teacher with `n_layers` decoder
    /// layers, image placeholder `image_token` and merge size `merge`.
    pub fn new(
        inputs: &HostInputs,
        step_spans: &[Range<usize>],
        cfg: &ExtractConfig,
        n_layers: usize,
        image_token: u32,
        merge: usize,
    ) -> Result<Self> {
        if inputs.images.len() != 1 {
            return Err(LavitError::Invalid(format!(
                "teacher signals need exactly one image per sample, got {}",
                inputs.images.len()
            )));
        }
        let cols: Vec<usize> = inputs
            .input_ids
            .iter()
            .enumerate()
            .filter(|&(_, &t)| t == image_token)
            .map(|(i, _)| i)
            .collect();
        // The rows each step averages, and the union of them that is captured.
        let after_image = cols.last().map(|&c| c + 1).unwrap_or(0);
        let step_rows: Vec<Range<usize>> = match cfg.rows {
            TrajRows::Step => step_spans.to_vec(),
            TrajRows::SinceImage => step_spans.iter().map(|s| after_image..s.end).collect(),
        };
        let rows: Vec<usize> = match cfg.rows {
            TrajRows::Step => step_spans.iter().flat_map(|r| r.clone()).collect(),
            TrajRows::SinceImage => (after_image
                ..step_spans
                    .iter()
                    .map(|s| s.end)
                    .max()
                    .unwrap_or(after_image))
                .collect(),
        };
        if let Some(&r) = rows.iter().find(|&&r| r >= inputs.input_ids.len()) {
            return Err(LavitError::Invalid(format!(
                "step position {r} is past the sequence end"
            )));
        }
        let l = cfg.layers.min(n_layers).max(1);
        let g = inputs.images[0].grid;
        Ok(Self {
            cols,
            rows,
            step_rows,
            layers: (n_layers - l..n_layers).collect(),
            grid: (g[1] / merge, g[2] / merge),
            top_k: cfg.top_k,
        })
    }

    /// The rows × columns to capture in [`Self::layers`].
    pub fn capture(&self, device: &Device) -> RowCapture {
        RowCapture::new(
            index_tensor(&self.rows, device),
            index_tensor(&self.cols, device),
        )
    }

    /// The signals from the captured probabilities (`[1, H, rows, cols]` per captured layer)
    /// and the last layer's output before the final norm (`[1, S, d]`).
    pub fn reduce(&self, captured: &[Tensor<4>], pre_norm_last: Tensor<3>) -> TeacherSignals {
        let device = pre_norm_last.device();
        // [1, H, R, N] per layer → mean over layers and heads → [R, N].
        let n = self.cols.len();
        let mut acc: Option<Tensor<2>> = None;
        for probs in captured {
            let [_, h, r, _] = probs.dims();
            let m = probs.clone().sum_dim(1).reshape([r, n]) / h as f64;
            acc = Some(match acc {
                Some(a) => a + m,
                None => m,
            });
        }
        let per_row = to_vec_f32(acc.expect("captured layers") / captured.len() as f64);
        let row_of = |pos: usize| self.rows.iter().position(|&r| r == pos);
        let mut traj = Vec::with_capacity(self.step_rows.len());
        let mut topk = Vec::with_capacity(self.step_rows.len());
        let keep = self.top_k.keep(n).unwrap_or(n);
        for span in &self.step_rows {
            let len = span.len().max(1);
            let mut m = vec![0f32; n];
            for pos in span.clone() {
                let r = row_of(pos).expect("every step row is captured");
                for (a, b) in m.iter_mut().zip(&per_row[r * n..(r + 1) * n]) {
                    *a += b / len as f32;
                }
            }
            topk.push(top_k(&m, keep));
            traj.push(min_max(&m));
        }
        let [_, s, d] = pre_norm_last.dims();
        let vtop = to_vec_f32(
            pre_norm_last
                .reshape([s, d])
                .select(0, index_tensor(&self.cols, &device)),
        );
        TeacherSignals {
            vtop,
            d_teacher: d,
            traj,
            topk,
            grid: self.grid,
        }
    }
}

/// Runs the teacher on `inputs` (prompt + answer, one image) and reduces the captured rows.
pub fn extract_signals(
    teacher: &Qwen25Vl,
    inputs: &HostInputs,
    step_spans: &[Range<usize>],
    cfg: &ExtractConfig,
) -> Result<TeacherSignals> {
    let c = &teacher.config;
    let plan = SignalPlan::new(
        inputs,
        step_spans,
        cfg,
        c.text.num_hidden_layers,
        c.image_token_id,
        c.vision.spatial_merge_size,
    )?;
    let device = teacher.device();
    let capture = plan.capture(&device);
    let out = teacher.forward(
        &inputs.to_device(&device),
        ForwardOptions {
            logits: LogitRows::None,
            capture: Some((&plan.layers, &capture)),
            ..Default::default()
        },
    )?;
    let captured: Vec<Tensor<4>> = out.decoder.captured.into_iter().map(|(_, p)| p).collect();
    Ok(plan.reduce(&captured, out.decoder.pre_norm_last))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_by_sentence_and_line() {
        let s = split_steps("The cube is red. It is left of the ball.");
        assert_eq!(s, vec!["The cube is red.", " It is left of the ball."]);
        assert_eq!(s.concat(), "The cube is red. It is left of the ball.");
        let s = split_steps("Step 1: find it\nStep 2: count\n");
        assert_eq!(s, vec!["Step 1: find it\n", "Step 2: count\n"]);
        assert_eq!(split_steps("Four"), vec!["Four"]);
        assert_eq!(split_steps("3.5 apples"), vec!["3.5 apples"]);
    }
}
