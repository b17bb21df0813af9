//! `lavit eval`: answer a benchmark with a model and report accuracy.

use std::path::PathBuf;

use anyhow::{Context, Result};
use lavit_core::bundle::ModelBundle;
use lavit_core::data::read_viscot;
use lavit_core::eval::EvalItem;
use lavit_core::eval::bench::{Benchmark, McPrediction, answer_question, summarise};
use lavit_core::eval::metrics::accuracy;
use lavit_core::infer::GenerateConfig;

use crate::common::{BackendArgs, progress_bar};

#[derive(clap::Args)]
pub struct Args {
    /// Model directory (a base Qwen2.5-VL or a LaViT student),
    /// or a Hugging Face Hub id (`Qwen/Qwen2.5-VL-3B-Instruct`, fetched into `$HF_HOME`).
    #[arg(long)]
    pub model: PathBuf,
    /// Benchmark: mmvp, blink, vstar, mmstar (their published layouts; see the README) or
    /// synthetic (the directory `lavit synth` wrote).
    #[arg(long)]
    pub bench: String,
    /// Benchmark root: MMVP's folder (Questions.csv, `MMVP Images/`), BLINK's (one folder
    /// per sub-task), V*'s (test_questions.jsonl + category folders), MMStar's
    /// (mmstar.parquet).
    #[arg(long)]
    pub data_root: PathBuf,
    /// One task: a BLINK sub-task folder (e.g. Counting), an MMStar / V* category; synthetic:
    /// the split (default test).
    #[arg(long)]
    pub task: Option<String>,
    /// Only the first N questions.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Append the latent block to the prompt instead of letting the model emit it.
    #[arg(long)]
    pub force_lvr: bool,
    /// Hide the latent tokens from the answer.
    #[arg(long)]
    pub mask_lvr: bool,
    /// Token budget of each answer (latent tokens included).
    #[arg(long, default_value_t = lavit_core::data::synthetic::MAX_NEW_TOKENS)]
    pub max_new_tokens: usize,
    /// Per-sample results (JSON lines) [none: only the summary is printed].
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub backend: BackendArgs,
}

impl Args {
    fn generate_config(&self) -> GenerateConfig {
        GenerateConfig {
            max_new_tokens: self.max_new_tokens,
            force_lvr: self.force_lvr,
            mask_lvr: self.mask_lvr,
            ..Default::default()
        }
    }
}

/// Writes one JSON line per prediction to `out`, only once every question was answered:
/// lines go to `<out>.partial`, renamed at the end, so a failed run leaves an existing results
/// file as it was.
fn write_results<T: serde::Serialize>(out: &std::path::Path, preds: &[T]) -> Result<()> {
    let mut lines = String::new();
    for p in preds {
        lines.push_str(&serde_json::to_string(p)?);
        lines.push('\n');
    }
    let tmp = out.with_extension("jsonl.partial");
    std::fs::write(&tmp, lines).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, out).with_context(|| format!("writing {}", out.display()))
}

pub fn run(a: Args) -> Result<()> {
    if a.bench == "synthetic" {
        return run_synthetic(a);
    }
    let bench = Benchmark::parse(&a.bench).with_context(|| {
        format!(
            "unknown benchmark `{}` (mmvp, blink, vstar, mmstar, synthetic)",
            a.bench
        )
    })?;
    let device = a.backend.device()?;
    let mut questions = bench
        .load(&a.data_root, a.task.as_deref())
        .context("reading the benchmark")?;
    if let Some(n) = a.limit {
        questions.truncate(n);
    }
    let m = ModelBundle::load(&crate::common::local_model(&a.model)?, &device)
        .context("loading the model")?;
    let gen_cfg = a.generate_config();
    let bar = progress_bar(questions.len() as u64, bench.name());
    let mut preds: Vec<McPrediction> = Vec::with_capacity(questions.len());
    for q in &questions {
        let p = answer_question(|imgs, prompt| m.answer(imgs, prompt, &gen_cfg), q)
            .with_context(|| format!("question {}", q.id))?;
        preds.push(p);
        bar.inc(1);
    }
    bar.finish_and_clear();
    if let Some(out) = &a.out {
        write_results(out, &preds)?;
    }
    print!("{}", summarise(&preds).table());
    Ok(())
}

fn run_synthetic(a: Args) -> Result<()> {
    let device = a.backend.device()?;
    let split = a.task.as_deref().unwrap_or("test");
    let mut samples =
        read_viscot(&a.data_root.join(format!("{split}.json"))).context("reading the benchmark")?;
    if let Some(n) = a.limit {
        samples.truncate(n);
    }
    let items: Vec<EvalItem> = samples
        .iter()
        .map(EvalItem::from_sample)
        .collect::<Result<_, _>>()?;
    let m = ModelBundle::load(&crate::common::local_model(&a.model)?, &device)
        .context("loading the model")?;
    let gen_cfg = a.generate_config();
    let bar = progress_bar(items.len() as u64, "eval");
    let preds = m.predict(&items, &a.data_root.join("images"), &gen_cfg, &mut |i| {
        bar.set_position(i as u64)
    })?;
    bar.finish_and_clear();
    if let Some(out) = &a.out {
        write_results(out, &preds)?;
    }
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
    if let Some(p) = &acc.prior {
        println!(
            "| prior-contradicting | {} | {:.1}% (answered with the prior: {:.1}%) |",
            p.n_contradicting,
            p.contradicting * 100.0,
            p.answered_prior * 100.0
        );
    }
    Ok(())
}
