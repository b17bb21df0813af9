//! The LaViT student in the browser: ask a question about a synthetic scene (or any image)
//! and see, for each latent token, where the student looks.
//!
//! [`Session`] is plain Rust over `lavit-core` — the same [`ModelBundle::answer`] that
//! `lavit infer` runs — so it is tested natively; on wasm32 the `web` module exposes it to
//! JavaScript.

use lavit_backends::Device;
use lavit_core::bundle::{BundleFiles, ModelBundle, Trajectory};
use lavit_core::data::synthetic::{QUESTION_TYPES, SceneConfig, generate};
pub use lavit_core::demo::live::{LiveConfig, LiveRun, ProbeView};
use lavit_core::infer::{GenerateConfig, Thoughts};
use lavit_core::lavit::targets::resample_steps;
use lavit_core::teacher::ExtractConfig;
use serde::Serialize;

/// A generated scene and its question (the demo's task generator, seeded).
#[derive(Debug, Clone, Serialize)]
pub struct Scene {
    pub seed: u64,
    pub question: String,
    /// The expected answer word.
    pub key: String,
    pub qtype: String,
    /// Ground-truth regions `[x0, y0, x1, y1)` in pixels.
    pub regions: Vec<[u32; 4]>,
    pub width: u32,
    pub height: u32,
    /// The image, PNG-encoded.
    #[serde(skip)]
    pub png: Vec<u8>,
}

/// What the page shows for the teacher.
#[derive(Debug, Clone, Serialize)]
pub struct TeacherView {
    #[serde(flatten)]
    pub trajectory: Trajectory,
    /// The step maps resampled to the student's latent steps (latent `k` is trained towards
    /// `per_latent[k]`).
    pub per_latent: Vec<Vec<f32>>,
}

/// A loaded model (a student, or the teacher) on one backend.
pub struct Session {
    student: ModelBundle,
    backend: String,
}

impl Session {
    /// Loads an exported student (the four files of `lavit train`'s `final/`) on `backend`
    /// (`cpu` in the browser for now).
    pub fn load(files: BundleFiles, backend: &str) -> Result<Self, String> {
        let device: Device = lavit_backends::select(backend, 0).map_err(|e| e.to_string())?;
        Self::load_on(files, device)
    }

    /// Loads on an already initialised device (the browser's WebGPU device).
    pub fn load_on(files: BundleFiles, device: Device) -> Result<Self, String> {
        let student = ModelBundle::from_files(files, &device).map_err(|e| e.to_string())?;
        Ok(Self {
            student,
            backend: lavit_backends::device_label(&device),
        })
    }

    /// A model already in memory (a student the page trained) on the backend it lives on.
    pub fn from_bundle(student: ModelBundle) -> Self {
        let backend = lavit_backends::device_label(&student.device());
        Self { student, backend }
    }

    /// Which backend runs the model, in words.
    pub fn backend(&self) -> &str {
        &self.backend
    }

    /// Scene number `seed` of the synthetic task `task` (the `task.json` shipped beside the
    /// teacher).
    /// Question types cycle with the seed (colour, shape, relation, count, size).
    pub fn scene(seed: u64, task: &SceneConfig) -> Result<Scene, String> {
        // The generator cycles question types sample by sample: the last of `seed mod 5 + 1`
        // samples has type number `seed mod 5`.
        task.validate().map_err(|e| format!("task.json: {e}"))?;
        let n = (seed % QUESTION_TYPES.len() as u64) as usize + 1;
        let (s, img) = generate(n, seed, task, "web-")
            .pop()
            .ok_or("the scene generator returned nothing")?;
        let mut png = Vec::new();
        img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .map_err(|e| e.to_string())?;
        Ok(Scene {
            seed,
            question: s.question,
            key: s.key,
            qtype: s.qtype,
            regions: s.regions,
            width: img.width(),
            height: img.height(),
            png,
        })
    }

    /// Answers `question` about an encoded image (PNG / JPEG), greedily, with the latent
    /// block forced as in the reference evaluation.
    pub fn ask(&self, image_bytes: &[u8], question: &str) -> Result<Thoughts, String> {
        let img = decode(image_bytes, question)?;
        self.student
            .answer(std::slice::from_ref(&img), question, &ask_config())
            .map_err(|e| e.to_string())
    }

