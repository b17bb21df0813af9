//! `lavit demo`: the whole LaViT pipeline on the embedded synthetic task, on any backend.
//!
//! 1. generate train / test splits;
//! 2. extract the shipped teacher's signals (V_top, trajectories) for both splits;
//! 3. train two students of equal size and budget from the shipped student base —
//!    **baseline** (CE only) and **LaViT** (CE, V_top, trajectory, gating) — plus any
//!    ablations. Both learn the training answers (an "I find the X." step, then the answer),
//!    the same text the teacher reads, teacher-forced, to produce its signals;
//! 4. evaluate teacher and students on the test split;
//! 5. write `report.json`, `report.md`, `answers.jsonl` (every model's answer to every test
//!    question) and heatmap PNGs.

pub mod heatmap;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use burn::prelude::*;
use burn::tensor::DType;
use serde::{Deserialize, Serialize};

use crate::data::synthetic::{SceneConfig, generate, write_split};
use crate::data::viscot::read_viscot;
use crate::error::{LavitError, Result};
use crate::eval::metrics::{Accuracy, MapMetrics, accuracy, grounding_of, map_metrics};
use crate::eval::{EvalItem, Prediction, predict};
use crate::infer::GenerateConfig;
use crate::io::checkpoint::Checkpoint;
use crate::io::processor::load_rgb;
use crate::lavit::gating::GateSchedule;
use crate::lavit::losses::LossWeights;
use crate::lavit::targets::trajectory_targets;
use crate::teacher::pipeline::{ExtractJob, extract_all};
use crate::teacher::{ExtractConfig, SignalStore, SignalWriter};
use crate::train::data::{TargetConfig, samples_from_store};
use crate::train::export::{export_student, open_student};
use crate::train::{TrainConfig, train};

/// A LaViT component switched off in an ablation run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ablation {
    Traj,
    Vtop,
    Gate,
}

impl Ablation {
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        match s {
            "traj" => Ok(Self::Traj),
            "vtop" => Ok(Self::Vtop),
            "gate" => Ok(Self::Gate),
            o => Err(format!("unknown ablation `{o}` (traj, vtop, gate)")),
        }
    }
    fn name(self) -> &'static str {
        match self {
            Self::Traj => "lavit-no-traj",
            Self::Vtop => "lavit-no-vtop",
            Self::Gate => "lavit-no-gate",
        }
    }
}

/// Settings of a demo run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DemoConfig {
    pub out: PathBuf,
    /// `assets/synthetic`: teacher/, student-base/.
    pub assets: PathBuf,
    pub seed: u64,
    pub n_train: usize,
    pub n_test: usize,
    pub steps: usize,
    pub grad_accum: usize,
    pub lr: f64,
    pub num_latent: usize,
    pub lambda_vtop: f64,
    pub lambda_traj: f64,
    /// Fraction of the steps with the gate closed (two-stage schedule).
    pub gate_closed_fraction: f64,
    pub traj_top_k: usize,
    pub ablations: Vec<Ablation>,
    pub heatmaps: usize,
}

impl Default for DemoConfig {
    fn default() -> Self {
        Self {
            out: PathBuf::from("runs/demo"),
            assets: PathBuf::from("assets/synthetic"),
            seed: 0,
            n_train: 1200,
            n_test: 200,
            steps: 1500,
            grad_accum: 4,
            lr: 2e-3,
            num_latent: 3,
            lambda_vtop: 0.3,
            lambda_traj: 0.3,
            gate_closed_fraction: 0.4,
            traj_top_k: 8,
            ablations: vec![],
            heatmaps: 4,
        }
    }
}

/// Results of one model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelResult {
    pub name: String,
    pub accuracy: Accuracy,
    /// Raw attention of the latent tokens (students) vs the teacher trajectory and regions.
    pub attention: Option<MapMetrics>,
    /// TrajectoryHead distributions (students).
    pub head: Option<MapMetrics>,
    /// Share of test questions where the model emitted its latent tokens.
    pub emitted_latents: Option<f64>,
    pub train_seconds: Option<f64>,
    pub final_loss: Option<f64>,
}

