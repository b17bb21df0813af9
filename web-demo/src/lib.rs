//! The LaViT student in the browser: ask a question about a synthetic scene (or any image)
//! and see, for each latent token, where the student looks.
//!
//! [`Session`] is plain Rust over `lavit-core` — the same [`Student::answer`] that
//! `lavit infer` runs — so it is tested natively; on wasm32 the `web` module exposes it to
//! JavaScript.

use lavit_backends::Device;
use lavit_core::data::synthetic::{SceneConfig, generate};
use lavit_core::infer::{GenerateConfig, Thoughts};
use lavit_core::student::{Student, StudentFiles};
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

/// A loaded student on one backend.
pub struct Session {
    student: Student,
    backend: String,
}

impl Session {
    /// Loads an exported student (the four files of `lavit train`'s `final/`) on `backend`
    /// (`cpu` in the browser for now).
    pub fn load(files: StudentFiles, backend: &str) -> Result<Self, String> {
        let device: Device = lavit_backends::select(backend, 0).map_err(|e| e.to_string())?;
        Self::load_on(files, device)
    }

    /// Loads on an already initialised device (the browser's WebGPU device).
    pub fn load_on(files: StudentFiles, device: Device) -> Result<Self, String> {
        let student = Student::from_files(files, &device).map_err(|e| e.to_string())?;
        Ok(Self {
            student,
            backend: lavit_backends::device_label(&device),
        })
    }

    /// Which backend runs the model, in words.
    pub fn backend(&self) -> &str {
        &self.backend
    }

    /// Scene number `seed` of the synthetic task.
    pub fn scene(seed: u64) -> Result<Scene, String> {
        let cfg = SceneConfig::default();
        let (s, img) = generate(1, seed, &cfg, "web-")
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

    /// [`Session::ask`] with asynchronous read-backs (required on WebGPU in the browser).
    pub async fn ask_async(&self, image_bytes: &[u8], question: &str) -> Result<Thoughts, String> {
        let img = decode(image_bytes, question)?;
        self.student
            .answer_async(std::slice::from_ref(&img), question, &ask_config())
            .await
            .map_err(|e| e.to_string())
    }
}

fn ask_config() -> GenerateConfig {
    GenerateConfig {
        max_new_tokens: 32,
        force_lvr: true,
        ..Default::default()
    }
}

fn decode(image_bytes: &[u8], question: &str) -> Result<image::RgbImage, String> {
    if question.trim().is_empty() {
        return Err("the question is empty".into());
    }
    let img = image::load_from_memory(image_bytes)
        .map_err(|e| format!("not a readable image: {e}"))?
        .to_rgb8();
    if img.width() == 0 || img.height() == 0 {
        return Err("the image is empty".into());
    }
    Ok(img)
}

#[cfg(target_arch = "wasm32")]
mod web {
    use std::rc::Rc;

    use super::*;
    use wasm_bindgen::prelude::*;

    /// The page's handle on a loaded student.
    #[wasm_bindgen]
    pub struct WebDemo {
        session: Rc<Session>,
        fallback: Option<String>,
    }

    #[wasm_bindgen]
    impl WebDemo {
        /// Loads the student (`config.json`, `model.safetensors`, `lavit_heads.safetensors`,
        /// `tokenizer.json`) on WebGPU when `prefer_gpu` and the browser has an adapter, else
        /// on the CPU backend ([`WebDemo::fallback_reason`] says why).
        pub async fn create(
            config_json: Vec<u8>,
            model_safetensors: Vec<u8>,
            heads_safetensors: Vec<u8>,
            tokenizer_json: Vec<u8>,
            prefer_gpu: bool,
        ) -> Result<WebDemo, JsError> {
            console_error_panic_hook::set_once();
            let files = StudentFiles {
                config_json,
                model_safetensors,
                heads_safetensors,
                tokenizer_json,
                preprocessor_json: None,
            };
            let fallback = if prefer_gpu {
                match lavit_backends::init_wgpu_async().await {
                    Ok(device) => {
                        let mut s =
                            Session::load_on(files, device).map_err(|e| JsError::new(&e))?;
                        s.backend = format!("webgpu — {}", s.backend);
                        return Ok(WebDemo {
                            session: Rc::new(s),
                            fallback: None,
                        });
                    }
                    Err(e) => e.to_string(),
                }
            } else {
                "WebGPU not requested".to_string()
            };
            let s = Session::load(files, "cpu").map_err(|e| JsError::new(&e))?;
            Ok(WebDemo {
                session: Rc::new(s),
                fallback: Some(fallback),
            })
        }

        pub fn backend(&self) -> String {
            self.session.backend().to_string()
        }

        /// Why the CPU backend runs (no WebGPU), if it does.
        pub fn fallback_reason(&self) -> Option<String> {
            self.fallback.clone()
        }

        /// The scene's fields as JSON (see [`Scene`]).
        pub fn scene_json(seed: u64) -> Result<String, JsError> {
            let s = Session::scene(seed).map_err(|e| JsError::new(&e))?;
            serde_json::to_string(&s).map_err(|e| JsError::new(&e.to_string()))
        }

        /// The scene's image as PNG bytes.
        pub fn scene_png(seed: u64) -> Result<Vec<u8>, JsError> {
            Ok(Session::scene(seed).map_err(|e| JsError::new(&e))?.png)
        }

        /// A promise of [`Thoughts`] as JSON.
        pub fn ask(&self, image_bytes: Vec<u8>, question: String) -> js_sys::Promise {
            let session = self.session.clone();
            wasm_bindgen_futures::future_to_promise(async move {
                let t = session
                    .ask_async(&image_bytes, &question)
                    .await
                    .map_err(|e| JsValue::from(JsError::new(&e)))?;
                serde_json::to_string(&t)
                    .map(|s| JsValue::from_str(&s))
                    .map_err(|e| JsValue::from(JsError::new(&e.to_string())))
            })
        }
    }
}
