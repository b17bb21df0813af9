//! Stage 5 of the demo: `report.json`, `report.md` (every table built as a [`Table`] first),
//! `answers.jsonl`, labelled heatmap figures; the seeds and learning-curve reports.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use image::Rgb;
use serde::Serialize;

use super::data::DemoData;
use super::draw::{Series, labelled_grid, line_chart};
use super::heatmap;
use super::signals::TeacherStage;
use super::students::EvaluatedStudent;
use super::{CurvePoint, DemoConfig, DemoReport, ModelResult, SeedsReport};
use crate::data::synthetic::QUESTION_TYPES;
use crate::error::{LavitError, Result};
use crate::eval::Prediction;
use crate::eval::metrics::MapMetrics;
use crate::io::checkpoint::write_atomic;
use crate::io::processor::load_rgb;
use crate::lavit::targets::{TopK, trajectory_targets};
use crate::train::{StepLog, read_metrics};

/// A table: a header and rows of cells, rendered as Markdown.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Self {
        Self {
            header: header.iter().map(|s| s.to_string()).collect(),
            rows: vec![],
        }
    }
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }
    pub fn markdown(&self) -> String {
        let mut s = format!("| {} |\n|", self.header.join(" | "));
        s.push_str(&"---|".repeat(self.header.len()));
        s.push('\n');
        for r in &self.rows {
            let _ = writeln!(s, "| {} |", r.join(" | "));
        }
        s
    }
}

fn pct(v: Option<f64>) -> String {
    v.map(|x| format!("{:.1}%", x * 100.0))
        .unwrap_or_else(|| "–".into())
}

fn num(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.3}")).unwrap_or_else(|| "–".into())
}

/// The columns of the main table, as numbers (`None` where they do not apply): accuracy,
/// KL(teacher‖attn), accuracy on the prior-contradicting questions and the share of them
/// answered with the prior's answer (a task with a language prior), top-4 overlap, mass in
/// regions, pointing, the latent tokens' attention mass on the image, latents emitted.
pub const MAIN_COLUMNS: [&str; 9] = [
    "accuracy",
    "KL(teacher‖attn) ↓",
    "prior-contradicting ↑",
    "said the prior ↓",
    "top-4 overlap ↑",
    "mass in regions ↑",
    "pointing ↑",
    "attention on image",
    "latents emitted",
];
/// Which of [`MAIN_COLUMNS`] are percentages.
const MAIN_PERCENT: [bool; 9] = [true, false, true, true, true, true, true, true, true];

type MainRow = (String, [Option<f64>; 9]);

fn main_values(r: &DemoReport) -> Vec<MainRow> {
    let prior = |m: &ModelResult| m.accuracy.prior.clone();
    let mut rows = vec![(
        "teacher".to_string(),
        [
            Some(r.teacher.accuracy.overall),
            None,
            prior(&r.teacher).map(|p| p.contradicting),
            prior(&r.teacher).map(|p| p.answered_prior),
            None,
            r.teacher_trajectory.mass_in_regions,
            r.teacher_trajectory.pointing,
            None,
            None,
        ],
    )];
    for m in &r.students {
        let a = m.attention.clone().unwrap_or_default();
        rows.push((
            m.name.clone(),
            [
                Some(m.accuracy.overall),
                a.kl_to_teacher,
                prior(m).map(|p| p.contradicting),
                prior(m).map(|p| p.answered_prior),
                a.topk_overlap,
                a.mass_in_regions,
                a.pointing,
                a.image_mass,
                m.emitted_latents,
            ],
        ));
    }
    rows
}

/// The main table (also printed by the CLI): accuracy, gaze alignment and grounding of the
/// latent tokens' raw attention; the teacher's row grounds its own trajectory.
pub fn summary_table(r: &DemoReport) -> String {
    let mut t = Table::new(&[&["model"][..], &MAIN_COLUMNS[..]].concat());
    for (name, v) in main_values(r) {
        let mut cells = vec![name];
        for (x, p) in v.iter().zip(MAIN_PERCENT) {
            cells.push(if p { pct(*x) } else { num(*x) });
        }
        t.row(cells);
    }
    t.markdown()
}

