//! `lavit bench`: throughput and peak memory of a training step, teacher extraction and
//! generation for a model shape (random weights), as a table and JSON. `bench/run.sh` puts
//! these numbers beside `bench/reference.py`'s (PyTorch + HF transformers) in
//! `bench/RESULTS.md`.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use lavit_core::io::weights::WeightDtype;
use lavit_core::model::lora::TrainEmbeddings;
use lavit_core::perf::run::{BenchRequest, model_shape, process_peak_rss, reduce_depth, run_bench};
use lavit_core::perf::{self, Sequence, Workload};
use serde_json::json;

use crate::common::BackendArgs;

#[derive(clap::Args)]
pub struct Args {
    /// Model shape: tiny, small, qwen2.5-vl-3b, qwen2.5-vl-7b, qwen2.5-vl-32b
    /// (`lavit_core::perf::run::PRESETS`), or a config.json path.
    #[arg(long, default_value = "small")]
    pub config: String,
    /// Keep only the first N text decoder layers (widths stay real; `--layers` is the
    /// extraction window).
    #[arg(long)]
    pub text_layers: Option<usize>,
    /// Keep only the first M vision blocks (full-attention blocks past M are dropped; the
    /// last kept block is made full-attention if none is left).
    #[arg(long)]
    pub vision_layers: Option<usize>,
    /// Train step with LoRA adapters of this rank (base frozen) instead of full fine-tuning.
    #[arg(long)]
    pub lora_rank: Option<usize>,
    /// Train step with gradient checkpointing.
    #[arg(long)]
    pub grad_checkpointing: bool,
    /// With --lora-rank: which embedding rows train (new-tokens: only the latent tokens').
    #[arg(long, default_value_t = TrainEmbeddings::NewTokens)]
    pub train_embeddings: TrainEmbeddings,
    /// With --lora-rank: store the frozen decoder projections as f32, bf16 or f16 [default: f32].
    #[arg(long)]
    pub base_dtype: Option<WeightDtype>,
    /// Workloads, comma-separated: train, extract, generate, matmul (each matrix product of a
    /// training step at this shape, timed on its own).
    #[arg(long, default_value = "train,extract,generate")]
    pub what: String,
    /// Square image side in pixels (multiple of 28).
    #[arg(long, default_value_t = 224)]
    pub image_side: usize,
    #[arg(long, default_value_t = 32)]
    pub prompt_tokens: usize,
    #[arg(long, default_value_t = 32)]
    pub answer_tokens: usize,
    /// Latent tokens K (and trajectory steps of extraction).
    #[arg(long, default_value_t = 4)]
    pub num_latent: usize,
    /// Teacher width d_T of the V_top target.
    #[arg(long, default_value_t = 1024)]
    pub d_teacher: usize,
    /// Last layers averaged by extraction.
    #[arg(long, default_value_t = 8)]
    pub layers: usize,
    /// New tokens of the generation benchmark.
    #[arg(long, default_value_t = 16)]
    pub decode_tokens: usize,
    /// Untimed runs before the timed ones.
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,
    /// Timed runs (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub iters: usize,
    /// Instead of the workloads: load the checkpoint DIR (safetensors, any dtype on disk) onto
    /// the device and print the time and the peak memory it took, beside the bound loading
    /// keeps (the weights in their run dtype + the largest tensor + 10 %).
    #[arg(long, value_name = "DIR")]
    pub load: Option<PathBuf>,
    /// Also write the results as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// The device's peak f32 throughput in GFLOP/s, for MFU [CPU: cores × FLOPs per cycle ×
    /// clock from /proc/cpuinfo; GPUs: give the card's dense peak]
    #[arg(long)]
    pub peak_gflops: Option<f64>,
    #[command(flatten)]
    pub backend: BackendArgs,
}

