//! Training the LaViT student on the CPU backend: all three losses decrease over 50 steps, a
//! resumed run reproduces the uninterrupted one, and the exported student reloads and
//! generates its latent tokens.

use std::path::Path;

use burn::module::Module;
use burn::tensor::GradientCheckpointingStrategy;
use lavit_core::bundle::{BundleFiles, ModelBundle, export};
use lavit_core::data::Sample;
use lavit_core::infer::{GenerateConfig, generate};
use lavit_core::io::chat::ChatTokenizer;
use lavit_core::io::checkpoint::HostInputs;
use lavit_core::io::processor::load_rgb;
use lavit_core::io::{Checkpoint, Message};
use lavit_core::lavit::student::{
    LavitConfig, LavitStudent, add_latent_tokens, init_latent_embeddings,
};
use lavit_core::lavit::{GateSchedule, LossWeights};
use lavit_core::teacher::pipeline::{ExtractJob, extract_all};
use lavit_core::teacher::{ExtractConfig, SignalStore, SignalWriter};
use lavit_core::train::data::{TargetConfig, samples_from_store};
use lavit_core::train::{StepLog, TrainConfig, Trainer, read_metrics, train, train_on};
use lavit_tests::fixture;

const K: usize = 2;

/// Teacher signals from tiny-gqa over a few questions on the fixture image.
fn make_store(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let device = lavit_backends::select("cpu", 0).unwrap();
    let images = dir.join("images");
    std::fs::create_dir_all(&images).unwrap();
    std::fs::copy(fixture("images/tiny-gqa.png"), images.join("a.png")).unwrap();
    std::fs::copy(fixture("images/tiny-tied.png"), images.join("b.png")).unwrap();
    let samples: Vec<Sample> = (0..6)
        .map(|i| Sample {
            id: format!("s{i}"),
            image: if i % 2 == 0 { "a.png" } else { "b.png" }.into(),
            question: format!("Which shape is number {i}?"),
            answer: format!("Look at the left. It is shape {}.", i % 3),
            steps: vec![],
            extra: serde_json::Value::Null,
        })
        .collect();
    let ckpt = Checkpoint::open(&fixture("tiny-gqa")).unwrap();
    let teacher = ckpt.load(&device).unwrap();
    let tok = ckpt.tokenizer(None).unwrap();
    let mut proc = ckpt.processor.clone();
    proc.max_pixels = 28 * 28 * 12;
    let store = dir.join("store");
    let mut w = SignalWriter::open(&store, 0, 1, 4).unwrap();
    let job = ExtractJob {
        teacher: (&teacher).into(),
        tokenizer: &tok,
        processor: &proc,
        images_root: &images,
        cfg: ExtractConfig {
            layers: 2,
            top_k: lavit_core::lavit::targets::TopK::Count(4),
            ..Default::default()
        },
        max_steps: None,
        generate: None,
        filter_correct: false,
    };
    let refs: Vec<&Sample> = samples.iter().collect();
    extract_all(&job, &refs, &mut w, &mut |_, _| {}).unwrap();
    (store, images)
}

/// The tiny-tied fixture as a student with K latent tokens (teacher width 64).
fn student_and_samples(
    store: &Path,
    images: &Path,
) -> (
    LavitStudent,
    ChatTokenizer,
    Vec<lavit_core::lavit::StudentSample>,
) {
    let device = lavit_backends::select("cpu", 0).unwrap();
    let ckpt = Checkpoint::open(&fixture("tiny-tied")).unwrap();
    let mut tok = ckpt.tokenizer(None).unwrap();
    let ids = add_latent_tokens(&mut tok, K).unwrap();
    let vlm = init_latent_embeddings(ckpt.load(&device).unwrap(), &ids);
    let student = LavitStudent::new(
        vlm,
        LavitConfig {
            num_latent: K,
            latent_token_ids: ids.clone(),
            d_teacher: 64,
            ..LavitConfig::default()
        },
        3,
    );
    let mut proc = ckpt.processor.clone();
    proc.max_pixels = 28 * 28 * 12;
    let mut st = SignalStore::open(store).unwrap();
    let samples = samples_from_store(
        &mut st,
        images,
        &tok,
        &proc,
        &ids,
        64,
        TargetConfig {
            top_k: lavit_core::lavit::targets::TopK::Count(6),
        },
    )
    .unwrap();
    (student, tok, samples)
}