fn types_of(r: &DemoReport) -> Vec<String> {
    let mut types: Vec<String> = r.teacher.accuracy.per_type.keys().cloned().collect();
    types.sort_by_key(|t| QUESTION_TYPES.iter().position(|q| q == t).unwrap_or(99));
    types
}

fn per_type_table(r: &DemoReport) -> Table {
    let types = types_of(r);
    let header: Vec<&str> = std::iter::once("model")
        .chain(types.iter().map(String::as_str))
        .collect();
    let mut t = Table::new(&header);
    for m in std::iter::once(&r.teacher).chain(&r.students) {
        let mut cells = vec![m.name.clone()];
        cells.extend(
            types
                .iter()
                .map(|ty| pct(m.accuracy.per_type.get(ty).copied())),
        );
        t.row(cells);
    }
    t
}

fn grounding_by_type_table(r: &DemoReport) -> Table {
    let types = types_of(r);
    let header: Vec<&str> = std::iter::once("maps")
        .chain(types.iter().map(String::as_str))
        .collect();
    let mut t = Table::new(&header);
    let row = |name: String, by: &BTreeMap<String, MapMetrics>| {
        let mut cells = vec![name];
        cells.extend(types.iter().map(|ty| {
            by.get(ty)
                .map(|m| format!("{} / {}", pct(m.mass_in_regions), pct(m.pointing)))
                .unwrap_or_else(|| "–".into())
        }));
        cells
    };
    t.row(row(
        "teacher trajectory".into(),
        &r.teacher_trajectory_by_type,
    ));
    for m in &r.students {
        t.row(row(
            format!("{} latent attention", m.name),
            &m.attention_by_type,
        ));
    }
    t
}

/// Each loss term's gradient norm (mean over the logged steps): total, and the share that
/// reaches the decoder layers and the heads.
fn term_grads_table(out: &Path, r: &DemoReport) -> Table {
    let mut t = Table::new(&[
        "student",
        "term",
        "‖∇‖ total",
        "decoder layers",
        "embeddings",
        "heads",
        "logged steps",
    ]);
    for m in &r.students {
        let Ok(logs) = read_metrics(&out.join("students").join(&m.name).join("metrics.jsonl"))
        else {
            continue;
        };
        let logged: Vec<&StepLog> = logs.iter().filter(|l| l.term_grads.is_some()).collect();
        for term in ["ce", "vtop", "traj"] {
            let v: Vec<_> = logged
                .iter()
                .filter_map(|l| l.term_grads.as_ref().and_then(|g| g.get(term)))
                .collect();
            if v.is_empty() {
                continue;
            }
            let mean = |f: &dyn Fn(&crate::train::TermGrads) -> f64| {
                v.iter().map(|g| f(g)).sum::<f64>() / v.len() as f64
            };
            t.row(vec![
                m.name.clone(),
                term.into(),
                format!("{:.4}", mean(&|g| g.total)),
                format!("{:.4}", mean(&|g| g.decoder)),
                format!("{:.4}", mean(&|g| g.embeddings)),
                format!("{:.4}", mean(&|g| g.heads)),
                v.len().to_string(),
            ]);
        }
    }
    t
}

/// One JSON line per evaluation question: what `model` answered and whether it was right.
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

