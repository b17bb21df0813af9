//! The student as a user holds it: the model (a LaViT student with its latent tokens and
//! heads, or a plain Qwen2.5-VL — a teacher, a base), its tokenizer and its image processor;
//! loaded from a directory or from memory (the browser), saved, and asked questions.
//!
//! ```text
//! DIR/config.json                Qwen2.5-VL config (+ "lavit": K, latent ids, d_T, heads)
//! DIR/model.safetensors          the VLM (hub key layout; or sharded, or the newer layout)
//! DIR/lavit_heads.safetensors    VTopHead + TrajectoryHead (LaViT students)
//! DIR/tokenizer.json             with <lvr1>…<lvrK> for students
//! DIR/preprocessor_config.json   the image processor's pixel bounds
//! ```
//!
//! Training works on the [`LavitStudent`] module inside (`model`); everything that answers —
//! `lavit infer`, `lavit eval`, the demo, the browser — goes through [`ModelBundle::answer`].

mod files;
pub mod reference;

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::prelude::*;
use burn::tensor::DType;
use image::RgbImage;

pub use files::BundleFiles;

use crate::data::synthetic::predicted_key;
use crate::error::{LavitError, Result};
use crate::eval::{EvalItem, Prediction};
use crate::infer::{GenerateConfig, Thoughts, generate, generate_async};
use crate::io::chat::{ChatTokenizer, Message};
use crate::io::checkpoint::{Checkpoint, HostInputs, write_atomic};
use crate::io::config::to_hf_json;
use crate::io::processor::{ProcessorConfig, load_rgb};
use crate::io::weights::save_hf_safetensors;
use crate::lavit::heads::TrajectoryHead;
use crate::lavit::student::{LavitConfig, LavitStudent, add_latent_tokens, init_latent_embeddings};
use crate::model::Qwen25Vl;
use crate::model::init::hf_init;
use crate::teacher::extract::append_steps;
use crate::teacher::{ExtractConfig, extract_signals, split_steps};

/// Where a model looked while it wrote each step of its own answer ([`ModelBundle::trajectory`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Trajectory {
    pub answer: String,
    /// The answer's steps (sentences); their concatenation is `answer`.
    pub steps: Vec<String>,
    /// Merged image grid `(h, w)` of the maps.
    pub grid: (usize, usize),
    /// One map per step over the image tokens, row-major on `grid`.
    pub maps: Vec<Vec<f32>>,
}

/// How a student is written to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Layout {
    /// Ours: `model.safetensors` (the VLM), `lavit_heads.safetensors`, a `lavit` section in
    /// `config.json`.
    #[default]
    Ours,
    /// The LaViT reference implementation's ([`reference`]).
    Reference,
}

impl Layout {
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        match s {
            "ours" => Ok(Self::Ours),
            "reference" => Ok(Self::Reference),
            o => Err(format!("layout `{o}`: expected ours or reference")),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Self::Ours => "ours",
            Self::Reference => "reference",
        }
    }
}

impl std::str::FromStr for Layout {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Self::parse(s)
    }
}

impl<'de> serde::Deserialize<'de> for Layout {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A model with what it needs to turn images and questions into inputs.
pub struct ModelBundle {
    pub model: LavitStudent,
    pub tokenizer: ChatTokenizer,
    pub processor: ProcessorConfig,
}

impl ModelBundle {
    /// Loads `dir`: a LaViT student (its `lavit` section, heads and latent tokens) or a plain
    /// Qwen2.5-VL (no latent tokens; its heads are unused placeholders).
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let ckpt = Checkpoint::open(dir)?;
        let tokenizer = ckpt.tokenizer(None)?;
        let model = load_model(&ckpt, &tokenizer, device)?;
        Ok(Self {
            model,
            tokenizer,
            processor: ckpt.processor.clone(),
        })
    }

    /// [`ModelBundle::load`] from in-memory files (no file system: the browser build).
    pub fn from_files(files: BundleFiles, device: &Device) -> Result<Self> {
        files.load(device)
    }

