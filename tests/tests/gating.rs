//! Curriculum sensory gating on a real model (the tiny-tied fixture with latent tokens).
//!
//! With the gate closed (`g = 0`), gated queries put exactly zero attention on image keys, and
//! the answer can learn about the image only through the latent tokens: with the latent
//! tokens hidden, answer logits are unchanged when the pixels change, while the latent
//! tokens' states do change; with the latents visible, the answer does change. With `g = 1`
//! the gate adds nothing: the plain causal mask.

use burn::prelude::*;
use lavit_core::io::Checkpoint;
use lavit_core::lavit::student::{StudentSample, add_latent_tokens, init_latent_embeddings};
use lavit_core::model::{ForwardOptions, LogitRows, Qwen25Vl, RowCapture};
use lavit_core::util::{index_tensor, to_vec_f32};
use lavit_tests::{fixture, max_abs_diff};

fn setup() -> (Qwen25Vl, StudentSample, StudentSample, Device) {
    let device = lavit_backends::select("cpu", 0).unwrap();
    let ckpt = Checkpoint::open(&fixture("tiny-tied")).unwrap();
    let mut tok = ckpt.tokenizer(None).unwrap();
    let ids = add_latent_tokens(&mut tok, 3).unwrap();
    let vlm = init_latent_embeddings(ckpt.load(&device).unwrap(), &ids);
    let mut proc = ckpt.processor.clone();
    proc.max_pixels = 28 * 28 * 12;
    let img = lavit_core::io::processor::load_rgb(&fixture("images/tiny-tied.png")).unwrap();
    let mut other = img.clone();
    for p in other.pixels_mut() {
        p.0 = [255 - p.0[0], p.0[2], p.0[1]];
    }
    let a =
        StudentSample::build(&tok, &proc, &img, "How many shapes?", "Four shapes.", &ids).unwrap();
    let b = StudentSample::build(
        &tok,
        &proc,
        &other,
        "How many shapes?",
        "Four shapes.",
        &ids,
    )
    .unwrap();
    (vlm, a, b, device)
}

/// Last hidden states `[S, d]` and logits `[S, V]` under `bias`.
fn run(
    vlm: &Qwen25Vl,
    s: &StudentSample,
    bias: Option<Tensor<4>>,
    device: &Device,
) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let out = vlm
        .forward(
            &s.to_inputs(device),
            ForwardOptions {
                logits: LogitRows::All,
                bias,
                ..Default::default()
            },
        )
        .unwrap();
    let [_, n, d] = out.decoder.last_hidden_state.dims();
    let h = to_vec_f32(out.decoder.last_hidden_state.reshape([n, d]));
    let l = out.logits.unwrap();
    let v = l.dims()[1];
    let l = to_vec_f32(l);
    (
        h.chunks(d).map(|c| c.to_vec()).collect(),
        l.chunks(v).map(|c| c.to_vec()).collect(),
    )
}

fn rows(m: &[Vec<f32>], r: std::ops::Range<usize>) -> Vec<f32> {
    m[r].iter().flatten().copied().collect()
}

/// Gate bias at `g`, plus `−∞` from answer rows to the latent block when `hide_latents`.
fn bias(s: &StudentSample, g: f64, hide_latents: bool, device: &Device) -> Option<Tensor<4>> {
    let gate = s.gate_layout(true).bias(g, device);
    if !hide_latents {
        return gate;
    }
    let n = s.input_ids.len();
    let mut data = vec![0f32; n * n];
    for r in s.answer_start..n {
        for &c in &s.latent_positions {
            data[r * n + c] = f32::NEG_INFINITY;
        }
    }
    let hide = Tensor::<2>::from_data(TensorData::new(data, [n, n]), device).unsqueeze::<4>();
    Some(match gate {
        Some(g) => g + hide,
        None => hide,
    })
}

#[test]
fn closed_gate_routes_vision_only_through_latents() {
    let (vlm, a, b, device) = setup();
    let (n, ans) = (a.input_ids.len(), a.answer_start..a.input_ids.len());
    let lat = a.latent_positions[0]..a.answer_start;

    // g = 0, latents hidden from the answer: answer logits do not depend on the pixels.
    let (ha, la) = run(&vlm, &a, bias(&a, 0.0, true, &device), &device);
    let (hb, lb) = run(&vlm, &b, bias(&b, 0.0, true, &device), &device);
    let d_answer = max_abs_diff(&rows(&la, ans.clone()), &rows(&lb, ans.clone()));
    assert!(
        d_answer < 1e-5,
        "answer logits moved by {d_answer} with the gate closed"
    );
    let d_latent = max_abs_diff(&rows(&ha, lat.clone()), &rows(&hb, lat.clone()));
    assert!(
        d_latent > 1e-2,
        "latent states did not see the image ({d_latent})"
    );

    // g = 0 with the latents visible: the image reaches the answer through them.
    let (_, la) = run(&vlm, &a, bias(&a, 0.0, false, &device), &device);
    let (_, lb) = run(&vlm, &b, bias(&b, 0.0, false, &device), &device);
    assert!(max_abs_diff(&rows(&la, ans.clone()), &rows(&lb, ans.clone())) > 1e-3);

    // The open gate sees the image directly too.
    let (_, la) = run(&vlm, &a, bias(&a, 1.0, true, &device), &device);
    let (_, lb) = run(&vlm, &b, bias(&b, 1.0, true, &device), &device);
    assert!(max_abs_diff(&rows(&la, ans.clone()), &rows(&lb, ans)) > 1e-3);
    assert_eq!(n, b.input_ids.len());
}

#[test]
fn closed_gate_gives_zero_attention_to_image_and_open_gate_is_causal() {
    let (vlm, a, _, device) = setup();
    let layout = a.gate_layout(true);
    let capture = RowCapture::new(
        index_tensor(&layout.gated_rows, &device),
        index_tensor(&layout.image_cols, &device),
    );
    let layers: Vec<usize> = (0..vlm.config.text.num_hidden_layers).collect();
    let out = vlm
        .forward(
            &a.to_inputs(&device),
            ForwardOptions {
                logits: LogitRows::None,
                capture: Some((&layers, &capture)),
                bias: layout.bias(0.0, &device),
                ..Default::default()
            },
        )
        .unwrap();
    for (l, p) in &out.decoder.captured {
        let v = to_vec_f32(p.clone());
        assert!(
            v.iter().all(|&x| x == 0.0),
            "layer {l}: gated rows attend to the image"
        );
    }
    // Latent rows do attend to the image under the closed gate.
    let lat_capture = RowCapture::new(
        index_tensor(&a.latent_positions, &device),
        index_tensor(&layout.image_cols, &device),
    );
    let out = vlm
        .forward(
            &a.to_inputs(&device),
            ForwardOptions {
                logits: LogitRows::None,
                capture: Some((&layers, &lat_capture)),
                bias: layout.bias(0.0, &device),
                ..Default::default()
            },
        )
        .unwrap();
    assert!(
        to_vec_f32(out.decoder.captured[0].1.clone())
            .iter()
            .sum::<f32>()
            > 0.1
    );

    // g = 1: no bias at all, i.e. exactly the plain causal mask.
    assert!(layout.bias(1.0, &device).is_none());
    let half = layout.bias(0.5, &device).unwrap();
    let v = to_vec_f32(half);
    let n = a.input_ids.len();
    let ln_half = 0.5f32.ln();
    for r in 0..n {
        for c in 0..n {
            let gated = layout.gated_rows.contains(&r) && layout.image_cols.contains(&c);
            assert_eq!(v[r * n + c], if gated { ln_half } else { 0.0 });
        }
    }
}
