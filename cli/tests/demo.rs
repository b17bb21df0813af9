//! `lavit demo` end to end on a small budget with the shipped models: every stage runs, and
//! the report, its JSON twin and the heatmaps are written and consistent.

use std::path::PathBuf;
use std::process::Command;

#[test]
fn small_demo_writes_report_and_heatmaps() {
    let assets = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("run by cargo test"))
        .join("../assets/synthetic");
    assert!(
        assets.join("teacher/config.json").is_file(),
        "shipped teacher missing"
    );
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("demo");
    let res = Command::new(env!("CARGO_BIN_EXE_lavit"))
        .args([
            "demo",
            "--n-train",
            "16",
            "--n-test",
            "6",
            "--steps",
            "3",
            "--ablate",
            "gate",
            "--gate-closed",
            "0.4",
            "--out",
        ])
        .arg(&out)
        .arg("--assets")
        .arg(&assets)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert!(res.status.success(), "{stderr}");
    let stdout = String::from_utf8_lossy(&res.stdout);
    for name in ["teacher", "baseline", "lavit", "lavit-no-gate"] {
        assert!(
            stdout.contains(&format!("| {name} |")),
            "{name} missing from the table:\n{stdout}"
        );
    }
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["students"].as_array().unwrap().len(), 3);
    assert_eq!(report["teacher"]["accuracy"]["n"], 6);
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    for h in report["heatmaps"].as_array().unwrap() {
        let rel = h.as_str().unwrap();
        assert!(out.join(rel).is_file(), "{rel}");
        assert!(md.contains(rel));
        // Side by side: image + region, teacher, baseline, LaViT (≥ 4 panels of the 168-px
        // scene across), one row per latent step (K = 3).
        let img = image::open(out.join(rel)).unwrap();
        assert!(
            img.width() >= 4 * 168 && img.height() >= 3 * 168,
            "expected 4 panels across and 3 latent steps down, got {}x{}",
            img.width(),
            img.height()
        );
    }
    assert!(!report["heatmaps"].as_array().unwrap().is_empty());
    // Every model answered every test question.
    let answers = std::fs::read_to_string(out.join("answers.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = answers
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4 * 6);
    let teacher_right = lines
        .iter()
        .filter(|l| l["model"] == "teacher" && l["correct"] == true)
        .count();
    let acc = report["teacher"]["accuracy"]["overall"].as_f64().unwrap();
    assert!((teacher_right as f64 / 6.0 - acc).abs() < 1e-9);
}

/// The demo's LaViT student has no gate by default, so there is none to ablate: one clear
/// error before any work, not a second copy of the LaViT student.
#[test]
fn ablating_an_absent_gate_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("demo");
    let res = Command::new(env!("CARGO_BIN_EXE_lavit"))
        .args(["demo", "--ablate", "gate", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert!(!res.status.success());
    assert!(stderr.contains("no gate to remove"), "{stderr}");
    assert!(!out.exists());
}
