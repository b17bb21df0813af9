//! Throughput of the three workloads LaViT runs — a student training step, teacher signal
//! extraction and generation — on random weights and synthetic inputs of a fixed shape, so
//! any config (up to the real Qwen2.5-VL-3B / 7B shapes) can be measured without a download.
//! `bench/reference.py` does the same work with HF transformers; `lavit bench` prints both.
//!
//! The sequence is the student's training layout: `prompt_tokens / 2` text tokens,
//! `<|vision_start|>`, the image tokens of a `side × side` image, `<|vision_end|>`, the rest of
//! the prompt, `K` latent tokens, `answer_tokens` answer tokens and an end token.

pub mod load;
pub mod matmul;
pub mod run;

use std::ops::Range;

use burn::optim::GradientsParams;
use burn::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::time::Instant;

use crate::error::{LavitError, Result};
use crate::infer::{GenerateConfig, generate};
use crate::io::checkpoint::HostInputs;
use crate::io::processor::ProcessedImage;
use crate::io::weights::WeightDtype;
use crate::lavit::losses::LossWeights;
use crate::lavit::student::{
    LavitConfig, LavitStudent, SampleTargets, StudentSample, sample_losses,
};
use crate::model::config::Qwen25VlConfig;
use crate::model::init::hf_init_with_base;
use crate::model::lora::{LoraConfig, TrainEmbeddings};
use crate::model::vlm::{ForwardOptions, LogitRows, Qwen25Vl};
use crate::teacher::{ExtractConfig, extract_signals};
use crate::util::to_vec_f32;

/// The shape of the work.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workload {
    /// Square image side in pixels (a multiple of `patch · merge`).
    pub image_side: usize,
    pub prompt_tokens: usize,
    pub answer_tokens: usize,
    /// Latent tokens `K` (training) and trajectory steps (extraction).
    pub num_latent: usize,
    /// Teacher width `d_T` of the V_top target.
    pub d_teacher: usize,
    /// Last layers averaged by extraction.
    pub layers: usize,
    /// Tokens decoded by the generation benchmark.
    pub decode_tokens: usize,
    pub seed: u64,
    /// Train LoRA adapters of this rank on the text decoder (base frozen) instead of all of it.
    #[serde(default)]
    pub lora_rank: Option<usize>,
    /// Gradient checkpointing in the training step.
    #[serde(default)]
    pub grad_checkpointing: bool,
    /// Under LoRA: which embedding rows train.
    #[serde(default)]
    pub train_embeddings: TrainEmbeddings,
    /// Under LoRA: the frozen base's storage dtype (`None`: the model's, f32).
    #[serde(default)]
    pub base_dtype: Option<WeightDtype>,
}

impl Default for Workload {
    fn default() -> Self {
        Self {
            image_side: 224,
            prompt_tokens: 32,
            answer_tokens: 32,
            num_latent: 4,
            d_teacher: 1024,
            layers: 8,
            decode_tokens: 16,
            seed: 0,
            lora_rank: None,
            grad_checkpointing: false,
            train_embeddings: TrainEmbeddings::default(),
            base_dtype: None,
        }
    }
}

/// The synthetic sequence of a [`Workload`] for a config.
#[derive(Debug, Clone)]
pub struct Sequence {
    pub host: HostInputs,
    pub image_positions: Vec<usize>,
    pub latent_positions: Vec<usize>,
    pub answer: Range<usize>,
    /// Index of the first token after the prompt (latents start here).
    pub prompt_len: usize,
}