    /// A training starting point: a LaViT student directory (its latent tokens are kept; `k`
    /// and `d_teacher` must match) or a plain Qwen2.5-VL directory, which gets `k` latent
    /// tokens (rows set to the mean embedding) and fresh heads for a teacher of width
    /// `d_teacher`, drawn from `seed`. `tokenizer` overrides `DIR/tokenizer.json`.
    pub fn open_for_training(
        dir: &Path,
        k: usize,
        d_teacher: usize,
        tokenizer: Option<&Path>,
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        let ckpt = Checkpoint::open(dir)?;
        let tokenizer = ckpt.tokenizer(tokenizer)?;
        let is_student =
            ckpt.raw_config.get("lavit").is_some() || reference::is_reference(&ckpt.raw_config);
        let bundle = Self {
            model: load_model(&ckpt, &tokenizer, device)?,
            tokenizer,
            processor: ckpt.processor.clone(),
        };
        bundle.into_training(is_student, k, d_teacher, seed, &dir.display().to_string())
    }

    /// [`ModelBundle::open_for_training`] of an already loaded model (the browser's, from
    /// [`ModelBundle::from_files`]): a student when it has latent tokens.
    pub fn for_training(self, k: usize, d_teacher: usize, seed: u64) -> Result<Self> {
        let is_student = self.is_lavit();
        self.into_training(is_student, k, d_teacher, seed, "the starting point")
    }

    fn into_training(
        self,
        is_student: bool,
        k: usize,
        d_teacher: usize,
        seed: u64,
        what: &str,
    ) -> Result<Self> {
        let Self {
            model,
            mut tokenizer,
            processor,
        } = self;
        if is_student {
            if model.lavit.num_latent != k || model.lavit.d_teacher != d_teacher {
                return Err(LavitError::Invalid(format!(
                    "{what} is a student with K = {} and d_T = {}, but K = {k} and d_T = {d_teacher} were asked for",
                    model.lavit.num_latent, model.lavit.d_teacher
                )));
            }
            return Ok(Self {
                model,
                tokenizer,
                processor,
            });
        }
        let ids = add_latent_tokens(&mut tokenizer, k)?;
        let mut vlm = model.vlm;
        if !ids.is_empty() {
            vlm = init_latent_embeddings(vlm, &ids);
        }
        let lavit = LavitConfig {
            num_latent: k,
            latent_token_ids: ids,
            d_teacher: d_teacher.max(1),
            ..LavitConfig::default()
        };
        Ok(Self {
            model: LavitStudent::new(vlm, lavit, seed),
            tokenizer,
            processor,
        })
    }

    /// A freshly initialised (random, seeded) Qwen2.5-VL for `cfg` with tokenizer `tok`: HF's
    /// `_init_weights` (weights `N(0, 0.02)`, biases 0, norm scales 1).
    pub fn init(
        cfg: &crate::model::Qwen25VlConfig,
        tok: ChatTokenizer,
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        cfg.validate().map_err(LavitError::Invalid)?;
        let vocab = tok.inner.get_vocab_size(true);
        if vocab > cfg.text.vocab_size {
            return Err(LavitError::Invalid(format!(
                "the tokenizer has {vocab} tokens but the model's vocab_size is {}",
                cfg.text.vocab_size
            )));
        }
        let vlm = hf_init(Qwen25Vl::new(cfg, device), 0.02, seed);
        Ok(Self {
            model: LavitStudent::new(vlm, LavitConfig::default(), seed),
            tokenizer: tok,
            processor: ProcessorConfig {
                patch_size: cfg.vision.patch_size,
                merge_size: cfg.vision.spatial_merge_size,
                temporal_patch_size: cfg.vision.temporal_patch_size,
                ..Default::default()
            },
        })
    }

    /// Whether this is a LaViT student (it has latent tokens).
    pub fn is_lavit(&self) -> bool {
        self.model.lavit.num_latent > 0
    }

    /// `<lvr1>…<lvrK>` ids (empty for a plain model).
    pub fn latent_ids(&self) -> &[u32] {
        &self.model.lavit.latent_token_ids
    }

    /// The TrajectoryHead of a LaViT student.
    pub fn traj_head(&self) -> Option<&TrajectoryHead> {
        self.is_lavit().then_some(&self.model.traj_head)
    }

    pub fn vlm(&self) -> &Qwen25Vl {
        &self.model.vlm
    }

    pub fn device(&self) -> Device {
        self.model.vlm.device()
    }

    /// Writes the student to `out` (LoRA merged; weights as `dtype`), in the layout
    /// [`ModelBundle::load`] reads and transformers loads (the VLM part).
    pub fn save(&self, out: &Path, dtype: DType) -> Result<()> {
        export(&self.model, &self.tokenizer, &self.processor, out, dtype)
    }

