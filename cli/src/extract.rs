//! `lavit extract`: teacher signals (V_top + attention trajectories) for a Visual-CoT dataset.

use std::path::PathBuf;

use anyhow::{Context, Result};
use lavit_core::data::read_viscot;
use lavit_core::infer::GenerateConfig;
use lavit_core::io::Checkpoint;
use lavit_core::teacher::pipeline::{ExtractJob, extract_all, shard_of};
use lavit_core::teacher::{ExtractConfig, SignalWriter};

use crate::common::{BackendArgs, progress_bar};

#[derive(clap::Args)]
pub struct Args {
    /// Teacher checkpoint directory (HF layout).
    #[arg(long)]
    pub teacher: PathBuf,
    /// Dataset in the Visual-CoT JSON layout.
    #[arg(long)]
    pub data: PathBuf,
    /// Root directory of the dataset's image paths.
    #[arg(long)]
    pub images: PathBuf,
    /// Signal store directory (created; resumed if it exists).
    #[arg(long)]
    pub out: PathBuf,
    /// Cap on reasoning steps per sample (extra steps are merged into the last).
    #[arg(long)]
    pub steps: Option<usize>,
    /// Use the teacher's own greedy answer (split into steps) instead of the dataset's.
    #[arg(long)]
    pub generate_steps: bool,
    /// Maximum new tokens when generating steps.
    #[arg(long, default_value_t = 256)]
    pub max_new_tokens: usize,
    /// Last L decoder layers averaged for the trajectory.
    #[arg(long, default_value_t = 8)]
    pub layers: usize,
    /// Top-K patches recorded per step.
    #[arg(long, default_value_t = 8)]
    pub top_k: usize,
    /// Upper bound on the resized image area.
    #[arg(long)]
    pub max_pixels: Option<usize>,
    /// This machine's shard index (0-based) …
    #[arg(long, default_value_t = 0)]
    pub shard: usize,
    /// … out of this many.
    #[arg(long, default_value_t = 1)]
    pub num_shards: usize,
    /// Only the first N samples of the dataset.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Samples per written shard file.
    #[arg(long, default_value_t = 16)]
    pub flush_every: usize,
    /// tokenizer.json (default: TEACHER/tokenizer.json).
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    #[command(flatten)]
    pub backend: BackendArgs,
}

pub fn run(a: Args) -> Result<()> {
    let device = a.backend.device()?;
    let mut samples = read_viscot(&a.data).context("reading the dataset")?;
    if let Some(n) = a.limit {
        samples.truncate(n);
    }
    let ckpt = Checkpoint::open(&a.teacher).context("opening the teacher")?;
    let tokenizer = ckpt.tokenizer(a.tokenizer.as_deref())?;
    let mut processor = ckpt.processor.clone();
    if let Some(m) = a.max_pixels {
        processor.max_pixels = m;
    }
    let mut writer = SignalWriter::open(&a.out, a.shard, a.num_shards, a.flush_every)
        .context("opening the signal store")?;
    if let Some(d) = writer.d_teacher()
        && d != ckpt.config.text.hidden_size
    {
        anyhow::bail!(
            "the signal store {} holds d_T = {d} but the teacher's hidden size is {}",
            a.out.display(),
            ckpt.config.text.hidden_size
        );
    }
    let teacher = ckpt.load(&device).context("loading the teacher")?;
    let mine = shard_of(&samples, a.shard, a.num_shards);
    let job = ExtractJob {
        teacher: &teacher,
        tokenizer: &tokenizer,
        processor: &processor,
        images_root: &a.images,
        cfg: ExtractConfig {
            layers: a.layers,
            top_k: a.top_k,
        },
        max_steps: a.steps,
        generate: a.generate_steps.then(|| GenerateConfig {
            max_new_tokens: a.max_new_tokens,
            ..Default::default()
        }),
    };
    let bar = progress_bar(mine.len() as u64, "extract");
    let summary = extract_all(&job, &mine, &mut writer, &mut |done, _| {
        bar.set_position(done as u64)
    })?;
    bar.finish_and_clear();
    println!(
        "extracted {} samples into {} ({} already there; shard {}/{} of {} samples)",
        summary.extracted,
        a.out.display(),
        summary.skipped_done,
        a.shard,
        a.num_shards,
        samples.len()
    );
    Ok(())
}
