//! `lavit eval` on each benchmark in the layout its authors publish: the test writes a few
//! questions per benchmark (scenes from `lavit synth`, options built from the scene's answer)
//! as MMVP's CSV + image folder, BLINK's per-task parquet with embedded images, V*'s jsonl +
//! category folders and MMStar's parquet, then answers them with the shipped LaViT student.
//! Bad inputs of every kind must give one `error:` line, a non-zero exit and leave an existing
//! results file untouched.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow_array::builder::{ListBuilder, StringBuilder};
use arrow_array::{ArrayRef, BinaryArray, Int64Array, RecordBatch, StringArray, StructArray};
use arrow_schema::{DataType, Field, Fields};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use super::common::{fails_cleanly, ok, root, s, student};

/// A synthetic test question: image bytes (PNG), question, the right answer and a wrong one.
pub(crate) struct Q {
    pub png: Vec<u8>,
    pub question: String,
    pub right: String,
    pub wrong: String,
}

/// `n` scenes with their questions, from `lavit synth`.
pub(crate) fn questions(dir: &Path, n: usize) -> Vec<Q> {
    let data = dir.join("synth");
    ok(&[
        "synth",
        "--out",
        s(&data),
        "--n-train",
        "1",
        "--n-test",
        &n.to_string(),
        "--seed",
        "11",
    ]);
    let recs: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(data.join("test.json")).unwrap()).unwrap();
    let pool = [
        "red", "green", "blue", "yellow", "orange", "one", "two", "three", "left", "right", "yes",
        "no", "circle", "square",
    ];
    recs.iter()
        .map(|r| {
            let right = r["key"].as_str().unwrap().to_string();
            let q = r["conversations"][0]["value"].as_str().unwrap();
            Q {
                png: std::fs::read(data.join("images").join(r["image"][0].as_str().unwrap()))
                    .unwrap(),
                question: q.replace("<image>\n", ""),
                wrong: pool.iter().find(|w| **w != right).unwrap().to_string(),
                right,
            }
        })
        .collect()
}

/// Options with the right one at `i % 2` (so answers are not all `A`).
fn options(q: &Q, i: usize) -> (Vec<String>, char) {
    if i.is_multiple_of(2) {
        (vec![q.right.clone(), q.wrong.clone()], 'A')
    } else {
        (vec![q.wrong.clone(), q.right.clone()], 'B')
    }
}

fn jpeg(png: &[u8]) -> Vec<u8> {
    let img = image::load_from_memory(png).unwrap();
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
    out.into_inner()
}

pub(crate) fn write_mmvp(dir: &Path, qs: &[Q]) {
    std::fs::create_dir_all(dir.join("MMVP Images")).unwrap();
    let mut csv = String::from("Index,Question,Options,Correct Answer\n");
    for (i, q) in qs.iter().enumerate() {
        let (o, a) = options(q, i);
        // Questions with commas are quoted, as in the published file.
        csv.push_str(&format!(
            "{},\"{}, if you look\",(a) {} (b) {},({})\n",
            i + 1,
            q.question,
            o[0],
            o[1],
            a.to_ascii_lowercase()
        ));
        std::fs::write(dir.join(format!("MMVP Images/{}.jpg", i + 1)), jpeg(&q.png)).unwrap();
    }
    std::fs::write(dir.join("Questions.csv"), csv).unwrap();
}

/// HF `datasets`' Image type: `struct<bytes: binary, path: string>`.
fn image_fields() -> Fields {
    Fields::from(vec![
        Field::new("bytes", DataType::Binary, true),
        Field::new("path", DataType::Utf8, true),
    ])
}

fn image_column(cells: &[Option<(&[u8], String)>]) -> ArrayRef {
    let bytes = BinaryArray::from(
        cells
            .iter()
            .map(|c| c.as_ref().map(|c| c.0))
            .collect::<Vec<_>>(),
    );
    let paths = StringArray::from(
        cells
            .iter()
            .map(|c| c.as_ref().map(|c| c.1.clone()))
            .collect::<Vec<_>>(),
    );
    let nulls = arrow_buffer_nulls(cells.iter().map(|c| c.is_some()).collect());
    Arc::new(
        StructArray::try_new(
            image_fields(),
            vec![Arc::new(bytes) as ArrayRef, Arc::new(paths) as ArrayRef],
            Some(nulls),
        )
        .unwrap(),
    )
}

