//! Exporting a trained student as an HF-layout directory that our loader (and transformers,
//! for the VLM part) reads back:
//!
//! ```text
//! OUT/config.json             Qwen2.5-VL config + "lavit": {num_latent, latent_token_ids, d_teacher}
//! OUT/model.safetensors       the VLM in the hub key layout (PyTorch orientation)
//! OUT/lavit_heads.safetensors VTopHead + TrajectoryHead
//! OUT/tokenizer.json          with <lvr1>…<lvrK>
//! ```

use crate::model::init::SeededInit;
use std::path::Path;

use burn::prelude::*;
use burn::store::{ModuleSnapshot, SafetensorsStore};
use burn::tensor::DType;

use crate::error::{LavitError, Result};
use crate::io::chat::ChatTokenizer;
use crate::io::checkpoint::{Checkpoint, write_atomic};
use crate::io::config::to_hf_json;
use crate::io::weights::save_hf_safetensors;
use crate::lavit::student::{LavitConfig, LavitStudent};

/// Writes `student` and its tokenizer to `out`.
pub fn export_student(
    student: &LavitStudent,
    tok: &ChatTokenizer,
    out: &Path,
    dtype: DType,
) -> Result<()> {
    std::fs::create_dir_all(out).map_err(|e| LavitError::Io {
        path: out.into(),
        source: e,
    })?;
    // A model without latent tokens (a teacher, a pre-trained base) is a plain Qwen2.5-VL.
    let plain = student.lavit.num_latent == 0;
    let lavit = serde_json::json!({ "lavit": student.lavit });
    let cfg = to_hf_json(&student.vlm.config, (!plain).then_some(&lavit));
    write_atomic(
        &out.join("config.json"),
        &serde_json::to_vec_pretty(&cfg).expect("config serialises"),
    )?;
    let mut vlm = student.vlm.valid();
    vlm.model = vlm.model.merge_lora();
    save_hf_safetensors(&vlm, &out.join("model.safetensors"), dtype)?;
    if plain {
        let _ = std::fs::remove_file(out.join("lavit_heads.safetensors"));
        return write_tokenizer(tok, out);
    }
    let heads = (student.vtop_head.valid(), student.traj_head.valid());
    let mut store =
        SafetensorsStore::from_file(out.join("lavit_heads.safetensors")).overwrite(true);
    heads
        .save_into(&mut store)
        .map_err(|e| LavitError::Other(format!("saving the heads: {e}")))?;
    write_tokenizer(tok, out)
}

fn write_tokenizer(tok: &ChatTokenizer, out: &Path) -> Result<()> {
    let json = tok
        .inner
        .to_string(true)
        .map_err(|e| LavitError::Other(format!("serialising the tokenizer: {e}")))?;
    write_atomic(&out.join("tokenizer.json"), json.as_bytes())
}

/// An exported student held in memory — the four files of [`export_student`], e.g. fetched
/// by a browser.
pub struct StudentFiles {
    pub config_json: Vec<u8>,
    pub model_safetensors: Vec<u8>,
    pub heads_safetensors: Vec<u8>,
    pub tokenizer_json: Vec<u8>,
}

/// A student loaded from memory, with what it needs to build its inputs.
pub struct LoadedStudent {
    pub student: LavitStudent,
    pub tokenizer: ChatTokenizer,
    pub processor: crate::io::processor::ProcessorConfig,
}

/// [`load_student`] from in-memory files (no file system: the browser build). The processor
/// takes the defaults and the config's patch geometry, as [`Checkpoint::open`] does without a
/// `preprocessor_config.json`.
pub fn load_student_from_memory(files: StudentFiles, device: &Device) -> Result<LoadedStudent> {
    let bad = |message: String| LavitError::Config {
        path: "config.json".into(),
        message,
    };
    let config = crate::io::config::parse_config(&files.config_json).map_err(bad)?;
    let raw: serde_json::Value = serde_json::from_slice(&files.config_json)
        .map_err(|e| bad(format!("invalid JSON: {e}")))?;
    let lavit: LavitConfig = serde_json::from_value(
        raw.get("lavit")
            .cloned()
            .ok_or_else(|| bad("no `lavit` section: not a LaViT student".into()))?,
    )
    .map_err(|e| bad(format!("bad `lavit` section: {e}")))?;
    let vlm = crate::io::weights::load_weights(
        crate::model::Qwen25Vl::new(&config, device),
        crate::io::weights::WeightSource::Bytes(vec![(
            "model.safetensors".into(),
            files.model_safetensors,
        )]),
    )?;
    let student = LavitStudent::new(vlm, lavit, 0);
    let mut heads = (student.vtop_head, student.traj_head);
    let mut store = SafetensorsStore::from_bytes(Some(files.heads_safetensors));
    heads
        .load_from(&mut store)
        .map_err(|e| LavitError::Weights {
            path: "lavit_heads.safetensors".into(),
            message: e.to_string(),
        })?;
    let tokenizer = ChatTokenizer::from_bytes(&files.tokenizer_json, "tokenizer.json")?;
    let processor = crate::io::processor::ProcessorConfig {
        patch_size: config.vision.patch_size,
        merge_size: config.vision.spatial_merge_size,
        temporal_patch_size: config.vision.temporal_patch_size,
        ..Default::default()
    };
    Ok(LoadedStudent {
        student: LavitStudent {
            vlm: student.vlm,
            vtop_head: heads.0,
            traj_head: heads.1,
            lavit: student.lavit,
        },
        tokenizer,
        processor,
    })
}

