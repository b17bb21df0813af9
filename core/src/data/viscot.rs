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
//! answer the last gpt turn, with `<answer>…</answer>` tags removed. Any other fields
//! (`regions`, `bboxs`, …) are kept in `extra`.
//!
//! Visual-CoT as published (`deepcs233/Visual-CoT`) has a chain-of-thought turn before the
//! answer: the human asks the question and "Please provide the bounding box coordinate of the
//! region that can help you answer the question better.", the gpt turn gives the box
//! (`[0.38, 0.34, 0.61, 0.63]`), the human sends the cropped region (`<image>`), the last gpt
//! turn answers. Such a record becomes the question without that instruction, the answer, and
//! the steps `[box, answer]`: the teacher's trajectory is taken over both, the student learns
//! the answer.

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
    /// The answer the student learns.
    pub answer: String,
    /// The reasoning steps the data gives (Visual-CoT's box turn, then the answer); empty when
    /// the answer is split into steps by sentences or lines.
    #[serde(default)]
    pub steps: Vec<String>,
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
    let mut question = turns
        .iter()
        .find(|t| t.from == "human" || t.from == "user")
        .ok_or_else(|| format!("record {id}: no human turn"))?
        .value
        .replace("<image>", "")
        .trim()
        .to_string();
    let gpt: Vec<String> = turns
        .iter()
        .filter(|t| t.from == "gpt" || t.from == "assistant")
        .map(|t| strip_answer_tags(&t.value))
        .collect();
    let answer = gpt
        .last()
        .cloned()
        .ok_or_else(|| format!("record {id}: no gpt turn"))?;
    if answer.is_empty() {
        return Err(format!("record {id}: the answer is empty"));
    }
    let steps = if gpt.len() > 1 {
        if let Some(q) = question.strip_suffix(BBOX_INSTRUCTION) {
            question = q.trim().to_string();
        }
        gpt
    } else {
        vec![]
    };
    let mut extra = obj.clone();
    for k in ["id", "question_id", "sample_id", "image", "conversations"] {
        extra.remove(k);
    }
    Ok(Sample {
        id,
        image,
        question,
        answer,
        steps,
        extra: Value::Object(extra),
    })
}

/// Visual-CoT's request for the chain-of-thought box, appended to its questions.
pub const BBOX_INSTRUCTION: &str = "Please provide the bounding box coordinate of the region that can help you answer the question better.";

/// The text inside `<answer>…</answer>` if the turn has the tags, else the turn, trimmed.
pub fn strip_answer_tags(s: &str) -> String {
    let s = s.trim();
    match (s.find("<answer>"), s.rfind("</answer>")) {
        (Some(a), Some(b)) if b >= a + "<answer>".len() => {
            s[a + "<answer>".len()..b].trim().to_string()
        }
        _ => s
            .replace("<answer>", "")
            .replace("</answer>", "")
            .trim()
            .to_string(),
    }
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
            let mut turns = vec![
                serde_json::json!({"from": "human", "value": format!("<image>\n{}", s.question)}),
            ];
            if s.steps.len() > 1 {
                // The box turn(s), each answered by the cropped region, then the answer.
                turns[0]["value"] = format!("<image>\n{} {BBOX_INSTRUCTION}", s.question).into();
                for step in &s.steps[..s.steps.len() - 1] {
                    turns.push(serde_json::json!({"from": "gpt", "value": step}));
                    turns.push(serde_json::json!({"from": "human", "value": "<image>"}));
                }
            }
            turns.push(serde_json::json!({"from": "gpt", "value": s.answer}));
            o.insert("conversations".into(), Value::Array(turns));
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

    /// The published Visual-CoT records: `<answer>` tags and the box turn before the answer.
    #[test]
    fn visual_cot_as_published() {
        let dir = std::env::temp_dir().join(format!("lavit-viscot-cot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("cot.json");
        std::fs::write(
            &p,
            r#"[{"question_id": "cub_1", "image": ["cub/a.jpg"], "dataset": "cub",
                 "bboxs": [[10, 20, 60, 80]], "width": 100, "height": 100,
                 "conversations": [
                   {"from": "human", "value": "<image>\nWhat is the colour of the bird's wing? Please provide the bounding box coordinate of the region that can help you answer the question better."},
                   {"from": "gpt", "value": "[0.1, 0.2, 0.6, 0.8]"},
                   {"from": "human", "value": "<image>"},
                   {"from": "gpt", "value": "<answer>The wing is black.</answer>"}]},
                {"question_id": "tags", "image": "b.jpg",
                 "conversations": [{"from": "human", "value": "<image>\nHow many?"},
                                   {"from": "gpt", "value": " <answer> Three cats </answer>"}]},
                {"question_id": "plain", "image": "c.jpg",
                 "conversations": [{"from": "human", "value": "<image>\nWhy?"},
                                   {"from": "gpt", "value": "Because. It rains."}]}]"#,
        )
        .unwrap();
        let s = read_viscot(&p).unwrap();
        assert_eq!(s[0].question, "What is the colour of the bird's wing?");
        assert_eq!(s[0].answer, "The wing is black.");
        assert_eq!(
            s[0].steps,
            vec!["[0.1, 0.2, 0.6, 0.8]", "The wing is black."]
        );
        assert_eq!(s[0].extra["bboxs"][0][2], 60);
        assert_eq!((s[1].answer.as_str(), s[1].steps.len()), ("Three cats", 0));
        assert_eq!(
            (s[2].answer.as_str(), s[2].steps.len()),
            ("Because. It rains.", 0)
        );
        // Written back in the same layout, read back the same.
        write_viscot(&dir.join("back.json"), &s).unwrap();
        let back = read_viscot(&dir.join("back.json")).unwrap();
        for (a, b) in s.iter().zip(&back) {
            assert_eq!(
                (&a.question, &a.answer, &a.steps),
                (&b.question, &b.answer, &b.steps)
            );
        }
        std::fs::write(
            &p,
            r#"[{"image": "x.jpg", "conversations": [{"from": "human", "value": "Q?"}, {"from": "gpt", "value": "<answer></answer>"}]}]"#,
        )
        .unwrap();
        assert!(read_viscot(&p).unwrap_err().to_string().contains("empty"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