impl Sequence {
    pub fn new(cfg: &Qwen25VlConfig, w: &Workload) -> Result<Self> {
        for (name, n) in [
            ("num_latent", w.num_latent),
            ("answer_tokens", w.answer_tokens),
            ("layers", w.layers),
            ("decode_tokens", w.decode_tokens),
            ("d_teacher", w.d_teacher),
        ] {
            if n == 0 {
                return Err(LavitError::Invalid(format!(
                    "bench workload: {name} must be positive"
                )));
            }
        }
        let v = &cfg.vision;
        let unit = v.patch_size * v.spatial_merge_size;
        if w.image_side == 0 || !w.image_side.is_multiple_of(unit) {
            return Err(LavitError::Invalid(format!(
                "image side {} is not a positive multiple of patch × merge = {unit}",
                w.image_side
            )));
        }
        let mut rng = StdRng::seed_from_u64(w.seed);
        let specials = [
            cfg.image_token_id,
            cfg.video_token_id,
            cfg.vision_start_token_id,
            cfg.vision_end_token_id,
        ];
        let top = cfg.text.vocab_size.min(151_000) as u32;
        let mut word = || loop {
            let t = rng.random_range(16..top);
            if !specials.contains(&t) {
                return t;
            }
        };
        let side = w.image_side / v.patch_size;
        let n_patches = side * side;
        let n_img = n_patches / (v.spatial_merge_size * v.spatial_merge_size);
        let mut ids: Vec<u32> = (0..w.prompt_tokens / 2).map(|_| word()).collect();
        ids.push(cfg.vision_start_token_id);
        let img0 = ids.len();
        ids.extend(std::iter::repeat_n(cfg.image_token_id, n_img));
        ids.push(cfg.vision_end_token_id);
        ids.extend((0..w.prompt_tokens - w.prompt_tokens / 2).map(|_| word()));
        let prompt_len = ids.len();
        ids.extend((0..w.num_latent).map(|_| word()));
        let answer_start = ids.len();
        ids.extend((0..w.answer_tokens).map(|_| word()));
        ids.push(word());
        let mut prng = StdRng::seed_from_u64(w.seed ^ 0x5eed);
        let rgb = (0..w.image_side * w.image_side * 3)
            .map(|_| prng.random::<u8>())
            .collect();
        Ok(Self {
            host: HostInputs {
                input_ids: ids.clone(),
                images: vec![ProcessedImage {
                    rgb,
                    grid: [1, side, side],
                    resized: (w.image_side, w.image_side),
                    geometry: (v.patch_size, v.spatial_merge_size, v.temporal_patch_size),
                }],
            },
            image_positions: (img0..img0 + n_img).collect(),
            latent_positions: (prompt_len..answer_start).collect(),
            answer: answer_start..ids.len(),
            prompt_len,
        })
    }

    pub fn len(&self) -> usize {
        self.host.input_ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.host.input_ids.is_empty()
    }
}

/// Timings of repeated runs of one workload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    /// Median seconds per iteration.
    pub median_s: f64,
    pub min_s: f64,
    pub iters: usize,
}

fn timed(warmup: usize, iters: usize, mut f: impl FnMut() -> Result<()>) -> Result<Timing> {
    for _ in 0..warmup {
        f()?;
    }
    let mut t = Vec::with_capacity(iters.max(1));
    for _ in 0..iters.max(1) {
        let t0 = Instant::now();
        f()?;
        t.push(t0.elapsed().as_secs_f64());
    }
    t.sort_by(f64::total_cmp);
    Ok(Timing {
        median_s: t[t.len() / 2],
        min_s: t[0],
        iters: t.len(),
    })
}

/// A model of `cfg` with HF-style random weights.
pub fn random_model(cfg: &Qwen25VlConfig, seed: u64, device: &Device) -> Result<Qwen25Vl> {
    random_model_with_base(cfg, seed, None, device)
}

/// [`random_model`] with the decoder's projection matrices drawn straight into `base`.
pub fn random_model_with_base(
    cfg: &Qwen25VlConfig,
    seed: u64,
    base: Option<WeightDtype>,
    device: &Device,
) -> Result<Qwen25Vl> {
    cfg.validate().map_err(LavitError::Invalid)?;
    let base = base.map(burn::tensor::DType::from);
    Ok(hf_init_with_base(
        Qwen25Vl::new(cfg, device),
        0.02,
        seed,
        base,
    ))
}

