//! Bad input to extract, train, infer and viz — one test per command, so one failure does not
//! hide the rest: a wrong path, a corrupt image, malformed JSON, malformed TOML, a teacher
//! whose width does not match the store, an unknown backend, an empty or over-long question
//! each give one `error:` line and a non-zero exit, without a panic, and leave the outputs that
//! were there before exactly as they were. (`eval`: bench_eval.rs; `forward`: forward.rs.)

use std::path::{Path, PathBuf};

use super::common::{extract_args, fails_cleanly, ok, root, s, student, synth_data};

/// Data, a good signal store and broken copies of the inputs, made per test.
struct Inputs {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    teacher: PathBuf,
    json: PathBuf,
    images: PathBuf,
    bad_json: PathBuf,
    bad_images: PathBuf,
    store: PathBuf,
    nowhere: PathBuf,
}

impl Inputs {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let (json, images) = synth_data(&dir);
        let teacher = root().join("tests/fixtures/tiny-gqa");
        let store = dir.join("store");
        ok(&extract_args(&teacher, &json, &images, &store, &[]));
        let bad_json = dir.join("bad.json");
        std::fs::write(&bad_json, "[{\"image\": \"train-00000.png\", ").unwrap();
        let bad_images = dir.join("bad_images");
        std::fs::create_dir_all(&bad_images).unwrap();
        for f in std::fs::read_dir(&images).unwrap() {
            let p = f.unwrap().path();
            std::fs::write(
                bad_images.join(p.file_name().unwrap()),
                b"\x89PNG\r\n\x1a\n broken",
            )
            .unwrap();
        }
        Self {
            nowhere: dir.join("nowhere"),
            _tmp: tmp,
            dir,
            teacher,
            json,
            images,
            bad_json,
            bad_images,
            store,
        }
    }
}

#[test]
fn extract_fails_cleanly() {
    let i = Inputs::new();
    let (store, nowhere) = (&i.store, &i.nowhere);
    let run = |teacher: &Path, data: &Path, imgs: &Path, extra: &[&str], needle: &str| {
        fails_cleanly(
            &extract_args(teacher, data, imgs, store, extra),
            needle,
            &[store],
        );
    };
    run(nowhere, &i.json, &i.images, &[], "nowhere");
    run(&i.teacher, nowhere, &i.images, &[], "nowhere");
    run(&i.teacher, &i.bad_json, &i.images, &[], "invalid JSON");
    run(
        &i.teacher,
        &i.json,
        &i.images,
        &["--backend", "tpu"],
        "unknown backend",
    );
    run(
        &i.teacher,
        &i.json,
        &i.images,
        &["--traj-rows", "sideways"],
        "trajectory rows",
    );
    // Another teacher into this store: d_T differs (tiny-tied is wider than tiny-gqa).
    run(
        &root().join("tests/fixtures/tiny-tied"),
        &i.json,
        &i.images,
        &[],
        "d_T",
    );
    // A store with one sample done, resumed over broken images: fails on the next sample.
    let partial = i.dir.join("partial");
    ok(&extract_args(
        &i.teacher,
        &i.json,
        &i.images,
        &partial,
        &["--limit", "1"],
    ));
    fails_cleanly(
        &extract_args(&i.teacher, &i.json, &i.bad_images, &partial, &[]),
        "not a readable image",
        &[&partial],
    );
}

#[test]
fn train_fails_cleanly() {
    let i = Inputs::new();
    let run_dir = i.dir.join("run");
    std::fs::create_dir_all(&run_dir).unwrap();
    std::fs::write(run_dir.join("metrics.jsonl"), "{\"step\": 1}\n").unwrap();
    let base = root().join("tests/fixtures/tiny-tied");
    let train = |student: &Path, signals: &Path, imgs: &Path, extra: &[&str], needle: &str| {
        let mut a = vec![
            "train",
            "--student",
            s(student),
            "--max-pixels",
            "9408",
            "--signals",
            s(signals),
            "--images",
            s(imgs),
            "--out",
            s(&run_dir),
            "--steps",
            "1",
        ];
        a.extend_from_slice(extra);
        fails_cleanly(&a, needle, &[&run_dir, &i.store]);
    };
    train(&base, &i.nowhere, &i.images, &[], "nowhere");
    train(
        &base,
        &i.store,
        &i.images,
        &["--backend", "tpu"],
        "unknown backend",
    );
    let bad_toml = i.dir.join("bad.toml");
    std::fs::write(&bad_toml, "steps = \"many\"\n").unwrap();
    train(
        &base,
        &i.store,
        &i.images,
        &["--config", s(&bad_toml)],
        "bad.toml",
    );
    train(&base, &i.store, &i.bad_images, &[], "not a readable image");
    train(
        &base,
        &i.store,
        &i.images,
        &["--traj-grad", "sideways"],
        "traj-grad",
    );
    train(
        &base,
        &i.store,
        &i.images,
        &["--stage2-lr", "1e-4", "--gate", "off"],
        "two-stage",
    );
    let corrupt_store = i.dir.join("corrupt_store");
    std::fs::create_dir_all(&corrupt_store).unwrap();
    for f in std::fs::read_dir(&i.store).unwrap() {
        let p = f.unwrap().path();
        if p.is_file() {
            std::fs::copy(&p, corrupt_store.join(p.file_name().unwrap())).unwrap();
        }
    }
    std::fs::write(corrupt_store.join("index.jsonl"), "{\"id\": \n").unwrap();
    train(&base, &corrupt_store, &i.images, &[], "index.jsonl");
    // A LaViT student built for another teacher (its d_T) on this store (d_T 64).
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(student().join("config.json")).unwrap()).unwrap();
    let d_t = meta["lavit"]["d_teacher"].as_u64().unwrap();
    assert_ne!(d_t, 64);
    fails_cleanly(
        &[
            "train",
            "--student",
            s(&student()),
            "--signals",
            s(&i.store),
            "--images",
            s(&i.images),
            "--out",
            s(&run_dir),
            "--steps",
            "1",
        ],
        &format!("d_T = {d_t}"),
        &[&run_dir, &i.store],
    );
}

