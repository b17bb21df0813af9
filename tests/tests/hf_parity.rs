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
use lavit_tests::{assert_close, fixture, reference, reference_meta, test_devices, tolerance};

const MODELS: [&str; 2] = ["tiny-gqa", "tiny-tied"];

/// Host inputs for fixture `name`: the chat prompt (generation prompt) followed by the answer.
fn host_inputs(name: &str, ckpt: &Checkpoint) -> (HostInputs, usize) {
    let meta = reference_meta(name);
    let tok = ckpt.tokenizer(None).unwrap();
    let mut proc = ckpt.processor.clone();
    proc.min_pixels = meta["min_pixels"].as_u64().unwrap() as usize;
    proc.max_pixels = meta["max_pixels"].as_u64().unwrap() as usize;
    let img = load_rgb(&fixture(meta["image"].as_str().unwrap())).unwrap();
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
            &p.pixel_values,
            &r[&format!("{case}.pixel_values")].to_f32(),
            1e-5,
        );
    }
}

#[test]
fn forward_matches_hf_logits_hidden_states_vision_and_attention_rows() {
    for (backend, device) in test_devices() {
        for name in MODELS {
            let r = reference(name);
            let meta = reference_meta(name);
            let ckpt = Checkpoint::open(&fixture(name)).unwrap();
            let model = ckpt.load(&device).unwrap();
            let (host, _) = host_inputs(name, &ckpt);
            let inputs = host.to_device(&device);
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
            let capture = RowCapture {
                rows: index_tensor(&rows, &device),
                cols: index_tensor(&cols, &device),
            };
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
            let tol = tolerance(&backend);
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
            assert_close(
                &tag("logits"),
                &to_vec_f32(out.logits.unwrap()),
                &r["logits"].to_f32(),
                tol,
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
