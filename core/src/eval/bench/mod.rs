//! Multiple-choice benchmarks read in the layouts their authors publish: MMVP (questions CSV
//! and image folder, pair accuracy), BLINK (per-task parquet, up to four embedded images),
//! V* Bench (per-category image and json files) and MMStar (one parquet, embedded images),
//! graded with [`super::choice::extract_choice`].
//!
//! Every reader turns its layout into [`McQuestion`]s; [`mc_prompt`] writes the prompt the
//! models see and [`summarise`] the per-task table. Readers report malformed files as
//! [`LavitError::Bench`](crate::LavitError) with the file and record named.

pub mod blink;
pub mod mmstar;
pub mod mmvp;
pub mod parquet;
pub mod vstar;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use image::RgbImage;
use serde::{Deserialize, Serialize};

use super::choice::extract_choice;
use crate::error::{LavitError, Result};
use crate::infer::Thoughts;
use crate::io::processor::{decode_rgb, load_rgb};

/// The benchmarks `lavit eval --bench` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Benchmark {
    Mmvp,
    Blink,
    Vstar,
    Mmstar,
}

impl Benchmark {
    pub const ALL: [Benchmark; 4] = [
        Benchmark::Mmvp,
        Benchmark::Blink,
        Benchmark::Vstar,
        Benchmark::Mmstar,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Benchmark::Mmvp => "mmvp",
            Benchmark::Blink => "blink",
            Benchmark::Vstar => "vstar",
            Benchmark::Mmstar => "mmstar",
        }
    }

    /// Parses a `--bench` value.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|b| b.name().eq_ignore_ascii_case(name))
    }

    /// Reads the benchmark under `root` (its published layout); `task` restricts BLINK to one
    /// sub-task folder and the others to one task / category.
    pub fn load(self, root: &Path, task: Option<&str>) -> Result<Vec<McQuestion>> {
        if !root.is_dir() {
            return Err(LavitError::Bench(format!(
                "{}: data root {} is not a directory",
                self.name(),
                root.display()
            )));
        }
        let items = match self {
            Benchmark::Mmvp => mmvp::read(root)?,
            Benchmark::Blink => blink::read(root, task)?,
            Benchmark::Vstar => vstar::read(root)?,
            Benchmark::Mmstar => mmstar::read(root)?,
        };
        let items: Vec<McQuestion> = match (self, task) {
            (Benchmark::Blink, _) | (_, None) => items,
            (_, Some(t)) => items.into_iter().filter(|q| q.task == t).collect(),
        };
        if items.is_empty() {
            return Err(LavitError::Bench(format!(
                "{}: no questions under {}{}",
                self.name(),
                root.display(),
                task.map(|t| format!(" for task `{t}`")).unwrap_or_default()
            )));
        }
        Ok(items)
    }
}

/// Where a question's image lives: a file of the benchmark, or bytes embedded in a parquet.
#[derive(Debug, Clone)]
pub enum ImageSource {
    File(PathBuf),
    Bytes { name: String, bytes: Vec<u8> },
}

impl ImageSource {
    pub fn decode(&self) -> Result<RgbImage> {
        match self {
            ImageSource::File(p) => load_rgb(p),
            ImageSource::Bytes { name, bytes } => decode_rgb(bytes, name),
        }
    }
}

/// One multiple-choice question with its images.
#[derive(Debug, Clone)]
pub struct McQuestion {
    pub id: String,
    /// Task or category the summary groups by (BLINK sub-task, MMStar / V* category).
    pub task: String,
    pub images: Vec<ImageSource>,
    /// The question without its options.
    pub question: String,
    /// `(letter, text)`, letters from `A`.
    pub options: Vec<(char, String)>,
    pub answer: char,
    /// MMVP: questions sharing a pair id are scored together.
    pub pair: Option<String>,
}

/// The prompt: question, lettered options, and the instruction lmms-eval / VLMEvalKit give
/// Qwen2.5-VL for multiple choice.
pub fn mc_prompt(q: &McQuestion) -> String {
    let mut s = q.question.trim().to_string();
    for (l, t) in &q.options {
        s.push_str(&format!("\n{l}. {t}"));
    }
    s.push_str("\nAnswer with the option's letter from the given choices directly.");
    s
}

