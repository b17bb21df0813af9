//! Hugging Face safetensors checkpoints → [`Qwen25Vl`], through burn-store.
//!
//! * single `model.safetensors`, or shards listed in `model.safetensors.index.json`;
//! * both key layouts: hub (`visual.*`, `model.layers.*`, `lm_head.*`) and the newer
//!   transformers one (`model.visual.*`, `model.language_model.*`);
//! * bf16 / f16 / f32 on disk, cast to the device's float dtype (f32 by default) while loading;
//! * PyTorch `Linear` weights `[out, in]` are transposed to burn's `[in, out]`
//!   (`PyTorchToBurnAdapter`), norm `weight` becomes `gamma`.
//!
//! Every model parameter must be found in the checkpoint; a missing tensor or a shape
//! mismatch is an error naming the key (and both shapes).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::store::burn_pack::Tensor as PackTensor;
use burn::store::{
    ApplyError, BurnToPyTorchAdapter, FloatCastAdapter, KeyRemapper, ModuleAdapter, ModuleSnapshot,
    PyTorchToBurnAdapter, SafetensorsStore,
};
use burn::tensor::DType;
use serde::Deserialize;

use crate::error::{LavitError, Result};
use crate::model::vlm::Qwen25Vl;

/// The dtype weights are written in (`lavit export --dtype`, `lavit train --export-dtype`,
/// `lavit init --dtype`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WeightDtype {
    #[default]
    F32,
    F16,
    Bf16,
}

impl std::str::FromStr for WeightDtype {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "f32" => Ok(Self::F32),
            "f16" => Ok(Self::F16),
            "bf16" => Ok(Self::Bf16),
            o => Err(format!("`{o}`: expected f32, f16 or bf16")),
        }
    }
}

impl std::fmt::Display for WeightDtype {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::F32 => "f32",
            Self::F16 => "f16",
            Self::Bf16 => "bf16",
        })
    }
}

impl From<WeightDtype> for DType {
    fn from(d: WeightDtype) -> Self {
        match d {
            WeightDtype::F32 => DType::F32,
            WeightDtype::F16 => DType::F16,
            WeightDtype::Bf16 => DType::BF16,
        }
    }
}

/// Key renames from checkpoint names to our module paths, applied in order.
const LOAD_REMAP: &[(&str, &str)] = &[
    (r"^model\.visual\.", "visual."),
    (r"^model\.language_model\.", "model."),
    (r"^visual\.merger\.mlp\.0\.", "visual.merger.fc1."),
    (r"^visual\.merger\.mlp\.2\.", "visual.merger.fc2."),
    // Projections that may carry a LoRA adapter keep their base Linear in `inner`.
    (r"_proj\.(weight|bias)$", "_proj.inner.$1"),
];

/// Inverse renames for export in the hub layout.
const SAVE_REMAP: &[(&str, &str)] = &[
    (r"^visual\.merger\.fc1\.", "visual.merger.mlp.0."),
    (r"^visual\.merger\.fc2\.", "visual.merger.mlp.2."),
    (r"_proj\.inner\.", "_proj."),
];

#[derive(Deserialize)]
struct ShardIndex {
    weight_map: std::collections::BTreeMap<String, String>,
}

/// The safetensors files of a checkpoint directory (or a single file path).
pub fn checkpoint_files(path: &Path) -> Result<Vec<PathBuf>> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let index = path.join("model.safetensors.index.json");
    if index.is_file() {
        let idx: ShardIndex = crate::error::read_json(&index)?;
        let files: BTreeSet<&String> = idx.weight_map.values().collect();
        let inside = |f: &str| {
            let p = Path::new(f);
            !f.is_empty()
                && p.components()
                    .all(|c| matches!(c, std::path::Component::Normal(_)))
        };
        if let Some(f) = files.iter().find(|f| !inside(f)) {
            return Err(LavitError::Weights {
                path: index,
                message: format!("weight_map names `{f}`, not a file inside the checkpoint"),
            });
        }
        if files.is_empty() {
            return Err(LavitError::Weights {
                path: index,
                message: "weight_map is empty".into(),
            });
        }
        return Ok(files.into_iter().map(|f| path.join(f)).collect());
    }
    let single = path.join("model.safetensors");
    if single.is_file() {
        return Ok(vec![single]);
    }
    Err(LavitError::Weights {
        path: path.to_path_buf(),
        message: "no model.safetensors or model.safetensors.index.json found".into(),
    })
}

/// Where the weights come from: files on disk, or in-memory buffers (browser).
pub enum WeightSource {
    Files(Vec<PathBuf>),
    Bytes(Vec<(String, Vec<u8>)>),
}

/// Loads all parameters of `model` from `source`.
pub fn load_weights(model: Qwen25Vl, source: WeightSource) -> Result<Qwen25Vl> {
    // Weights take the device's float dtype (f32 unless the device was configured otherwise).
    let float: DType = model.device().settings().float_dtype.into();
    load_module(model, source, LOAD_REMAP, float)
}