fn cfg(steps: usize) -> TrainConfig {
    TrainConfig {
        steps,
        lr: 2e-3,
        warmup_steps: 3,
        min_lr_ratio: 0.1,
        grad_accum: 2,
        checkpoint_every: 10,
        gate: GateSchedule::TwoStage {
            closed_steps: steps / 2,
        },
        loss: LossWeights::default(),
        seed: 11,
        ..Default::default()
    }
}

fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len() as f64
}

#[test]
fn fifty_steps_decrease_all_three_losses() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, images) = make_store(tmp.path());
    let (student, _, samples) = student_and_samples(&store, &images);
    let run = tmp.path().join("run");
    train(student, &samples, &cfg(50), &run, false, &mut |_, _| true).unwrap();
    let logs = read_metrics(&run.join("metrics.jsonl")).unwrap();
    assert_eq!(logs.len(), 50);
    for (name, get) in [
        ("ce", (|l: &StepLog| l.ce.unwrap()) as fn(&StepLog) -> f64),
        ("vtop", |l: &StepLog| l.vtop.unwrap()),
        ("traj", |l: &StepLog| l.traj.unwrap()),
    ] {
        let v: Vec<f64> = logs.iter().map(get).collect();
        let (first, last) = (mean(&v[..10]), mean(&v[40..]));
        eprintln!("{name}: first 10 steps {first:.4}, last 10 steps {last:.4}");
        assert!(
            last < first * 0.9,
            "{name} did not decrease: {first} -> {last}"
        );
    }
    assert!(logs.iter().all(|l| l.loss.is_finite()));
    assert_eq!(logs[0].gate, 0.0);
    assert_eq!(logs[49].gate, 1.0);
}

#[test]
fn resumed_run_equals_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, images) = make_store(tmp.path());
    let full = tmp.path().join("full");
    let (student, _, samples) = student_and_samples(&store, &images);
    train(student, &samples, &cfg(20), &full, false, &mut |_, _| true).unwrap();

    let cut = tmp.path().join("cut");
    let (student, _, samples) = student_and_samples(&store, &images);
    // "Killed" at step 13: the last checkpoint is step 10.
    train(student, &samples, &cfg(20), &cut, false, &mut |l, _| {
        l.step < 13
    })
    .unwrap();
    let (student, _, samples) = student_and_samples(&store, &images);
    train(student, &samples, &cfg(20), &cut, true, &mut |_, _| true).unwrap();

    let a = read_metrics(&full.join("metrics.jsonl")).unwrap();
    let b = read_metrics(&cut.join("metrics.jsonl")).unwrap();
    assert_eq!(b.len(), 20, "metrics after resume");
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.step, y.step);
        let d = (x.loss - y.loss).abs();
        assert!(
            d <= 1e-6 * x.loss.abs().max(1.0),
            "step {}: {} vs {}",
            x.step,
            x.loss,
            y.loss
        );
    }
}

/// The in-memory [`Trainer`] (what the browser page drives: no run directory, awaited
/// read-backs) takes the same steps as `train` writing checkpoints and metrics, and reads the
/// device back once per sample and once per step (the clipping norm).
#[test]
fn in_memory_trainer_takes_the_same_steps_with_one_read_back_per_sample() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, images) = make_store(tmp.path());
    let (student, _, samples) = student_and_samples(&store, &images);
    let run = tmp.path().join("run");
    train(student, &samples, &cfg(6), &run, false, &mut |_, _| true).unwrap();
    let on_disk = read_metrics(&run.join("metrics.jsonl")).unwrap();

    let (student, _, samples) = student_and_samples(&store, &images);
    let mut trainer = Trainer::new(student, samples, cfg(6)).unwrap();
    let mut logs = Vec::new();
    while !trainer.finished() {
        let reads = lavit_core::util::read_backs();
        logs.push(pollster::block_on(trainer.step()).unwrap());
        assert_eq!(
            lavit_core::util::read_backs() - reads,
            cfg(6).grad_accum as u64 + 1,
            "read-backs of step {}",
            logs.len()
        );
    }
    assert_eq!(trainer.state().step, 6);
    assert_eq!(logs.len(), on_disk.len());
    for (a, b) in logs.iter().zip(&on_disk) {
        // Through JSON as metrics.jsonl was (serde_json's float parsing may move the last bit).
        let a: StepLog = serde_json::from_str(&serde_json::to_string(a).unwrap()).unwrap();
        assert_eq!(
            (a.step, a.loss, a.ce, a.vtop, a.traj, a.grad_norm),
            (b.step, b.loss, b.ce, b.vtop, b.traj, b.grad_norm)
        );
    }
}