    /// The teacher's view ([`ModelBundle::trajectory`]): its own greedy answer, its steps, where
    /// it looked while writing each, and those maps resampled to `k` steps — the targets of a
    /// student's `k` latent tokens ([`resample_steps`]). Synchronous read-backs: run the
    /// teacher on the CPU backend.
    pub fn trajectory(
        &self,
        image_bytes: &[u8],
        question: &str,
        k: usize,
    ) -> Result<TeacherView, String> {
        let img = decode(image_bytes, question)?;
        let t = self
            .student
            .trajectory(
                std::slice::from_ref(&img),
                question,
                &ExtractConfig::default(),
                ask_config().max_new_tokens,
            )
            .map_err(|e| e.to_string())?;
        let per_latent = if k > 0 && !t.maps.is_empty() {
            resample_steps(&t.maps, k)
        } else {
            Vec::new()
        };
        Ok(TeacherView {
            trajectory: t,
            per_latent,
        })
    }

    /// [`Session::ask`] with asynchronous read-backs (required on WebGPU in the browser).
    pub async fn ask_async(&self, image_bytes: &[u8], question: &str) -> Result<Thoughts, String> {
        let img = decode(image_bytes, question)?;
        self.student
            .answer_async(std::slice::from_ref(&img), question, &ask_config())
            .await
            .map_err(|e| e.to_string())
    }
}

/// The Train panel's run: the shipped student base (`base`, its files) trained on `device` as
/// the demo trains `cfg.student`, on scenes of `task`, its targets from `teacher`'s signals
/// (the teacher on a backend that reads back synchronously: the CPU backend in the browser).
/// `progress(done, total)` is awaited after each of the teacher's passes ([`LiveRun::new`]).
pub async fn start_training(
    base: BundleFiles,
    teacher: &Session,
    task: &SceneConfig,
    cfg: &LiveConfig,
    device: &Device,
    progress: impl AsyncFnMut(usize, usize),
) -> Result<LiveRun, String> {
    task.validate().map_err(|e| format!("task.json: {e}"))?;
    let base = ModelBundle::from_files(base, device).map_err(|e| e.to_string())?;
    LiveRun::new(base, &teacher.student, task, cfg, progress)
        .await
        .map_err(|e| e.to_string())
}

fn ask_config() -> GenerateConfig {
    GenerateConfig {
        max_new_tokens: lavit_core::data::synthetic::MAX_NEW_TOKENS,
        force_lvr: true,
        ..Default::default()
    }
}

/// The most scenes the Train panel draws: the teacher's signals of each are computed when
/// training starts, on the page's only thread.
pub const MAX_TRAIN_SCENES: usize = 1000;

/// The most steps of one run of the Train panel.
pub const MAX_TRAIN_STEPS: usize = 100_000;

/// The longest question the page takes. The task's questions are one short sentence; a prompt
/// of thousands of characters would keep the students prefilling for many seconds in a tab
/// that cannot be interrupted.
pub const MAX_QUESTION_CHARS: usize = 500;

/// The largest image side the page takes. The processor scales every image down to at most
/// about one megapixel (`max_pixels`) anyway; decoding a 10,000 × 10,000 image would first
/// take 300 MB of the tab's memory and seconds of its only thread.
pub const MAX_IMAGE_SIDE: u32 = 4096;

/// A plain-sentence check of the question before anything runs.
pub fn check_question(question: &str) -> Result<(), String> {
    let n = question.chars().count();
    if question.trim().is_empty() {
        return Err("The question is empty: type one, or pick one from the list.".into());
    }
    if n > MAX_QUESTION_CHARS {
        return Err(format!(
            "The question is {n} characters long; the demo takes up to {MAX_QUESTION_CHARS} (its questions are one short sentence)."
        ));
    }
    Ok(())
}

