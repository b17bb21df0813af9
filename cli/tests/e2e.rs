//! The real-data workflow through the binary on tiny inputs: synth → extract → train → infer →
//! eval, checking that every output exists and parses.

use super::common::{fixtures, ok as lavit, s};

#[test]
fn extract_train_infer_eval() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    lavit(&[
        "synth",
        "--out",
        s(&data),
        "--n-train",
        "6",
        "--n-test",
        "4",
        "--seed",
        "3",
    ]);
    let store = tmp.path().join("signals");
    // Extraction settings from TOML, one overridden by a flag.
    let xcfg = tmp.path().join("extract.toml");
    std::fs::write(&xcfg, "layers = 2\ntop_k = 4\nsteps = 5\n").unwrap();
    let teacher = fixtures().join("tiny-gqa");
    let out = lavit(&[
        "extract",
        "--teacher",
        s(&teacher),
        "--data",
        s(&data.join("train.json")),
        "--images",
        s(&data.join("images")),
        "--out",
        s(&store),
        "--config",
        s(&xcfg),
        "--steps",
        "2",
    ]);
    assert!(out.contains("extracted 6 samples"), "{out}");
    let index = std::fs::read_to_string(store.join("index.jsonl")).unwrap();
    assert_eq!(index.lines().count(), 6);
    for l in index.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert!(
            v["steps"].as_array().unwrap().len() <= 2,
            "--steps overrides the TOML"
        );
    }

    // The student: TOML config with a flag override.
    let cfg = tmp.path().join("train.toml");
    std::fs::write(&cfg, "steps = 5\nlr = 1e-3\ngrad_accum = 2\nnum_latent = 2\ngate = \"linear:1:2\"\ncheckpoint_every = 2\n").unwrap();
    let run = tmp.path().join("run");
    let student = fixtures().join("tiny-tied");
    lavit(&[
        "train",
        "--student",
        s(&student),
        "--signals",
        s(&store),
        "--images",
        s(&data.join("images")),
        "--out",
        s(&run),
        "--config",
        s(&cfg),
        "--steps",
        "4",
        "--max-pixels",
        "9408",
    ]);
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), 4, "--steps overrides the TOML");
    for l in metrics.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert!(v["traj"].as_f64().unwrap().is_finite() && v["vtop"].as_f64().is_some());
    }
    let model = run.join("final");
    let cfgjson: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(model.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfgjson["lavit"]["num_latent"], 2);

    let heat = tmp.path().join("heat");
    let img = data.join("images/test-00000.png");
    let out = lavit(&[
        "infer",
        "--model",
        s(&model),
        "--image",
        s(&img),
        "--question",
        "What colour is the circle?",
        "--force-lvr",
        "--heatmaps",
        s(&heat),
        "--json",
        "--max-new-tokens",
        "6",
    ]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["latent_steps"].as_array().unwrap().len(), 2);
    assert!(heat.join("latent-1.png").is_file() && heat.join("latent-2.png").is_file());

    let results = tmp.path().join("results.jsonl");
    let out = lavit(&[
        "eval",
        "--model",
        s(&model),
        "--bench",
        "synthetic",
        "--data-root",
        s(&data),
        "--out",
        s(&results),
        "--max-new-tokens",
        "8",
    ]);
    assert!(out.contains("| all | 4 |"), "{out}");
    let lines = std::fs::read_to_string(&results).unwrap();
    assert_eq!(lines.lines().count(), 4);
    for l in lines.lines() {
        let _: serde_json::Value = serde_json::from_str(l).unwrap();
    }
    let viz = tmp.path().join("viz.png");
    lavit(&[
        "viz",
        "--signals",
        s(&store),
        "--id",
        "train-00000",
        "--images",
        s(&data.join("images")),
        "--out",
        s(&viz),
    ]);
    assert!(viz.is_file());
}

