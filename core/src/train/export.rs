//! Exporting a trained student as an HF-layout directory that our loader (and transformers,
//! for the VLM part) reads back:
//!
//! ```text
//! OUT/config.json             Qwen2.5-VL config + "lavit": {num_latent, latent_token_ids, d_teacher}
//! OUT/model.safetensors       the VLM in the hub key layout (PyTorch orientation)
//! OUT/lavit_heads.safetensors VTopHead + TrajectoryHead
//! OUT/tokenizer.json          with <lvr1>…<lvrK>
//! ```

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
    let lavit = serde_json::json!({ "lavit": student.lavit });
    let cfg = to_hf_json(&student.vlm.config, Some(&lavit));
    write_atomic(
        &out.join("config.json"),
        &serde_json::to_vec_pretty(&cfg).expect("config serialises"),
    )?;
    let mut vlm = student.vlm.valid();
    vlm.model = vlm.model.merge_lora();
    save_hf_safetensors(&vlm, &out.join("model.safetensors"), dtype)?;
    let heads = (student.vtop_head.valid(), student.traj_head.valid());
    let mut store =
        SafetensorsStore::from_file(out.join("lavit_heads.safetensors")).overwrite(true);
    heads
        .save_into(&mut store)
        .map_err(|e| LavitError::Other(format!("saving the heads: {e}")))?;
    let json = tok
        .inner
        .to_string(true)
        .map_err(|e| LavitError::Other(format!("serialising the tokenizer: {e}")))?;
    write_atomic(&out.join("tokenizer.json"), json.as_bytes())
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
    let student = LavitStudent::new(vlm, lavit);
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