/// One student training step: forward with the gate half open (g = 0.5) + CE, V_top and
/// trajectory losses + backward + AdamW, vision tower frozen (the reference recipe).
/// `ready` runs once the model is built, before the first step (memory probes start there).
pub fn train_step(
    cfg: &Qwen25VlConfig,
    w: &Workload,
    warmup: usize,
    iters: usize,
    device: &Device,
    ready: &mut dyn FnMut(),
) -> Result<Timing> {
    let seq = Sequence::new(cfg, w)?;
    let mut rng = StdRng::seed_from_u64(w.seed + 1);
    let n = seq.image_positions.len();
    let dist = |rng: &mut StdRng| {
        let v: Vec<f32> = (0..n).map(|_| rng.random::<f32>()).collect();
        let z: f32 = v.iter().sum();
        v.into_iter().map(|x| x / z).collect::<Vec<f32>>()
    };
    let sample = StudentSample {
        input_ids: seq.host.input_ids.clone(),
        images: seq.host.images.clone(),
        image_positions: seq.image_positions.clone(),
        latent_positions: seq.latent_positions.clone(),
        answer_start: seq.answer.start,
        end: seq.answer.end,
        targets: Some(SampleTargets {
            vtop_step: vec![],
            vtop_mean: (0..w.d_teacher)
                .map(|_| rng.random::<f32>() - 0.5)
                .collect(),
            traj: (0..w.num_latent).map(|_| dist(&mut rng)).collect(),
        }),
    };
    let lavit = LavitConfig {
        num_latent: w.num_latent,
        latent_token_ids: seq
            .latent_positions
            .iter()
            .map(|&p| seq.host.input_ids[p])
            .collect(),
        d_teacher: w.d_teacher,
        ..LavitConfig::default()
    };
    let base = w.base_dtype.filter(|_| w.lora_rank.is_some());
    let vlm = random_model_with_base(cfg, w.seed, base, device)?;
    let train_cfg = crate::train::TrainConfig {
        lora: w.lora_rank.map(|rank| LoraConfig {
            rank,
            alpha: 2.0 * rank as f64,
            embeddings: w.train_embeddings,
            ..Default::default()
        }),
        base_dtype: w.base_dtype,
        grad_checkpointing: w.grad_checkpointing,
        freeze_vision: true,
        seed: w.seed,
        ..Default::default()
    };
    let mut student = crate::train::prepare(LavitStudent::new(vlm, lavit, w.seed), &train_cfg)?;
    let mut optim = crate::defaults::adamw(crate::defaults::WEIGHT_DECAY);
    let weights = LossWeights::default();
    ready();
    timed(warmup, iters, || {
        let parts = sample_losses(&student, &sample, &weights, 0.5, true)?;
        let loss: f32 = parts.total.clone().into_scalar::<f32>();
        if !loss.is_finite() {
            return Err(LavitError::Other(format!("bench: non-finite loss {loss}")));
        }
        let grads = GradientsParams::from_grads(parts.total.backward(), &student);
        student = optim.step(5e-6, student.clone(), grads);
        Ok(())
    })
}

/// Teacher signal extraction over the last `w.layers` layers: one forward pass capturing only
/// the answer rows' attention to the image columns, then V_top and the `K` step trajectories.
pub fn extraction(
    cfg: &Qwen25VlConfig,
    w: &Workload,
    warmup: usize,
    iters: usize,
    device: &Device,
    ready: &mut dyn FnMut(),
) -> Result<Timing> {
    let seq = Sequence::new(cfg, w)?;
    let teacher = random_model(cfg, w.seed, device)?;
    let k = w.num_latent.max(1);
    let a = seq.answer.clone();
    let per = a.len().div_ceil(k);
    let spans: Vec<Range<usize>> = (0..k)
        .map(|i| (a.start + i * per).min(a.end)..(a.start + (i + 1) * per).min(a.end))
        .filter(|r| !r.is_empty())
        .collect();
    let ec = ExtractConfig {
        layers: w.layers,
        top_k: crate::lavit::targets::TopK::Count(8),
        ..Default::default()
    };
    ready();
    timed(warmup, iters, || {
        extract_signals(&teacher, &seq.host, &spans, &ec).map(|_| ())
    })
}

