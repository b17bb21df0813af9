//! Structure-aware fuzzing of every parser of user files, on stable Rust: valid documents
//! mutated field by field (a JSON value replaced, removed, duplicated or nested deeper; a PNG
//! header field changed with its CRC fixed; a parquet file rewritten with hostile cell values),
//! then byte by byte. Property: each case gives a typed error or a valid value — never a panic,
//! never an allocation over [`CAP`] (the test binary's allocator aborts naming the size).
//!
//! `#[ignore]`d in the ordinary run; `scripts/fuzz.sh` runs them (`LAVIT_FUZZ_CASES`, default
//! 10,000 per parser, fixed seeds) and prints `fuzz <parser>: <N> cases, <P> panics, …` with
//! the share of cases that got past the syntax to the parser's semantic checks. A panicking
//! input is written to `$CARGO_TARGET_DIR/fuzz-crashes/` to become a regression test.

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

use super::bench_eval::{Q, questions, write_blink, write_mmstar, write_mmvp, write_vstar};
use super::common::{root, student};
use crate::alloc_cap;
use lavit_core::io::tensors::{HostTensor, parse_safetensors, to_safetensors_bytes};

/// The largest single allocation a case may make. Every input here is a few kB; a parser that
/// asks for more believes a length field it should have checked.
pub const CAP: usize = 256 << 20;

