//! `config.json` of a Qwen2.5-VL checkpoint, in every form transformers has written:
//!
//! * the flat hub file (`Qwen/Qwen2.5-VL-3B-Instruct`, transformers 4.49): text fields at the
//!   top level, `rope_scaling: {type: mrope, mrope_section}`, `rope_theta`,
//!   `vision_config.in_chans`, `torch_dtype`;
//! * fine-tunes saved by transformers 4.5x: the flat fields *and* a `text_config` repeating
//!   them, `rope_scaling: {type: default, rope_type: default, mrope_section}`, vision configs
//!   with both `in_chans` and `in_channels`;
//! * transformers 5.x: text fields under `text_config` with
//!   `rope_parameters: {rope_type, rope_theta, mrope_section}` (a model first loaded from a hub
//!   file keeps the legacy `type: mrope` beside `rope_type: default`), `in_channels`, `dtype`.
//!
//! A field may therefore be spelled in several places: `text_config.X` and top-level `X`;
//! `rope_parameters` and `rope_scaling`; `rope_type` and `type`; `rope_theta` inside or outside
//! the rope dict; `in_chans` and `in_channels`; `patch_size` and `spatial_patch_size`; `dtype`
//! and `torch_dtype`. Every spelling present must agree — two that disagree are an error naming
//! both, never a silent pick. `mrope` and `default` are the same rope type for Qwen2.5-VL
//! (transformers renames one to the other). Unknown keys are ignored; a missing required field
//! is an error naming the field and where it was looked for.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::{LavitError, Result, read_file};
use crate::model::config::{Qwen25VlConfig, TextConfig, VisionConfig};

/// Reads a Qwen2.5-VL `config.json` (any of the forms above).
pub fn load_config(path: impl AsRef<Path>) -> Result<Qwen25VlConfig> {
    let path = path.as_ref();
    let bytes = read_file(path)?;
    parse_config(&bytes).map_err(|message| LavitError::Config {
        path: path.to_path_buf(),
        message,
    })
}

/// A JSON object and the dotted path it sits at (`""` for the top level).
#[derive(Clone, Copy)]
struct Scope<'a> {
    path: &'a str,
    obj: &'a Map<String, Value>,
}

