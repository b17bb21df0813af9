//! The student layout of the LaViT reference implementation (its `LaViTQwen2VL`, saved by HF
//! `Trainer.save_model`), read and written:
//!
//! ```text
//! DIR/config.json        Qwen2.5-VL config + v_top_dim, training_stage, loss_scale_vtop,
//!                        loss_scale_traj, use_trajectory_supervision, bottleneck_block_prompt
//! DIR/model*.safetensors the VLM (hub key layout) and, beside it, the heads in PyTorch
//!                        orientation: v_top_head.mlp.0.{weight,bias} (hidden → hidden),
//!                        v_top_head.mlp.2.{weight,bias} (hidden → v_top_dim),
//!                        traj_head.query_proj.{weight,bias} (hidden → hidden)
//! DIR/tokenizer.json     <lvr1>…<lvrN> as added special tokens
//! ```
//!
//! What we reproduce on load: its TrajectoryHead scores `query_proj(h) · H_img` carry no `1/√d`
//! ([`TrajScale::None`], recorded in our config when such a student is saved in our layout),
//! and its heads read the last layer after the final norm ([`HeadStates::PostNorm`]). `N`, the
//! number of latent tokens, is read from the tokenizer. Writing one of our students in this
//! layout folds our `1/√d` into `query_proj`, so the reference computes our scores.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use burn::tensor::DType;
use serde_json::Value;

use crate::error::{LavitError, Result};
use crate::io::chat::ChatTokenizer;
use crate::io::checkpoint::{Checkpoint, write_atomic};
use crate::io::config::to_hf_json;
use crate::io::processor::ProcessorConfig;
use crate::io::weights::{WeightSource, checkpoint_files, load_module, save_module};
use crate::lavit::heads::{HeadStates, TrajScale};
use crate::lavit::student::{LavitConfig, LavitStudent};

/// The LaViT fields the reference adds to `config.json`.
pub const CONFIG_FIELDS: [&str; 6] = [
    "v_top_dim",
    "training_stage",
    "loss_scale_vtop",
    "loss_scale_traj",
    "use_trajectory_supervision",
    "bottleneck_block_prompt",
];

/// The reference's head keys → our heads' module paths (the `(VTopHead, TrajectoryHead)` pair).
const HEAD_REMAP: &[(&str, &str)] = &[
    (r"^v_top_head\.mlp\.0\.", "0.fc1."),
    (r"^v_top_head\.mlp\.2\.", "0.fc2."),
    (r"^traj_head\.query_proj\.", "1.q_proj."),
];

/// Ours → the reference's keys (for writing).
const HEAD_SAVE_REMAP: &[(&str, &str)] = &[
    (r"^0\.fc1\.", "v_top_head.mlp.0."),
    (r"^0\.fc2\.", "v_top_head.mlp.2."),
    (r"^1\.q_proj\.", "traj_head.query_proj."),
];

/// Whether `config.json` (raw) is a reference student's: its LaViT fields, not our section.
pub fn is_reference(raw: &Value) -> bool {
    raw.get("lavit").is_none() && raw.get("v_top_dim").is_some()
}

/// The ids of `<lvr1>`, `<lvr2>`, … in `tok`, as many as it has (at least one).
pub fn latent_ids_of(tok: &ChatTokenizer, what: &Path) -> Result<Vec<u32>> {
    let ids: Vec<u32> = (1..)
        .map_while(|i| tok.token_to_id(&format!("<lvr{i}>")))
        .collect();
    if ids.is_empty() {
        return Err(LavitError::Tokenizer {
            path: what.display().to_string(),
            message: "a LaViT student's tokenizer has no <lvr1> token".into(),
        });
    }
    Ok(ids)
}

