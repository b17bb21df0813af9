//! Teacher extraction against HF eager attention (fixture), and the memory bound of the
//! row capture.

use lavit_core::io::checkpoint::HostInputs;
use lavit_core::io::processor::load_rgb;
use lavit_core::io::{Checkpoint, Message};
use lavit_core::lavit::targets::TopK;
use lavit_core::model::attention::{capture_counters, reset_capture_counter};
use lavit_core::teacher::extract::TrajRows;
use lavit_core::teacher::{ExtractConfig, extract_signals};
use lavit_tests::{assert_close, fixture, reference, reference_meta};

fn inputs(name: &str, ckpt: &Checkpoint) -> HostInputs {
    let meta = reference_meta(name);
    let tok = ckpt.tokenizer(None).unwrap();
    let mut proc = ckpt.processor.clone();
    proc.min_pixels = meta["min_pixels"].as_u64().unwrap() as usize;
    proc.max_pixels = meta["max_pixels"].as_u64().unwrap() as usize;
    let img = load_rgb(&fixture(meta["image"].as_str().unwrap())).unwrap();
    let msgs = [Message::user_image_question(
        1,
        meta["question"].as_str().unwrap(),
    )];
    let mut host = HostInputs::build(&tok, &proc, &[img], &msgs, true).unwrap();
    host.input_ids
        .extend(tok.encode(meta["answer"].as_str().unwrap()).unwrap());
    host
}

#[test]
fn trajectory_and_vtop_match_hf_eager_attention() {
    let device = lavit_backends::select("cpu", 0).unwrap();
    for name in ["tiny-gqa", "tiny-tied"] {
        let r = reference(name);
        let ckpt = Checkpoint::open(&fixture(name)).unwrap();
        let teacher = ckpt.load(&device).unwrap();
        let host = inputs(name, &ckpt);
        let split: Vec<usize> = r["traj_step_split"]
            .to_i64()
            .iter()
            .map(|&v| v as usize)
            .collect();
        let spans = vec![split[0]..split[1], split[1]..split[2]];
        let sig = extract_signals(
            &teacher,
            &host,
            &spans,
            &ExtractConfig {
                layers: 2,
                top_k: TopK::Count(5),
                ..Default::default()
            },
        )
        .unwrap();
        let ours: Vec<f32> = sig.traj.iter().flatten().copied().collect();
        assert_close(
            &format!("{name}: trajectory"),
            &ours,
            &r["traj_two_steps"].to_f32(),
            1e-4,
        );
        // The reference implementation's rows: everything after the image up to each step's
        // end.
        let since = extract_signals(
            &teacher,
            &host,
            &spans,
            &ExtractConfig {
                layers: 2,
                top_k: TopK::Count(5),
                rows: TrajRows::SinceImage,
            },
        )
        .unwrap();
        let ours: Vec<f32> = since.traj.iter().flatten().copied().collect();
        assert_close(
            &format!("{name}: trajectory, rows since the image"),
            &ours,
            &r["traj_two_steps_since_image"].to_f32(),
            1e-4,
        );
        // V_top = pre-norm last layer at the image positions.
        let pre = r["last_layer_prenorm"].to_f32();
        let d = sig.d_teacher;
        let img: Vec<usize> = r["image_positions"]
            .to_i64()
            .iter()
            .map(|&v| v as usize)
            .collect();
        let want: Vec<f32> = img
            .iter()
            .flat_map(|&p| pre[p * d..(p + 1) * d].to_vec())
            .collect();
        assert_close(&format!("{name}: V_top"), &sig.vtop, &want, 1e-4);
        assert_eq!(sig.grid.0 * sig.grid.1, img.len());
        // Top-K indices point at the largest entries.
        for (m, k) in sig.traj.iter().zip(&sig.topk) {
            assert_eq!(k.len(), 5);
            let min_kept = k.iter().map(|&i| m[i]).fold(f32::INFINITY, f32::min);
            let larger = m.iter().filter(|&&v| v > min_kept).count();
            assert!(larger < 5);
        }
    }
}