/// Options written inline as `(a) Open (b) Closed` or `A. x B. y` / `A: x, B: y` → `(letter,
/// text)` with upper-case letters, in order. `None` when no lettered option is found.
pub fn parse_inline_options(s: &str) -> Option<Vec<(char, String)>> {
    // Marker positions: "(x)" or a letter followed by '.' / ':' / ')' at a word start.
    let chars: Vec<(usize, char)> = s.char_indices().collect();
    let mut marks: Vec<(usize, usize, char)> = Vec::new(); // (start, text start, letter)
    let expected = |n: usize| (b'A' + n as u8) as char;
    let mut i = 0;
    while i < chars.len() {
        let want = expected(marks.len());
        let (pos, c) = chars[i];
        let at_word_start = i == 0 || !chars[i - 1].1.is_alphanumeric();
        if c == '(' && i + 2 < chars.len() && chars[i + 2].1 == ')' {
            let l = chars[i + 1].1.to_ascii_uppercase();
            if l == want {
                let end = chars.get(i + 3).map(|x| x.0).unwrap_or(s.len());
                marks.push((pos, end, l));
                i += 3;
                continue;
            }
        }
        if at_word_start
            && c.to_ascii_uppercase() == want
            && c.is_ascii_uppercase()
            && i + 1 < chars.len()
            && matches!(chars[i + 1].1, '.' | ':' | ')')
            && chars.get(i + 2).is_none_or(|x| x.1.is_whitespace())
        {
            let end = chars.get(i + 2).map(|x| x.0).unwrap_or(s.len());
            marks.push((pos, end, want));
            i += 2;
            continue;
        }
        i += 1;
    }
    if marks.len() < 2 {
        return None;
    }
    let mut out = Vec::with_capacity(marks.len());
    for (k, &(_, text_start, l)) in marks.iter().enumerate() {
        let text_end = marks.get(k + 1).map(|m| m.0).unwrap_or(s.len());
        let t = s[text_start..text_end]
            .trim()
            .trim_end_matches([',', ';'])
            .trim();
        out.push((l, t.to_string()));
    }
    Some(out)
}

/// A letter answer written as `A`, `(A)`, `(a)`, `A.` → `'A'`.
pub fn parse_answer_letter(s: &str) -> Option<char> {
    let t = s.trim().trim_start_matches('(');
    let mut it = t.chars();
    let c = it.next()?.to_ascii_uppercase();
    let rest: String = it.collect();
    (c.is_ascii_uppercase() && (rest.is_empty() || rest.starts_with([')', '.', ':', ' '])))
        .then_some(c)
}

/// The published answer `raw` (`A`, `(b)`, …) as one of `options`' letters.
pub fn answer_among(raw: &str, options: &[(char, String)]) -> Option<char> {
    parse_answer_letter(raw).filter(|a| options.iter().any(|(l, _)| l == a))
}

/// A model's answer to one [`McQuestion`] (one line of `results.jsonl`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct McPrediction {
    pub id: String,
    pub task: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pair: Option<String>,
    pub prompt: String,
    pub text: String,
    /// The extracted letter (`null` when none could be read).
    pub predicted: Option<char>,
    pub answer: char,
    pub correct: bool,
    /// Latent tokens the model emitted (students).
    pub latent_steps: usize,
}

/// Asks `q` through `answer` (a model answering a prompt about images, e.g.
/// `ModelBundle::answer` with a generation config) and grades the answer.
pub fn answer_question(
    answer: impl FnOnce(&[image::RgbImage], &str) -> Result<Thoughts>,
    q: &McQuestion,
) -> Result<McPrediction> {
    let images = q
        .images
        .iter()
        .map(ImageSource::decode)
        .collect::<Result<Vec<_>>>()?;
    let prompt = mc_prompt(q);
    let Thoughts {
        answer,
        latent_steps,
        ..
    } = answer(&images, &prompt)?;
    let predicted = extract_choice(&answer, &q.options);
    Ok(McPrediction {
        id: q.id.clone(),
        task: q.task.clone(),
        pair: q.pair.clone(),
        prompt,
        correct: predicted == Some(q.answer),
        predicted,
        answer: q.answer,
        text: answer,
        latent_steps: latent_steps.len(),
    })
}

/// One row of the summary table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskScore {
    pub task: String,
    pub n: usize,
    pub accuracy: f64,
    /// Questions whose answer had no readable letter.
    pub unparsed: usize,
}

/// Accuracy per task and overall; MMVP's pair accuracy (a pair counts when all its questions
/// are right) when the predictions carry pairs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub tasks: Vec<TaskScore>,
    pub overall: TaskScore,
    /// Unweighted mean of the task accuracies (BLINK's "Total").
    pub task_mean: f64,
    /// `(pairs, pair accuracy)`.
    pub pairs: Option<(usize, f64)>,
}

