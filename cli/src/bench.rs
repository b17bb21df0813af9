//! `lavit bench`: throughput and peak memory of a training step, teacher extraction and
//! generation for a model shape (random weights), as a table and JSON. `bench/run.sh` puts
//! these numbers beside `bench/reference.py`'s (PyTorch + HF transformers) in
//! `bench/RESULTS.md`.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use lavit_core::io::config::{load_config, parse_config};
use lavit_core::model::config::Qwen25VlConfig;
use lavit_core::perf::{self, Sequence, Workload};
use serde_json::json;

use crate::common::BackendArgs;

/// Model shapes by name: the demo student, a small model (`bench/configs/small.json`) and the
/// real Qwen2.5-VL shapes (`assets/configs/`); `bench/shape.sh` maps the same names to files.
const PRESETS: [(&str, &str); 5] = [
    (
        "tiny",
        include_str!("../../assets/synthetic/student-config.json"),
    ),
    ("small", include_str!("../../bench/configs/small.json")),
    (
        "qwen2.5-vl-3b",
        include_str!("../../assets/configs/qwen2.5-vl-3b.json"),
    ),
    (
        "qwen2.5-vl-7b",
        include_str!("../../assets/configs/qwen2.5-vl-7b.json"),
    ),
    (
        "qwen2.5-vl-32b",
        include_str!("../../assets/configs/qwen2.5-vl-32b.json"),
    ),
];