/// Extraction holds only `layers × heads × rows × N_img` probabilities and computes score
/// blocks of `heads × rows × S` — never `heads × S × S` per layer.
#[test]
fn extraction_memory_is_rows_times_keys() {
    let device = lavit_backends::select("cpu", 0).unwrap();
    let name = "tiny-gqa";
    let r = reference(name);
    let ckpt = Checkpoint::open(&fixture(name)).unwrap();
    let teacher = ckpt.load(&device).unwrap();
    let host = inputs(name, &ckpt);
    let s = host.input_ids.len();
    let split: Vec<usize> = r["traj_step_split"]
        .to_i64()
        .iter()
        .map(|&v| v as usize)
        .collect();
    let rows = split[2] - split[0];
    let n_img = r["image_positions"].shape()[0];
    let layers = ckpt.config.text.num_hidden_layers;
    let heads = ckpt.config.text.num_attention_heads;
    reset_capture_counter();
    extract_signals(
        &teacher,
        &host,
        std::slice::from_ref(&(split[0]..split[2])),
        &ExtractConfig {
            layers,
            top_k: TopK::Count(4),
            ..Default::default()
        },
    )
    .unwrap();
    let (captured, peak_block) = capture_counters();
    assert_eq!(captured, layers * heads * rows * n_img);
    assert_eq!(peak_block, heads * rows * s);
    assert!(
        peak_block * 4 < heads * s * s,
        "row capture is not smaller than full attention"
    );
}

/// The teacher-correctness filter keeps a sample only when the teacher's own greedy answer
/// agrees with the gold one; the kept / dropped counts and the dropped ids go to the store's
/// `summary.json`, the kept records carry the teacher's answer beside the gold one (which
/// stays the training target), and a resumed run neither redoes nor keeps the dropped ones.
#[test]
fn correctness_filter_counts_and_resume() {
    use lavit_core::data::Sample;
    use lavit_core::infer::{GenerateConfig, generate};
    use lavit_core::teacher::pipeline::{ExtractJob, extract_all};
    use lavit_core::teacher::store::StoreSummary;
    use lavit_core::teacher::{SignalStore, SignalWriter};
    let device = lavit_backends::select("cpu", 0).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let images = tmp.path().join("images");
    std::fs::create_dir_all(&images).unwrap();
    std::fs::copy(fixture("images/tiny-gqa.png"), images.join("a.png")).unwrap();
    let ckpt = Checkpoint::open(&fixture("tiny-gqa")).unwrap();
    let teacher = ckpt.load(&device).unwrap();
    let tok = ckpt.tokenizer(None).unwrap();
    let mut proc = ckpt.processor.clone();
    proc.max_pixels = 28 * 28 * 12;
    let greedy = GenerateConfig {
        max_new_tokens: 6,
        ..Default::default()
    };
    // What the (random-weight) teacher answers to each question, greedily.
    let own = |q: &str| {
        let img = load_rgb(&images.join("a.png")).unwrap();
        let host = HostInputs::build(
            &tok,
            &proc,
            &[img],
            &[Message::user_image_question(1, q)],
            true,
        )
        .unwrap();
        let mut g = greedy.clone();
        g.stop_ids = vec![tok.im_end];
        let out = generate(&teacher, None, &host.to_device(&device), &[], &g).unwrap();
        let ids: Vec<u32> = out
            .tokens
            .into_iter()
            .filter(|&t| t != tok.im_end)
            .collect();
        tok.decode(&ids, true).unwrap()
    };
    // Two questions whose answers have words to compare (the random-weight teacher emits
    // arbitrary bytes), and one the teacher gets "wrong".
    let mut answered: Vec<(String, String)> = (0..40)
        .map(|i| format!("Question {i}?"))
        .map(|q| {
            let a = own(&q);
            (q, a)
        })
        .filter(|(_, a)| a.chars().any(char::is_alphanumeric))
        .take(2)
        .collect();
    assert_eq!(answered.len(), 2, "no teacher answers with words");
    answered.insert(1, ("Question x?".into(), "zzzz qqqq".into()));
    let samples: Vec<Sample> = answered
        .iter()
        .enumerate()
        .map(|(i, (q, a))| Sample {
            id: format!("s{i}"),
            image: "a.png".into(),
            question: q.clone(),
            answer: a.clone(),
            steps: vec![],
            extra: serde_json::Value::Null,
        })
        .collect();
    let store = tmp.path().join("store");
    let job = ExtractJob {
        teacher: (&teacher).into(),
        tokenizer: &tok,
        processor: &proc,
        images_root: &images,
        cfg: ExtractConfig {
            layers: 2,
            top_k: TopK::Count(4),
            ..Default::default()
        },
        max_steps: None,
        generate: Some(greedy.clone()),
        filter_correct: true,
    };
    let refs: Vec<&Sample> = samples.iter().collect();
    let mut w = SignalWriter::open(&store, 0, 1, 2).unwrap();
    let s = extract_all(&job, &refs, &mut w, &mut |_, _| {}).unwrap();
    drop(w);
    assert_eq!((s.extracted, s.dropped_incorrect), (2, 1));
    let summary: StoreSummary =
        serde_json::from_slice(&std::fs::read(store.join("summary.json")).unwrap()).unwrap();
    assert_eq!(
        summary,
        StoreSummary {
            kept: 2,
            dropped_incorrect: 1,
            dropped_ids: vec!["s1".into()],
        }
    );
    let st = SignalStore::open(&store).unwrap();
    let ids: Vec<&str> = st.records.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["s0", "s2"]);
    for r in &st.records {
        let gold = &samples.iter().find(|s| s.id == r.id).unwrap().answer;
        assert_eq!(&r.answer, gold, "the gold answer stays the target");
        assert_eq!(r.teacher_answer.as_deref(), Some(gold.as_str()));
    }
    // Resume: nothing redone, the dropped sample stays dropped.
    let mut w = SignalWriter::open(&store, 0, 1, 2).unwrap();
    let again = extract_all(&job, &refs, &mut w, &mut |_, _| {}).unwrap();
    assert_eq!(
        (again.extracted, again.skipped_done, again.dropped_incorrect),
        (0, 3, 0)
    );
}