#[test]
fn exported_student_reloads_and_generates() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, images) = make_store(tmp.path());
    let (student, tok, samples) = student_and_samples(&store, &images);
    let trained = train(
        student,
        &samples,
        &cfg(12),
        &tmp.path().join("run"),
        false,
        &mut |_, _| true,
    )
    .unwrap();
    let out = tmp.path().join("export");
    let proc0 = Checkpoint::open(&fixture("tiny-tied")).unwrap().processor;
    export(&trained, &tok, &proc0, &out, burn::tensor::DType::F32).unwrap();

    let device = lavit_backends::select("cpu", 0).unwrap();
    let ModelBundle {
        model: reloaded,
        tokenizer: tok2,
        processor: reloaded_proc,
    } = ModelBundle::load(&out, &device).unwrap();
    assert_eq!(reloaded.lavit.num_latent, K);
    assert_eq!(reloaded_proc, proc0);
    assert_eq!(
        tok2.token_to_id("<lvr1>"),
        Some(reloaded.lavit.latent_token_ids[0])
    );

    // The reloaded weights equal the trained ones: same logits on a training sample.
    let s = &samples[0];
    let valid = trained.valid();
    let f = |m: &LavitStudent| {
        let out = m
            .vlm
            .forward(&s.to_inputs(&device), Default::default())
            .unwrap();
        lavit_core::util::to_vec_f32(out.logits.unwrap())
    };
    let d = lavit_tests::max_abs_diff(&f(&valid), &f(&reloaded));
    assert!(d < 1e-5, "reloaded logits differ by {d}");

    let img = load_rgb(&images.join("a.png")).unwrap();
    let mut proc = reloaded_proc.clone();
    proc.max_pixels = 28 * 28 * 12;
    let host = HostInputs::build(
        &tok2,
        &proc,
        &[img],
        &[Message::user_image_question(1, "Which shape?")],
        true,
    )
    .unwrap();
    let g = generate(
        &reloaded.vlm,
        Some(&reloaded.traj_head),
        &host.to_device(&device),
        &reloaded.lavit.latent_token_ids,
        &GenerateConfig {
            max_new_tokens: 8,
            force_lvr: true,
            stop_ids: vec![tok2.im_end],
            attn_layers: 2,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(g.latent_steps.len(), K);
    for step in &g.latent_steps {
        let head = step.head_map.as_ref().unwrap();
        assert_eq!(head.len(), host.images[0].n_patches() / 4);
        assert!((head.iter().sum::<f32>() - 1.0).abs() < 1e-4);
        assert_eq!(step.attn_map.len(), head.len());
    }
    assert!(!g.tokens.is_empty());

    // The in-memory loader (the browser's path) gives the same student and tokenizer.
    let read = |f: &str| std::fs::read(out.join(f)).unwrap();
    let mem = ModelBundle::from_files(
        BundleFiles {
            config_json: read("config.json"),
            model_safetensors: read("model.safetensors"),
            heads_safetensors: read("lavit_heads.safetensors"),
            tokenizer_json: read("tokenizer.json"),
            preprocessor_json: Some(read("preprocessor_config.json")),
        },
        &device,
    )
    .unwrap();
    assert_eq!(mem.model.lavit, reloaded.lavit);
    assert_eq!(mem.processor, reloaded_proc);
    assert_eq!(
        mem.tokenizer.encode("<lvr1> Which shape?").unwrap(),
        tok2.encode("<lvr1> Which shape?").unwrap()
    );
    assert_eq!(f(&mem.model), f(&reloaded), "in-memory load differs");
    let h = |m: &LavitStudent| {
        let d = m.vlm.config.text.hidden_size;
        let x: Vec<f32> = (0..4 * d).map(|i| (i as f32 * 0.37).sin()).collect();
        let states = lavit_core::util::tensor_from(x, [4, d], &device);
        let q = states.clone().narrow(0, 0, 1);
        let mut v = lavit_core::util::to_vec_f32(m.traj_head.forward(q, states.clone()));
        v.extend(lavit_core::util::to_vec_f32(m.vtop_head.forward(states)));
        v
    };
    assert_eq!(h(&mem.model), h(&reloaded), "heads differ");
}

#[test]
fn lora_training_learns_and_merges_on_export() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, images) = make_store(tmp.path());
    let (student, tok, samples) = student_and_samples(&store, &images);
    let base_w = lavit_core::util::to_vec_f32(
        student.vlm.model.layers[0]
            .self_attn
            .q_proj
            .inner
            .weight
            .val(),
    );
    let mut c = cfg(30);
    c.lr = 5e-3;
    c.lora = Some(lavit_core::model::lora::LoraConfig {
        rank: 4,
        alpha: 8.0,
        ..Default::default()
    });
    let run = tmp.path().join("lora");
    let trained = train(student, &samples, &c, &run, false, &mut |_, _| true).unwrap();
    assert!(trained.vlm.model.lora_params() > 0);
    // The base weights did not move; the adapters did the work.
    let after = lavit_core::util::to_vec_f32(
        trained.vlm.model.layers[0]
            .self_attn
            .q_proj
            .inner
            .weight
            .val(),
    );
    assert_eq!(base_w, after, "a frozen base weight changed");
    let logs = read_metrics(&run.join("metrics.jsonl")).unwrap();
    let v: Vec<f64> = logs.iter().map(|l| l.loss).collect();
    assert!(
        mean(&v[25..]) < mean(&v[..5]) * 0.8,
        "LoRA run did not learn: {v:?}"
    );

    let out = tmp.path().join("export");
    let proc0 = Checkpoint::open(&fixture("tiny-tied")).unwrap().processor;
    export(&trained, &tok, &proc0, &out, burn::tensor::DType::F32).unwrap();
    let device = lavit_backends::select("cpu", 0).unwrap();
    let reloaded = ModelBundle::load(&out, &device).unwrap().model;
    assert_eq!(
        reloaded.vlm.model.lora_params(),
        0,
        "export must merge the adapters"
    );
    let s = &samples[0];
    let valid = trained.valid();
    let f = |m: &LavitStudent| {
        let out = m
            .vlm
            .forward(&s.to_inputs(&device), Default::default())
            .unwrap();
        lavit_core::util::to_vec_f32(out.logits.unwrap())
    };
    let d = lavit_tests::max_abs_diff(&f(&valid), &f(&reloaded));
    assert!(
        d < 1e-4,
        "merged export differs from the adapter model by {d}"
    );
}

