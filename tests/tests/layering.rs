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

/// `lavit-core`'s modules in layer order, bottom first (docs/ARCHITECTURE.md): each uses only
/// modules before it — no cycle, no upward arrow. Doc comments may mention anything.
const LAYERS: [&str; 14] = [
    "error", "util", "model", "io", "data", "lavit", "defaults", "infer", "eval", "teacher",
    "bundle", "train", "perf", "demo",
];

#[test]
fn core_modules_only_use_the_layers_below_them() {
    let src = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("run by cargo test"))
        .join("../core/src");
    let mut wrong = Vec::new();
    for (level, module) in LAYERS.iter().enumerate() {
        let mut files = Vec::new();
        let dir = src.join(module);
        if dir.is_dir() {
            rust_files(&dir, &mut files);
        } else {
            files.push(src.join(format!("{module}.rs")));
        }
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            for line in text.lines().filter(|l| !l.trim_start().starts_with("//")) {
                for used in line.split("crate::").skip(1) {
                    let name: String = used
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    match LAYERS.iter().position(|m| *m == name) {
                        Some(l) if l > level => wrong.push(format!(
                            "{}: `{module}` uses `{name}`, a layer above it",
                            f.display()
                        )),
                        None if !name.is_empty() => {
                            wrong.push(format!("{}: unknown module `{name}`", f.display()))
                        }
                        _ => {}
                    }
                }
            }
        }
    }
    let listed: Vec<String> = std::fs::read_to_string(src.join("lib.rs"))
        .unwrap()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod "))
        .map(|m| m.trim_end_matches(';').to_string())
        .collect();
    for m in &listed {
        assert!(
            LAYERS.contains(&m.as_str()),
            "lib.rs module `{m}` has no layer"
        );
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
