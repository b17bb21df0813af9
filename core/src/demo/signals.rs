//! Stage 2 of the demo: the shipped teacher's signals for the training split (the students'
//! targets), its trajectories on the evaluation split (what the students' gaze is compared
//! with) and its own answers there.

use std::collections::BTreeMap;
use std::path::Path;

use burn::prelude::*;

use super::data::DemoData;
use super::{DemoConfig, ModelResult, Progress};
use crate::bundle::ModelBundle;
use crate::error::Result;
use crate::eval::Prediction;
use crate::eval::metrics::{MapMetrics, accuracy, grounding_by_type, grounding_of};
use crate::infer::GenerateConfig;
use crate::teacher::pipeline::{ExtractJob, extract_all};
use crate::teacher::{ExtractConfig, SignalStore, SignalWriter};

/// Greedy decoding of the demo's evaluations.
pub fn greedy() -> GenerateConfig {
    GenerateConfig {
        max_new_tokens: crate::data::synthetic::MAX_NEW_TOKENS,
        attn_layers: crate::defaults::TRAJ_LAYERS,
        ..Default::default()
    }
}

/// What the teacher stage hands on.
pub struct TeacherStage {
    pub result: ModelResult,
    pub preds: Vec<Prediction>,
    /// Teacher width `d_T` (the students' VTopHead output).
    pub d_teacher: usize,
    /// The teacher's trajectory of each evaluation sample (its steps, on its grid).
    pub maps: BTreeMap<String, Vec<Vec<f32>>>,
    pub grids: BTreeMap<String, (usize, usize)>,
    pub trajectory: MapMetrics,
    pub trajectory_by_type: BTreeMap<String, MapMetrics>,
}

/// The demo's extraction with `teacher`: `cfg`'s top-K, rows and layers over every step of
/// each sample's own answer (no generation, no correctness filter), images under `images_root`.
pub fn extract_job<'a>(
    teacher: &'a ModelBundle,
    cfg: &DemoConfig,
    images_root: &'a Path,
) -> Result<ExtractJob<'a>> {
    let depth = teacher.vlm().config.text.num_hidden_layers;
    if cfg.teacher_layers == 0 || cfg.teacher_layers > depth {
        return Err(crate::error::LavitError::Invalid(format!(
            "the teacher has {depth} decoder layers: its trajectory cannot average {}",
            cfg.teacher_layers
        )));
    }
    Ok(ExtractJob {
        teacher: teacher.vlm().into(),
        tokenizer: &teacher.tokenizer,
        processor: &teacher.processor,
        images_root,
        cfg: ExtractConfig {
            top_k: cfg.traj_top_k,
            rows: cfg.traj_rows,
            layers: cfg.teacher_layers,
        },
        // Every step is kept: steps are pooled onto the latent tokens.
        max_steps: None,
        generate: None,
        filter_correct: false,
    })
}

/// Extracts the training split's signals into `OUT/signals-train` and the evaluation split's
/// into `OUT/signals-<split>`, then answers the evaluation split with the teacher.
pub fn teacher_stage(
    cfg: &DemoConfig,
    data: &DemoData,
    device: &Device,
    progress: Progress<'_>,
) -> Result<TeacherStage> {
    let teacher = ModelBundle::load(&cfg.assets.join("teacher"), device)?;
    let job = extract_job(&teacher, cfg, &data.images)?;
    let split = data.split.name();
    for (name, set) in [("train", &data.train), (split, &data.eval)] {
        let dir = cfg.out.join(format!("signals-{name}"));
        let mut w = SignalWriter::open(&dir, 0, 1, 64)?;
        let refs: Vec<_> = set.iter().collect();
        let n = refs.len();
        let stage = format!("extract {name}");
        extract_all(&job, &refs, &mut w, &mut |d, _| progress(&stage, d, n))?;
    }
    let mut store = SignalStore::open(&cfg.out.join(format!("signals-{split}")))?;
    let (mut maps, mut grids) = (BTreeMap::new(), BTreeMap::new());
    for r in store.records.clone() {
        let s = store.load(&r)?;
        grids.insert(r.id.clone(), s.grid);
        maps.insert(r.id.clone(), s.traj);
    }

    let n = data.eval_items.len();
    let stage = "eval teacher".to_string();
    let preds = teacher.predict(&data.eval_items, &data.images, &greedy(), &mut |i| {
        progress(&stage, i, n)
    })?;
    let sizes: BTreeMap<String, (usize, usize)> =
        preds.iter().map(|p| (p.id.clone(), p.image_size)).collect();
    let grid_of = |it: &crate::eval::EvalItem| (grids[&it.id], sizes[&it.id]);
    Ok(TeacherStage {
        result: ModelResult {
            name: "teacher".into(),
            accuracy: accuracy(&preds),
            attention: None,
            attention_by_type: BTreeMap::new(),
            head: None,
            emitted_latents: None,
            train_seconds: None,
            final_loss: None,
        },
        trajectory: grounding_of(&data.eval_items, &maps, grid_of),
        trajectory_by_type: grounding_by_type(&data.eval_items, &maps, grid_of),
        preds,
        d_teacher: teacher.vlm().config.text.hidden_size,
        maps,
        grids,
    })
}
