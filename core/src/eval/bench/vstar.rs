//! V* Bench (Wu & Xie, 2024) as published (`craigwu/vstar_bench` on the HF hub):
//!
//! ```text
//! test_questions.jsonl   {"image": "direct_attributes/sa_4690.jpg",
//!                         "text": "What is the color of the woman's bag?\n(A) black\n(B) white\n…
//!                                  Answer with the option's letter from the given choices directly.",
//!                         "category": "direct_attributes", "question_id": 0, "label": "A"}
//! direct_attributes/sa_4690.jpg (+ sa_4690.json: target_object, bbox, question, options)
//! relative_position/…
//! ```
//!
//! The jsonl is the benchmark. Copies without it still have the per-image json files, whose
//! `options[0]` is the right answer (the V* evaluation scores each option); those questions are
//! asked with the options in the order given, so the answer is `A` — a model that always says
//! `A` scores 100 % on them, which the summary cannot detect; prefer the jsonl.

use std::path::Path;

use serde_json::Value;

use super::{ImageSource, McQuestion, answer_among, bad, parse_inline_options};
use crate::error::{LavitError, Result};

pub const QUESTIONS: &str = "test_questions.jsonl";
pub const CATEGORIES: [&str; 2] = ["direct_attributes", "relative_position"];
const INSTRUCTION: &str = "Answer with the option's letter from the given choices directly.";

pub fn read(root: &Path) -> Result<Vec<McQuestion>> {
    let path = root.join(QUESTIONS);
    if path.is_file() {
        read_jsonl(root, &path)
    } else {
        read_folders(root)
    }
}

fn str_field(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn image_file(root: &Path, rel: &str, path: &Path, line: usize) -> Result<ImageSource> {
    let image = root.join(rel);
    if !image.is_file() {
        return Err(bad(
            path,
            format!("line {line}: image {} not found", image.display()),
        ));
    }
    Ok(ImageSource::File(image))
}

fn read_jsonl(root: &Path, path: &Path) -> Result<Vec<McQuestion>> {
    let text = String::from_utf8(crate::error::read_file(path)?)
        .map_err(|_| bad(path, "not UTF-8 text"))?;
    let mut out = Vec::new();
    for (n, l) in text.lines().enumerate() {
        let line = n + 1;
        if l.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(l)
            .map_err(|e| bad(path, format!("line {line}: invalid JSON ({e})")))?;
        let field = |k: &str| {
            str_field(&v, k).ok_or_else(|| bad(path, format!("line {line}: no `{k}` field")))
        };
        let text = field("text")?;
        // The question is the first line; then "(A) …" lines; then the instruction.
        let body = text.replace(INSTRUCTION, "");
        let (question, opts) = match body.find("\n(A)").or_else(|| body.find("(A)")) {
            Some(p) => (body[..p].trim().to_string(), &body[p..]),
            None => return Err(bad(path, format!("line {line}: no `(A)` option in `text`"))),
        };
        let options = parse_inline_options(opts)
            .ok_or_else(|| bad(path, format!("line {line}: options are not `(A) … (B) …`")))?;
        let label = field("label")?;
        let answer = answer_among(&label, &options).ok_or_else(|| {
            bad(
                path,
                format!("line {line}: label `{label}` is not one of the options"),
            )
        })?;
        let image = field("image")?;
        out.push(McQuestion {
            id: field("question_id").unwrap_or_else(|_| line.to_string()),
            task: str_field(&v, "category")
                .or_else(|| image.split('/').next().map(str::to_string))
                .unwrap_or_else(|| "vstar".into()),
            images: vec![image_file(root, &image, path, line)?],
            question,
            options,
            answer,
            pair: None,
        });
    }
    Ok(out)
}

fn read_folders(root: &Path) -> Result<Vec<McQuestion>> {
    let mut out = Vec::new();
    let mut found_any = false;
    for cat in CATEGORIES {
        let dir = root.join(cat);
        if !dir.is_dir() {
            continue;
        }
        found_any = true;
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .map_err(|e| LavitError::io(&dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        for f in files {
            let v: Value = crate::error::read_json(&f)?;
            let question = str_field(&v, "question").ok_or_else(|| bad(&f, "no `question`"))?;
            let opts: Vec<String> = v
                .get("options")
                .and_then(|o| o.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            if opts.len() < 2 {
                return Err(bad(&f, "fewer than two `options`"));
            }
            let stem = f.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
            let image = ["jpg", "jpeg", "png"]
                .iter()
                .map(|x| dir.join(format!("{stem}.{x}")))
                .find(|p| p.is_file())
                .ok_or_else(|| bad(&f, format!("no image {stem}.jpg next to it")))?;
            out.push(McQuestion {
                id: format!("{cat}/{stem}"),
                task: cat.to_string(),
                images: vec![ImageSource::File(image)],
                question,
                options: opts
                    .into_iter()
                    .enumerate()
                    .map(|(i, o)| ((b'A' + i as u8) as char, o))
                    .collect(),
                answer: 'A',
                pair: None,
            });
        }
    }
    if !found_any {
        return Err(LavitError::Bench(format!(
            "vstar: neither {QUESTIONS} nor the {} folders under {}",
            CATEGORIES.join(" / "),
            root.display()
        )));
    }
    Ok(out)
}
