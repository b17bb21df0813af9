//! Writes under failure, on real `lavit` processes with deterministic failpoints (the `fail`
//! crate; `FAILPOINTS=name=action` in the environment of a test build): a full disk (an
//! injected `ENOSPC`) leaves the previous checkpoint and every completed sample readable, names
//! the path and leaves no `*.tmp`; a second writer of the same output is refused naming the
//! holder, and a `kill -9` releases the lock; a crash between the steps of a write, then
//! `--resume`, gives the same store and the same losses as an uninterrupted run.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::common::{extract_args, root, s, synth_data};

/// Three synthetic questions and the tiny-gqa teacher.
struct Setup {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    json: PathBuf,
    images: PathBuf,
}

impl Setup {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let (json, images) = synth_data(&dir);
        Self {
            json,
            images,
            _tmp: tmp,
            dir,
        }
    }

    fn extract(&self, out: &Path) -> Vec<String> {
        let teacher = root().join("tests/fixtures/tiny-gqa");
        let extra = ["--flush-every", "1"];
        extract_args(&teacher, &self.json, &self.images, out, &extra)
            .into_iter()
            .map(String::from)
            .collect()
    }

    fn train(&self, store: &Path, out: &Path, extra: &[&str]) -> Vec<String> {
        let student = root().join("tests/fixtures/tiny-tied");
        let mut a: Vec<String> = [
            "train",
            "--student",
            s(&student),
            "--max-pixels",
            "9408",
            "--signals",
            s(store),
            "--images",
            s(&self.images),
            "--out",
            s(out),
            "--steps",
            "6",
            "--grad-accum",
            "1",
            "--checkpoint-every",
            "2",
            "--seed",
            "3",
        ]
        .map(String::from)
        .to_vec();
        a.extend(extra.iter().map(|x| x.to_string()));
        a
    }
}

/// `lavit args` with `FAILPOINTS=fail_points` ("" for none).
fn command(args: &[String], fail_points: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_lavit"));
    c.args(args).env("FAILPOINTS", fail_points);
    c
}

fn run(args: &[String], fail_points: &str) -> Output {
    command(args, fail_points).output().unwrap()
}

fn spawn(args: &[String], fail_points: &str) -> Child {
    command(args, fail_points)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

#[track_caller]
fn succeeded(o: &Output) {
    assert!(o.status.success(), "{}", stderr(o));
}

/// Waits (up to two minutes) until `done()`.
fn wait_for(what: &str, done: impl Fn() -> bool) {
    let t0 = Instant::now();
    while !done() {
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every `*.tmp*` file or folder under `dir`.
fn leftovers(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.file_name().unwrap().to_string_lossy().contains(".tmp") {
            out.push(p.clone());
        }
        if p.is_dir() {
            out.extend(leftovers(&p));
        }
    }
    out
}

/// The store's records and tensors, by sample id, in a comparable form.
fn store_contents(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut st = lavit_core::teacher::SignalStore::open(dir).unwrap();
    let mut records = st.records.clone();
    records.sort_by(|a, b| a.id.cmp(&b.id));
    records
        .iter()
        .map(|r| {
            let s = st.load(r).unwrap();
            let bytes = format!("{:?}|{:?}|{:?}", s.vtop, s.traj, s.topk).into_bytes();
            (r.id.clone(), bytes)
        })
        .collect()
}

fn losses(run: &Path) -> Vec<f64> {
    lavit_core::train::read_metrics(&run.join("metrics.jsonl"))
        .unwrap()
        .iter()
        .map(|l| l.loss)
        .collect()
}

#[test]
fn a_full_disk_keeps_what_was_written_names_the_path_and_leaves_no_tmp() {
    let t = Setup::new();
    // The signal store: the second shard's write fails; the first sample stays readable.
    let store = t.dir.join("store");
    let res = run(&t.extract(&store), "write_atomic=return(00001.safetensors)");
    assert!(!res.status.success());
    let err = stderr(&res);
    assert!(
        err.contains("signals-0-00001.safetensors") && err.contains("space"),
        "{err}"
    );
    assert_eq!(store_contents(&store).len(), 1, "{err}");
    assert_eq!(leftovers(&store), Vec::<PathBuf>::new());
    // The index append fails half-way: a torn tail, dropped when the store is reopened.
    let torn = t.dir.join("torn");
    let res = run(&t.extract(&torn), "store::append=1*off->return");
    assert!(stderr(&res).contains("index.jsonl"), "{}", stderr(&res));
    assert_eq!(store_contents(&torn).len(), 1);
    succeeded(&run(&t.extract(&torn), ""));
    succeeded(&run(&t.extract(&store), ""));
    let full = store_contents(&store);
    assert_eq!(full.len(), 3);
    assert_eq!(store_contents(&torn), full);

    // Training: the third checkpoint's model write fails; the second stays.
    let out = t.dir.join("run");
    let res = run(
        &t.train(&store, &out, &[]),
        "checkpoint::write_model=2*off->return",
    );
    assert!(!res.status.success());
    let err = stderr(&res);
    assert!(
        err.contains("checkpoint.tmp/model.bpk") && err.contains("space"),
        "{err}"
    );
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("checkpoint/state.json")).unwrap()).unwrap();
    assert_eq!(state["step"], 4);
    assert_eq!(leftovers(&out), Vec::<PathBuf>::new());
    succeeded(&run(&t.train(&store, &out, &["--resume"]), ""));
    assert_eq!(losses(&out).len(), 6);

    // Export: the weights cannot be written; the error names them, nothing half-written stays.
    let exported = t.dir.join("exported");
    let args: Vec<String> = [
        "export",
        "--model",
        s(&out.join("final")),
        "--out",
        s(&exported),
    ]
    .map(String::from)
    .to_vec();
    let res = run(&args, "save_module=return");
    assert!(!res.status.success());
    let err = stderr(&res);
    assert!(
        err.contains("model.safetensors") && err.contains("space"),
        "{err}"
    );
    if exported.is_dir() {
        assert_eq!(leftovers(&exported), Vec::<PathBuf>::new());
    }
    succeeded(&run(&args, ""));
}

