//! Live training: one of the demo's students trained in memory, a step at a time, on scenes the
//! task generator draws, with the teacher's signals computed on the spot, and its gaze measured
//! on a probe scene held out of training. This is what the browser's Train panel runs: nothing
//! is read from or written to files, and every read-back of the student is awaited, so the
//! same run goes natively and on WebGPU in a page.
//!
//! The teacher answers on a backend that reads back synchronously (the CPU backend in the
//! browser): its signals are computed once, when the run is built, one scene at a time with an
//! awaited progress report between scenes, so that a page can paint and take input meanwhile.

use std::path::Path;

use burn::prelude::*;
use serde::Serialize;

use super::DemoConfig;
use super::data::VAL_SEED_OFFSET;
use super::signals::extract_job;
use super::students::{Variant, configure, train_config, variants};
use crate::bundle::ModelBundle;
use crate::data::synthetic::{SceneConfig, generate};
use crate::error::{LavitError, Result};
use crate::lavit::losses::{LossWeights, TrajTarget};
use crate::lavit::student::{StudentSample, sample_losses};
use crate::lavit::targets::normalise;
use crate::teacher::pipeline::{ExtractJob, signals_of};
use crate::train::data::{TargetConfig, targets_of};
use crate::train::{StepLog, Trainer};
use crate::util::read_f32;

/// What to train live.
#[derive(Debug, Clone)]
pub struct LiveConfig {
    /// The demo's configuration (its default is the pre-registered one): the variants' losses,
    /// gate and heads, the learning rate and schedule, `K`, the targets, the data seed; its
    /// `n_train` scenes (the first of the demo's training draw) and `steps`.
    pub demo: DemoConfig,
    /// Which of the demo's students: `baseline` (CE only) or `lavit`.
    pub student: String,
}

impl LiveConfig {
    /// `student` of the demo's default configuration, on `n_train` scenes for `steps` steps.
    pub fn new(student: &str, n_train: usize, steps: usize) -> Self {
        Self {
            demo: DemoConfig {
                n_train,
                steps,
                term_grads_every: 0,
                ..DemoConfig::default()
            },
            student: student.to_string(),
        }
    }

    fn variant(&self) -> Result<Variant> {
        let all = variants(&self.demo);
        let names: Vec<&str> = all.iter().map(|v| v.name.as_str()).collect();
        let names = names.join(", ");
        all.iter()
            .find(|v| v.name == self.student)
            .cloned()
            .ok_or_else(|| LavitError::Invalid(format!("no student `{}` ({names})", self.student)))
    }
}

/// The student's view of the probe scene after some steps.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeView {
    /// Optimiser steps taken.
    pub step: usize,
    /// Cross-entropy of the probe's answer.
    pub ce: f64,
    /// `KL(teacher target ‖ latent attention)`, averaged over the latent tokens (the
    /// attention-target `L_traj`, measured for every student, the baseline included).
    pub kl: f64,
    /// Each latent token's attention over the image tokens (rows of the merged grid, summing
    /// to 1).
    pub student: Vec<Vec<f32>>,
    /// The teacher's target of each latent token on the same grid.
    pub teacher: Vec<Vec<f32>>,
    /// `(rows, columns)` of the student's merged grid.
    pub grid: (usize, usize),
    pub question: String,
}

/// A run in memory: [`LiveRun::step`] until [`LiveRun::finished`], [`LiveRun::probe`] between.
pub struct LiveRun {
    trainer: Trainer<Vec<StudentSample>>,
    probe: StudentSample,
    probe_image: image::RgbImage,
    probe_question: String,
    grid: (usize, usize),
    tokenizer: crate::io::chat::ChatTokenizer,
    processor: crate::io::processor::ProcessorConfig,
}

