//! Extraction over a dataset: for each sample of this shard that the store does not hold yet,
//! build `prompt + answer` (the sample's answer, or the teacher's own greedy generation),
//! split the answer into steps, run the teacher once and append the signals to the store.
//!
//! The dataset's answer always stays the student's target; the teacher's own answer, when
//! generated, is stored beside it (its steps then make the trajectory), and with the
//! correctness filter a sample is kept only when that answer agrees with the gold one.

use std::path::Path;

use super::extract::{ExtractConfig, append_steps, extract_signals, split_steps};
use super::store::{SignalRecord, SignalWriter};
use crate::data::viscot::{Sample, image_path};
use crate::error::{LavitError, Result};
use crate::infer::{GenerateConfig, generate};
use crate::io::chat::{ChatTokenizer, Message};
use crate::io::checkpoint::HostInputs;
use crate::io::processor::{ProcessorConfig, load_rgb};
use crate::model::vlm::Qwen25Vl;

/// What to extract with.
pub struct ExtractJob<'a> {
    pub teacher: &'a Qwen25Vl,
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

/// Extracts every not-yet-stored sample of `samples` (already sharded) into `writer`;
/// `progress(done, total)` is called after each sample.
pub fn extract_all(
    job: &ExtractJob<'_>,
    samples: &[&Sample],
    writer: &mut SignalWriter,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<ExtractSummary> {
    let mut summary = ExtractSummary::default();
    if let Some(d) = writer.d_teacher()
        && d != job.teacher.config.text.hidden_size
    {
        return Err(LavitError::Invalid(format!(
            "the signal store holds d_T = {d} but the teacher's hidden size is {}",
            job.teacher.config.text.hidden_size
        )));
    }
    let total = samples.len();
    for (i, s) in samples.iter().enumerate() {
        if writer.contains(&s.id) {
            summary.skipped_done += 1;
            progress(i + 1, total);
            continue;
        }
        let img = load_rgb(&image_path(job.images_root, s))?;
        let msgs = [Message::user_image_question(1, &s.question)];
        let prompt = HostInputs::build(job.tokenizer, job.processor, &[img], &msgs, true)?;
        let teacher_answer = if job.generate.is_some() || job.filter_correct {
            let mut g = job.generate.clone().unwrap_or(GenerateConfig {
                max_new_tokens: 256,
                ..Default::default()
            });
            g.stop_ids = vec![job.tokenizer.im_end];
            let out = generate(
                job.teacher,
                None,
                &prompt.to_device(&job.teacher.device()),
                &[],
                &g,
            )?;
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
            writer.drop_sample(&s.id)?;
            summary.dropped_incorrect += 1;
            progress(i + 1, total);
            continue;
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
        let inputs = HostInputs {
            input_ids: ids,
            images: prompt.images,
        };
        let signals = extract_signals(job.teacher, &inputs, &spans, &job.cfg)?;
        let record = SignalRecord {
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
        };
        writer.push(record, signals)?;
        summary.extracted += 1;
        progress(i + 1, total);
    }
    writer.flush()?;
    Ok(summary)
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