#[test]
fn a_second_writer_is_refused_naming_the_holder_and_a_kill_releases_it() {
    let t = Setup::new();
    let store = t.dir.join("store");
    // The first extraction stops (sleeps) after its first shard.
    let mut first = spawn(&t.extract(&store), "store::after_shard=sleep(120000)");
    wait_for("the first shard", || {
        store.join("signals-0-00000.safetensors").is_file()
    });
    let res = run(&t.extract(&store), "");
    let err = stderr(&res);
    assert!(!res.status.success(), "{err}");
    let holder = format!(
        "in use by `the signal writer of shard 0 of 1` (pid {}",
        first.id()
    );
    assert!(err.contains(&holder), "{err}");
    first.kill().unwrap(); // SIGKILL: no destructor runs
    first.wait().unwrap();
    // The crash released the lock; resuming completes the same store as an uninterrupted run.
    succeeded(&run(&t.extract(&store), ""));
    let clean = t.dir.join("clean");
    succeeded(&run(&t.extract(&clean), ""));
    assert_eq!(store_contents(&store), store_contents(&clean));

    let out = t.dir.join("run");
    let mut first = spawn(
        &t.train(&store, &out, &[]),
        "train::after_step=sleep(120000)",
    );
    wait_for("the first step", || {
        std::fs::read_to_string(out.join("metrics.jsonl")).is_ok_and(|m| !m.is_empty())
    });
    let res = run(&t.train(&store, &out, &[]), "");
    let err = stderr(&res);
    assert!(!res.status.success(), "{err}");
    assert!(
        err.contains(&format!("in use by `lavit train` (pid {}", first.id())),
        "{err}"
    );
    first.kill().unwrap();
    first.wait().unwrap();
    succeeded(&run(&t.train(&store, &out, &[]), ""));
}

/// A `kill -9` at each step of a checkpoint write — after the files, between the two renames —
/// then `--resume`: the losses of an uninterrupted run.
#[test]
fn a_crash_inside_a_checkpoint_write_resumes_to_the_same_losses() {
    let t = Setup::new();
    let store = t.dir.join("store");
    succeeded(&run(&t.extract(&store), ""));
    let clean = t.dir.join("clean");
    succeeded(&run(&t.train(&store, &clean, &[]), ""));
    let want = losses(&clean);
    assert_eq!(want.len(), 6);
    for point in ["checkpoint::before_swap", "checkpoint::between_renames"] {
        let out = t.dir.join(point.replace("::", "-"));
        // The second checkpoint (step 4) is where the process dies.
        let mut p = spawn(
            &t.train(&store, &out, &[]),
            &format!("{point}=1*off->sleep(120000)"),
        );
        let ckpt = out.join("checkpoint");
        wait_for(point, || {
            let tmp_done = out.join("checkpoint.tmp/state.json").is_file();
            match point {
                "checkpoint::before_swap" => tmp_done && ckpt.join("state.json").is_file(),
                _ => tmp_done && !ckpt.exists() && out.join("checkpoint.old").is_dir(),
            }
        });
        p.kill().unwrap();
        p.wait().unwrap();
        succeeded(&run(&t.train(&store, &out, &["--resume"]), ""));
        let got = losses(&out);
        assert_eq!(got.len(), want.len(), "{point}");
        for (step, (a, b)) in got.iter().zip(&want).enumerate() {
            assert!(
                (a - b).abs() <= 1e-6 * b.abs().max(1.0),
                "{point}: step {}: {a} vs {b}",
                step + 1
            );
        }
        assert_eq!(leftovers(&out), Vec::<PathBuf>::new(), "{point}");
    }
}
