//! Stage 3 of the demo: the students. Every variant starts from the same describe-pretrained
//! base, learns the same training answers ("I find the X." steps, then the answer) for the
//! same number of steps, and differs only in its losses and gate.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use burn::prelude::*;
use burn::tensor::DType;

use super::data::DemoData;
use super::evaluate::{StudentUnderTest, evaluate_student};
use super::signals::TeacherStage;
use super::{Ablation, DemoConfig, ModelResult, Progress};
use crate::bundle::ModelBundle;
use crate::error::{LavitError, Result};
use crate::eval::Prediction;
use crate::lavit::gating::GateSchedule;
use crate::lavit::losses::{LossWeights, TrajTarget};
use crate::lavit::student::LavitStudent;
use crate::teacher::SignalStore;
use crate::train::data::{TargetConfig, samples_from_store};
use crate::train::{Stage2, TrainConfig, train};

/// One student of the comparison.
#[derive(Debug, Clone)]
pub struct Variant {
    pub name: String,
    pub loss: LossWeights,
    pub gate: GateSchedule,
    /// Both heads on the last decoder layer ([`Ablation::LastLayer`]).
    pub last_layer: bool,
}

/// Baseline (CE only, no gate), LaViT (all three losses; the two-stage gate when
/// `cfg.gate_closed_fraction` > 0) and the ablations of `cfg`, each LaViT minus one component.
/// Under the bottleneck every student, the baseline included, trains and answers with the gate
/// closed throughout ([`DemoConfig::bottleneck`]), so their gate schedules are off.
pub fn variants(cfg: &DemoConfig) -> Vec<Variant> {
    let lavit = LossWeights {
        ce: true,
        lambda_vtop: cfg.lambda_vtop,
        lambda_traj: cfg.lambda_traj,
        traj_grad: cfg.traj_grad,
        traj_target: cfg.traj_target,
        traj_mass: cfg.traj_mass,
        vtop_target: cfg.vtop_target,
    };
    let gate = cfg.gate();
    let variant = |name: &str, loss, gate, last_layer| Variant {
        name: name.to_string(),
        loss,
        gate,
        last_layer,
    };
    let baseline = LossWeights {
        lambda_vtop: 0.0,
        lambda_traj: 0.0,
        ..lavit
    };
    let mut v = vec![
        variant("baseline", baseline, GateSchedule::Off, false),
        variant("lavit", lavit, gate, false),
    ];
    for a in &cfg.ablations {
        let (loss, gate, last) = match a {
            Ablation::Traj => (
                LossWeights {
                    lambda_traj: 0.0,
                    ..lavit
                },
                gate,
                false,
            ),
            Ablation::Vtop => (
                LossWeights {
                    lambda_vtop: 0.0,
                    ..lavit
                },
                gate,
                false,
            ),
            Ablation::Gate => (lavit, GateSchedule::Off, false),
            Ablation::LastLayer => (lavit, gate, true),
        };
        v.push(variant(a.name(), loss, gate, last));
    }
    v
}

/// The training run of one variant (what the demo's students share but the variant).
pub fn train_config(cfg: &DemoConfig, v: &Variant) -> TrainConfig {
    TrainConfig {
        steps: cfg.steps,
        lr: cfg.lr,
        warmup_steps: (cfg.steps / 20).max(1),
        min_lr_ratio: 0.1,
        weight_decay: 0.01,
        grad_accum: cfg.grad_accum,
        clip_norm: Some(1.0),
        loss: v.loss,
        gate: v.gate,
        gate_prompt: true,
        freeze_vision: true,
        lora: None,
        checkpoint_every: 0,
        seed: cfg.seed,
        term_grads_every: cfg.term_grads_every,
        stage2: match (cfg.stage2_lr_ratio, v.gate) {
            (Some(r), GateSchedule::TwoStage { .. }) => Some(Stage2 {
                lr: cfg.lr * r,
                warmup_steps: (cfg.steps / 20).max(1),
            }),
            _ => None,
        },
        ..Default::default()
    }
}

/// Sets what `cfg` and the variant say of a fresh student: the heads' input states, the
/// bottleneck, the gaze layers and the V_top head's layer.
pub fn configure(student: &mut LavitStudent, cfg: &DemoConfig, v: &Variant) -> Result<()> {
    student.lavit.head_states = cfg.head_states;
    student.traj_head.states = cfg.head_states;
    student.lavit.bottleneck = cfg.bottleneck;
    let depth = student.vlm.config.text.num_hidden_layers;
    (student.lavit.gaze_layers, student.lavit.vtop_layer) = if v.last_layer {
        (vec![depth - 1], None)
    } else {
        (cfg.gaze_layers.clone(), cfg.vtop_layer)
    };
    student.lavit.check_layers(depth)
}