/// `report.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DemoReport {
    pub config: DemoConfig,
    pub backend: String,
    pub teacher: ModelResult,
    /// Grounding of the teacher's own trajectory on the test split.
    pub teacher_trajectory: MapMetrics,
    pub students: Vec<ModelResult>,
    pub seconds: BTreeMap<String, f64>,
    pub heatmaps: Vec<String>,
}

/// Progress callback: `(stage, done, total)`.
pub type Progress<'a> = &'a mut dyn FnMut(&str, usize, usize);

fn student_variants(cfg: &DemoConfig) -> Vec<(String, LossWeights, GateSchedule)> {
    let closed = (cfg.steps as f64 * cfg.gate_closed_fraction).round() as usize;
    let lavit = LossWeights {
        ce: true,
        lambda_vtop: cfg.lambda_vtop,
        lambda_traj: cfg.lambda_traj,
    };
    let gate = GateSchedule::TwoStage {
        closed_steps: closed,
    };
    let mut v = vec![
        (
            "baseline".to_string(),
            LossWeights {
                ce: true,
                lambda_vtop: 0.0,
                lambda_traj: 0.0,
            },
            GateSchedule::Off,
        ),
        ("lavit".to_string(), lavit, gate),
    ];
    for a in &cfg.ablations {
        let (w, g) = match a {
            Ablation::Traj => (
                LossWeights {
                    lambda_traj: 0.0,
                    ..lavit
                },
                gate,
            ),
            Ablation::Vtop => (
                LossWeights {
                    lambda_vtop: 0.0,
                    ..lavit
                },
                gate,
            ),
            Ablation::Gate => (lavit, GateSchedule::Off),
        };
        v.push((a.name().to_string(), w, g));
    }
    v
}

