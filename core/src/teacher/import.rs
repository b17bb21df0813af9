//! Teacher signals from the LaViT reference implementation's training data, into our signal
//! store (`lavit import-signals --format reference`).
//!
//! Its training JSON (`{"results": [...]}`, or a plain list) holds per sample `question_id`,
//! `question`, `ground_truth_enriched`, `image_relative_path`, `v_top_path_abs` — a tensor
//! written with `torch.save(v_top.cpu(), path)`, `[N, d_T]` (bf16 in its runs) — and
//! `attention_path_abs` — JSON `{"steps": [{"p_t": [N floats], "p_topk_idx": [...], ...}]}`,
//! min-max normalised maps. No grid is stored: like the reference's data loader, `N` is
//! factorised into the `h × w` closest to the image's aspect ratio. Paths that are not absolute
//! are taken relative to `root`.
//!
//! The `.pth` files are read with burn's PyTorch checkpoint reader (`pytorch-reader`), which
//! wants a dictionary at the root of the pickle; a bare tensor is handed to it as
//! `{"tensor": …}` by framing its pickle (two opcodes around it) in a copy of the archive.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::extract::TeacherSignals;
use super::store::{SignalRecord, SignalWriter};
use crate::data::viscot::strip_answer_tags;
use crate::error::{LavitError, Result};
use crate::lavit::targets::top_k;

/// One sample of the reference's training JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct ReferenceSample {
    pub id: String,
    pub question: String,
    pub answer: String,
    pub image: String,
    pub vtop: PathBuf,
    pub trajectory: PathBuf,
}

/// Reads the reference's training JSON; feature paths are resolved against `root`.
pub fn read_reference_data(path: &Path, root: &Path) -> Result<Vec<ReferenceSample>> {
    let v: Value = crate::error::read_json(path)?;
    let list = match &v {
        Value::Object(o) => o.get("results").and_then(Value::as_array),
        Value::Array(a) => Some(a),
        _ => None,
    }
    .ok_or_else(|| {
        LavitError::Invalid(format!(
            "{}: expected {{\"results\": [...]}} or a list of samples",
            path.display()
        ))
    })?;
    let resolve = |p: &str| {
        let p = PathBuf::from(p);
        if p.is_absolute() { p } else { root.join(p) }
    };
    list.iter()
        .enumerate()
        .map(|(i, r)| {
            let field = |k: &str| -> Result<String> {
                match r.get(k) {
                    Some(Value::String(s)) => Ok(s.clone()),
                    Some(Value::Number(n)) => Ok(n.to_string()),
                    _ => Err(LavitError::Invalid(format!(
                        "{}: sample {i} has no `{k}`",
                        path.display()
                    ))),
                }
            };
            let id = field("question_id").unwrap_or_else(|_| i.to_string());
            Ok(ReferenceSample {
                question: field("question")?,
                answer: strip_answer_tags(&field("ground_truth_enriched")?),
                image: field("image_relative_path")?,
                vtop: resolve(&field("v_top_path_abs")?),
                trajectory: resolve(&field("attention_path_abs")?),
                id,
            })
        })
        .collect()
}

/// The `h × w` with `h · w = n` closest to the image's aspect ratio `height / width` (the
/// reference's data loader does the same to lay its maps on a grid).
pub fn grid_of(n: usize, (height, width): (usize, usize)) -> (usize, usize) {
    // Distances in log space, as differences of logs so that `h × w` and `w × h` tie exactly
    // and the first (the wider grid) wins.
    let target = (height.max(1) as f64).ln() - (width.max(1) as f64).ln();
    let distance = |(h, w): (usize, usize)| ((h as f64).ln() - (w as f64).ln() - target).abs();
    (1..=n)
        .filter(|h| n.is_multiple_of(*h))
        .map(|h| (h, n / h))
        .min_by(|a, b| distance(*a).total_cmp(&distance(*b)))
        .unwrap_or((1, n))
}