    /// [`ModelBundle::save`] in `layout`.
    pub fn save_as(&self, out: &Path, dtype: DType, layout: Layout) -> Result<()> {
        match layout {
            Layout::Ours => self.save(out, dtype),
            Layout::Reference => {
                reference::export(&self.model, &self.tokenizer, &self.processor, out, dtype)
            }
        }
    }

    /// Checks a question and its images before they become a prompt.
    fn check_question(&self, images: &[RgbImage], question: &str) -> Result<()> {
        if question.trim().is_empty() {
            return Err(LavitError::Prompt("the question is empty".into()));
        }
        if images.is_empty() {
            return Err(LavitError::Prompt(
                "a question needs at least one image".into(),
            ));
        }
        if let Some(i) = images
            .iter()
            .position(|im| im.width() == 0 || im.height() == 0)
        {
            return Err(LavitError::Prompt(format!("image {} is empty", i + 1)));
        }
        Ok(())
    }

    /// The prompt of `question` about `images` (one user turn; the images before the question,
    /// as lmms-eval places them), with the generation prompt appended.
    pub fn prompt(&self, images: &[RgbImage], question: &str) -> Result<HostInputs> {
        self.check_question(images, question)?;
        let host = HostInputs::build(
            &self.tokenizer,
            &self.processor,
            images,
            &[Message::user_image_question(images.len(), question)],
            true,
        )?;
        let max = self.model.vlm.config.text.max_position_embeddings;
        if host.input_ids.len() > max {
            return Err(LavitError::Prompt(format!(
                "the prompt is {} tokens long, more than the model's max_position_embeddings ({max}); use fewer or smaller images (max_pixels) or a shorter question",
                host.input_ids.len()
            )));
        }
        Ok(host)
    }

    /// Answers `question` about `images` and reads out its latent visual thoughts: for each
    /// latent token, the TrajectoryHead distribution and the raw attention to the image
    /// tokens (over all images in order; `grid` is the first image's). Blocks on
    /// [`ModelBundle::answer_async`].
    pub fn answer(
        &self,
        images: &[RgbImage],
        question: &str,
        cfg: &GenerateConfig,
    ) -> Result<Thoughts> {
        pollster::block_on(self.answer_async(images, question, cfg))
    }

    /// [`ModelBundle::answer`] with asynchronous read-backs (the browser's WebGPU path).
    pub async fn answer_async(
        &self,
        images: &[RgbImage],
        question: &str,
        cfg: &GenerateConfig,
    ) -> Result<Thoughts> {
        let host = self.prompt(images, question)?;
        let g = host.images[0].grid;
        let m = self.processor.merge_size;
        let grid = (g[1] / m, g[2] / m);
        let tok = &self.tokenizer;
        let cfg = self.generation_config(cfg)?;
        // Generation stops at the last position the model has.
        let room = self.model.vlm.config.text.max_position_embeddings - host.input_ids.len();
        let cfg = GenerateConfig {
            max_new_tokens: cfg.max_new_tokens.min(room),
            ..cfg
        };
        let ids = self.latent_ids();
        let out = generate_async(
            self.vlm(),
            self.traj_head(),
            &host.to_device(&self.device()),
            ids,
            &cfg,
        )
        .await?;
        let text: Vec<u32> = out
            .tokens
            .iter()
            .copied()
            .filter(|t| *t != tok.im_end && !ids.contains(t))
            .collect();
        Ok(Thoughts {
            answer: tok.decode(&text, true)?,
            tokens: out.tokens,
            grid,
            latent_steps: out.latent_steps,
        })
    }

    /// `cfg` as this model answers with it: stopping at `<|im_end|>`, its maps read from its
    /// gaze layers, and — for a student trained in the bottleneck condition — the bottleneck
    /// applied and the latent block forced (its answer can see the image only through the
    /// latent tokens, so accuracy must not depend on whether it emits them); hiding the latent
    /// tokens (`mask_lvr`) from such a student is refused: they are its only view of the image.
    pub fn generation_config(&self, cfg: &GenerateConfig) -> Result<GenerateConfig> {
        let mut cfg = cfg.clone();
        let tok = &self.tokenizer;
        if !cfg.stop_ids.contains(&tok.im_end) {
            cfg.stop_ids.push(tok.im_end);
        }
        let lavit = &self.model.lavit;
        if cfg.gaze_layers.is_empty() {
            cfg.gaze_layers = lavit.gaze_layers.clone();
        }
        if lavit.bottleneck {
            if cfg.mask_lvr {
                return Err(LavitError::Invalid(
                    "this student was trained in the bottleneck condition: its latent tokens are \
                     the answer's only view of the image, so they cannot be masked (mask_lvr)"
                        .into(),
                ));
            }
            cfg.bottleneck = true;
            cfg.force_lvr = true;
        }
        Ok(cfg)
    }

