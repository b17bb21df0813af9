//! Extraction over a dataset: for each sample of this shard that the store does not hold yet,
//! build `prompt + answer` (the sample's answer, or the teacher's own greedy generation),
//! split the answer into steps, run the teacher once and append the signals to the store.
//!
//! The dataset's answer always stays the student's target; the teacher's own answer, when
//! generated, is stored beside it (its steps then make the trajectory), and with the
//! correctness filter a sample is kept only when that answer agrees with the gold one.

use std::path::Path;

use super::extract::{ExtractConfig, TeacherSignals, append_steps, extract_signals, split_steps};
use super::store::{SignalRecord, SignalWriter};
#[cfg(not(target_arch = "wasm32"))]
use super::stream::{StreamSample, StreamedTeacher};
use crate::data::viscot::{Sample, image_path};
use crate::error::{LavitError, Result};
use crate::infer::{GenerateConfig, generate};
use crate::io::chat::{ChatTokenizer, Message};
use crate::io::checkpoint::HostInputs;
use crate::io::processor::{ProcessorConfig, load_rgb};
use crate::model::vlm::Qwen25Vl;
use image::RgbImage;

/// The teacher of an extraction: loaded whole, or read layer by layer.
#[derive(Clone, Copy)]
pub enum Teacher<'a> {
    Loaded(&'a Qwen25Vl),
    #[cfg(not(target_arch = "wasm32"))]
    Streamed(&'a StreamedTeacher),
}

impl Teacher<'_> {
    pub fn config(&self) -> &crate::model::Qwen25VlConfig {
        match self {
            Teacher::Loaded(t) => &t.config,
            #[cfg(not(target_arch = "wasm32"))]
            Teacher::Streamed(t) => &t.config,
        }
    }
}

impl<'a> From<&'a Qwen25Vl> for Teacher<'a> {
    fn from(t: &'a Qwen25Vl) -> Self {
        Teacher::Loaded(t)
    }
}

/// What to extract with.
pub struct ExtractJob<'a> {
    pub teacher: Teacher<'a>,
    pub tokenizer: &'a ChatTokenizer,
    pub processor: &'a ProcessorConfig,
    pub images_root: &'a Path,
    pub cfg: ExtractConfig,
    /// Cap on the number of steps `T` (extra steps are merged into the last one).
    pub max_steps: Option<usize>,
    /// Take the trajectory over the teacher's own greedy answer (split into steps) instead
    /// of the dataset's; the dataset's answer stays the student's target.
    pub generate: Option<GenerateConfig>,
    /// Keep a sample only when the teacher's own greedy answer agrees with the gold answer
    /// ([`answers_agree`]); generates with `generate`, or greedily up to 256 tokens.
    pub filter_correct: bool,
}

/// Counts of one extraction run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExtractSummary {
    pub extracted: usize,
    pub skipped_done: usize,
    pub other_shards: usize,
    /// Dropped by the correctness filter in this run.
    pub dropped_incorrect: usize,
}

