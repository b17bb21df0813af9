//! `core/` takes a burn `Device` and never names a concrete backend; `backends/` is the only
//! crate that does. This scans the sources and the manifest so a slip fails the build's tests.

use std::path::{Path, PathBuf};

const FORBIDDEN: &[&str] = &[
    "Device::flex",
    "Device::wgpu",
    "Device::vulkan",
    "Device::metal",
    "Device::webgpu",
    "Device::cuda",
    "Device::cpu",
    "burn::backend",
    "burn_flex",
    "burn_wgpu",
    "burn_cuda",
    "burn_ndarray",
    "lavit_backends",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn core_names_no_backend() {
    let core = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("run by cargo test"))
        .join("../core");
    let mut files = Vec::new();
    rust_files(&core.join("src"), &mut files);
    assert!(files.len() > 5);
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for (n, line) in text.lines().enumerate() {
            for bad in FORBIDDEN {
                assert!(
                    !line.contains(bad),
                    "{}:{}: names a backend (`{bad}`)",
                    f.display(),
                    n + 1
                );
            }
        }
    }
    let manifest = std::fs::read_to_string(core.join("Cargo.toml")).unwrap();
    for feat in [
        "flex",
        "wgpu",
        "vulkan",
        "cuda",
        "metal",
        "ndarray",
        "lavit-backends",
    ] {
        assert!(
            !manifest
                .lines()
                .any(|l| !l.trim_start().starts_with('#') && l.contains(feat)),
            "core/Cargo.toml mentions `{feat}`"
        );
    }
}
