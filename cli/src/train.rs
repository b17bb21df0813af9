//! `lavit train`: the LaViT student (CE + V_top + trajectory + gating) from a signal store, or
//! CE-only training from a Visual-CoT dataset (teachers, baselines, pre-training).
//! Settings come from defaults < `--config FILE.toml` < flags.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use lavit_core::bundle::Layout;
use lavit_core::io::weights::WeightDtype;
use lavit_core::lavit::heads::HeadStates;
use lavit_core::lavit::losses::{TrajGrad, TrajTarget, VtopTarget};
use lavit_core::lavit::{GateSchedule, LossWeights};
use lavit_core::model::lora::{LoraConfig, TrainEmbeddings};
use lavit_core::train::job::{TrainData, TrainJob, run_job};
use lavit_core::train::{AllReduce, Replicas};
use lavit_core::train::{Stage2, TrainConfig};
use serde::Deserialize;

use crate::common::{BackendArgs, TopKArg, progress_bar, read_toml};

/// Flags that may also come from the TOML file (same names, `-` → `_`).
#[derive(clap::Args, Deserialize, Default, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct Opts {
    /// Optimiser steps [default: 1000].
    #[arg(long)]
    pub steps: Option<usize>,
    /// Peak learning rate [default: 5e-6].
    #[arg(long)]
    pub lr: Option<f64>,
    /// Warmup steps [default: 30].
    #[arg(long)]
    pub warmup: Option<usize>,
    /// Final learning rate as a fraction of the peak (cosine decay) [default: 0.1].
    #[arg(long)]
    pub min_lr_ratio: Option<f64>,
    /// AdamW's decoupled weight decay [default: 0.1].
    #[arg(long)]
    pub weight_decay: Option<f64>,
    /// Micro-batches per optimiser step [default: 16].
    #[arg(long)]
    pub grad_accum: Option<usize>,
    /// Global gradient-norm clip (0 = off) [default: 1].
    #[arg(long)]
    pub clip: Option<f64>,
    /// Latent tokens K of a fresh student [default: 4 with --signals, 0 with --data].
    #[arg(long)]
    pub num_latent: Option<usize>,
    /// Weight of L_vtop (0 = off) [default: 0.3].
    #[arg(long)]
    pub lambda_vtop: Option<f64>,
    /// Weight of L_traj (0 = off) [default: 0.3].
    #[arg(long)]
    pub lambda_traj: Option<f64>,
    /// Switch off the cross-entropy term.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub no_ce: Option<bool>,
    /// Gate schedule: off, two-stage:S, linear:S:R, cosine:S:R [default: off — on the synthetic
    /// task's validation split no gate beat the reference's two-stage:400].
    #[arg(long)]
    pub gate: Option<String>,
    /// Also gate the prompt text after the image.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub gate_prompt: Option<bool>,
    /// Top-K patches kept of each trajectory target: `dense`, a count (8) or a fraction of the
    /// grid (0.05 or 5%).
    #[arg(long)]
    pub traj_top_k: Option<TopKArg>,
    /// Where L_traj's gradient flows: `image` (also into the student's image-token states)
    /// or `detach` (only the head and the latent states) [detach].
    #[arg(long)]
    pub traj_grad: Option<String>,
    /// The last-layer states the heads read: `post-norm` or `pre-norm` [post-norm]. Set for
    /// a fresh student; a LaViT student keeps its own.
    #[arg(long)]
    pub head_states: Option<String>,
    /// The bottleneck condition: the answer and the prompt text after the image never see the
    /// image (gate closed throughout; recorded in the exported model, whose inference applies
    /// it too). The gate schedule does not apply.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub bottleneck: Option<bool>,
    /// What L_traj aligns: `head` (the TrajectoryHead) or `attention` (the latent tokens' own
    /// attention over the image, at the gaze layers) [head].
    #[arg(long)]
    pub traj_target: Option<String>,
    /// Weight of −ln(the latents' attention mass on the image) beside the attention KL [0].
    #[arg(long)]
    pub traj_mass: Option<f64>,
    /// What L_vtop compares with: `mean` (mean V_top) or `step` (V_top weighted by the
    /// teacher's step map) [mean].
    #[arg(long)]
    pub vtop_target: Option<String>,
    /// The student's gaze layers (0-based, comma-separated): L_traj on attention, and the
    /// inference heatmaps [all].
    #[arg(long)]
    pub gaze_layers: Option<String>,
    /// The decoder layer (0-based) whose output the VTopHead reads [the last layer's states].
    #[arg(long)]
    pub vtop_layer: Option<usize>,
    /// Two-stage gate: restart the learning-rate schedule when the gate opens, with this peak
    /// (the reference runs stage 2 as a fresh run at a lower lr).
    #[arg(long)]
    pub stage2_lr: Option<f64>,
    /// Warmup steps of stage 2 (with --stage2-lr) [the stage-1 warmup].
    #[arg(long)]
    pub stage2_warmup: Option<usize>,
    /// Log each loss term's gradient norm by parameter group every N steps (0 = never).
    #[arg(long)]
    pub term_grads_every: Option<usize>,
    /// Train the vision tower too.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub train_vision: Option<bool>,
    /// Gradient checkpointing: recompute memory-bound activations in the backward pass
    /// (less memory, more time; same losses and gradients).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub grad_checkpointing: Option<bool>,
    /// LoRA rank on the text decoder (0 = full fine-tuning).
    #[arg(long)]
    pub lora_rank: Option<usize>,
    #[arg(long)]
    pub lora_alpha: Option<f64>,
    /// Comma-separated projections (q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj).
    #[arg(long)]
    pub lora_targets: Option<String>,
    /// With LoRA: which embedding rows train — new-tokens (the latent tokens' rows only, no
    /// [vocab, d] gradient or optimiser state) or all [new-tokens].
    #[arg(long)]
    pub train_embeddings: Option<TrainEmbeddings>,
    /// With LoRA: store the frozen decoder projections as f32, bf16 or f16 (the adapters and
    /// everything that trains stay f32) [f32].
    #[arg(long)]
    pub base_dtype: Option<WeightDtype>,
    /// Checkpoint every N steps.
    #[arg(long)]
    pub checkpoint_every: Option<usize>,
    #[arg(long)]
    pub seed: Option<u64>,
    /// Upper bound on the resized image area.
    #[arg(long)]
    pub max_pixels: Option<usize>,
    /// dtype of the exported weights: f32, f16, bf16.
    #[arg(long)]
    pub export_dtype: Option<WeightDtype>,
    /// Also export the model every N steps, to OUT/step-N (0 = only at the end).
    #[arg(long)]
    pub export_every: Option<usize>,
    /// Layout of the exported student: `ours` or `reference` (the LaViT reference
    /// implementation's LaViTQwen2VL) [ours].
    #[arg(long)]
    pub export_layout: Option<Layout>,
}

