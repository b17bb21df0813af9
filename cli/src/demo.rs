//! `lavit demo`: the whole LaViT pipeline on the embedded synthetic task.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use anyhow::{Context, Result};
use lavit_core::demo::{
    Ablation, DemoConfig, EvalSplit, learning_curve, run as run_demo, run_seeds, summary_table,
};
use lavit_core::lavit::heads::HeadStates;
use lavit_core::lavit::losses::{TrajGrad, TrajTarget, VtopTarget};
use lavit_core::teacher::extract::TrajRows;

use crate::common::{BackendArgs, TopKArg, progress_bar};

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
    /// Several seeds (comma-separated): one run each in OUT/seed-N, and OUT/report.md with
    /// mean ± standard deviation of every row and the paired differences. A seed whose
    /// OUT/seed-N/report.json was made by this same (committed) binary with the same settings
    /// is reused, not run again: an interrupted run resumes, and seeds run by separate
    /// processes into one OUT are reported together.
    #[arg(long, value_delimiter = ',')]
    pub seeds: Vec<u64>,
    /// Training-set sizes of a learning curve (comma-separated, e.g. 300,1200,4800): baseline
    /// and LaViT at each size, over --seeds (default 0): OUT/curve.{md,png,json}.
    #[arg(long, value_delimiter = ',')]
    pub learning_curve: Vec<usize>,
    #[arg(long)]
    pub n_train: Option<usize>,
    #[arg(long)]
    pub n_val: Option<usize>,
    #[arg(long)]
    pub n_test: Option<usize>,
    /// Evaluate on `val` (to choose settings) or `test` (to report) [test].
    #[arg(long)]
    pub eval_split: Option<String>,
    /// Also train a LaViT student without this component (repeatable): traj, vtop, last-layer
    /// (both heads on the last decoder layer), gate (without the bottleneck, with
    /// --gate-closed above 0).
    #[arg(long, value_parser = Ablation::parse)]
    pub ablate: Vec<Ablation>,
    /// Weight of L_vtop for the LaViT student.
    #[arg(long)]
    pub lambda_vtop: Option<f64>,
    /// Weight of L_traj for the LaViT student.
    #[arg(long)]
    pub lambda_traj: Option<f64>,
    /// Fraction of the steps with the gate closed (two-stage) [default: 0, no gate].
    #[arg(long)]
    pub gate_closed: Option<f64>,
    /// Restart the learning-rate schedule when the gate opens, at lr × this.
    #[arg(long)]
    pub stage2_lr_ratio: Option<f64>,
    /// Latent tokens K.
    #[arg(long)]
    pub num_latent: Option<usize>,
    #[arg(long)]
    pub lr: Option<f64>,
    /// Top-K patches kept of each trajectory target: dense, a count or a fraction of the grid.
    #[arg(long)]
    pub traj_top_k: Option<TopKArg>,
    /// Where L_traj's gradient flows: image or detach [detach, chosen on the validation split].
    #[arg(long)]
    pub traj_grad: Option<String>,
    /// The states the heads read: post-norm or pre-norm.
    #[arg(long)]
    pub head_states: Option<String>,
    /// The query rows of a teacher step's map: step or since-image.
    #[arg(long)]
    pub traj_rows: Option<String>,
    /// The task file of the splits, in --assets or a path [task-prior.json: the language-prior
    /// variant; task.json is the teacher's balanced task].
    #[arg(long)]
    pub task: Option<PathBuf>,
    /// Train and evaluate every student without the bottleneck (the answer may read the image
    /// directly; then --gate-closed applies to the LaViT student).
    #[arg(long)]
    pub no_bottleneck: bool,
    /// What L_traj aligns: attention (the latents' own attention) or head (the
    /// TrajectoryHead).
    #[arg(long, value_parser = TrajTarget::parse)]
    pub traj_target: Option<TrajTarget>,
    /// Weight of −ln(the latents' attention mass on the image) beside the attention KL.
    #[arg(long)]
    pub traj_mass: Option<f64>,
    /// What L_vtop compares with: step (per-step V_top) or mean.
    #[arg(long, value_parser = VtopTarget::parse)]
    pub vtop_target: Option<VtopTarget>,
    /// The students' gaze layers, 0-based, comma-separated (L_traj on attention; the maps of
    /// every student) [`all` for every layer].
    #[arg(long)]
    pub gaze_layers: Option<String>,
    /// The decoder layer the VTopHead reads (0-based) or `last`.
    #[arg(long)]
    pub vtop_layer: Option<String>,
    /// Train only these students (comma-separated names: baseline, lavit, lavit-no-traj, …;
    /// for sweeps that share one baseline between runs) [all].
    #[arg(long, value_delimiter = ',')]
    pub students: Vec<String>,
    /// Last teacher layers averaged into a trajectory (at most the teacher's depth).
    #[arg(long)]
    pub teacher_layers: Option<usize>,
    /// Students trained at the same time [the thread count].
    #[arg(long)]
    pub parallel: Option<usize>,
    /// Shipped models (teacher/, student-base/) [default: ./assets/synthetic, else the source
    /// tree this binary was built from].
    #[arg(long)]
    pub assets: Option<PathBuf>,
    #[command(flatten)]
    pub backend: BackendArgs,
}