fn arrow_buffer_nulls(valid: Vec<bool>) -> arrow_buffer::NullBuffer {
    arrow_buffer::NullBuffer::from(valid)
}

fn write_parquet(path: &Path, cols: Vec<(&str, ArrayRef)>) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let batch = RecordBatch::try_from_iter(cols).unwrap();
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let mut w =
        ArrowWriter::try_new(File::create(path).unwrap(), batch.schema(), Some(props)).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

/// Two BLINK sub-tasks; Visual_Similarity rows carry two images (image_2 is a copy), the
/// others one (image_2..4 null).
pub(crate) fn write_blink(dir: &Path, qs: &[Q]) {
    for (task, range, two) in [
        ("Counting", 0..qs.len() / 2, false),
        ("Visual_Similarity", qs.len() / 2..qs.len(), true),
    ] {
        let sub = &qs[range.clone()];
        let mut choices = ListBuilder::new(StringBuilder::new());
        let mut answers = Vec::new();
        for (i, q) in sub.iter().enumerate() {
            let (o, a) = options(q, range.start + i);
            for c in &o {
                choices.values().append_value(c);
            }
            choices.append(true);
            answers.push(format!("({a})"));
        }
        let img = |k: usize| {
            image_column(
                &sub.iter()
                    .enumerate()
                    .map(|(i, q)| {
                        (k == 1 || (k == 2 && two))
                            .then(|| (q.png.as_slice(), format!("{task}_{i}_{k}.png")))
                    })
                    .collect::<Vec<_>>(),
            )
        };
        let n = sub.len();
        let text = |f: &dyn Fn(usize) -> String| -> ArrayRef {
            Arc::new(StringArray::from((0..n).map(f).collect::<Vec<_>>()))
        };
        write_parquet(
            &dir.join(task).join("val-00000-of-00001.parquet"),
            vec![
                ("idx", text(&|i| format!("val_{task}_{}", i + 1))),
                ("question", text(&|i| sub[i].question.clone())),
                ("sub_task", text(&|_| task.to_string())),
                ("image_1", img(1)),
                ("image_2", img(2)),
                ("image_3", img(3)),
                ("image_4", img(4)),
                ("choices", Arc::new(choices.finish())),
                ("answer", text(&|i| answers[i].clone())),
                ("prompt", text(&|i| sub[i].question.clone())),
                ("explanation", text(&|_| String::new())),
            ],
        );
    }
}

pub(crate) fn write_vstar(dir: &Path, qs: &[Q]) {
    let mut lines = String::new();
    for (i, q) in qs.iter().enumerate() {
        let cat = ["direct_attributes", "relative_position"][i % 2];
        std::fs::create_dir_all(dir.join(cat)).unwrap();
        let name = format!("{cat}/sa_{i}.jpg");
        std::fs::write(dir.join(&name), jpeg(&q.png)).unwrap();
        let (o, a) = options(q, i);
        let text = format!(
            "{}\n(A) {}\n(B) {}\nAnswer with the option's letter from the given choices directly.",
            q.question, o[0], o[1]
        );
        lines.push_str(
            &serde_json::json!({"image": name, "text": text, "category": cat,
                                "question_id": i, "label": a.to_string()})
            .to_string(),
        );
        lines.push('\n');
    }
    std::fs::write(dir.join("test_questions.jsonl"), lines).unwrap();
}

pub(crate) fn write_mmstar(dir: &Path, qs: &[Q]) {
    let n = qs.len();
    let opts: Vec<(Vec<String>, char)> = (0..n).map(|i| options(&qs[i], i)).collect();
    write_parquet(
        &dir.join("mmstar.parquet"),
        vec![
            (
                "index",
                Arc::new(Int64Array::from((0..n as i64).collect::<Vec<_>>())) as ArrayRef,
            ),
            (
                "question",
                Arc::new(StringArray::from(
                    (0..n)
                        .map(|i| {
                            format!(
                                "{}\nOptions: A: {}, B: {}",
                                qs[i].question, opts[i].0[0], opts[i].0[1]
                            )
                        })
                        .collect::<Vec<_>>(),
                )),
            ),
            (
                "image",
                image_column(
                    &qs.iter()
                        .map(|q| Some((q.png.as_slice(), "x.png".to_string())))
                        .collect::<Vec<_>>(),
                ),
            ),
            (
                "answer",
                Arc::new(StringArray::from(
                    opts.iter().map(|o| o.1.to_string()).collect::<Vec<_>>(),
                )),
            ),
            (
                "category",
                Arc::new(StringArray::from(
                    (0..n)
                        .map(|i| ["coarse perception", "fine-grained perception"][i % 2])
                        .collect::<Vec<_>>(),
                )),
            ),
        ],
    );
}

