//! The bottleneck condition and the attention target of `L_traj` on a real model.
//!
//! * Through `generate` with the latent block forced: with the latents hidden the answer's
//!   logits are bit-identical when the pixels change (the prefill gates the prompt text after
//!   the image, decode steps of answer tokens do not see the image); with them visible the
//!   image reaches the answer; without the bottleneck it reaches it even with them hidden.
//! * `--traj-target attention`: the loss equals a KL recomputed on the host from a separate
//!   capture of whole attention rows, and its gradient is exactly zero after the last gaze
//!   layer, in the final norm and in both heads.

use burn::optim::GradientsParams;
use burn::prelude::*;
use lavit_core::infer::{GenerateConfig, generate};
use lavit_core::io::Checkpoint;
use lavit_core::lavit::losses::{LossWeights, TrajGrad, TrajTarget};
use lavit_core::lavit::student::{
    LavitConfig, LavitStudent, SampleTargets, StudentSample, add_latent_tokens,
    init_latent_embeddings, sample_losses,
};
use lavit_core::model::{ForwardOptions, LogitRows, Qwen25Vl, RowCapture};
use lavit_core::util::{index_tensor, to_vec_f32};

/// The gradient norm of `module`'s parameters in `grads` (one read-back).
fn norm<M: Module>(module: &M, grads: &GradientsParams) -> f64 {
    pollster::block_on(lavit_core::train::optim::grad_norm(module, grads)).unwrap()
}
use lavit_tests::{fixture, max_abs_diff};

const K: usize = 3;

/// A fixture with `K` latent tokens, and one prompt about two images (the second the first
/// with its colours inverted), with the latent block appended.
fn student(name: &str) -> (Qwen25Vl, Vec<u32>, [StudentSample; 2], Device) {
    let device = lavit_backends::select("cpu", 0).unwrap();
    let ckpt = Checkpoint::open(&fixture(name)).unwrap();
    let mut tok = ckpt.tokenizer(None).unwrap();
    let ids = add_latent_tokens(&mut tok, K).unwrap();
    let vlm = init_latent_embeddings(ckpt.load(&device).unwrap(), &ids);
    let mut proc = ckpt.processor.clone();
    proc.max_pixels = 28 * 28 * 12;
    let img = lavit_core::io::processor::load_rgb(&fixture(&format!("images/{name}.png"))).unwrap();
    let mut other = img.clone();
    for p in other.pixels_mut() {
        p.0 = [255 - p.0[0], p.0[2], p.0[1]];
    }
    let build = |im: &image::RgbImage| {
        StudentSample::build(&tok, &proc, im, "How many shapes?", "Four.", &ids).unwrap()
    };
    let samples = [build(&img), build(&other)];
    (vlm, ids, samples, device)
}

/// Greedy generation after the forced latent block of `s` and the first token of its answer
/// (fed as an answer prefix, so every returned logit comes from an answer position), keeping
/// the logits.
fn answer(vlm: &Qwen25Vl, ids: &[u32], s: &StudentSample, cfg: &GenerateConfig) -> Vec<f32> {
    let mut inputs = s.to_inputs(&vlm.device());
    inputs.input_ids.truncate(s.latent_start());
    let cfg = GenerateConfig {
        answer_prefix: vec![s.input_ids[s.answer_start]],
        ..cfg.clone()
    };
    let g = generate(vlm, None, &inputs, ids, &cfg).unwrap();
    assert_eq!(g.logits.len(), cfg.max_new_tokens);
    g.logits.concat()
}

#[test]
fn the_bottleneck_holds_through_generate() {
    let (vlm, ids, [a, b], _) = student("tiny-tied");
    let cfg = |bottleneck, mask_lvr| GenerateConfig {
        max_new_tokens: 6,
        force_lvr: true,
        mask_lvr,
        bottleneck,
        return_logits: true,
        ..Default::default()
    };
    // The latents hidden: the answer sees no pixels, bit for bit.
    let (la, lb) = (
        answer(&vlm, &ids, &a, &cfg(true, true)),
        answer(&vlm, &ids, &b, &cfg(true, true)),
    );
    assert!(
        la.iter().zip(&lb).all(|(x, y)| x.to_bits() == y.to_bits()),
        "latents hidden under the bottleneck: the answer's logits moved with the pixels ({})",
        max_abs_diff(&la, &lb)
    );
    // The latents visible: the image reaches the answer through them.
    let (la, lb) = (
        answer(&vlm, &ids, &a, &cfg(true, false)),
        answer(&vlm, &ids, &b, &cfg(true, false)),
    );
    assert!(max_abs_diff(&la, &lb) > 1e-4, "the latents carried nothing");
    // Without the bottleneck the prompt text after the image reads it and carries it on.
    let (la, lb) = (
        answer(&vlm, &ids, &a, &cfg(false, true)),
        answer(&vlm, &ids, &b, &cfg(false, true)),
    );
    assert!(max_abs_diff(&la, &lb) > 1e-4);
}

