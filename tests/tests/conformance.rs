//! Backend conformance: one training step with all three losses and one generation run on
//! every backend in `LAVIT_TEST_BACKENDS` (default `cpu`; CI adds `wgpu` on lavapipe), compared
//! with the CPU backend. (The HF parity tests in `hf_parity.rs` run per backend too.)
//!
//! Tolerances: loss terms and gradient norm within 1e-3 relative of the CPU values; greedy
//! tokens identical.

use burn::module::Module;
use burn::optim::GradientsParams;
use lavit_core::infer::{GenerateConfig, generate};
use lavit_core::io::Checkpoint;
use lavit_core::lavit::LossWeights;
use lavit_core::lavit::student::{
    LavitConfig, LavitStudent, SampleTargets, StudentSample, add_latent_tokens,
    init_latent_embeddings, sample_losses,
};
use lavit_core::train::optim::clip_global_norm;
use lavit_tests::{fixture, test_devices};

fn cpu_student() -> (LavitStudent, StudentSample) {
    let cpu = lavit_backends::select("cpu", 0).unwrap();
    cpu.seed(9);
    let ckpt = Checkpoint::open(&fixture("tiny-tied")).unwrap();
    let mut tok = ckpt.tokenizer(None).unwrap();
    let ids = add_latent_tokens(&mut tok, 2).unwrap();
    let vlm = init_latent_embeddings(ckpt.load(&cpu).unwrap(), &ids);
    let student = LavitStudent::new(
        vlm,
        LavitConfig {
            num_latent: 2,
            latent_token_ids: ids.clone(),
            d_teacher: 16,
            ..LavitConfig::default()
        },
        9,
    );
    // Force the lazy head parameters so every backend gets the same values.
    let student = student.map(&mut Touch);
    let mut proc = ckpt.processor.clone();
    proc.max_pixels = 28 * 28 * 12;
    let img = lavit_core::io::processor::load_rgb(&fixture("images/tiny-tied.png")).unwrap();
    let mut s = StudentSample::build(&tok, &proc, &img, "How many shapes?", "Four.", &ids).unwrap();
    let n = s.image_positions.len();
    s.targets = Some(SampleTargets {
        vtop_step: vec![],
        vtop_mean: (0..16).map(|i| (i as f32 * 0.37).sin()).collect(),
        traj: (0..2)
            .map(|k| {
                lavit_core::lavit::targets::normalise(
                    &(0..n).map(|j| ((j + k * 3) % 7) as f32).collect::<Vec<_>>(),
                )
            })
            .collect(),
    });
    (student, s)
}

struct Touch;
impl burn::module::ModuleMapper for Touch {
    fn map_float<const D: usize>(
        &mut self,
        p: burn::module::Param<burn::Tensor<D>>,
    ) -> burn::module::Param<burn::Tensor<D>> {
        let _ = p.val();
        p
    }
}

/// `(ce, vtop, traj, grad norm)` of one step under a half-open gate.
fn step(student: &LavitStudent, s: &StudentSample) -> [f64; 4] {
    let student = student.clone().train();
    let parts = sample_losses(&student, s, &LossWeights::default(), 0.5, true).unwrap();
    let v = |t: Option<burn::Tensor<1>>| t.unwrap().into_scalar::<f32>() as f64;
    let (ce, vt, tr) = (
        v(parts.ce.clone()),
        v(parts.vtop.clone()),
        v(parts.traj.clone()),
    );
    let mut grads = GradientsParams::from_grads(parts.total.backward(), &student);
    let norm = pollster::block_on(clip_global_norm(&student, &mut grads, None)).unwrap();
    [ce, vt, tr, norm]
}

#[test]
fn training_step_and_generation_agree_across_backends() {
    let (student, sample) = cpu_student();
    let reference = step(&student, &sample);
    let cpu = lavit_backends::select("cpu", 0).unwrap();
    let gen_cfg = GenerateConfig {
        max_new_tokens: 8,
        attn_layers: 2,
        force_lvr: true,
        ..Default::default()
    };
    let run_gen = |st: &LavitStudent, dev: &burn::tensor::Device| {
        let mut inputs = sample.to_inputs(dev);
        inputs.input_ids.truncate(sample.latent_start());
        generate(
            &st.vlm,
            Some(&st.traj_head),
            &inputs,
            &st.lavit.latent_token_ids,
            &gen_cfg,
        )
        .unwrap()
    };
    let ref_gen = run_gen(&student, &cpu);
    assert!(
        reference.iter().all(|v| v.is_finite() && *v > 0.0),
        "{reference:?}"
    );
    for (backend, device) in test_devices() {
        let adapter = lavit_backends::device_label(&device);
        let moved = student.clone().to_device(&device);
        let got = step(&moved, &sample);
        for (name, (a, b)) in ["ce", "vtop", "traj", "grad norm"]
            .iter()
            .zip(reference.iter().zip(got))
        {
            let rel = (a - b).abs() / a.abs().max(1e-6);
            eprintln!("{backend} [{adapter}]: {name} cpu {a:.6} vs {b:.6} (rel {rel:.1e})");
            assert!(rel < 1e-3, "{backend}: {name} {b} vs cpu {a}");
        }
        let g = run_gen(&moved, &device);
        assert_eq!(
            g.tokens, ref_gen.tokens,
            "{backend}: greedy tokens differ from cpu"
        );
        for (x, y) in g.latent_steps.iter().zip(&ref_gen.latent_steps) {
            let d = lavit_tests::max_abs_diff(
                x.head_map.as_ref().unwrap(),
                y.head_map.as_ref().unwrap(),
            );
            assert!(d < 1e-4, "{backend}: latent head map differs by {d}");
        }
    }
}