/// Loads a student exported by [`export_student`] (or any Qwen2.5-VL directory plus `lavit`
/// fields and heads) onto `device`.
pub fn load_student(dir: &Path, device: &Device) -> Result<(Checkpoint, LavitStudent)> {
    let ckpt = Checkpoint::open(dir)?;
    let lavit: LavitConfig =
        serde_json::from_value(ckpt.raw_config.get("lavit").cloned().ok_or_else(|| {
            LavitError::Config {
                path: dir.join("config.json"),
                message: "no `lavit` section: not a LaViT student (train one with `lavit train`)"
                    .into(),
            }
        })?)
        .map_err(|e| LavitError::Config {
            path: dir.join("config.json"),
            message: format!("bad `lavit` section: {e}"),
        })?;
    let vlm = ckpt.load(device)?;
    // The heads are overwritten from the checkpoint right below.
    let student = LavitStudent::new(vlm, lavit, 0);
    let mut heads = (student.vtop_head, student.traj_head);
    let path = dir.join("lavit_heads.safetensors");
    let mut store = SafetensorsStore::from_file(&path);
    heads
        .load_from(&mut store)
        .map_err(|e| LavitError::Weights {
            path: path.clone(),
            message: e.to_string(),
        })?;
    let student = LavitStudent {
        vlm: student.vlm,
        vtop_head: heads.0,
        traj_head: heads.1,
        lavit: student.lavit,
    };
    Ok((ckpt, student))
}

/// Opens a training starting point: a LaViT student directory (its latent tokens are kept,
/// `k` must match) or a plain Qwen2.5-VL directory, which gets `k` latent tokens (rows set to
/// the mean embedding) and fresh heads for a teacher of width `d_teacher`, drawn from `seed`.
pub fn open_student(
    dir: &Path,
    k: usize,
    d_teacher: usize,
    tokenizer: Option<&Path>,
    seed: u64,
    device: &Device,
) -> Result<(Checkpoint, ChatTokenizer, LavitStudent)> {
    let ckpt = Checkpoint::open(dir)?;
    if ckpt.raw_config.get("lavit").is_some() {
        let (ckpt, student) = load_student(dir, device)?;
        if student.lavit.num_latent != k || student.lavit.d_teacher != d_teacher {
            return Err(LavitError::Invalid(format!(
                "{} is a student with K = {} and d_T = {}, but K = {k} and d_T = {d_teacher} were asked for",
                dir.display(),
                student.lavit.num_latent,
                student.lavit.d_teacher
            )));
        }
        let tok = ckpt.tokenizer(tokenizer)?;
        return Ok((ckpt, tok, student));
    }
    let mut tok = ckpt.tokenizer(tokenizer)?;
    let ids = crate::lavit::student::add_latent_tokens(&mut tok, k)?;
    let mut vlm = ckpt.load(device)?;
    if !ids.is_empty() {
        vlm = crate::lavit::student::init_latent_embeddings(vlm, &ids);
    }
    let student = LavitStudent::new(
        vlm,
        LavitConfig {
            num_latent: k,
            latent_token_ids: ids,
            d_teacher: d_teacher.max(1),
            ..LavitConfig::default()
        },
        seed,
    );
    Ok((ckpt, tok, student))
}

/// Writes a freshly initialised (random, seeded) Qwen2.5-VL checkpoint for `cfg` to `out`.
pub fn init_checkpoint(
    cfg: &crate::model::Qwen25VlConfig,
    tok: &ChatTokenizer,
    out: &Path,
    seed: u64,
    device: &Device,
) -> Result<()> {
    cfg.validate().map_err(|m| LavitError::Config {
        path: out.join("config.json"),
        message: m,
    })?;
    let vocab = tok.inner.get_vocab_size(true);
    if vocab > cfg.text.vocab_size {
        return Err(LavitError::Invalid(format!(
            "the tokenizer has {vocab} tokens but the model's vocab_size is {}",
            cfg.text.vocab_size
        )));
    }
    let vlm = hf_init(crate::model::Qwen25Vl::new(cfg, device), 0.02, seed);
    let student = LavitStudent::new(
        vlm,
        LavitConfig {
            num_latent: 0,
            latent_token_ids: vec![],
            d_teacher: 1,
            ..LavitConfig::default()
        },
        seed,
    );
    export_student(&student, tok, out, DType::F32)
}

/// HF-style initialisation (`_init_weights` of Qwen2.5-VL): weights `N(0, std)`, biases 0,
/// norm scales 1.
struct HfInit {
    path: Vec<String>,
    std: f64,
    init: SeededInit,
}

impl burn::module::ModuleMapper for HfInit {
    fn enter_module(&mut self, name: &str, _container: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container: &str) {
        self.path.pop();
    }
    fn map_float<const D: usize>(
        &mut self,
        param: burn::module::Param<Tensor<D>>,
    ) -> burn::module::Param<Tensor<D>> {
        let path = self.path.join(".");
        let std = self.std;
        let init = &mut self.init;
        param.map(|t| {
            let (dims, dtype, device) = (t.dims(), t.dtype(), t.device());
            if D == 1 {
                if path.contains("norm") || path.contains("ln_q") {
                    Tensor::ones(dims, &device)
                } else {
                    Tensor::zeros(dims, &device)
                }
            } else {
                init.normal(dims, std, &device).cast(dtype)
            }
        })
    }
}

/// Re-initialises every parameter of `m` the way HF does for a fresh model, drawing from
/// `seed`.
pub fn hf_init<M: burn::module::Module>(m: M, std: f64, seed: u64) -> M {
    m.map(&mut HfInit {
        path: vec![],
        std,
        init: SeededInit::new(seed),
    })
}
