//! `lavit devices --require LIST`, the first check of the test entry point (scripts/test.sh,
//! with `LAVIT_TEST_BACKENDS`): a CI job that expects a backend fails, not skips, when it is
//! missing — with one message for "not compiled in" and another for "compiled in, but no
//! adapter".

use crate::common::{lavit, ok};
use lavit_backends::BackendKind;
use std::process::Command;

#[test]
fn a_required_backend_that_is_not_compiled_in_fails_naming_it() {
    if BackendKind::Dx12.compiled() {
        eprintln!("this build has dx12; the case needs a backend that is not compiled in");
        return;
    }
    let res = lavit(&["devices", "--require", "cpu,dx12"]);
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(!res.status.success(), "{err}");
    assert!(err.contains("backend `dx12` is not compiled in"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// With `VK_ICD_FILENAMES` naming no driver, the Vulkan loader (the only graphics API wgpu
/// uses on Linux) finds no adapter.
#[cfg(target_os = "linux")]
#[test]
fn a_required_wgpu_backend_without_a_driver_fails_saying_no_adapter() {
    let res = Command::new(env!("CARGO_BIN_EXE_lavit"))
        .args(["devices", "--require", "cpu,wgpu"])
        .env("VK_ICD_FILENAMES", "/nonexistent/icd.json")
        .env("VK_DRIVER_FILES", "/nonexistent/icd.json")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(!res.status.success(), "{err}");
    assert!(
        err.contains("backend `wgpu` is compiled in, but no adapter"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn a_required_cpu_backend_runs_its_smoke_test() {
    let out = ok(&["devices", "--require", "cpu"]);
    assert!(out.contains("cpu: ok, cpu (flex)"), "{out}");
}