pub fn summarise(preds: &[McPrediction]) -> Summary {
    let score = |task: &str, ps: &[&McPrediction]| TaskScore {
        task: task.to_string(),
        n: ps.len(),
        accuracy: ps.iter().filter(|p| p.correct).count() as f64 / ps.len().max(1) as f64,
        unparsed: ps.iter().filter(|p| p.predicted.is_none()).count(),
    };
    let mut by_task: BTreeMap<&str, Vec<&McPrediction>> = BTreeMap::new();
    let mut by_pair: BTreeMap<&str, Vec<bool>> = BTreeMap::new();
    for p in preds {
        by_task.entry(&p.task).or_default().push(p);
        if let Some(pair) = &p.pair {
            by_pair.entry(pair).or_default().push(p.correct);
        }
    }
    let all: Vec<&McPrediction> = preds.iter().collect();
    let tasks: Vec<TaskScore> = by_task.iter().map(|(t, ps)| score(t, ps)).collect();
    Summary {
        task_mean: tasks.iter().map(|t| t.accuracy).sum::<f64>() / tasks.len().max(1) as f64,
        tasks,
        overall: score("all", &all),
        pairs: (!by_pair.is_empty()).then(|| {
            let right = by_pair.values().filter(|v| v.iter().all(|c| *c)).count();
            (by_pair.len(), right as f64 / by_pair.len() as f64)
        }),
    }
}

impl Summary {
    /// A Markdown table.
    pub fn table(&self) -> String {
        let mut s = String::from("| task | n | accuracy | no letter |\n|---|---|---|---|\n");
        for t in self.tasks.iter().chain(std::iter::once(&self.overall)) {
            s.push_str(&format!(
                "| {} | {} | {:.1}% | {} |\n",
                t.task,
                t.n,
                t.accuracy * 100.0,
                t.unparsed
            ));
        }
        if self.tasks.len() > 1 {
            s.push_str(&format!(
                "| mean of tasks | {} | {:.1}% | |\n",
                self.tasks.len(),
                self.task_mean * 100.0
            ));
        }
        if let Some((n, acc)) = self.pairs {
            s.push_str(&format!(
                "| pairs (both right) | {n} | {:.1}% | |\n",
                acc * 100.0
            ));
        }
        s
    }
}

/// A [`LavitError::Bench`] naming the file.
pub(crate) fn bad(path: &Path, msg: impl std::fmt::Display) -> LavitError {
    LavitError::Bench(format!("{}: {msg}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pred(task: &str, pair: Option<&str>, correct: bool) -> McPrediction {
        McPrediction {
            id: "x".into(),
            task: task.into(),
            pair: pair.map(Into::into),
            prompt: String::new(),
            text: String::new(),
            predicted: correct.then_some('A'),
            answer: 'A',
            correct,
            latent_steps: 0,
        }
    }

    #[test]
    fn inline_options() {
        let o = parse_inline_options("(a) Open (b) Closed").unwrap();
        assert_eq!(o, vec![('A', "Open".into()), ('B', "Closed".into())]);
        let o = parse_inline_options("A: red, B: green, C: a blue car").unwrap();
        assert_eq!(
            o,
            vec![
                ('A', "red".into()),
                ('B', "green".into()),
                ('C', "a blue car".into())
            ]
        );
        let o = parse_inline_options("Options: A. 1 B. 2").unwrap();
        assert_eq!(o, vec![('A', "1".into()), ('B', "2".into())]);
        // "A" inside a word or out of order is not a marker.
        let o = parse_inline_options("(a) Bad (b) A. plus").unwrap();
        assert_eq!(o, vec![('A', "Bad".into()), ('B', "A. plus".into())]);
        assert_eq!(parse_inline_options("no options here"), None);
        assert_eq!(parse_inline_options("(a) only one"), None);
    }

    #[test]
    fn answer_letters() {
        for (s, want) in [
            ("A", Some('A')),
            ("(b)", Some('B')),
            ("(C)", Some('C')),
            ("D.", Some('D')),
            (" a ", Some('A')),
            ("yes", None),
            ("", None),
        ] {
            assert_eq!(parse_answer_letter(s), want, "{s:?}");
        }
    }

    #[test]
    fn summary_with_pairs() {
        let preds = vec![
            pred("t1", Some("1"), true),
            pred("t1", Some("1"), true),
            pred("t1", Some("2"), true),
            pred("t2", Some("2"), false),
        ];
        let s = summarise(&preds);
        assert_eq!(s.overall.n, 4);
        assert!((s.overall.accuracy - 0.75).abs() < 1e-12);
        assert_eq!(s.tasks.len(), 2);
        assert_eq!(s.tasks[1].unparsed, 1);
        assert_eq!(s.pairs, Some((2, 0.5)));
        assert!((s.task_mean - 0.5).abs() < 1e-12, "(3/3 + 0/1) / 2");
        assert!(s.table().contains("| pairs (both right) | 2 | 50.0% | |"));
    }

    #[test]
    fn benchmark_names() {
        assert_eq!(Benchmark::parse("MMVP"), Some(Benchmark::Mmvp));
        assert_eq!(Benchmark::parse("vstar"), Some(Benchmark::Vstar));
        assert_eq!(Benchmark::parse("mme"), None);
    }
}
