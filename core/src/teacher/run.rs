//! A whole extraction as `lavit extract` describes it: open the teacher (whole, or streamed
//! layer by layer when it does not fit), the store (checked against the teacher's width), this
//! machine's shard of the dataset, and extract.

use std::path::PathBuf;

use burn::prelude::*;

use super::ExtractConfig;
use super::pipeline::{ExtractJob, ExtractSummary, Teacher, extract_all, shard_of};
use super::store::{SignalWriter, VtopDtype};
use super::stream::{StreamedTeacher, fits};
use crate::error::{LavitError, Result};
use crate::infer::GenerateConfig;
use crate::io::Checkpoint;

/// Everything an extraction needs besides its device.
#[derive(Debug, Clone)]
pub struct ExtractRun {
    /// The teacher checkpoint directory.
    pub teacher: PathBuf,
    /// The dataset (Visual-CoT JSON).
    pub data: PathBuf,
    /// Root of its image paths.
    pub images: PathBuf,
    /// The signal store (created, or resumed).
    pub out: PathBuf,
    pub tokenizer: Option<PathBuf>,
    pub cfg: ExtractConfig,
    pub vtop_dtype: VtopDtype,
    /// This machine's shard, of `num_shards`.
    pub shard: usize,
    pub num_shards: usize,
    /// Only the first N samples.
    pub limit: Option<usize>,
    /// Samples per written shard file.
    pub flush_every: usize,
    /// Cap on the steps per sample.
    pub max_steps: Option<usize>,
    /// Trajectories over the teacher's own greedy answer of up to this many tokens.
    pub generate_steps: Option<usize>,
    pub filter_correct: bool,
    pub max_pixels: Option<usize>,
    /// Stream the teacher (`None`: when its weights do not fit `max_memory_gib`).
    pub stream: Option<bool>,
    pub max_memory_gib: Option<f64>,
    /// Samples pushed through each streamed block together.
    pub stream_batch: usize,
}

/// What an extraction did.
#[derive(Debug, Clone)]
pub struct Extracted {
    pub summary: ExtractSummary,
    /// Samples in the dataset (after `limit`).
    pub total: usize,
    /// Whether the teacher was streamed, and its weights' size in the compute dtype.
    pub streamed: bool,
    pub weight_bytes: usize,
}

/// Runs `job` on `device`; `progress(done, total)` after each sample of this shard.
pub fn run_extraction(
    job: &ExtractRun,
    device: &Device,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Extracted> {
    let mut samples = crate::data::read_viscot(&job.data)?;
    if let Some(n) = job.limit {
        samples.truncate(n);
    }
    let ckpt = Checkpoint::open(&job.teacher)?;
    let tokenizer = ckpt.tokenizer(job.tokenizer.as_deref())?;
    let mut processor = ckpt.processor.clone();
    if let Some(m) = job.max_pixels {
        processor.max_pixels = m;
    }
    let mut writer = SignalWriter::open(&job.out, job.shard, job.num_shards, job.flush_every)?
        .with_vtop_dtype(job.vtop_dtype);
    let width = ckpt.config.text.hidden_size;
    if let Some(d) = writer.d_teacher()
        && d != width
    {
        return Err(LavitError::Invalid(format!(
            "the signal store {} holds d_T = {d} but the teacher's hidden size is {width}",
            job.out.display()
        )));
    }
    let mut streamed = StreamedTeacher::open(&ckpt, device)?;
    streamed.batch = job.stream_batch.max(1);
    let weight_bytes = streamed.weight_bytes();
    let stream = job.stream.unwrap_or_else(|| {
        job.max_memory_gib
            .is_some_and(|gib| !fits(weight_bytes, (gib * (1u64 << 30) as f64) as usize))
    });
    let loaded = if stream {
        None
    } else {
        Some(ckpt.load(device)?)
    };
    let teacher = match &loaded {
        Some(t) => Teacher::Loaded(t),
        None => Teacher::Streamed(&streamed),
    };
    let mine = shard_of(&samples, job.shard, job.num_shards);
    let x = ExtractJob {
        teacher,
        tokenizer: &tokenizer,
        processor: &processor,
        images_root: &job.images,
        cfg: job.cfg,
        max_steps: job.max_steps,
        filter_correct: job.filter_correct,
        generate: job.generate_steps.map(|n| GenerateConfig {
            max_new_tokens: n,
            ..Default::default()
        }),
    };
    let summary = extract_all(&x, &mine, &mut writer, progress)?;
    Ok(Extracted {
        summary,
        total: samples.len(),
        streamed: stream,
        weight_bytes,
    })
}
