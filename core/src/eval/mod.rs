//! Evaluation: answering test questions with a model, and the metrics of the LaViT demo —
//! answer accuracy, gaze alignment with the teacher (KL and top-K overlap of latent-step maps)
//! and grounding (attention mass inside the ground-truth regions, pointing accuracy).

#[cfg(feature = "benchmarks")]
pub mod bench;
pub mod choice;
pub mod metrics;

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::data::synthetic::predicted_key;
use crate::data::viscot::Sample;
use crate::error::{LavitError, Result};
use crate::infer::{GenerateConfig, answer_image};
use crate::io::chat::ChatTokenizer;
use crate::io::processor::{ProcessorConfig, load_rgb};
use crate::lavit::heads::TrajectoryHead;
use crate::model::vlm::Qwen25Vl;

/// One test question with what grading and grounding need.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvalItem {
    pub id: String,
    pub image: String,
    pub question: String,
    pub qtype: String,
    pub key: String,
    pub regions: Vec<[u32; 4]>,
}

impl EvalItem {
    /// From a synthetic-task record (`qtype`, `key`, `regions` in its extra fields).
    pub fn from_sample(s: &Sample) -> Result<Self> {
        let e = &s.extra;
        let key = e["key"]
            .as_str()
            .ok_or_else(|| LavitError::Invalid(format!("sample {}: no answer `key`", s.id)))?;
        let regions: Vec<[u32; 4]> =
            serde_json::from_value(e["regions"].clone()).unwrap_or_default();
        Ok(Self {
            id: s.id.clone(),
            image: s.image.clone(),
            question: s.question.clone(),
            qtype: e["qtype"].as_str().unwrap_or("other").to_string(),
            key: key.to_string(),
            regions,
        })
    }
}

/// A model's answer to one [`EvalItem`], with its latent-step maps.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Prediction {
    pub id: String,
    pub qtype: String,
    pub text: String,
    pub predicted: String,
    pub correct: bool,
    /// Whether the model emitted its latent tokens.
    pub emitted_latents: bool,
    /// Raw attention of each latent step to the image tokens.
    pub attn_maps: Vec<Vec<f32>>,
    /// TrajectoryHead distribution of each latent step (students only).
    pub head_maps: Vec<Vec<f32>>,
    /// Merged image grid `(h, w)` of the maps.
    pub grid: (usize, usize),
    /// Original image size `(h, w)`.
    pub image_size: (usize, usize),
}

/// Answers `items` with greedy decoding.
#[allow(clippy::too_many_arguments)]
pub fn predict(
    vlm: &Qwen25Vl,
    head: Option<&TrajectoryHead>,
    tok: &ChatTokenizer,
    processor: &ProcessorConfig,
    latent_ids: &[u32],
    items: &[EvalItem],
    images_root: &Path,
    gen_cfg: &GenerateConfig,
    progress: &mut dyn FnMut(usize),
) -> Result<Vec<Prediction>> {
    let mut out = Vec::with_capacity(items.len());
    for (i, it) in items.iter().enumerate() {
        let img = load_rgb(&images_root.join(&it.image))?;
        let image_size = (img.height() as usize, img.width() as usize);
        let r = answer_image(
            vlm,
            head,
            latent_ids,
            tok,
            processor,
            &img,
            &it.question,
            gen_cfg,
        )?;
        let (text, grid) = (r.answer, r.grid);
        let predicted = predicted_key(&text);
        out.push(Prediction {
            id: it.id.clone(),
            qtype: it.qtype.clone(),
            correct: predicted == it.key.to_lowercase(),
            predicted,
            text,
            emitted_latents: !latent_ids.is_empty() && r.latent_steps.len() == latent_ids.len(),
            attn_maps: r.latent_steps.iter().map(|s| s.attn_map.clone()).collect(),
            head_maps: r
                .latent_steps
                .iter()
                .filter_map(|s| s.head_map.clone())
                .collect(),
            grid,
            image_size,
        });
        progress(i + 1);
    }
    Ok(out)
}
