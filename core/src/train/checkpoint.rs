//! Training checkpoints: model (burnpack, keeps parameter ids), optimiser state, step, data
//! cursor and seed. Written to a temporary directory, then swapped in by renames, so a kill
//! leaves either the previous checkpoint or the new one.

use std::path::Path;

use burn::module::Module;
use burn::optim::ModuleOptimizer;
use serde::{Deserialize, Serialize};

use super::{DataCursor, TrainConfig};
use crate::error::{LavitError, Result};
use crate::lavit::student::LavitStudent;

/// `state.json` of a checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Optimiser steps done.
    pub step: usize,
    /// Next sample to read.
    pub cursor: DataCursor,
    /// Seed of the data order (the only randomness of a step).
    pub seed: u64,
    pub config: TrainConfig,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> LavitError + '_ {
    move |e| LavitError::Io {
        path: path.to_path_buf(),
        source: e,
    }
}

/// Writes `dir` atomically: everything into `dir.tmp`, then `dir` → `dir.old` and `dir.tmp` →
/// `dir` by renames, then `dir.old` removed. A crash leaves the previous checkpoint (in `dir`,
/// or in `dir.old` between the two renames, which [`recover_checkpoint`] puts back); a failed
/// write (a full disk) removes `dir.tmp` and names the path it failed on.
pub fn save_checkpoint(
    dir: &Path,
    student: &LavitStudent,
    optim: &ModuleOptimizer,
    state: &TrainState,
) -> Result<()> {
    let tmp = dir.with_extension("tmp");
    let old = dir.with_extension("old");
    let _ = std::fs::remove_dir_all(&tmp);
    if let Err(e) = write_checkpoint(&tmp, student, optim, state) {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    crate::error::failpoint!("checkpoint::before_swap");
    let _ = std::fs::remove_dir_all(&old);
    if dir.exists() {
        std::fs::rename(dir, &old).map_err(io(dir))?;
    }
    crate::error::failpoint!("checkpoint::between_renames");
    std::fs::rename(&tmp, dir).map_err(io(dir))?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}

/// The checkpoint's three files in `tmp`.
fn write_checkpoint(
    tmp: &Path,
    student: &LavitStudent,
    optim: &ModuleOptimizer,
    state: &TrainState,
) -> Result<()> {
    std::fs::create_dir_all(tmp).map_err(io(tmp))?;
    let model = tmp.join("model.bpk");
    crate::error::failpoint!("checkpoint::write_model", |_| Err(crate::error::disk_full(
        &model
    )));
    student
        .clone()
        .save_file(&model)
        .map_err(|e| LavitError::Other(format!("writing {}: {e:?}", model.display())))?;
    let optim_path = tmp.join("optim.bpk");
    optim
        .save(&optim_path)
        .map_err(|e| LavitError::Other(format!("writing {}: {e:?}", optim_path.display())))?;
    let json = serde_json::to_vec_pretty(state).expect("state serialises");
    let state_path = tmp.join("state.json");
    crate::error::failpoint!("checkpoint::write_state", |_| Err(crate::error::disk_full(
        &state_path
    )));
    std::fs::write(&state_path, json).map_err(io(&state_path))
}

/// Repairs what a crash inside [`save_checkpoint`] can leave: with `dir` gone and `dir.old`
/// present (a crash between the two renames) `dir.old` becomes `dir` again; a stale `dir.tmp`
/// (a crash while writing) is removed.
pub fn recover_checkpoint(dir: &Path) -> Result<()> {
    let old = dir.with_extension("old");
    if !dir.exists() && old.join("state.json").is_file() {
        tracing::warn!(
            "{} is missing but {} is complete (a crash while it was replaced): using it",
            dir.display(),
            old.display()
        );
        std::fs::rename(&old, dir).map_err(io(dir))?;
    }
    let _ = std::fs::remove_dir_all(dir.with_extension("tmp"));
    Ok(())
}

/// Restores a checkpoint into `student` (same architecture) and `optim`.
pub fn load_checkpoint(
    dir: &Path,
    student: LavitStudent,
    optim: ModuleOptimizer,
) -> Result<(LavitStudent, TrainState, ModuleOptimizer)> {
    let state: TrainState = crate::error::read_json(dir.join("state.json"))?;
    let student = student
        .try_load_file(dir.join("model.bpk"))
        .map_err(|e| LavitError::Other(format!("checkpoint {}: model: {e:?}", dir.display())))?;
    let optim = optim.load(dir.join("optim.bpk")).map_err(|e| {
        LavitError::Other(format!("checkpoint {}: optimiser: {e:?}", dir.display()))
    })?;
    Ok((student, state, optim))
}
