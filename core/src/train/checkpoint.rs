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

/// Writes `dir` atomically (via `dir.tmp` and a rename).
pub fn save_checkpoint(
    dir: &Path,
    student: &LavitStudent,
    optim: &ModuleOptimizer,
    state: &TrainState,
) -> Result<()> {
    let tmp = dir.with_extension("tmp");
    let old = dir.with_extension("old");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    student
        .clone()
        .save_file(tmp.join("model.bpk"))
        .map_err(|e| LavitError::Other(format!("saving the model: {e:?}")))?;
    optim
        .save(tmp.join("optim.bpk"))
        .map_err(|e| LavitError::Other(format!("saving the optimiser: {e:?}")))?;
    let json = serde_json::to_vec_pretty(state).expect("state serialises");
    std::fs::write(tmp.join("state.json"), json).map_err(io(&tmp))?;
    let _ = std::fs::remove_dir_all(&old);
    if dir.exists() {
        std::fs::rename(dir, &old).map_err(io(dir))?;
    }
    std::fs::rename(&tmp, dir).map_err(io(dir))?;
    let _ = std::fs::remove_dir_all(&old);
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