#[test]
fn frozen_vision_tower_does_not_move() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, images) = make_store(tmp.path());
    let (student, _, samples) = student_and_samples(&store, &images);
    let before = lavit_core::util::to_vec_f32(student.vlm.visual.blocks[0].attn.qkv.weight.val());
    let trained = train(
        student,
        &samples,
        &cfg(4),
        &tmp.path().join("r"),
        false,
        &mut |_, _| true,
    )
    .unwrap();
    let after = lavit_core::util::to_vec_f32(trained.vlm.visual.blocks[0].attn.qkv.weight.val());
    assert_eq!(before, after);
}

#[test]
fn divergence_stops_with_a_clear_error_and_keeps_the_last_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, images) = make_store(tmp.path());
    let (student, _, samples) = student_and_samples(&store, &images);
    let mut c = cfg(40);
    c.lr = 1e9;
    c.warmup_steps = 0;
    c.clip_norm = None;
    c.checkpoint_every = 1;
    let run = tmp.path().join("diverge");
    let err = match train(student, &samples, &c, &run, false, &mut |_, _| true) {
        Ok(_) => panic!("training with lr 1e9 did not diverge"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("non-finite"), "{err}");
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("checkpoint/state.json")).unwrap()).unwrap();
    let step = state["step"].as_u64().unwrap();
    assert!((1..40).contains(&step));
    // The checkpoint that was kept loads and gives finite losses.
    let logs = read_metrics(&run.join("metrics.jsonl")).unwrap();
    assert!(logs.iter().take(step as usize).all(|l| l.loss.is_finite()));
}