fn cases() -> usize {
    std::env::var("LAVIT_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

/// What one case reached.
enum Reached {
    /// Rejected before the format's structure was read (bad syntax, bad magic).
    Syntax,
    /// The structure was read; the parser's own checks ran (and accepted or refused it).
    Semantic,
}

/// Random edits: of bytes, of JSON values, of text.
struct Mutator(StdRng);

const SPECIAL: [&str; 8] = [
    "<|image_pad|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|im_start|>",
    "<|im_end|>",
    "<image>",
    "<|endoftext|>",
    "<lvr>",
];

impl Mutator {
    fn new(seed: u64) -> Self {
        Self(StdRng::seed_from_u64(seed))
    }

    /// Byte-level edits: flips, interesting values, inserts, deletes, truncation, repeats.
    fn bytes(&mut self, b: &[u8]) -> Vec<u8> {
        let mut v = b.to_vec();
        for _ in 0..self.0.random_range(1..=4) {
            let n = v.len();
            match self.0.random_range(0..7) {
                0 if n > 0 => {
                    let i = self.0.random_range(0..n);
                    v[i] ^= 1 << self.0.random_range(0..8);
                }
                1 if n > 0 => {
                    let i = self.0.random_range(0..n);
                    v[i] = [0, 0xff, 0x7f, 0x80, b'"', b'{', b'9'][self.0.random_range(0..7)];
                }
                2 => {
                    let i = self.0.random_range(0..=n);
                    let k = self.0.random_range(1..16);
                    let ins: Vec<u8> = (0..k).map(|_| self.0.random()).collect();
                    v.splice(i..i, ins);
                }
                3 if n > 1 => {
                    let i = self.0.random_range(0..n);
                    let j = (i + self.0.random_range(1..64)).min(n);
                    v.drain(i..j);
                }
                4 if n > 0 => v.truncate(self.0.random_range(0..n)),
                5 if n > 1 => {
                    let i = self.0.random_range(0..n);
                    let j = (i + self.0.random_range(1..32)).min(n);
                    let chunk = v[i..j].to_vec();
                    v.splice(j..j, chunk);
                }
                _ if n >= 8 => {
                    // A 4- or 8-byte field set to an extreme (lengths, sizes, offsets).
                    let i = self.0.random_range(0..n - 7);
                    let x: u64 = [u64::MAX, 1 << 40, 1 << 31, 0, 7][self.0.random_range(0..5)];
                    v[i..i + 8].copy_from_slice(&x.to_le_bytes());
                }
                _ => v.push(self.0.random()),
            }
        }
        v
    }

    /// A hostile JSON value: extremes, wrong types, long strings, deep nesting.
    fn value(&mut self) -> Value {
        match self.0.random_range(0..12) {
            0 => Value::Null,
            1 => Value::Bool(self.0.random()),
            2 => serde_json::json!(-1),
            3 => serde_json::json!(0),
            4 => serde_json::json!(u64::MAX),
            5 => serde_json::json!(i64::MIN),
            6 => serde_json::json!(1e308),
            7 => serde_json::json!(self.0.random_range(1..100_000)),
            8 => {
                let n = self.0.random_range(0..40);
                Value::String(self.text(n))
            }
            9 => Value::Array(
                (0..self.0.random_range(0..4))
                    .map(|i| serde_json::json!(i))
                    .collect(),
            ),
            10 => serde_json::json!({}),
            _ => {
                let mut v = serde_json::json!(1);
                for _ in 0..self.0.random_range(1..200) {
                    v = serde_json::json!([v]);
                }
                v
            }
        }
    }

    /// Field-level edits of a JSON document: a value replaced, a key removed or added, an array
    /// element duplicated or dropped; several per case.
    fn json(&mut self, doc: &Value) -> Value {
        let mut doc = doc.clone();
        for _ in 0..self.0.random_range(1..=3) {
            self.edit(&mut doc, 0);
        }
        doc
    }

    fn edit(&mut self, v: &mut Value, depth: usize) {
        let descend = depth < 6 && self.0.random_bool(0.7);
        match v {
            Value::Object(m) if !m.is_empty() => {
                let keys: Vec<String> = m.keys().cloned().collect();
                let k = keys[self.0.random_range(0..keys.len())].clone();
                match self.0.random_range(0..4) {
                    _ if descend => self.edit(m.get_mut(&k).expect("key"), depth + 1),
                    0 => {
                        m.remove(&k);
                    }
                    1 => {
                        let name = self.text(8);
                        let val = self.value();
                        m.insert(name, val);
                    }
                    _ => {
                        let val = self.value();
                        m.insert(k, val);
                    }
                }
            }
            Value::Array(a) if !a.is_empty() => {
                let i = self.0.random_range(0..a.len());
                match self.0.random_range(0..4) {
                    _ if descend => self.edit(&mut a[i], depth + 1),
                    0 => {
                        a.remove(i);
                    }
                    1 => {
                        let dup = a[i].clone();
                        a.insert(i, dup);
                    }
                    _ => a[i] = self.value(),
                }
            }
            _ => *v = self.value(),
        }
    }

    /// Random text: ASCII, multi-byte characters, control characters and the chat template's
    /// special tokens.
    fn text(&mut self, n: usize) -> String {
        let mut s = String::new();
        while s.chars().count() < n {
            match self.0.random_range(0..10) {
                0 => s.push_str(SPECIAL[self.0.random_range(0..SPECIAL.len())]),
                1 => s.push(char::from_u32(self.0.random_range(0x80..0x3000)).unwrap_or('é')),
                2 => s.push(
                    ['\n', '\t', '\0', '\u{feff}', '{', '}', '"', '\\'][self.0.random_range(0..8)],
                ),
                3 => s.push('🦀'),
                _ => s.push(self.0.random_range(b' '..=b'~') as char),
            }
        }
        s
    }

    /// Half the time field edits (when the seed is JSON), then byte edits on top at times.
    fn doc(&mut self, seed: &[u8]) -> Vec<u8> {
        let parsed = serde_json::from_slice::<Value>(seed).ok();
        let mut out = match parsed {
            Some(v) if self.0.random_bool(0.6) => serde_json::to_vec(&self.json(&v)).unwrap(),
            _ => seed.to_vec(),
        };
        if out == seed || self.0.random_bool(0.3) {
            out = self.bytes(&out);
        }
        out
    }
}

/// One line of the report; the panics found are listed before it.
struct Report {
    parser: &'static str,
    cases: usize,
    panics: Vec<String>,
    semantic: usize,
}

static PANIC_MESSAGE: Mutex<Option<String>> = Mutex::new(None);

thread_local! {
    /// Whether this thread is fuzzing: its panics are recorded, not printed.
    static FUZZING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Installs (once) a panic hook that records the panics of fuzzing threads and leaves every
/// other thread's to the previous hook.
fn quiet_panics_while_fuzzing() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if FUZZING.with(|f| f.get()) {
                *PANIC_MESSAGE.lock().unwrap_or_else(|p| p.into_inner()) = Some(info.to_string());
            } else {
                previous(info);
            }
        }));
    });
}

