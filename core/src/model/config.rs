//! Model configuration: plain serde structs, one per tower, mirroring HF
//! `Qwen2_5_VLVisionConfig` / `Qwen2_5_VLTextConfig` / `Qwen2_5_VLConfig`.
//!
//! Parsing the two on-disk forms of `config.json` (flat hub file, nested `text_config`) lives in
//! [`crate::io::config`]; these structs are what the model code consumes.

use serde::{Deserialize, Serialize};

/// Vision tower (`Qwen2_5_VisionTransformerPretrainedModel`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VisionConfig {
    pub depth: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_heads: usize,
    pub in_channels: usize,
    pub patch_size: usize,
    pub spatial_merge_size: usize,
    pub temporal_patch_size: usize,
    pub window_size: usize,
    pub out_hidden_size: usize,
    pub fullatt_block_indexes: Vec<usize>,
    pub tokens_per_second: usize,
    pub rope_theta: f64,
    pub hidden_act: String,
}

impl VisionConfig {
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_heads
    }
    /// Length of one flattened patch: `C * T * P * P` (1176 for Qwen2.5-VL).
    pub fn patch_dim(&self) -> usize {
        self.in_channels * self.temporal_patch_size * self.patch_size * self.patch_size
    }
    /// Side of one merged (LLM) token in pixels: `patch_size * spatial_merge_size` (28).
    pub fn factor(&self) -> usize {
        self.patch_size * self.spatial_merge_size
    }
    /// Window side in merge units: `window_size / spatial_merge_size / patch_size` (4).
    pub fn merger_window_size(&self) -> usize {
        self.window_size / self.spatial_merge_size / self.patch_size
    }
}

/// Text decoder (`Qwen2_5_VLTextModel`, a Qwen2 decoder with M-RoPE).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    /// Split of the rotary half-dimension over (temporal, height, width) position ids.
    pub mrope_section: Vec<usize>,
    pub max_position_embeddings: usize,
    pub hidden_act: String,
    pub bos_token_id: Option<u32>,
    pub eos_token_id: Vec<u32>,
}

impl TextConfig {
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }
}

/// The whole vision-language model (`Qwen2_5_VLConfig`), teacher or student alike.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Qwen25VlConfig {
    pub text: TextConfig,
    pub vision: VisionConfig,
    pub image_token_id: u32,
    pub video_token_id: u32,
    pub vision_start_token_id: u32,
    pub vision_end_token_id: u32,
    pub tie_word_embeddings: bool,
}

impl Qwen25VlConfig {
    /// Checks the invariants the maths relies on; returns a human-readable reason otherwise.
    pub fn validate(&self) -> Result<(), String> {
        let t = &self.text;
        let v = &self.vision;
        if t.num_attention_heads == 0 || !t.hidden_size.is_multiple_of(t.num_attention_heads) {
            return Err(format!(
                "hidden_size {} is not divisible by num_attention_heads {}",
                t.hidden_size, t.num_attention_heads
            ));
        }
        if t.num_key_value_heads == 0
            || !t.num_attention_heads.is_multiple_of(t.num_key_value_heads)
        {
            return Err(format!(
                "num_attention_heads {} is not a multiple of num_key_value_heads {}",
                t.num_attention_heads, t.num_key_value_heads
            ));
        }
        if !t.head_dim().is_multiple_of(2)
            || t.mrope_section.iter().sum::<usize>() * 2 != t.head_dim()
        {
            return Err(format!(
                "mrope_section {:?} must sum to head_dim/2 = {}",
                t.mrope_section,
                t.head_dim() / 2
            ));
        }
        if t.mrope_section.len() != 3 {
            return Err(format!(
                "mrope_section must have 3 entries (t, h, w), got {:?}",
                t.mrope_section
            ));
        }
        if v.num_heads == 0
            || !v.hidden_size.is_multiple_of(v.num_heads)
            || !v.head_dim().is_multiple_of(4)
        {
            return Err(format!(
                "vision hidden_size {} / num_heads {} must give a head_dim divisible by 4",
                v.hidden_size, v.num_heads
            ));
        }
        if v.merger_window_size() == 0 {
            return Err(format!(
                "vision window_size {} is smaller than one merge unit ({} px)",
                v.window_size,
                v.factor()
            ));
        }
        if v.out_hidden_size != t.hidden_size {
            return Err(format!(
                "vision out_hidden_size {} != text hidden_size {}",
                v.out_hidden_size, t.hidden_size
            ));
        }
        if let Some(&i) = v.fullatt_block_indexes.iter().find(|&&i| i >= v.depth) {
            return Err(format!(
                "fullatt_block_indexes contains {i} but the vision depth is {}",
                v.depth
            ));
        }
        for (name, id) in [
            ("image_token_id", self.image_token_id),
            ("vision_start_token_id", self.vision_start_token_id),
            ("vision_end_token_id", self.vision_end_token_id),
        ] {
            if id as usize >= t.vocab_size {
                return Err(format!(
                    "{name} {id} is outside the vocabulary ({})",
                    t.vocab_size
                ));
            }
        }
        for act in [&t.hidden_act, &v.hidden_act] {
            if act != "silu" {
                return Err(format!("hidden_act `{act}` is not supported (only silu)"));
            }
        }
        Ok(())
    }

    /// Parameter counts by tower, computed from the shapes (what `num_params` would report).
    pub fn param_counts(&self) -> ParamCounts {
        let t = &self.text;
        let v = &self.vision;
        let hd = t.head_dim();
        let attn = t.hidden_size * (t.num_attention_heads * hd)
            + t.num_attention_heads * hd
            + 2 * (t.hidden_size * t.num_key_value_heads * hd + t.num_key_value_heads * hd)
            + t.num_attention_heads * hd * t.hidden_size;
        let mlp = 3 * t.hidden_size * t.intermediate_size;
        let layer = attn + mlp + 2 * t.hidden_size;
        let embed = t.vocab_size * t.hidden_size;
        let lm_head = if self.tie_word_embeddings { 0 } else { embed };
        let text = embed + t.num_hidden_layers * layer + t.hidden_size + lm_head;
        let vd = v.hidden_size;
        let vblock = 2 * vd
            + (vd * 3 * vd + 3 * vd)
            + (vd * vd + vd)
            + 2 * (vd * v.intermediate_size + v.intermediate_size)
            + (v.intermediate_size * vd + vd);
        let merged = vd * v.spatial_merge_size * v.spatial_merge_size;
        let merger = vd + merged * merged + merged + merged * v.out_hidden_size + v.out_hidden_size;
        let vision = v.patch_dim() * vd + v.depth * vblock + merger;
        ParamCounts {
            vision,
            text_layers: t.num_hidden_layers * layer,
            embeddings: embed,
            lm_head,
            total: vision + text,
        }
    }
}

/// Parameter counts of a [`Qwen25VlConfig`], split the way training decisions need them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ParamCounts {
    pub vision: usize,
    pub text_layers: usize,
    pub embeddings: usize,
    pub lm_head: usize,
    pub total: usize,
}