/// Runs `lavit eval` and checks results.jsonl against the printed table.
fn eval(bench: &str, data: &Path, out: &Path, n: usize, extra: &[&str]) -> (String, usize) {
    let mut args = vec![
        "eval",
        "--model",
        s(&student()).to_string().leak(),
        "--bench",
        bench,
        "--data-root",
        s(data),
        "--out",
        s(out),
        "--max-new-tokens",
        "10",
    ];
    args.extend_from_slice(extra);
    let table = ok(&args);
    eprintln!("{bench}:\n{table}");
    let lines = std::fs::read_to_string(out).unwrap();
    let preds: Vec<serde_json::Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(preds.len(), n, "{bench}: one line per question");
    let right = preds.iter().filter(|p| p["correct"] == true).count();
    for p in &preds {
        let predicted = p["predicted"].as_str();
        assert_eq!(
            p["correct"].as_bool().unwrap(),
            predicted == p["answer"].as_str(),
            "{bench}: {p}"
        );
        assert!(p["text"].is_string() && p["prompt"].as_str().unwrap().contains("\nA. "));
    }
    let all = format!("| all | {n} | {:.1}% |", right as f64 / n as f64 * 100.0);
    assert!(
        table.contains(&all),
        "{bench}: expected `{all}` in\n{table}"
    );
    let letters = preds.iter().filter(|p| p["predicted"].is_string()).count();
    (table, letters)
}

#[test]
fn every_benchmark_layout_evaluates() {
    let tmp = tempfile::tempdir().unwrap();
    let qs = questions(tmp.path(), 6);

    let mmvp = tmp.path().join("MMVP");
    write_mmvp(&mmvp, &qs);
    let (t, mut letters) = eval("mmvp", &mmvp, &tmp.path().join("mmvp.jsonl"), 6, &[]);
    assert!(t.contains("| pairs (both right) | 3 |"), "{t}");
    // A base checkpoint (no latent tokens) evaluates too: the baseline.
    let base = root().join("assets/synthetic/student-base");
    let out = tmp.path().join("mmvp-base.jsonl");
    let table = ok(&[
        "eval",
        "--model",
        s(&base),
        "--bench",
        "mmvp",
        "--data-root",
        s(&mmvp),
        "--out",
        s(&out),
        "--max-new-tokens",
        "10",
    ]);
    assert!(table.contains("| all | 6 |"), "{table}");
    for l in std::fs::read_to_string(&out).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["latent_steps"], 0, "a base model has no latent tokens");
    }

    let blink = tmp.path().join("BLINK");
    write_blink(&blink, &qs);
    let (t, n) = eval("blink", &blink, &tmp.path().join("blink.jsonl"), 6, &[]);
    letters += n;
    assert!(
        t.contains("| Counting | 3 |") && t.contains("| Visual_Similarity | 3 |"),
        "{t}"
    );
    assert!(t.contains("| mean of tasks | 2 |"), "{t}");
    // One sub-task.
    eval(
        "blink",
        &blink,
        &tmp.path().join("blink1.jsonl"),
        3,
        &["--task", "Visual_Similarity"],
    );

    let vstar = tmp.path().join("vstar_bench");
    write_vstar(&vstar, &qs);
    let (t, n) = eval(
        "vstar",
        &vstar,
        &tmp.path().join("vstar.jsonl"),
        6,
        &["--force-lvr"],
    );
    letters += n;
    assert!(t.contains("| direct_attributes | 3 |"), "{t}");
    let lines = std::fs::read_to_string(tmp.path().join("vstar.jsonl")).unwrap();
    let first: serde_json::Value = serde_json::from_str(lines.lines().next().unwrap()).unwrap();
    // The K = 3 forced latent steps are read out; the student may emit more latent tokens of
    // its own on these out-of-domain images (greedy choices that flip with the CPU kernels'
    // summation order), so the count is at least K.
    assert!(
        first["latent_steps"].as_u64().unwrap() >= 3,
        "--force-lvr: the student's K latent steps: {}",
        first["latent_steps"]
    );

    let mmstar = tmp.path().join("MMStar");
    write_mmstar(&mmstar, &qs);
    let (t, n) = eval(
        "mmstar",
        &mmstar,
        &tmp.path().join("mmstar.jsonl"),
        4,
        &["--limit", "4"],
    );
    assert!(t.contains("| coarse perception | 2 |"), "{t}");
    letters += n;
    // The tiny synthetic-task student mostly answers off-format; some answers must still
    // yield a letter, so grading is exercised beyond "no letter".
    assert!(letters > 0);
}

