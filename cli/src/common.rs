//! Flags and helpers shared by the commands.

use anyhow::{Context, Result};
use lavit_backends::Device;

/// `--backend` / `--device` on every command that computes.
#[derive(clap::Args, Debug, Clone)]
pub struct BackendArgs {
    /// Compute backend: cpu, wgpu, vulkan, metal, dx12, webgpu, cuda (what this build has).
    #[arg(long, default_value = "cpu")]
    pub backend: String,
    /// Adapter index within the backend.
    #[arg(long, default_value_t = 0)]
    pub device: usize,
    /// Float precision: f32, f16 or bf16 (where the backend supports it).
    #[arg(long, default_value = "f32")]
    pub precision: String,
}

impl BackendArgs {
    pub fn device(&self) -> Result<Device> {
        let precision: lavit_backends::Precision =
            self.precision.parse().map_err(anyhow::Error::msg)?;
        lavit_backends::select_with_precision(&self.backend, self.device, precision)
            .context("choosing the backend")
    }
}

/// A `--model`-style argument as a local directory: a Hugging Face Hub id
/// (`Qwen/Qwen2.5-VL-3B-Instruct`) is fetched into the hub cache (`HF_HOME`) first.
pub fn local_model(spec: &std::path::Path) -> Result<std::path::PathBuf> {
    lavit_core::io::hub::resolve(spec).with_context(|| format!("fetching {}", spec.display()))
}

/// `Opts::over(self, base)` for an options struct whose fields are all `Option`s: each field
/// of `self` wins over `base`'s (flags over a TOML file). Shared by `extract` and `train`.
#[macro_export]
macro_rules! overlay {
    ($t:ident { $($f:ident),* $(,)? }) => {
        impl $t {
            /// `self` wins over `base`, field by field.
            pub fn over(self, base: $t) -> $t {
                $t { $($f: self.$f.or(base.$f)),* }
            }
        }
    };
}

/// Options from a TOML file (`None`: the type's defaults); `what` names it in errors.
pub fn read_toml<T: serde::de::DeserializeOwned + Default>(
    path: Option<&std::path::Path>,
    what: &str,
) -> Result<T> {
    let Some(p) = path else {
        return Ok(T::default());
    };
    let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
    toml::from_str(&text).with_context(|| format!("{}: invalid {what} config", p.display()))
}

/// The error and its causes on one line (library messages can carry newlines). A cause that
/// its parent's message already ends with (an error that prints its source itself) is not
/// repeated.
pub fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause
            .to_string()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        if line.is_empty() {
            line = text;
        } else if !line.ends_with(&text) {
            line = format!("{line}: {text}");
        }
    }
    line
}

/// Logs to stderr, filtered by `LAVIT_LOG` (e.g. `LAVIT_LOG=info`). By default: warnings,
/// except wgpu's OpenGL probe, which reports an `eglInitialize` failure as an error on every
/// headless machine although Vulkan is then used.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LAVIT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,wgpu_hal::gles=off"));
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// A progress bar on stderr (hidden when stderr is not a terminal).
pub fn progress_bar(len: u64, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{prefix:>10} [{bar:40}] {pos}/{len} {elapsed_precise} eta {eta} {msg}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_prefix(what.to_string());
    bar
}

/// A `--traj-top-k` / `top_k` value: `dense`, a count (`8`) or a fraction of the grid
/// (`0.05`, `5%`). In TOML files an integer or a string.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TopKArg(pub lavit_core::lavit::targets::TopK);

impl std::str::FromStr for TopKArg {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        lavit_core::lavit::targets::TopK::parse(s).map(TopKArg)
    }
}

impl<'de> serde::Deserialize<'de> for TopKArg {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(u64),
            Float(f64),
            Text(String),
        }
        let text = match Raw::deserialize(d)? {
            Raw::Int(i) => i.to_string(),
            Raw::Float(f) => f.to_string(),
            Raw::Text(s) => s,
        };
        text.parse().map_err(serde::de::Error::custom)
    }
}