/// Checks an uploaded file from its header alone (nothing is decoded): a format the page
/// reads and a size it takes. Returns `(width, height)`.
pub fn check_image(image_bytes: &[u8]) -> Result<(u32, u32), String> {
    let reader = image::ImageReader::new(std::io::Cursor::new(image_bytes))
        .with_guessed_format()
        .map_err(|e| format!("This file could not be read: {e}."))?;
    if reader.format().is_none() {
        return Err("This file is not an image the demo reads: choose a PNG or JPEG.".into());
    }
    let (w, h) = reader
        .into_dimensions()
        .map_err(|e| format!("This file is not a readable image ({e}): choose a PNG or JPEG."))?;
    if w == 0 || h == 0 {
        return Err("The image is empty (zero width or height).".into());
    }
    if w > MAX_IMAGE_SIDE || h > MAX_IMAGE_SIDE {
        return Err(format!(
            "The image is {w} × {h} pixels; the demo takes up to {MAX_IMAGE_SIDE} × {MAX_IMAGE_SIDE}: scale it down first."
        ));
    }
    Ok((w, h))
}

fn decode(image_bytes: &[u8], question: &str) -> Result<image::RgbImage, String> {
    check_question(question)?;
    check_image(image_bytes)?;
    // The CLI's decoder, with its size limits.
    lavit_core::io::processor::decode_rgb(image_bytes, "the upload")
        .map_err(|e| format!("This file is not a readable image ({e}): choose a PNG or JPEG."))
}

#[cfg(target_arch = "wasm32")]
mod web {
    use std::cell::RefCell;
    use std::rc::Rc;

    use super::*;
    use wasm_bindgen::prelude::*;

    unsafe extern "C" {
        /// The module's static constructors, synthesised by the linker (wasm-ld). CubeCL
        /// registers its IR dialects through `inventory`, whose entries are constructors.
        fn __wasm_call_ctors();
    }

    /// Runs the static constructors once, when the module is instantiated. A module that never
    /// calls them itself is linked "command-style": wasm-ld makes every export run them first,
    /// and every call from JavaScript into the module (each WebGPU object handed over through
    /// wasm-bindgen's externref table is one) re-ran all of CubeCL's registrations. A CPU
    /// profile of the page showed them taking over 90 % of a student's answer on WebGPU
    /// (web-demo/README.md, "Where the WebGPU time went").
    #[wasm_bindgen(start)]
    fn start() {
        // SAFETY: called once, at instantiation, before any other code of the module runs;
        // the constructors (inventory's registrations) are idempotent besides.
        unsafe { __wasm_call_ctors() }
    }

    /// A live training run of the Train panel ([`LiveRun`]), stepped from JavaScript. The run
    /// is lent out while a step or a probe is in flight, so a second call meanwhile is an
    /// error, not a conflict.
    #[wasm_bindgen]
    pub struct Training {
        run: Rc<RefCell<Option<LiveRun>>>,
        meter: Rc<lavit_backends::gpu_work::Meter>,
    }

    /// One optimiser step's losses with the GPU work it took (none on the CPU backend).
    #[derive(serde::Serialize)]
    struct StepWork {
        #[serde(flatten)]
        log: lavit_core::train::StepLog,
        dispatches: u64,
        /// Counted on the first [`COUNT_COMPILATIONS`] steps only (`null` after).
        compilations: Option<u64>,
    }

    /// The training steps whose pipeline compilations the page counts. Counting them collects
    /// every launched kernel's id, a cost per launch (8 WebGPU steps took 87–89 s with it on
    /// every step against 75 s without, though runs vary that much); every kernel of a step is
    /// compiled in the first one.
    const COUNT_COMPILATIONS: usize = 2;

    /// Runs `work` on the run lent out of `cell`, then puts the run back.
    fn with_run<T: serde::Serialize>(
        cell: Rc<RefCell<Option<LiveRun>>>,
        work: impl AsyncFnOnce(&mut LiveRun) -> lavit_core::error::Result<T> + 'static,
    ) -> js_sys::Promise {
        wasm_bindgen_futures::future_to_promise(async move {
            let taken = cell.borrow_mut().take();
            let mut run = taken.ok_or_else(|| {
                JsValue::from(js(
                    "the training run is busy (a step or a probe is running)",
                ))
            })?;
            let out = work(&mut run).await;
            *cell.borrow_mut() = Some(run);
            let out = out.map_err(|e| JsValue::from(js(e)))?;
            serde_json::to_string(&out)
                .map(|s| JsValue::from_str(&s))
                .map_err(|e| JsValue::from(js(e)))
        })
    }

