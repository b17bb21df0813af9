//! Evaluation: answering test questions with a model, and the metrics of the LaViT demo —
//! answer accuracy, gaze alignment with the teacher (KL and top-K overlap of latent-step maps)
//! and grounding (attention mass inside the ground-truth regions, pointing accuracy).

#[cfg(feature = "benchmarks")]
pub mod bench;
pub mod choice;
pub mod metrics;

use serde::{Deserialize, Serialize};

use crate::data::viscot::Sample;
use crate::error::{LavitError, Result};

/// One test question with what grading and grounding need.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvalItem {
    pub id: String,
    pub image: String,
    pub question: String,
    pub qtype: String,
    pub key: String,
    pub regions: Vec<[u32; 4]>,
    /// The answer the task's language prior gives (synthetic prior task; `None` elsewhere).
    #[serde(default)]
    pub prior_key: Option<String>,
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
            prior_key: e["prior_key"].as_str().map(str::to_string),
        })
    }
}

/// The answer a question's language prior gives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriorKey {
    pub key: String,
    /// The prior's answer is not the right one.
    pub contradicts: bool,
}

impl EvalItem {
    /// The item's [`PriorKey`], if its task has a prior.
    pub fn prior(&self) -> Option<PriorKey> {
        self.prior_key.as_ref().map(|k| PriorKey {
            key: k.clone(),
            contradicts: !k.eq_ignore_ascii_case(&self.key),
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
    /// The item's prior answer and whether it is wrong ([`EvalItem::prior_key`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prior: Option<PriorKey>,
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
