//! `lavit eval`: answer a benchmark with a model and report accuracy.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use lavit_core::data::read_viscot;
use lavit_core::eval::metrics::accuracy;
use lavit_core::eval::{EvalItem, predict};
use lavit_core::infer::GenerateConfig;
use lavit_core::io::Checkpoint;
use lavit_core::train::export::load_student;

use crate::common::{BackendArgs, progress_bar};

#[derive(clap::Args)]
pub struct Args {
    /// Model directory (a base Qwen2.5-VL or a LaViT student).
    #[arg(long)]
    pub model: PathBuf,
    /// Benchmark: synthetic.
    #[arg(long)]
    pub bench: String,
    /// Benchmark root (synthetic: the directory `lavit synth` wrote).
    #[arg(long)]
    pub data_root: PathBuf,
    /// Split / task name (synthetic: test).
    #[arg(long, default_value = "test")]
    pub task: String,
    /// Only the first N questions.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Append the latent block to the prompt instead of letting the model emit it.
    #[arg(long)]
    pub force_lvr: bool,
    /// Hide the latent tokens from the answer.
    #[arg(long)]
    pub mask_lvr: bool,
    #[arg(long, default_value_t = 48)]
    pub max_new_tokens: usize,
    /// Per-sample results (JSON lines).
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub backend: BackendArgs,
}

pub fn run(a: Args) -> Result<()> {
    if a.bench != "synthetic" {
        bail!("unknown benchmark `{}` (synthetic)", a.bench);
    }
    let device = a.backend.device()?;
    let mut samples = read_viscot(&a.data_root.join(format!("{}.json", a.task)))
        .context("reading the benchmark")?;
    if let Some(n) = a.limit {
        samples.truncate(n);
    }
    let items: Vec<EvalItem> = samples
        .iter()
        .map(EvalItem::from_sample)
        .collect::<Result<_, _>>()?;
    let ckpt = Checkpoint::open(&a.model)?;
    let tok = ckpt.tokenizer(None)?;
    let (vlm, head, latents) = if ckpt.raw_config.get("lavit").is_some() {
        let (_, s) = load_student(&a.model, &device)?;
        (s.vlm, Some(s.traj_head), s.lavit.latent_token_ids)
    } else {
        (ckpt.load(&device)?, None, vec![])
    };
    let gen_cfg = GenerateConfig {
        max_new_tokens: a.max_new_tokens,
        force_lvr: a.force_lvr,
        mask_lvr: a.mask_lvr,
        ..Default::default()
    };
    let bar = progress_bar(items.len() as u64, "eval");
    let preds = predict(
        &vlm,
        head.as_ref(),
        &tok,
        &ckpt.processor,
        &latents,
        &items,
        &a.data_root.join("images"),
        &gen_cfg,
        &mut |i| bar.set_position(i as u64),
    )?;
    bar.finish_and_clear();
    let lines: String = preds
        .iter()
        .map(|p| serde_json::to_string(p).expect("serialises") + "\n")
        .collect();
    std::fs::write(&a.out, lines).with_context(|| format!("writing {}", a.out.display()))?;
    let acc = accuracy(&preds);
    println!("| task | n | accuracy |\n|---|---|---|");
    for (t, v) in &acc.per_type {
        println!(
            "| {t} | {} | {:.1}% |",
            preds.iter().filter(|p| &p.qtype == t).count(),
            v * 100.0
        );
    }
    println!("| all | {} | {:.1}% |", acc.n, acc.overall * 100.0);
    Ok(())
}