#[test]
fn unfrozen_vision_tower_learns() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, images) = make_store(tmp.path());
    let (student, _, samples) = student_and_samples(&store, &images);
    let before = lavit_core::util::to_vec_f32(student.vlm.visual.patch_embed.proj.weight.val());
    let mut c = cfg(3);
    c.freeze_vision = false;
    let trained = train(
        student,
        &samples,
        &c,
        &tmp.path().join("r"),
        false,
        &mut |_, _| true,
    )
    .unwrap();
    let after = lavit_core::util::to_vec_f32(trained.vlm.visual.patch_embed.proj.weight.val());
    assert!(
        lavit_tests::max_abs_diff(&before, &after) > 1e-5,
        "vision weights did not move"
    );
}

#[test]
fn seeded_init_is_reproducible_and_in_range() {
    use lavit_core::model::init::SeededInit;
    let device = lavit_backends::select("cpu", 0).unwrap();
    let vals = |seed| {
        lavit_core::util::to_vec_f32(SeededInit::new(seed).linear(16, 8, &device).weight.val())
    };
    let a = vals(5);
    assert_eq!(a, vals(5));
    assert_ne!(a, vals(6));
    assert!(a.iter().all(|x| x.abs() <= 0.25));
    assert!(
        a.iter().any(|x| x.abs() > 0.2),
        "draws should span U(-1/4, 1/4)"
    );
    let n = lavit_core::util::to_vec_f32(SeededInit::new(1).normal([4000], 0.02, &device));
    let mean = n.iter().sum::<f32>() / n.len() as f32;
    let sd = (n.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / n.len() as f32).sqrt();
    assert!(mean.abs() < 2e-3, "mean {mean}");
    assert!((sd - 0.02).abs() < 2e-3, "std {sd}");
}

#[test]
fn checkpointed_training_equals_plain_training() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, images) = make_store(tmp.path());
    let run = |name: &str, grad_checkpointing: bool| {
        let (student, _, samples) = student_and_samples(&store, &images);
        let out = tmp.path().join(name);
        let cfg = TrainConfig {
            grad_checkpointing,
            term_grads_every: 1,
            ..cfg(6)
        };
        let trained = train(student, &samples, &cfg, &out, false, &mut |_, _| true).unwrap();
        let weight = trained.vlm.model.embed_tokens.weight.val();
        assert_eq!(
            weight.gradient_checkpointing_strategy(),
            Some(if grad_checkpointing {
                GradientCheckpointingStrategy::Balanced
            } else {
                GradientCheckpointingStrategy::Disabled
            }),
            "the strategy the step ran under"
        );
        let params: Vec<f32> = weight.into_data().iter::<f32>().collect();
        (read_metrics(&out.join("metrics.jsonl")).unwrap(), params)
    };
    let (plain, p) = run("plain", false);
    let (ckpt, q) = run("ckpt", true);
    assert_eq!(plain.len(), 6);
    assert!(plain.iter().all(|l| l.term_grads.is_some()));
    assert_trains_alike(&plain, &ckpt, &p, &q);
}