/// Writes `report.json`, `report.md` and `answers.jsonl` of one run.
pub fn write_reports(
    out: &Path,
    r: &DemoReport,
    data: &DemoData,
    teacher: &TeacherStage,
    students: &[EvaluatedStudent],
) -> Result<()> {
    let json = serde_json::to_vec_pretty(r).expect("report serialises");
    write_atomic(&out.join("report.json"), &json)?;
    let mut md = String::from("# LaViT demo report\n\n");
    md.push_str(&run_description(r, data));
    md.push_str("## Accuracy, gaze alignment and grounding (attention of the latent tokens)\n\n");
    md.push_str(&summary_table(r));
    let heads = head_table(r);
    if !heads.rows.is_empty() {
        md.push_str("\n## TrajectoryHead distributions\n\n");
        md.push_str(&heads.markdown());
    }
    md.push_str("\n## Accuracy per question type\n\n");
    md.push_str(&per_type_table(r).markdown());
    md.push_str("\n## Grounding per question type (mass in regions / pointing)\n\n");
    md.push_str(&grounding_by_type_table(r).markdown());
    let grads = term_grads_table(out, r);
    if !grads.rows.is_empty() {
        md.push_str(
            "\n## Gradient norm of each loss term, before its λ (mean over logged steps)\n\n",
        );
        md.push_str(&grads.markdown());
    }
    md.push_str(&heatmap_section(r, data, teacher, students));
    md.push_str("\n## Time (seconds)\n\n");
    let mut time = Table::new(&["stage", "s"]);
    for (k, v) in &r.seconds {
        time.row(vec![k.clone(), format!("{v:.1}")]);
    }
    md.push_str(&time.markdown());
    write_atomic(&out.join("report.md"), md.as_bytes())?;
    let mut answers = answer_lines("teacher", &teacher.preds);
    for s in students {
        answers.push_str(&answer_lines(&s.result.name, &s.preds));
    }
    write_atomic(&out.join("answers.jsonl"), answers.as_bytes())
}

/// The report's first paragraph: the task, the split, the condition and the students' settings.
fn run_description(r: &DemoReport, data: &DemoData) -> String {
    let c = &r.config;
    let condition = if c.bottleneck {
        "the bottleneck (the answer sees the image only through the latent tokens)".to_string()
    } else {
        format!(
            "no bottleneck, the LaViT student's gate closed for {:.0}% of the steps",
            c.gate_closed_fraction * 100.0
        )
    };
    let gaze = if c.gaze_layers.is_empty() {
        "all".to_string()
    } else {
        format!("{:?}", c.gaze_layers)
    };
    format!(
        "Synthetic task `{}`, seed {}, {} training questions, evaluated on the {} split ({} questions), backend `{}`, binary `{}`; {condition}; students trained {} steps × {} samples (K = {} latent tokens, λ_vtop = {} on the {} target read at layer {}, λ_traj = {} on the {} target, gaze layers {gaze}, teacher trajectories over its last {} layers, top-K {}, L_traj gradient `{}`, heads on {} states).\n\n",
        c.task.display(),
        c.seed,
        c.n_train,
        data.split.name(),
        data.eval_items.len(),
        r.backend,
        if c.commit.is_empty() {
            "unknown"
        } else {
            &c.commit
        },
        c.steps,
        c.grad_accum,
        c.num_latent,
        c.lambda_vtop,
        c.vtop_target.name(),
        c.vtop_layer
            .map(|l| l.to_string())
            .unwrap_or_else(|| "last".into()),
        c.lambda_traj,
        c.traj_target.name(),
        c.teacher_layers,
        c.traj_top_k,
        c.traj_grad.name(),
        c.head_states.name(),
    )
}

/// Gaze and grounding of the TrajectoryHead distributions of students that trained it.
fn head_table(r: &DemoReport) -> Table {
    let mut head = Table::new(&[
        "model",
        "KL(teacher‖head) ↓",
        "top-4 overlap ↑",
        "mass in regions ↑",
        "pointing ↑",
    ]);
    for m in r.students.iter().filter(|m| m.head.is_some()) {
        let h = m.head.clone().unwrap_or_default();
        head.row(vec![
            m.name.clone(),
            num(h.kl_to_teacher),
            pct(h.topk_overlap),
            pct(h.mass_in_regions),
            pct(h.pointing),
        ]);
    }
    head
}

/// The heatmap figures with each one's question and every model's answer.
fn heatmap_section(
    r: &DemoReport,
    data: &DemoData,
    teacher: &TeacherStage,
    students: &[EvaluatedStudent],
) -> String {
    if r.heatmaps.is_empty() {
        return String::new();
    }
    let mut md = String::from(
        "\n## Heatmaps\n\nEach figure: the image with the ground-truth regions outlined, then for each latent step (rows) the teacher's trajectory (its steps pooled onto the latent tokens) and the baseline's and LaViT's latent-token attention, side by side.\n\n",
    );
    for h in &r.heatmaps {
        let id = h.trim_start_matches("heatmaps/").trim_end_matches(".png");
        let q = data
            .eval_items
            .iter()
            .find(|i| i.id == id)
            .map(|i| format!("{} (answer: {})", i.question, i.key))
            .unwrap_or_default();
        let answers: Vec<String> = std::iter::once(("teacher", &teacher.preds))
            .chain(students.iter().map(|s| (s.result.name.as_str(), &s.preds)))
            .filter_map(|(n, ps)| {
                ps.iter()
                    .find(|p| p.id == id)
                    .map(|p| format!("{n}: “{}”", p.text.trim()))
            })
            .collect();
        let _ = writeln!(md, "![{id}]({h})\n\n{q} — {}\n", answers.join("; "));
    }
    md
}