crate::overlay!(Opts {
    steps,
    lr,
    warmup,
    min_lr_ratio,
    weight_decay,
    grad_accum,
    clip,
    num_latent,
    lambda_vtop,
    lambda_traj,
    no_ce,
    gate,
    gate_prompt,
    traj_top_k,
    traj_grad,
    head_states,
    bottleneck,
    traj_target,
    traj_mass,
    vtop_target,
    gaze_layers,
    vtop_layer,
    stage2_lr,
    stage2_warmup,
    term_grads_every,
    train_vision,
    grad_checkpointing,
    lora_rank,
    lora_alpha,
    lora_targets,
    train_embeddings,
    base_dtype,
    checkpoint_every,
    seed,
    max_pixels,
    export_dtype,
    export_every,
    export_layout,
});

/// The run the options describe: the library defaults (LaViT training, `defaults.rs`) where
/// an option is not given. Unparsable values are errors naming the option.
impl TryFrom<&Opts> for TrainConfig {
    type Error = anyhow::Error;
    fn try_from(o: &Opts) -> Result<Self> {
        let d = TrainConfig::default();
        let gate = match &o.gate {
            Some(g) => GateSchedule::parse(g).map_err(anyhow::Error::msg)?,
            None => d.gate,
        };
        let lora = match o.lora_rank.unwrap_or(0) {
            0 => None,
            rank => Some(LoraConfig {
                rank,
                alpha: o.lora_alpha.unwrap_or(2.0 * rank as f64),
                targets: match &o.lora_targets {
                    Some(t) => t.split(',').map(|s| s.trim().to_string()).collect(),
                    None => LoraConfig::default().targets,
                },
                embeddings: o.train_embeddings.unwrap_or_default(),
            }),
        };
        if lora.is_none() && (o.base_dtype.is_some() || o.train_embeddings.is_some()) {
            bail!("--base-dtype and --train-embeddings need LoRA (--lora-rank)");
        }
        if let Some(l) = &lora {
            l.validate().map_err(anyhow::Error::msg)?;
        }
        let cfg = TrainConfig {
            steps: o.steps.unwrap_or(d.steps),
            lr: o.lr.unwrap_or(d.lr),
            warmup_steps: o.warmup.unwrap_or(d.warmup_steps),
            min_lr_ratio: o.min_lr_ratio.unwrap_or(d.min_lr_ratio),
            weight_decay: o.weight_decay.unwrap_or(d.weight_decay),
            grad_accum: o.grad_accum.unwrap_or(d.grad_accum),
            clip_norm: o
                .clip
                .map(|c| (c > 0.0).then_some(c))
                .unwrap_or(d.clip_norm),
            loss: LossWeights {
                ce: !o.no_ce.unwrap_or(false),
                lambda_vtop: o.lambda_vtop.unwrap_or(d.loss.lambda_vtop),
                lambda_traj: o.lambda_traj.unwrap_or(d.loss.lambda_traj),
                traj_grad: match &o.traj_grad {
                    Some(g) => TrajGrad::parse(g).map_err(anyhow::Error::msg)?,
                    None => d.loss.traj_grad,
                },
                traj_target: match &o.traj_target {
                    Some(t) => TrajTarget::parse(t).map_err(anyhow::Error::msg)?,
                    None => d.loss.traj_target,
                },
                traj_mass: o.traj_mass.unwrap_or(d.loss.traj_mass),
                vtop_target: match &o.vtop_target {
                    Some(t) => VtopTarget::parse(t).map_err(anyhow::Error::msg)?,
                    None => d.loss.vtop_target,
                },
            },
            gate,
            gate_prompt: o.gate_prompt.unwrap_or(d.gate_prompt),
            freeze_vision: !o.train_vision.unwrap_or(!d.freeze_vision),
            lora,
            checkpoint_every: o.checkpoint_every.unwrap_or(d.checkpoint_every),
            seed: o.seed.unwrap_or(d.seed),
            term_grads_every: o.term_grads_every.unwrap_or(d.term_grads_every),
            grad_checkpointing: o.grad_checkpointing.unwrap_or(d.grad_checkpointing),
            base_dtype: o.base_dtype,
            stage2: o.stage2_lr.map(|lr| Stage2 {
                lr,
                warmup_steps: o
                    .stage2_warmup
                    .unwrap_or(o.warmup.unwrap_or(d.warmup_steps)),
            }),
            ..d
        };
        if cfg.steps == 0 || cfg.grad_accum == 0 {
            bail!("--steps and --grad-accum must be positive");
        }
        if cfg.stage2.is_some() && !matches!(cfg.gate, GateSchedule::TwoStage { .. }) {
            bail!("--stage2-lr needs a two-stage gate (--gate two-stage:S)");
        }
        Ok(cfg)
    }
}