/// A crash in the middle of an index append leaves a torn last line: the store still opens
/// without it (its sample is extracted again on resume, and nothing is duplicated); a damaged
/// line elsewhere in the index is an error naming the file.
#[test]
fn torn_index_tail_is_dropped_and_redone() {
    use lavit_core::data::Sample;
    use lavit_core::teacher::pipeline::{ExtractJob, extract_all};
    use lavit_core::teacher::{SignalStore, SignalWriter};
    let device = lavit_backends::select("cpu", 0).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let images = tmp.path().join("images");
    std::fs::create_dir_all(&images).unwrap();
    std::fs::copy(fixture("images/tiny-gqa.png"), images.join("a.png")).unwrap();
    let ckpt = Checkpoint::open(&fixture("tiny-gqa")).unwrap();
    let teacher = ckpt.load(&device).unwrap();
    let tok = ckpt.tokenizer(None).unwrap();
    let mut proc = ckpt.processor.clone();
    proc.max_pixels = 28 * 28 * 12;
    let samples: Vec<Sample> = (0..4)
        .map(|i| Sample {
            id: format!("s{i}"),
            image: "a.png".into(),
            question: format!("Where is thing {i}?"),
            answer: format!("Look left. It is {i}."),
            steps: vec![],
            extra: serde_json::Value::Null,
        })
        .collect();
    let job = ExtractJob {
        teacher: (&teacher).into(),
        tokenizer: &tok,
        processor: &proc,
        images_root: &images,
        cfg: ExtractConfig {
            layers: 2,
            top_k: TopK::Count(4),
            ..Default::default()
        },
        max_steps: None,
        generate: None,
        filter_correct: false,
    };
    let refs: Vec<&Sample> = samples.iter().collect();
    let store = tmp.path().join("store");
    let mut w = SignalWriter::open(&store, 0, 1, 1).unwrap();
    extract_all(&job, &refs, &mut w, &mut |_, _| {}).unwrap();
    drop(w);
    let index = store.join("index.jsonl");
    let text = std::fs::read_to_string(&index).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4);
    // Torn: the last record cut in the middle, no newline.
    let torn = format!(
        "{}\n{}",
        lines[..3].join("\n"),
        &lines[3][..lines[3].len() / 2]
    );
    std::fs::write(&index, &torn).unwrap();
    let st = SignalStore::open(&store).unwrap();
    let ids: Vec<&str> = st.records.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["s0", "s1", "s2"], "the torn record is dropped");
    let mut w = SignalWriter::open(&store, 0, 1, 1).unwrap();
    let again = extract_all(&job, &refs, &mut w, &mut |_, _| {}).unwrap();
    drop(w);
    assert_eq!((again.extracted, again.skipped_done), (1, 3));
    let mut st = SignalStore::open(&store).unwrap();
    let ids: Vec<String> = st.records.iter().map(|r| r.id.clone()).collect();
    assert_eq!(ids, ["s0", "s1", "s2", "s3"], "redone once, no duplicate");
    for r in st.records.clone() {
        st.load(&r).unwrap();
    }
    // Damage in the middle is not a torn append: an error naming the index.
    let text = std::fs::read_to_string(&index).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    lines[1].truncate(10);
    std::fs::write(&index, lines.join("\n") + "\n").unwrap();
    let e = SignalStore::open(&store)
        .err()
        .expect("a damaged middle line is an error");
    assert!(e.to_string().contains("index.jsonl"), "{e}");
}

