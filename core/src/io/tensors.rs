//! Small host-side tensor files: writing named f32 / i64 arrays as safetensors (CLI outputs,
//! signal shards) and reading them back.

use std::collections::BTreeMap;
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::error::{LavitError, Result};

/// A named host array.
#[derive(Debug, Clone, PartialEq)]
pub enum HostTensor {
    F32 {
        shape: Vec<usize>,
        data: Vec<f32>,
    },
    F16 {
        shape: Vec<usize>,
        data: Vec<half::f16>,
    },
    Bf16 {
        shape: Vec<usize>,
        data: Vec<half::bf16>,
    },
    I64 {
        shape: Vec<usize>,
        data: Vec<i64>,
    },
}

impl HostTensor {
    pub fn f32(shape: Vec<usize>, data: Vec<f32>) -> Self {
        debug_assert_eq!(shape.iter().product::<usize>(), data.len());
        HostTensor::F32 { shape, data }
    }
    pub fn i64(shape: Vec<usize>, data: Vec<i64>) -> Self {
        debug_assert_eq!(shape.iter().product::<usize>(), data.len());
        HostTensor::I64 { shape, data }
    }
    pub fn shape(&self) -> &[usize] {
        match self {
            HostTensor::F32 { shape, .. }
            | HostTensor::F16 { shape, .. }
            | HostTensor::Bf16 { shape, .. }
            | HostTensor::I64 { shape, .. } => shape,
        }
    }
    /// Values as f32 (f16 / bf16 widened; i64 converted).
    pub fn to_f32(&self) -> Vec<f32> {
        match self {
            HostTensor::F32 { data, .. } => data.clone(),
            HostTensor::F16 { data, .. } => data.iter().map(|v| v.to_f32()).collect(),
            HostTensor::Bf16 { data, .. } => data.iter().map(|v| v.to_f32()).collect(),
            HostTensor::I64 { data, .. } => data.iter().map(|&v| v as f32).collect(),
        }
    }
    pub fn to_i64(&self) -> Vec<i64> {
        match self {
            HostTensor::I64 { data, .. } => data.clone(),
            HostTensor::F32 { data, .. } => data.iter().map(|&v| v as i64).collect(),
            HostTensor::F16 { data, .. } => data.iter().map(|v| v.to_f32() as i64).collect(),
            HostTensor::Bf16 { data, .. } => data.iter().map(|v| v.to_f32() as i64).collect(),
        }
    }
    fn bytes(&self) -> (Dtype, Vec<u8>) {
        match self {
            HostTensor::F32 { data, .. } => (
                Dtype::F32,
                data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ),
            HostTensor::F16 { data, .. } => (
                Dtype::F16,
                data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ),
            HostTensor::Bf16 { data, .. } => (
                Dtype::BF16,
                data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ),
            HostTensor::I64 { data, .. } => (
                Dtype::I64,
                data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ),
        }
    }
}

/// Serialises named tensors to safetensors bytes.
pub fn to_safetensors_bytes(tensors: &BTreeMap<String, HostTensor>) -> Result<Vec<u8>> {
    let owned: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(k, t)| {
            let (dt, b) = t.bytes();
            (k.clone(), dt, t.shape().to_vec(), b)
        })
        .collect();
    let views: Vec<(String, TensorView<'_>)> = owned
        .iter()
        .map(|(k, dt, shape, b)| {
            TensorView::new(*dt, shape.clone(), b)
                .map(|v| (k.clone(), v))
                .map_err(|e| LavitError::Other(format!("tensor {k}: {e}")))
        })
        .collect::<Result<_>>()?;
    safetensors::serialize(views, None).map_err(|e| LavitError::Other(format!("safetensors: {e}")))
}

/// Writes named tensors to `path` atomically (temporary file, then rename).
pub fn write_safetensors(path: &Path, tensors: &BTreeMap<String, HostTensor>) -> Result<()> {
    let bytes = to_safetensors_bytes(tensors)?;
    crate::io::checkpoint::write_atomic(path, &bytes)
}

/// Reads every tensor of a safetensors file (f32, f16, bf16 → f32/f16; integer → i64).
pub fn read_safetensors(path: &Path) -> Result<BTreeMap<String, HostTensor>> {
    let bytes = crate::error::read_file(path)?;
    parse_safetensors(&bytes).map_err(|message| LavitError::Weights {
        path: path.to_path_buf(),
        message,
    })
}

pub fn parse_safetensors(
    bytes: &[u8],
) -> std::result::Result<BTreeMap<String, HostTensor>, String> {
    let st =
        SafeTensors::deserialize(bytes).map_err(|e| format!("not a safetensors file ({e})"))?;
    let mut out = BTreeMap::new();
    for (name, view) in st.tensors() {
        let shape = view.shape().to_vec();
        let d = view.data();
        let t = match view.dtype() {
            Dtype::F32 => HostTensor::F32 {
                shape,
                data: d
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            },
            Dtype::F16 => HostTensor::F16 {
                shape,
                data: d
                    .chunks_exact(2)
                    .map(|c| half::f16::from_le_bytes([c[0], c[1]]))
                    .collect(),
            },
            Dtype::BF16 => HostTensor::F32 {
                shape,
                data: d
                    .chunks_exact(2)
                    .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                    .collect(),
            },
            Dtype::I64 => HostTensor::I64 {
                shape,
                data: d
                    .chunks_exact(8)
                    .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
                    .collect(),
            },
            Dtype::I32 => HostTensor::I64 {
                shape,
                data: d
                    .chunks_exact(4)
                    .map(|c| i32::from_le_bytes(c.try_into().expect("4 bytes")) as i64)
                    .collect(),
            },
            other => return Err(format!("tensor {name}: unsupported dtype {other:?}")),
        };
        out.insert(name, t);
    }
    Ok(out)
}

/// The tensor names of a safetensors file and their sizes in bytes, from its header alone (the
/// 8-byte length, then the JSON header), without reading the data.
pub fn safetensors_header(path: &Path) -> Result<Vec<(String, u64)>> {
    use std::io::Read;
    let io = |e| LavitError::Io {
        path: path.to_path_buf(),
        source: e,
    };
    let bad = |message: String| LavitError::Weights {
        path: path.to_path_buf(),
        message,
    };
    let mut f = std::fs::File::open(path).map_err(io)?;
    let mut len = [0u8; 8];
    f.read_exact(&mut len).map_err(io)?;
    let n = u64::from_le_bytes(len);
    let file_len = f.metadata().map_err(io)?.len();
    if n > 100 << 20 || n > file_len.saturating_sub(8) {
        return Err(bad(format!(
            "a header of {n} bytes in a file of {file_len}: not a safetensors file"
        )));
    }
    let mut header = vec![0u8; n as usize];
    f.read_exact(&mut header).map_err(io)?;
    let v: serde_json::Value = serde_json::from_slice(&header)
        .map_err(|e| bad(format!("not a safetensors header ({e})")))?;
    let obj = v
        .as_object()
        .ok_or_else(|| bad("the header is not a JSON object".into()))?;
    let mut out = Vec::new();
    for (k, t) in obj.iter().filter(|(k, _)| *k != "__metadata__") {
        let off = t["data_offsets"]
            .as_array()
            .and_then(|o| Some((o.first()?.as_u64()?, o.get(1)?.as_u64()?)))
            .ok_or_else(|| bad(format!("tensor {k}: no data_offsets")))?;
        out.push((k.clone(), off.1.saturating_sub(off.0)));
    }
    Ok(out)
}
