//! `config.json` of a Qwen2.5-VL checkpoint, in both forms found in the wild:
//!
//! * the flat hub file (`Qwen/Qwen2.5-VL-3B-Instruct`): text fields at the top level,
//!   `rope_scaling: {type: mrope, mrope_section}`, `rope_theta`, `vision_config.in_chans`;
//! * the nested file written by transformers ≥ 4.5x / 5.x: `text_config: {...}` with
//!   `rope_parameters: {rope_theta, mrope_section}`, `vision_config.in_channels`.
//!
//! Both are read into the same [`Qwen25VlConfig`]. A missing required field is an error naming
//! the field and where it was looked for.

use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use crate::error::{LavitError, Result, read_file};
use crate::model::config::{Qwen25VlConfig, TextConfig, VisionConfig};

/// Text fields, as they appear either at the top level (flat) or under `text_config`.
#[derive(Debug, Default, Deserialize)]
struct RawText {
    vocab_size: Option<usize>,
    hidden_size: Option<usize>,
    intermediate_size: Option<usize>,
    num_hidden_layers: Option<usize>,
    num_attention_heads: Option<usize>,
    num_key_value_heads: Option<usize>,
    rms_norm_eps: Option<f64>,
    rope_theta: Option<f64>,
    rope_scaling: Option<RawRope>,
    rope_parameters: Option<RawRope>,
    max_position_embeddings: Option<usize>,
    hidden_act: Option<String>,
    bos_token_id: Option<u32>,
    eos_token_id: Option<Value>,
    tie_word_embeddings: Option<bool>,
    use_sliding_window: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
struct RawRope {
    mrope_section: Option<Vec<usize>>,
    rope_theta: Option<f64>,
    #[serde(alias = "type")]
    rope_type: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawVision {
    depth: Option<usize>,
    hidden_size: Option<usize>,
    intermediate_size: Option<usize>,
    num_heads: Option<usize>,
    #[serde(alias = "in_chans")]
    in_channels: Option<usize>,
    patch_size: Option<usize>,
    spatial_merge_size: Option<usize>,
    temporal_patch_size: Option<usize>,
    window_size: Option<usize>,
    out_hidden_size: Option<usize>,
    fullatt_block_indexes: Option<Vec<usize>>,
    tokens_per_second: Option<usize>,
    hidden_act: Option<String>,
    rope_parameters: Option<RawRope>,
}

#[derive(Debug, Deserialize)]
struct RawTop {
    model_type: Option<String>,
    text_config: Option<RawText>,
    vision_config: Option<RawVision>,
    image_token_id: Option<u32>,
    video_token_id: Option<u32>,
    vision_start_token_id: Option<u32>,
    vision_end_token_id: Option<u32>,
    tie_word_embeddings: Option<bool>,
    #[serde(flatten)]
    flat: RawText,
}

/// Reads a Qwen2.5-VL `config.json` (flat or nested form).
pub fn load_config(path: impl AsRef<Path>) -> Result<Qwen25VlConfig> {
    let path = path.as_ref();
    let bytes = read_file(path)?;
    parse_config(&bytes).map_err(|message| LavitError::Config {
        path: path.to_path_buf(),
        message,
    })
}

/// Parses the bytes of a `config.json`; the error is a one-line reason.
pub fn parse_config(bytes: &[u8]) -> std::result::Result<Qwen25VlConfig, String> {
    let raw: RawTop = serde_json::from_slice(bytes).map_err(|e| format!("invalid JSON: {e}"))?;
    if let Some(mt) = &raw.model_type
        && mt != "qwen2_5_vl"
    {
        return Err(format!(
            "model_type is `{mt}`, expected `qwen2_5_vl` (Qwen2.5-VL)"
        ));
    }
    let nested = raw.text_config.as_ref();
    let flat = &raw.flat;
    let where_ = if nested.is_some() {
        "text_config or the top level"
    } else {
        "the top level"
    };
    // Nested wins over flat (transformers 5 writes both kinds of keys in some files).
    macro_rules! text {
        ($f:ident) => {
            nested
                .and_then(|t| t.$f.clone())
                .or_else(|| flat.$f.clone())
        };
    }
    macro_rules! req {
        ($f:ident) => {
            text!($f).ok_or_else(|| {
                format!("missing field `{}` (looked in {})", stringify!($f), where_)
            })?
        };
    }
    let rope = nested
        .and_then(|t| t.rope_parameters.as_ref().or(t.rope_scaling.as_ref()))
        .or(flat.rope_parameters.as_ref())
        .or(flat.rope_scaling.as_ref());
    let mrope_section = rope.and_then(|r| r.mrope_section.clone()).ok_or_else(|| {
        "missing field `mrope_section` (looked in rope_scaling / rope_parameters)".to_string()
    })?;
    let rope_theta = rope
        .and_then(|r| r.rope_theta)
        .or_else(|| text!(rope_theta))
        .unwrap_or(1_000_000.0);
    if let Some(rt) = rope.and_then(|r| r.rope_type.as_deref())
        && !matches!(rt, "mrope" | "default")
    {
        return Err(format!("rope type `{rt}` is not supported (mrope only)"));
    }
    if text!(use_sliding_window) == Some(true) {
        return Err("use_sliding_window = true is not supported".into());
    }
    let num_attention_heads: usize = req!(num_attention_heads);
    let eos_token_id = match text!(eos_token_id) {
        None | Some(Value::Null) => vec![],
        Some(Value::Number(n)) => vec![n.as_u64().ok_or("eos_token_id must be an integer")? as u32],
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| v.as_u64().map(|x| x as u32))
            .collect::<Option<Vec<_>>>()
            .ok_or("eos_token_id must be an integer or a list of integers")?,
        Some(other) => return Err(format!("eos_token_id has an unexpected value {other}")),
    };
    let text = TextConfig {
        vocab_size: req!(vocab_size),
        hidden_size: req!(hidden_size),
        intermediate_size: req!(intermediate_size),
        num_hidden_layers: req!(num_hidden_layers),
        num_attention_heads,
        num_key_value_heads: text!(num_key_value_heads).unwrap_or(num_attention_heads),
        rms_norm_eps: text!(rms_norm_eps).unwrap_or(1e-6),
        rope_theta,
        mrope_section,
        max_position_embeddings: text!(max_position_embeddings).unwrap_or(128_000),
        hidden_act: text!(hidden_act).unwrap_or_else(|| "silu".into()),
        bos_token_id: text!(bos_token_id),
        eos_token_id,
    };
    let rv = raw.vision_config.ok_or("missing field `vision_config`")?;
    macro_rules! vreq {
        ($f:ident) => {
            rv.$f
                .clone()
                .ok_or_else(|| format!("missing field `vision_config.{}`", stringify!($f)))?
        };
    }
    let vision = VisionConfig {
        depth: vreq!(depth),
        hidden_size: vreq!(hidden_size),
        intermediate_size: vreq!(intermediate_size),
        num_heads: vreq!(num_heads),
        in_channels: rv.in_channels.unwrap_or(3),
        patch_size: rv.patch_size.unwrap_or(14),
        spatial_merge_size: rv.spatial_merge_size.unwrap_or(2),
        temporal_patch_size: rv.temporal_patch_size.unwrap_or(2),
        window_size: rv.window_size.unwrap_or(112),
        out_hidden_size: vreq!(out_hidden_size),
        fullatt_block_indexes: vreq!(fullatt_block_indexes),
        tokens_per_second: rv.tokens_per_second.unwrap_or(2),
        rope_theta: rv
            .rope_parameters
            .as_ref()
            .and_then(|r| r.rope_theta)
            .unwrap_or(10_000.0),
        hidden_act: rv.hidden_act.clone().unwrap_or_else(|| "silu".into()),
    };
    let tie = raw
        .tie_word_embeddings
        .or(nested.and_then(|t| t.tie_word_embeddings))
        .unwrap_or(false);
    let cfg = Qwen25VlConfig {
        text,
        vision,
        image_token_id: raw.image_token_id.unwrap_or(151_655),
        video_token_id: raw.video_token_id.unwrap_or(151_656),
        vision_start_token_id: raw.vision_start_token_id.unwrap_or(151_652),
        vision_end_token_id: raw.vision_end_token_id.unwrap_or(151_653),
        tie_word_embeddings: tie,
    };
    cfg.validate()?;
    Ok(cfg)
}

/// Writes `cfg` as a nested (transformers 5 style) `config.json` value, which both HF and
/// [`parse_config`] read back. `extra` is merged at the top level (e.g. LaViT fields).
pub fn to_hf_json(cfg: &Qwen25VlConfig, extra: Option<&Value>) -> Value {
    let t = &cfg.text;
    let v = &cfg.vision;
    let mut top = serde_json::json!({
        "architectures": ["Qwen2_5_VLForConditionalGeneration"],
        "model_type": "qwen2_5_vl",
        "image_token_id": cfg.image_token_id,
        "video_token_id": cfg.video_token_id,
        "vision_start_token_id": cfg.vision_start_token_id,
        "vision_end_token_id": cfg.vision_end_token_id,
        "tie_word_embeddings": cfg.tie_word_embeddings,
        "text_config": {
            "model_type": "qwen2_5_vl_text",
            "vocab_size": t.vocab_size,
            "hidden_size": t.hidden_size,
            "intermediate_size": t.intermediate_size,
            "num_hidden_layers": t.num_hidden_layers,
            "num_attention_heads": t.num_attention_heads,
            "num_key_value_heads": t.num_key_value_heads,
            "rms_norm_eps": t.rms_norm_eps,
            "max_position_embeddings": t.max_position_embeddings,
            "hidden_act": t.hidden_act,
            "bos_token_id": t.bos_token_id,
            "eos_token_id": t.eos_token_id,
            "tie_word_embeddings": cfg.tie_word_embeddings,
            "use_sliding_window": false,
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": t.rope_theta,
                "mrope_section": t.mrope_section,
            },
        },
        "vision_config": {
            "model_type": "qwen2_5_vl_vision",
            "depth": v.depth,
            "hidden_size": v.hidden_size,
            "intermediate_size": v.intermediate_size,
            "num_heads": v.num_heads,
            "in_channels": v.in_channels,
            "patch_size": v.patch_size,
            "spatial_merge_size": v.spatial_merge_size,
            "temporal_patch_size": v.temporal_patch_size,
            "window_size": v.window_size,
            "out_hidden_size": v.out_hidden_size,
            "fullatt_block_indexes": v.fullatt_block_indexes,
            "tokens_per_second": v.tokens_per_second,
            "hidden_act": v.hidden_act,
            "rope_parameters": {"rope_type": "axial", "rope_theta": v.rope_theta},
        },
    });
    if let (Some(Value::Object(extra)), Value::Object(top)) = (extra, &mut top) {
        for (k, val) in extra {
            top.insert(k.clone(), val.clone());
        }
    }
    top
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLAT: &str = r#"{
      "architectures": ["Qwen2_5_VLForConditionalGeneration"], "model_type": "qwen2_5_vl",
      "bos_token_id": 151643, "eos_token_id": 151645, "hidden_act": "silu", "hidden_size": 2048,
      "image_token_id": 151655, "intermediate_size": 11008, "max_position_embeddings": 128000,
      "num_attention_heads": 16, "num_hidden_layers": 36, "num_key_value_heads": 2,
      "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "tie_word_embeddings": true,
      "use_sliding_window": false, "vocab_size": 151936,
      "vision_start_token_id": 151652, "vision_end_token_id": 151653, "video_token_id": 151656,
      "vision_config": {"depth": 32, "hidden_act": "silu", "hidden_size": 1280,
        "intermediate_size": 3420, "num_heads": 16, "in_chans": 3, "out_hidden_size": 2048,
        "patch_size": 14, "spatial_merge_size": 2, "spatial_patch_size": 14, "window_size": 112,
        "fullatt_block_indexes": [7, 15, 23, 31], "tokens_per_second": 2, "temporal_patch_size": 2},
      "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]}
    }"#;

    #[test]
    fn flat_hub_config_of_3b() {
        let c = parse_config(FLAT.as_bytes()).unwrap();
        assert_eq!(c.text.hidden_size, 2048);
        assert_eq!(c.text.num_key_value_heads, 2);
        assert_eq!(c.text.mrope_section, vec![16, 24, 24]);
        assert!(c.tie_word_embeddings);
        assert_eq!(c.vision.fullatt_block_indexes, vec![7, 15, 23, 31]);
        assert_eq!(c.vision.merger_window_size(), 4);
        let counts = c.param_counts();
        // Qwen2.5-VL-3B has 3.75 B parameters (tied embeddings).
        assert!(
            (3.7e9..3.8e9).contains(&(counts.total as f64)),
            "{counts:?}"
        );
    }

    #[test]
    fn nested_round_trip() {
        let c = parse_config(FLAT.as_bytes()).unwrap();
        let v = to_hf_json(&c, None);
        let back = parse_config(serde_json::to_vec(&v).unwrap().as_slice()).unwrap();
        assert_eq!(c, back);
    }

    #[test]
    fn missing_field_names_it() {
        let broken = FLAT.replace("\"hidden_size\": 2048,", "");
        let err = parse_config(broken.as_bytes()).unwrap_err();
        assert!(err.contains("`hidden_size`"), "{err}");
        let broken = FLAT.replace(
            "\"rope_scaling\": {\"type\": \"mrope\", \"mrope_section\": [16, 24, 24]}",
            "\"x\": 1",
        );
        let err = parse_config(broken.as_bytes()).unwrap_err();
        assert!(err.contains("mrope_section"), "{err}");
    }

    #[test]
    fn wrong_model_type_is_rejected() {
        let other = FLAT.replace("\"qwen2_5_vl\"", "\"llama\"");
        assert!(
            parse_config(other.as_bytes())
                .unwrap_err()
                .contains("llama")
        );
    }
}
