//! Parity of our Qwen2.5-VL with HF transformers on the tiny random-weight fixtures made by
//! `tests/fixtures/make_fixtures.py` (see its docstring for what each model covers).
//!
//! Tolerances: f32 logits / hidden states / vision output / attention rows ≤ 1e-4 max abs;
//! pixel values ≤ 1e-5; token ids, grids and rope position ids exact.

use lavit_core::io::checkpoint::HostInputs;
use lavit_core::io::processor::{ProcessorConfig, load_rgb, process_image};
use lavit_core::io::{Checkpoint, Message};
use lavit_core::model::rope::rope_index;
use lavit_core::model::{ForwardOptions, LogitRows, RowCapture};
use lavit_core::util::{index_tensor, to_vec_f32};
use std::path::Path;

use burn::tensor::Device;
use lavit_tests::{
    assert_close, fixture, reference, reference_in, reference_meta, reference_meta_in,
    test_devices, tolerance,
};

const MODELS: [&str; 2] = ["tiny-gqa", "tiny-tied"];

/// Host inputs for fixture `name`: the chat prompt (generation prompt) followed by the answer.
fn host_inputs(name: &str, ckpt: &Checkpoint) -> (HostInputs, usize) {
    host_inputs_in(&fixture("."), name, ckpt)
}

/// [`host_inputs`] for fixture model `root/name` (its image path is relative to `root`).
fn host_inputs_in(root: &Path, name: &str, ckpt: &Checkpoint) -> (HostInputs, usize) {
    let meta = reference_meta_in(&root.join(name));
    let tok = ckpt.tokenizer(None).unwrap();
    let mut proc = ckpt.processor.clone();
    proc.min_pixels = meta["min_pixels"].as_u64().unwrap() as usize;
    proc.max_pixels = meta["max_pixels"].as_u64().unwrap() as usize;
    let img = load_rgb(&root.join(meta["image"].as_str().unwrap())).unwrap();
    let question = meta["question"].as_str().unwrap();
    let answer = meta["answer"].as_str().unwrap();
    let msgs = [Message::user_image_question(1, question)];
    let mut host = HostInputs::build(&tok, &proc, &[img], &msgs, true).unwrap();
    let n_prompt = host.input_ids.len();
    host.input_ids.extend(tok.encode(answer).unwrap());
    (host, n_prompt)
}

/// Our M-RoPE position ids and delta for `host` equal HF's `get_rope_index` in `r`.
fn assert_rope_matches(
    tag: &str,
    host: &HostInputs,
    ckpt: &Checkpoint,
    r: &std::collections::BTreeMap<String, lavit_core::io::tensors::HostTensor>,
) {
    let rope = rope_index(
        &host.input_ids,
        ckpt.config.image_token_id,
        &host.grids(),
        2,
    )
    .unwrap();
    let ours: Vec<i64> = rope.positions.iter().flatten().copied().collect();
    assert_eq!(ours, r["position_ids"].to_i64(), "{tag}: rope position ids");
    assert_eq!(
        rope.delta,
        r["rope_deltas"].to_i64()[0],
        "{tag}: rope delta"
    );
}

#[test]
fn processor_tokens_and_rope_index_match_hf() {
    for name in MODELS {
        let r = reference(name);
        let meta = reference_meta(name);
        let ckpt = Checkpoint::open(&fixture(name)).unwrap();
        let (host, n_prompt) = host_inputs(name, &ckpt);
        assert_eq!(
            n_prompt as u64,
            meta["n_prompt_tokens"].as_u64().unwrap(),
            "{name}: prompt length"
        );
        let ids: Vec<i64> = host.input_ids.iter().map(|&i| i as i64).collect();
        assert_eq!(ids, r["input_ids"].to_i64(), "{name}: input ids");
        let grid: Vec<i64> = host.grids()[0].iter().map(|&g| g as i64).collect();
        assert_eq!(grid, r["image_grid_thw"].to_i64(), "{name}: grid_thw");
        let (pix, shape) = host.pixel_values();
        assert_eq!(
            shape.to_vec(),
            r["pixel_values"].shape().to_vec(),
            "{name}: pixel shape"
        );
        assert_close(
            &format!("{name}: pixel_values"),
            &pix,
            &r["pixel_values"].to_f32(),
            1e-5,
        );

        assert_rope_matches(name, &host, &ckpt, &r);
    }
}