/// Whether the teacher's answer agrees with the gold one: for samples with an answer `key`
/// (the synthetic task) the key read from the teacher's text
/// ([`crate::data::synthetic::predicted_key`]); otherwise the gold answer, lower-cased with
/// punctuation and `<answer>` tags removed, must occur in the teacher's, likewise normalised.
pub fn answers_agree(gold: &str, teacher: &str, key: Option<&str>) -> bool {
    if let Some(k) = key.filter(|k| !k.is_empty()) {
        return crate::data::synthetic::predicted_key(teacher) == k.to_lowercase();
    }
    let norm = |s: &str| {
        let s = s.replace("<answer>", " ").replace("</answer>", " ");
        s.to_lowercase()
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let (g, t) = (norm(gold), norm(teacher));
    !g.is_empty() && format!(" {t} ").contains(&format!(" {g} "))
}

/// Caps `steps` at `max` by merging the tail into the last kept step.
pub fn cap_steps(mut steps: Vec<String>, max: usize) -> Vec<String> {
    if max == 0 || steps.len() <= max {
        return steps;
    }
    let tail: String = steps.drain(max - 1..).collect();
    steps.push(tail);
    steps
}

/// The samples of `shard` out of `num_shards` (by position in the dataset).
pub fn shard_of(samples: &[Sample], shard: usize, num_shards: usize) -> Vec<&Sample> {
    samples
        .iter()
        .enumerate()
        .filter(|(i, _)| i % num_shards.max(1) == shard)
        .map(|(_, s)| s)
        .collect()
}

/// A sample ready for the teacher: its record and inputs.
struct Prepared {
    record: SignalRecord,
    inputs: HostInputs,
    spans: Vec<std::ops::Range<usize>>,
    /// Position in the shard (for progress).
    at: usize,
}

/// Extracts every not-yet-stored sample of `samples` (already sharded) into `writer`;
/// `progress(done, total)` is called after each sample. A streamed teacher works through the
/// samples in batches of [`StreamedTeacher::batch`].
pub fn extract_all(
    job: &ExtractJob<'_>,
    samples: &[&Sample],
    writer: &mut SignalWriter,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<ExtractSummary> {
    let mut summary = ExtractSummary::default();
    let hidden = job.teacher.config().text.hidden_size;
    if let Some(d) = writer.d_teacher()
        && d != hidden
    {
        return Err(LavitError::Invalid(format!(
            "the signal store holds d_T = {d} but the teacher's hidden size is {hidden}"
        )));
    }
    let batch = match job.teacher {
        Teacher::Loaded(_) => 1,
        #[cfg(not(target_arch = "wasm32"))]
        Teacher::Streamed(t) => t.batch.max(1),
    };
    let total = samples.len();
    let mut pending: Vec<Prepared> = Vec::new();
    for (i, s) in samples.iter().enumerate() {
        if writer.contains(&s.id) {
            summary.skipped_done += 1;
            progress(i + 1, total);
            continue;
        }
        match prepare(job, s, i)? {
            Some(p) => pending.push(p),
            None => {
                writer.drop_sample(&s.id)?;
                summary.dropped_incorrect += 1;
                progress(i + 1, total);
                continue;
            }
        }
        if pending.len() >= batch || i + 1 == total {
            summary.extracted +=
                run_batch(job, std::mem::take(&mut pending), writer, progress, total)?;
        }
    }
    summary.extracted += run_batch(job, pending, writer, progress, total)?;
    writer.flush()?;
    Ok(summary)
}

/// Signals of `batch` into `writer`.
fn run_batch(
    job: &ExtractJob<'_>,
    batch: Vec<Prepared>,
    writer: &mut SignalWriter,
    progress: &mut dyn FnMut(usize, usize),
    total: usize,
) -> Result<usize> {
    if batch.is_empty() {
        return Ok(0);
    }
    let n = batch.len();
    let signals: Vec<TeacherSignals> = match job.teacher {
        Teacher::Loaded(t) => batch
            .iter()
            .map(|p| extract_signals(t, &p.inputs, &p.spans, &job.cfg))
            .collect::<Result<_>>()?,
        #[cfg(not(target_arch = "wasm32"))]
        Teacher::Streamed(t) => {
            let samples: Vec<StreamSample> = batch
                .iter()
                .map(|p| StreamSample {
                    inputs: p.inputs.clone(),
                    steps: p.spans.clone(),
                })
                .collect();
            t.extract_batch(&samples, &job.cfg)?
        }
    };
    for (p, sig) in batch.into_iter().zip(signals) {
        writer.push(p.record, sig)?;
        progress(p.at + 1, total);
    }
    Ok(n)
}

/// Builds sample `s`'s record and inputs (generating the teacher's own answer when asked);
/// `None` when the correctness filter drops it.
fn prepare(job: &ExtractJob<'_>, s: &Sample, at: usize) -> Result<Option<Prepared>> {
    prepare_image(job, s, load_rgb(&image_path(job.images_root, s))?, at)
}

/// The teacher's signals of sample `s` over image `img`, in memory (`job.images_root` is not
/// read): what [`extract_all`] stores for it, with its record; `None` when the correctness
/// filter drops it. Needs the whole teacher in memory.
pub fn signals_of(
    job: &ExtractJob<'_>,
    s: &Sample,
    img: RgbImage,
) -> Result<Option<(SignalRecord, TeacherSignals)>> {
    let Some(p) = prepare_image(job, s, img, 0)? else {
        return Ok(None);
    };
    // wasm32 has no streamed teacher, so the pattern cannot fail there.
    #[cfg_attr(target_arch = "wasm32", allow(irrefutable_let_patterns))]
    let Teacher::Loaded(teacher) = job.teacher else {
        return Err(LavitError::Invalid(
            "signals in memory need the whole teacher in memory, not streamed layers".into(),
        ));
    };
    let sig = extract_signals(teacher, &p.inputs, &p.spans, &job.cfg)?;
    Ok(Some((p.record, sig)))
}

/// [`prepare`] with the sample's image already decoded.
fn prepare_image(
    job: &ExtractJob<'_>,
    s: &Sample,
    img: RgbImage,
    at: usize,
) -> Result<Option<Prepared>> {
    let msgs = [Message::user_image_question(1, &s.question)];
    let prompt = HostInputs::build(job.tokenizer, job.processor, &[img], &msgs, true)?;
    let teacher_answer = if job.generate.is_some() || job.filter_correct {
        // wasm32 has no streamed teacher, so the pattern cannot fail there.
        #[cfg_attr(target_arch = "wasm32", allow(irrefutable_let_patterns))]
        let Teacher::Loaded(teacher) = job.teacher else {
            return Err(LavitError::Invalid(
                "the teacher's own answers (generated steps, the correctness filter) need the whole teacher in memory, not streamed layers".into(),
            ));
        };
        let mut g = job.generate.clone().unwrap_or(GenerateConfig {
            max_new_tokens: 256,
            ..Default::default()
        });
        g.stop_ids = vec![job.tokenizer.im_end];
        let out = generate(teacher, None, &prompt.to_device(&teacher.device()), &[], &g)?;
        let ids: Vec<u32> = out
            .tokens
            .into_iter()
            .filter(|&t| t != job.tokenizer.im_end)
            .collect();
        Some(job.tokenizer.decode(&ids, true)?)
    } else {
        None
    };
    if job.filter_correct
        && let Some(t) = &teacher_answer
        && !answers_agree(&s.answer, t, s.extra.get("key").and_then(|k| k.as_str()))
    {
        return Ok(None);
    }
    // The steps the trajectory is taken over: the teacher's own answer, else the steps the
    // data gives (Visual-CoT's box turn and answer, one per line), else the answer split
    // into sentences.
    let steps = match (&job.generate, &teacher_answer) {
        (Some(_), Some(t)) => split_steps(t),
        _ if !s.steps.is_empty() => {
            let n = s.steps.len();
            s.steps
                .iter()
                .enumerate()
                .map(|(i, st)| {
                    if i + 1 < n {
                        format!("{st}\n")
                    } else {
                        st.clone()
                    }
                })
                .collect()
        }
        _ => split_steps(&s.answer),
    };
    let steps = cap_steps(steps, job.max_steps.unwrap_or(0));
    let (ids, spans) = append_steps(job.tokenizer, &prompt.input_ids, &steps)?;
    Ok(Some(Prepared {
        record: SignalRecord {
            id: s.id.clone(),
            image: s.image.clone(),
            question: s.question.clone(),
            answer: s.answer.clone(),
            steps,
            teacher_answer,
            grid_h: 0,
            grid_w: 0,
            d_teacher: 0,
            file: String::new(),
            extra: s.extra.clone(),
        },
        inputs: HostInputs {
            input_ids: ids,
            images: prompt.images,
        },
        spans,
        at,
    }))
}

#[cfg(test)]
mod tests {
    use super::answers_agree;

    #[test]
    fn agreement_of_answers() {
        assert!(answers_agree(
            "I find the circle. It is red.",
            "I find the circle. It is red.",
            Some("red")
        ));
        assert!(!answers_agree(
            "x",
            "I find the circle. It is blue.",
            Some("red")
        ));
        assert!(answers_agree(
            "<answer>two cats</answer>",
            "I see Two cats, sleeping.",
            None
        ));
        assert!(!answers_agree("two", "There are twelve.", None));
        assert!(!answers_agree("red car", "the car is red", None));
        assert!(!answers_agree("", "anything", None));
    }
}
