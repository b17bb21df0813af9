//! The Visual-CoT JSON layout (LLaVA-style conversations), read by extraction and training:
//!
//! ```json
//! [{"question_id": "42", "image": ["coco/000001.jpg"],
//!   "conversations": [{"from": "human", "value": "<image>\nWhat is left of the cup?"},
//!                     {"from": "gpt", "value": "A spoon."}],
//!   "regions": [[x0, y0, x1, y1], ...]}]
//! ```
//!
//! `image` may be a string or a list (the first entry is used); `id` / `question_id` /
//! `sample_id` name the sample; the question is the first human turn without `<image>`, the
//! answer the last gpt turn. Any other fields (`regions`, `bboxs`, …) are kept in `extra`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{LavitError, Result};

/// One (image, question, answer) sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub id: String,
    /// Image path relative to the images root.
    pub image: String,
    pub question: String,
    pub answer: String,
    /// Remaining fields of the record (e.g. ground-truth `regions`).
    #[serde(default)]
    pub extra: Value,
}

#[derive(Deserialize)]
struct Turn {
    from: String,
    value: String,
}

fn parse_record(i: usize, v: &Value) -> std::result::Result<Sample, String> {
    let obj = v
        .as_object()
        .ok_or_else(|| format!("record {i} is not an object"))?;
    let id = ["id", "question_id", "sample_id"]
        .iter()
        .find_map(|k| obj.get(*k))
        .map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .unwrap_or_else(|| format!("{i}"));
    let image = match obj.get("image") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(a)) => a
            .first()
            .and_then(|x| x.as_str())
            .ok_or_else(|| format!("record {id}: `image` list is empty"))?
            .to_string(),
        _ => return Err(format!("record {id}: missing `image`")),
    };
    let turns: Vec<Turn> = serde_json::from_value(
        obj.get("conversations")
            .cloned()
            .ok_or_else(|| format!("record {id}: missing `conversations`"))?,
    )
    .map_err(|e| format!("record {id}: bad `conversations` ({e})"))?;
    let question = turns
        .iter()
        .find(|t| t.from == "human" || t.from == "user")
        .ok_or_else(|| format!("record {id}: no human turn"))?
        .value
        .replace("<image>", "")
        .trim()
        .to_string();
    let answer = turns
        .iter()
        .rev()
        .find(|t| t.from == "gpt" || t.from == "assistant")
        .ok_or_else(|| format!("record {id}: no gpt turn"))?
        .value
        .trim()
        .to_string();
    let mut extra = obj.clone();
    for k in ["id", "question_id", "sample_id", "image", "conversations"] {
        extra.remove(k);
    }
    Ok(Sample {
        id,
        image,
        question,
        answer,
        extra: Value::Object(extra),
    })
}

/// Reads a Visual-CoT JSON file (a JSON array, or JSON lines).
pub fn read_viscot(path: &Path) -> Result<Vec<Sample>> {
    let bytes = crate::error::read_file(path)?;
    let text = String::from_utf8(bytes)
        .map_err(|_| LavitError::Invalid(format!("{}: not UTF-8", path.display())))?;
    let err = |message: String| LavitError::Invalid(format!("{}: {message}", path.display()));
    let values: Vec<Value> = if text.trim_start().starts_with('[') {
        serde_json::from_str(&text).map_err(|source| LavitError::Json {
            path: path.to_path_buf(),
            source,
        })?
    } else {
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .enumerate()
            .map(|(i, l)| serde_json::from_str(l).map_err(|e| err(format!("line {}: {e}", i + 1))))
            .collect::<Result<_>>()?
    };
    let samples: Vec<Sample> = values
        .iter()
        .enumerate()
        .map(|(i, v)| parse_record(i, v).map_err(err))
        .collect::<Result<_>>()?;
    let mut seen = std::collections::HashSet::new();
    for s in &samples {
        if !seen.insert(&s.id) {
            return Err(err(format!("duplicate sample id `{}`", s.id)));
        }
    }
    Ok(samples)
}

/// Writes samples in the Visual-CoT layout (what [`read_viscot`] reads).
pub fn write_viscot(path: &Path, samples: &[Sample]) -> Result<()> {
    let values: Vec<Value> = samples
        .iter()
        .map(|s| {
            let mut o = serde_json::Map::new();
            o.insert("question_id".into(), Value::String(s.id.clone()));
            o.insert(
                "image".into(),
                Value::Array(vec![Value::String(s.image.clone())]),
            );
            o.insert(
                "conversations".into(),
                serde_json::json!([
                    {"from": "human", "value": format!("<image>\n{}", s.question)},
                    {"from": "gpt", "value": s.answer},
                ]),
            );
            if let Value::Object(extra) = &s.extra {
                for (k, v) in extra {
                    o.insert(k.clone(), v.clone());
                }
            }
            Value::Object(o)
        })
        .collect();
    let bytes = serde_json::to_vec_pretty(&values).expect("samples serialise");
    crate::io::checkpoint::write_atomic(path, &bytes)
}

/// `root/image` for a sample.
pub fn image_path(root: &Path, s: &Sample) -> PathBuf {
    root.join(&s.image)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_layouts() {
        let dir = std::env::temp_dir().join(format!("lavit-viscot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("a.json");
        std::fs::write(
            &p,
            r#"[{"question_id": 7, "image": ["x.jpg"], "dataset": "gqa",
                 "conversations": [{"from": "human", "value": "<image>\nWhat?"}, {"from": "gpt", "value": "That."}]}]"#,
        )
        .unwrap();
        let s = read_viscot(&p).unwrap();
        assert_eq!(s[0].id, "7");
        assert_eq!(s[0].question, "What?");
        assert_eq!(s[0].answer, "That.");
        assert_eq!(s[0].extra["dataset"], "gqa");
        write_viscot(&dir.join("b.json"), &s).unwrap();
        let back = read_viscot(&dir.join("b.json")).unwrap();
        assert_eq!(back[0].question, "What?");
        std::fs::write(&p, "{\"image\": \"y.png\"}\n").unwrap();
        assert!(
            read_viscot(&p)
                .unwrap_err()
                .to_string()
                .contains("conversations")
        );
        std::fs::write(&p, "[{\"image\": ").unwrap();
        assert!(read_viscot(&p).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
