//! A checkpoint directory in the Hugging Face layout, and turning images + chat messages into
//! model inputs the way `Qwen2_5_VLProcessor` does.
//!
//! ```text
//! DIR/config.json                       flat (hub) or nested form
//! DIR/model.safetensors                 or model-*.safetensors + model.safetensors.index.json
//! DIR/tokenizer.json                    optional here (`--tokenizer` overrides)
//! DIR/preprocessor_config.json          optional: min_pixels / max_pixels
//! ```

use std::path::{Path, PathBuf};

use burn::prelude::*;
use image::RgbImage;

use super::chat::{ChatTokenizer, Message};
use super::config::load_config;
use super::processor::{ProcessedImage, ProcessorConfig, process_image};
use super::weights::{WeightSource, checkpoint_files, load_weights};
use crate::error::{LavitError, Result};
use crate::model::config::Qwen25VlConfig;
use crate::model::vlm::{Qwen25Vl, VlmInputs};

/// Paths and parsed configuration of a checkpoint directory.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    pub dir: PathBuf,
    pub config: Qwen25VlConfig,
    pub processor: ProcessorConfig,
    /// The raw `config.json`, for fields outside Qwen2.5-VL (e.g. LaViT's).
    pub raw_config: serde_json::Value,
}

impl Checkpoint {
    pub fn open(dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            return Err(LavitError::Io {
                path: dir.to_path_buf(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "not a directory"),
            });
        }
        let config_path = dir.join("config.json");
        let config = load_config(&config_path)?;
        let raw_config = crate::error::read_json(&config_path)?;
        let processor = read_processor_config(dir, &config)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            config,
            processor,
            raw_config,
        })
    }

    /// The tokenizer of this checkpoint (`override_path` wins over `DIR/tokenizer.json`).
    pub fn tokenizer(&self, override_path: Option<&Path>) -> Result<ChatTokenizer> {
        let path = override_path
            .map(Path::to_path_buf)
            .unwrap_or_else(|| self.dir.join("tokenizer.json"));
        if !path.is_file() {
            return Err(LavitError::Tokenizer {
                path: path.display().to_string(),
                message: "file not found (pass --tokenizer)".into(),
            });
        }
        ChatTokenizer::from_file(&path)
    }

    /// Builds the model and loads its weights onto `device`.
    pub fn load(&self, device: &Device) -> Result<Qwen25Vl> {
        let files = checkpoint_files(&self.dir)?;
        load_weights(
            Qwen25Vl::new(&self.config, device),
            WeightSource::Files(files),
        )
    }
}

/// The image processor's settings of checkpoint `dir`: `min_pixels` / `max_pixels` (or
/// `size.shortest_edge` / `size.longest_edge`) from `preprocessor_config.json` (transformers
/// 4.x) or from the `image_processor` section of `processor_config.json` (transformers 5.x
/// `save_pretrained`); the defaults where neither file exists. Patch geometry comes from the
/// model config.
pub fn read_processor_config(dir: &Path, config: &Qwen25VlConfig) -> Result<ProcessorConfig> {
    let legacy = dir.join("preprocessor_config.json");
    let combined = dir.join("processor_config.json");
    let settings = if legacy.is_file() {
        Some(crate::error::read_json(&legacy)?)
    } else if combined.is_file() {
        let v: serde_json::Value = crate::error::read_json(&combined)?;
        v.get("image_processor").cloned()
    } else {
        None
    };
    Ok(processor_from_json(settings.as_ref(), config))
}

