//! Choosing a backend by name: unknown and not-compiled backends are clear errors, the CPU
//! backend has one device; the thread-count option.

use lavit_backends::{BackendKind, select, threads};

#[test]
fn unknown_backend_lists_compiled() {
    let err = select("tpu", 0).unwrap_err().to_string();
    assert!(err.contains("unknown backend `tpu`"), "{err}");
    assert!(err.contains("cpu"), "{err}");
}

#[test]
fn not_compiled_backend_is_clear() {
    if !BackendKind::Cuda.compiled() {
        let err = select("cuda", 0).unwrap_err().to_string();
        assert!(err.contains("not compiled"), "{err}");
    }
}

#[test]
fn cpu_has_one_device() {
    assert!(select("cpu", 0).is_ok());
    assert!(select("cpu", 3).is_err());
}

#[test]
fn thread_count_is_an_option() {
    assert_eq!(threads::resolve(Some(3)).unwrap(), 3);
    assert!(threads::resolve(Some(0)).unwrap_err().contains("--threads"));
    let inside = threads::run_in_pool(2, threads::current).unwrap();
    assert_eq!(inside, 2);
}

/// glibc's allocator is left as the user tuned it: any `MALLOC_*` variable or a
/// `glibc.malloc` tunable; other variables (and other tunables) do not count.
#[test]
fn allocator_settings_yield_to_the_user() {
    use lavit_backends::malloc_tuned_by_user as tuned;
    let env = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect::<Vec<(std::ffi::OsString, std::ffi::OsString)>>()
            .into_iter()
    };
    assert!(!tuned(env(&[("PATH", "/bin"), ("LAVIT_THREADS", "2")])));
    assert!(tuned(env(&[("MALLOC_ARENA_MAX", "0")])));
    assert!(tuned(env(&[(
        "GLIBC_TUNABLES",
        "glibc.malloc.trim_threshold=1"
    )])));
    assert!(!tuned(env(&[(
        "GLIBC_TUNABLES",
        "glibc.cpu.hwcaps=-AVX512F"
    )])));
}
