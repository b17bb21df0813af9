//! MMStar (Chen et al., 2024) as published (`Lin-Chen/MMStar` on the HF hub):
//!
//! ```text
//! mmstar.parquet
//!   index: int64, question: string ("…\nOptions: A: x, B: y, C: z, D: w"),
//!   image: struct<bytes: binary, path: string>, answer: string "A",
//!   category: string, l2_category: string, meta_info: struct
//! ```
//!
//! The options live inside the question; they are split off and re-lettered by
//! [`parse_inline_options`](super::parse_inline_options). The summary groups by `category`.

use std::path::{Path, PathBuf};

use super::parquet::{RowReader, read_rows};
use super::{ImageSource, McQuestion, answer_among, bad, parse_inline_options};
use crate::error::{LavitError, Result};

/// The parquet file: `mmstar.parquet` at the root, else the only `*.parquet` under it.
fn parquet_file(root: &Path) -> Result<PathBuf> {
    let direct = root.join("mmstar.parquet");
    if direct.is_file() {
        return Ok(direct);
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir(root)
        .map_err(|e| LavitError::io(root, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
        .collect();
    found.sort();
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(LavitError::Bench(format!(
            "mmstar: no mmstar.parquet under {}",
            root.display()
        ))),
        _ => Err(LavitError::Bench(format!(
            "mmstar: several parquet files under {} and no mmstar.parquet",
            root.display()
        ))),
    }
}

pub fn read(root: &Path) -> Result<Vec<McQuestion>> {
    let file = parquet_file(root)?;
    let mut out = Vec::new();
    for (index, row) in read_rows(&file)?.iter().enumerate() {
        let r = RowReader {
            path: &file,
            index,
            row,
        };
        let full = r.text("question")?;
        // Mostly "…\nOptions: A: x, B: y"; a few items (from MathVista) "…\nChoices:\n(A) x".
        let split = ["Options:", "Choices:"]
            .iter()
            .find_map(|k| full.rfind(k).map(|p| (p, k.len())));
        let (question, opts) = match split {
            Some((p, n)) => (full[..p].trim().to_string(), &full[p + n..]),
            None => {
                return Err(bad(
                    &file,
                    format!("row {index}: question has no `Options:` part"),
                ));
            }
        };
        let options = parse_inline_options(opts).ok_or_else(|| {
            bad(
                &file,
                format!(
                    "row {index}: options `{}` are not `A: …, B: …`",
                    opts.trim()
                ),
            )
        })?;
        let ans = r.text("answer")?;
        let answer = answer_among(&ans, &options).ok_or_else(|| {
            bad(
                &file,
                format!("row {index}: answer `{ans}` is not one of the options"),
            )
        })?;
        let (name, bytes) = r
            .image("image")?
            .ok_or_else(|| bad(&file, format!("row {index}: no image")))?;
        out.push(McQuestion {
            id: r.text("index")?,
            task: r
                .get("category")
                .and_then(|c| c.text())
                .unwrap_or_else(|| "mmstar".into()),
            images: vec![ImageSource::Bytes { name, bytes }],
            question,
            options,
            answer,
            pair: None,
        });
    }
    Ok(out)
}
