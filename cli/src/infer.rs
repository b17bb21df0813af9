//! `lavit infer`: answer one question about one image; with a LaViT student, also show its
//! latent visual thoughts (one heatmap PNG per latent step). `lavit viz`: a stored teacher
//! trajectory over its image.

use std::path::PathBuf;

use anyhow::{Context, Result};
use lavit_core::bundle::ModelBundle;
use lavit_core::demo::heatmap::{overlay, side_by_side};
use lavit_core::infer::GenerateConfig;
use lavit_core::io::processor::load_rgb;
use lavit_core::teacher::{ExtractConfig, SignalStore};

use crate::common::BackendArgs;

#[derive(clap::Args)]
pub struct Args {
    /// Model directory (a base Qwen2.5-VL or a LaViT student),
    /// or a Hugging Face Hub id (`Qwen/Qwen2.5-VL-3B-Instruct`, fetched into `$HF_HOME`).
    #[arg(long)]
    pub model: PathBuf,
    #[arg(long)]
    pub image: PathBuf,
    #[arg(long)]
    pub question: String,
    /// Write one heatmap PNG per latent step here.
    #[arg(long)]
    pub heatmaps: Option<PathBuf>,
    /// Print a JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    #[arg(long, default_value_t = 128)]
    pub max_new_tokens: usize,
    /// 0 = greedy.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f64,
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Append the latent block instead of letting the model emit it.
    #[arg(long)]
    pub force_lvr: bool,
    /// Hide the latent tokens from the answer.
    #[arg(long)]
    pub mask_lvr: bool,
    /// Teacher view: the model's own greedy answer, split into steps, and where it looked
    /// while writing each one (the trajectory `lavit extract --generate-steps` stores; the
    /// browser demo's teacher panel). `--heatmaps` gets one PNG per step.
    #[arg(long)]
    pub trajectory: bool,
    #[command(flatten)]
    pub backend: BackendArgs,
}

pub fn run(a: Args) -> Result<()> {
    let device = a.backend.device()?;
    let model = ModelBundle::load(&crate::common::local_model(&a.model)?, &device)
        .context("opening the model")?;
    let img = load_rgb(&a.image)?;
    if a.trajectory {
        return run_trajectory(&a, &model, &img);
    }
    let cfg = GenerateConfig {
        max_new_tokens: a.max_new_tokens,
        temperature: a.temperature,
        top_p: a.top_p,
        seed: a.seed,
        force_lvr: a.force_lvr,
        mask_lvr: a.mask_lvr,
        ..Default::default()
    };
    let out = model.answer(std::slice::from_ref(&img), &a.question, &cfg)?;
    let (answer, grid) = (out.answer.clone(), out.grid);
    let mut files = Vec::new();
    if let Some(dir) = &a.heatmaps {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        for (k, step) in out.latent_steps.iter().enumerate() {
            let mut panels = vec![overlay(&img, &step.attn_map, grid)];
            if let Some(h) = &step.head_map {
                panels.push(overlay(&img, h, grid));
            }
            let p = dir.join(format!("latent-{}.png", k + 1));
            side_by_side(&panels)
                .save(&p)
                .with_context(|| format!("writing {}", p.display()))?;
            files.push(p.display().to_string());
        }
    }
    if a.json {
        let v = serde_json::json!({
            "answer": answer,
            "tokens": out.tokens,
            "grid": [grid.0, grid.1],
            "latent_steps": out.latent_steps,
            "heatmaps": files,
        });
        println!("{}", serde_json::to_string(&v)?);
    } else {
        println!("{answer}");
        if !out.latent_steps.is_empty() {
            eprintln!(
                "{} latent steps{}",
                out.latent_steps.len(),
                if files.is_empty() {
                    String::new()
                } else {
                    format!("; heatmaps: {}", files.join(", "))
                }
            );
        }
    }
    Ok(())
}

/// `lavit infer --trajectory`.
fn run_trajectory(a: &Args, model: &ModelBundle, img: &image::RgbImage) -> Result<()> {
    let t = model.trajectory(
        std::slice::from_ref(img),
        &a.question,
        &ExtractConfig::default(),
        a.max_new_tokens,
    )?;
    let mut files = Vec::new();
    if let Some(dir) = &a.heatmaps {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        for (k, map) in t.maps.iter().enumerate() {
            let p = dir.join(format!("step-{}.png", k + 1));
            overlay(img, map, t.grid)
                .save(&p)
                .with_context(|| format!("writing {}", p.display()))?;
            files.push(p.display().to_string());
        }
    }
    if a.json {
        let mut v = serde_json::to_value(&t)?;
        v["heatmaps"] = serde_json::json!(files);
        println!("{}", serde_json::to_string(&v)?);
    } else {
        println!("{}", t.answer);
        for (k, s) in t.steps.iter().enumerate() {
            eprintln!("step {}: {}", k + 1, s.trim());
        }
    }
    Ok(())
}

#[derive(clap::Args)]
pub struct VizArgs {
    /// Signal store from `lavit extract`.
    #[arg(long)]
    pub signals: PathBuf,
    /// Sample id.
    #[arg(long)]
    pub id: String,
    /// Root of the image paths.
    #[arg(long)]
    pub images: PathBuf,
    /// Output PNG (image | one panel per step).
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run_viz(a: VizArgs) -> Result<()> {
    let mut store = SignalStore::open(&a.signals).context("opening the signal store")?;
    let rec = store
        .records
        .iter()
        .find(|r| r.id == a.id)
        .cloned()
        .with_context(|| format!("no sample `{}` in {}", a.id, a.signals.display()))?;
    let sig = store.load(&rec)?;
    let img = load_rgb(&a.images.join(&rec.image))?;
    let mut panels = vec![img.clone()];
    panels.extend(sig.traj.iter().map(|m| overlay(&img, m, sig.grid)));
    side_by_side(&panels)
        .save(&a.out)
        .with_context(|| format!("writing {}", a.out.display()))?;
    println!(
        "{}: {} steps ({:?}) -> {}",
        rec.id,
        sig.traj.len(),
        rec.steps,
        a.out.display()
    );
    Ok(())
}