/// Heatmap figures of the first `cfg.heatmaps` evaluation samples with regions:
/// `OUT/heatmaps/<id>.png`; returns their paths relative to `OUT`.
pub fn heatmap_figures(
    cfg: &DemoConfig,
    data: &DemoData,
    teacher: &TeacherStage,
    students: &[EvaluatedStudent],
) -> Result<Vec<String>> {
    let dir = cfg.out.join("heatmaps");
    if cfg.heatmaps > 0 {
        std::fs::create_dir_all(&dir).map_err(|e| LavitError::Io {
            path: dir.clone(),
            source: e,
        })?;
    }
    let mut written = Vec::new();
    let shown: Vec<&EvaluatedStudent> = students
        .iter()
        .filter(|s| s.result.name == "baseline" || s.result.name == "lavit")
        .collect();
    for it in data
        .eval_items
        .iter()
        .filter(|it| !it.regions.is_empty())
        .take(cfg.heatmaps)
    {
        let img = load_rgb(&data.images.join(&it.image))?;
        let mut scene = img.clone();
        heatmap::outline(&mut scene, &it.regions, [0, 200, 255]);
        let k = cfg.num_latent;
        // Columns: the scene, the teacher, each shown student; rows: the latent steps.
        let mut columns: Vec<(String, Vec<Option<image::RgbImage>>)> =
            vec![("image + region".into(), vec![Some(scene)])];
        if let (Some(m), Some(g)) = (teacher.maps.get(&it.id), teacher.grids.get(&it.id)) {
            let steps = trajectory_targets(m, *g, *g, k, TopK::Dense);
            columns.push((
                "teacher".into(),
                steps
                    .iter()
                    .map(|s| Some(heatmap::overlay(&img, s, *g)))
                    .collect(),
            ));
        }
        let mut title = vec![format!("{} (answer: {})", it.question, it.key)];
        for s in &shown {
            let Some(p) = s.preds.iter().find(|p| p.id == it.id) else {
                continue;
            };
            title.push(format!("{}: {}", s.result.name, p.text.trim()));
            let label = if s.result.name == "lavit" {
                "LaViT".to_string()
            } else {
                s.result.name.clone()
            };
            columns.push((
                label,
                (0..k)
                    .map(|i| {
                        p.attn_maps
                            .get(i)
                            .map(|m| heatmap::overlay(&img, m, p.grid))
                    })
                    .collect(),
            ));
        }
        let col_labels: Vec<String> = columns.iter().map(|c| c.0.clone()).collect();
        let row_labels: Vec<String> = (1..=k).map(|i| format!("latent {i}")).collect();
        let cells: Vec<Vec<Option<image::RgbImage>>> = (0..k)
            .map(|r| {
                columns
                    .iter()
                    .map(|c| c.1.get(r).cloned().flatten())
                    .collect()
            })
            .collect();
        let file = format!("{}.png", it.id);
        labelled_grid(&title, &col_labels, &row_labels, &cells)
            .save(dir.join(&file))
            .map_err(|e| LavitError::Image {
                path: file.clone(),
                message: e.to_string(),
            })?;
        written.push(format!("heatmaps/{file}"));
    }
    Ok(written)
}

/// Mean and sample standard deviation.
pub fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len().max(1) as f64;
    let m = v.iter().sum::<f64>() / n;
    let var = if v.len() > 1 {
        v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (m, var.sqrt())
}

