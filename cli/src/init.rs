//! `lavit init`: a random-weight Qwen2.5-VL checkpoint from a config.json and a tokenizer.

use std::path::PathBuf;

use anyhow::{Context, Result};
use lavit_core::bundle::{ModelBundle, write_random_checkpoint};
use lavit_core::io::ChatTokenizer;
use lavit_core::io::config::load_config;
use lavit_core::io::weights::WeightDtype;

use crate::common::BackendArgs;

#[derive(clap::Args)]
pub struct Args {
    /// A Qwen2.5-VL config.json (flat or nested form).
    #[arg(long)]
    pub config: PathBuf,
    /// tokenizer.json to ship with the model.
    #[arg(long)]
    pub tokenizer: PathBuf,
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// dtype of the written weights: f32, f16 or bf16.
    #[arg(long, default_value = "f32")]
    pub dtype: WeightDtype,
    /// Write one block at a time (one shard each), for models larger than memory
    /// [automatic when the f32 weights exceed 4 GiB].
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub stream: Option<bool>,
    #[command(flatten)]
    pub backend: BackendArgs,
}

pub fn run(a: Args) -> Result<()> {
    let device = a.backend.device()?;
    let cfg = load_config(&a.config)?;
    let tok = ChatTokenizer::from_file(&a.tokenizer)?;
    let dtype = a.dtype.into();
    let n = cfg.param_counts();
    let stream = a.stream.unwrap_or(n.total * 4 > 4 << 30);
    if stream {
        write_random_checkpoint(&cfg, &tok, a.seed, &a.out, dtype, &device)
    } else {
        ModelBundle::init(&cfg, tok, a.seed, &device).and_then(|s| s.save(&a.out, dtype))
    }
    .context("writing the checkpoint")?;
    println!(
        "initialised {} ({} parameters) -> {}",
        a.config.display(),
        n.total,
        a.out.display()
    );
    Ok(())
}
