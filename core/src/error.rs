//! Typed errors of lavit-core. Front ends (CLI, browser) add context and report them.

use std::path::PathBuf;

/// Everything that can go wrong inside lavit-core on user input.
#[derive(Debug, thiserror::Error)]
pub enum LavitError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: invalid JSON: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("config {path}: {message}")]
    Config { path: PathBuf, message: String },
    #[error("{id} is not a local directory; as a Hugging Face Hub model: {message}")]
    Hub { id: String, message: String },
    #[error("weights {path}: {message}")]
    Weights { path: PathBuf, message: String },
    #[error(
        "weights: tensor `{key}` has shape {found:?} on disk but the model expects {expected:?}"
    )]
    ShapeMismatch {
        key: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error("weights: tensor(s) missing from the checkpoint: {0}")]
    MissingTensors(String),
    #[error("image {path}: {message}")]
    Image { path: String, message: String },
    #[error("tokenizer {path}: {message}")]
    Tokenizer { path: String, message: String },
    #[error("prompt: {0}")]
    Prompt(String),
    #[error("benchmark {0}")]
    Bench(String),
    #[error("invalid input: {0}")]
    Invalid(String),
    /// A training step met a non-finite loss or gradient norm (the student is left as it was
    /// before the step).
    #[error("{0}")]
    NonFinite(String),
    #[error("{0}")]
    Other(String),
}

/// Result alias used across lavit-core.
pub type Result<T> = std::result::Result<T, LavitError>;

impl LavitError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        LavitError::Io {
            path: path.into(),
            source,
        }
    }
}

/// The error a write gets on a full disk (`ENOSPC`): what the failpoints of the write paths
/// inject, so that tests need no full filesystem.
#[cfg(feature = "failpoints")]
pub(crate) fn disk_full(path: &std::path::Path) -> LavitError {
    LavitError::io(path, enospc())
}

/// The OS's own "disk full" error (`ENOSPC`, Windows' `ERROR_DISK_FULL`), as a real write gets.
#[cfg(feature = "failpoints")]
pub(crate) fn enospc() -> std::io::Error {
    std::io::Error::from_raw_os_error(if cfg!(windows) { 112 } else { 28 })
}

/// A deterministic failpoint of the `fail` crate where the `failpoints` feature is on (the test
/// build), nothing otherwise: `failpoint!("name")` may panic, pause or sleep there when a test
/// (or `FAILPOINTS` in the environment) asks; `failpoint!("name", |_| Err(..))` may also return
/// that error.
macro_rules! failpoint {
    ($name:expr) => {
        #[cfg(feature = "failpoints")]
        fail::fail_point!($name);
    };
    ($name:expr, $on_return:expr) => {
        #[cfg(feature = "failpoints")]
        fail::fail_point!($name, $on_return);
    };
}
pub(crate) use failpoint;

/// Applies `FAILPOINTS` from the environment (`name=action;…`, the `fail` crate's syntax) for
/// the rest of the process, where the `failpoints` feature is on; does nothing otherwise. The
/// CLI calls it first, so that tests can crash a real `lavit` process at a chosen point.
pub fn failpoints_from_env() -> Result<()> {
    #[cfg(feature = "failpoints")]
    if let Ok(spec) = std::env::var("FAILPOINTS") {
        for point in spec.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, actions) = point.split_once('=').ok_or_else(|| {
                LavitError::Invalid(format!("FAILPOINTS: `{point}` is not name=actions"))
            })?;
            fail::cfg(name, actions)
                .map_err(|e| LavitError::Invalid(format!("FAILPOINTS: `{point}`: {e}")))?;
        }
    }
    Ok(())
}

/// Read a whole file, mapping the error to [`LavitError::Io`] with the path.
pub fn read_file(path: impl AsRef<std::path::Path>) -> Result<Vec<u8>> {
    let path = path.as_ref();
    std::fs::read(path).map_err(|e| LavitError::io(path, e))
}

/// Read and parse a JSON file into `T`.
pub fn read_json<T: serde::de::DeserializeOwned>(path: impl AsRef<std::path::Path>) -> Result<T> {
    let path = path.as_ref();
    let bytes = read_file(path)?;
    serde_json::from_slice(&bytes).map_err(|source| LavitError::Json {
        path: path.to_path_buf(),
        source,
    })
}
