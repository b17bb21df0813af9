//! `lavit demo`: the whole LaViT pipeline on the embedded synthetic task.

use std::path::PathBuf;

use anyhow::{Context, Result};
use lavit_core::demo::{Ablation, DemoConfig, run as run_demo, summary_table};

use crate::common::{BackendArgs, progress_bar};

#[derive(clap::Args)]
pub struct Args {
    /// Output directory (data, signals, students, report.md, report.json, answers.jsonl, heatmaps/).
    #[arg(long, default_value = "runs/demo")]
    pub out: PathBuf,
    /// Optimiser steps per student.
    #[arg(long)]
    pub steps: Option<usize>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long)]
    pub n_train: Option<usize>,
    #[arg(long)]
    pub n_test: Option<usize>,
    /// Also train a LaViT student without this component (repeatable): traj, vtop, gate.
    #[arg(long, value_parser = Ablation::parse)]
    pub ablate: Vec<Ablation>,
    /// Weight of L_vtop for the LaViT student.
    #[arg(long)]
    pub lambda_vtop: Option<f64>,
    /// Weight of L_traj for the LaViT student.
    #[arg(long)]
    pub lambda_traj: Option<f64>,
    /// Fraction of the steps with the gate closed (two-stage).
    #[arg(long)]
    pub gate_closed: Option<f64>,
    /// Latent tokens K.
    #[arg(long)]
    pub num_latent: Option<usize>,
    #[arg(long)]
    pub lr: Option<f64>,
    /// Shipped models (teacher/, student-base/) [default: ./assets/synthetic, else the source
    /// tree this binary was built from].
    #[arg(long)]
    pub assets: Option<PathBuf>,
    #[command(flatten)]
    pub backend: BackendArgs,
}

pub fn run(a: Args) -> Result<()> {
    let device = a.backend.device()?;
    let d = DemoConfig::default();
    let cfg = DemoConfig {
        out: a.out.clone(),
        assets: a.assets.clone().unwrap_or_else(default_assets),
        seed: a.seed,
        n_train: a.n_train.unwrap_or(d.n_train),
        n_test: a.n_test.unwrap_or(d.n_test),
        steps: a.steps.unwrap_or(d.steps),
        ablations: a.ablate.clone(),
        lambda_vtop: a.lambda_vtop.unwrap_or(d.lambda_vtop),
        lambda_traj: a.lambda_traj.unwrap_or(d.lambda_traj),
        gate_closed_fraction: a.gate_closed.unwrap_or(d.gate_closed_fraction),
        num_latent: a.num_latent.unwrap_or(d.num_latent),
        lr: a.lr.unwrap_or(d.lr),
        ..d
    };
    anyhow::ensure!(cfg.num_latent > 0, "--num-latent must be positive");
    anyhow::ensure!(
        (0.0..=1.0).contains(&cfg.gate_closed_fraction),
        "--gate-closed must be in [0, 1]"
    );
    anyhow::ensure!(
        cfg.steps > 0 && cfg.n_train > 0 && cfg.n_test > 0,
        "--steps, --n-train and --n-test must be positive"
    );
    anyhow::ensure!(
        cfg.assets.join("teacher/config.json").is_file(),
        "the shipped models are missing under {} (pass --assets)",
        cfg.assets.display()
    );
    let label = lavit_backends::device_label(&device);
    eprintln!(
        "lavit demo on {label}: {} train / {} test, {} steps per student",
        cfg.n_train, cfg.n_test, cfg.steps
    );
    let mut bar = progress_bar(1, "");
    let mut stage = String::new();
    let t = std::time::Instant::now();
    let report = run_demo(&cfg, &device, &a.backend.backend, &mut |s, done, total| {
        if s != stage {
            bar.finish();
            bar = progress_bar(total as u64, s);
            stage = s.to_string();
        }
        bar.set_position(done as u64);
    })
    .context("running the demo")?;
    bar.finish();
    println!("\n{}", summary_table(&report));
    println!(
        "report: {} ({} heatmaps) — {:.0} s",
        a.out.join("report.md").display(),
        report.heatmaps.len(),
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `./assets/synthetic` when run from a checkout (as `scripts/demo.sh` does), else the one of
/// the source tree the binary was built from.
fn default_assets() -> PathBuf {
    let here = PathBuf::from("assets/synthetic");
    if here.join("teacher/config.json").is_file() {
        return here;
    }
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../assets/synthetic"))
}
