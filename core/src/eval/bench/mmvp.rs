//! MMVP (Tong et al., 2024) as published (`MMVP/MMVP` on the HF hub, tsb0601/MMVP):
//!
//! ```text
//! Questions.csv     Index,Question,Options,Correct Answer
//!                   1,Are the butterfly's wings closer to being open or closed?,(a) Open (b) Closed,(a)
//! MMVP Images/1.jpg … 300.jpg
//! ```
//!
//! Questions `2k-1` and `2k` ask the same thing of two CLIP-blind images: MMVP's headline
//! number is pair accuracy (both right), kept here as the pair id `⌈index/2⌉`. The published
//! labels of 99/100 and 279/280 are known to be swapped (tsb0601/MMVP issues #14, #30); they are
//! read as published.

use std::path::Path;

use super::{ImageSource, McQuestion, answer_among, bad, parse_inline_options};
use crate::error::{LavitError, Result};

pub const QUESTIONS: &str = "Questions.csv";
pub const IMAGES: &str = "MMVP Images";

pub fn read(root: &Path) -> Result<Vec<McQuestion>> {
    let path = root.join(QUESTIONS);
    let bytes = crate::error::read_file(&path)?;
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(false)
        .from_reader(bytes.as_slice());
    let headers = rdr
        .headers()
        .map_err(|e| bad(&path, format!("malformed CSV header ({e})")))?
        .clone();
    // The published header; its first column is spelt `lndex` in some copies.
    let col = |names: &[&str]| -> Result<usize> {
        headers
            .iter()
            .position(|h| {
                let h = h.trim().trim_start_matches('\u{feff}');
                names.iter().any(|n| h.eq_ignore_ascii_case(n))
            })
            .ok_or_else(|| {
                bad(
                    &path,
                    format!(
                        "no `{}` column (header: {})",
                        names[0],
                        headers.iter().collect::<Vec<_>>().join(",")
                    ),
                )
            })
    };
    let (ci, cq, co, ca) = (
        col(&["Index", "lndex"])?,
        col(&["Question"])?,
        col(&["Options"])?,
        col(&["Correct Answer"])?,
    );
    let mut out = Vec::new();
    for (n, rec) in rdr.records().enumerate() {
        let line = n + 2;
        let rec = rec.map_err(|e| bad(&path, format!("line {line}: malformed CSV ({e})")))?;
        let field = |i: usize| rec.get(i).unwrap_or("").trim().to_string();
        let index: usize = field(ci).parse().map_err(|_| {
            bad(
                &path,
                format!("line {line}: Index `{}` is not a number", field(ci)),
            )
        })?;
        let options = parse_inline_options(&field(co)).ok_or_else(|| {
            bad(
                &path,
                format!("line {line}: options `{}` are not `(a) … (b) …`", field(co)),
            )
        })?;
        let answer = answer_among(&field(ca), &options).ok_or_else(|| {
            bad(
                &path,
                format!(
                    "line {line}: correct answer `{}` is not one of the options",
                    field(ca)
                ),
            )
        })?;
        let image = root.join(IMAGES).join(format!("{index}.jpg"));
        if !image.is_file() {
            return Err(LavitError::Bench(format!(
                "{}: line {line}: image {} not found",
                path.display(),
                image.display()
            )));
        }
        out.push(McQuestion {
            id: index.to_string(),
            task: "mmvp".into(),
            images: vec![ImageSource::File(image)],
            question: field(cq),
            options,
            answer,
            pair: Some(index.div_ceil(2).to_string()),
        });
    }
    Ok(out)
}