/// Runs `cases()` cases of `parser`: `make(mutator, case)` builds an input, `run` parses it.
fn drive<I>(
    parser: &'static str,
    seed: u64,
    mut make: impl FnMut(&mut Mutator, usize) -> I,
    mut run: impl FnMut(&I) -> Reached,
    save: impl Fn(&I) -> Vec<u8>,
) -> Report {
    let mut m = Mutator::new(seed);
    let mut report = Report {
        parser,
        cases: 0,
        panics: Vec::new(),
        semantic: 0,
    };
    quiet_panics_while_fuzzing();
    FUZZING.with(|f| f.set(true));
    let _cap = alloc_cap::Cap::new(CAP);
    for case in 0..cases() {
        let input = match std::panic::catch_unwind(AssertUnwindSafe(|| make(&mut m, case))) {
            Ok(input) => input,
            Err(_) => {
                // A bug of the harness, not a finding: stop loudly.
                FUZZING.with(|f| f.set(false));
                let msg = PANIC_MESSAGE
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .take();
                panic!(
                    "fuzz {parser}: making case {case} failed: {}",
                    msg.unwrap_or_default()
                );
            }
        };
        match std::panic::catch_unwind(AssertUnwindSafe(|| run(&input))) {
            Ok(Reached::Semantic) => report.semantic += 1,
            Ok(Reached::Syntax) => {}
            Err(_) => {
                let msg = PANIC_MESSAGE
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .take();
                let msg = msg.unwrap_or_default();
                let dir = target_dir().join("fuzz-crashes");
                std::fs::create_dir_all(&dir).unwrap();
                let path = dir.join(format!("{parser}-{case}.bin"));
                std::fs::write(&path, save(&input)).unwrap();
                report
                    .panics
                    .push(format!("case {case} ({}): {msg}", path.display()));
            }
        }
        report.cases += 1;
    }
    FUZZING.with(|f| f.set(false));
    print(&report);
    report
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

fn print(r: &Report) {
    for p in &r.panics {
        println!("fuzz {}: PANIC {p}", r.parser);
    }
    println!(
        "fuzz {}: {} cases, {} panics, {:.0} % reached semantic validation, largest allocation {:.2} MB (cap {} MB)",
        r.parser,
        r.cases,
        r.panics.len(),
        100.0 * r.semantic as f64 / r.cases.max(1) as f64,
        alloc_cap::largest() as f64 / 1e6,
        CAP >> 20
    );
    assert!(
        r.panics.is_empty(),
        "fuzz {}: {} panics",
        r.parser,
        r.panics.len()
    );
}

/// Fuzzes `parse(bytes)` from JSON or binary `seeds` with [`Mutator::doc`].
fn drive_docs(
    parser: &'static str,
    seed: u64,
    seeds: &[Vec<u8>],
    mut parse: impl FnMut(&[u8]) -> Reached,
) -> Report {
    drive(
        parser,
        seed,
        |m, case| m.doc(&seeds[case % seeds.len()]),
        |b: &Vec<u8>| parse(b),
        |b| b.clone(),
    )
}

/// Semantic when the bytes are syntactically JSON.
fn json_reached(b: &[u8]) -> Reached {
    match serde_json::from_slice::<Value>(b) {
        Ok(_) => Reached::Semantic,
        Err(_) => Reached::Syntax,
    }
}

#[test]
#[ignore = "run by scripts/fuzz.sh"]
fn fuzz_config_json() {
    let dir = root().join("tests/fixtures");
    let mut seeds: Vec<Vec<u8>> = ["tiny-gqa", "tiny-tied", "tiny-reference"]
        .iter()
        .map(|m| std::fs::read(dir.join(m).join("config.json")).unwrap())
        .collect();
    for e in std::fs::read_dir(dir.join("config_variants")).unwrap() {
        seeds.push(std::fs::read(e.unwrap().path()).unwrap());
    }
    seeds.push(std::fs::read(student().join("config.json")).unwrap());
    drive_docs("config.json", 1, &seeds, |b| {
        let _ = lavit_core::io::config::parse_config(b);
        json_reached(b)
    });
}

/// Safetensors: the header JSON edited and re-framed with a correct length, or the bytes.
#[test]
#[ignore = "run by scripts/fuzz.sh"]
fn fuzz_safetensors() {
    let mut t = BTreeMap::new();
    t.insert("a.weight".into(), HostTensor::f32(vec![2, 3], vec![0.5; 6]));
    t.insert("b.ids".into(), HostTensor::i64(vec![4], vec![1, 2, 3, 4]));
    let file = to_safetensors_bytes(&t).unwrap();
    let n = u64::from_le_bytes(file[..8].try_into().unwrap()) as usize;
    let (header, data) = (file[8..8 + n].to_vec(), file[8 + n..].to_vec());
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("x.safetensors");
    drive(
        "safetensors",
        2,
        |m, _| {
            if m.0.random_bool(0.6) {
                let h = m.doc(&header);
                let d = if m.0.random_bool(0.2) {
                    m.bytes(&data)
                } else {
                    data.clone()
                };
                [(h.len() as u64).to_le_bytes().to_vec(), h, d].concat()
            } else {
                m.bytes(&file)
            }
        },
        |b: &Vec<u8>| {
            let _ = parse_safetensors(b);
            std::fs::write(&path, b).unwrap();
            let _ = lavit_core::io::tensors::safetensors_header(&path);
            let len = b
                .get(..8)
                .map(|l| u64::from_le_bytes(l.try_into().unwrap()) as usize);
            match len.and_then(|l| b.get(8..8usize.saturating_add(l))) {
                Some(h) => json_reached(h),
                None => Reached::Syntax,
            }
        },
        |b| b.clone(),
    );
}

/// `model.safetensors.index.json` as the loader reads it (the shard list of a checkpoint).
#[test]
#[ignore = "run by scripts/fuzz.sh"]
fn fuzz_safetensors_index() {
    let seed = serde_json::to_vec(&serde_json::json!({
        "metadata": {"total_size": 1234},
        "weight_map": {
            "model.embed_tokens.weight": "model-00001-of-00002.safetensors",
            "lm_head.weight": "model-00002-of-00002.safetensors"
        }
    }))
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let index = tmp.path().join("model.safetensors.index.json");
    drive_docs("safetensors index", 3, &[seed], |b| {
        std::fs::write(&index, b).unwrap();
        if let Ok(files) = lavit_core::io::weights::checkpoint_files(tmp.path()) {
            for f in files {
                let rest = f
                    .strip_prefix(tmp.path())
                    .expect("a shard outside the checkpoint");
                assert!(
                    rest.components()
                        .all(|c| matches!(c, std::path::Component::Normal(_))),
                    "{} escapes the checkpoint",
                    f.display()
                );
            }
        }
        json_reached(b)
    });
}

/// The signal store's `index.jsonl`: records edited field by field, lines torn or repeated.
#[test]
#[ignore = "run by scripts/fuzz.sh"]
fn fuzz_signal_index() {
    let record = serde_json::json!({
        "id": "s0", "image": "a.png", "question": "What colour is the circle?",
        "answer": "It is red.", "steps": ["Look at the circle.", "It is red."],
        "grid_h": 6, "grid_w": 6, "d_teacher": 64, "file": "signals-0-00000.safetensors",
        "extra": {"regions": [[0, 0, 10, 10]]}
    });
    let line = serde_json::to_string(&record).unwrap();
    let seeds = [
        format!("{line}\n"),
        format!("{line}\n{}\n", line.replace("s0", "s1")),
    ];
    let tmp = tempfile::tempdir().unwrap();
    drive(
        "index.jsonl",
        4,
        |m, case| {
            let seed = &seeds[case % 2];
            let lines: Vec<Vec<u8>> = seed.lines().map(|l| m.doc(l.as_bytes())).collect();
            let mut out = lines.join(&b'\n');
            if m.0.random_bool(0.8) {
                out.push(b'\n');
            }
            out
        },
        |b: &Vec<u8>| {
            std::fs::write(tmp.path().join("index.jsonl"), b).unwrap();
            let reached = match std::str::from_utf8(b) {
                Ok(t) if t.lines().all(|l| serde_json::from_str::<Value>(l).is_ok()) => {
                    Reached::Semantic
                }
                _ => Reached::Syntax,
            };
            if let Ok(mut st) = lavit_core::teacher::SignalStore::open(tmp.path()) {
                let recs = st.records.clone();
                for r in &recs {
                    let _ = st.load(r);
                }
            }
            reached
        },
        |b| b.clone(),
    );
}

#[test]
#[ignore = "run by scripts/fuzz.sh"]
fn fuzz_task_file() {
    let seeds = [
        std::fs::read(root().join("assets/synthetic/task.json")).unwrap(),
        serde_json::to_vec(&lavit_core::data::synthetic::SceneConfig::plain()).unwrap(),
    ];
    drive_docs("task file", 5, &seeds, |b| {
        if let Ok(task) = serde_json::from_slice::<lavit_core::data::synthetic::SceneConfig>(b)
            && task.validate().is_ok()
        {
            // A task that validates must generate.
            let _ = lavit_core::data::synthetic::generate(2, 0, &task, "fuzz-");
        }
        json_reached(b)
    });
}

#[test]
#[ignore = "run by scripts/fuzz.sh"]
fn fuzz_visual_cot_json() {
    let seed = serde_json::to_vec(&serde_json::json!([
        {"question_id": "q0", "image": ["cot/gqa/1.jpg"], "conversations": [
            {"from": "human", "value": "<image>\nWhat colour is the bus? Please provide the bounding box coordinate of the region that can help you answer the question better."},
            {"from": "gpt", "value": "[0.1, 0.2, 0.5, 0.6]"},
            {"from": "human", "value": "<image>\nPlease answer the question."},
            {"from": "gpt", "value": "<answer>Red.</answer>"}]},
        {"id": 7, "image": "b.png", "conversations": [
            {"from": "human", "value": "<image>\nHow many?"}, {"from": "gpt", "value": "Two."}]}
    ]))
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("data.json");
    drive_docs("Visual-CoT json", 6, &[seed], |b| {
        std::fs::write(&path, b).unwrap();
        let _ = lavit_core::data::read_viscot(&path);
        json_reached(b)
    });
}

/// The chat template and the image-pad expansion with arbitrary text, then tokenization.
#[test]
#[ignore = "run by scripts/fuzz.sh"]
fn fuzz_chat_template() {
    use lavit_core::io::{ChatTokenizer, Content, Message};
    let tok =
        ChatTokenizer::from_file(&root().join("tests/fixtures/tiny-gqa/tokenizer.json")).unwrap();
    drive(
        "chat template",
        7,
        |m, _| {
            let n_images = m.0.random_range(0..3);
            let counts: Vec<usize> = (0..m.0.random_range(0..3))
                .map(|_| m.0.random_range(0..50))
                .collect();
            let len = m.0.random_range(0..200);
            (n_images, counts, m.text(len), m.text(20))
        },
        |(n_images, counts, question, answer)| {
            let mut content: Vec<Content> = (0..*n_images).map(|_| Content::Image).collect();
            content.push(Content::Text {
                text: question.clone(),
            });
            let msgs = [Message::user(content), Message::assistant(answer.clone())];
            let _ = tok.encode_chat(&msgs, true, counts);
            Reached::Semantic
        },
        |(n, c, q, a)| format!("{n} {c:?}\n{q}\n{a}").into_bytes(),
    );
}

/// Images: PNG header fields edited with the CRC fixed (sizes, depth, colour type), JPEG and
/// PNG bytes; a decoded image then goes through the processor.
#[test]
#[ignore = "run by scripts/fuzz.sh"]
fn fuzz_images() {
    use lavit_core::io::processor::{ProcessorConfig, decode_rgb, process_image};
    let dir = root().join("tests/fixtures/images");
    let png = std::fs::read(dir.join("tiny-gqa.png")).unwrap();
    let mut jpeg = std::io::Cursor::new(Vec::new());
    image::load_from_memory(&png)
        .unwrap()
        .write_to(&mut jpeg, image::ImageFormat::Jpeg)
        .unwrap();
    let seeds = [
        png,
        jpeg.into_inner(),
        std::fs::read(dir.join("proc_exact.png")).unwrap(),
    ];
    let proc = ProcessorConfig::default();
    drive(
        "images",
        8,
        |m, case| {
            let seed = &seeds[case % seeds.len()];
            if seed.starts_with(b"\x89PNG") && m.0.random_bool(0.5) {
                png_header_edit(m, seed)
            } else {
                m.bytes(seed)
            }
        },
        |b: &Vec<u8>| {
            let reached = image::ImageReader::new(std::io::Cursor::new(b))
                .with_guessed_format()
                .ok()
                .and_then(|r| r.into_dimensions().ok());
            if let Ok(img) = decode_rgb(b, "fuzz") {
                let _ = process_image(&img, &proc);
            }
            if reached.is_some() {
                Reached::Semantic
            } else {
                Reached::Syntax
            }
        },
        |b| b.clone(),
    );
}

/// A PNG with one IHDR field changed (width, height up to 2^31, bit depth, colour type,
/// interlace) and the chunk's CRC recomputed, so the decoder reads past the checksum.
fn png_header_edit(m: &mut Mutator, png: &[u8]) -> Vec<u8> {
    let mut v = png.to_vec();
    let field = m.0.random_range(0..5);
    match field {
        0 | 1 => {
            let x: u32 = [0, 1, 65_535, 1 << 20, 1 << 31, m.0.random()][m.0.random_range(0..6)];
            v[16 + 4 * field..20 + 4 * field].copy_from_slice(&x.to_be_bytes());
        }
        2 => v[24] = [0, 1, 2, 4, 8, 16, 7][m.0.random_range(0..7)],
        3 => v[25] = [0, 2, 3, 4, 6, 5][m.0.random_range(0..6)],
        _ => v[28] = m.0.random_range(0..3),
    }
    let crc = crc32fast::hash(&v[12..29]);
    v[29..33].copy_from_slice(&crc.to_be_bytes());
    v
}

/// The benchmark layouts (MMVP csv, V* jsonl, BLINK and MMStar parquet): their files rewritten
/// with hostile cell values (structure kept), or their bytes edited.
#[test]
#[ignore = "run by scripts/fuzz.sh"]
fn fuzz_benchmarks() {
    use lavit_core::eval::bench::Benchmark;
    let tmp = tempfile::tempdir().unwrap();
    let qs = questions(tmp.path(), 2);
    type Writer = fn(&Path, &[Q]);
    let layouts: [(Benchmark, Writer); 4] = [
        (Benchmark::Mmvp, write_mmvp),
        (Benchmark::Vstar, write_vstar),
        (Benchmark::Blink, write_blink),
        (Benchmark::Mmstar, write_mmstar),
    ];
    let roots: Vec<PathBuf> = layouts
        .iter()
        .map(|(b, write)| {
            let dir = tmp.path().join(b.name());
            write(&dir, &qs);
            dir
        })
        .collect();
    let files: Vec<Vec<(PathBuf, Vec<u8>)>> = roots.iter().map(|r| data_files(r)).collect();
    drive(
        "benchmark files",
        9,
        |m, case| {
            let l = case % layouts.len();
            if m.0.random_bool(0.4) {
                // Structure kept, values hostile: the layout written again from edited questions.
                let hostile: Vec<Q> = qs
                    .iter()
                    .map(|q| {
                        let (r, w) = (m.0.random_range(0..8), m.0.random_range(0..8));
                        Q {
                            // Kept decodable: the writers re-encode it (image bytes are
                            // edited in the byte cases and in fuzz_images).
                            png: q.png.clone(),
                            question: if m.0.random_bool(0.5) {
                                m.text(60)
                            } else {
                                q.question.clone()
                            },
                            right: m.text(r),
                            wrong: m.text(w),
                        }
                    })
                    .collect();
                let _ = std::fs::remove_dir_all(&roots[l]);
                layouts[l].1(&roots[l], &hostile);
                (l, None)
            } else {
                let (path, bytes) = &files[l][m.0.random_range(0..files[l].len())];
                (l, Some((path.clone(), m.doc(bytes))))
            }
        },
        |(l, edit)| {
            let mut reached = Reached::Semantic;
            if let Some((path, bytes)) = edit {
                for (p, b) in &files[*l] {
                    std::fs::write(p, if p == path { bytes } else { b }).unwrap();
                }
                reached = file_reached(path, bytes);
            }
            if let Ok(qs) = layouts[*l].0.load(&roots[*l], None) {
                for img in qs.iter().take(2).flat_map(|q| &q.images) {
                    let _ = img.decode();
                }
            }
            reached
        },
        |(l, edit)| format!("{l} {:?}", edit.as_ref().map(|e| &e.0)).into_bytes(),
    );
}

/// Whether an edited benchmark file is still well-formed at the syntax level: a parquet footer
/// that reads, JSON lines that parse, CSV that is UTF-8.
fn file_reached(path: &Path, bytes: &[u8]) -> Reached {
    let ok = match path.extension().and_then(|x| x.to_str()) {
        Some("parquet") => {
            parquet::file::reader::SerializedFileReader::new(bytes::Bytes::copy_from_slice(bytes))
                .is_ok()
        }
        Some("json") => serde_json::from_slice::<Value>(bytes).is_ok(),
        Some("jsonl") => std::str::from_utf8(bytes)
            .is_ok_and(|t| t.lines().all(|l| serde_json::from_str::<Value>(l).is_ok())),
        _ => std::str::from_utf8(bytes).is_ok(),
    };
    if ok {
        Reached::Semantic
    } else {
        Reached::Syntax
    }
}

/// The data files of a benchmark layout (not its images), with their bytes.
fn data_files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for e in walk(dir) {
        let ext = e.extension().and_then(|x| x.to_str()).unwrap_or("");
        if matches!(ext, "csv" | "parquet" | "json" | "jsonl" | "tsv") {
            let b = std::fs::read(&e).unwrap();
            out.push((e, b));
        }
    }
    out
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p))
        } else {
            out.push(p)
        }
    }
    out.sort();
    out
}