pub fn run(a: Args) -> Result<()> {
    let device = a.backend.device()?;
    let cfg = config(&a)?;
    cfg.validate().map_err(anyhow::Error::msg)?;
    anyhow::ensure!(
        a.learning_curve.iter().all(|&n| n > 0),
        "--learning-curve sizes must be positive"
    );
    anyhow::ensure!(
        cfg.assets.join("teacher/config.json").is_file(),
        "the shipped models are missing under {} (pass --assets)",
        cfg.assets.display()
    );
    let label = lavit_backends::device_label(&device);
    eprintln!(
        "lavit demo on {label}: {} train / {} {} questions, {} steps per student",
        cfg.n_train,
        match cfg.eval_split {
            EvalSplit::Val => cfg.n_val,
            EvalSplit::Test => cfg.n_test,
        },
        cfg.eval_split.name(),
        cfg.steps
    );
    let bars = indicatif::MultiProgress::new();
    let open: Mutex<HashMap<String, indicatif::ProgressBar>> = Mutex::new(HashMap::new());
    let progress = |stage: &str, done: usize, total: usize| {
        let mut open = open.lock().expect("progress lock");
        let bar = open
            .entry(stage.to_string())
            .or_insert_with(|| bars.add(progress_bar(total as u64, stage)));
        bar.set_position(done as u64);
        if done >= total {
            bar.finish();
        }
    };
    let t = std::time::Instant::now();
    let backend = a.backend.backend.clone();
    if !a.learning_curve.is_empty() {
        let seeds = if a.seeds.is_empty() {
            vec![a.seed]
        } else {
            a.seeds.clone()
        };
        learning_curve(
            &cfg,
            &a.learning_curve,
            &seeds,
            &device,
            &backend,
            &progress,
        )
        .context("running the learning curve")?;
        let md = std::fs::read_to_string(cfg.out.join("curve.md"))?;
        println!("\n{md}");
    } else if !a.seeds.is_empty() {
        run_seeds(&cfg, &a.seeds, &device, &backend, &progress).context("running the demo")?;
        let md = std::fs::read_to_string(cfg.out.join("report.md"))?;
        println!("\n{md}");
    } else {
        let report = run_demo(&cfg, &device, &backend, &progress).context("running the demo")?;
        println!("\n{}", summary_table(&report));
        println!(
            "report: {} ({} heatmaps)",
            a.out.join("report.md").display(),
            report.heatmaps.len(),
        );
    }
    let secs = t.elapsed().as_secs_f64();
    let prec = if secs < 10.0 { 1 } else { 0 };
    println!("lavit demo took {secs:.prec$} s in all");
    Ok(())
}

/// The run's [`DemoConfig`]: the defaults, with what the flags set.
fn config(a: &Args) -> Result<DemoConfig> {
    let d = DemoConfig::default();
    Ok(DemoConfig {
        out: a.out.clone(),
        assets: a.assets.clone().unwrap_or_else(default_assets),
        seed: a.seed,
        n_train: a.n_train.unwrap_or(d.n_train),
        n_val: a.n_val.unwrap_or(d.n_val),
        n_test: a.n_test.unwrap_or(d.n_test),
        eval_split: parse(&a.eval_split, EvalSplit::parse)?.unwrap_or(d.eval_split),
        steps: a.steps.unwrap_or(d.steps),
        ablations: a.ablate.clone(),
        lambda_vtop: a.lambda_vtop.unwrap_or(d.lambda_vtop),
        lambda_traj: a.lambda_traj.unwrap_or(d.lambda_traj),
        gate_closed_fraction: a.gate_closed.unwrap_or(d.gate_closed_fraction),
        stage2_lr_ratio: a.stage2_lr_ratio.or(d.stage2_lr_ratio),
        num_latent: a.num_latent.unwrap_or(d.num_latent),
        lr: a.lr.unwrap_or(d.lr),
        traj_top_k: a.traj_top_k.map(|t| t.0).unwrap_or(d.traj_top_k),
        traj_grad: parse(&a.traj_grad, TrajGrad::parse)?.unwrap_or(d.traj_grad),
        head_states: parse(&a.head_states, HeadStates::parse)?.unwrap_or(d.head_states),
        traj_rows: parse(&a.traj_rows, TrajRows::parse)?.unwrap_or(d.traj_rows),
        parallel: a.parallel.unwrap_or_else(|| rayon_threads().max(1)),
        task: a.task.clone().unwrap_or(d.task),
        bottleneck: !a.no_bottleneck,
        traj_target: a.traj_target.unwrap_or(d.traj_target),
        traj_mass: a.traj_mass.unwrap_or(d.traj_mass),
        vtop_target: a.vtop_target.unwrap_or(d.vtop_target),
        gaze_layers: match a.gaze_layers.as_deref() {
            None => d.gaze_layers,
            Some("all") => vec![],
            Some(s) => layer_list(s)?,
        },
        vtop_layer: match a.vtop_layer.as_deref() {
            None => d.vtop_layer,
            Some("last") => None,
            Some(s) => Some(s.parse().with_context(|| format!("--vtop-layer `{s}`"))?),
        },
        teacher_layers: a.teacher_layers.unwrap_or(d.teacher_layers),
        commit: crate::BUILD_COMMIT.to_string(),
        students: a.students.clone(),
        ..d
    })
}

/// `0,1` → `[0, 1]`.
fn layer_list(s: &str) -> Result<Vec<usize>> {
    s.split(',')
        .map(|x| {
            x.trim().parse().with_context(|| {
                format!("--gaze-layers `{s}`: expected `all` or 0-based layer numbers")
            })
        })
        .collect()
}

/// An optional flag parsed by `f`.
fn parse<T>(
    v: &Option<String>,
    f: fn(&str) -> std::result::Result<T, String>,
) -> Result<Option<T>> {
    v.as_deref().map(f).transpose().map_err(anyhow::Error::msg)
}

/// Threads of the pool this command runs in.
fn rayon_threads() -> usize {
    lavit_backends::threads::current()
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