/// Loads every parameter of `model` from the tensors of `source` renamed by `remap`
/// (PyTorch orientation on disk, cast to `float`); tensors the module does not have are
/// ignored, a parameter found nowhere is an error naming it.
pub fn load_module<M: ModuleSnapshot>(
    model: M,
    source: WeightSource,
    remap: &[(&str, &str)],
    float: DType,
) -> Result<M> {
    let mut model = model;
    let adapter = || PyTorchToBurnAdapter.chain(FloatCastAdapter::to(float));
    let sources: Vec<(String, Source)> = match source {
        WeightSource::Files(files) => files
            .into_iter()
            .map(|f| (f.display().to_string(), Source::File(f)))
            .collect(),
        WeightSource::Bytes(buffers) => buffers
            .into_iter()
            .map(|(name, b)| (name, Source::Bytes(b)))
            .collect(),
    };
    let mut applied: BTreeSet<String> = BTreeSet::new();
    let mut missing: Option<BTreeSet<String>> = None;
    for (name, source) in sources {
        let result = match source {
            Source::File(f) => {
                let (tensors, _) = remapper(remap).remap(file_tensors(&f)?);
                model.apply(tensors, None, Some(Box::new(adapter())), false)
            }
            Source::Bytes(b) => {
                let store = SafetensorsStore::from_bytes(Some(b));
                let mut store = remap
                    .iter()
                    .fold(store, |s, (from, to)| s.with_key_remapping(*from, *to))
                    .with_from_adapter(adapter())
                    .allow_partial(true)
                    .validate(false);
                model
                    .load_from(&mut store)
                    .map_err(|e| LavitError::Weights {
                        path: PathBuf::from(&name),
                        message: e.to_string(),
                    })?
            }
        };
        if let Some(err) = result.errors.first() {
            return Err(apply_error(err, &name));
        }
        applied.extend(result.applied.iter().cloned());
        let shard_missing: BTreeSet<String> =
            result.missing.iter().map(|(p, _)| p.clone()).collect();
        missing = Some(match missing {
            None => shard_missing,
            Some(m) => m.intersection(&shard_missing).cloned().collect(),
        });
    }
    let missing: Vec<String> = missing
        .unwrap_or_default()
        .into_iter()
        .filter(|p| !applied.contains(p))
        .collect();
    if !missing.is_empty() {
        let shown: Vec<String> = missing.iter().take(8).map(|s| checkpoint_key(s)).collect();
        let more = if missing.len() > 8 {
            format!(" (and {} more)", missing.len() - 8)
        } else {
            String::new()
        };
        return Err(LavitError::MissingTensors(format!(
            "{}{more}",
            shown.join(", ")
        )));
    }
    Ok(model)
}

/// One weight file: on disk (read tensor by tensor) or in memory (the browser).
enum Source {
    File(PathBuf),
    Bytes(Vec<u8>),
}

fn remapper(remap: &[(&str, &str)]) -> KeyRemapper {
    KeyRemapper::from_patterns(remap.to_vec()).expect("the remap patterns are valid regexes")
}

/// The tensors of the safetensors file `path`, each read when the loader reaches it: the
/// header now, a tensor's bytes by a positioned read into a buffer of its own, dropped once the
/// parameter is made. Nothing is memory-mapped, so the file's pages are never part of this
/// process's resident memory: loading holds the model as loaded so far plus one tensor in
/// flight (its bytes and its converted copy), never a second copy of the weights.
fn file_tensors(path: &Path) -> Result<Vec<PackTensor>> {
    let err = |message: String| LavitError::Weights {
        path: path.to_path_buf(),
        message,
    };
    if !path.is_file() {
        return Err(err("file not found".into()));
    }
    let file = std::fs::File::open(path).map_err(|e| err(e.to_string()))?;
    let mut len = [0u8; 8];
    read_at(&file, &mut len, 0).map_err(|e| err(format!("reading the header: {e}")))?;
    let n = u64::from_le_bytes(len) as usize;
    let size = file.metadata().map_err(|e| err(e.to_string()))?.len() as usize;
    if n > 100 << 20 || 8 + n > size {
        return Err(err(format!("not a safetensors file (header of {n} bytes)")));
    }
    let mut header = vec![0u8; n];
    read_at(&file, &mut header, 8).map_err(|e| err(format!("reading the header: {e}")))?;
    let meta: safetensors::tensor::Metadata =
        serde_json::from_slice(&header).map_err(|e| err(format!("safetensors header: {e}")))?;
    let file = std::sync::Arc::new(file);
    let mut out = Vec::new();
    for (key, info) in meta.tensors() {
        let (start, end) = info.data_offsets;
        if start > end || 8 + n + end > size {
            return Err(err(format!("tensor {key}: data past the end of the file")));
        }
        let dtype = burn_dtype(info.dtype)
            .ok_or_else(|| err(format!("tensor {key}: unsupported dtype {:?}", info.dtype)))?;
        let (file, at, len) = (file.clone(), (8 + n + start) as u64, end - start);
        out.push(PackTensor::deferred(
            key,
            dtype,
            info.shape.clone(),
            None,
            len,
            move || {
                let mut buf = vec![0u8; len];
                read_at(&file, &mut buf, at)
                    .map_err(|e| burn::store::burn_pack::Error::IoError(e.to_string()))?;
                Ok(burn::store::burn_pack::Bytes::from_bytes_vec(buf))
            },
        ));
    }
    Ok(out)
}