    /// The model's own greedy answer to `question` about `images`, split into steps
    /// (sentences), and for each step where it looked while writing it: the trajectory map
    /// `lavit extract --generate-steps` stores for a teacher ([`extract_signals`] over the
    /// answer, `cfg`'s layers and rows), on the first image's merged grid. Reads back
    /// synchronously (the CPU backend; in the browser the teacher runs there).
    pub fn trajectory(
        &self,
        images: &[RgbImage],
        question: &str,
        cfg: &ExtractConfig,
        max_new_tokens: usize,
    ) -> Result<Trajectory> {
        let host = self.prompt(images, question)?;
        let tok = &self.tokenizer;
        let g = GenerateConfig {
            max_new_tokens,
            stop_ids: vec![tok.im_end],
            ..Default::default()
        };
        let out = generate(self.vlm(), None, &host.to_device(&self.device()), &[], &g)?;
        let ids: Vec<u32> = out
            .tokens
            .into_iter()
            .filter(|&t| t != tok.im_end)
            .collect();
        let answer = tok.decode(&ids, true)?;
        let steps: Vec<String> = split_steps(&answer)
            .into_iter()
            .filter(|s| tok.encode(s).is_ok_and(|ids| !ids.is_empty()))
            .collect();
        let (ids, spans) = append_steps(tok, &host.input_ids, &steps)?;
        let sig = extract_signals(
            self.vlm(),
            &HostInputs {
                input_ids: ids,
                images: host.images,
            },
            &spans,
            cfg,
        )?;
        Ok(Trajectory {
            answer,
            steps,
            grid: sig.grid,
            maps: sig.traj,
        })
    }

    /// Answers the synthetic task's `items` (images under `images_root`) with `cfg` and grades
    /// each by its answer key; `progress(done)` after each.
    pub fn predict(
        &self,
        items: &[EvalItem],
        images_root: &Path,
        cfg: &GenerateConfig,
        progress: &mut dyn FnMut(usize),
    ) -> Result<Vec<Prediction>> {
        let mut out = Vec::with_capacity(items.len());
        for (i, it) in items.iter().enumerate() {
            let img = load_rgb(&images_root.join(&it.image))?;
            let image_size = (img.height() as usize, img.width() as usize);
            let r = self.answer(std::slice::from_ref(&img), &it.question, cfg)?;
            let predicted = predicted_key(&r.answer);
            out.push(Prediction {
                id: it.id.clone(),
                qtype: it.qtype.clone(),
                correct: predicted == it.key.to_lowercase(),
                predicted,
                prior: it.prior(),
                text: r.answer,
                emitted_latents: self.is_lavit() && r.latent_steps.len() == self.latent_ids().len(),
                attn_maps: r.latent_steps.iter().map(|s| s.attn_map.clone()).collect(),
                head_maps: r
                    .latent_steps
                    .iter()
                    .filter_map(|s| s.head_map.clone())
                    .collect(),
                grid: r.grid,
                image_size,
            });
            progress(i + 1);
        }
        Ok(out)
    }
}

/// The model of an opened checkpoint: a LaViT student with its heads (our layout or the
/// reference implementation's), or a plain VLM.
fn load_model(ckpt: &Checkpoint, tok: &ChatTokenizer, device: &Device) -> Result<LavitStudent> {
    if reference::is_reference(&ckpt.raw_config) {
        return reference::load(ckpt, tok, device);
    }
    let vlm = ckpt.load(device)?;
    let Some(section) = ckpt.raw_config.get("lavit") else {
        return Ok(LavitStudent::new(vlm, LavitConfig::default(), 0));
    };
    let lavit: LavitConfig =
        serde_json::from_value(section.clone()).map_err(|e| LavitError::Config {
            path: ckpt.dir.join("config.json"),
            message: format!("bad `lavit` section: {e}"),
        })?;
    let path = ckpt.dir.join("lavit_heads.safetensors");
    let heads = crate::error::read_file(&path)?;
    files::with_heads(LavitStudent::new(vlm, lavit, 0), heads, &path)
}

