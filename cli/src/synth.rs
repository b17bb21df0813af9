//! `lavit synth`: the synthetic grounded-reasoning dataset (images + Visual-CoT JSON), and
//! `lavit task-tokenizer`: the task's byte-level BPE.

use std::path::PathBuf;

use anyhow::{Context, Result};
use lavit_core::data::synthetic::{
    Background, Relation, SceneConfig, StepStyle, corpus, generate, generate_descriptions,
    write_split,
};
use lavit_core::data::task_tokenizer::train_task_tokenizer;

#[derive(clap::Args)]
pub struct Args {
    /// Output directory (images/, train.json, test.json).
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 2000)]
    pub n_train: usize,
    #[arg(long, default_value_t = 200)]
    pub n_test: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Image side in pixels.
    #[arg(long, default_value_t = 168)]
    pub size: u32,
    /// Scene descriptions (the student base's pre-training task) instead of questions.
    #[arg(long)]
    pub describe: bool,
    /// Background: `noise` (uniform grey noise), `shaded` (shaded by position) or `zones`
    /// (tinted by 3 × 3 zone, the shipped task's): the last two put an absolute position cue
    /// in the pixels.
    #[arg(long, default_value = "zones")]
    pub background: String,
    /// Answer steps: `short` (name what to look at, then answer) or `grounded` (also read each
    /// object's property, as the shipped task does).
    #[arg(long, default_value = "grounded")]
    pub steps: String,
    /// Relation questions: `horizontal` (left or right of) or `vertical` (above or below, the
    /// shipped task's).
    #[arg(long, default_value = "vertical")]
    pub relation: String,
    /// Draw the task of a `task.json` (e.g. `assets/synthetic/task.json`, the task the shipped
    /// models were trained on, or `task-prior.json`, its language-prior variant: the prior in
    /// the training split, the test split balanced) instead of the scene flags above.
    #[arg(long, conflicts_with_all = ["size", "background", "steps", "relation"])]
    pub task: Option<PathBuf>,
}

pub fn run(a: Args) -> Result<()> {
    let cfg = match &a.task {
        Some(path) => lavit_core::demo::data::task_file(path)
            .with_context(|| format!("lavit synth --task {}", path.display()))?,
        None => scene_from_flags(&a)?,
    };
    let make = if a.describe {
        generate_descriptions
    } else {
        generate
    };
    let train = make(a.n_train, a.seed, &cfg, "train-");
    // The test split is balanced (a task's language prior is in its training split only).
    let test = make(
        a.n_test,
        a.seed.wrapping_add(1_000_003),
        &cfg.balanced(),
        "test-",
    );
    write_split(&a.out, "train", &train)?;
    write_split(&a.out, "test", &test)?;
    println!(
        "wrote {} train and {} test samples to {}",
        train.len(),
        test.len(),
        a.out.display()
    );
    Ok(())
}

/// The task of `--size`, `--background`, `--steps` and `--relation`.
fn scene_from_flags(a: &Args) -> Result<SceneConfig> {
    let background = Background::parse(&a.background).ok_or_else(|| {
        anyhow::anyhow!(
            "--background must be `noise`, `shaded` or `zones`, not `{}`",
            a.background
        )
    })?;
    let steps = StepStyle::parse(&a.steps).ok_or_else(|| {
        anyhow::anyhow!("--steps must be `short` or `grounded`, not `{}`", a.steps)
    })?;
    let relation = Relation::parse(&a.relation).ok_or_else(|| {
        anyhow::anyhow!(
            "--relation must be `horizontal` or `vertical`, not `{}`",
            a.relation
        )
    })?;
    let cfg = SceneConfig {
        size: a.size,
        background,
        steps,
        relation,
        ..Default::default()
    };
    cfg.validate()
        .map_err(|e| anyhow::anyhow!("lavit synth --size {}: {e}", a.size))?;
    Ok(cfg)
}

#[derive(clap::Args)]
pub struct TokArgs {
    /// Output tokenizer.json.
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 512)]
    pub vocab_size: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

pub fn run_tokenizer(a: TokArgs) -> Result<()> {
    let tok = train_task_tokenizer(&corpus(a.seed, 4000), a.vocab_size)?;
    if let Some(dir) = a.out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    tok.save(&a.out, true)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("writing the tokenizer")?;
    println!(
        "tokenizer with {} tokens -> {}",
        tok.get_vocab_size(true),
        a.out.display()
    );
    Ok(())
}