    #[wasm_bindgen]
    impl Training {
        /// A promise of the next optimiser step's losses (`StepLog` as JSON) and of its
        /// kernel dispatches and (on the first steps) pipeline compilations.
        pub fn step(&self) -> js_sys::Promise {
            let meter = self.meter.clone();
            with_run(self.run.clone(), async move |r: &mut LiveRun| {
                if r.steps_done() < COUNT_COMPILATIONS {
                    let span = meter.start();
                    let log = r.step().await?;
                    let work = span.end();
                    return Ok(StepWork {
                        log,
                        dispatches: work.dispatches,
                        compilations: Some(work.compilations),
                    });
                }
                let count = meter.count();
                let log = r.step().await?;
                Ok(StepWork {
                    log,
                    dispatches: count.end(),
                    compilations: None,
                })
            })
        }

        /// A promise of the student's view of the probe scene ([`ProbeView`] as JSON).
        pub fn probe(&self) -> js_sys::Promise {
            with_run(self.run.clone(), async |r: &mut LiveRun| r.probe().await)
        }

        /// Steps taken so far (0 while a step or a probe is in flight: the run is lent out).
        pub fn steps_done(&self) -> usize {
            self.run.borrow().as_ref().map_or(0, LiveRun::steps_done)
        }

        /// The probe scene's image, PNG-encoded.
        pub fn probe_png(&self) -> Result<Vec<u8>, JsError> {
            let run = self.run.borrow();
            let run = run.as_ref().ok_or_else(|| js("the training run is busy"))?;
            let mut png = Vec::new();
            run.probe_image()
                .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
                .map_err(js)?;
            Ok(png)
        }

        /// Whether the run has taken all its steps.
        pub fn finished(&self) -> bool {
            self.run.borrow().as_ref().is_some_and(LiveRun::finished)
        }
    }

    /// The page's handle: the students (by name) on WebGPU or the CPU backend, and the
    /// teacher on the CPU backend.
    #[wasm_bindgen]
    pub struct WebDemo {
        device: Device,
        backend: String,
        fallback: Option<String>,
        students: Vec<(String, Rc<Session>)>,
        teacher: Option<Rc<Session>>,
        meter: Rc<lavit_backends::gpu_work::Meter>,
    }

    /// A student's answer with the work it took: GPU dispatches and pipeline compilations
    /// (none on the CPU backend), and read-backs of tensors to the page.
    #[derive(serde::Serialize)]
    struct Answer {
        #[serde(flatten)]
        thoughts: Thoughts,
        work: Work,
    }

    #[derive(serde::Serialize)]
    struct Work {
        /// Generated tokens (the decode steps; the forced latent block is part of the prompt).
        tokens: usize,
        dispatches: u64,
        compilations: u64,
        read_backs: u64,
    }

    fn js(e: impl std::fmt::Display) -> JsError {
        JsError::new(&e.to_string())
    }

    fn task(task_json: &str) -> Result<SceneConfig, JsError> {
        if task_json.trim().is_empty() {
            return Ok(SceneConfig::default());
        }
        serde_json::from_str(task_json).map_err(|e| js(format!("task.json: {e}")))
    }

