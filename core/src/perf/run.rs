//! `lavit bench`'s run: the model shapes by name, a shape cut to fewer layers, and each
//! workload timed with its throughput, FLOP/s, MFU and the peak memory it adds.

use burn::tensor::Device;
use serde_json::{Value, json};

use super::{
    Sequence, Workload, attention_bytes, decode_flops, extraction, extraction_flops, generation,
    prefill_flops, train_step, train_step_flops,
};
use crate::error::{LavitError, Result};
use crate::io::config::{load_config, parse_config};
use crate::model::config::Qwen25VlConfig;

fn invalid(m: String) -> LavitError {
    LavitError::Invalid(m)
}

/// Model shapes by name: the demo student, a small model (`bench/configs/small.json`) and the
/// real Qwen2.5-VL shapes (`assets/configs/`); `bench/shape.sh` maps the same names to files.
pub const PRESETS: [(&str, &str); 5] = [
    (
        "tiny",
        include_str!("../../../assets/synthetic/student-config.json"),
    ),
    ("small", include_str!("../../../bench/configs/small.json")),
    (
        "qwen2.5-vl-3b",
        include_str!("../../../assets/configs/qwen2.5-vl-3b.json"),
    ),
    (
        "qwen2.5-vl-7b",
        include_str!("../../../assets/configs/qwen2.5-vl-7b.json"),
    ),
    (
        "qwen2.5-vl-32b",
        include_str!("../../../assets/configs/qwen2.5-vl-32b.json"),
    ),
];

/// A model shape by name ([`PRESETS`]) or a `config.json` path.
pub fn model_shape(name: &str) -> Result<Qwen25VlConfig> {
    if let Some((_, text)) = PRESETS.iter().find(|(n, _)| *n == name) {
        return parse_config(text.as_bytes()).map_err(LavitError::Invalid);
    }
    let path = std::path::PathBuf::from(name);
    if !path.is_file() {
        return Err(invalid(format!(
            "unknown model shape `{name}`: give one of {} or a config.json path",
            PRESETS.map(|p| p.0).join(", ")
        )));
    }
    load_config(&path)
}

/// `cfg` cut to `text` decoder layers and `vision` blocks, widths unchanged.
pub fn reduce_depth(
    mut cfg: Qwen25VlConfig,
    text: Option<usize>,
    vision: Option<usize>,
) -> Result<Qwen25VlConfig> {
    if let Some(n) = text {
        if n == 0 || n > cfg.text.num_hidden_layers {
            return Err(invalid(format!(
                "--text-layers {n}: the model has {} decoder layers",
                cfg.text.num_hidden_layers
            )));
        }
        cfg.text.num_hidden_layers = n;
    }
    if let Some(m) = vision {
        if m == 0 || m > cfg.vision.depth {
            return Err(invalid(format!(
                "--vision-layers {m}: the model has {} vision blocks",
                cfg.vision.depth
            )));
        }
        cfg.vision.depth = m;
        cfg.vision.fullatt_block_indexes.retain(|&i| i < m);
        if cfg.vision.fullatt_block_indexes.is_empty() {
            cfg.vision.fullatt_block_indexes.push(m - 1);
        }
    }
    cfg.validate().map_err(LavitError::Invalid)?;
    Ok(cfg)
}

/// What to time.
#[derive(Debug, Clone)]
pub struct BenchRequest {
    pub cfg: Qwen25VlConfig,
    pub workload: Workload,
    /// `train`, `extract`, `generate`.
    pub what: Vec<String>,
    pub warmup: usize,
    pub iters: usize,
    /// The device's peak FLOP/s and how it was found (for MFU).
    pub peak: Option<(f64, String)>,
}

/// A bench's results: a Markdown table and one JSON object per workload.
#[derive(Debug, Clone)]
pub struct BenchOutcome {
    pub table: String,
    pub rows: Vec<Value>,
}

/// Times `req`'s workloads on `device`.
pub fn run_bench(req: &BenchRequest, device: &Device) -> Result<BenchOutcome> {
    if let Some(w) = req
        .what
        .iter()
        .find(|w| !["train", "extract", "generate", "matmul"].contains(&w.as_str()))
    {
        return Err(invalid(format!(
            "unknown workload `{w}` (train, extract, generate, matmul)"
        )));
    }
    let seq = Sequence::new(&req.cfg, &req.workload)?;
    let mut out = BenchOutcome {
        table: String::from(
            "| workload | median | throughput | GFLOP/s | MFU | peak RSS growth (weights excluded) |\n|---|---|---|---|---|---|\n",
        ),
        rows: Vec::new(),
    };
    let wants = |w: &str| req.what.iter().any(|x| x == w);
    if wants("train") {
        time_train(req, &seq, device, &mut out)?;
    }
    if wants("extract") {
        time_extraction(req, &seq, device, &mut out)?;
    }
    if wants("generate") {
        time_generation(req, &seq, device, &mut out)?;
    }
    if wants("matmul") {
        time_matmuls(req, &seq, device, &mut out)?;
    }
    Ok(out)
}