/// A student on `tiny-gqa` (3 decoder layers) in the bottleneck with gaze layers `gaze`, and a
/// sample with trajectory targets (normalised ramps).
fn attention_student(gaze: Vec<usize>) -> (LavitStudent, StudentSample, Device) {
    let (vlm, ids, [mut s, _], device) = student("tiny-gqa");
    let n = s.image_positions.len();
    let traj: Vec<Vec<f32>> = (0..K)
        .map(|k| {
            let raw: Vec<f32> = (0..n).map(|i| ((i * (k + 2)) % 7) as f32 + 0.5).collect();
            let z: f32 = raw.iter().sum();
            raw.iter().map(|x| x / z).collect()
        })
        .collect();
    s.targets = Some(SampleTargets {
        vtop_mean: vec![0.5; 8],
        vtop_step: vec![],
        traj,
    });
    let lavit = LavitConfig {
        num_latent: K,
        latent_token_ids: ids,
        d_teacher: 8,
        bottleneck: true,
        gaze_layers: gaze,
        ..LavitConfig::default()
    };
    (LavitStudent::new(vlm, lavit, 3), s, device)
}

fn traj_only(grad: TrajGrad) -> LossWeights {
    LossWeights {
        ce: false,
        lambda_vtop: 0.0,
        lambda_traj: 1.0,
        traj_grad: grad,
        traj_target: TrajTarget::Attention,
        ..LossWeights::default()
    }
}

#[test]
fn attention_target_loss_equals_a_kl_from_an_independent_capture() {
    let (student, s, device) = attention_student(vec![0, 2]);
    let parts = sample_losses(&student, &s, &traj_only(TrajGrad::Detach), 1.0, false).unwrap();
    let loss = parts.traj.unwrap().into_scalar::<f32>() as f64;
    let neg_log_mass = parts.traj_mass.unwrap().into_scalar::<f32>() as f64;

    // Whole attention rows of the latent tokens (every key), under the bottleneck's gate.
    let seq = s.input_ids.len();
    let all: Vec<usize> = (0..seq).collect();
    let capture = RowCapture::new(
        index_tensor(&s.latent_positions, &device),
        index_tensor(&all, &device),
    );
    let layers = [0usize, 2];
    let out = student
        .vlm
        .forward(
            &s.to_inputs(&device),
            ForwardOptions {
                logits: LogitRows::None,
                capture: Some((&layers, &capture)),
                bias: s.gate_layout(true).bias(0.0, &device),
                ..Default::default()
            },
        )
        .unwrap();
    let (mut kl, mut nlm) = (0f64, 0f64);
    let p = &s.targets.as_ref().unwrap().traj;
    for (k, pk) in p.iter().enumerate() {
        let mut a = vec![0f64; s.image_positions.len()];
        for (_, probs) in &out.decoder.captured {
            let [_, h, _, _] = probs.dims();
            let v = to_vec_f32(probs.clone());
            for head in 0..h {
                let row = &v[(head * K + k) * seq..(head * K + k + 1) * seq];
                assert!(
                    (row.iter().sum::<f32>() - 1.0).abs() < 1e-5,
                    "a whole row sums to 1"
                );
                for (n, &pos) in s.image_positions.iter().enumerate() {
                    a[n] += row[pos] as f64 / (h * layers.len()) as f64;
                }
            }
        }
        let m: f64 = a.iter().sum();
        nlm -= m.ln() / K as f64;
        for (pn, an) in pk.iter().zip(&a) {
            let pn = *pn as f64;
            kl += pn * (pn.ln() - (an / m).ln()) / K as f64;
        }
    }
    eprintln!("attention KL {loss} (host {kl}), −ln mass {neg_log_mass} (host {nlm})");
    assert!((loss - kl).abs() < 1e-5 * kl.max(1.0), "{loss} vs {kl}");
    assert!(
        (neg_log_mass - nlm).abs() < 1e-5 * nlm.max(1.0),
        "{neg_log_mass} vs {nlm}"
    );
}

#[test]
fn attention_target_gradient_stops_after_the_last_gaze_layer() {
    for grad in [TrajGrad::Detach, TrajGrad::Image] {
        let (student, s, _) = attention_student(vec![0]);
        let student = student.train();
        let parts = sample_losses(&student, &s, &traj_only(grad), 1.0, false).unwrap();
        let grads = GradientsParams::from_grads(parts.traj.unwrap().backward(), &student);
        let m = &student.vlm.model;
        let zero = [
            ("layer 1", norm(&m.layers[1], &grads)),
            ("layer 2", norm(&m.layers[2], &grads)),
            ("final norm", norm(&m.norm, &grads)),
            ("trajectory head", norm(&student.traj_head, &grads)),
            ("V_top head", norm(&student.vtop_head, &grads)),
            ("layer 0 MLP", norm(&m.layers[0].mlp, &grads)),
        ];
        for (what, g) in zero {
            assert_eq!(g, 0.0, "{grad:?}: gradient in the {what}");
        }
        let q = norm(&m.layers[0].self_attn.q_proj, &grads);
        let k = norm(&m.layers[0].self_attn.k_proj, &grads);
        let emb = norm(&m.embed_tokens, &grads);
        assert!(
            q > 0.0 && emb > 0.0,
            "{grad:?}: the latent's query did not learn"
        );
        // Detached keys: only the query learns; attached, the keys do too.
        match grad {
            TrajGrad::Detach => assert_eq!(k, 0.0, "keys detached, yet k_proj has a gradient"),
            TrajGrad::Image => assert!(k > 0.0, "keys attached, yet k_proj has no gradient"),
        }
    }
}
