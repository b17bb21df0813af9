//! `lavit extract` through the binary: a run killed mid-way resumes to a complete store in
//! which every record is readable and no id appears twice; bad inputs fail cleanly.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lavit_core::teacher::SignalStore;

use super::common::fixtures;

/// A Visual-CoT dataset of `n` samples over the tiny-gqa fixture image.
fn dataset(dir: &Path, n: usize) -> (PathBuf, PathBuf) {
    let images = dir.join("images");
    std::fs::create_dir_all(&images).unwrap();
    std::fs::copy(
        fixtures().join("images/tiny-gqa.png"),
        images.join("scene.png"),
    )
    .unwrap();
    let records: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            serde_json::json!({
                "question_id": format!("q{i:04}"),
                "image": ["scene.png"],
                "conversations": [
                    {"from": "human", "value": format!("<image>\nWhat is at spot {i}?")},
                    {"from": "gpt", "value": format!("Look left. Spot {i} is red.")}
                ]
            })
        })
        .collect();
    let data = dir.join("data.json");
    std::fs::write(&data, serde_json::to_vec(&records).unwrap()).unwrap();
    (data, images)
}

fn extract_cmd(data: &Path, images: &Path, out: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_lavit"));
    c.args(["extract", "--teacher"])
        .arg(fixtures().join("tiny-gqa"))
        .arg("--data")
        .arg(data)
        .arg("--images")
        .arg(images)
        .arg("--out")
        .arg(out)
        .args(["--layers", "2", "--top-k", "4", "--flush-every", "1"]);
    c
}

fn shard_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|it| {
            it.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().ends_with(".safetensors"))
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn killed_extraction_resumes_without_loss_or_duplicates() {
    let tmp = tempfile::tempdir().unwrap();
    let n = 400;
    let (data, images) = dataset(tmp.path(), n);
    let store = tmp.path().join("store");

    let mut child = extract_cmd(&data, &images, &store)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while shard_files(&store) < 5 {
        assert!(
            child.try_wait().unwrap().is_none(),
            "extraction finished before it could be killed"
        );
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "extraction made no progress"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let partial = SignalStore::open(&store).unwrap().records.len();
    assert!(partial > 0 && partial < n, "kill left {partial} records");

    let out = extract_cmd(&data, &images, &store).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("{partial} already there")),
        "{stdout}"
    );

    let mut s = SignalStore::open(&store).unwrap();
    assert_eq!(s.records.len(), n);
    let mut ids: Vec<String> = s.records.iter().map(|r| r.id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "duplicated ids");
    // No index line appears twice either (readers dedup, but the files must be clean too).
    let index = std::fs::read_to_string(store.join("index.jsonl")).unwrap();
    assert_eq!(index.lines().count(), n);
    for r in s.records.clone() {
        let sig = s.load(&r).unwrap();
        assert_eq!(sig.traj.len(), 2, "{}: two steps", r.id);
        assert_eq!(sig.vtop.len(), sig.n_img() * sig.d_teacher);
        assert!(
            sig.traj
                .iter()
                .all(|m| m.iter().all(|v| (0.0..=1.0).contains(v)))
        );
    }
}

#[test]
fn extraction_rejects_a_teacher_of_another_width() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, images) = dataset(tmp.path(), 3);
    let store = tmp.path().join("store");
    let out = extract_cmd(&data, &images, &store).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Same store, teacher with hidden size 48 instead of 64.
    let (data2, _) = dataset(&tmp.path().join("more"), 5);
    let out = Command::new(env!("CARGO_BIN_EXE_lavit"))
        .args(["extract", "--teacher"])
        .arg(fixtures().join("tiny-tied"))
        .arg("--data")
        .arg(&data2)
        .arg("--images")
        .arg(&images)
        .arg("--out")
        .arg(&store)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("d_T = 64") && stderr.contains("48"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(
        SignalStore::open(&store).unwrap().records.len(),
        3,
        "store was modified"
    );
}