/// Achieved FLOP/s of `flops` done in `secs`, its MFU against `peak`, and the table cell of
/// both.
fn rate(peak: &Option<(f64, String)>, flops: f64, secs: f64) -> (String, f64, Option<f64>) {
    let achieved = flops / secs.max(1e-12);
    let mfu = peak.as_ref().map(|(p, _)| achieved / p);
    let cell = format!(
        "{:.2} | {}",
        achieved / 1e9,
        mfu.map(|m| format!("{:.1}%", 100.0 * m))
            .unwrap_or_else(|| "n/a".into())
    );
    (cell, achieved, mfu)
}

/// The training step's row.
fn time_train(
    req: &BenchRequest,
    seq: &Sequence,
    device: &Device,
    out: &mut BenchOutcome,
) -> Result<()> {
    let (cfg, w, s) = (&req.cfg, &req.workload, seq.len());
    let table = &mut out.table;
    let rows = &mut out.rows;
    let rate = |f, t| rate(&req.peak, f, t);
    let (t, mem) = with_memory(|ready| train_step(cfg, w, req.warmup, req.iters, device, ready))?;
    let tps = s as f64 / t.median_s;
    let flops = train_step_flops(cfg, seq);
    let mut how = match w.lora_rank {
        Some(r) => format!("LoRA r={r}, {} embedding rows", w.train_embeddings),
        None => "full".into(),
    };
    if let (Some(d), Some(_)) = (w.base_dtype, w.lora_rank) {
        how.push_str(&format!(", {d} base"));
    }
    if w.grad_checkpointing {
        how.push_str(", checkpointed");
    }
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
    Ok(())
}

/// One row per matrix product of a training step ([`super::matmul::step_matmuls`]).
fn time_matmuls(
    req: &BenchRequest,
    seq: &Sequence,
    device: &Device,
    out: &mut BenchOutcome,
) -> Result<()> {
    for shape in super::matmul::step_matmuls(&req.cfg, seq) {
        let t = super::matmul::time_matmul(&shape, req.warmup, req.iters, device)?;
        let (cell, achieved, mfu) = rate(&req.peak, shape.flops(), t.median_s);
        out.table.push_str(&format!(
            "| matmul {} ({}×[{}×{}]·[{}×{}], {:?}; {} per step) | {:.2} ms | | {cell} | |\n",
            shape.name,
            shape.batch,
            shape.m,
            shape.k,
            shape.k,
            shape.n,
            shape.layout,
            shape.per_step,
            1e3 * t.median_s
        ));
        out.rows.push(
            json!({"workload": "matmul", "shape": shape, "median_s": t.median_s,
            "min_s": t.min_s, "iters": t.iters, "flops": shape.flops(),
            "flops_per_s": achieved, "mfu": mfu}),
        );
    }
    Ok(())
}

/// The teacher extraction's row.
fn time_extraction(
    req: &BenchRequest,
    seq: &Sequence,
    device: &Device,
    out: &mut BenchOutcome,
) -> Result<()> {
    let (cfg, w) = (&req.cfg, &req.workload);
    let table = &mut out.table;
    let rows = &mut out.rows;
    let rate = |f, t| rate(&req.peak, f, t);
    let (t, mem) = with_memory(|ready| extraction(cfg, w, req.warmup, req.iters, device, ready))?;
    let (full, ours) = attention_bytes(cfg, w, seq);
    let flops = extraction_flops(cfg, seq);
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
    Ok(())
}

/// The prefill and decode rows.
fn time_generation(
    req: &BenchRequest,
    seq: &Sequence,
    device: &Device,
    out: &mut BenchOutcome,
) -> Result<()> {
    let (cfg, w) = (&req.cfg, &req.workload);
    let table = &mut out.table;
    let rows = &mut out.rows;
    let rate = |f, t| rate(&req.peak, f, t);
    let (g, mem) = with_memory(|ready| generation(cfg, w, req.warmup, req.iters, device, ready))?;
    let decode_s = g.total.median_s - g.prefill.median_s;
    let (pre_cell, pre_achieved, pre_mfu) =
        rate(prefill_flops(cfg, seq, g.prompt_tokens), g.prefill.median_s);
    let (dec_cell, dec_achieved, dec_mfu) = rate(
        decode_flops(cfg, g.prompt_tokens, g.decode_tokens),
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
    Ok(())
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

/// The highest peak RSS seen before a [`reset_peak`] cleared the kernel's counter.
static PEAK_BEFORE_RESET: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Resets the kernel's peak-RSS counter (`echo 5 > /proc/self/clear_refs`), keeping the
/// process's peak for [`process_peak_rss`].
fn reset_peak() {
    if let Some(p) = peak_rss() {
        PEAK_BEFORE_RESET.fetch_max(p, std::sync::atomic::Ordering::Relaxed);
    }
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Peak resident memory of the whole process so far — model building, weights and every
/// workload (Linux `VmHWM`, across resets); `None` where `/proc` has no such line.
pub fn process_peak_rss() -> Option<u64> {
    let now = peak_rss()?;
    Some(now.max(PEAK_BEFORE_RESET.load(std::sync::atomic::Ordering::Relaxed)))
}

/// Runs `f`, which calls its argument once its model is built; returns `f`'s value and the
/// growth of peak RSS from that point on (the workload's own memory, weights excluded).
pub(super) fn with_memory<T>(
    f: impl FnOnce(&mut dyn FnMut()) -> Result<T>,
) -> Result<(T, Option<u64>)> {
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
