//! A whole training run as `lavit train` describes it: open the student, build its samples
//! from a signal store (LaViT) or a dataset (CE only), train, export — the decisions a front
//! end must not make itself.

use std::path::{Path, PathBuf};

use burn::prelude::*;

use super::data::{TargetConfig, samples_from_store, samples_from_viscot};
use super::{StepLog, TrainConfig, train_on};
use crate::bundle::{Layout, ModelBundle, export, reference};
use crate::error::{LavitError, Result};
use crate::io::Checkpoint;
use crate::io::weights::WeightDtype;
use crate::lavit::gating::GateSchedule;
use crate::lavit::heads::HeadStates;
use crate::lavit::student::{LavitStudent, StudentSample};
use crate::lavit::targets::TopK;
use crate::teacher::SignalStore;

/// Where a run's samples come from.
#[derive(Debug, Clone)]
pub enum TrainData {
    /// A signal store from `lavit extract`: LaViT training, every loss term.
    Signals(PathBuf),
    /// A Visual-CoT dataset: CE only (teachers, baselines, pre-training).
    Dataset(PathBuf),
}

/// Everything a run needs besides its devices.
#[derive(Debug, Clone)]
pub struct TrainJob {
    /// A plain Qwen2.5-VL directory or a LaViT student (ours or the reference's layout).
    pub student: PathBuf,
    pub data: TrainData,
    /// Root of the samples' image paths.
    pub images: PathBuf,
    /// Run directory: `checkpoint/`, `metrics.jsonl`, `train_config.json`, `final/`.
    pub out: PathBuf,
    pub resume: bool,
    /// `tokenizer.json` instead of the student's.
    pub tokenizer: Option<PathBuf>,
    /// Latent tokens of a fresh student (`None`: [`crate::defaults::NUM_LATENT`] with
    /// signals, none with a dataset).
    pub num_latent: Option<usize>,
    pub config: TrainConfig,
    /// Whether the gate schedule was asked for (a CE-only run has none otherwise).
    pub gate_given: bool,
    /// Top-K of the trajectory targets.
    pub top_k: TopK,
    /// The states a fresh student's heads read.
    pub head_states: Option<HeadStates>,
    pub bottleneck: Option<bool>,
    pub gaze_layers: Option<Vec<usize>>,
    pub vtop_layer: Option<usize>,
    /// Upper bound on the resized image area.
    pub max_pixels: Option<usize>,
    pub export_dtype: WeightDtype,
    pub layout: Layout,
    /// Also export every N steps to `OUT/step-N` (0: only at the end).
    pub export_every: usize,
}

/// What a finished run did.
#[derive(Debug, Clone)]
pub struct TrainedRun {
    pub steps: usize,
    pub samples: usize,
    /// The exported model (`OUT/final`).
    pub model: PathBuf,
}

impl TrainJob {
    /// The run's configuration: with a dataset (CE only) no alignment terms and no gate
    /// unless one was asked for.
    pub fn effective_config(&self) -> TrainConfig {
        let mut cfg = self.config.clone();
        if let TrainData::Dataset(_) = self.data {
            cfg.loss.lambda_vtop = 0.0;
            cfg.loss.lambda_traj = 0.0;
            if !self.gate_given {
                cfg.gate = GateSchedule::Off;
            }
        }
        cfg
    }
}

/// Runs `job` on `device` (data-parallel over `replicas` when several); `on_step` sees each
/// step's log.
pub fn run_job(
    job: &TrainJob,
    device: &Device,
    replicas: &super::Replicas,
    on_step: &mut dyn FnMut(&StepLog),
) -> Result<TrainedRun> {
    let cfg = job.effective_config();
    let (student, samples) = prepare(job, &cfg, device)?;
    let _lock = super::lock_run(&job.out)?;
    crate::io::checkpoint::write_atomic(
        &job.out.join("train_config.json"),
        &serde_json::to_vec_pretty(&cfg).expect("config serialises"),
    )?;
    let ModelBundle {
        model,
        tokenizer,
        processor,
    } = student;
    let save = |m: &LavitStudent, dir: &Path| match job.layout {
        Layout::Ours => export(m, &tokenizer, &processor, dir, job.export_dtype.into()),
        Layout::Reference => {
            reference::export(m, &tokenizer, &processor, dir, job.export_dtype.into())
        }
    };
    let mut export_error = None;
    let trained = train_on(
        model,
        &samples,
        &cfg,
        &job.out,
        job.resume,
        replicas,
        &mut |l, m| {
            on_step(l);
            if job.export_every > 0
                && l.step % job.export_every == 0
                && l.step < cfg.steps
                && let Err(e) = save(m, &job.out.join(format!("step-{}", l.step)))
            {
                export_error = Some(e);
                return false;
            }
            true
        },
    )?;
    if let Some(e) = export_error {
        return Err(e);
    }
    let model = job.out.join("final");
    save(&trained, &model)?;
    Ok(TrainedRun {
        steps: cfg.steps,
        samples: samples.len(),
        model,
    })
}