/// A student in the reference implementation's layout answers through `lavit infer
/// --force-lvr` with one heatmap per latent token (K = 4, read from its tokenizer), and `lavit
/// export` turns it into our layout and back.
#[test]
fn reference_layout_student_infers_and_exports() {
    let tmp = tempfile::tempdir().unwrap();
    let model = fixtures().join("tiny-reference");
    let heat = tmp.path().join("heat");
    let out = lavit(&[
        "infer",
        "--model",
        s(&model),
        "--image",
        s(&fixtures().join("images/tiny-gqa.png")),
        "--question",
        "Where is the red circle?",
        "--force-lvr",
        "--max-new-tokens",
        "4",
        "--json",
        "--heatmaps",
        s(&heat),
    ]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["latent_steps"].as_array().unwrap().len(), 4);
    assert_eq!(v["heatmaps"].as_array().unwrap().len(), 4);
    for k in 1..=4 {
        assert!(heat.join(format!("latent-{k}.png")).is_file());
    }
    let ours = tmp.path().join("ours");
    let back = tmp.path().join("back");
    lavit(&["export", "--model", s(&model), "--out", s(&ours)]);
    lavit(&[
        "export",
        "--model",
        s(&ours),
        "--out",
        s(&back),
        "--layout",
        "reference",
    ]);
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(ours.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["lavit"]["traj_scale"], "none");
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(back.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["v_top_dim"], 40);
    assert!(back.join("model.safetensors.index.json").is_file());
}

/// `lavit import-signals --format reference` on training data in the reference
/// implementation's format, then `lavit train` on the store; a rerun imports nothing twice; a
/// truncated `.pth`, a V_top of the wrong shape and one holding NaN each stop the import with
/// one line naming the sample, and nothing of that sample is written.
#[test]
fn reference_signals_import_then_train() {
    use super::common::fails_cleanly;
    use lavit_core::teacher::SignalStore;
    let tmp = tempfile::tempdir().unwrap();
    let src = fixtures().join("reference-signals");
    let store = tmp.path().join("signals");
    let import = |data: &std::path::Path, out: &std::path::Path| {
        vec![
            "import-signals".to_string(),
            "--format".into(),
            "reference".into(),
            "--data".into(),
            s(data).into(),
            "--root".into(),
            s(&src).into(),
            "--images".into(),
            s(&fixtures().join("images")).into(),
            "--out".into(),
            s(out).into(),
        ]
    };
    let args = import(&src.join("train.json"), &store);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert!(lavit(&args).contains("imported 3 samples"));
    assert!(
        lavit(&args).contains("imported 0 samples"),
        "a rerun resumes"
    );
    let st = SignalStore::open(&store).unwrap();
    assert_eq!(st.records.len(), 3);
    assert_eq!((st.records[0].grid_h, st.records[0].grid_w), (5, 8));
    let run = tmp.path().join("run");
    let out = lavit(&[
        "train",
        "--student",
        s(&fixtures().join("tiny-tied")),
        "--signals",
        s(&store),
        "--images",
        s(&fixtures().join("images")),
        "--out",
        s(&run),
        "--steps",
        "2",
        "--grad-accum",
        "1",
        "--max-pixels",
        "9408",
    ]);
    assert!(out.contains("trained 2 steps on 3 samples"), "{out}");

    // Broken V_top files: the bad sample comes after a good one.
    let data: serde_json::Value =
        serde_json::from_slice(&std::fs::read(src.join("train.json")).unwrap()).unwrap();
    for (bad, needle) in [
        ("bad/truncated.pth", "truncated.pth"),
        ("bad/wrong-shape.pth", "N = 41 image tokens"),
        ("bad/nan.pth", "NaN"),
    ] {
        let mut d = data.clone();
        d["results"][1]["v_top_path_abs"] = bad.into();
        let path = tmp.path().join("bad.json");
        std::fs::write(&path, serde_json::to_vec(&d).unwrap()).unwrap();
        let out_dir = tmp.path().join(format!("bad-{}", bad.replace('/', "-")));
        let args = import(&path, &out_dir);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let before = out_dir.join("missing");
        fails_cleanly(&args, "sample 1", &[&before]);
        let e = String::from_utf8_lossy(&super::common::lavit(&args).stderr).to_string();
        assert!(e.contains(needle), "{bad}: {e}");
        let ids: Vec<String> = SignalStore::open(&out_dir)
            .map(|s| s.records.into_iter().map(|r| r.id).collect())
            .unwrap_or_default();
        assert!(
            !ids.contains(&"1".to_string()),
            "{bad}: the bad sample was written"
        );
    }
}
