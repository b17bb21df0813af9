//! `lavit init`: a random-weight Qwen2.5-VL checkpoint from a config.json and a tokenizer.

use std::path::PathBuf;

use anyhow::{Context, Result};
use lavit_core::io::ChatTokenizer;
use lavit_core::io::config::load_config;
use lavit_core::student::Student;

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
    #[command(flatten)]
    pub backend: BackendArgs,
}

pub fn run(a: Args) -> Result<()> {
    let device = a.backend.device()?;
    let cfg = load_config(&a.config)?;
    let tok = ChatTokenizer::from_file(&a.tokenizer)?;
    Student::init(&cfg, tok, a.seed, &device)
        .and_then(|s| s.save(&a.out, burn::tensor::DType::F32))
        .context("writing the checkpoint")?;
    let n = cfg.param_counts();
    println!(
        "initialised {} ({} parameters) -> {}",
        a.config.display(),
        n.total,
        a.out.display()
    );
    Ok(())
}