/// Loads a reference student: the VLM, the heads from the same safetensors files, the latent
/// tokens from the tokenizer.
pub fn load(ckpt: &Checkpoint, tok: &ChatTokenizer, device: &Device) -> Result<LavitStudent> {
    let bad = |message: String| LavitError::Config {
        path: ckpt.dir.join("config.json"),
        message,
    };
    let d_teacher = ckpt.raw_config["v_top_dim"]
        .as_u64()
        .filter(|&d| d > 0)
        .ok_or_else(|| bad("`v_top_dim` must be a positive integer".into()))?
        as usize;
    let ids = latent_ids_of(tok, &ckpt.dir.join("tokenizer.json"))?;
    let lavit = LavitConfig {
        num_latent: ids.len(),
        latent_token_ids: ids,
        d_teacher,
        head_states: HeadStates::PostNorm,
        traj_scale: TrajScale::None,
        ..LavitConfig::default()
    };
    let vlm = ckpt.load(device)?;
    if let Some(&bad_id) = lavit
        .latent_token_ids
        .iter()
        .find(|&&i| i as usize >= vlm.config.text.vocab_size)
    {
        return Err(bad(format!(
            "the latent token id {bad_id} is outside the model's vocabulary ({})",
            vlm.config.text.vocab_size
        )));
    }
    let student = LavitStudent::new(vlm, lavit, 0);
    let float: DType = device.settings().float_dtype.into();
    let files = checkpoint_files(&ckpt.dir)?;
    let heads = load_module(
        (student.vtop_head, student.traj_head),
        WeightSource::Files(files),
        HEAD_REMAP,
        float,
    )
    .map_err(|e| match e {
        LavitError::MissingTensors(m) => LavitError::MissingTensors(format!(
            "the LaViT heads (v_top_head.mlp.0/2, traj_head.query_proj) in {}: {m}",
            ckpt.dir.display()
        )),
        other => other,
    })?;
    Ok(LavitStudent {
        vlm: student.vlm,
        vtop_head: heads.0,
        traj_head: heads.1,
        lavit: student.lavit,
    })
}

/// Writes `model` in the reference layout: `config.json` with the LaViT fields, the VLM and
/// the heads as two shards with an index, the tokenizer, the processor settings.
pub fn export(
    model: &LavitStudent,
    tok: &ChatTokenizer,
    processor: &ProcessorConfig,
    out: &Path,
    dtype: DType,
) -> Result<()> {
    if model.lavit.num_latent == 0 {
        return Err(LavitError::Invalid(
            "the reference layout is a LaViT student's; this model has no latent tokens".into(),
        ));
    }
    super::prepare_dir(out)?;
    let extra = serde_json::json!({
        "v_top_dim": model.lavit.d_teacher,
        "training_stage": 2,
        "loss_scale_vtop": crate::defaults::LAMBDA_VTOP,
        "loss_scale_traj": crate::defaults::LAMBDA_TRAJ,
        "use_trajectory_supervision": true,
        "bottleneck_block_prompt": true,
    });
    let cfg = to_hf_json(&model.vlm.config, Some(&extra));
    write_atomic(
        &out.join("config.json"),
        &serde_json::to_vec_pretty(&cfg).expect("config serialises"),
    )?;
    let shards: [(&str, PathBuf); 2] = [
        ("vlm", out.join("model-00001-of-00002.safetensors")),
        ("heads", out.join("model-00002-of-00002.safetensors")),
    ];
    let mut vlm = model.vlm.valid().merge_new_rows();
    vlm.model = vlm.model.merge_lora();
    crate::io::weights::save_hf_safetensors(&vlm, &shards[0].1, dtype)?;
    // The reference's scores carry no 1/√d: fold ours into the query projection, so the
    // written head gives the same scores.
    let mut traj = model.traj_head.valid();
    if traj.scale == TrajScale::InvSqrtD {
        let s = 1.0 / (model.vlm.config.text.hidden_size as f64).sqrt();
        traj.q_proj.weight = traj.q_proj.weight.map(|w| w * s);
        traj.q_proj.bias = traj.q_proj.bias.map(|b| b.map(|b| b * s));
        traj.scale = TrajScale::None;
    }
    save_module(
        &(model.vtop_head.valid(), traj),
        &shards[1].1,
        HEAD_SAVE_REMAP,
        dtype,
    )?;
    super::write_shard_index(out, &shards.map(|s| s.1))?;
    let _ = std::fs::remove_file(out.join("model.safetensors"));
    let _ = std::fs::remove_file(out.join("lavit_heads.safetensors"));
    super::write_tokenizer_and_processor(tok, processor, out)
}