#[test]
fn processor_resize_paths_match_hf() {
    let bytes = std::fs::read(fixture("processor_reference.json")).unwrap();
    let cases: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let r = lavit_core::io::tensors::read_safetensors(&fixture("processor_reference.safetensors"))
        .unwrap();
    for (case, c) in cases.as_object().unwrap() {
        let cfg = ProcessorConfig {
            min_pixels: c["min_pixels"].as_u64().unwrap() as usize,
            max_pixels: c["max_pixels"].as_u64().unwrap() as usize,
            ..Default::default()
        };
        let img = load_rgb(&fixture(c["image"].as_str().unwrap())).unwrap();
        let p = process_image(&img, &cfg).unwrap();
        let grid: Vec<i64> = p.grid.iter().map(|&g| g as i64).collect();
        assert_eq!(
            grid,
            r[&format!("{case}.image_grid_thw")].to_i64(),
            "{case}: grid"
        );
        assert_close(
            case,
            &p.pixel_values(),
            &r[&format!("{case}.pixel_values")].to_f32(),
            1e-5,
        );
    }
}

#[test]
fn forward_matches_hf_logits_hidden_states_vision_and_attention_rows() {
    for (backend, device) in test_devices() {
        for name in MODELS {
            let tol = tolerance(&backend);
            assert_forward_matches_hf(&backend, &device, &fixture("."), name, tol, false);
        }
    }
}

/// Our forward pass on fixture model `root/name` equals HF's reference: the vision encoder's
/// output, every hidden state, all logits and the attention rows of the captured layers.
fn assert_forward_matches_hf(
    backend: &str,
    device: &Device,
    root: &Path,
    name: &str,
    tol: f32,
    relative_logits: bool,
) {
    let dir = root.join(name);
    let r = reference_in(&dir);
    let meta = reference_meta_in(&dir);
    let ckpt = Checkpoint::open(&dir).unwrap();
    let model = ckpt.load(device).unwrap();
    let (host, _) = host_inputs_in(root, name, &ckpt);
    let inputs = host.to_device(device);
    let rows: Vec<usize> = r["answer_positions"]
        .to_i64()
        .iter()
        .map(|&i| i as usize)
        .collect();
    let cols: Vec<usize> = r["image_positions"]
        .to_i64()
        .iter()
        .map(|&i| i as usize)
        .collect();
    let capture = RowCapture::new(index_tensor(&rows, device), index_tensor(&cols, device));
    let layers: Vec<usize> = meta["attn_layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let out = model
        .forward(
            &inputs,
            ForwardOptions {
                logits: LogitRows::All,
                output_hidden_states: true,
                capture: Some((&layers, &capture)),
                bias: None,
            },
        )
        .unwrap();
    let tag = |what: &str| format!("{backend}/{name}: {what}");
    assert_close(
        &tag("vision output"),
        &to_vec_f32(out.image_embeds.clone().unwrap()),
        &r["vision_embeds"].to_f32(),
        tol,
    );
    let n_hidden = meta["num_hidden_states"].as_u64().unwrap() as usize;
    assert_eq!(out.decoder.hidden_states.len(), n_hidden);
    for (i, h) in out.decoder.hidden_states.iter().enumerate() {
        let theirs = r[&format!("hidden_states.{i}")].to_f32();
        assert_close(
            &tag(&format!("hidden_states.{i}")),
            &to_vec_f32(h.clone()),
            &theirs,
            tol,
        );
    }
    // With `relative_logits`, logits are compared relative to their largest magnitude (when
    // above 1): at 2048 wide with tied random embeddings they reach ~1500, where one f32 ulp
    // is 1.2e-4.
    let theirs = r["logits"].to_f32();
    let scale = match relative_logits {
        true => theirs.iter().fold(1f32, |m, x| m.max(x.abs())),
        false => 1.0,
    };
    assert_close(
        &tag("logits"),
        &to_vec_f32(out.logits.unwrap()),
        &theirs,
        tol * scale,
    );
    assert_eq!(out.decoder.captured.len(), layers.len());
    for (layer, probs) in &out.decoder.captured {
        let theirs = r[&format!("attn_rows.layer{layer}")].to_f32();
        assert_close(
            &tag(&format!("attention rows, layer {layer}")),
            &to_vec_f32(probs.clone()),
            &theirs,
            tol,
        );
    }
}

/// Parity at Qwen2.5-VL-3B's real widths (text 2048 wide with 16 query / 2 KV heads and
/// M-RoPE [16, 24, 24], MLP 11008; vision 1280 wide, 16 heads, MLP 3420, windowed and full
/// attention), two layers of each, bf16 shards: the widths where head-dim splits, GQA
/// grouping and the mrope sections differ from the tiny fixtures. The 460 MB checkpoint is
/// too big to commit, so `make_fixtures.py --real-width` writes it with transformers into a
/// cache directory keyed by the script's contents (`LAVIT_FIXTURE_CACHE`, default the system
/// temp directory). Needs `python3` with torch and transformers; skips without them unless
/// `LAVIT_REQUIRE_TRANSFORMERS=1`. Runs on every backend of `LAVIT_TEST_BACKENDS`.
#[test]
fn real_width_layers_match_hf() {
    let script = fixture("make_fixtures.py");
    let bytes = std::fs::read(&script).unwrap();
    // FNV-1a of the generator: a changed script regenerates the fixture.
    let hash = bytes.iter().fold(0xcbf29ce484222325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    });
    let cache = std::env::var_os("LAVIT_FIXTURE_CACHE")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join(format!("lavit-real-width-{hash:016x}"));
    let required = std::env::var("LAVIT_REQUIRE_TRANSFORMERS").is_ok_and(|v| v == "1");
    if !cache.join("real-width/reference.json").exists() {
        let have = std::process::Command::new("python3")
            .args(["-c", "import torch, transformers"])
            .status()
            .is_ok_and(|s| s.success());
        if !have && !required {
            eprintln!("skipped: needs python3 with torch and transformers");
            return;
        }
        let partial = cache.with_extension("partial");
        let _ = std::fs::remove_dir_all(&partial);
        let status = std::process::Command::new("python3")
            .arg(&script)
            .arg("--real-width")
            .arg(&partial)
            .status()
            .expect("python3 runs");
        assert!(status.success(), "make_fixtures.py --real-width failed");
        let _ = std::fs::remove_dir_all(&cache);
        std::fs::rename(&partial, &cache).unwrap();
    }
    for (backend, device) in test_devices() {
        let tol = tolerance(&backend);
        assert_forward_matches_hf(&backend, &device, &cache, "real-width", tol, true);
    }
}