/// The student (its latent options set and checked) and its training samples.
fn prepare(
    job: &TrainJob,
    cfg: &TrainConfig,
    device: &Device,
) -> Result<(ModelBundle, Vec<StudentSample>)> {
    let signals = matches!(job.data, TrainData::Signals(_));
    let k = job.num_latent.unwrap_or(if signals {
        crate::defaults::NUM_LATENT
    } else {
        0
    });
    if job.layout == Layout::Reference && k == 0 {
        return Err(LavitError::Invalid(
            "the reference layout needs a LaViT student (latent tokens)".into(),
        ));
    }
    let mut store = match &job.data {
        TrainData::Signals(dir) => Some(SignalStore::open(dir)?),
        TrainData::Dataset(_) => None,
    };
    let d_teacher = match &store {
        Some(s) => s
            .records
            .first()
            .map(|r| r.d_teacher)
            .ok_or_else(|| LavitError::Invalid("the signal store is empty".into()))?,
        None => 1,
    };
    let raw = Checkpoint::open(&job.student)?.raw_config;
    let was_student = raw.get("lavit").is_some() || reference::is_reference(&raw);
    let mut student = ModelBundle::open_for_training(
        &job.student,
        k,
        d_teacher,
        job.tokenizer.as_deref(),
        cfg.seed,
        device,
    )?;
    set_latent_options(job, &mut student, was_student)?;
    if let Some(m) = job.max_pixels {
        student.processor.max_pixels = m;
    }
    let ids = student.model.lavit.latent_token_ids.clone();
    let (tok, proc) = (&student.tokenizer, &student.processor);
    let samples = match (&mut store, &job.data) {
        (Some(store), _) => samples_from_store(
            store,
            &job.images,
            tok,
            proc,
            &ids,
            d_teacher,
            TargetConfig { top_k: job.top_k },
        )?,
        (None, TrainData::Dataset(path)) => samples_from_viscot(
            &crate::data::read_viscot(path)?,
            &job.images,
            tok,
            proc,
            &ids,
        )?,
        (None, TrainData::Signals(_)) => unreachable!("a store was opened"),
    };
    Ok((student, samples))
}

/// The job's head states (a fresh student only), bottleneck, gaze layers and `V_top` layer on
/// the student (a LaViT student keeps what a flag does not set).
fn set_latent_options(job: &TrainJob, student: &mut ModelBundle, was_student: bool) -> Result<()> {
    let lavit = &mut student.model.lavit;
    if let Some(h) = job.head_states {
        if was_student && h != lavit.head_states {
            return Err(LavitError::Invalid(format!(
                "{} is a LaViT student whose heads read {} states; head states {} apply to a fresh student",
                job.student.display(),
                lavit.head_states.name(),
                h.name()
            )));
        }
        lavit.head_states = h;
        student.model.traj_head.states = h;
    }
    if let Some(b) = job.bottleneck {
        lavit.bottleneck = b;
    }
    if let Some(g) = &job.gaze_layers {
        lavit.gaze_layers = g.clone();
    }
    if job.vtop_layer.is_some() {
        lavit.vtop_layer = job.vtop_layer;
    }
    if lavit.bottleneck && job.gate_given {
        return Err(LavitError::Invalid(
            "a gate schedule: the bottleneck keeps the gate closed throughout".into(),
        ));
    }
    lavit.check_layers(student.model.vlm.config.text.num_hidden_layers)
}
