//! Finite-difference check of the whole model's gradients (vision tower, merger, attention,
//! MLP, embeddings) on the tiny fixture, through the CE loss of a student sample.

use burn::module::{Module, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;
use lavit_core::io::Checkpoint;
use lavit_core::lavit::LossWeights;
use lavit_core::lavit::student::{LavitConfig, LavitStudent, StudentSample, sample_losses};
use lavit_tests::fixture;

#[test]
fn whole_model_gradients_match_finite_differences() {
    let device = lavit_backends::select("cpu", 0).unwrap();
    let ckpt = Checkpoint::open(&fixture("tiny-gqa")).unwrap();
    let tok = ckpt.tokenizer(None).unwrap();
    let mut proc = ckpt.processor.clone();
    proc.max_pixels = 28 * 28 * 12;
    let img = lavit_core::io::processor::load_rgb(&fixture("images/tiny-gqa.png")).unwrap();
    let sample = StudentSample::build(&tok, &proc, &img, "Where?", "Left of it.", &[]).unwrap();
    let weights = LossWeights {
        ce: true,
        lambda_vtop: 0.0,
        lambda_traj: 0.0,
        ..LossWeights::default()
    };
    let base = LavitStudent::new(
        ckpt.load(&device).unwrap(),
        LavitConfig {
            num_latent: 0,
            latent_token_ids: vec![],
            d_teacher: 4,
            ..LavitConfig::default()
        },
        1,
    );
    let loss_of = |s: &LavitStudent| {
        sample_losses(s, &sample, &weights, 1.0, false)
            .unwrap()
            .total
            .into_scalar::<f32>() as f64
    };

    type Get = fn(&LavitStudent) -> Param<Tensor<2>>;
    type Set = fn(&mut LavitStudent, Param<Tensor<2>>);
    let params: Vec<(&str, Get, Set)> = vec![
        (
            "text q_proj",
            |s| s.vlm.model.layers[0].self_attn.q_proj.inner.weight.clone(),
            |s, p| s.vlm.model.layers[0].self_attn.q_proj.inner.weight = p,
        ),
        (
            "text k_proj",
            |s| s.vlm.model.layers[1].self_attn.k_proj.inner.weight.clone(),
            |s, p| s.vlm.model.layers[1].self_attn.k_proj.inner.weight = p,
        ),
        (
            "text down_proj",
            |s| s.vlm.model.layers[2].mlp.down_proj.inner.weight.clone(),
            |s, p| s.vlm.model.layers[2].mlp.down_proj.inner.weight = p,
        ),
        (
            "vision qkv",
            |s| s.vlm.visual.blocks[0].attn.qkv.weight.clone(),
            |s, p| s.vlm.visual.blocks[0].attn.qkv.weight = p,
        ),
        (
            "merger fc2",
            |s| s.vlm.visual.merger.fc2.weight.clone(),
            |s, p| s.vlm.visual.merger.fc2.weight = p,
        ),
        (
            "embeddings",
            |s| s.vlm.model.embed_tokens.weight.clone(),
            |s, p| s.vlm.model.embed_tokens.weight = p,
        ),
    ];
    let trained = base.clone().train();
    let parts = sample_losses(&trained, &sample, &weights, 1.0, false).unwrap();
    let grads = GradientsParams::from_grads(parts.total.backward(), &trained);
    for (name, get, set) in params {
        let p = get(&trained);
        let g: Vec<f32> = grads
            .get::<2>(p.id)
            .expect(name)
            .try_into_vec_as::<f32>()
            .unwrap();
        let w = get(&base).val();
        let dims = w.dims();
        // The entries with the largest gradients (well above f32 noise).
        let mut idx: Vec<usize> = (0..g.len()).collect();
        idx.sort_by(|a, b| g[*b].abs().total_cmp(&g[*a].abs()));
        for &i in idx.iter().take(3) {
            let (r, c) = (i / dims[1], i % dims[1]);
            let eps = 1e-2f32;
            let bump = |delta: f32| {
                let mut s = base.clone();
                let delta_t =
                    Tensor::<2>::zeros(dims, &device).slice_fill([r..r + 1, c..c + 1], delta);
                set(&mut s, Param::from_tensor(w.clone() + delta_t));
                loss_of(&s)
            };
            let fd = (bump(eps) - bump(-eps)) / (2.0 * eps as f64);
            let rel = (fd - g[i] as f64).abs() / fd.abs().max(1e-3);
            assert!(
                rel < 0.05,
                "{name}[{r},{c}]: autodiff {} vs finite difference {fd}",
                g[i]
            );
        }
    }
}