/// Runs the demo on `device`.
pub fn run(
    cfg: &DemoConfig,
    device: &Device,
    backend: &str,
    progress: Progress<'_>,
) -> Result<DemoReport> {
    let mut seconds = BTreeMap::new();
    let t = Instant::now();
    let data = cfg.out.join("data");
    let scene = SceneConfig::default();
    progress("data", 0, 2);
    write_split(
        &data,
        "train",
        &generate(cfg.n_train, cfg.seed, &scene, "train-"),
    )?;
    write_split(
        &data,
        "test",
        &generate(
            cfg.n_test,
            cfg.seed.wrapping_add(1_000_003),
            &scene,
            "test-",
        ),
    )?;
    progress("data", 2, 2);
    seconds.insert("data".into(), t.elapsed().as_secs_f64());
    let train_set = read_viscot(&data.join("train.json"))?;
    let test_set = read_viscot(&data.join("test.json"))?;
    let images = data.join("images");

    // Teacher signals.
    let t = Instant::now();
    let teacher_dir = cfg.assets.join("teacher");
    let tckpt = Checkpoint::open(&teacher_dir)?;
    let teacher = tckpt.load(device)?;
    let ttok = tckpt.tokenizer(None)?;
    let job = ExtractJob {
        teacher: &teacher,
        tokenizer: &ttok,
        processor: &tckpt.processor,
        images_root: &images,
        cfg: ExtractConfig::default(),
        max_steps: Some(cfg.num_latent),
        generate: None,
    };
    for (split, set) in [("train", &train_set), ("test", &test_set)] {
        let dir = cfg.out.join(format!("signals-{split}"));
        let mut w = SignalWriter::open(&dir, 0, 1, 64)?;
        let refs: Vec<_> = set.iter().collect();
        let n = refs.len();
        extract_all(&job, &refs, &mut w, &mut |d, _| {
            progress(&format!("extract {split}"), d, n)
        })?;
    }
    seconds.insert("extract".into(), t.elapsed().as_secs_f64());

    // Test items and the teacher's maps for them.
    let items: Vec<EvalItem> = test_set
        .iter()
        .map(EvalItem::from_sample)
        .collect::<Result<_>>()?;
    let mut test_store = SignalStore::open(&cfg.out.join("signals-test"))?;
    let mut teacher_maps_native = BTreeMap::new();
    let mut teacher_grids = BTreeMap::new();
    for r in test_store.records.clone() {
        let s = test_store.load(&r)?;
        teacher_grids.insert(r.id.clone(), s.grid);
        teacher_maps_native.insert(r.id.clone(), s.traj.clone());
    }

    // Teacher accuracy.
    let t = Instant::now();
    let greedy = GenerateConfig {
        max_new_tokens: 48,
        attn_layers: 8,
        ..Default::default()
    };
    let n = items.len();
    let tpreds = predict(
        &teacher,
        None,
        &ttok,
        &tckpt.processor,
        &[],
        &items,
        &images,
        &greedy,
        &mut |i| progress("eval teacher", i, n),
    )?;
    let mut answers = answer_lines("teacher", &tpreds);
    let sizes: BTreeMap<String, (usize, usize)> = tpreds
        .iter()
        .map(|p| (p.id.clone(), p.image_size))
        .collect();
    let teacher_result = ModelResult {
        name: "teacher".into(),
        accuracy: accuracy(&tpreds),
        attention: None,
        head: None,
        emitted_latents: None,
        train_seconds: None,
        final_loss: None,
    };
    let teacher_trajectory = grounding_of(&items, &teacher_maps_native, |it| {
        (teacher_grids[&it.id], sizes[&it.id])
    });
    seconds.insert("eval teacher".into(), t.elapsed().as_secs_f64());
    drop(teacher);

    // Students.
    let d_teacher = tckpt.config.text.hidden_size;
    let base = cfg.assets.join("student-base");
    let mut students = Vec::new();
    let mut student_preds: Vec<(String, Vec<Prediction>)> = Vec::new();
    for (name, weights, gate) in student_variants(cfg) {
        let t = Instant::now();
        let (ckpt, tok, student) =
            open_student(&base, cfg.num_latent, d_teacher, None, cfg.seed, device)?;
        let ids = student.lavit.latent_token_ids.clone();
        let mut store = SignalStore::open(&cfg.out.join("signals-train"))?;
        let samples = samples_from_store(
            &mut store,
            &images,
            &tok,
            &ckpt.processor,
            &ids,
            d_teacher,
            TargetConfig {
                top_k: (cfg.traj_top_k > 0).then_some(cfg.traj_top_k),
            },
        )?;
        let tcfg = TrainConfig {
            steps: cfg.steps,
            lr: cfg.lr,
            warmup_steps: (cfg.steps / 20).max(1),
            min_lr_ratio: 0.1,
            weight_decay: 0.01,
            grad_accum: cfg.grad_accum,
            clip_norm: Some(1.0),
            loss: weights,
            gate,
            gate_prompt: true,
            freeze_vision: true,
            lora: None,
            checkpoint_every: 0,
            seed: cfg.seed,
            ..Default::default()
        };
        let run_dir = cfg.out.join("students").join(&name);
        let mut last_loss = None;
        let steps = cfg.steps;
        let stage = format!("train {name}");
        let trained = train(student, &samples, &tcfg, &run_dir, false, &mut |l| {
            last_loss = Some(l.loss);
            progress(&stage, l.step, steps);
            true
        })?;
        let train_seconds = t.elapsed().as_secs_f64();
        export_student(&trained, &tok, &run_dir.join("final"), DType::F32)?;
        let trained = trained.valid();
        // Teacher maps on this student's grid, one per latent step (dense).
        let t = Instant::now();
        let mut teacher_on_student = BTreeMap::new();
        let preds = predict(
            &trained.vlm,
            Some(&trained.traj_head),
            &tok,
            &ckpt.processor,
            &ids,
            &items,
            &images,
            &greedy,
            &mut |i| progress(&format!("eval {name}"), i, n),
        )?;
        for p in &preds {
            if let (Some(m), Some(g)) = (teacher_maps_native.get(&p.id), teacher_grids.get(&p.id)) {
                teacher_on_student.insert(
                    p.id.clone(),
                    trajectory_targets(m, *g, p.grid, cfg.num_latent, None),
                );
            }
        }
        let k_top = 4;
        let emitted =
            preds.iter().filter(|p| p.emitted_latents).count() as f64 / preds.len().max(1) as f64;
        students.push(ModelResult {
            name: name.clone(),
            accuracy: accuracy(&preds),
            attention: Some(map_metrics(
                &items,
                &preds,
                &teacher_on_student,
                |p| &p.attn_maps,
                k_top,
            )),
            // An untrained head (λ_traj = 0) says nothing.
            head: (weights.lambda_traj > 0.0)
                .then(|| map_metrics(&items, &preds, &teacher_on_student, |p| &p.head_maps, k_top)),
            emitted_latents: Some(emitted),
            train_seconds: Some(train_seconds),
            final_loss: last_loss,
        });
        seconds.insert(format!("train {name}"), train_seconds);
        seconds.insert(format!("eval {name}"), t.elapsed().as_secs_f64());
        answers.push_str(&answer_lines(&name, &preds));
        student_preds.push((name, preds));
    }

    // Heatmaps: image + regions | teacher | baseline | LaViT (latent steps averaged).
    let heat_dir = cfg.out.join("heatmaps");
    std::fs::create_dir_all(&heat_dir).map_err(|e| LavitError::Io {
        path: heat_dir.clone(),
        source: e,
    })?;
    let mut heatmaps = Vec::new();
    for it in items
        .iter()
        .filter(|it| !it.regions.is_empty())
        .take(cfg.heatmaps)
    {
        let img = load_rgb(&images.join(&it.image))?;
        let mut orig = img.clone();
        heatmap::outline(&mut orig, &it.regions, [0, 200, 255]);
        let mut panels = vec![orig];
        if let (Some(m), Some(g)) = (teacher_maps_native.get(&it.id), teacher_grids.get(&it.id)) {
            panels.push(heatmap::overlay(&img, &mean_map(m), *g));
        }
        for (name, preds) in student_preds
            .iter()
            .filter(|(n, _)| n == "baseline" || n == "lavit")
        {
            let Some(p) = preds.iter().find(|p| p.id == it.id) else {
                continue;
            };
            if !p.attn_maps.is_empty() {
                panels.push(heatmap::overlay(&img, &mean_map(&p.attn_maps), p.grid));
            } else {
                panels.push(img.clone());
            }
            let _ = name;
        }
        let file = format!("{}.png", it.id);
        heatmap::side_by_side(&panels)
            .save(heat_dir.join(&file))
            .map_err(|e| LavitError::Image {
                path: file.clone(),
                message: e.to_string(),
            })?;
        heatmaps.push(format!("heatmaps/{file}"));
    }

    let report = DemoReport {
        config: cfg.clone(),
        backend: backend.to_string(),
        teacher: teacher_result,
        teacher_trajectory,
        students,
        seconds,
        heatmaps,
    };
    write_reports(&cfg.out, &report, &items, &student_preds)?;
    crate::io::checkpoint::write_atomic(&cfg.out.join("answers.jsonl"), answers.as_bytes())?;
    Ok(report)
}