/// Two runs' logs and updated weights agree within 1e-5 (relative for the logged values):
/// every loss, the global gradient norm, each term's gradient norm by group where logged, and
/// the updated weights `p`, `q`.
fn assert_trains_alike(a: &[StepLog], b: &[StepLog], p: &[f32], q: &[f32]) {
    assert_eq!(a.len(), b.len(), "logged steps");
    let close = |x: f64, y: f64| (x - y).abs() <= 1e-5 * x.abs().max(1e-3);
    for (a, b) in a.iter().zip(b) {
        let step = a.step;
        assert!(
            close(a.loss, b.loss),
            "step {step}: loss {} vs {}",
            a.loss,
            b.loss
        );
        assert!(
            close(a.grad_norm, b.grad_norm),
            "step {step}: grad norm {} vs {}",
            a.grad_norm,
            b.grad_norm
        );
        if let (Some(ta), Some(tb)) = (&a.term_grads, &b.term_grads) {
            for (term, ga) in ta {
                let gb = &tb[term];
                assert!(
                    close(ga.total, gb.total),
                    "step {step}: {term} {ga:?} vs {gb:?}"
                );
                assert!(close(ga.decoder, gb.decoder), "step {step}: {term}");
            }
        }
    }
    let max = p
        .iter()
        .zip(q)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(max <= 1e-5, "updated embeddings differ by {max}");
}

#[test]
fn one_and_two_threads_train_alike() {
    use lavit_backends::threads::run_in_pool;
    let tmp = tempfile::tempdir().unwrap();
    let (store, images) = make_store(tmp.path());
    let run = |threads: usize| {
        let out = tmp.path().join(format!("threads-{threads}"));
        let weights = run_in_pool(threads, || {
            assert_eq!(lavit_backends::threads::current(), threads);
            let (student, _, samples) = student_and_samples(&store, &images);
            let trained = train(student, &samples, &cfg(4), &out, false, &mut |_, _| true).unwrap();
            let w = trained.vlm.model.embed_tokens.weight.val().into_data();
            w.iter::<f32>().collect::<Vec<f32>>()
        })
        .unwrap();
        (read_metrics(&out.join("metrics.jsonl")).unwrap(), weights)
    };
    let (one, p) = run(1);
    let (two, q) = run(2);
    assert_eq!(one.len(), 4);
    assert_trains_alike(&one, &two, &p, &q);
}

/// Six steps of `grad_accum` 4 on `replicas`: the logs and the final embedding table.
fn train_replicated(
    store: &Path,
    images: &Path,
    out: &Path,
    replicas: &lavit_core::train::Replicas,
) -> (Vec<StepLog>, Vec<f32>) {
    let (student, _, samples) = student_and_samples(store, images);
    let cfg = TrainConfig {
        grad_accum: 4,
        ..cfg(6)
    };
    let trained = train_on(
        student,
        &samples,
        &cfg,
        out,
        false,
        replicas,
        &mut |_, _| true,
    )
    .unwrap();
    let w = lavit_core::util::to_vec_f32(trained.vlm.model.embed_tokens.weight.val());
    (read_metrics(&out.join("metrics.jsonl")).unwrap(), w)
}

#[test]
fn two_replicas_with_half_the_batch_each_equal_one_device() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, images) = make_store(tmp.path());
    let cpu = lavit_backends::select("cpu", 0).unwrap();
    let run = |name: &str, replicas: &lavit_core::train::Replicas| {
        train_replicated(&store, &images, &tmp.path().join(name), replicas)
    };
    let (one, p) = run("one", &Default::default());
    let (two, q) = run(
        "two",
        &lavit_core::train::Replicas::host(vec![cpu.clone(), cpu]),
    );
    assert_eq!(one.len(), 6);
    for (a, b) in one.iter().zip(&two) {
        let close = |x: f64, y: f64| (x - y).abs() <= 1e-5 * x.abs().max(1e-3);
        assert!(
            close(a.loss, b.loss),
            "step {}: loss {} vs {}",
            a.step,
            a.loss,
            b.loss
        );
        assert!(close(a.ce.unwrap(), b.ce.unwrap()), "step {}: ce", a.step);
        assert!(
            close(a.traj.unwrap(), b.traj.unwrap()),
            "step {}: traj",
            a.step
        );
        assert!(
            close(a.grad_norm, b.grad_norm),
            "step {}: grad norm {} vs {}",
            a.step,
            a.grad_norm,
            b.grad_norm
        );
    }
    let max = p
        .iter()
        .zip(&q)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(max <= 1e-5, "weights after 6 updates differ by {max}");
}