#[derive(clap::Args)]
pub struct Args {
    /// Starting checkpoint: a plain Qwen2.5-VL directory or a LaViT student,
    /// or a Hugging Face Hub id (`Qwen/Qwen2.5-VL-3B-Instruct`, fetched into `$HF_HOME`).
    #[arg(long)]
    pub student: PathBuf,
    /// Signal store from `lavit extract` (LaViT training).
    #[arg(long, conflicts_with = "data")]
    pub signals: Option<PathBuf>,
    /// Visual-CoT dataset for CE-only training (no teacher signals).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Root directory of the image paths.
    #[arg(long)]
    pub images: PathBuf,
    /// Run directory: checkpoint/, metrics.jsonl, and the exported model in final/.
    #[arg(long)]
    pub out: PathBuf,
    /// TOML file with any of the options below.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Continue from OUT/checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// tokenizer.json (default: STUDENT/tokenizer.json).
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// Data-parallel replicas: adapter indices of --backend, comma-separated (`0,1`); each
    /// step's micro-batches are split between them and their gradients all-reduced. The CPU
    /// backend has one device: `0,0` runs two replicas in two threads on it.
    #[arg(long, value_delimiter = ',')]
    pub devices: Vec<usize>,
    #[command(flatten)]
    pub opts: Opts,
    #[command(flatten)]
    pub backend: BackendArgs,
}