/// Writes `model` with `tok` and `processor` to `out`:
///
/// ```text
/// OUT/config.json             Qwen2.5-VL config + "lavit" (students)
/// OUT/model.safetensors       the VLM in the hub key layout (PyTorch orientation)
/// OUT/lavit_heads.safetensors VTopHead + TrajectoryHead (students)
/// OUT/tokenizer.json          with <lvr1>…<lvrK>
/// OUT/preprocessor_config.json
/// ```
pub fn export(
    model: &LavitStudent,
    tok: &ChatTokenizer,
    processor: &ProcessorConfig,
    out: &Path,
    dtype: DType,
) -> Result<()> {
    prepare_dir(out)?;
    // A model without latent tokens (a teacher, a pre-trained base) is a plain Qwen2.5-VL.
    let plain = model.lavit.num_latent == 0;
    let lavit = serde_json::json!({ "lavit": model.lavit });
    let cfg = to_hf_json(&model.vlm.config, (!plain).then_some(&lavit));
    write_atomic(
        &out.join("config.json"),
        &serde_json::to_vec_pretty(&cfg).expect("config serialises"),
    )?;
    let mut vlm = model.vlm.valid().merge_new_rows();
    vlm.model = vlm.model.merge_lora();
    save_hf_safetensors(&vlm, &out.join("model.safetensors"), dtype)?;
    let heads_path = out.join("lavit_heads.safetensors");
    if plain {
        let _ = std::fs::remove_file(&heads_path);
    } else {
        write_atomic(&heads_path, &files::heads_bytes(model)?)?;
    }
    write_tokenizer_and_processor(tok, processor, out)
}

/// Creates `out` and removes weight files another layout may have left there (shards and
/// their index, single files), so a reload reads only what this export wrote.
fn prepare_dir(out: &Path) -> Result<()> {
    std::fs::create_dir_all(out).map_err(|e| LavitError::Io {
        path: out.into(),
        source: e,
    })?;
    if let Ok(rd) = std::fs::read_dir(out) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if name.starts_with("model-") && name.ends_with(".safetensors")
                || name == "model.safetensors.index.json"
            {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    Ok(())
}

/// `tokenizer.json` and `preprocessor_config.json` of an export.
fn write_tokenizer_and_processor(
    tok: &ChatTokenizer,
    processor: &ProcessorConfig,
    out: &Path,
) -> Result<()> {
    write_atomic(
        &out.join("preprocessor_config.json"),
        &serde_json::to_vec_pretty(&files::preprocessor_json(processor)).expect("serialises"),
    )?;
    let json = tok
        .inner
        .to_string(true)
        .map_err(|e| LavitError::Other(format!("serialising the tokenizer: {e}")))?;
    write_atomic(&out.join("tokenizer.json"), json.as_bytes())
}

/// `model.safetensors.index.json` for the shards `files` (in `out`), read from their headers.
fn write_shard_index(out: &Path, files: &[PathBuf]) -> Result<()> {
    let mut weight_map = serde_json::Map::new();
    let mut total = 0u64;
    for f in files {
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        for (key, bytes) in crate::io::tensors::safetensors_header(f)? {
            weight_map.insert(key, serde_json::Value::String(name.clone()));
            total += bytes;
        }
    }
    let index = serde_json::json!({
        "metadata": {"total_size": total},
        "weight_map": weight_map,
    });
    write_atomic(
        &out.join("model.safetensors.index.json"),
        &serde_json::to_vec_pretty(&index).expect("index serialises"),
    )
}

/// Writes a random (HF-initialised, seeded) Qwen2.5-VL for `cfg` to `out` one block at a
/// time — one shard per vision block and decoder layer, plus the embeddings, the final norm
/// and an untied LM head — so a model larger than memory can be written (a 7B or 32B
/// teacher for streaming tests and benchmarks). Its weights differ from [`ModelBundle::init`]'s
/// for the same seed (each block draws from its own seed).
#[cfg(not(target_arch = "wasm32"))]
pub fn write_random_checkpoint(
    cfg: &crate::model::Qwen25VlConfig,
    tok: &ChatTokenizer,
    seed: u64,
    out: &Path,
    dtype: DType,
    device: &Device,
) -> Result<()> {
    use crate::teacher::stream::blocks;
    cfg.validate().map_err(LavitError::Invalid)?;
    prepare_dir(out)?;
    let _ = std::fs::remove_file(out.join("model.safetensors"));
    write_atomic(
        &out.join("config.json"),
        &serde_json::to_vec_pretty(&to_hf_json(cfg, None)).expect("config serialises"),
    )?;
    let processor = ProcessorConfig {
        patch_size: cfg.vision.patch_size,
        merge_size: cfg.vision.spatial_merge_size,
        temporal_patch_size: cfg.vision.temporal_patch_size,
        ..Default::default()
    };
    write_tokenizer_and_processor(tok, &processor, out)?;
    let mut shards = Shards {
        out,
        n_parts: 1 + cfg.vision.depth + 1 + cfg.text.num_hidden_layers,
        seed,
        dtype,
        files: Vec::new(),
    };
    let b = blocks(cfg, device);
    // Vision: patch embedding and merger, then each block.
    let pe = hf_init(b.patch_embed(), 0.02, shards.draw(0));
    let mg = hf_init(b.merger(), 0.02, shards.draw(1));
    shards.save(
        0,
        &(pe, mg),
        &[
            (r"^0\.", "visual.patch_embed."),
            (r"^1\.fc1\.", "visual.merger.mlp.0."),
            (r"^1\.fc2\.", "visual.merger.mlp.2."),
            (r"^1\.", "visual.merger."),
        ],
    )?;
    for i in 0..cfg.vision.depth {
        let block = hf_init(b.vision_block(), 0.02, shards.draw(2 + i));
        let prefix = format!("visual.blocks.{i}.");
        shards.save(
            1 + i,
            &block,
            &[("^", &prefix), (r"_proj\.inner\.", "_proj.")],
        )?;
    }
    let base = 1 + cfg.vision.depth;
    shards.save(
        base,
        &text_ends(cfg, &shards, base, device),
        &[
            (r"^0\.", "model.embed_tokens."),
            (r"^1\.", "model.norm."),
            (r"^2\.", "lm_head."),
        ],
    )?;
    for l in 0..cfg.text.num_hidden_layers {
        let layer = hf_init(b.decoder_layer(), 0.02, shards.draw(base + 3 + l));
        let prefix = format!("model.layers.{l}.");
        shards.save(
            base + 1 + l,
            &layer,
            &[("^", &prefix), (r"_proj\.inner\.", "_proj.")],
        )?;
    }
    write_shard_index(out, &shards.files)
}

/// The shards of [`write_random_checkpoint`]: one file per part, each part's weights drawn
/// from its own seed.
#[cfg(not(target_arch = "wasm32"))]
struct Shards<'a> {
    out: &'a Path,
    n_parts: usize,
    seed: u64,
    dtype: DType,
    files: Vec<PathBuf>,
}