fn pm(v: &[f64], percent: bool) -> String {
    let (m, s) = mean_std(v);
    if percent {
        format!("{:.1} ± {:.1}%", m * 100.0, s * 100.0)
    } else {
        format!("{m:.3} ± {s:.3}")
    }
}

/// What the paired-difference table compares, per model and seed.
type Measure = fn(&ModelResult) -> Option<f64>;
const PAIRED_MEASURES: [(&str, Measure); 3] = [
    ("accuracy", |m| Some(m.accuracy.overall)),
    ("prior-contradicting accuracy", |m| {
        m.accuracy.prior.as_ref().map(|p| p.contradicting)
    }),
    ("pointing", |m| {
        m.attention.as_ref().and_then(|a| a.pointing)
    }),
];

/// `OUT/report.md` and `OUT/seeds.json` over several seeds: every row as mean ± standard
/// deviation, and each student's paired difference to the baseline (and each ablation's to
/// LaViT) per seed.
pub fn write_seeds_report(out: &Path, r: &SeedsReport) -> Result<()> {
    let json = serde_json::to_vec_pretty(r).expect("report serialises");
    write_atomic(&out.join("seeds.json"), &json)?;
    let Some(first) = r.runs.first() else {
        return Ok(());
    };
    let c = &first.config;
    let mut md = String::from("# LaViT demo over seeds\n\n");
    let _ = writeln!(
        md,
        "Seeds {:?} (each: its own data, signals and students; the runs are in `seed-N/`), {} training questions, {} split, {} steps × {} samples per student, {}. Mean ± standard deviation over the seeds.\n",
        r.seeds,
        c.n_train,
        c.eval_split.name(),
        c.steps,
        c.grad_accum,
        if c.bottleneck {
            "the bottleneck"
        } else {
            "no bottleneck"
        },
    );
    md.push_str(&seeds_main_table(r).markdown());
    md.push_str("\n## Accuracy per question type\n\n");
    md.push_str(&seeds_type_table(r).markdown());
    md.push_str("\n## Difference to the baseline (paired by seed)\n\n");
    md.push_str(
        "Mean ± standard error over the seeds, the two-sided 95 % t interval, and how many \
         seeds favour each side; in points.\n\n",
    );
    let names: Vec<&str> = first.students.iter().map(|s| s.name.as_str()).collect();
    let others: Vec<&str> = names.iter().copied().filter(|n| *n != "baseline").collect();
    md.push_str(&paired_table(r, &others, "baseline").markdown());
    let ablations: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| n.starts_with("lavit-"))
        .collect();
    if !ablations.is_empty() && names.contains(&"lavit") {
        md.push_str("\n## Ablations against LaViT (paired by seed)\n\n");
        md.push_str(&paired_table(r, &ablations, "lavit").markdown());
    }
    write_atomic(&out.join("report.md"), md.as_bytes())
}

/// A model's result in one run by name (`teacher` or a student).
fn result_of(run: &DemoReport, name: &str) -> Option<ModelResult> {
    if name == "teacher" {
        Some(run.teacher.clone())
    } else {
        run.students.iter().find(|s| s.name == name).cloned()
    }
}

/// Mean ± standard deviation, or the value itself for one seed.
fn over_seeds(v: &[f64], percent: bool) -> String {
    match v {
        [] => "–".into(),
        [x] if percent => format!("{:.1}%", x * 100.0),
        [x] => format!("{x:.3}"),
        _ => pm(v, percent),
    }
}

/// The main table over seeds.
fn seeds_main_table(r: &SeedsReport) -> Table {
    let rows: Vec<Vec<MainRow>> = r.runs.iter().map(main_values).collect();
    let mut t = Table::new(&[&["model"][..], &MAIN_COLUMNS[..]].concat());
    for (i, (name, _)) in rows[0].iter().enumerate() {
        let mut cells = vec![name.clone()];
        for (col, p) in MAIN_PERCENT.iter().enumerate() {
            let v: Vec<f64> = rows.iter().filter_map(|run| run.get(i)?.1[col]).collect();
            cells.push(over_seeds(&v, *p));
        }
        t.row(cells);
    }
    t
}

