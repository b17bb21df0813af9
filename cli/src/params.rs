//! `lavit params`: parameter counts of a config and the memory a training run needs.

use std::path::PathBuf;

use anyhow::Result;
use lavit_core::io::config::load_config;
use lavit_core::model::lora::LoraConfig;

#[derive(clap::Args)]
pub struct Args {
    /// A Qwen2.5-VL config.json.
    #[arg(long)]
    pub config: PathBuf,
    /// LoRA rank for the LoRA row (all seven projections).
    #[arg(long, default_value_t = 16)]
    pub lora_rank: usize,
    /// Teacher hidden size d_T (VTopHead output).
    #[arg(long, default_value_t = 5120)]
    pub d_teacher: usize,
    /// Latent tokens K (their embedding rows are what trains of the table under LoRA).
    #[arg(long, default_value_t = lavit_core::defaults::NUM_LATENT)]
    pub num_latent: usize,
}

fn gib(bytes: f64) -> f64 {
    bytes / (1u64 << 30) as f64
}

pub fn run(a: Args) -> Result<()> {
    let cfg = load_config(&a.config)?;
    let c = cfg.param_counts();
    let d = cfg.text.hidden_size;
    let heads = d * d + d + d * a.d_teacher + a.d_teacher + d * d + d;
    let lora = LoraConfig {
        rank: a.lora_rank,
        ..Default::default()
    }
    .param_count(&cfg.text);
    println!("| part | parameters |\n|---|---|");
    println!("| vision tower | {} |", c.vision);
    println!("| text decoder layers | {} |", c.text_layers);
    println!(
        "| embeddings (tied LM head: {}) | {} |",
        cfg.tie_word_embeddings, c.embeddings
    );
    println!("| untied LM head | {} |", c.lm_head);
    println!("| LaViT heads (d_T = {}) | {heads} |", a.d_teacher);
    println!(
        "| LoRA r = {} on q,k,v,o,gate,up,down | {lora} |",
        a.lora_rank
    );
    println!("| total model | {} |", c.total);
    // Full fine-tuning of the text side (vision frozen): fp32 master weights, grads, Adam m, v.
    let full_trainable = (c.text_layers + c.embeddings + c.lm_head + heads) as f64;
    let frozen_vision = c.vision as f64;
    let full = 16.0 * full_trainable + 2.0 * frozen_vision;
    // LoRA as `--train-embeddings new-tokens --base-dtype bf16` runs it: the decoder layers in
    // bf16, the frozen embeddings, untied head and vision tower in f32; adapters, the latent
    // tokens' rows (and head columns, untied) and the heads trained in f32.
    let new_rows = a.num_latent * d * if cfg.tie_word_embeddings { 1 } else { 2 };
    let lora_trainable = (lora + new_rows + heads) as f64;
    let frozen = 2.0 * c.text_layers as f64 + 4.0 * (c.vision + c.embeddings + c.lm_head) as f64;
    let lora_bytes = frozen + 16.0 * lora_trainable;
    println!("\nweights + grads + AdamW state (activations excluded):");
    println!(
        "- full fine-tuning (vision frozen, bf16): {:.1} GiB ({} trainable × 16 B + vision × 2 B)",
        gib(full),
        full_trainable as usize
    );
    println!(
        "- LoRA r = {}, new-token rows, bf16 decoder: {:.1} GiB ({} trainable × 16 B + decoder × 2 B + vision, embeddings × 4 B)",
        a.lora_rank,
        gib(lora_bytes),
        lora_trainable as usize
    );
    Ok(())
}
