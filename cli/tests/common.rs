//! Helpers shared by the CLI tests: paths of the fixtures and shipped models, running the
//! `lavit` binary, and the check that a failed command failed cleanly.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("run by cargo test")).join("..")
}

/// `tests/fixtures`.
pub fn fixtures() -> PathBuf {
    root().join("tests/fixtures")
}

/// The shipped LaViT student of the synthetic task.
pub fn student() -> PathBuf {
    root().join("assets/synthetic/student-lavit")
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Runs `lavit args`.
pub fn lavit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lavit"))
        .args(args)
        .output()
        .expect("running lavit")
}

/// Runs `lavit args`, which must succeed without a panic; returns its stdout.
#[track_caller]
pub fn ok(args: &[&str]) -> String {
    let out = lavit(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "lavit {args:?} failed: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Every file under `path` (or `path` itself) with its bytes, sorted: what a failed command
/// must leave unchanged. The writers' lock files (`.lavit-*.lock`, which say who holds an
/// output while a command runs) are not outputs and are left out.
pub fn snapshot(path: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    if path.is_file() {
        return vec![(path.to_path_buf(), std::fs::read(path).unwrap())];
    }
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(path) else {
        return out;
    };
    for e in rd {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap_or_default().to_string_lossy();
        if name.starts_with(".lavit-") && name.ends_with(".lock") {
            continue;
        }
        if p.is_dir() {
            out.extend(snapshot(&p));
        } else {
            out.push((p.clone(), std::fs::read(&p).unwrap()));
        }
    }
    out.sort();
    out
}

/// A finished command failed cleanly: a non-zero exit, exactly one `error:` line on stderr
/// naming `needle` (case-insensitive), no panic.
#[track_caller]
pub fn assert_failed_cleanly(what: &str, res: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert!(!res.status.success(), "{what} should fail");
    assert!(!stderr.contains("panicked"), "{what} panicked: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{what}: want one line, got {stderr}");
    assert!(
        lines[0].starts_with("error: ") && lines[0].to_lowercase().contains(&needle.to_lowercase()),
        "{what}: `{needle}` not in {stderr}"
    );
}

/// `lavit args` fails cleanly: a non-zero exit, exactly one `error:` line on stderr naming
/// `needle` (case-insensitive), no panic — and every path in `untouched` (files or folders;
/// a missing one must stay missing) exactly as it was.
#[track_caller]
pub fn fails_cleanly(args: &[&str], needle: &str, untouched: &[&Path]) {
    let before: Vec<_> = untouched
        .iter()
        .map(|p| (p.exists(), snapshot(p)))
        .collect();
    let res = lavit(args);
    assert_failed_cleanly(&format!("{args:?}"), &res, needle);
    let after: Vec<_> = untouched
        .iter()
        .map(|p| (p.exists(), snapshot(p)))
        .collect();
    assert!(before == after, "{args:?} changed its outputs");
}

/// Three training and one test question of the synthetic task (seed 2) under `dir/data`, as
/// `lavit synth` writes them: returns `(train.json, images/)`.
pub fn synth_data(dir: &Path) -> (PathBuf, PathBuf) {
    let data = dir.join("data");
    ok(&[
        "synth",
        "--out",
        s(&data),
        "--n-train",
        "3",
        "--n-test",
        "1",
        "--seed",
        "2",
    ]);
    (data.join("train.json"), data.join("images"))
}

/// `lavit extract` of `json` into `out` with `teacher` (2 layers, top-4, 2 steps), plus `extra`
/// flags.
pub fn extract_args<'a>(
    teacher: &'a Path,
    json: &'a Path,
    images: &'a Path,
    out: &'a Path,
    extra: &[&'a str],
) -> Vec<&'a str> {
    let mut a = vec![
        "extract",
        "--teacher",
        s(teacher),
        "--data",
        s(json),
        "--images",
        s(images),
        "--out",
        s(out),
        "--layers",
        "2",
        "--top-k",
        "4",
        "--steps",
        "2",
    ];
    a.extend_from_slice(extra);
    a
}