/// A `torch.save`d tensor as f32 values and its shape, read by `pytorch-reader`.
pub fn read_pth_tensor(path: &Path) -> std::result::Result<(Vec<f32>, Vec<usize>), String> {
    let reader = match pytorch_reader::PytorchReader::new(path) {
        Ok(r) => r,
        Err(e) if e.to_string().contains("Expected a dictionary at the root") => {
            return read_bare_tensor(path);
        }
        Err(e) => return Err(e.to_string()),
    };
    let keys = reader.keys();
    let [key] = keys.as_slice() else {
        return Err(format!(
            "expected one tensor, found {}: {keys:?}",
            keys.len()
        ));
    };
    tensor_values(reader.get(key).expect("listed key"))
}

/// A bare tensor (`torch.save(t)`): the archive copied with its pickle wrapped as
/// `{"tensor": t}` (protocol-2 framing: `EMPTY_DICT`, the key, the original object, `SETITEM`),
/// then read like a checkpoint.
fn read_bare_tensor(path: &Path) -> std::result::Result<(Vec<f32>, Vec<usize>), String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut zin = zip::ZipArchive::new(file).map_err(|e| e.to_string())?;
    let tmp = std::env::temp_dir().join(format!(
        "lavit-import-{}-{}.pth",
        std::process::id(),
        TMP_COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let result = (|| {
        let out = std::fs::File::create(&tmp).map_err(|e| e.to_string())?;
        let mut zout = zip::ZipWriter::new(out);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        for i in 0..zin.len() {
            let mut entry = zin.by_index(i).map_err(|e| e.to_string())?;
            let name = entry.name().map_err(|e| e.to_string())?.to_string();
            let mut bytes = Vec::with_capacity(entry.size() as usize);
            entry.read_to_end(&mut bytes).map_err(|e| e.to_string())?;
            if name.ends_with("data.pkl") {
                bytes = wrap_pickle(&bytes)?;
            }
            zout.start_file(name, opts).map_err(|e| e.to_string())?;
            zout.write_all(&bytes).map_err(|e| e.to_string())?;
        }
        zout.finish().map_err(|e| e.to_string())?;
        let reader = pytorch_reader::PytorchReader::new(&tmp).map_err(|e| e.to_string())?;
        let t = reader
            .get("tensor")
            .ok_or("the file holds no tensor at its root")?;
        tensor_values(t)
    })();
    let _ = std::fs::remove_file(&tmp);
    result
}

static TMP_COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// `PROTO 2 <object> STOP` → `PROTO 2 EMPTY_DICT "tensor" <object> SETITEM STOP`.
fn wrap_pickle(pkl: &[u8]) -> std::result::Result<Vec<u8>, String> {
    let (Some([0x80, 2]), Some(b'.')) = (pkl.get(..2).map(|p| [p[0], p[1]]), pkl.last().copied())
    else {
        return Err("not a protocol-2 pickle (what torch.save writes)".into());
    };
    let key = b"tensor";
    let mut out = vec![0x80, 2, b'}', b'X'];
    out.extend_from_slice(&(key.len() as u32).to_le_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(&pkl[2..pkl.len() - 1]);
    out.extend_from_slice(b"s.");
    Ok(out)
}

fn tensor_values(
    t: &pytorch_reader::Tensor,
) -> std::result::Result<(Vec<f32>, Vec<usize>), String> {
    use pytorch_reader::DType as D;
    let shape = t.shape().to_vec();
    let bytes = t.read().map_err(|e| e.to_string())?;
    let values: Vec<f32> = match t.dtype() {
        D::F32 => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        D::F16 => bytes
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        D::BF16 => bytes
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        D::F64 => bytes
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32)
            .collect(),
        other => return Err(format!("dtype {other:?} is not a float")),
    };
    if values.len() != shape.iter().product::<usize>() {
        return Err(format!("{} values for shape {shape:?}", values.len()));
    }
    Ok((values, shape))
}

/// The step maps of a reference trajectory JSON (`steps[].p_t`).
pub fn read_trajectory(path: &Path) -> std::result::Result<Vec<Vec<f32>>, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|e| format!("invalid JSON: {e}"))?;
    let steps = v["steps"]
        .as_array()
        .filter(|s| !s.is_empty())
        .ok_or("no `steps` list")?;
    steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            s["p_t"]
                .as_array()
                .ok_or_else(|| format!("step {i} has no `p_t`"))?
                .iter()
                .map(|x| {
                    x.as_f64()
                        .map(|x| x as f32)
                        .ok_or_else(|| format!("step {i}: `p_t` holds a non-number"))
                })
                .collect()
        })
        .collect()
}