#[test]
fn infer_fails_cleanly() {
    let i = Inputs::new();
    let heat = i.dir.join("heat");
    std::fs::create_dir_all(&heat).unwrap();
    std::fs::write(heat.join("latent-1.png"), b"old").unwrap();
    let img = i.images.join("train-00000.png");
    let bad_img = i.bad_images.join("train-00000.png");
    let infer = |model: &Path, image: &Path, question: &str, extra: &[&str], needle: &str| {
        let mut a = vec![
            "infer",
            "--model",
            s(model),
            "--image",
            s(image),
            "--question",
            question,
            "--heatmaps",
            s(&heat),
            "--max-new-tokens",
            "4",
        ];
        a.extend_from_slice(extra);
        fails_cleanly(&a, needle, &[&heat]);
    };
    let student = student();
    infer(&i.nowhere, &img, "What colour?", &[], "nowhere");
    infer(
        &student,
        &i.nowhere.join("x.png"),
        "What colour?",
        &[],
        "nowhere",
    );
    infer(
        &student,
        &bad_img,
        "What colour?",
        &[],
        "not a readable image",
    );
    infer(
        &student,
        &img,
        "What colour?",
        &["--backend", "tpu"],
        "unknown backend",
    );
    infer(&student, &img, "   ", &[], "the question is empty");
    let long = "colour ".repeat(3000);
    infer(&student, &img, &long, &[], "max_position_embeddings");
    let bad_model = i.dir.join("bad_model");
    std::fs::create_dir_all(&bad_model).unwrap();
    for f in [
        "model.safetensors",
        "tokenizer.json",
        "lavit_heads.safetensors",
    ] {
        std::fs::copy(student.join(f), bad_model.join(f)).unwrap();
    }
    std::fs::write(bad_model.join("config.json"), "{\"model_type\": ").unwrap();
    infer(&bad_model, &img, "What colour?", &[], "config.json");
}

#[test]
fn viz_fails_cleanly() {
    let i = Inputs::new();
    let pic = i.dir.join("viz.png");
    std::fs::write(&pic, b"old picture").unwrap();
    let viz = |signals: &Path, id: &str, imgs: &Path, needle: &str| {
        fails_cleanly(
            &[
                "viz",
                "--signals",
                s(signals),
                "--id",
                id,
                "--images",
                s(imgs),
                "--out",
                s(&pic),
            ],
            needle,
            &[&pic],
        );
    };
    viz(&i.nowhere, "train-00000", &i.images, "nowhere");
    viz(&i.store, "no-such-id", &i.images, "no-such-id");
    viz(
        &i.store,
        "train-00000",
        &i.bad_images,
        "not a readable image",
    );
}

/// `lavit synth --task TASK --out OUT` with a small split.
fn synth_task_args<'a>(task: &'a Path, out: &'a Path) -> Vec<&'a str> {
    vec![
        "synth",
        "--task",
        s(task),
        "--out",
        s(out),
        "--n-train",
        "10",
        "--n-test",
        "1",
    ]
}

/// `lavit synth --task FILE` draws the task of a `task.json` (here the vertical, grounded one),
/// refuses a missing file or a task the generator cannot draw with one line, and does not mix
/// with the scene flags it replaces.
#[test]
fn synth_reads_a_task_file() {
    let tmp = tempfile::tempdir().unwrap();
    let (task, out) = (tmp.path().join("task.json"), tmp.path().join("data"));
    let vertical = r#"{"size":168,"min_objects":3,"max_objects":5,"background":"zones","steps":"grounded","relation":"vertical"}"#;
    std::fs::write(&task, vertical).unwrap();
    ok(&synth_task_args(&task, &out));
    let train: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("train.json")).unwrap()).unwrap();
    let questions: Vec<&str> = train
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["conversations"][0]["value"].as_str().unwrap())
        .collect();
    assert!(
        questions.iter().any(|q| q.contains("above or below")),
        "{questions:?}"
    );
    assert!(!questions.iter().any(|q| q.contains("left or right")));

    let (tiny, nowhere) = (tmp.path().join("tiny.json"), tmp.path().join("nowhere"));
    std::fs::write(&tiny, vertical.replace("168", "40")).unwrap();
    fails_cleanly(&synth_task_args(&tiny, &nowhere), "cells", &[&nowhere]);
    let missing = nowhere.join("task.json");
    fails_cleanly(&synth_task_args(&missing, &nowhere), "nowhere", &[&nowhere]);
    // The library's error already names its cause; the line does not repeat it.
    let stderr =
        String::from_utf8_lossy(&super::common::lavit(&synth_task_args(&missing, &nowhere)).stderr)
            .to_string();
    assert_eq!(stderr.matches("os error").count(), 1, "{stderr}");
    let mut mixed = synth_task_args(&task, &nowhere);
    mixed.extend(["--relation", "vertical"]);
    let res = super::common::lavit(&mixed);
    assert!(!res.status.success());
    assert!(String::from_utf8_lossy(&res.stderr).contains("cannot be used with"));
}
