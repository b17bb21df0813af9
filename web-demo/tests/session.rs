//! The browser's code path, run natively: a student loaded from in-memory files answers like
//! the directory-loaded student that `lavit infer` uses, and bad input is an error, not a panic.

use std::path::PathBuf;

use lavit_core::bundle::{BundleFiles, ModelBundle};
use lavit_core::data::synthetic::SceneConfig;
use lavit_core::infer::GenerateConfig;
use lavit_core::lavit::targets::resample_steps;
use lavit_web_demo::{
    LiveConfig, MAX_IMAGE_SIDE, MAX_QUESTION_CHARS, Session, check_image, check_question,
    start_training,
};

fn assets() -> PathBuf {
    PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("run by cargo test"))
        .join("../assets/synthetic")
}

/// The shipped student base with 3 latent tokens and fresh heads, exported like `lavit train`.
fn exported_student(dir: &std::path::Path) {
    let device = lavit_backends::select("cpu", 0).unwrap();
    let student =
        ModelBundle::open_for_training(&assets().join("student-base"), 3, 128, None, 7, &device)
            .unwrap();
    student.save(dir, burn::tensor::DType::F32).unwrap();
}

fn files(dir: &std::path::Path) -> BundleFiles {
    let read = |f: &str| std::fs::read(dir.join(f)).unwrap();
    BundleFiles {
        config_json: read("config.json"),
        model_safetensors: read("model.safetensors"),
        heads_safetensors: read("lavit_heads.safetensors"),
        tokenizer_json: read("tokenizer.json"),
        preprocessor_json: None,
    }
}

