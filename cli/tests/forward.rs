//! `lavit forward` through the binary: parity with the HF fixture logits, and one clear line
//! with a non-zero exit (never a panic) on bad input.

use std::path::Path;

use lavit_core::io::tensors::read_safetensors;

use super::common::{assert_failed_cleanly, fixtures, lavit};

fn meta(name: &str) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(fixtures().join(name).join("reference.json")).unwrap())
        .unwrap()
}

fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
    }
}

/// Runs `lavit forward` on fixture `name` (optionally overriding model dir / image / prompt).
fn forward(
    name: &str,
    model: Option<&Path>,
    image: Option<&Path>,
    prompt: Option<&str>,
    out: &Path,
) -> std::process::Output {
    let m = meta(name);
    let model_dir = model
        .map(Path::to_path_buf)
        .unwrap_or_else(|| fixtures().join(name));
    let img = image
        .map(Path::to_path_buf)
        .unwrap_or_else(|| fixtures().join(m["image"].as_str().unwrap()));
    let max = m["max_pixels"].to_string();
    let min = m["min_pixels"].to_string();
    lavit(&[
        "forward",
        "--model",
        model_dir.to_str().unwrap(),
        "--image",
        img.to_str().unwrap(),
        "--prompt",
        prompt.unwrap_or(m["question"].as_str().unwrap()),
        "--max-pixels",
        &max,
        "--min-pixels",
        &min,
        "--out",
        out.to_str().unwrap(),
    ])
}

#[test]
fn forward_matches_hf_logits_on_each_fixture() {
    let tmp = tempfile::tempdir().unwrap();
    for name in ["tiny-gqa", "tiny-tied"] {
        let out = tmp.path().join(format!("{name}.safetensors"));
        let res = forward(name, None, None, None, &out);
        assert!(
            res.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&res.stderr)
        );
        let ours = read_safetensors(&out).unwrap();
        let theirs =
            read_safetensors(&fixtures().join(name).join("reference.safetensors")).unwrap();
        let n_prompt = meta(name)["n_prompt_tokens"].as_u64().unwrap() as usize;
        // HF's fixture sequence is prompt + answer; causal attention makes the prompt rows equal.
        let ids = ours["input_ids"].to_i64();
        assert_eq!(
            ids,
            theirs["input_ids"].to_i64()[..n_prompt].to_vec(),
            "{name}: ids"
        );
        assert_eq!(
            ours["image_grid_thw"].to_i64(),
            theirs["image_grid_thw"].to_i64()
        );
        let vocab = ours["logits"].shape()[1];
        let ref_logits = &theirs["logits"].to_f32()[..n_prompt * vocab];
        let d = ours["logits"]
            .to_f32()
            .iter()
            .zip(ref_logits)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(d <= 1e-4, "{name}: logits max abs error {d:e}");
        for key in ["pixel_values", "last_hidden_state"] {
            assert!(ours.contains_key(key), "{name}: {key} missing");
        }
    }
}

/// Asserts a failed run: non-zero exit, one line on stderr naming `needle`, no panic, and no
/// output file.
#[track_caller]
fn assert_clean_failure(res: &std::process::Output, needle: &str, out: &Path) {
    assert_failed_cleanly("lavit forward", res, needle);
    assert!(!out.exists(), "an output was written despite the error");
}

#[test]
fn bad_inputs_fail_with_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out.safetensors");
    let name = "tiny-gqa";

    // Truncated safetensors file.
    let trunc = tmp.path().join("truncated");
    copy_dir(&fixtures().join(name), &trunc);
    let w = trunc.join("model.safetensors");
    let len = std::fs::metadata(&w).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&w)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    assert_clean_failure(
        &forward(name, Some(&trunc), None, None, &out),
        "model.safetensors",
        &out,
    );

    // config.json with a required field removed.
    let cfg_dir = tmp.path().join("nocfg");
    copy_dir(&fixtures().join(name), &cfg_dir);
    let mut cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(cfg_dir.join("config.json")).unwrap()).unwrap();
    cfg.as_object_mut().unwrap().remove("num_hidden_layers");
    std::fs::write(
        cfg_dir.join("config.json"),
        serde_json::to_vec(&cfg).unwrap(),
    )
    .unwrap();
    assert_clean_failure(
        &forward(name, Some(&cfg_dir), None, None, &out),
        "num_hidden_layers",
        &out,
    );

    // A file that is not an image.
    let not_img = tmp.path().join("notes.png");
    std::fs::write(&not_img, b"this is not a picture").unwrap();
    assert_clean_failure(
        &forward(name, None, Some(&not_img), None, &out),
        "not a readable image",
        &out,
    );

    // A zero-byte image file.
    let empty = tmp.path().join("empty.jpg");
    std::fs::write(&empty, b"").unwrap();
    assert_clean_failure(
        &forward(name, None, Some(&empty), None, &out),
        "image",
        &out,
    );

    // A prompt whose image slots do not match the one image.
    assert_clean_failure(
        &forward(name, None, None, Some("<image> and <image>?"), &out),
        "image slot",
        &out,
    );

    // Missing model directory.
    let missing = tmp.path().join("no-such-model");
    assert_clean_failure(
        &forward(name, Some(&missing), None, None, &out),
        "no-such-model",
        &out,
    );

    // A weight with the wrong shape names the key and both shapes.
    let bad = tmp.path().join("badshape");
    copy_dir(&fixtures().join(name), &bad);
    let mut cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bad.join("config.json")).unwrap()).unwrap();
    cfg["intermediate_size"] = serde_json::json!(100);
    std::fs::write(bad.join("config.json"), serde_json::to_vec(&cfg).unwrap()).unwrap();
    let res = forward(name, Some(&bad), None, None, &out);
    assert_clean_failure(&res, "mlp", &out);
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert!(
        stderr.contains("[96, 64]") && stderr.contains("[100, 64]"),
        "{stderr}"
    );

    // Unknown backend lists what is available.
    let res = lavit(&[
        "forward",
        "--model",
        "x",
        "--image",
        "y",
        "--prompt",
        "p",
        "--out",
        "z",
        "--backend",
        "tpu",
    ]);
    assert_clean_failure(&res, "unknown backend `tpu`", Path::new("z"));
}
