//! `lavit forward`: one forward pass, outputs written as safetensors.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use lavit_core::io::checkpoint::HostInputs;
use lavit_core::io::processor::load_rgb;
use lavit_core::io::tensors::{HostTensor, write_safetensors};
use lavit_core::io::{Checkpoint, Message};
use lavit_core::model::{ForwardOptions, LogitRows};
use lavit_core::util::to_vec_f32;

use crate::common::BackendArgs;

#[derive(clap::Args)]
pub struct Args {
    /// Checkpoint directory (config.json + safetensors),
    /// or a Hugging Face Hub id (`Qwen/Qwen2.5-VL-3B-Instruct`, fetched into `$HF_HOME`).
    #[arg(long)]
    model: PathBuf,
    /// Input image.
    #[arg(long)]
    image: PathBuf,
    /// User text; the image goes before it unless the text contains `<image>`.
    #[arg(long)]
    prompt: String,
    /// tokenizer.json (default: MODEL/tokenizer.json).
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// Upper bound on the resized image area (pixels).
    #[arg(long)]
    max_pixels: Option<usize>,
    /// Lower bound on the resized image area (pixels).
    #[arg(long)]
    min_pixels: Option<usize>,
    /// Output safetensors file.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    pub backend: BackendArgs,
}

/// Splits `prompt` at `<image>` markers into message content; no marker = image first.
fn user_content(prompt: &str) -> Result<Vec<lavit_core::io::Content>> {
    use lavit_core::io::Content;
    let parts: Vec<&str> = prompt.split("<image>").collect();
    if parts.len() == 1 {
        return Ok(vec![
            Content::Image,
            Content::Text {
                text: prompt.into(),
            },
        ]);
    }
    if parts.len() != 2 {
        bail!(
            "prompt: {} image slots (`<image>`) but one image was given",
            parts.len() - 1
        );
    }
    let mut c = Vec::new();
    if !parts[0].is_empty() {
        c.push(Content::Text {
            text: parts[0].into(),
        });
    }
    c.push(Content::Image);
    if !parts[1].is_empty() {
        c.push(Content::Text {
            text: parts[1].into(),
        });
    }
    Ok(c)
}

pub fn run(a: Args) -> Result<()> {
    let device = a.backend.device()?;
    let ckpt = Checkpoint::open(&crate::common::local_model(&a.model)?)
        .context("opening the checkpoint")?;
    let tokenizer = ckpt.tokenizer(a.tokenizer.as_deref())?;
    let mut proc_cfg = ckpt.processor.clone();
    if let Some(m) = a.max_pixels {
        proc_cfg.max_pixels = m;
    }
    if let Some(m) = a.min_pixels {
        proc_cfg.min_pixels = m;
    }
    let image = load_rgb(&a.image)?;
    let messages = [Message::user(user_content(&a.prompt)?)];
    let host = HostInputs::build(&tokenizer, &proc_cfg, &[image], &messages, true)?;
    let model = ckpt.load(&device).context("loading the weights")?;
    let inputs = host.to_device(&device);
    let out = model.forward(
        &inputs,
        ForwardOptions {
            logits: LogitRows::All,
            ..Default::default()
        },
    )?;
    let logits = out.logits.expect("logits requested");
    let [s, v] = logits.dims();
    let hidden = out.decoder.last_hidden_state;
    let d = hidden.dims()[2];
    let (pix, pix_shape) = host.pixel_values();
    let mut t = BTreeMap::new();
    t.insert(
        "input_ids".into(),
        HostTensor::i64(vec![s], host.input_ids.iter().map(|&i| i as i64).collect()),
    );
    t.insert(
        "image_grid_thw".into(),
        HostTensor::i64(
            vec![1, 3],
            host.grids()[0].iter().map(|&x| x as i64).collect(),
        ),
    );
    t.insert(
        "pixel_values".into(),
        HostTensor::f32(pix_shape.to_vec(), pix),
    );
    t.insert(
        "logits".into(),
        HostTensor::f32(vec![s, v], to_vec_f32(logits)),
    );
    t.insert(
        "last_hidden_state".into(),
        HostTensor::f32(vec![s, d], to_vec_f32(hidden.reshape([s, d]))),
    );
    write_safetensors(&a.out, &t)?;
    println!(
        "wrote {} (seq {s}, vocab {v}, grid {:?})",
        a.out.display(),
        host.grids()[0]
    );
    Ok(())
}
