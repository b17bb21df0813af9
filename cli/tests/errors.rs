//! Bad input to extract, train, infer and viz: a wrong path, a corrupt image, malformed JSON,
//! malformed TOML, a teacher whose width does not match the store and an unknown backend each
//! give one `error:` line and a non-zero exit, without a panic, and leave the outputs that were
//! there before exactly as they were. (`eval`: bench_eval.rs; `forward`: forward.rs.)

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("run by cargo test")).join("..")
}

fn lavit(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_lavit"))
        .args(args)
        .output()
        .expect("running lavit")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Every file under `dir` with its bytes (sorted), to check a failed run changed nothing.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    if dir.is_file() {
        return vec![(dir.to_path_buf(), std::fs::read(dir).unwrap())];
    }
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(snapshot(&p));
        } else {
            out.push((p.clone(), std::fs::read(&p).unwrap()));
        }
    }
    out.sort();
    out
}

fn fails(args: &[&str], needle: &str, outputs: &[&Path]) {
    let before: Vec<_> = outputs.iter().map(|p| snapshot(p)).collect();
    let res = lavit(args);
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert!(!res.status.success(), "{args:?} should fail");
    assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{args:?}: want one line, got {stderr}");
    assert!(
        lines[0].starts_with("error: ") && lines[0].contains(needle),
        "{args:?}: `{needle}` not in {stderr}"
    );
    let after: Vec<_> = outputs.iter().map(|p| snapshot(p)).collect();
    assert!(before == after, "{args:?} changed its outputs");
}