/// Counts of one import run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportSummary {
    pub imported: usize,
    pub skipped_done: usize,
}

/// Imports `samples` into `writer` (images under `images_root`, read for their size); samples
/// already in the store are skipped. A sample whose files are missing, unreadable, of the
/// wrong shape or not finite stops the import with an error naming it; what was imported
/// before it stays (resume continues from there).
pub fn import_reference(
    samples: &[ReferenceSample],
    images_root: &Path,
    writer: &mut SignalWriter,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<ImportSummary> {
    let mut summary = ImportSummary::default();
    let total = samples.len();
    for (i, s) in samples.iter().enumerate() {
        if writer.contains(&s.id) {
            summary.skipped_done += 1;
            progress(i + 1, total);
            continue;
        }
        let bad = |what: &Path, message: String| {
            LavitError::Invalid(format!("sample {}: {}: {message}", s.id, what.display()))
        };
        let (vtop, shape) = read_pth_tensor(&s.vtop).map_err(|m| bad(&s.vtop, m))?;
        let [n, d] = shape[..] else {
            return Err(bad(
                &s.vtop,
                format!("V_top has shape {shape:?}, expected [N, d_T]"),
            ));
        };
        if let Some(dd) = writer.d_teacher()
            && dd != d
        {
            return Err(bad(
                &s.vtop,
                format!("d_T = {d}, but the store holds d_T = {dd}"),
            ));
        }
        if vtop.iter().any(|v| !v.is_finite()) {
            return Err(bad(&s.vtop, "V_top holds NaN or infinite values".into()));
        }
        let traj = read_trajectory(&s.trajectory).map_err(|m| bad(&s.trajectory, m))?;
        if let Some((t, m)) = traj.iter().enumerate().find(|(_, m)| m.len() != n) {
            return Err(bad(
                &s.trajectory,
                format!(
                    "step {t} has {} values but V_top has N = {n} image tokens",
                    m.len()
                ),
            ));
        }
        if traj.iter().flatten().any(|v| !v.is_finite()) {
            return Err(bad(
                &s.trajectory,
                "p_t holds NaN or infinite values".into(),
            ));
        }
        let image_path = images_root.join(&s.image);
        let (w, h) = image::image_dimensions(&image_path).map_err(|e| LavitError::Image {
            path: image_path.display().to_string(),
            message: format!("sample {}: {e}", s.id),
        })?;
        let grid = grid_of(n, (h as usize, w as usize));
        let keep = crate::defaults::TRAJ_TOP_K.keep(n).unwrap_or(n);
        let signals = TeacherSignals {
            vtop,
            d_teacher: d,
            topk: traj.iter().map(|m| top_k(m, keep)).collect(),
            traj,
            grid,
        };
        let record = SignalRecord {
            id: s.id.clone(),
            image: s.image.clone(),
            question: s.question.clone(),
            answer: s.answer.clone(),
            steps: vec![s.answer.clone()],
            teacher_answer: None,
            grid_h: 0,
            grid_w: 0,
            d_teacher: 0,
            file: String::new(),
            extra: serde_json::json!({"source": "reference"}),
        };
        writer.push(record, signals)?;
        summary.imported += 1;
        progress(i + 1, total);
    }
    writer.flush()?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_follows_the_aspect_ratio() {
        assert_eq!(grid_of(40, (150, 230)), (5, 8));
        assert_eq!(grid_of(24, (300, 200)), (6, 4));
        assert_eq!(grid_of(36, (168, 168)), (6, 6));
        assert_eq!(grid_of(7, (100, 100)), (1, 7));
    }

    #[test]
    fn pickle_framing() {
        assert_eq!(
            wrap_pickle(b"\x80\x02K\x05.").unwrap(),
            b"\x80\x02}X\x06\x00\x00\x00tensorK\x05s."
        );
        assert!(wrap_pickle(b"\x80\x04K\x05.").is_err());
        assert!(wrap_pickle(b"").is_err());
    }
}