/// burn's collective all-reduce (`AllReduce::Collective`: CUDA with NCCL) on two devices with
/// half the batch each gives the one-device run. Needs two devices of a backend that has
/// collectives: `LAVIT_COLLECTIVE_BACKEND=cuda` (bench/gpu.sh sets it where `nvidia-smi` lists
/// two cards); says "skipped" otherwise — an all-reduce over one device proves nothing.
#[test]
fn collective_all_reduce_on_two_devices_equals_one_device() {
    let Ok(backend) = std::env::var("LAVIT_COLLECTIVE_BACKEND") else {
        println!("collective all-reduce: skipped (LAVIT_COLLECTIVE_BACKEND not set)");
        return;
    };
    let devices: Vec<_> = (0..2)
        .map(|i| lavit_backends::select(&backend, i).unwrap())
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    let (store, images) = make_store(tmp.path());
    let run = |name: &str, replicas: &lavit_core::train::Replicas| {
        train_replicated(&store, &images, &tmp.path().join(name), replicas)
    };
    let (one, p) = run("one", &Default::default());
    let collective = lavit_core::train::Replicas {
        devices,
        all_reduce: lavit_core::train::AllReduce::Collective,
    };
    let (two, q) = run("two", &collective);
    assert_eq!(one.len(), two.len());
    for (a, b) in one.iter().zip(&two) {
        let rel = (a.loss - b.loss).abs() / a.loss.abs().max(1e-3);
        assert!(rel < 1e-3, "step {}: loss {} vs {}", a.step, a.loss, b.loss);
    }
    let max = p
        .iter()
        .zip(&q)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(max <= 1e-3, "weights after 6 updates differ by {max}");
    println!(
        "collective all-reduce on two {backend} devices: equal to one device (max weight difference {max:.2e})"
    );
}

/// The loss and the gradient of the latent tokens' rows of `student` prepared under LoRA with
/// `embeddings`: the rows are the table's (and the tied head's) rows `ids` under
/// `TrainEmbeddings::All`, the split-off `NewTokenRows` under `NewTokens`.
fn lora_loss_and_row_grads(
    student: &LavitStudent,
    sample: &lavit_core::lavit::StudentSample,
    embeddings: lavit_core::model::lora::TrainEmbeddings,
    base_dtype: Option<lavit_core::io::weights::WeightDtype>,
) -> (f32, Vec<f32>, Vec<f32>) {
    use burn::optim::GradientsParams;
    let c = TrainConfig {
        lora: Some(lavit_core::model::lora::LoraConfig {
            rank: 4,
            alpha: 8.0,
            embeddings,
            ..Default::default()
        }),
        base_dtype,
        seed: 5,
        ..cfg(1)
    };
    let s = lavit_core::train::prepare(student.clone(), &c).unwrap();
    let parts = lavit_core::lavit::student::sample_losses(&s, sample, &c.loss, 0.5, true).unwrap();
    let loss = parts.total.clone().into_scalar::<f32>();
    let grads = GradientsParams::from_grads(parts.total.backward(), &s);
    let ids = s.lavit.latent_rows();
    let device = s.vlm.device();
    let rows = match &s.vlm.new_rows {
        Some(r) => grads.get::<2>(r.embed.id).expect("new-row gradient"),
        None => grads
            .get::<2>(s.vlm.model.embed_tokens.weight.id)
            .expect("table gradient")
            .select(0, lavit_core::util::index_tensor(&ids, &device)),
    };
    let q = &s.vlm.model.layers[0].self_attn.q_proj;
    let b = grads
        .get::<2>(q.lora.as_ref().unwrap().b.id)
        .expect("LoRA B gradient");
    (
        loss,
        lavit_core::util::to_vec_f32(rows),
        lavit_core::util::to_vec_f32(b),
    )
}

fn rel_l2(a: &[f32], b: &[f32]) -> f32 {
    let d: f32 = a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum();
    let n: f32 = b.iter().map(|y| y * y).sum();
    (d / n).sqrt()
}