#[derive(clap::Args)]
pub struct Args {
    /// Model shape: tiny, small, qwen2.5-vl-3b, qwen2.5-vl-7b, qwen2.5-vl-32b, or a
    /// config.json path.
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
    /// Workloads, comma-separated: train, extract, generate.
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

fn model_config(name: &str) -> Result<Qwen25VlConfig> {
    if let Some((_, text)) = PRESETS.iter().find(|(n, _)| *n == name) {
        return parse_config(text.as_bytes()).map_err(anyhow::Error::msg);
    }
    let path = PathBuf::from(name);
    if !path.is_file() {
        bail!(
            "unknown model shape `{name}`: give one of {} or a config.json path",
            PRESETS.map(|p| p.0).join(", ")
        );
    }
    Ok(load_config(&path)?)
}

/// Peak resident memory of this process since the last [`reset_peak`] (Linux: `VmHWM`).
fn peak_rss() -> Option<u64> {
    status_kib("VmHWM:")
}

fn rss() -> Option<u64> {
    status_kib("VmRSS:")
}

fn status_kib(key: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with(key))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Resets the kernel's peak-RSS counter (`echo 5 > /proc/self/clear_refs`).
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Runs `f`, which calls its argument once its model is built; returns `f`'s value and the
/// growth of peak RSS from that point on (the workload's own memory, weights excluded).
fn with_memory<T>(f: impl FnOnce(&mut dyn FnMut()) -> Result<T>) -> Result<(T, Option<u64>)> {
    let mut before = None;
    let v = f(&mut || {
        reset_peak();
        before = rss();
    })?;
    let grown = match (before, peak_rss()) {
        (Some(b), Some(p)) => Some(p.saturating_sub(b)),
        _ => None,
    };
    Ok((v, grown))
}

fn mib(b: Option<u64>) -> String {
    b.map(|b| format!("{:.0}", b as f64 / (1u64 << 20) as f64))
        .unwrap_or_else(|| "n/a".into())
}

/// `cfg` cut to `text` decoder layers and `vision` blocks, widths unchanged.
fn reduce_depth(
    mut cfg: Qwen25VlConfig,
    text: Option<usize>,
    vision: Option<usize>,
) -> Result<Qwen25VlConfig> {
    if let Some(n) = text {
        if n == 0 || n > cfg.text.num_hidden_layers {
            bail!(
                "--text-layers {n}: the model has {} decoder layers",
                cfg.text.num_hidden_layers
            );
        }
        cfg.text.num_hidden_layers = n;
    }
    if let Some(m) = vision {
        if m == 0 || m > cfg.vision.depth {
            bail!(
                "--vision-layers {m}: the model has {} vision blocks",
                cfg.vision.depth
            );
        }
        cfg.vision.depth = m;
        cfg.vision.fullatt_block_indexes.retain(|&i| i < m);
        if cfg.vision.fullatt_block_indexes.is_empty() {
            cfg.vision.fullatt_block_indexes.push(m - 1);
        }
    }
    cfg.validate().map_err(anyhow::Error::msg)?;
    Ok(cfg)
}

pub fn run(a: Args) -> Result<()> {
    let cfg = reduce_depth(model_config(&a.config)?, a.text_layers, a.vision_layers)?;
    let what: Vec<&str> = a.what.split(',').map(str::trim).collect();
    if let Some(w) = what
        .iter()
        .find(|w| !["train", "extract", "generate"].contains(w))
    {
        bail!("unknown workload `{w}` (train, extract, generate)");
    }
    let w = Workload {
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
    };
    let seq = Sequence::new(&cfg, &w)?;
    let device = a.backend.device()?;
    let label = lavit_backends::device_label(&device);
    let s = seq.len();
    let n_img = seq.image_positions.len();
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
    // Achieved GFLOP/s and MFU of `flops` done in `secs`.
    let rate = |flops: f64, secs: f64| {
        let achieved = flops / secs.max(1e-12);
        let mfu = peak.as_ref().map(|(p, _)| achieved / p);
        let cell = format!(
            "{:.2} | {}",
            achieved / 1e9,
            mfu.map(|m| format!("{:.1}%", 100.0 * m))
                .unwrap_or_else(|| "n/a".into())
        );
        (cell, achieved, mfu)
    };
    let mut rows: Vec<serde_json::Value> = Vec::new();
    let mut table = String::from(
        "| workload | median | throughput | GFLOP/s | MFU | peak RSS growth (weights excluded) |\n|---|---|---|---|---|---|\n",
    );
    if what.contains(&"train") {
        let (t, mem) = with_memory(|ready| {
            perf::train_step(&cfg, &w, a.warmup, a.iters, &device, ready).context("training step")
        })?;
        let tps = s as f64 / t.median_s;
        let flops = perf::train_step_flops(&cfg, &seq);
        let how = match (w.lora_rank, w.grad_checkpointing) {
            (Some(r), true) => format!("LoRA r={r}, checkpointed"),
            (Some(r), false) => format!("LoRA r={r}"),
            (None, true) => "full, checkpointed".into(),
            (None, false) => "full".into(),
        };
        let (cell, achieved, mfu) = rate(flops, t.median_s);
        table.push_str(&format!(
            "| train step ({how}; fwd + bwd + AdamW, 3 losses, gate) | {:.3} s | {tps:.1} tokens/s | {cell} | {} MiB |\n",
            t.median_s,
            mib(mem)
        ));
        rows.push(
            json!({"workload": "train_step", "median_s": t.median_s, "min_s": t.min_s,
            "iters": t.iters, "tokens_per_s": tps, "flops_per_step": flops,
            "flops_per_s": achieved, "mfu": mfu, "peak_rss_growth_bytes": mem}),
        );
    }
    if what.contains(&"extract") {
        let (t, mem) = with_memory(|ready| {
            perf::extraction(&cfg, &w, a.warmup, a.iters, &device, ready).context("extraction")
        })?;
        let (full, ours) = perf::attention_bytes(&cfg, &w, &seq);
        let flops = perf::extraction_flops(&cfg, &seq);
        let (cell, achieved, mfu) = rate(flops, t.median_s);
        table.push_str(&format!(
            "| teacher extraction (V_top + trajectory, last {} layers) | {:.3} s | {:.2} samples/s | {cell} | {} MiB (attention kept: {:.2} MiB; all layers' full maps would be {:.1} MiB) |\n",
            w.layers.min(cfg.text.num_hidden_layers),
            t.median_s,
            1.0 / t.median_s,
            mib(mem),
            ours as f64 / (1u64 << 20) as f64,
            full as f64 / (1u64 << 20) as f64
        ));
        rows.push(
            json!({"workload": "extract", "median_s": t.median_s, "min_s": t.min_s,
            "iters": t.iters, "samples_per_s": 1.0 / t.median_s,
            "flops_per_sample": flops, "flops_per_s": achieved, "mfu": mfu,
            "peak_rss_growth_bytes": mem, "attention_bytes_captured": ours,
            "attention_bytes_all_layers": full}),
        );
    }
    if what.contains(&"generate") {
        let (g, mem) = with_memory(|ready| {
            perf::generation(&cfg, &w, a.warmup, a.iters, &device, ready).context("generation")
        })?;
        let decode_s = g.total.median_s - g.prefill.median_s;
        let (pre_cell, pre_achieved, pre_mfu) = rate(
            perf::prefill_flops(&cfg, &seq, g.prompt_tokens),
            g.prefill.median_s,
        );
        let (dec_cell, dec_achieved, dec_mfu) = rate(
            perf::decode_flops(&cfg, g.prompt_tokens, g.decode_tokens),
            decode_s,
        );
        table.push_str(&format!(
            "| prefill ({} tokens) | {:.3} s | {:.1} tokens/s | {pre_cell} | {} MiB |\n",
            g.prompt_tokens,
            g.prefill.median_s,
            g.prefill_tokens_per_s(),
            mib(mem)
        ));
        table.push_str(&format!(
            "| decode ({} tokens, KV cache) | {:.3} s | {:.1} tokens/s | {dec_cell} | |\n",
            g.decode_tokens,
            decode_s,
            g.decode_tokens_per_s()
        ));
        rows.push(
            json!({"workload": "prefill", "median_s": g.prefill.median_s,
            "tokens": g.prompt_tokens, "tokens_per_s": g.prefill_tokens_per_s(),
            "flops_per_s": pre_achieved, "mfu": pre_mfu, "peak_rss_growth_bytes": mem}),
        );
        rows.push(json!({"workload": "decode", "median_s": decode_s,
            "tokens": g.decode_tokens, "tokens_per_s": g.decode_tokens_per_s(),
            "flops_per_s": dec_achieved, "mfu": dec_mfu}));
    }
    print!("{table}");
    if let Some(path) = &a.json {
        let doc = json!({
            "tool": "lavit",
            "config": a.config,
            "text_layers": cfg.text.num_hidden_layers,
            "vision_layers": cfg.vision.depth,
            "params": cfg.param_counts().total,
            "backend": a.backend.backend,
            "device": label,
            "precision": a.backend.precision,
            "workload": w,
            "sequence_tokens": s,
            "image_tokens": n_img,
            "peak_flops_per_s": peak.as_ref().map(|p| p.0),
            "peak_how": peak.as_ref().map(|p| p.1.clone()),
            "results": rows,
        });
        std::fs::write(path, serde_json::to_string_pretty(&doc)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
