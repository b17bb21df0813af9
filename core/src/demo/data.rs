//! Stage 1 of the demo: the synthetic task's splits, written in the Visual-CoT layout the real
//! pipeline reads (`OUT/data/{train,val,test}.json`, `OUT/data/images/`).
//!
//! Each split has its own seed (derived from the run's), so the validation split used to
//! choose settings never overlaps the test split that is reported.

use std::path::{Path, PathBuf};

use super::{DemoConfig, EvalSplit, Progress};
use crate::data::synthetic::{SceneConfig, generate, write_split};
use crate::data::viscot::{Sample, read_viscot};
use crate::error::Result;
use crate::eval::EvalItem;

/// Seed offsets of the splits (the test offset is the one `lavit synth` uses).
pub const VAL_SEED_OFFSET: u64 = 2_000_003;
pub const TEST_SEED_OFFSET: u64 = 1_000_003;

/// The task file shipped beside the teacher: the [`SceneConfig`] it was trained on.
pub const TASK_FILE: &str = "task.json";
/// The language-prior variant of that task (the demo's default): its training split carries a
/// prior (`prior`), its validation and test splits are balanced; colour, shape and size only.
pub const PRIOR_TASK_FILE: &str = "task-prior.json";

/// The synthetic task of the shipped models in `assets` (`assets/task.json`; the plain task
/// when there is none: asset directories made before the file existed were trained on it).
pub fn task_of(assets: &Path) -> Result<SceneConfig> {
    let path = assets.join(TASK_FILE);
    if !path.exists() {
        return Ok(SceneConfig::plain());
    }
    task_file(&path)
}

/// A task file: a [`SceneConfig`] as JSON, refused unless [`SceneConfig::validate`] accepts it.
pub fn task_file(path: &Path) -> Result<SceneConfig> {
    let task: SceneConfig = crate::error::read_json(path)?;
    task.validate()
        .map_err(|message| crate::error::LavitError::Config {
            path: path.to_path_buf(),
            message,
        })?;
    Ok(task)
}

/// The splits of one run.
pub struct DemoData {
    /// The task the splits were drawn from.
    pub task: SceneConfig,
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
    let scene = task_file(&cfg.task_path())?;
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
    // Evaluation splits are balanced: a language prior only records each question's answer.
    write_split(
        &dir,
        name,
        &generate(n, cfg.seed.wrapping_add(offset), &scene.balanced(), prefix),
    )?;
    progress("data", 2, 2);
    let train = read_viscot(&dir.join("train.json"))?;
    let eval = read_viscot(&dir.join(format!("{name}.json")))?;
    let eval_items = eval
        .iter()
        .map(EvalItem::from_sample)
        .collect::<Result<_>>()?;
    Ok(DemoData {
        task: scene,
        train,
        eval,
        eval_items,
        split: cfg.eval_split,
        images: dir.join("images"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::synthetic::{Background, Relation, StepStyle};

    /// The demo draws its splits from the task shipped beside the teacher; asset directories
    /// without `task.json` get the default task; a broken file is an error, not a fallback.
    #[test]
    fn the_task_comes_from_the_assets() {
        let dir = std::env::temp_dir().join(format!("lavit-task-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(task_of(&dir).unwrap(), SceneConfig::plain());
        let task = SceneConfig {
            background: Background::Zones,
            steps: StepStyle::Grounded,
            relation: Relation::Vertical,
            ..Default::default()
        };
        std::fs::write(dir.join(TASK_FILE), serde_json::to_vec(&task).unwrap()).unwrap();
        assert_eq!(task_of(&dir).unwrap(), task);
        // Fields added later default, so older task files still read.
        std::fs::write(
            dir.join(TASK_FILE),
            br#"{"size":168,"min_objects":3,"max_objects":5}"#,
        )
        .unwrap();
        assert_eq!(task_of(&dir).unwrap(), SceneConfig::plain());
        std::fs::write(dir.join(TASK_FILE), b"{\"relation\": \"diagonal\"").unwrap();
        assert!(task_of(&dir).is_err());
        // Settings the generator cannot draw are a config error, not a hang in the demo.
        std::fs::write(
            dir.join(TASK_FILE),
            br#"{"size":30,"min_objects":3,"max_objects":5}"#,
        )
        .unwrap();
        let e = task_of(&dir).unwrap_err().to_string();
        assert!(e.contains("task.json") && e.contains("cells"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
