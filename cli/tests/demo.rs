//! `lavit demo` end to end on a small budget with the shipped models: every stage runs, and
//! the report, its JSON twin and the heatmaps are written and consistent; the default
//! condition (the bottleneck, the language-prior task) is what the students and the report
//! record.

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
            "last-layer",
            "--gaze-layers",
            "0,1",
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
    for name in ["teacher", "baseline", "lavit", "lavit-last-layer"] {
        assert!(
            stdout.contains(&format!("| {name} |")),
            "{name} missing from the table:\n{stdout}"
        );
    }
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["students"].as_array().unwrap().len(), 3);
    assert_eq!(report["teacher"]["accuracy"]["n"], 6);
    // The binary's commit, the bottleneck and the language prior are recorded.
    assert!(!report["config"]["commit"].as_str().unwrap().is_empty());
    assert_eq!(report["config"]["bottleneck"], true);
    assert!(report["task"]["prior"]["strength"].as_f64().unwrap() > 0.0);
    let prior = &report["students"][1]["accuracy"]["prior"];
    assert!(
        prior["n_contradicting"].as_u64().unwrap() + prior["n_agreeing"].as_u64().unwrap() == 6
    );
    assert!(stdout.contains("prior-contradicting"), "{stdout}");
    for (name, gaze) in [("lavit", "[0,1]"), ("lavit-last-layer", "[2]")] {
        let cfg: serde_json::Value = serde_json::from_slice(
            &std::fs::read(out.join(format!("students/{name}/final/config.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(cfg["lavit"]["bottleneck"], true, "{name}");
        assert_eq!(cfg["lavit"]["gaze_layers"].to_string(), gaze, "{name}");
    }
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

/// Under the demo's default bottleneck no student has a gate, so there is none to ablate: one
/// clear error before any work, not a second copy of the LaViT student.
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