#[cfg(not(target_arch = "wasm32"))]
impl Shards<'_> {
    fn draw(&self, part: usize) -> u64 {
        self.seed.wrapping_mul(1_000_003).wrapping_add(part as u64)
    }

    /// Writes `module` as part `i` with its keys renamed by `remap`.
    fn save<M: Module>(&mut self, i: usize, module: &M, remap: &[(&str, &str)]) -> Result<()> {
        let n = self.n_parts;
        let f = self
            .out
            .join(format!("model-{:05}-of-{n:05}.safetensors", i + 1));
        crate::io::weights::save_module(module, &f, remap, self.dtype)?;
        self.files.push(f);
        Ok(())
    }
}

/// The text decoder's ends: the embeddings, the final norm and an untied LM head (if any).
#[cfg(not(target_arch = "wasm32"))]
fn text_ends(
    cfg: &crate::model::Qwen25VlConfig,
    shards: &Shards<'_>,
    base: usize,
    device: &Device,
) -> (
    burn::nn::Embedding,
    burn::nn::RmsNorm,
    Option<burn::nn::Linear>,
) {
    let t = &cfg.text;
    let embed = hf_init(
        burn::nn::EmbeddingConfig::new(t.vocab_size, t.hidden_size).init(device),
        0.02,
        shards.draw(base + 1),
    );
    let norm = burn::nn::RmsNormConfig::new(t.hidden_size)
        .with_epsilon(t.rms_norm_eps)
        .init(device);
    let lm_head = (!cfg.tie_word_embeddings).then(|| {
        hf_init(
            burn::nn::LinearConfig::new(t.hidden_size, t.vocab_size)
                .with_bias(false)
                .init(device),
            0.02,
            shards.draw(base + 2),
        )
    });
    (embed, norm, lm_head)
}