/// One JSON line per test question: what `model` answered and whether it was right.
fn answer_lines(model: &str, preds: &[Prediction]) -> String {
    preds
        .iter()
        .map(|p| {
            serde_json::json!({
                "model": model,
                "id": p.id,
                "type": p.qtype,
                "answer": p.text,
                "predicted": p.predicted,
                "correct": p.correct,
            })
            .to_string()
                + "\n"
        })
        .collect()
}

fn mean_map(maps: &[Vec<f32>]) -> Vec<f32> {
    let n = maps.first().map(|m| m.len()).unwrap_or(0);
    let mut out = vec![0f32; n];
    for m in maps {
        for (a, b) in out.iter_mut().zip(crate::lavit::targets::normalise(m)) {
            *a += b / maps.len() as f32;
        }
    }
    out
}

fn pct(v: Option<f64>) -> String {
    v.map(|x| format!("{:.1}%", x * 100.0))
        .unwrap_or_else(|| "–".into())
}

fn num(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.3}")).unwrap_or_else(|| "–".into())
}

/// The final table of the report (also printed by the CLI).
pub fn summary_table(r: &DemoReport) -> String {
    let mut s = String::from(
        "| model | accuracy | KL(teacher‖attn) ↓ | top-4 overlap ↑ | mass in regions ↑ | pointing ↑ | latents emitted |\n|---|---|---|---|---|---|---|\n",
    );
    s.push_str(&format!(
        "| teacher | {} | – | – | {} | {} | – |\n",
        pct(Some(r.teacher.accuracy.overall)),
        pct(r.teacher_trajectory.mass_in_regions),
        pct(r.teacher_trajectory.pointing)
    ));
    for m in &r.students {
        let a = m.attention.clone().unwrap_or_default();
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            m.name,
            pct(Some(m.accuracy.overall)),
            num(a.kl_to_teacher),
            pct(a.topk_overlap),
            pct(a.mass_in_regions),
            pct(a.pointing),
            pct(m.emitted_latents)
        ));
    }
    s
}