#[test]
fn bad_benchmark_inputs_fail_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let qs = questions(tmp.path(), 2);
    let out = tmp.path().join("results.jsonl");
    std::fs::write(&out, "previous results\n").unwrap();
    let run = |bench: &str, data: &Path, extra: &[&str], needle: &str| {
        let m = student();
        let mut args = vec![
            "eval",
            "--model",
            s(&m),
            "--bench",
            bench,
            "--data-root",
            s(data),
            "--out",
            s(&out),
            "--max-new-tokens",
            "4",
        ];
        args.extend_from_slice(extra);
        fails_cleanly(&args, needle, &[&out]);
    };

    // Wrong paths.
    run("mmvp", &tmp.path().join("nowhere"), &[], "not a directory");
    run("blink", tmp.path(), &["--task", "Jigsaw"], "no task folder");
    run("vstar", tmp.path(), &[], "test_questions.jsonl");
    run("mmstar", tmp.path(), &[], "no mmstar.parquet");
    // Unknown benchmark and backend.
    run("mme", tmp.path(), &[], "unknown benchmark `mme`");
    let mmvp = tmp.path().join("mmvp");
    write_mmvp(&mmvp, &qs);
    run("mmvp", &mmvp, &["--backend", "tpu"], "tpu");

    // Corrupt image (a JPEG cut after its first segments): the error names the file.
    let img = mmvp.join("MMVP Images/2.jpg");
    let good = std::fs::read(&img).unwrap();
    std::fs::write(&img, &good[..40]).unwrap();
    run("mmvp", &mmvp, &[], "2.jpg");
    std::fs::write(&img, &good).unwrap();

    // Malformed CSV: a row with a missing field, then a header without `Correct Answer`.
    let csv = mmvp.join("Questions.csv");
    let text = std::fs::read_to_string(&csv).unwrap();
    std::fs::write(&csv, format!("{text}3,only a question\n")).unwrap();
    run("mmvp", &mmvp, &[], "malformed CSV");
    std::fs::write(&csv, text.replace("Correct Answer", "Solution")).unwrap();
    run("mmvp", &mmvp, &[], "no `Correct Answer` column");
    std::fs::write(&csv, &text).unwrap();

    // Malformed JSON lines (V*).
    let vstar = tmp.path().join("vstar");
    write_vstar(&vstar, &qs);
    let jl = vstar.join("test_questions.jsonl");
    let text = std::fs::read_to_string(&jl).unwrap();
    std::fs::write(&jl, format!("{text}{{\"image\": \"x.jpg\", \"text\": \n")).unwrap();
    run("vstar", &vstar, &[], "line 3: invalid JSON");

    // Malformed parquet: truncated, and not parquet at all.
    let mmstar = tmp.path().join("mmstar");
    write_mmstar(&mmstar, &qs);
    let pq = mmstar.join("mmstar.parquet");
    let bytes = std::fs::read(&pq).unwrap();
    std::fs::write(&pq, &bytes[..bytes.len() / 2]).unwrap();
    run("mmstar", &mmstar, &[], "parquet");
    std::fs::write(&pq, b"index,question\n1,2\n").unwrap();
    run("mmstar", &mmstar, &[], "not a readable parquet file");
    // A BLINK parquet whose `choices` column is text, not a list.
    let blink = tmp.path().join("blink");
    write_parquet(
        &blink.join("Counting/val-00000-of-00001.parquet"),
        vec![
            (
                "idx",
                Arc::new(StringArray::from(vec!["val_Counting_1"])) as ArrayRef,
            ),
            ("question", Arc::new(StringArray::from(vec!["How many?"]))),
            ("choices", Arc::new(StringArray::from(vec!["['1', '2']"]))),
            ("answer", Arc::new(StringArray::from(vec!["(A)"]))),
        ],
    );
    run("blink", &blink, &[], "column `choices` is not a list");

    // A model directory that is not one.
    let args = [
        "eval",
        "--model",
        s(tmp.path()),
        "--bench",
        "mmvp",
        "--data-root",
        s(&mmvp),
        "--out",
        s(&out),
    ];
    fails_cleanly(&args, "config.json", &[&out]);
}
