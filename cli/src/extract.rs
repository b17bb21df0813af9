//! `lavit extract`: teacher signals (V_top + attention trajectories) for a Visual-CoT dataset.

use std::path::PathBuf;

use anyhow::{Context, Result};
use lavit_core::defaults;
use lavit_core::teacher::ExtractConfig;
use lavit_core::teacher::extract::TrajRows;
use lavit_core::teacher::run::{ExtractRun, run_extraction};
use lavit_core::teacher::store::VtopDtype;
use serde::Deserialize;

use crate::common::{BackendArgs, TopKArg, progress_bar, read_toml};

/// Flags that may also come from the TOML file (same names, `-` → `_`); defaults in brackets.
#[derive(clap::Args, Deserialize, Default, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct Opts {
    /// Cap on reasoning steps per sample (extra steps are merged into the last).
    #[arg(long)]
    pub steps: Option<usize>,
    /// Take the trajectory over the teacher's own greedy answer (split into steps); the
    /// dataset's answer stays the student's target and the teacher's is stored beside it.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub generate_steps: Option<bool>,
    /// Keep a sample only when the teacher's own greedy answer agrees with the dataset's
    /// (the kept / dropped counts go to the store's summary.json).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub filter_correct: Option<bool>,
    /// Maximum new tokens when generating steps [256].
    #[arg(long)]
    pub max_new_tokens: Option<usize>,
    /// Last L decoder layers averaged for the trajectory [8].
    #[arg(long)]
    pub layers: Option<usize>,
    /// Top-K patches recorded per step: `dense`, a count (8) or a fraction of the grid
    /// (0.05 or 5%) [1/32 of the grid, at least one].
    #[arg(long, alias = "traj-top-k")]
    pub top_k: Option<TopKArg>,
    /// The query rows of a step's map: `step` (its own tokens) or `since-image` (every
    /// position after the image up to the step's end, as the reference) [step].
    #[arg(long)]
    pub traj_rows: Option<String>,
    /// How V_top is stored: bf16, f32 or f16 [bf16].
    #[arg(long)]
    pub vtop_dtype: Option<String>,
    /// Upper bound on the resized image area.
    #[arg(long)]
    pub max_pixels: Option<usize>,
    /// This machine's shard index (0-based) … [0]
    #[arg(long)]
    pub shard: Option<usize>,
    /// … out of this many [1].
    #[arg(long)]
    pub num_shards: Option<usize>,
    /// Only the first N samples of the dataset.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Samples per written shard file [16].
    #[arg(long)]
    pub flush_every: Option<usize>,
    /// Read the teacher one block at a time from its safetensors files instead of loading it
    /// whole (for a teacher larger than memory) [automatic with --max-memory].
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub stream_layers: Option<bool>,
    /// Memory for the teacher, in GiB: the teacher is streamed when its weights in the compute
    /// dtype do not fit three quarters of it.
    #[arg(long)]
    pub max_memory: Option<f64>,
    /// Samples pushed through each streamed block together [8].
    #[arg(long)]
    pub stream_batch: Option<usize>,
}

crate::overlay!(Opts {
    steps,
    generate_steps,
    filter_correct,
    max_new_tokens,
    layers,
    top_k,
    traj_rows,
    vtop_dtype,
    max_pixels,
    shard,
    num_shards,
    limit,
    flush_every,
    stream_layers,
    max_memory,
    stream_batch,
});

/// The signals the options ask for: the library defaults (`defaults.rs`) where an option is
/// not given. Unparsable values are errors naming the option.
impl TryFrom<&Opts> for ExtractConfig {
    type Error = anyhow::Error;
    fn try_from(o: &Opts) -> Result<Self> {
        let d = ExtractConfig::default();
        let layers = o.layers.unwrap_or(d.layers);
        anyhow::ensure!(layers > 0, "--layers must be positive");
        Ok(ExtractConfig {
            layers,
            top_k: o.top_k.map(|t| t.0).unwrap_or(d.top_k),
            rows: match &o.traj_rows {
                Some(r) => TrajRows::parse(r).map_err(anyhow::Error::msg)?,
                None => d.rows,
            },
        })
    }
}

#[derive(clap::Args)]
pub struct Args {
    /// Teacher checkpoint directory (HF layout),
    /// or a Hugging Face Hub id (`Qwen/Qwen2.5-VL-3B-Instruct`, fetched into `$HF_HOME`).
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
    /// TOML file with any of the options below (flags win over it).
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub opts: Opts,
    /// tokenizer.json (default: TEACHER/tokenizer.json).
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    #[command(flatten)]
    pub backend: BackendArgs,
}

pub fn run(a: Args) -> Result<()> {
    let file: Opts = read_toml(a.config.as_deref(), "extraction")?;
    let o = a.opts.clone().over(file);
    let job = ExtractRun {
        teacher: crate::common::local_model(&a.teacher)?,
        data: a.data.clone(),
        images: a.images.clone(),
        out: a.out.clone(),
        tokenizer: a.tokenizer.clone(),
        cfg: ExtractConfig::try_from(&o)?,
        vtop_dtype: match o.vtop_dtype.as_deref() {
            Some(d) => VtopDtype::parse(d).map_err(anyhow::Error::msg)?,
            None => VtopDtype::default(),
        },
        shard: o.shard.unwrap_or(0),
        num_shards: o.num_shards.unwrap_or(1),
        limit: o.limit,
        flush_every: o.flush_every.unwrap_or(defaults::FLUSH_EVERY),
        max_steps: o.steps,
        generate_steps: o.generate_steps.unwrap_or(false).then(|| {
            o.max_new_tokens
                .unwrap_or(defaults::GENERATED_STEPS_MAX_TOKENS)
        }),
        filter_correct: o.filter_correct.unwrap_or(false),
        max_pixels: o.max_pixels,
        stream: o.stream_layers,
        max_memory_gib: o.max_memory,
        stream_batch: o.stream_batch.unwrap_or(defaults::STREAM_BATCH),
    };
    let device = a.backend.device()?;
    let bar = progress_bar(0, "extract");
    let done = run_extraction(&job, &device, &mut |d, total| {
        bar.set_length(total as u64);
        bar.set_position(d as u64)
    })
    .context("extracting")?;
    bar.finish_and_clear();
    let s = done.summary;
    if done.streamed {
        eprintln!(
            "streamed the teacher layer by layer ({:.1} GiB of weights; {} samples per pass)",
            done.weight_bytes as f64 / (1u64 << 30) as f64,
            job.stream_batch
        );
    }
    let dropped = if job.filter_correct {
        format!(
            "; {} dropped: the teacher answered them wrongly",
            s.dropped_incorrect
        )
    } else {
        String::new()
    };
    println!(
        "extracted {} samples into {} ({} already there{dropped}; shard {}/{} of {} samples)",
        s.extracted,
        a.out.display(),
        s.skipped_done,
        job.shard,
        job.num_shards,
        done.total
    );
    Ok(())
}