#[test]
fn lora_new_token_rows_match_the_whole_table_and_only_they_move() {
    use lavit_core::model::lora::TrainEmbeddings;
    let tmp = tempfile::tempdir().unwrap();
    let (store, images) = make_store(tmp.path());
    let (student, _, samples) = student_and_samples(&store, &images);
    let (la, ga, ba) = lora_loss_and_row_grads(&student, &samples[0], TrainEmbeddings::All, None);
    let (ln, gn, bn) =
        lora_loss_and_row_grads(&student, &samples[0], TrainEmbeddings::NewTokens, None);
    println!(
        "new-token rows vs whole table: loss {ln} vs {la}, latent-row gradient rel L2 {:.2e}, adapter {:.2e}",
        rel_l2(&gn, &ga),
        rel_l2(&bn, &ba)
    );
    assert!((la - ln).abs() <= 1e-5 * la.abs(), "losses {la} vs {ln}");
    assert!(
        ga.iter().any(|&g| g != 0.0),
        "no gradient reaches the latent rows"
    );
    assert!(
        rel_l2(&gn, &ga) < 1e-4,
        "latent-row gradients differ: {}",
        rel_l2(&gn, &ga)
    );
    assert!(rel_l2(&bn, &ba) < 1e-4, "adapter gradients differ");

    // Training moves the latent rows and nothing else of the table.
    let table =
        |m: &LavitStudent| lavit_core::util::to_vec_f32(m.vlm.model.embed_tokens.weight.val());
    let before = table(&student);
    let mut c = cfg(3);
    c.lr = 1e-2;
    c.lora = Some(lavit_core::model::lora::LoraConfig {
        rank: 4,
        alpha: 8.0,
        ..Default::default()
    });
    let trained = train(
        student,
        &samples,
        &c,
        &tmp.path().join("rows"),
        false,
        &mut |_, _| true,
    )
    .unwrap();
    assert!(trained.vlm.new_rows.is_some(), "rows not split under LoRA");
    assert!(
        trained.vlm.new_rows.as_ref().unwrap().embed.val().dims()[0] == K,
        "one trainable row per latent token"
    );
    let ids = trained.lavit.latent_rows();
    let merged = trained.valid().vlm.merge_new_rows();
    let after = lavit_core::util::to_vec_f32(merged.model.embed_tokens.weight.val());
    let d = merged.config.text.hidden_size;
    for (r, (x, y)) in before.chunks(d).zip(after.chunks(d)).enumerate() {
        if ids.contains(&r) {
            assert_ne!(x, y, "latent row {r} did not move");
        } else {
            assert_eq!(x, y, "row {r} of the frozen table moved");
        }
    }
}

#[test]
fn lora_step_with_a_bf16_base_matches_the_f32_step() {
    use lavit_core::io::weights::WeightDtype;
    use lavit_core::model::lora::TrainEmbeddings;
    let tmp = tempfile::tempdir().unwrap();
    let (store, images) = make_store(tmp.path());
    let (student, _, samples) = student_and_samples(&store, &images);
    let new = TrainEmbeddings::NewTokens;
    let (l32, g32, b32) = lora_loss_and_row_grads(&student, &samples[0], new, None);
    let bf16 = Some(WeightDtype::Bf16);
    let (l16, g16, b16) = lora_loss_and_row_grads(&student, &samples[0], new, bf16);
    assert!(
        (l16 - l32).abs() < 0.02 * l32.abs(),
        "loss {l16} (bf16 base) vs {l32}"
    );
    let (eb, eg) = (rel_l2(&b16, &b32), rel_l2(&g16, &g32));
    println!(
        "bf16 base vs f32: loss {l16} vs {l32} (rel {:.2e}), LoRA B gradient rel L2 {eb:.2e}, latent rows {eg:.2e}",
        (l16 - l32).abs() / l32.abs()
    );
    assert!(eb < 0.05, "LoRA B gradient off by {eb}");
    assert!(eg < 0.05, "latent-row gradient off by {eg}");
    assert!(eb > 0.0, "the bf16 base changed nothing: was it cast?");
}
