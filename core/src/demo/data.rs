//! Stage 1 of the demo: the synthetic task's splits, written in the Visual-CoT layout the real
//! pipeline reads (`OUT/data/{train,val,test}.json`, `OUT/data/images/`).
//!
//! Each split has its own seed (derived from the run's), so the validation split used to
//! choose settings never overlaps the test split that is reported.

use std::path::PathBuf;

use super::{DemoConfig, EvalSplit, Progress};
use crate::data::synthetic::{SceneConfig, generate, write_split};
use crate::data::viscot::{Sample, read_viscot};
use crate::error::Result;
use crate::eval::EvalItem;

/// Seed offsets of the splits (the test offset is the one `lavit synth` uses).
pub const VAL_SEED_OFFSET: u64 = 2_000_003;
pub const TEST_SEED_OFFSET: u64 = 1_000_003;

/// The splits of one run.
pub struct DemoData {
    pub train: Vec<Sample>,
    /// The evaluation split (validation or test, as configured).
    pub eval: Vec<Sample>,
    pub eval_items: Vec<EvalItem>,
    pub split: EvalSplit,
    pub images: PathBuf,
}

/// Generates and writes the training split and the evaluation split of `cfg`.
pub fn prepare(cfg: &DemoConfig, progress: Progress<'_>) -> Result<DemoData> {
    let dir = cfg.out.join("data");
    let scene = SceneConfig::default();
    progress("data", 0, 2);
    write_split(
        &dir,
        "train",
        &generate(cfg.n_train, cfg.seed, &scene, "train-"),
    )?;
    let (name, n, offset, prefix) = match cfg.eval_split {
        EvalSplit::Val => ("val", cfg.n_val, VAL_SEED_OFFSET, "val-"),
        EvalSplit::Test => ("test", cfg.n_test, TEST_SEED_OFFSET, "test-"),
    };
    write_split(
        &dir,
        name,
        &generate(n, cfg.seed.wrapping_add(offset), &scene, prefix),
    )?;
    progress("data", 2, 2);
    let train = read_viscot(&dir.join("train.json"))?;
    let eval = read_viscot(&dir.join(format!("{name}.json")))?;
    let eval_items = eval
        .iter()
        .map(EvalItem::from_sample)
        .collect::<Result<_>>()?;
    Ok(DemoData {
        train,
        eval,
        eval_items,
        split: cfg.eval_split,
        images: dir.join("images"),
    })
}