pub fn run(a: Args) -> Result<()> {
    if let Some(dir) = &a.load {
        return load(dir, &a);
    }
    if a.base_dtype.is_some() && a.lora_rank.unwrap_or(0) == 0 {
        bail!("--base-dtype needs --lora-rank: without LoRA every weight trains");
    }
    let cfg = reduce_depth(model_shape(&a.config)?, a.text_layers, a.vision_layers)?;
    let workload = Workload {
        image_side: a.image_side,
        prompt_tokens: a.prompt_tokens,
        answer_tokens: a.answer_tokens,
        num_latent: a.num_latent,
        d_teacher: a.d_teacher,
        layers: a.layers,
        decode_tokens: a.decode_tokens,
        seed: 0,
        lora_rank: a.lora_rank.filter(|&r| r > 0),
        grad_checkpointing: a.grad_checkpointing,
        train_embeddings: a.train_embeddings,
        base_dtype: a.base_dtype,
    };
    let device = a.backend.device()?;
    let label = lavit_backends::device_label(&device);
    let seq = Sequence::new(&cfg, &workload)?;
    let (s, n_img) = (seq.len(), seq.image_positions.len());
    eprintln!(
        "bench {} ({} text layers, {} vision blocks) on {label}: sequence {s} tokens ({n_img} image tokens), {} params",
        a.config,
        cfg.text.num_hidden_layers,
        cfg.vision.depth,
        cfg.param_counts().total
    );
    let peak = match a.peak_gflops {
        Some(g) if g > 0.0 && g.is_finite() => Some((g * 1e9, "stated with --peak-gflops".into())),
        Some(g) => bail!("--peak-gflops must be a positive number, not {g}"),
        None if a.backend.backend == "cpu" => {
            perf::cpu_peak_flops(lavit_backends::threads::current())
        }
        None => None,
    };
    match &peak {
        Some((_, how)) => eprintln!("MFU against a peak of {how}"),
        None => eprintln!("MFU n/a: pass --peak-gflops (the device's dense f32 peak)"),
    }
    let req = BenchRequest {
        cfg,
        workload,
        what: a.what.split(',').map(|w| w.trim().to_string()).collect(),
        warmup: a.warmup,
        iters: a.iters,
        peak,
    };
    let out = run_bench(&req, &device)?;
    print!("{}", out.table);
    let peak_rss = process_peak_rss();
    if let Some(path) = &a.json {
        let doc = json!({
            "tool": "lavit",
            "config": a.config,
            "text_layers": req.cfg.text.num_hidden_layers,
            "vision_layers": req.cfg.vision.depth,
            "params": req.cfg.param_counts().total,
            "backend": a.backend.backend,
            "device": label,
            "precision": a.backend.precision,
            "workload": req.workload,
            "sequence_tokens": s,
            "image_tokens": n_img,
            "peak_flops_per_s": req.peak.as_ref().map(|p| p.0),
            "peak_how": req.peak.as_ref().map(|p| p.1.clone()),
            "results": out.rows,
            "process_peak_rss_bytes": peak_rss,
        });
        std::fs::write(path, serde_json::to_string_pretty(&doc)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(b) = peak_rss {
        // The whole process — weights, model building and every workload — last, for scripts.
        println!("peak RSS {:.2} GiB", b as f64 / (1u64 << 30) as f64);
    }
    Ok(())
}

/// `--load DIR`: one load, measured.
fn load(dir: &std::path::Path, a: &Args) -> Result<()> {
    let device = a.backend.device()?;
    let c = lavit_core::perf::load::time_load(dir, &device)
        .with_context(|| format!("loading {}", dir.display()))?;
    println!("loaded {} in {:.1} s", dir.display(), c.seconds);
    println!(
        "weights {} (largest tensor {}); bound: weights + largest + 10 % = {}",
        size(c.weights_bytes),
        size(c.largest_bytes),
        size(c.bound_bytes())
    );
    if let Some(g) = c.peak_growth_bytes {
        let within = if g <= c.bound_bytes() {
            "within"
        } else {
            "OVER"
        };
        println!(
            "peak RSS growth while loading {} ({within} the bound)",
            size(g)
        );
    }
    let peak_rss = process_peak_rss();
    if let Some(path) = &a.json {
        let doc = json!({
            "tool": "lavit",
            "load": dir,
            "seconds": c.seconds,
            "weights_bytes": c.weights_bytes,
            "largest_tensor_bytes": c.largest_bytes,
            "bound_bytes": c.bound_bytes(),
            "peak_rss_growth_bytes": c.peak_growth_bytes,
            "process_peak_rss_bytes": peak_rss,
        });
        std::fs::write(path, serde_json::to_string_pretty(&doc)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(b) = peak_rss {
        println!("peak RSS {:.2} GiB", b as f64 / (1u64 << 30) as f64);
    }
    Ok(())
}

/// Bytes in GiB, or in MiB below one GiB.
fn size(bytes: u64) -> String {
    let mib = bytes as f64 / (1u64 << 20) as f64;
    if mib < 1024.0 {
        format!("{mib:.2} MiB")
    } else {
        format!("{:.2} GiB", mib / 1024.0)
    }
}