    /// The Train panel's options (`{"student": "baseline" | "lavit", "scenes": N, "steps":
    /// N}`), within the page's limits.
    fn train_options(options_json: &str) -> Result<LiveConfig, JsError> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Options {
            student: String,
            scenes: usize,
            steps: usize,
        }
        let o: Options =
            serde_json::from_str(options_json).map_err(|e| js(format!("options: {e}")))?;
        if !(1..=MAX_TRAIN_SCENES).contains(&o.scenes) || !(1..=MAX_TRAIN_STEPS).contains(&o.steps)
        {
            return Err(js(format!(
                "The page trains on 1 to {MAX_TRAIN_SCENES} scenes for 1 to {MAX_TRAIN_STEPS} steps."
            )));
        }
        Ok(LiveConfig::new(&o.student, o.scenes, o.steps))
    }

    #[wasm_bindgen]
    impl WebDemo {
        /// Picks the students' device: WebGPU when `prefer_gpu` and the browser has an
        /// adapter, else the CPU backend ([`WebDemo::fallback_reason`] says why).
        pub async fn create(prefer_gpu: bool) -> Result<WebDemo, JsError> {
            console_error_panic_hook::set_once();
            let (device, fallback) = if prefer_gpu {
                match lavit_backends::init_wgpu_async().await {
                    Ok(device) => (device, None),
                    Err(e) => (
                        lavit_backends::select("cpu", 0).map_err(js)?,
                        Some(e.to_string()),
                    ),
                }
            } else {
                (
                    lavit_backends::select("cpu", 0).map_err(js)?,
                    Some("WebGPU not requested".to_string()),
                )
            };
            let label = lavit_backends::device_label(&device);
            let backend = if fallback.is_none() {
                format!("webgpu — {label}")
            } else {
                label
            };
            Ok(WebDemo {
                device,
                backend,
                fallback,
                students: Vec::new(),
                teacher: None,
                meter: Rc::new(lavit_backends::gpu_work::Meter::new()),
            })
        }

        /// Loads a student (`config.json`, `model.safetensors`, `lavit_heads.safetensors`,
        /// `tokenizer.json`) under `name` on the page's device.
        pub fn add_student(
            &mut self,
            name: String,
            config_json: Vec<u8>,
            model_safetensors: Vec<u8>,
            heads_safetensors: Vec<u8>,
            tokenizer_json: Vec<u8>,
        ) -> Result<(), JsError> {
            let files = BundleFiles::new(
                config_json,
                model_safetensors,
                heads_safetensors,
                tokenizer_json,
            );
            let s = Session::load_on(files, self.device.clone()).map_err(js)?;
            self.students.retain(|(n, _)| *n != name);
            self.students.push((name, Rc::new(s)));
            Ok(())
        }

        /// Loads the teacher (a plain model: `config.json`, `model.safetensors`,
        /// `tokenizer.json`) on the CPU backend.
        pub fn add_teacher(
            &mut self,
            config_json: Vec<u8>,
            model_safetensors: Vec<u8>,
            tokenizer_json: Vec<u8>,
        ) -> Result<(), JsError> {
            let files =
                BundleFiles::new(config_json, model_safetensors, Vec::new(), tokenizer_json);
            self.teacher = Some(Rc::new(Session::load(files, "cpu").map_err(js)?));
            Ok(())
        }

        /// Starts the Train panel's run ([`start_training`]): the shipped student base (its
        /// `config.json`, `model.safetensors`, `tokenizer.json`) trained on the page's device
        /// as `options_json` says (`{"student": "baseline" | "lavit", "scenes": N, "steps":
        /// N}`), on scenes of `task_json`, its targets from the teacher's signals. A promise
        /// of the [`Training`]; `progress(done, total)` is called after each of the teacher's
        /// passes, and a promise it returns is awaited (the page paints and takes input then).
        pub fn train(
            &self,
            options_json: &str,
            task_json: &str,
            config_json: Vec<u8>,
            model_safetensors: Vec<u8>,
            tokenizer_json: Vec<u8>,
            progress: js_sys::Function,
        ) -> Result<js_sys::Promise, JsError> {
            let cfg = train_options(options_json)?;
            let teacher = self
                .teacher
                .clone()
                .ok_or_else(|| js("no teacher loaded"))?;
            let base = BundleFiles::new(config_json, model_safetensors, Vec::new(), tokenizer_json);
            let task = task(task_json)?;
            let (device, meter) = (self.device.clone(), self.meter.clone());
            Ok(wasm_bindgen_futures::future_to_promise(async move {
                let report = async |done: usize, total: usize| {
                    let (d, t) = (JsValue::from(done as u32), JsValue::from(total as u32));
                    // A callback that throws, or returns no promise, is not waited for.
                    if let Ok(p) = progress.call2(&JsValue::NULL, &d, &t)
                        && let Ok(p) = p.dyn_into::<js_sys::Promise>()
                    {
                        let _ = wasm_bindgen_futures::JsFuture::from(p).await;
                    }
                };
                let run = start_training(base, &teacher, &task, &cfg, &device, report)
                    .await
                    .map_err(|e| JsValue::from(JsError::new(&e)))?;
                Ok(JsValue::from(Training {
                    run: Rc::new(RefCell::new(Some(run))),
                    meter,
                }))
            }))
        }

        /// Adds the student `training` has trained so far under `name` (it then answers
        /// like the shipped students).
        pub fn add_trained(&mut self, name: String, training: &Training) -> Result<(), JsError> {
            let run = training.run.borrow();
            let run = run
                .as_ref()
                .ok_or_else(|| js("the training run is busy (a step or a probe is running)"))?;
            let s = Session::from_bundle(run.student());
            self.students.retain(|(n, _)| *n != name);
            self.students.push((name, Rc::new(s)));
            Ok(())
        }

        /// Which backend runs the students, in words.
        pub fn backend(&self) -> String {
            self.backend.clone()
        }

        /// Why the CPU backend runs the students (no WebGPU), if it does.
        pub fn fallback_reason(&self) -> Option<String> {
            self.fallback.clone()
        }

        /// The scene's fields as JSON (see [`Scene`]); `task_json` is the task's
        /// `task.json` (the default task when empty).
        pub fn scene_json(seed: u64, task_json: &str) -> Result<String, JsError> {
            let s = Session::scene(seed, &task(task_json)?).map_err(|e| JsError::new(&e))?;
            serde_json::to_string(&s).map_err(js)
        }

        /// The scene's image as PNG bytes.
        pub fn scene_png(seed: u64, task_json: &str) -> Result<Vec<u8>, JsError> {
            Ok(Session::scene(seed, &task(task_json)?)
                .map_err(|e| JsError::new(&e))?
                .png)
        }

        /// [`check_image`]: `[width, height]`, or a plain-sentence error.
        pub fn check_image(image_bytes: &[u8]) -> Result<Vec<u32>, JsError> {
            let (w, h) = super::check_image(image_bytes).map_err(|e| JsError::new(&e))?;
            Ok(vec![w, h])
        }

        /// [`check_question`]: nothing, or a plain-sentence error.
        pub fn check_question(question: &str) -> Result<(), JsError> {
            super::check_question(question).map_err(|e| JsError::new(&e))
        }

        /// The answer key of a generated text (its last word, lower-cased), as the task grades.
        pub fn key_of(text: &str) -> String {
            lavit_core::data::synthetic::predicted_key(text)
        }

        /// A promise of student `name`'s [`Thoughts`] as JSON, with the work it took (`work`:
        /// tokens, dispatches, compilations, read-backs).
        pub fn ask(&self, name: &str, image_bytes: Vec<u8>, question: String) -> js_sys::Promise {
            let session = self
                .students
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, s)| s.clone());
            let name = name.to_string();
            let meter = self.meter.clone();
            wasm_bindgen_futures::future_to_promise(async move {
                let session = session
                    .ok_or_else(|| JsValue::from(JsError::new(&format!("no student `{name}`"))))?;
                let (span, reads) = (meter.start(), lavit_core::util::read_backs());
                let thoughts = session
                    .ask_async(&image_bytes, &question)
                    .await
                    .map_err(|e| JsValue::from(JsError::new(&e)))?;
                let gpu = span.end();
                let work = Work {
                    tokens: thoughts.tokens.len(),
                    dispatches: gpu.dispatches,
                    compilations: gpu.compilations,
                    read_backs: lavit_core::util::read_backs() - reads,
                };
                serde_json::to_string(&Answer { thoughts, work })
                    .map(|s| JsValue::from_str(&s))
                    .map_err(|e| JsValue::from(js(e)))
            })
        }

        /// The teacher's view ([`Session::trajectory`]) as JSON, its maps resampled to `k`
        /// latent steps.
        pub fn look(
            &self,
            image_bytes: Vec<u8>,
            question: String,
            k: usize,
        ) -> Result<String, JsError> {
            let teacher = self
                .teacher
                .as_ref()
                .ok_or_else(|| js("no teacher loaded"))?;
            let v = teacher
                .trajectory(&image_bytes, &question, k)
                .map_err(|e| JsError::new(&e))?;
            serde_json::to_string(&v).map_err(js)
        }
    }
}