/// Generation: prefill of the prompt (image + text) and greedy decoding with the KV cache.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerationTiming {
    pub prefill: Timing,
    /// Prefill + `decode_tokens` new tokens.
    pub total: Timing,
    pub prompt_tokens: usize,
    pub decode_tokens: usize,
}

impl GenerationTiming {
    pub fn prefill_tokens_per_s(&self) -> f64 {
        self.prompt_tokens as f64 / self.prefill.median_s
    }
    pub fn decode_tokens_per_s(&self) -> f64 {
        self.decode_tokens as f64 / (self.total.median_s - self.prefill.median_s).max(1e-9)
    }
}

pub fn generation(
    cfg: &Qwen25VlConfig,
    w: &Workload,
    warmup: usize,
    iters: usize,
    device: &Device,
    ready: &mut dyn FnMut(),
) -> Result<GenerationTiming> {
    let seq = Sequence::new(cfg, w)?;
    let vlm = random_model(cfg, w.seed, device)?;
    let prompt = HostInputs {
        input_ids: seq.host.input_ids[..seq.prompt_len].to_vec(),
        images: seq.host.images.clone(),
    };
    let inputs = prompt.to_device(device);
    ready();
    let prefill = timed(warmup, iters, || {
        let out = vlm.forward(
            &inputs,
            ForwardOptions {
                logits: LogitRows::Last,
                ..Default::default()
            },
        )?;
        let logits = out.logits.expect("last row asked for");
        let _ = to_vec_f32(logits);
        Ok(())
    })?;
    let gc = GenerateConfig {
        max_new_tokens: w.decode_tokens,
        ..Default::default()
    };
    let total = timed(warmup, iters, || {
        let g = generate(&vlm, None, &inputs, &[], &gc)?;
        if g.tokens.len() != w.decode_tokens {
            return Err(LavitError::Other(format!(
                "bench: generated {} tokens, expected {}",
                g.tokens.len(),
                w.decode_tokens
            )));
        }
        Ok(())
    })?;
    Ok(GenerationTiming {
        prefill,
        total,
        prompt_tokens: prompt.input_ids.len(),
        decode_tokens: w.decode_tokens,
    })
}

/// Bytes of attention probabilities (f32) the reference extraction materialises — every
/// layer's full `[heads, S, S]` map (`output_attentions=True`) — against what ours captures:
/// the last `layers` layers' `[heads, answer rows, image columns]`.
pub fn attention_bytes(cfg: &Qwen25VlConfig, w: &Workload, seq: &Sequence) -> (u64, u64) {
    let t = &cfg.text;
    let s = seq.len() as u64;
    let h = t.num_attention_heads as u64;
    let full = t.num_hidden_layers as u64 * h * s * s * 4;
    let ours = w.layers.min(t.num_hidden_layers) as u64
        * h
        * seq.answer.len() as u64
        * seq.image_positions.len() as u64
        * 4;
    (full, ours)
}

/// FLOPs of a forward pass of the text decoder over `s` tokens, `2 · params · s` plus the
/// attention products `4 · s² · d · L` (`lm_head`: with the LM head on every token).
fn text_forward_flops(cfg: &Qwen25VlConfig, s: f64, lm_head: bool) -> f64 {
    let c = cfg.param_counts();
    let t = &cfg.text;
    let attn = 4.0 * s * s * t.hidden_size as f64 * t.num_hidden_layers as f64;
    let head = if lm_head { c.lm_head as f64 } else { 0.0 };
    2.0 * (c.text_layers as f64 + head) * s + attn
}

