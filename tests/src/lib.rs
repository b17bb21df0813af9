//! Helpers of the cross-crate tests: fixture paths, HF reference tensors, comparisons, and
//! the list of backends a test runs on.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::tensor::Device;
use lavit_core::io::tensors::{HostTensor, read_safetensors};

/// `tests/fixtures/<rel>`.
pub fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("run by cargo test"))
        .join("fixtures")
        .join(rel)
}

/// The HF reference tensors of fixture model `name`.
pub fn reference(name: &str) -> BTreeMap<String, HostTensor> {
    reference_in(&fixture(name))
}

/// The HF reference tensors of the fixture model in `dir` (`dir/reference.safetensors`).
pub fn reference_in(dir: &Path) -> BTreeMap<String, HostTensor> {
    read_safetensors(&dir.join("reference.safetensors")).expect("reference tensors")
}

/// The HF reference metadata of fixture model `name`.
pub fn reference_meta(name: &str) -> serde_json::Value {
    reference_meta_in(&fixture(name))
}

/// The HF reference metadata of the fixture model in `dir` (`dir/reference.json`).
pub fn reference_meta_in(dir: &Path) -> serde_json::Value {
    let bytes = std::fs::read(dir.join("reference.json")).expect("reference.json");
    serde_json::from_slice(&bytes).expect("reference.json parses")
}

/// Largest absolute difference; panics on a length mismatch.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Asserts `max |a - b| <= tol`, reporting the worst element.
#[track_caller]
pub fn assert_close(what: &str, ours: &[f32], theirs: &[f32], tol: f32) {
    let d = max_abs_diff(ours, theirs);
    eprintln!("{what}: max abs error {d:e}");
    assert!(d <= tol, "{what}: max abs error {d:e} > {tol:e}");
}

/// Backends the parity / conformance tests run on: `LAVIT_TEST_BACKENDS` (comma list,
/// default `cpu`). Each entry is `(name, device)`.
pub fn test_devices() -> Vec<(String, Device)> {
    let list = std::env::var("LAVIT_TEST_BACKENDS").unwrap_or_else(|_| "cpu".into());
    list.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|name| {
            let name = name.trim().to_string();
            let dev = lavit_backends::select(&name, 0)
                .unwrap_or_else(|e| panic!("LAVIT_TEST_BACKENDS names `{name}`: {e}"));
            (name, dev)
        })
        .collect()
}

/// f32 parity tolerance (max abs) per backend. The CPU backend meets HF's 1e-4; GPU kernels
/// (WGSL / SPIR-V / CUDA matmuls) reduce in another order, and the tied fixture's logits reach
/// |x| ≈ 40, so they get 3e-4 (measured on lavapipe: 1.1e-4).
pub fn tolerance(backend: &str) -> f32 {
    if backend == "cpu" { 1e-4 } else { 3e-4 }
}