impl<'a> Scope<'a> {
    fn child(&self, key: &str, path: &'a str) -> Option<Scope<'a>> {
        self.obj
            .get(key)
            .and_then(Value::as_object)
            .map(|obj| Scope { path, obj })
    }
    fn label(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }
}

/// A value of one spelling of a field: where it was found, and its value.
struct Found<T> {
    at: String,
    value: T,
}

/// The value of a field spelled `keys` in `scopes`: every non-null spelling is read; two that
/// differ are an error naming both. `same` compares two values (floats by value, so
/// `1e-06` equals `1e-6`).
fn agreed<T: DeserializeOwned + std::fmt::Debug>(
    scopes: &[Scope<'_>],
    keys: &[&str],
    same: impl Fn(&T, &T) -> bool,
) -> std::result::Result<Option<T>, String> {
    let mut first: Option<Found<T>> = None;
    for scope in scopes {
        for key in keys {
            let Some(raw) = scope.obj.get(*key).filter(|v| !v.is_null()) else {
                continue;
            };
            let at = scope.label(key);
            let value: T = serde_json::from_value(raw.clone())
                .map_err(|e| format!("`{at}` = {raw} is not valid: {e}"))?;
            match &first {
                None => first = Some(Found { at, value }),
                Some(f) if !same(&f.value, &value) => {
                    return Err(format!(
                        "`{}` = {:?} and `{at}` = {value:?} disagree; fix the config so that both say the same",
                        f.at, f.value
                    ));
                }
                Some(_) => {}
            }
        }
    }
    Ok(first.map(|f| f.value))
}

fn agreed_eq<T: DeserializeOwned + std::fmt::Debug + PartialEq>(
    scopes: &[Scope<'_>],
    keys: &[&str],
) -> std::result::Result<Option<T>, String> {
    agreed(scopes, keys, |a: &T, b: &T| a == b)
}

/// The largest size field a config may hold (widths, counts, positions, windows): far beyond
/// any real checkpoint (Qwen2.5-VL's largest is its 152,064-token vocabulary), and small enough
/// that products of a few of them cannot overflow.
const MAX_SIZE: usize = 1 << 24;

/// [`agreed_eq`] for a size field, refusing values over [`MAX_SIZE`].
fn agreed_size(scopes: &[Scope<'_>], keys: &[&str]) -> std::result::Result<Option<usize>, String> {
    let v = agreed_eq::<usize>(scopes, keys)?;
    match v {
        Some(n) if n > MAX_SIZE => Err(format!(
            "`{}` = {n} is out of range (at most {MAX_SIZE})",
            keys[0]
        )),
        _ => Ok(v),
    }
}

fn agreed_f64(scopes: &[Scope<'_>], keys: &[&str]) -> std::result::Result<Option<f64>, String> {
    agreed(scopes, keys, |a: &f64, b: &f64| {
        a == b || (a - b).abs() <= 1e-12 * a.abs().max(b.abs())
    })
}

/// `eos_token_id` as a list (transformers writes an integer or a list of integers).
fn eos_list(v: &Value) -> std::result::Result<Vec<u32>, String> {
    match v {
        Value::Number(n) => Ok(vec![
            n.as_u64()
                .and_then(|x| u32::try_from(x).ok())
                .ok_or("eos_token_id must be a non-negative integer")?,
        ]),
        Value::Array(a) => a
            .iter()
            .map(|v| v.as_u64().and_then(|x| u32::try_from(x).ok()))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| "eos_token_id must be an integer or a list of integers".to_string()),
        other => Err(format!("eos_token_id has an unexpected value {other}")),
    }
}

/// The rope type of one rope dict: `type` and `rope_type` must agree up to the
/// `mrope` ≡ `default` renaming, and be one of them.
fn check_rope_type(scope: Scope<'_>) -> std::result::Result<(), String> {
    let canonical = |s: &str| {
        if s == "mrope" {
            "default".to_string()
        } else {
            s.to_string()
        }
    };
    let mut seen: Option<(String, String)> = None;
    for key in ["rope_type", "type"] {
        let Some(v) = scope.obj.get(key).filter(|v| !v.is_null()) else {
            continue;
        };
        let at = scope.label(key);
        let t = v
            .as_str()
            .ok_or_else(|| format!("`{at}` = {v} is not a string"))?;
        if !matches!(t, "mrope" | "default") {
            return Err(format!(
                "`{at}` = `{t}` is not supported (Qwen2.5-VL uses M-RoPE: `mrope` or `default`)"
            ));
        }
        match &seen {
            Some((a, first)) if canonical(first) != canonical(t) => {
                return Err(format!("`{a}` = `{first}` and `{at}` = `{t}` disagree"));
            }
            _ => seen = Some((at, t.to_string())),
        }
    }
    Ok(())
}

const KNOWN_DTYPES: [&str; 3] = ["bfloat16", "float16", "float32"];

/// Parses the bytes of a `config.json`; the error is a one-line reason.
pub fn parse_config(bytes: &[u8]) -> std::result::Result<Qwen25VlConfig, String> {
    let root: Value = serde_json::from_slice(bytes).map_err(|e| format!("invalid JSON: {e}"))?;
    let top = Scope {
        path: "",
        obj: root
            .as_object()
            .ok_or("the top level of config.json is not an object")?,
    };
    if let Some(mt) = top.obj.get("model_type") {
        let mt = mt.as_str().unwrap_or_default();
        if mt != "qwen2_5_vl" {
            return Err(format!(
                "model_type is `{mt}`, expected `qwen2_5_vl` (Qwen2.5-VL)"
            ));
        }
    }
    let nested = top.child("text_config", "text_config");
    let text = parse_text(top, nested)?;
    let vision = parse_vision(
        top.child("vision_config", "vision_config")
            .ok_or("missing field `vision_config`")?,
    )?;
    // Top-level fields; a copy inside `text_config` must agree.
    let top_first: Vec<Scope<'_>> = [top].into_iter().chain(nested).collect();
    let id = |key: &str, default: u32| -> std::result::Result<u32, String> {
        Ok(agreed_eq::<u32>(&top_first, &[key])?.unwrap_or(default))
    };
    let tie = agreed_eq::<bool>(&top_first, &["tie_word_embeddings"])?.unwrap_or(false);
    let cfg = Qwen25VlConfig {
        text,
        vision,
        image_token_id: id("image_token_id", 151_655)?,
        video_token_id: id("video_token_id", 151_656)?,
        vision_start_token_id: id("vision_start_token_id", 151_652)?,
        vision_end_token_id: id("vision_end_token_id", 151_653)?,
        tie_word_embeddings: tie,
    };
    cfg.validate()?;
    Ok(cfg)
}

/// The text decoder's fields: `text_config.X` (transformers ≥ 4.5x) and top-level `X` (hub,
/// 4.x), which must agree where both are present.
fn parse_text(
    top: Scope<'_>,
    nested: Option<Scope<'_>>,
) -> std::result::Result<TextConfig, String> {
    let text_scopes: Vec<Scope<'_>> = nested.into_iter().chain([top]).collect();
    let where_ = if nested.is_some() {
        "text_config and the top level"
    } else {
        "the top level"
    };
    let required = |key: &str| {
        agreed_eq::<usize>(&text_scopes, &[key])?
            .ok_or_else(|| format!("missing field `{key}` (looked in {where_})"))
    };
    let num = |key: &str| agreed_size(&text_scopes, &[key]);
    let (mrope_section, rope_theta) = parse_rope(&text_scopes)?;
    if agreed_eq::<bool>(&text_scopes, &["use_sliding_window"])? == Some(true) {
        return Err("use_sliding_window = true is not supported".into());
    }
    let eos = agreed(&text_scopes, &["eos_token_id"], |a: &Value, b: &Value| {
        eos_list(a).ok() == eos_list(b).ok()
    })?;
    let eos_token_id = eos.as_ref().map(eos_list).transpose()?.unwrap_or_default();
    let dtype = agreed_eq::<String>(&text_scopes, &["dtype", "torch_dtype"])?;
    if let Some(d) = &dtype
        && !KNOWN_DTYPES.contains(&d.as_str())
    {
        return Err(format!(
            "dtype `{d}` is not one of {}",
            KNOWN_DTYPES.join(", ")
        ));
    }
    let num_attention_heads = required("num_attention_heads")?;
    Ok(TextConfig {
        vocab_size: required("vocab_size")?,
        hidden_size: required("hidden_size")?,
        intermediate_size: required("intermediate_size")?,
        num_hidden_layers: required("num_hidden_layers")?,
        num_attention_heads,
        num_key_value_heads: num("num_key_value_heads")?.unwrap_or(num_attention_heads),
        rms_norm_eps: agreed_f64(&text_scopes, &["rms_norm_eps"])?.unwrap_or(1e-6),
        rope_theta,
        mrope_section,
        max_position_embeddings: num("max_position_embeddings")?.unwrap_or(128_000),
        hidden_act: agreed_eq(&text_scopes, &["hidden_act"])?.unwrap_or_else(|| "silu".into()),
        bos_token_id: agreed_eq(&text_scopes, &["bos_token_id"])?,
        eos_token_id,
    })
}

/// `(mrope_section, rope_theta)` from `rope_parameters` (5.x) and `rope_scaling` (4.x), in
/// any of the text scopes; `rope_theta` also beside them.
fn parse_rope(text_scopes: &[Scope<'_>]) -> std::result::Result<(Vec<usize>, f64), String> {
    let mut rope_scopes = Vec::new();
    for scope in text_scopes {
        for (key, label) in [
            ("rope_parameters", scope.label("rope_parameters")),
            ("rope_scaling", scope.label("rope_scaling")),
        ] {
            if let Some(obj) = scope.obj.get(key).and_then(Value::as_object) {
                rope_scopes.push((label, obj));
            }
        }
    }
    let rope_scopes: Vec<Scope<'_>> = rope_scopes
        .iter()
        .map(|(path, obj)| Scope {
            path: path.as_str(),
            obj,
        })
        .collect();
    for scope in &rope_scopes {
        check_rope_type(*scope)?;
    }
    let mrope_section =
        agreed_eq::<Vec<usize>>(&rope_scopes, &["mrope_section"])?.ok_or_else(|| {
            "missing field `mrope_section` (looked in rope_parameters / rope_scaling)".to_string()
        })?;
    if let Some(n) = mrope_section.iter().find(|&&n| n > MAX_SIZE) {
        return Err(format!(
            "`mrope_section` holds {n}, out of range (at most {MAX_SIZE})"
        ));
    }
    let theta_scopes: Vec<Scope<'_>> = rope_scopes.iter().chain(text_scopes).copied().collect();
    let rope_theta = agreed_f64(&theta_scopes, &["rope_theta"])?.unwrap_or(1_000_000.0);
    Ok((mrope_section, rope_theta))
}

/// The vision tower's fields (`vision_config`; both spellings of a renamed field must agree).
fn parse_vision(vision_scope: Scope<'_>) -> std::result::Result<VisionConfig, String> {
    let vs = [vision_scope];
    let vnum = |keys: &[&str]| agreed_size(&vs, keys);
    let vreq =
        |key: &str| vnum(&[key])?.ok_or_else(|| format!("missing field `vision_config.{key}`"));
    let vision_rope: Vec<Scope<'_>> = vision_scope
        .child("rope_parameters", "vision_config.rope_parameters")
        .into_iter()
        .collect();
    Ok(VisionConfig {
        depth: vreq("depth")?,
        hidden_size: vreq("hidden_size")?,
        intermediate_size: vreq("intermediate_size")?,
        num_heads: vreq("num_heads")?,
        in_channels: vnum(&["in_channels", "in_chans"])?.unwrap_or(3),
        patch_size: vnum(&["patch_size", "spatial_patch_size"])?.unwrap_or(14),
        spatial_merge_size: vnum(&["spatial_merge_size"])?.unwrap_or(2),
        temporal_patch_size: vnum(&["temporal_patch_size"])?.unwrap_or(2),
        window_size: vnum(&["window_size"])?.unwrap_or(112),
        out_hidden_size: vreq("out_hidden_size")?,
        fullatt_block_indexes: agreed_eq(&vs, &["fullatt_block_indexes"])?
            .ok_or("missing field `vision_config.fullatt_block_indexes`")?,
        tokens_per_second: vnum(&["tokens_per_second"])?.unwrap_or(2),
        rope_theta: agreed_f64(&vision_rope, &["rope_theta"])?.unwrap_or(10_000.0),
        hidden_act: agreed_eq(&vs, &["hidden_act"])?.unwrap_or_else(|| "silu".into()),
    })
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

    /// The file `Qwen2_5_VLForConditionalGeneration.save_pretrained` writes under
    /// transformers 5.24 for a model first loaded from a hub config (abridged to the fields
    /// that matter): both `rope_type` and `type`, both `in_chans` and `in_channels`.
    const SAVED_5_24: &str = r#"{
      "architectures": ["Qwen2_5_VLForConditionalGeneration"], "dtype": "bfloat16",
      "image_token_id": 262, "model_type": "qwen2_5_vl",
      "text_config": {"bos_token_id": 256, "dtype": "bfloat16", "eos_token_id": 258,
        "hidden_act": "silu", "hidden_size": 64, "intermediate_size": 96,
        "max_position_embeddings": 4096, "num_attention_heads": 4, "num_hidden_layers": 3,
        "num_key_value_heads": 2, "pad_token_id": null, "rms_norm_eps": 1e-06,
        "rope_parameters": {"mrope_section": [2, 3, 3], "rope_theta": 1000000.0,
          "rope_type": "default", "type": "mrope"},
        "sliding_window": null, "use_sliding_window": false, "vocab_size": 300},
      "tie_word_embeddings": false, "transformers_version": "5.24.0", "video_token_id": 263,
      "vision_config": {"depth": 4, "dtype": "bfloat16", "fullatt_block_indexes": [1, 3],
        "hidden_act": "silu", "hidden_size": 32, "in_channels": 3, "in_chans": 3,
        "intermediate_size": 48, "num_heads": 2, "out_hidden_size": 64, "patch_size": 14,
        "rope_parameters": {"rope_theta": 10000.0, "rope_type": "axial"},
        "spatial_merge_size": 2, "spatial_patch_size": 14, "temporal_patch_size": 2,
        "tokens_per_second": 2, "window_size": 112},
      "vision_end_token_id": 260, "vision_start_token_id": 259
    }"#;

    #[test]
    fn config_saved_by_transformers_5_24() {
        let c = parse_config(SAVED_5_24.as_bytes()).unwrap();
        assert_eq!(c.text.mrope_section, vec![2, 3, 3]);
        assert_eq!(c.text.rope_theta, 1e6);
        assert_eq!(c.vision.in_channels, 3);
        assert_eq!(c.text.eos_token_id, vec![258]);
        assert_eq!(c.image_token_id, 262);
        assert!(!c.tie_word_embeddings);
    }

    /// transformers 4.5x fine-tunes: flat fields, a `text_config` repeating them, and
    /// `rope_scaling` with `type` and `rope_type` both `default`.
    #[test]
    fn flat_plus_text_config_of_4_5x() {
        let mut v: Value = serde_json::from_str(FLAT).unwrap();
        let rope = serde_json::json!({"mrope_section": [16, 24, 24], "rope_type": "default", "type": "default"});
        v["rope_scaling"] = rope.clone();
        v["torch_dtype"] = "bfloat16".into();
        let mut text = v.clone();
        text.as_object_mut().unwrap().remove("vision_config");
        v["text_config"] = text;
        v["vision_config"]["in_channels"] = 3.into();
        let c = parse_config(&serde_json::to_vec(&v).unwrap()).unwrap();
        assert_eq!(c, parse_config(FLAT.as_bytes()).unwrap());
    }

    fn err_of(edit: impl FnOnce(&mut Value)) -> String {
        let mut v: Value = serde_json::from_str(SAVED_5_24).unwrap();
        edit(&mut v);
        parse_config(&serde_json::to_vec(&v).unwrap()).unwrap_err()
    }

    #[test]
    fn disagreeing_spellings_are_errors_naming_both() {
        let e = err_of(|v| {
            v["rope_scaling"] = serde_json::json!({"type": "mrope", "mrope_section": [4, 2, 2]});
        });
        assert!(
            e.contains("text_config.rope_parameters.mrope_section")
                && e.contains("`rope_scaling.mrope_section`")
                && e.contains("disagree"),
            "{e}"
        );
        let e = err_of(|v| v["vision_config"]["in_chans"] = 4.into());
        assert!(
            e.contains("vision_config.in_channels") && e.contains("vision_config.in_chans"),
            "{e}"
        );
        let e = err_of(|v| v["hidden_size"] = 128.into());
        assert!(
            e.contains("text_config.hidden_size") && e.contains("`hidden_size` = 128"),
            "{e}"
        );
        let e = err_of(|v| v["torch_dtype"] = "float16".into());
        assert!(e.contains("dtype") && e.contains("torch_dtype"), "{e}");
        let e = err_of(|v| v["text_config"]["rope_theta"] = 5e5.into());
        assert!(
            e.contains("text_config.rope_parameters.rope_theta")
                && e.contains("`text_config.rope_theta` = 500000.0"),
            "{e}"
        );
        // Agreeing spellings in different number formats are not a conflict.
        let ok = {
            let mut v: Value = serde_json::from_str(SAVED_5_24).unwrap();
            v["text_config"]["rope_theta"] = serde_json::json!(1e6);
            v["text_config"]["rms_norm_eps"] = serde_json::json!(0.000001);
            v["eos_token_id"] = serde_json::json!([258]);
            parse_config(&serde_json::to_vec(&v).unwrap())
        };
        assert!(ok.is_ok(), "{ok:?}");
    }

    #[test]
    fn unsupported_rope_types_are_named() {
        let e = err_of(|v| v["text_config"]["rope_parameters"]["type"] = "yarn".into());
        assert!(
            e.contains("text_config.rope_parameters.type") && e.contains("yarn"),
            "{e}"
        );
        let e = err_of(|v| v["dtype"] = "float8_e4m3".into());
        assert!(e.contains("float8_e4m3"), "{e}");
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
