//! `lavit bench` smoke test: the tiny shape, one timed run of each workload, JSON and table.

use std::process::Command;

#[test]
fn bench_tiny_shape_writes_json_and_table() {
    let tmp = tempfile::tempdir().unwrap();
    let json = tmp.path().join("bench.json");
    let out = Command::new(env!("CARGO_BIN_EXE_lavit"))
        .args([
            "bench",
            "--config",
            "tiny",
            "--iters",
            "1",
            "--warmup",
            "0",
            "--image-side",
            "56",
            "--decode-tokens",
            "3",
            "--d-teacher",
            "32",
            "--json",
        ])
        .arg(&json)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for row in [
        "| train step",
        "| teacher extraction",
        "| prefill",
        "| decode",
    ] {
        assert!(stdout.contains(row), "{row} missing:\n{stdout}");
    }
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(doc["tool"], "lavit");
    // 56 px → 4×4 patches → 4 merged image tokens; 32 prompt + 4 latent + 32 answer + 1 end + 2.
    assert_eq!(doc["image_tokens"], 4);
    assert_eq!(doc["sequence_tokens"], 32 + 2 + 4 + 4 + 32 + 1);
    let rows = doc["results"].as_array().unwrap();
    let names: Vec<&str> = rows
        .iter()
        .map(|r| r["workload"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["train_step", "extract", "prefill", "decode"]);
    for r in rows {
        let v = r["tokens_per_s"]
            .as_f64()
            .or(r["samples_per_s"].as_f64())
            .unwrap();
        assert!(v.is_finite() && v > 0.0, "{r}");
    }
    assert!(
        rows[1]["attention_bytes_captured"].as_u64().unwrap()
            < rows[1]["attention_bytes_all_layers"].as_u64().unwrap()
    );

    let bad = Command::new(env!("CARGO_BIN_EXE_lavit"))
        .args(["bench", "--config", "huge"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        !bad.status.success() && stderr.contains("unknown model shape `huge`"),
        "{stderr}"
    );
}

/// `lavit bench --load`: the loaded weights' bytes are the checkpoint's elements in f32 (the CPU
/// backend's run dtype; the fixture is half precision on disk), counted here from the
/// safetensors header, not by the code under test. The RSS bound itself is measured on the 3B
/// checkpoint (docs/SCALING.md): on a 1 MB model allocator noise dominates the growth.
#[test]
fn bench_load_reports_the_weights_in_their_run_dtype() {
    let dir = crate::common::fixtures().join("tiny-gqa");
    let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let mut elements = Vec::new();
    for (name, t) in header.as_object().unwrap() {
        if name != "__metadata__" {
            let shape = t["shape"].as_array().unwrap();
            elements.push(shape.iter().map(|d| d.as_u64().unwrap()).product::<u64>());
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let json = tmp.path().join("load.json");
    let stdout = crate::common::ok(&[
        "bench",
        "--load",
        crate::common::s(&dir),
        "--json",
        crate::common::s(&json),
    ]);
    assert!(stdout.contains("peak RSS growth while loading"), "{stdout}");
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(doc["weights_bytes"], 4 * elements.iter().sum::<u64>());
    assert_eq!(
        doc["largest_tensor_bytes"],
        4 * elements.iter().max().unwrap()
    );
    assert!(doc["peak_rss_growth_bytes"].as_u64().unwrap() > 0, "{doc}");

    crate::common::fails_cleanly(
        &["bench", "--load", "/nonexistent/model"],
        "/nonexistent/model",
        &[],
    );
}
