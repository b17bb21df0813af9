//! ModelBundle training samples from a signal store: the prompt with the latent block and the
//! answer, and the teacher targets mapped to the student's grid.

use std::path::Path;

use crate::error::{LavitError, Result};
use crate::io::chat::ChatTokenizer;
use crate::io::processor::{ProcessorConfig, load_rgb};
use crate::lavit::student::{SampleTargets, StudentSample};
use crate::lavit::targets::{TopK, trajectory_targets, vtop_step_targets};
use crate::teacher::TeacherSignals;
use crate::teacher::store::SignalStore;

/// How teacher signals become student targets.
#[derive(Debug, Clone, Copy)]
pub struct TargetConfig {
    /// Top-K patches kept of each target map, on the student's grid.
    pub top_k: TopK,
}

/// Builds one sample per store record (in store order).
pub fn samples_from_store(
    store: &mut SignalStore,
    images_root: &Path,
    tok: &ChatTokenizer,
    processor: &ProcessorConfig,
    latent_ids: &[u32],
    d_teacher: usize,
    targets: TargetConfig,
) -> Result<Vec<StudentSample>> {
    let records = store.records.clone();
    let mut out = Vec::with_capacity(records.len());
    for r in &records {
        if r.d_teacher != d_teacher {
            return Err(LavitError::Invalid(format!(
                "signal store record {} has d_T = {} but the student's VTopHead expects {d_teacher}",
                r.id, r.d_teacher
            )));
        }
        let img = load_rgb(&images_root.join(&r.image))?;
        let mut s = StudentSample::build(tok, processor, &img, &r.question, &r.answer, latent_ids)?;
        s.targets = Some(targets_of(
            &s,
            &store.load(r)?,
            processor.merge_size,
            targets,
        ));
        out.push(s);
    }
    Ok(out)
}

/// The targets of `sample`'s latent tokens from its teacher's signals: the trajectory mapped
/// onto the student's merged grid (top-K kept) and `V_top`'s mean and per-step targets.
pub fn targets_of(
    sample: &StudentSample,
    sig: &TeacherSignals,
    merge_size: usize,
    targets: TargetConfig,
) -> SampleTargets {
    let k = sample.latent_positions.len();
    let grid = sample.merged_grid(merge_size);
    SampleTargets {
        vtop_mean: sig.vtop_mean(),
        vtop_step: vtop_step_targets(&sig.traj, &sig.vtop, sig.d_teacher, k),
        traj: trajectory_targets(&sig.traj, sig.grid, grid, k, targets.top_k),
    }
}

/// CE-only samples from a Visual-CoT dataset (no teacher signals): teacher training,
/// pre-training, or a baseline student.
pub fn samples_from_viscot(
    samples: &[crate::data::viscot::Sample],
    images_root: &Path,
    tok: &ChatTokenizer,
    processor: &ProcessorConfig,
    latent_ids: &[u32],
) -> Result<Vec<StudentSample>> {
    samples
        .iter()
        .map(|s| {
            let img = load_rgb(&images_root.join(&s.image))?;
            StudentSample::build(tok, processor, &img, &s.question, &s.answer, latent_ids)
        })
        .collect()
}