#[test]
fn session_answers_like_the_native_loader() {
    let tmp = tempfile::tempdir().unwrap();
    exported_student(tmp.path());
    let session = Session::load(files(tmp.path()), "cpu").unwrap();
    assert_eq!(session.backend(), "cpu (flex)");

    let scene = Session::scene(3, &SceneConfig::default()).unwrap();
    assert_eq!(scene.png[..4], [0x89, b'P', b'N', b'G']);
    assert!(!scene.question.is_empty() && !scene.regions.is_empty());
    assert_eq!(
        Session::scene(3, &SceneConfig::default()).unwrap().png,
        scene.png,
        "scenes are seeded"
    );
    // Scene `n` asks question type `n mod 5`, of the task the page is given (`task.json`):
    // scene 2 is a relation question.
    let vertical = SceneConfig::default();
    let (h, v) = (
        Session::scene(2, &SceneConfig::plain()).unwrap(),
        Session::scene(2, &vertical).unwrap(),
    );
    assert!(h.question.contains("left or right"), "{}", h.question);
    assert!(v.question.contains("above or below"), "{}", v.question);
    for (seed, qtype) in [(0, "colour"), (1, "shape"), (3, "count"), (9, "size")] {
        assert_eq!(Session::scene(seed, &vertical).unwrap().qtype, qtype);
    }
    let tiny = SceneConfig {
        size: 40,
        ..Default::default()
    };
    assert!(Session::scene(0, &tiny).unwrap_err().contains("task.json"));
    let web = session.ask(&scene.png, &scene.question).unwrap();

    let device = lavit_backends::select("cpu", 0).unwrap();
    let s = ModelBundle::load(tmp.path(), &device).unwrap();
    let img = image::load_from_memory(&scene.png).unwrap().to_rgb8();
    let native = s
        .answer(
            &[img],
            &scene.question,
            &GenerateConfig {
                // The page's budget (the longest answer of every task variant fits).
                max_new_tokens: lavit_core::data::synthetic::MAX_NEW_TOKENS,
                force_lvr: true,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(web.tokens, native.tokens);
    assert_eq!(web.answer, native.answer);
    assert_eq!(web.grid, native.grid);
    assert_eq!(web.latent_steps.len(), 3);
    for (a, b) in web.latent_steps.iter().zip(&native.latent_steps) {
        assert_eq!(a.attn_map, b.attn_map);
        assert_eq!(a.head_map, b.head_map);
        assert_eq!(a.attn_map.len(), web.grid.0 * web.grid.1);
    }
    // Different latent steps look at different places (fresh heads, but distinct queries).
    assert_ne!(web.latent_steps[0].head_map, web.latent_steps[1].head_map);
}

/// A `w × h` greyscale PNG whose pixel data is cut short: its signature, header chunk and a
/// first, tiny data chunk — what the page's size check reads before it decodes anything (an
/// image too large to encode in a test).
fn png_header(w: u32, h: u32) -> Vec<u8> {
    let chunk = |kind: &[u8], data: &[u8]| {
        let body = [kind, data].concat();
        let len = (data.len() as u32).to_be_bytes();
        [&len[..], &body, &crc32fast::hash(&body).to_be_bytes()].concat()
    };
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend(h.to_be_bytes());
    ihdr.extend([8, 0, 0, 0, 0]); // 8-bit greyscale, deflate, no filter, no interlace
    let signature = [0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];
    [
        &signature[..],
        &chunk(b"IHDR", &ihdr),
        &chunk(b"IDAT", &[0x78, 0x01]),
    ]
    .concat()
}

#[test]
fn bad_input_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    exported_student(tmp.path());
    let session = Session::load(files(tmp.path()), "cpu").unwrap();
    let png = Session::scene(0, &SceneConfig::default()).unwrap().png;
    let not_image = session.ask(b"not an image", "What?").unwrap_err();
    assert!(
        not_image.contains("not an image the demo reads"),
        "{not_image}"
    );
    assert!(session.ask(&png, "  ").unwrap_err().contains("empty"));
    let long = session.ask(&png, &"colour ".repeat(715)).unwrap_err();
    assert!(long.contains("5005 characters long"), "{long}");
    assert!(check_question(&"x".repeat(MAX_QUESTION_CHARS)).is_ok());
    let huge = session
        .ask(&png_header(10_000, 10_000), "What?")
        .unwrap_err();
    assert!(huge.contains("10000 × 10000 pixels"), "{huge}");
    assert_eq!(check_image(&png).unwrap(), (168, 168));
    assert!(check_image(&png_header(MAX_IMAGE_SIDE, 1)).is_ok());
    assert!(check_image(&png[..20]).is_err(), "a truncated header");
    let mut f = files(tmp.path());
    f.model_safetensors.truncate(100);
    assert!(Session::load(f, "cpu").is_err());
    let mut f = files(tmp.path());
    f.config_json = b"{}".to_vec();
    assert!(Session::load(f, "cpu").is_err());
}

/// The teacher panel: the teacher's own answer, one map per step of it on the image grid,
/// and those maps resampled to the students' latent steps.
#[test]
fn teacher_view_maps_each_step_of_its_answer() {
    let dir = assets().join("teacher");
    let read = |f: &str| std::fs::read(dir.join(f)).unwrap();
    let teacher = Session::load(
        BundleFiles {
            config_json: read("config.json"),
            model_safetensors: read("model.safetensors"),
            heads_safetensors: Vec::new(),
            tokenizer_json: read("tokenizer.json"),
            preprocessor_json: None,
        },
        "cpu",
    )
    .unwrap();
    let scene = Session::scene(3, &SceneConfig::default()).unwrap();
    let v = teacher.trajectory(&scene.png, &scene.question, 3).unwrap();
    let t = &v.trajectory;
    assert!(!t.answer.is_empty());
    assert_eq!(t.steps.concat(), t.answer);
    assert!(t.steps.len() >= 2, "{:?}", t.steps);
    assert_eq!(t.maps.len(), t.steps.len());
    assert_eq!(t.grid, (6, 6));
    for m in &t.maps {
        assert_eq!(m.len(), 36);
        assert!(m.iter().all(|v| v.is_finite() && *v >= 0.0));
    }
    assert_ne!(t.maps[0], t.maps[1], "steps look at different places");
    assert_eq!(v.per_latent.len(), 3);
    assert_eq!(v.per_latent, resample_steps(&t.maps, 3));
    assert!(teacher.trajectory(b"nope", "What?", 3).is_err());
}

/// The files of a shipped model as the page fetches them (no preprocessor file; no heads for
/// a plain model).
fn shipped(name: &str) -> BundleFiles {
    let dir = assets().join(name);
    let read = |f: &str| std::fs::read(dir.join(f)).unwrap();
    BundleFiles {
        config_json: read("config.json"),
        model_safetensors: read("model.safetensors"),
        heads_safetensors: std::fs::read(dir.join("lavit_heads.safetensors")).unwrap_or_default(),
        tokenizer_json: read("tokenizer.json"),
        preprocessor_json: None,
    }
}

/// The Train panel's run, natively: the shipped student base trained as the demo trains the
/// baseline and LaViT, on scenes of the demo's task. CE falls for both; on the probe scene
/// (held out) LaViT's gaze moves towards the teacher's (its KL falls) and ends closer than the
/// baseline's; the trained student answers. Prints what the browser test prints.
#[test]
fn training_in_the_page_aligns_the_gaze() {
    const STEPS: usize = 40;
    let device = lavit_backends::select("cpu", 0).unwrap();
    let teacher = Session::load(shipped("teacher"), "cpu").unwrap();
    let task: SceneConfig =
        serde_json::from_slice(&std::fs::read(assets().join("task-prior.json")).unwrap()).unwrap();
    let mut kl_last = Vec::new();
    for student in ["baseline", "lavit"] {
        let cfg = LiveConfig::new(student, 16, STEPS);
        let t0 = std::time::Instant::now();
        let mut reported = Vec::new();
        let mut run = pollster::block_on(start_training(
            shipped("student-base"),
            &teacher,
            &task,
            &cfg,
            &device,
            async |done, total| reported.push((done, total)),
        ))
        .unwrap();
        // One report after each of the teacher's passes: the 16 scenes, then the probe.
        assert_eq!(reported, (1..=17).map(|i| (i, 17)).collect::<Vec<_>>());
        let first = pollster::block_on(run.probe()).unwrap();
        assert_eq!(first.step, 0);
        assert_eq!(first.student.len(), first.teacher.len());
        let mut ce = Vec::new();
        while !run.finished() {
            ce.push(pollster::block_on(run.step()).unwrap().ce.unwrap());
        }
        let last = pollster::block_on(run.probe()).unwrap();
        println!(
            "train-in-page cpu (native) {student}: CE {:.3} -> {:.3}, KL {:.3} -> {:.3}, {STEPS} steps in {:.1} s",
            ce[0],
            ce[ce.len() - 1],
            first.kl,
            last.kl,
            t0.elapsed().as_secs_f64()
        );
        assert!(ce[STEPS - 1] < ce[0], "{student}: CE {ce:?}");
        if student == "lavit" {
            assert!(
                last.kl < first.kl,
                "LaViT's KL on the probe: {} -> {}",
                first.kl,
                last.kl
            );
        }
        kl_last.push(last.kl);
        let trained = Session::from_bundle(run.student());
        let scene = Session::scene(4, &task).unwrap();
        assert!(
            !trained
                .ask(&scene.png, &scene.question)
                .unwrap()
                .answer
                .is_empty()
        );
    }
    assert!(
        kl_last[1] < kl_last[0],
        "KL on the probe, baseline vs LaViT: {kl_last:?}"
    );
}