/// The processor of an image-processor JSON object (`None`: the defaults) for `config`.
pub fn processor_from_json(
    settings: Option<&serde_json::Value>,
    config: &Qwen25VlConfig,
) -> ProcessorConfig {
    let mut processor = ProcessorConfig::default();
    if let Some(v) = settings {
        let get = |k: &str| v.get(k).and_then(|x| x.as_u64()).map(|x| x as usize);
        let size = |k: &str| {
            v.get("size")
                .and_then(|s| s.get(k))
                .and_then(|x| x.as_u64())
                .map(|x| x as usize)
        };
        if let Some(m) = get("min_pixels").or(size("shortest_edge")) {
            processor.min_pixels = m;
        }
        if let Some(m) = get("max_pixels").or(size("longest_edge")) {
            processor.max_pixels = m;
        }
    }
    processor.patch_size = config.vision.patch_size;
    processor.merge_size = config.vision.spatial_merge_size;
    processor.temporal_patch_size = config.vision.temporal_patch_size;
    processor
}

/// Opens `dir` and loads the model onto `device`.
pub fn load_model(dir: &Path, device: &Device) -> Result<(Checkpoint, Qwen25Vl)> {
    let ckpt = Checkpoint::open(dir)?;
    let model = ckpt.load(device)?;
    Ok((ckpt, model))
}

/// Model inputs on the host: what `Qwen2_5_VLProcessor(text, images)` returns.
#[derive(Debug, Clone)]
pub struct HostInputs {
    pub input_ids: Vec<u32>,
    pub images: Vec<ProcessedImage>,
}

impl HostInputs {
    /// Processes `images` and tokenises `messages` with one image slot per image.
    pub fn build(
        tokenizer: &ChatTokenizer,
        processor: &ProcessorConfig,
        images: &[RgbImage],
        messages: &[Message],
        add_generation_prompt: bool,
    ) -> Result<Self> {
        let images = images
            .iter()
            .map(|img| process_image(img, processor))
            .collect::<Result<Vec<_>>>()?;
        let unit = processor.merge_size * processor.merge_size;
        let counts: Vec<usize> = images.iter().map(|p| p.n_patches() / unit).collect();
        let input_ids = tokenizer.encode_chat(messages, add_generation_prompt, &counts)?;
        Ok(Self { input_ids, images })
    }

    pub fn grids(&self) -> Vec<[usize; 3]> {
        self.images.iter().map(|p| p.grid).collect()
    }

    /// All images' patches, concatenated: `[N, patch_dim]`.
    pub fn pixel_values(&self) -> (Vec<f32>, [usize; 2]) {
        let n: usize = self.images.iter().map(|p| p.n_patches()).sum();
        let dim = self.images.first().map(|p| p.patch_dim()).unwrap_or(0);
        let data: Vec<f32> = self.images.iter().flat_map(|p| p.pixel_values()).collect();
        (data, [n, dim])
    }

    /// Uploads to `device` as [`VlmInputs`].
    pub fn to_device(&self, device: &Device) -> VlmInputs {
        let pixel_values = (!self.images.is_empty()).then(|| {
            let (data, shape) = self.pixel_values();
            Tensor::<2>::from_data(TensorData::new(data, shape), device)
        });
        VlmInputs {
            input_ids: self.input_ids.clone(),
            pixel_values,
            grids: self.grids(),
        }
    }
}

/// Writes `bytes` to `path` through a temporary file in the same directory, then renames, so
/// a reader never sees a half-written file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| LavitError::Io {
        path: dir.to_path_buf(),
        source: e,
    })?;
    let file_name = path
        .file_name()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.tmp{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        // Closed at the end of this closure, before the rename.
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        // `FAILPOINTS=write_atomic=return(PART)`: the disk is full when the path contains PART.
        #[cfg(feature = "failpoints")]
        if fail::eval("write_atomic", |part| {
            part.is_none_or(|part| path.to_string_lossy().contains(&part))
        }) == Some(true)
        {
            return Err(crate::error::enospc());
        }
        f.sync_all()
    };
    if let Err(e) = write() {
        // A full disk must not leave the half-written temporary behind.
        let _ = std::fs::remove_file(&tmp);
        return Err(LavitError::Io {
            path: path.to_path_buf(),
            source: e,
        });
    }
    crate::error::failpoint!("write_atomic::before_rename");
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        LavitError::Io {
            path: path.to_path_buf(),
            source: e,
        }
    })
}
