//! `lavit export`: a model directory written again, in our layout or in the LaViT reference
//! implementation's (and any weight dtype).

use std::path::PathBuf;

use anyhow::{Context, Result};
use lavit_core::bundle::{Layout, ModelBundle};
use lavit_core::io::weights::WeightDtype;

use crate::common::BackendArgs;

#[derive(clap::Args)]
pub struct Args {
    /// The model directory (a LaViT student in either layout, or a plain Qwen2.5-VL),
    /// or a Hugging Face Hub id (`Qwen/Qwen2.5-VL-3B-Instruct`, fetched into `$HF_HOME`).
    #[arg(long)]
    pub model: PathBuf,
    #[arg(long)]
    pub out: PathBuf,
    /// `ours` or `reference` (the reference's LaViTQwen2VL checkpoint layout).
    #[arg(long, default_value = "ours")]
    pub layout: Layout,
    /// dtype of the written weights: f32, f16 or bf16.
    #[arg(long, default_value = "f32")]
    pub dtype: WeightDtype,
    #[command(flatten)]
    pub backend: BackendArgs,
}

pub fn run(a: Args) -> Result<()> {
    anyhow::ensure!(
        a.out.canonicalize().ok() != a.model.canonicalize().ok() || !a.out.exists(),
        "--out must differ from --model"
    );
    let device = a.backend.device()?;
    let model = ModelBundle::load(&crate::common::local_model(&a.model)?, &device)
        .context("loading the model")?;
    model
        .save_as(&a.out, a.dtype.into(), a.layout)
        .with_context(|| format!("writing {}", a.out.display()))?;
    println!(
        "wrote {} ({} layout, {})",
        a.out.display(),
        a.layout.name(),
        a.dtype
    );
    Ok(())
}
