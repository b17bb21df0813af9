//! BLINK (Fu et al., 2024) as published (`BLINK-Benchmark/BLINK` on the HF hub): one folder
//! per sub-task, each with `val-*.parquet` (answers public) and `test-*.parquet`:
//!
//! ```text
//! Art_Style/val-00000-of-00001.parquet
//!   idx: string, question: string, sub_task: string,
//!   image_1 … image_4: struct<bytes: binary, path: string> (null when unused),
//!   choices: list<string>, answer: string "(A)", prompt: string, explanation: string
//! ```
//!
//! The val split is read (the test split has no answers).

use std::path::{Path, PathBuf};

use super::parquet::{RowReader, read_rows};
use super::{ImageSource, McQuestion, answer_among, bad};
use crate::error::{LavitError, Result};

/// The 14 sub-tasks.
pub const TASKS: [&str; 14] = [
    "Art_Style",
    "Counting",
    "Forensic_Detection",
    "Functional_Correspondence",
    "IQ_Test",
    "Jigsaw",
    "Multi-view_Reasoning",
    "Object_Localization",
    "Relative_Depth",
    "Relative_Reflectance",
    "Semantic_Correspondence",
    "Spatial_Relation",
    "Visual_Correspondence",
    "Visual_Similarity",
];

/// `val-*.parquet` files of the sub-task folders under `root` (one task when given).
fn val_files(root: &Path, task: Option<&str>) -> Result<Vec<(String, PathBuf)>> {
    let mut dirs: Vec<String> = match task {
        Some(t) => vec![t.to_string()],
        None => {
            let rd = std::fs::read_dir(root).map_err(|e| LavitError::io(root, e))?;
            rd.filter_map(|e| e.ok())
                .filter(|e| e.path().is_dir())
                .map(|e| e.file_name().to_string_lossy().to_string())
                .collect()
        }
    };
    dirs.sort();
    let mut out = Vec::new();
    for d in dirs {
        let dir = root.join(&d);
        if !dir.is_dir() {
            return Err(LavitError::Bench(format!(
                "blink: no task folder {} (tasks: {})",
                dir.display(),
                TASKS.join(", ")
            )));
        }
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map_err(|e| LavitError::io(&dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("val") && n.ends_with(".parquet"))
            })
            .collect();
        files.sort();
        out.extend(files.into_iter().map(|f| (d.clone(), f)));
    }
    Ok(out)
}

pub fn read(root: &Path, task: Option<&str>) -> Result<Vec<McQuestion>> {
    let mut out = Vec::new();
    for (task, file) in val_files(root, task)? {
        for (index, row) in read_rows(&file)?.iter().enumerate() {
            let r = RowReader {
                path: &file,
                index,
                row,
            };
            let choices = r.strings("choices")?;
            if choices.len() < 2 {
                return Err(bad(&file, format!("row {index}: fewer than two choices")));
            }
            let options: Vec<(char, String)> = choices
                .into_iter()
                .enumerate()
                .map(|(i, c)| ((b'A' + i as u8) as char, c))
                .collect();
            let ans = r.text("answer")?;
            let answer = answer_among(&ans, &options).ok_or_else(|| {
                bad(
                    &file,
                    format!("row {index}: answer `{ans}` is not one of the choices"),
                )
            })?;
            let mut images = Vec::new();
            for k in 1..=4 {
                if let Some((name, bytes)) = r.image(&format!("image_{k}"))? {
                    images.push(ImageSource::Bytes { name, bytes });
                }
            }
            if images.is_empty() {
                return Err(bad(&file, format!("row {index}: no image in image_1..4")));
            }
            out.push(McQuestion {
                id: r.text("idx")?,
                task: r
                    .get("sub_task")
                    .and_then(|c| c.text())
                    .unwrap_or(task.clone()),
                images,
                question: r.text("question")?,
                options,
                answer,
                pair: None,
            });
        }
    }
    Ok(out)
}