pub fn run(a: Args) -> Result<()> {
    let file: Opts = read_toml(a.config.as_deref(), "training")?;
    let o = a.opts.clone().over(file);
    let device = a.backend.device()?;
    let data = match (&a.signals, &a.data) {
        (Some(s), _) => TrainData::Signals(s.clone()),
        (None, Some(d)) => TrainData::Dataset(d.clone()),
        (None, None) => bail!("give --signals STORE (LaViT) or --data FILE.json (CE only)"),
    };
    let job = TrainJob {
        student: crate::common::local_model(&a.student)?,
        data,
        images: a.images.clone(),
        out: a.out.clone(),
        resume: a.resume,
        tokenizer: a.tokenizer.clone(),
        num_latent: o.num_latent,
        config: TrainConfig::try_from(&o)?,
        gate_given: o.gate.is_some(),
        top_k: o
            .traj_top_k
            .map(|t| t.0)
            .unwrap_or(lavit_core::defaults::TRAJ_TOP_K),
        head_states: parse(&o.head_states, HeadStates::parse)?,
        bottleneck: o.bottleneck,
        gaze_layers: o.gaze_layers.as_deref().map(layer_list).transpose()?,
        vtop_layer: o.vtop_layer,
        max_pixels: o.max_pixels,
        export_dtype: o.export_dtype.unwrap_or_default(),
        layout: o.export_layout.unwrap_or_default(),
        export_every: o.export_every.unwrap_or(0),
    };
    let replicas = replicas(&a)?;
    let bar = progress_bar(job.config.steps as u64, "train");
    let done = run_job(&job, &device, &replicas, &mut |l| {
        bar.set_position(l.step as u64);
        bar.set_message(step_message(l));
    })
    .context("training")?;
    bar.finish();
    println!(
        "trained {} steps on {} samples; model in {}",
        done.steps,
        done.samples,
        done.model.display()
    );
    Ok(())
}

/// The `--devices` replicas; burn's collective all-reduce where the backend has one and the
/// devices are distinct, else ours through the host.
fn replicas(a: &Args) -> Result<Replicas> {
    let devices = a
        .devices
        .iter()
        .map(|&i| {
            BackendArgs {
                device: i,
                ..a.backend.clone()
            }
            .device()
        })
        .collect::<Result<Vec<_>>>()?;
    let kind: Option<lavit_backends::BackendKind> = a.backend.backend.parse().ok();
    let distinct = a
        .devices
        .iter()
        .enumerate()
        .all(|(i, d)| !a.devices[..i].contains(d));
    let all_reduce = if kind.is_some_and(|k| k.has_collectives()) && distinct {
        AllReduce::Collective
    } else {
        AllReduce::Host
    };
    Ok(Replicas {
        devices,
        all_reduce,
    })
}

/// The progress bar's line for one step.
fn step_message(l: &lavit_core::train::StepLog) -> String {
    format!(
        "loss {:.3}{}{}{} gate {:.2}",
        l.loss,
        l.ce.map(|v| format!(" ce {v:.3}")).unwrap_or_default(),
        l.vtop.map(|v| format!(" vtop {v:.3}")).unwrap_or_default(),
        l.traj.map(|v| format!(" traj {v:.3}")).unwrap_or_default(),
        l.gate
    )
}

/// An optional string option parsed by `f`.
fn parse<T>(
    v: &Option<String>,
    f: fn(&str) -> std::result::Result<T, String>,
) -> Result<Option<T>> {
    v.as_deref().map(f).transpose().map_err(anyhow::Error::msg)
}

/// `0,1` → `[0, 1]`.
fn layer_list(g: &str) -> Result<Vec<usize>> {
    g.split(',')
        .map(|x| x.trim().parse::<usize>())
        .collect::<std::result::Result<_, _>>()
        .with_context(|| format!("--gaze-layers `{g}`: expected 0-based layer numbers"))
}