impl LiveRun {
    /// Draws the training scenes and the probe (the first scene of the demo's validation
    /// draw, never trained on), computes the teacher's signals of each, and starts training
    /// `base` (the shipped student base, on the device the student trains on) as `cfg` says.
    /// `progress(done, total)` is awaited after each teacher pass: a browser yields to its
    /// event loop there (each pass blocks the page's only thread), natively it can be a no-op.
    pub async fn new(
        base: ModelBundle,
        teacher: &ModelBundle,
        task: &SceneConfig,
        cfg: &LiveConfig,
        mut progress: impl AsyncFnMut(usize, usize),
    ) -> Result<Self> {
        let demo = &cfg.demo;
        if demo.n_train == 0 || demo.steps == 0 {
            return Err(LavitError::Invalid(
                "a live run needs at least one training scene and one step".into(),
            ));
        }
        let variant = cfg.variant()?;
        let d_teacher = teacher.vlm().config.text.hidden_size;
        let mut bundle = base.for_training(demo.num_latent, d_teacher, demo.seed)?;
        configure(&mut bundle.model, demo, &variant)?;
        let targets = Targets::new(teacher, demo)?;
        let mut scenes = generate(demo.n_train, demo.seed, task, "train-");
        let probe_seed = demo.seed.wrapping_add(VAL_SEED_OFFSET);
        scenes.extend(generate(1, probe_seed, &task.balanced(), "probe-"));
        let (probe_scene, probe_image) = scenes.last().expect("the probe was drawn");
        let (probe_question, probe_image) = (probe_scene.question.clone(), probe_image.clone());
        let total = scenes.len();
        let mut samples = Vec::with_capacity(total);
        for (i, (scene, img)) in scenes.into_iter().enumerate() {
            let record = scene.record(String::new());
            samples.push(targets.sample(&bundle, &record, img)?);
            progress(i + 1, total).await;
        }
        let probe = samples.pop().expect("the probe was drawn last");
        let grid = probe.merged_grid(bundle.processor.merge_size);
        let ModelBundle {
            model,
            tokenizer,
            processor,
        } = bundle;
        Ok(Self {
            trainer: Trainer::new(model, samples, train_config(demo, &variant))?,
            probe_question,
            probe_image,
            probe,
            grid,
            tokenizer,
            processor,
        })
    }

    /// One optimiser step ([`Trainer::step`]).
    pub async fn step(&mut self) -> Result<StepLog> {
        self.trainer.step().await
    }

    /// Whether every step has been taken.
    pub fn finished(&self) -> bool {
        self.trainer.finished()
    }

    /// Steps taken.
    pub fn steps_done(&self) -> usize {
        self.trainer.state().step
    }

    /// The student's CE, KL and gaze on the probe now (one forward pass under the gate of the
    /// current step, one read-back).
    pub async fn probe(&self) -> Result<ProbeView> {
        let student = self.trainer.student().valid();
        let g = self.trainer.config().gate.open_fraction(self.steps_done());
        let weights = LossWeights {
            ce: true,
            lambda_vtop: 0.0,
            lambda_traj: 1.0,
            traj_mass: 0.0,
            traj_target: TrajTarget::Attention,
            ..self.trainer.config().loss
        };
        let gate_prompt = self.trainer.config().gate_prompt;
        let parts = sample_losses(&student, &self.probe, &weights, g, gate_prompt)?;
        let (Some(ce), Some(kl), Some(gaze)) = (parts.ce, parts.traj, parts.gaze) else {
            return Err(LavitError::Other("the probe has no teacher targets".into()));
        };
        let [k, n] = gaze.dims();
        let flat = Tensor::cat(vec![ce, kl, gaze.reshape([k * n])], 0);
        let v = read_f32(flat).await?;
        let rows = |flat: &[f32]| -> Vec<Vec<f32>> { flat.chunks(n).map(normalise).collect() };
        let targets = self.probe.targets.as_ref().expect("the probe has targets");
        Ok(ProbeView {
            step: self.steps_done(),
            ce: v[0] as f64,
            kl: v[1] as f64,
            student: rows(&v[2..]),
            teacher: targets.traj.iter().map(|r| normalise(r)).collect(),
            grid: self.grid,
            question: self.probe_question.clone(),
        })
    }

    /// The probe scene's image.
    pub fn probe_image(&self) -> &image::RgbImage {
        &self.probe_image
    }

    /// The student trained so far, ready to answer (no autodiff), with its tokenizer and image
    /// processor.
    pub fn student(&self) -> ModelBundle {
        ModelBundle {
            model: self.trainer.student().valid(),
            tokenizer: self.tokenizer.clone(),
            processor: self.processor.clone(),
        }
    }
}

/// The teacher's signals turned into a student's targets, as the demo's extraction and
/// training data make them.
struct Targets<'a> {
    job: ExtractJob<'a>,
    targets: TargetConfig,
}

impl<'a> Targets<'a> {
    fn new(teacher: &'a ModelBundle, demo: &DemoConfig) -> Result<Self> {
        Ok(Self {
            job: extract_job(teacher, demo, Path::new(""))?,
            targets: TargetConfig {
                top_k: demo.traj_top_k,
            },
        })
    }

    /// `record`'s training sample for `student`, its targets from the teacher's pass.
    fn sample(
        &self,
        student: &ModelBundle,
        record: &crate::data::viscot::Sample,
        img: image::RgbImage,
    ) -> Result<StudentSample> {
        let ids = student.latent_ids();
        let mut s = StudentSample::build(
            &student.tokenizer,
            &student.processor,
            &img,
            &record.question,
            &record.answer,
            ids,
        )?;
        let (_, sig) = signals_of(&self.job, record, img)?
            .ok_or_else(|| LavitError::Other("the teacher dropped a scene".into()))?;
        let merge = student.processor.merge_size;
        s.targets = Some(targets_of(&s, &sig, merge, self.targets));
        Ok(s)
    }
}