/// What the fuzzing found, each now a typed error (run in the ordinary test run).
#[test]
fn regressions_found_by_fuzzing() {
    let seed = std::fs::read(root().join("tests/fixtures/tiny-gqa/config.json")).unwrap();
    let mut cfg: Value = serde_json::from_slice(&seed).unwrap();
    // A size near u64::MAX overflowed `patch_size * spatial_merge_size` in validation.
    cfg["vision_config"]["spatial_merge_size"] = serde_json::json!(u64::MAX);
    let err = lavit_core::io::config::parse_config(&serde_json::to_vec(&cfg).unwrap());
    assert!(err.unwrap_err().contains("out of range"));
    // ... and the sum of an `mrope_section` holding one.
    let mut cfg: Value = serde_json::from_slice(&seed).unwrap();
    cfg["rope_scaling"]["mrope_section"] = serde_json::json!([2, u64::MAX, 3]);
    let err = lavit_core::io::config::parse_config(&serde_json::to_vec(&cfg).unwrap());
    assert!(err.unwrap_err().contains("out of range"));

    // A PNG whose header claims 65,535 × 65,535 pixels: refused, not decoded into gigabytes.
    let png = std::fs::read(root().join("tests/fixtures/images/tiny-gqa.png")).unwrap();
    let mut big = png.clone();
    big[16..24].copy_from_slice(&[0, 0, 0xff, 0xff, 0, 0, 0xff, 0xff]);
    let crc = crc32fast::hash(&big[12..29]);
    big[29..33].copy_from_slice(&crc.to_be_bytes());
    let _cap = crate::alloc_cap::Cap::new(CAP);
    let err = lavit_core::io::processor::decode_rgb(&big, "big.png")
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a readable image"), "{err}");
    drop(_cap);

    let tmp = tempfile::tempdir().unwrap();
    // A safetensors header length beyond the file: refused before allocating it.
    let path = tmp.path().join("x.safetensors");
    std::fs::write(
        &path,
        [(64u64 << 20).to_le_bytes().as_slice(), b"{}"].concat(),
    )
    .unwrap();
    let err = lavit_core::io::tensors::safetensors_header(&path)
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a safetensors file"), "{err}");
    // A shard index that names files outside the checkpoint.
    for shard in ["../model.safetensors", "/etc/passwd", ""] {
        let index = serde_json::json!({"weight_map": {"a": shard}});
        std::fs::write(
            tmp.path().join("model.safetensors.index.json"),
            index.to_string(),
        )
        .unwrap();
        let err = lavit_core::io::weights::checkpoint_files(tmp.path())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("not a file inside the checkpoint"),
            "{shard}: {err}"
        );
    }
}