/// The reference implementation's V_top files (`torch.save` of a bare bf16 tensor) read with
/// burn's PyTorch reader give the values torch has; its trajectories land on the grid its data
/// loader would use; broken files are errors naming the sample and the file.
#[test]
fn reference_signals_import_as_torch_wrote_them() {
    use lavit_core::teacher::import::{read_pth_tensor, read_reference_data};
    let dir = fixture("reference-signals");
    let samples = read_reference_data(&dir.join("train.json"), &dir).unwrap();
    assert_eq!(samples.len(), 3);
    assert_eq!(
        samples[0].answer, "It is left of the square.",
        "<answer> tags stripped"
    );
    let expected =
        lavit_core::io::tensors::read_safetensors(&dir.join("expected.safetensors")).unwrap();
    for (i, s) in samples.iter().enumerate() {
        let (values, shape) = read_pth_tensor(&s.vtop).unwrap();
        let want = &expected[&format!("{i}.vtop")];
        assert_eq!(shape, want.shape().to_vec());
        assert_eq!(values, want.to_f32(), "sample {i}: V_top values");
    }
    let e = read_pth_tensor(&dir.join("bad/truncated.pth")).unwrap_err();
    assert!(!e.is_empty());
    let (_, shape) = read_pth_tensor(&dir.join("bad/wrong-shape.pth")).unwrap();
    assert_eq!(shape, vec![41, 16]);
}

/// Layer-streamed extraction (one block of the teacher in memory at a time, embeddings read
/// row by row from the memory-mapped checkpoint) gives exactly the signals of the whole
/// teacher, on both fixtures (hub layout bf16, and the newer layout f16 in ten shards), for a
/// batch of samples with different prompts and step rows.
#[test]
fn streamed_extraction_equals_in_memory() {
    use lavit_core::teacher::extract::TrajRows;
    use lavit_core::teacher::stream::{StreamSample, StreamedTeacher};
    let device = lavit_backends::select("cpu", 0).unwrap();
    for name in ["tiny-gqa", "tiny-tied"] {
        let r = reference(name);
        let ckpt = Checkpoint::open(&fixture(name)).unwrap();
        let teacher = ckpt.load(&device).unwrap();
        let host = inputs(name, &ckpt);
        let split: Vec<usize> = r["traj_step_split"]
            .to_i64()
            .iter()
            .map(|&v| v as usize)
            .collect();
        let mut other = host.clone();
        other.input_ids.truncate(split[1] + 2);
        let batch = vec![
            StreamSample {
                inputs: host.clone(),
                steps: vec![split[0]..split[1], split[1]..split[2]],
            },
            StreamSample {
                inputs: other,
                steps: std::iter::once(split[0]..split[1] + 2).collect(),
            },
        ];
        let streamed = StreamedTeacher::open(&ckpt, &device).unwrap();
        for rows in [TrajRows::Step, TrajRows::SinceImage] {
            let cfg = ExtractConfig {
                layers: 2,
                top_k: TopK::Count(4),
                rows,
            };
            let got = streamed.extract_batch(&batch, &cfg).unwrap();
            for (s, g) in batch.iter().zip(&got) {
                let want = extract_signals(&teacher, &s.inputs, &s.steps, &cfg).unwrap();
                assert_eq!(g, &want, "{name} {rows:?}: streamed signals differ");
            }
        }
    }
}