/// FLOPs of the vision tower's forward pass over `seq`'s image, `2 · params · patches`.
fn vision_forward_flops(cfg: &Qwen25VlConfig, seq: &Sequence) -> f64 {
    let patches = seq.host.images[0].n_patches() as f64;
    2.0 * cfg.param_counts().vision as f64 * patches
}

/// FLOPs of one training step (forward + backward ≈ 3 × forward) of the text decoder and the
/// vision tower's forward (frozen), `2 · params · tokens` plus attention, for MFU.
pub fn train_step_flops(cfg: &Qwen25VlConfig, seq: &Sequence) -> f64 {
    3.0 * text_forward_flops(cfg, seq.len() as f64, true) + vision_forward_flops(cfg, seq)
}

/// FLOPs of one teacher extraction: the forward pass without the LM head.
pub fn extraction_flops(cfg: &Qwen25VlConfig, seq: &Sequence) -> f64 {
    text_forward_flops(cfg, seq.len() as f64, false) + vision_forward_flops(cfg, seq)
}

/// FLOPs of the prefill of `prompt_tokens` (the LM head on the last token only).
pub fn prefill_flops(cfg: &Qwen25VlConfig, seq: &Sequence, prompt_tokens: usize) -> f64 {
    let head = 2.0 * cfg.param_counts().lm_head as f64;
    text_forward_flops(cfg, prompt_tokens as f64, false) + vision_forward_flops(cfg, seq) + head
}

/// FLOPs of decoding `n` tokens after a prompt of `prompt_tokens`: per token the weights of
/// the decoder and the LM head once, `2 · params`, plus attention over the cache.
pub fn decode_flops(cfg: &Qwen25VlConfig, prompt_tokens: usize, n: usize) -> f64 {
    let c = cfg.param_counts();
    let t = &cfg.text;
    (0..n)
        .map(|i| {
            let ctx = (prompt_tokens + i + 1) as f64;
            2.0 * (c.text_layers + c.lm_head) as f64
                + 4.0 * ctx * t.hidden_size as f64 * t.num_hidden_layers as f64
        })
        .sum()
}

/// A stated f32 peak of this CPU for `threads` threads, in FLOP/s, and how it was reckoned:
/// cores × FLOPs per cycle × clock, from `/proc/cpuinfo` (Linux; `None` elsewhere). FLOPs per
/// cycle: two FMA pipes × vector lanes × 2 — 64 with AVX-512 on Intel (two 512-bit FMA units),
/// 32 with AVX-512 on AMD (Zen 4 runs it on two 256-bit pipes) or with AVX2 + FMA, 16 with
/// SSE only. The clock is the one the kernel reports now (no turbo).
pub fn cpu_peak_flops(threads: usize) -> Option<(f64, String)> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let field = |name: &str| {
        info.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split(':').nth(1))
            .map(|v| v.trim().to_string())
    };
    let mhz: f64 = field("cpu MHz")?.parse().ok()?;
    let flags = field("flags").unwrap_or_default();
    let has = |f: &str| flags.split_whitespace().any(|x| x == f);
    let intel = field("vendor_id").is_some_and(|v| v.contains("Intel"));
    let (per_cycle, isa) = if has("avx512f") && intel {
        (64.0, "AVX-512, 2 FMA units")
    } else if has("avx512f") {
        (32.0, "AVX-512 on 256-bit pipes")
    } else if has("avx2") && has("fma") {
        (32.0, "AVX2 + FMA")
    } else {
        (16.0, "SSE")
    };
    let peak = threads as f64 * per_cycle * mhz * 1e6;
    let how = format!(
        "{threads} core(s) × {per_cycle:.0} FLOP/cycle ({isa}) × {:.2} GHz = {:.0} GFLOP/s",
        mhz / 1e3,
        peak / 1e9
    );
    Some((peak, how))
}