fn write_reports(
    out: &Path,
    r: &DemoReport,
    items: &[EvalItem],
    preds: &[(String, Vec<Prediction>)],
) -> Result<()> {
    let json = serde_json::to_vec_pretty(r).expect("report serialises");
    crate::io::checkpoint::write_atomic(&out.join("report.json"), &json)?;
    let mut md = String::from("# LaViT demo report\n\n");
    md.push_str(&format!(
        "Synthetic grounded-reasoning task, seed {}, {} train / {} test questions, backend `{}`; students trained {} steps × {} samples (K = {} latent tokens).\n\n",
        r.config.seed, r.config.n_train, r.config.n_test, r.backend, r.config.steps, r.config.grad_accum, r.config.num_latent
    ));
    md.push_str(
        "## Accuracy, gaze alignment and grounding (raw attention of the latent tokens)\n\n",
    );
    md.push_str(&summary_table(r));
    md.push_str("\n## TrajectoryHead distributions\n\n| model | KL(teacher‖head) ↓ | top-4 overlap ↑ | mass in regions ↑ | pointing ↑ |\n|---|---|---|---|---|\n");
    for m in r.students.iter().filter(|m| m.head.is_some()) {
        let h = m.head.clone().unwrap_or_default();
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            m.name,
            num(h.kl_to_teacher),
            pct(h.topk_overlap),
            pct(h.mass_in_regions),
            pct(h.pointing)
        ));
    }
    md.push_str("\n## Accuracy per question type\n\n");
    let types: Vec<String> = r.teacher.accuracy.per_type.keys().cloned().collect();
    md.push_str(&format!(
        "| model | {} |\n|---|{}\n",
        types.join(" | "),
        "---|".repeat(types.len())
    ));
    for m in std::iter::once(&r.teacher).chain(&r.students) {
        let cells: Vec<String> = types
            .iter()
            .map(|t| pct(m.accuracy.per_type.get(t).copied()))
            .collect();
        md.push_str(&format!("| {} | {} |\n", m.name, cells.join(" | ")));
    }
    md.push_str("\n## Heatmaps\n\nEach row: the image with the ground-truth regions outlined, the teacher's trajectory, the baseline student's latent-token attention, the LaViT student's latent-token attention (latent steps averaged).\n\n");
    for h in &r.heatmaps {
        let id = h.trim_start_matches("heatmaps/").trim_end_matches(".png");
        let q = items
            .iter()
            .find(|i| i.id == id)
            .map(|i| format!("{} (answer: {})", i.question, i.key))
            .unwrap_or_default();
        let answers: Vec<String> = preds
            .iter()
            .filter_map(|(n, ps)| {
                ps.iter()
                    .find(|p| p.id == id)
                    .map(|p| format!("{n}: “{}”", p.text.trim()))
            })
            .collect();
        md.push_str(&format!("![{id}]({h})\n\n{q} — {}\n\n", answers.join("; ")));
    }
    md.push_str("\n## Time (seconds)\n\n| stage | s |\n|---|---|\n");
    for (k, v) in &r.seconds {
        md.push_str(&format!("| {k} | {v:.1} |\n"));
    }
    crate::io::checkpoint::write_atomic(&out.join("report.md"), md.as_bytes())
}
