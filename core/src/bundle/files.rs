//! A student's files in memory (what a browser fetches), the heads' safetensors, and the
//! image processor's `preprocessor_config.json`.

use std::path::Path;

use burn::prelude::*;
use burn::store::{ModuleSnapshot, SafetensorsStore};
use serde_json::Value;

use super::ModelBundle;
use crate::error::{LavitError, Result};
use crate::io::chat::ChatTokenizer;
use crate::io::checkpoint::processor_from_json;
use crate::io::config::parse_config;
use crate::io::processor::ProcessorConfig;
use crate::io::weights::{WeightSource, load_weights};
use crate::lavit::student::{LavitConfig, LavitStudent};
use crate::model::Qwen25Vl;

/// The files of a saved student, held in memory.
pub struct BundleFiles {
    pub config_json: Vec<u8>,
    pub model_safetensors: Vec<u8>,
    /// `lavit_heads.safetensors` (empty for a plain model).
    pub heads_safetensors: Vec<u8>,
    pub tokenizer_json: Vec<u8>,
    /// `preprocessor_config.json`, if the model has one (else the defaults).
    pub preprocessor_json: Option<Vec<u8>>,
}

impl BundleFiles {
    /// The files of a model as a browser fetches them: no `preprocessor_config.json` (the
    /// defaults), `heads_safetensors` empty for a plain model.
    pub fn new(
        config_json: Vec<u8>,
        model_safetensors: Vec<u8>,
        heads_safetensors: Vec<u8>,
        tokenizer_json: Vec<u8>,
    ) -> Self {
        Self {
            config_json,
            model_safetensors,
            heads_safetensors,
            tokenizer_json,
            preprocessor_json: None,
        }
    }

    pub(super) fn load(self, device: &Device) -> Result<ModelBundle> {
        let bad = |message: String| LavitError::Config {
            path: "config.json".into(),
            message,
        };
        let config = parse_config(&self.config_json).map_err(bad)?;
        let raw: Value = serde_json::from_slice(&self.config_json)
            .map_err(|e| bad(format!("invalid JSON: {e}")))?;
        let vlm = load_weights(
            Qwen25Vl::new(&config, device),
            WeightSource::Bytes(vec![("model.safetensors".into(), self.model_safetensors)]),
        )?;
        let model = match raw.get("lavit") {
            None => LavitStudent::new(vlm, LavitConfig::default(), 0),
            Some(section) => {
                let lavit: LavitConfig = serde_json::from_value(section.clone())
                    .map_err(|e| bad(format!("bad `lavit` section: {e}")))?;
                with_heads(
                    LavitStudent::new(vlm, lavit, 0),
                    self.heads_safetensors,
                    Path::new("lavit_heads.safetensors"),
                )?
            }
        };
        let settings =
            match &self.preprocessor_json {
                Some(bytes) => Some(serde_json::from_slice::<Value>(bytes).map_err(|e| {
                    LavitError::Config {
                        path: "preprocessor_config.json".into(),
                        message: format!("invalid JSON: {e}"),
                    }
                })?),
                None => None,
            };
        Ok(ModelBundle {
            model,
            tokenizer: ChatTokenizer::from_bytes(&self.tokenizer_json, "tokenizer.json")?,
            processor: processor_from_json(settings.as_ref(), &config),
        })
    }
}

/// `student` with its two heads read from the safetensors `bytes` (`path` names them in
/// errors).
pub(super) fn with_heads(
    student: LavitStudent,
    bytes: Vec<u8>,
    path: &Path,
) -> Result<LavitStudent> {
    let mut heads = (student.vtop_head, student.traj_head);
    let mut store = SafetensorsStore::from_bytes(Some(bytes));
    heads
        .load_from(&mut store)
        .map_err(|e| LavitError::Weights {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    Ok(LavitStudent {
        vlm: student.vlm,
        vtop_head: heads.0,
        traj_head: heads.1,
        lavit: student.lavit,
    })
}

/// The heads of `model` as safetensors bytes.
pub(super) fn heads_bytes(model: &LavitStudent) -> Result<Vec<u8>> {
    let heads = (model.vtop_head.valid(), model.traj_head.valid());
    let mut store = SafetensorsStore::from_bytes(None);
    heads
        .save_into(&mut store)
        .map_err(|e| LavitError::Other(format!("saving the heads: {e}")))?;
    store
        .get_bytes()
        .map_err(|e| LavitError::Other(format!("saving the heads: {e}")))
}

/// HF's `preprocessor_config.json` of a `Qwen2VLImageProcessor` with these settings
/// (transformers reads it, and so does [`processor_from_json`]).
pub(super) fn preprocessor_json(p: &ProcessorConfig) -> Value {
    use crate::io::processor::{CLIP_MEAN, CLIP_STD};
    serde_json::json!({
        "image_processor_type": "Qwen2VLImageProcessor",
        "do_resize": true,
        "do_rescale": true,
        "rescale_factor": 1.0 / 255.0,
        "do_normalize": true,
        "image_mean": CLIP_MEAN,
        "image_std": CLIP_STD,
        "do_convert_rgb": true,
        "resample": 3,
        "min_pixels": p.min_pixels,
        "max_pixels": p.max_pixels,
        "size": {"shortest_edge": p.min_pixels, "longest_edge": p.max_pixels},
        "patch_size": p.patch_size,
        "temporal_patch_size": p.temporal_patch_size,
        "merge_size": p.merge_size,
    })
}