#[cfg(unix)]
fn read_at(file: &std::fs::File, buf: &mut [u8], at: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, at)
}

#[cfg(windows)]
fn read_at(file: &std::fs::File, mut buf: &mut [u8], mut at: u64) -> std::io::Result<()> {
    while !buf.is_empty() {
        match std::os::windows::fs::FileExt::seek_read(file, buf, at)? {
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            k => {
                buf = &mut buf[k..];
                at += k as u64;
            }
        }
    }
    Ok(())
}

#[cfg(not(any(unix, windows)))]
fn read_at(_: &std::fs::File, _: &mut [u8], _: u64) -> std::io::Result<()> {
    Err(std::io::ErrorKind::Unsupported.into())
}

fn burn_dtype(d: safetensors::Dtype) -> Option<DType> {
    use safetensors::Dtype as S;
    Some(match d {
        S::F64 => DType::F64,
        S::F32 => DType::F32,
        S::F16 => DType::F16,
        S::BF16 => DType::BF16,
        S::I64 => DType::I64,
        S::I32 => DType::I32,
        S::I16 => DType::I16,
        S::I8 => DType::I8,
        S::U8 => DType::U8,
        _ => return None,
    })
}

/// Turns a burn-store error into ours, with shapes in the checkpoint's orientation.
fn apply_error(err: &ApplyError, file: &str) -> LavitError {
    match err {
        ApplyError::ShapeMismatch {
            path,
            expected,
            found,
        } => {
            let mut expected = expected.to_vec();
            let mut found = found.to_vec();
            // Linear weights were transposed to burn's [in, out]; show PyTorch's [out, in].
            if is_linear_weight(path) {
                expected.reverse();
                found.reverse();
            }
            LavitError::ShapeMismatch {
                key: checkpoint_key(path),
                expected,
                found,
            }
        }
        other => LavitError::Weights {
            path: PathBuf::from(file),
            message: other.to_string(),
        },
    }
}

/// Our module path → the hub checkpoint key (for messages).
fn checkpoint_key(path: &str) -> String {
    path.replace("_proj.inner.", "_proj.")
        .replace("visual.merger.fc1.", "visual.merger.mlp.0.")
        .replace("visual.merger.fc2.", "visual.merger.mlp.2.")
}

fn is_linear_weight(path: &str) -> bool {
    path.ends_with(".weight")
        && !path.contains("embed_tokens")
        && !path.contains("patch_embed")
        && !path.contains("norm")
        && !path.contains("ln_q")
}

/// Saves `module`'s parameters as an HF-layout safetensors file (hub key names, PyTorch
/// orientation) at `path`, written through a temporary file and renamed.
pub fn save_hf_safetensors<M: Module>(module: &M, path: &Path, dtype: DType) -> Result<()> {
    save_module(module, path, SAVE_REMAP, dtype)
}

/// Saves `module`'s parameters at `path` with keys renamed by `remap`, in PyTorch orientation
/// (Linear weights `[out, in]`) as `dtype`, written through a temporary file and renamed.
pub fn save_module<M: Module>(
    module: &M,
    path: &Path,
    remap: &[(&str, &str)],
    dtype: DType,
) -> Result<()> {
    let tmp = path.with_extension("safetensors.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut store = remap
        .iter()
        .fold(SafetensorsStore::from_file(&tmp), |s, (from, to)| {
            s.with_key_remapping(*from, *to)
        })
        .with_to_adapter(BurnToPyTorchAdapter.chain(FloatCastAdapter::to(dtype)))
        .skip_enum_variants(true)
        .clear_metadata()
        .metadata("format", "pt")
        .overwrite(true);
    let io = |e| LavitError::Io {
        path: path.to_path_buf(),
        source: e,
    };
    let saved = module
        .save_into(&mut store)
        .map_err(|e| LavitError::Weights {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
        .and_then(|()| {
            // The disk fills up after the temporary file was (partly) written.
            crate::error::failpoint!("save_module", |_| Err(crate::error::disk_full(path)));
            // burn-store creates the file owner-only; give it what any new file here gets.
            default_permissions(&tmp).map_err(io)
        })
        .and_then(|()| std::fs::rename(&tmp, path).map_err(io));
    if saved.is_err() {
        // A failed save (a full disk) must not leave the partial file behind.
        let _ = std::fs::remove_file(&tmp);
    }
    saved
}

/// Gives `path` the permissions a newly created file gets in its directory (on Unix 0666 less
/// the umask), read off a probe file.
fn default_permissions(path: &Path) -> std::io::Result<()> {
    let probe = path.with_extension("permissions-probe");
    let perms = std::fs::File::create(&probe)?.metadata()?.permissions();
    std::fs::remove_file(&probe)?;
    std::fs::set_permissions(path, perms)
}