/// Accuracy per question type over seeds.
fn seeds_type_table(r: &SeedsReport) -> Table {
    let first = &r.runs[0];
    let types = types_of(first);
    let header: Vec<&str> = std::iter::once("model")
        .chain(types.iter().map(String::as_str))
        .collect();
    let mut t = Table::new(&header);
    let models = std::iter::once("teacher").chain(first.students.iter().map(|s| s.name.as_str()));
    for name in models {
        let mut cells = vec![name.to_string()];
        for ty in &types {
            let v: Vec<f64> = r
                .runs
                .iter()
                .filter_map(|run| result_of(run, name)?.accuracy.per_type.get(ty).copied())
                .collect();
            cells.push(over_seeds(&v, true));
        }
        t.row(cells);
    }
    t
}

/// Each of `models` minus `reference`, paired by seed, for every [`PAIRED_MEASURES`] entry.
fn paired_table(r: &SeedsReport, models: &[&str], reference: &str) -> Table {
    let mut t = Table::new(&[
        "model",
        "measure",
        "Δ per seed",
        "mean ± SE; 95 % CI; sign count",
    ]);
    for &name in models {
        for (measure, get) in PAIRED_MEASURES {
            let d: Vec<f64> = r
                .runs
                .iter()
                .filter_map(|run| {
                    Some(get(&result_of(run, name)?)? - get(&result_of(run, reference)?)?)
                })
                .collect();
            if d.is_empty() {
                continue;
            }
            t.row(vec![
                format!("{name} − {reference}"),
                measure.to_string(),
                d.iter()
                    .map(|x| format!("{:+.1}", x * 100.0))
                    .collect::<Vec<_>>()
                    .join(", "),
                super::stats::Paired::of(&d).points(),
            ]);
        }
    }
    t
}

/// `OUT/curve.json`, `OUT/curve.md` and `OUT/curve.png`: accuracy against training-set size.
pub fn write_curve(
    out: &Path,
    cfg: &DemoConfig,
    seeds: &[u64],
    points: &[CurvePoint],
) -> Result<()> {
    write_atomic(
        &out.join("curve.json"),
        &serde_json::to_vec_pretty(points).expect("curve serialises"),
    )?;
    let mut sizes: Vec<usize> = points.iter().map(|p| p.n_train).collect();
    sizes.dedup();
    let mut t = Table::new(&["training questions", "baseline", "LaViT", "Δ (mean)"]);
    for &n in &sizes {
        let get = |m: &str| {
            points
                .iter()
                .find(|p| p.n_train == n && p.model == m)
                .map(|p| p.accuracies.clone())
                .unwrap_or_default()
        };
        let (b, l) = (get("baseline"), get("lavit"));
        t.row(vec![
            n.to_string(),
            pm(&b, true),
            pm(&l, true),
            format!("{:+.1} points", (mean_std(&l).0 - mean_std(&b).0) * 100.0),
        ]);
    }
    let md = format!(
        "# Learning curve\n\nAccuracy on the {} split against the number of training questions; seeds {seeds:?}, {} steps × {} samples per student at every size. Mean ± standard deviation over the seeds.\n\n{}\n![learning curve](curve.png)\n",
        cfg.eval_split.name(),
        cfg.steps,
        cfg.grad_accum,
        t.markdown()
    );
    write_atomic(&out.join("curve.md"), md.as_bytes())?;
    let series: Vec<Series> = [
        ("baseline", Rgb([90, 90, 90])),
        ("LaViT", Rgb([200, 60, 30])),
    ]
    .into_iter()
    .map(|(name, colour)| Series {
        name: name.into(),
        colour,
        points: points
            .iter()
            .filter(|p| p.model == if name == "LaViT" { "lavit" } else { "baseline" })
            .map(|p| {
                let (m, s) = mean_std(&p.accuracies);
                (p.n_train as f64, m, s)
            })
            .collect(),
    })
    .collect();
    let png = line_chart(
        "Accuracy vs training questions (mean +- sd over seeds)",
        "training questions",
        "accuracy",
        &series,
        true,
    );
    png.save(out.join("curve.png"))
        .map_err(|e| LavitError::Image {
            path: out.join("curve.png").display().to_string(),
            message: e.to_string(),
        })
}