#[test]
fn bad_inputs_to_every_command() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let data = t.join("data");
    let out = lavit(&[
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
    assert!(out.status.success());
    let teacher = root().join("tests/fixtures/tiny-gqa");
    let student = root().join("assets/synthetic/student-lavit");
    let (json, images) = (data.join("train.json"), data.join("images"));

    // A good store to train from / render, made once.
    let store = t.join("store");
    let ok = lavit(&[
        "extract",
        "--teacher",
        s(&teacher),
        "--data",
        s(&json),
        "--images",
        s(&images),
        "--out",
        s(&store),
        "--layers",
        "2",
        "--top-k",
        "4",
        "--steps",
        "2",
    ]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );

    let bad_json = t.join("bad.json");
    std::fs::write(&bad_json, "[{\"image\": \"train-00000.png\", ").unwrap();
    let bad_images = t.join("bad_images");
    std::fs::create_dir_all(&bad_images).unwrap();
    for f in std::fs::read_dir(&images).unwrap() {
        let p = f.unwrap().path();
        std::fs::write(
            bad_images.join(p.file_name().unwrap()),
            b"\x89PNG\r\n\x1a\n broken",
        )
        .unwrap();
    }
    let nowhere = t.join("nowhere");

    // extract: existing store must survive every failure.
    let extract = |teacher: &Path, data: &Path, imgs: &Path, extra: &[&str], needle: &str| {
        let mut a = vec![
            "extract",
            "--teacher",
            s(teacher),
            "--data",
            s(data),
            "--images",
            s(imgs),
            "--out",
            s(&store),
            "--layers",
            "2",
            "--top-k",
            "4",
            "--steps",
            "2",
        ];
        a.extend_from_slice(extra);
        fails(&a, needle, &[&store]);
    };
    extract(&nowhere, &json, &images, &[], "nowhere");
    extract(&teacher, &nowhere, &images, &[], "nowhere");
    extract(&teacher, &bad_json, &images, &[], "invalid JSON");
    // A store with one sample done, resumed over broken images: fails on the next sample.
    let partial = t.join("partial");
    let ok = lavit(&[
        "extract",
        "--teacher",
        s(&teacher),
        "--data",
        s(&json),
        "--images",
        s(&images),
        "--out",
        s(&partial),
        "--layers",
        "2",
        "--top-k",
        "4",
        "--steps",
        "2",
        "--limit",
        "1",
    ]);
    assert!(ok.status.success());
    fails(
        &[
            "extract",
            "--teacher",
            s(&teacher),
            "--data",
            s(&json),
            "--images",
            s(&bad_images),
            "--out",
            s(&partial),
            "--layers",
            "2",
            "--top-k",
            "4",
            "--steps",
            "2",
        ],
        "not a readable image",
        &[&partial],
    );
    extract(
        &teacher,
        &json,
        &images,
        &["--backend", "tpu"],
        "unknown backend",
    );
    // Another teacher into this store: d_T differs (tiny-tied is wider than tiny-gqa).
    extract(
        &root().join("tests/fixtures/tiny-tied"),
        &json,
        &images,
        &[],
        "d_T",
    );

    // train: an existing run directory must survive.
    let run = t.join("run");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(run.join("metrics.jsonl"), "{\"step\": 1}\n").unwrap();
    let base = root().join("tests/fixtures/tiny-tied");
    let train = |signals: &Path, imgs: &Path, extra: &[&str], needle: &str| {
        let mut a = vec![
            "train",
            "--student",
            s(&base),
            "--max-pixels",
            "9408",
            "--signals",
            s(signals),
            "--images",
            s(imgs),
            "--out",
            s(&run),
            "--steps",
            "1",
        ];
        a.extend_from_slice(extra);
        fails(&a, needle, &[&run, &store]);
    };
    train(&nowhere, &images, &[], "nowhere");
    train(&store, &images, &["--backend", "tpu"], "unknown backend");
    let bad_toml = t.join("bad.toml");
    std::fs::write(&bad_toml, "steps = \"many\"\n").unwrap();
    train(&store, &images, &["--config", s(&bad_toml)], "bad.toml");
    train(&store, &bad_images, &[], "not a readable image");
    let corrupt_store = t.join("corrupt_store");
    std::fs::create_dir_all(&corrupt_store).unwrap();
    for f in std::fs::read_dir(&store).unwrap() {
        let p = f.unwrap().path();
        if p.is_file() {
            std::fs::copy(&p, corrupt_store.join(p.file_name().unwrap())).unwrap();
        }
    }
    std::fs::write(corrupt_store.join("index.jsonl"), "{\"id\": \n").unwrap();
    train(&corrupt_store, &images, &[], "index.jsonl");
    // A LaViT student built for another teacher (d_T 128) on this store (d_T 64).
    fails(
        &[
            "train",
            "--student",
            s(&student),
            "--signals",
            s(&store),
            "--images",
            s(&images),
            "--out",
            s(&run),
            "--steps",
            "1",
        ],
        "d_T = 128",
        &[&run, &store],
    );

    // infer: an existing heatmap folder must survive.
    let heat = t.join("heat");
    std::fs::create_dir_all(&heat).unwrap();
    std::fs::write(heat.join("latent-1.png"), b"old").unwrap();
    let img = images.join("train-00000.png");
    let bad_img = bad_images.join("train-00000.png");
    let infer = |model: &Path, image: &Path, extra: &[&str], needle: &str| {
        let mut a = vec![
            "infer",
            "--model",
            s(model),
            "--image",
            s(image),
            "--question",
            "What colour?",
            "--heatmaps",
            s(&heat),
            "--max-new-tokens",
            "4",
        ];
        a.extend_from_slice(extra);
        fails(&a, needle, &[&heat]);
    };
    infer(&nowhere, &img, &[], "nowhere");
    infer(&student, &nowhere.join("x.png"), &[], "nowhere");
    infer(&student, &bad_img, &[], "not a readable image");
    infer(&student, &img, &["--backend", "tpu"], "unknown backend");
    let bad_model = t.join("bad_model");
    std::fs::create_dir_all(&bad_model).unwrap();
    for f in [
        "model.safetensors",
        "tokenizer.json",
        "lavit_heads.safetensors",
    ] {
        std::fs::copy(student.join(f), bad_model.join(f)).unwrap();
    }
    std::fs::write(bad_model.join("config.json"), "{\"model_type\": ").unwrap();
    infer(&bad_model, &img, &[], "config.json");

    // viz: an existing picture must survive.
    let pic = t.join("viz.png");
    std::fs::write(&pic, b"old picture").unwrap();
    let viz = |signals: &Path, id: &str, imgs: &Path, needle: &str| {
        fails(
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
    viz(&nowhere, "train-00000", &images, "nowhere");
    viz(&store, "no-such-id", &images, "no-such-id");
    viz(&store, "train-00000", &bad_images, "not a readable image");
}
