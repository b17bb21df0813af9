//! Stage 4 of the demo: a student's answers on the evaluation split and how its latent tokens
//! look — against the teacher's trajectory (KL, top-4 overlap) and the ground-truth regions
//! (mass inside, pointing), overall and per question type.

use std::collections::BTreeMap;

use super::data::DemoData;
use super::signals::{TeacherStage, greedy};
use super::{DemoConfig, ModelResult, Progress};
use crate::bundle::ModelBundle;
use crate::error::Result;
use crate::eval::Prediction;
use crate::eval::metrics::{accuracy, map_metrics, map_metrics_by_type};
use crate::lavit::targets::{TopK, trajectory_targets};

/// Patches compared by the top-K overlap of the gaze metrics.
pub const GAZE_TOP_K: usize = 4;

/// A trained student, named.
pub struct StudentUnderTest<'a> {
    pub name: &'a str,
    pub student: &'a ModelBundle,
    /// Whether its TrajectoryHead was trained (`λ_traj > 0`); an untrained head says nothing.
    pub head_trained: bool,
}

/// Answers the evaluation split greedily (the student emits its latent tokens itself) and
/// measures accuracy, latents emitted, gaze and grounding.
pub fn evaluate_student(
    cfg: &DemoConfig,
    data: &DemoData,
    teacher: &TeacherStage,
    s: &StudentUnderTest<'_>,
    progress: Progress<'_>,
) -> Result<(ModelResult, Vec<Prediction>)> {
    let n = data.eval_items.len();
    let stage = format!("eval {}", s.name);
    let preds = s
        .student
        .predict(&data.eval_items, &data.images, &greedy(), &mut |i| {
            progress(&stage, i, n)
        })?;
    // The teacher's maps on this student's grid, one per latent token (dense).
    let mut teacher_on_student = BTreeMap::new();
    for p in &preds {
        if let (Some(m), Some(g)) = (teacher.maps.get(&p.id), teacher.grids.get(&p.id)) {
            teacher_on_student.insert(
                p.id.clone(),
                trajectory_targets(m, *g, p.grid, cfg.num_latent, TopK::Dense),
            );
        }
    }
    let emitted =
        preds.iter().filter(|p| p.emitted_latents).count() as f64 / preds.len().max(1) as f64;
    let items = &data.eval_items;
    let result = ModelResult {
        name: s.name.to_string(),
        accuracy: accuracy(&preds),
        attention: Some(map_metrics(
            items,
            &preds,
            &teacher_on_student,
            |p| &p.attn_maps,
            GAZE_TOP_K,
        )),
        attention_by_type: map_metrics_by_type(
            items,
            &preds,
            &teacher_on_student,
            |p| &p.attn_maps,
            GAZE_TOP_K,
        ),
        head: s.head_trained.then(|| {
            map_metrics(
                items,
                &preds,
                &teacher_on_student,
                |p| &p.head_maps,
                GAZE_TOP_K,
            )
        }),
        emitted_latents: Some(emitted),
        train_seconds: None,
        final_loss: None,
    };
    Ok((result, preds))
}