/// The tolerance is meaningful: nudging one weight of the checkpoint by 1e-2 moves the logits
/// beyond it, so the parity test above would fail on a wrong weight.
#[test]
fn parity_detects_a_perturbed_weight() {
    use burn::module::Param;
    let device = lavit_backends::select("cpu", 0).unwrap();
    let name = "tiny-gqa";
    let r = reference(name);
    let ckpt = Checkpoint::open(&fixture(name)).unwrap();
    let mut model = ckpt.load(&device).unwrap();
    let (host, _) = host_inputs(name, &ckpt);
    let w = model.model.layers[1].self_attn.v_proj.inner.weight.val();
    let [i, o] = w.dims();
    let bump = burn::tensor::Tensor::<2>::zeros([i, o], &device).slice_fill([0..1, 0..1], 1e-2);
    model.model.layers[1].self_attn.v_proj.inner.weight = Param::from_tensor(w + bump);
    let out = model
        .forward(&host.to_device(&device), ForwardOptions::default())
        .unwrap();
    let d = lavit_tests::max_abs_diff(&to_vec_f32(out.logits.unwrap()), &r["logits"].to_f32());
    assert!(
        d > 1e-4,
        "a perturbed weight went unnoticed (max diff {d:e})"
    );
}

/// Two images in one user turn (the BLINK case): token ids, both grids, M-RoPE position ids,
/// pixels (per-patch sums) and logits equal HF's (`tiny-gqa/multi_image.*`; the two images have
/// different grids, 10×16 and 22×14).
#[test]
fn multi_image_prompt_matches_hf() {
    let name = "tiny-gqa";
    let meta = reference_meta(name);
    let multi: serde_json::Value = serde_json::from_slice(
        &std::fs::read(fixture(&format!("{name}/multi_image.json"))).unwrap(),
    )
    .unwrap();
    let r = lavit_core::io::tensors::read_safetensors(&fixture(&format!(
        "{name}/multi_image.safetensors"
    )))
    .unwrap();
    let ckpt = Checkpoint::open(&fixture(name)).unwrap();
    let tok = ckpt.tokenizer(None).unwrap();
    let mut proc = ckpt.processor.clone();
    proc.min_pixels = meta["min_pixels"].as_u64().unwrap() as usize;
    proc.max_pixels = meta["max_pixels"].as_u64().unwrap() as usize;
    let images: Vec<_> = multi["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| load_rgb(&fixture(p.as_str().unwrap())).unwrap())
        .collect();
    assert_eq!(images.len(), 2);
    let question = multi["question"].as_str().unwrap();
    let msgs = [Message::user_image_question(2, question)];
    let host = HostInputs::build(&tok, &proc, &images, &msgs, true).unwrap();

    let ids: Vec<i64> = host.input_ids.iter().map(|&i| i as i64).collect();
    assert_eq!(ids, r["input_ids"].to_i64(), "input ids");
    let grids: Vec<i64> = host.grids().iter().flatten().map(|&g| g as i64).collect();
    assert_eq!(grids, r["image_grid_thw"].to_i64(), "grids");
    assert_rope_matches("multi-image", &host, &ckpt, &r);
    let (pix, [n, d]) = host.pixel_values();
    // Summed in f64 (measured 1.2e-4 from HF's f32 sums, which round differently).
    let sums: Vec<f32> = (0..n)
        .map(|i| {
            pix[i * d..(i + 1) * d]
                .iter()
                .map(|&x| x as f64)
                .sum::<f64>() as f32
        })
        .collect();
    assert_close("pixel row sums", &sums, &r["pixel_row_sums"].to_f32(), 1e-3);

    for (backend, device) in test_devices() {
        let model = ckpt.load(&device).unwrap();
        let out = model
            .forward(
                &host.to_device(&device),
                ForwardOptions {
                    logits: LogitRows::All,
                    output_hidden_states: true,
                    capture: None,
                    bias: None,
                },
            )
            .unwrap();
        let tol = tolerance(&backend);
        assert_close(
            &format!("{backend}/multi-image: hidden_states.1"),
            &to_vec_f32(out.decoder.hidden_states[1].clone()),
            &r["hidden_states.1"].to_f32(),
            tol,
        );
        assert_close(
            &format!("{backend}/multi-image: logits"),
            &to_vec_f32(out.logits.unwrap()),
            &r["logits"].to_f32(),
            tol,
        );
    }
}

/// A fine-tune as current tooling writes it — `tests/fixtures/tiny-resaved`, saved by
/// transformers 5.24's `save_pretrained` (model and processor, every file as written: rope
/// dict with `rope_type` and `type`, vision `in_chans` and `in_channels`, `dtype`,
/// `processor_config.json`) — loads and gives HF's tokens, grid and logits; so do the older
/// `config.json` forms of the same model in `tests/fixtures/config_variants` (4.49 hub file,
/// 4.5x fine-tunes), which the fixture script checked transformers reads the same way.
#[test]
fn checkpoints_saved_by_transformers_load_in_every_config_form() {
    let name = "tiny-resaved";
    let r = reference(name);
    let meta = reference_meta(name);
    let saved = fixture(name);
    let tmp = tempfile::tempdir().unwrap();
    let mut dirs = vec![("save_pretrained".to_string(), saved.clone())];
    let mut variants: Vec<_> = std::fs::read_dir(fixture("config_variants"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    variants.sort();
    assert!(variants.len() >= 4, "config variants: {variants:?}");
    for v in variants {
        let stem = v.file_stem().unwrap().to_string_lossy().to_string();
        let dir = tmp.path().join(&stem);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(&v, dir.join("config.json")).unwrap();
        for f in [
            "model.safetensors",
            "tokenizer.json",
            "processor_config.json",
        ] {
            std::fs::copy(saved.join(f), dir.join(f)).unwrap();
        }
        dirs.push((stem, dir));
    }
    let img = load_rgb(&fixture(meta["image"].as_str().unwrap())).unwrap();
    let question = meta["question"].as_str().unwrap();
    let answer = meta["answer"].as_str().unwrap();
    for (backend, device) in test_devices() {
        for (form, dir) in &dirs {
            let tag = format!("{backend}/{form}");
            let ckpt = Checkpoint::open(dir).unwrap_or_else(|e| panic!("{tag}: {e}"));
            let tok = ckpt.tokenizer(None).unwrap();
            // The processor's settings come from processor_config.json (max_pixels below the
            // default), not from the test.
            let msgs = [Message::user_image_question(1, question)];
            let mut host = HostInputs::build(
                &tok,
                &ckpt.processor,
                std::slice::from_ref(&img),
                &msgs,
                true,
            )
            .unwrap();
            host.input_ids.extend(tok.encode(answer).unwrap());
            let grid: Vec<i64> = host.grids()[0].iter().map(|&g| g as i64).collect();
            assert_eq!(grid, r["image_grid_thw"].to_i64(), "{tag}: grid");
            let ids: Vec<i64> = host.input_ids.iter().map(|&i| i as i64).collect();
            assert_eq!(ids, r["input_ids"].to_i64(), "{tag}: input ids");
            let model = ckpt.load(&device).unwrap();
            let out = model
                .forward(&host.to_device(&device), ForwardOptions::default())
                .unwrap();
            assert_close(
                &format!("{tag}: logits"),
                &to_vec_f32(out.logits.unwrap()),
                &r["logits"].to_f32(),
                tolerance(&backend),
            );
        }
    }
}

/// Every `config.json` our export writes (the shipped synthetic-task models, the Qwen2.5-VL
/// 3B/7B/32B configs, the fixtures, a LaViT student with its `lavit` section) goes through HF
/// transformers — `Qwen2_5_VLConfig.from_pretrained` then `save_pretrained`
/// (`tests/fixtures/hf_config_roundtrip.py`) — and reads back as the same model, `lavit`
/// section included. Needs `python3` with transformers (PyTorch is not needed); skips without
/// it unless `LAVIT_REQUIRE_TRANSFORMERS=1`.
#[test]
fn our_configs_round_trip_through_transformers() {
    use lavit_core::io::config::{load_config, parse_config, to_hf_json};
    let root = fixture("..").join("..");
    let sources = [
        root.join("assets/configs/qwen2.5-vl-3b.json"),
        root.join("assets/configs/qwen2.5-vl-7b.json"),
        root.join("assets/configs/qwen2.5-vl-32b.json"),
        root.join("assets/synthetic/teacher/config.json"),
        root.join("assets/synthetic/student-lavit/config.json"),
        fixture("tiny-gqa/config.json"),
        fixture("tiny-tied/config.json"),
        fixture("tiny-resaved/config.json"),
    ];
    let tmp = tempfile::tempdir().unwrap();
    let mut args = vec![fixture("hf_config_roundtrip.py").display().to_string()];
    let mut expected = Vec::new();
    for (i, src) in sources.iter().enumerate() {
        let cfg = load_config(src).unwrap();
        let raw: serde_json::Value = serde_json::from_slice(&std::fs::read(src).unwrap()).unwrap();
        let extra = raw.get("lavit").map(|l| serde_json::json!({ "lavit": l }));
        let ours = tmp.path().join(format!("ours-{i}"));
        let back = tmp.path().join(format!("back-{i}"));
        std::fs::create_dir_all(&ours).unwrap();
        let json = to_hf_json(&cfg, extra.as_ref());
        std::fs::write(
            ours.join("config.json"),
            serde_json::to_vec_pretty(&json).unwrap(),
        )
        .unwrap();
        args.push(ours.display().to_string());
        args.push(back.display().to_string());
        expected.push((src.clone(), cfg, raw.get("lavit").cloned(), back));
    }
    let status = std::process::Command::new("python3").args(&args).status();
    let required = std::env::var("LAVIT_REQUIRE_TRANSFORMERS").is_ok_and(|v| v == "1");
    match status {
        Ok(s) if s.success() => {}
        Ok(s) if s.code() == Some(3) && !required => {
            eprintln!("skipped: python3 has no transformers (pip install transformers)");
            return;
        }
        Err(e) if !required => {
            eprintln!("skipped: no python3 ({e})");
            return;
        }
        other => panic!("hf_config_roundtrip.py failed: {other:?}"),
    }
    for (src, cfg, lavit, back) in expected {
        let bytes = std::fs::read(back.join("config.json")).unwrap();
        let again = parse_config(&bytes)
            .unwrap_or_else(|e| panic!("{}: re-saved by transformers: {e}", src.display()));
        assert_eq!(again, cfg, "{}: changed by the round trip", src.display());
        let raw: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            raw.get("lavit").cloned(),
            lavit,
            "{}: lavit section",
            src.display()
        );
    }
}

/// A student in the LaViT reference implementation's layout (`tests/fixtures/tiny-reference`,
/// made by `make_reference_student.py` with transformers: `LaViTQwen2VL` with its
/// `v_top_head` / `traj_head`, `<lvr1..4>` added to the tokenizer) loads as a LaViT student:
/// K = 4 read from the tokenizer, d_T from `v_top_dim`, HF's logits, and its heads' outputs —
/// the TrajectoryHead's scores without 1/√d, as the reference computes them. Written again in
/// either layout and reloaded, it computes exactly the same.
#[test]
fn reference_layout_student_matches_hf_and_round_trips() {
    use lavit_core::bundle::{Layout, ModelBundle};
    use lavit_core::lavit::heads::{HeadStates, TrajScale};
    let name = "tiny-reference";
    let r = reference(name);
    let meta = reference_meta(name);
    let device = lavit_backends::select("cpu", 0).unwrap();
    let s = ModelBundle::load(&fixture(name), &device).unwrap();
    let l = &s.model.lavit;
    assert_eq!(l.num_latent, 4);
    assert_eq!(l.d_teacher, 40);
    assert_eq!(
        (l.traj_scale, l.head_states),
        (TrajScale::None, HeadStates::PostNorm)
    );
    let ids: Vec<i64> = l.latent_token_ids.iter().map(|&i| i as i64).collect();
    let lat: Vec<usize> = r["latent_positions"]
        .to_i64()
        .iter()
        .map(|&p| p as usize)
        .collect();
    let want_ids: Vec<i64> = lat.iter().map(|&p| r["input_ids"].to_i64()[p]).collect();
    assert_eq!(ids, want_ids, "latent ids from the tokenizer");
    let img_pos: Vec<usize> = r["image_positions"]
        .to_i64()
        .iter()
        .map(|&p| p as usize)
        .collect();
    // HF's token ids (prompt, <lvr1..4>, answer) with our pixels for the fixture image.
    let img = load_rgb(&fixture(meta["image"].as_str().unwrap())).unwrap();
    let msgs = [Message::user_image_question(
        1,
        meta["question"].as_str().unwrap(),
    )];
    let mut host = HostInputs::build(&s.tokenizer, &s.processor, &[img], &msgs, true).unwrap();
    let grid: Vec<i64> = host.grids()[0].iter().map(|&g| g as i64).collect();
    assert_eq!(
        grid,
        r["image_grid_thw"].to_i64(),
        "grid from processor_config.json"
    );
    host.input_ids = r["input_ids"].to_i64().iter().map(|&i| i as u32).collect();
    let outputs = |s: &ModelBundle| {
        let out = s
            .vlm()
            .forward(&host.to_device(&device), ForwardOptions::default())
            .unwrap();
        let [_, n, d] = out.decoder.last_hidden_state.dims();
        let h = out.decoder.last_hidden_state.reshape([n, d]);
        let h_lat = h.clone().select(0, index_tensor(&lat, &device));
        let h_img = h.select(0, index_tensor(&img_pos, &device));
        (
            to_vec_f32(out.logits.unwrap()),
            to_vec_f32(s.model.vtop_head.forward(h_lat.clone())),
            to_vec_f32(s.model.traj_head.forward(h_lat, h_img)),
        )
    };
    let (logits, vtop, traj) = outputs(&s);
    assert_close("reference: logits", &logits, &r["logits"].to_f32(), 1e-4);
    assert_close(
        "reference: V_top head",
        &vtop,
        &r["vtop_head"].to_f32(),
        1e-4,
    );
    assert_close(
        "reference: trajectory scores",
        &traj,
        &r["traj_scores"].to_f32(),
        1e-4,
    );
    let tmp = tempfile::tempdir().unwrap();
    for layout in [Layout::Reference, Layout::Ours] {
        let dir = tmp.path().join(format!("{layout:?}"));
        s.save_as(&dir, burn::tensor::DType::F32, layout).unwrap();
        let again = ModelBundle::load(&dir, &device).unwrap();
        assert_eq!(again.model.lavit, s.model.lavit, "{layout:?}: lavit config");
        assert!(
            outputs(&again) == (logits.clone(), vtop.clone(), traj.clone()),
            "{layout:?}: export → reload is not exact"
        );
    }
}