/// A trained and evaluated student.
pub struct EvaluatedStudent {
    pub result: ModelResult,
    pub preds: Vec<Prediction>,
    pub train_seconds: f64,
    pub eval_seconds: f64,
}

/// Trains each variant (up to `cfg.parallel` at a time, one thread each), exports it to
/// `OUT/students/<name>/final` and evaluates it; results in the order of `variants`.
pub fn train_and_evaluate(
    cfg: &DemoConfig,
    data: &DemoData,
    teacher: &TeacherStage,
    variants: &[Variant],
    device: &Device,
    progress: Progress<'_>,
) -> Result<Vec<EvaluatedStudent>> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<EvaluatedStudent>>>> =
        Mutex::new((0..variants.len()).map(|_| None).collect());
    let work = || loop {
        let i = next.fetch_add(1, Ordering::SeqCst);
        let Some(v) = variants.get(i) else { break };
        let r = train_one(cfg, data, teacher, v, device, progress);
        let failed = r.is_err();
        results.lock().expect("results lock")[i] = Some(r);
        if failed {
            // Let the other workers finish what they hold, start nothing new.
            next.store(variants.len(), Ordering::SeqCst);
        }
    };
    let workers = cfg.parallel.clamp(1, variants.len().max(1));
    if workers == 1 {
        work();
    } else {
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(work);
            }
        });
    }
    let mut out = Vec::with_capacity(variants.len());
    for r in results.into_inner().expect("results lock") {
        match r {
            Some(r) => out.push(r?),
            None => return Err(LavitError::Other("a student was not trained".into())),
        }
    }
    Ok(out)
}

fn train_one(
    cfg: &DemoConfig,
    data: &DemoData,
    teacher: &TeacherStage,
    v: &Variant,
    device: &Device,
    progress: Progress<'_>,
) -> Result<EvaluatedStudent> {
    let t = Instant::now();
    let ModelBundle {
        model: mut student,
        tokenizer,
        processor,
    } = ModelBundle::open_for_training(
        &cfg.assets.join("student-base"),
        cfg.num_latent,
        teacher.d_teacher,
        None,
        cfg.seed,
        device,
    )?;
    configure(&mut student, cfg, v)?;
    let ids = student.lavit.latent_token_ids.clone();
    let mut store = SignalStore::open(&cfg.out.join("signals-train"))?;
    let samples = samples_from_store(
        &mut store,
        &data.images,
        &tokenizer,
        &processor,
        &ids,
        teacher.d_teacher,
        TargetConfig {
            top_k: cfg.traj_top_k,
        },
    )?;
    let tcfg = train_config(cfg, v);
    let run_dir = cfg.out.join("students").join(&v.name);
    let mut last_loss = None;
    let stage = format!("train {}", v.name);
    let steps = cfg.steps;
    let trained = train(student, &samples, &tcfg, &run_dir, false, &mut |l, _| {
        last_loss = Some(l.loss);
        progress(&stage, l.step, steps);
        true
    })?;
    let train_seconds = t.elapsed().as_secs_f64();
    let trained = ModelBundle {
        model: trained.valid(),
        tokenizer,
        processor,
    };
    trained.save(&run_dir.join("final"), DType::F32)?;
    let t = Instant::now();
    let (mut result, preds) = evaluate_student(
        cfg,
        data,
        teacher,
        &StudentUnderTest {
            name: &v.name,
            student: &trained,
            head_trained: v.loss.lambda_traj > 0.0 && v.loss.traj_target == TrajTarget::Head,
        },
        progress,
    )?;
    result.train_seconds = Some(train_seconds);
    result.final_loss = last_loss;
    Ok(EvaluatedStudent {
        result,
        preds,
        train_seconds,
        eval_seconds: t.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// LaViT's gate follows `gate_closed_fraction` (no gate when it rounds to no step); the
    /// baseline never has one; `--ablate gate` is LaViT without it.
    #[test]
    fn the_gate_follows_the_closed_fraction() {
        let gate = |fraction, ablations: Vec<Ablation>| {
            let cfg = DemoConfig {
                steps: 1500,
                gate_closed_fraction: fraction,
                ablations,
                ..Default::default()
            };
            let v = variants(&cfg);
            assert_eq!(v[0].name, "baseline");
            assert_eq!(v[0].gate, GateSchedule::Off);
            assert_eq!(v[1].gate, cfg.gate());
            v.iter().map(|v| v.gate).collect::<Vec<_>>()
        };
        assert_eq!(gate(0.0, vec![])[1], GateSchedule::Off);
        assert_eq!(gate(1e-4, vec![])[1], GateSchedule::Off);
        let gated = gate(0.4, vec![Ablation::Gate]);
        assert_eq!(gated[1], GateSchedule::TwoStage { closed_steps: 600 });
        assert_eq!(gated[2], GateSchedule::Off);
        assert_eq!(DemoConfig::default().gate(), GateSchedule::Off);
    }
}
