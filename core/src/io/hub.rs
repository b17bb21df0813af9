//! Hugging Face Hub ids where a checkpoint directory is expected: `Qwen/Qwen2.5-VL-3B-Instruct`
//! is downloaded (once) into the cache transformers uses — `$HF_HOME/hub`, by default
//! `~/.cache/huggingface/hub` — with the `hf-hub` crate, and its snapshot directory returned.
//!
//! * `HF_ENDPOINT` picks the server (a mirror, or a test server), `HF_HOME` the cache;
//! * `HF_HUB_OFFLINE=1` never touches the network: the id must already be in the cache;
//! * a path that exists is always a path, whatever it looks like.

use std::path::{Path, PathBuf};

use hf_hub::api::sync::{ApiBuilder, ApiError, ApiRepo};

use crate::error::{LavitError, Result};

/// What a checkpoint needs besides its weights; the first is required.
const FILES: [&str; 5] = [
    "config.json",
    "tokenizer.json",
    "preprocessor_config.json",
    "tokenizer_config.json",
    "lavit_heads.safetensors",
];

/// `spec` as a local checkpoint directory: itself when it exists or is not a hub id
/// (`owner/name`), else the hub snapshot it names, downloaded if needed.
pub fn resolve(spec: &Path) -> Result<PathBuf> {
    match hub_id(spec) {
        Some(id) if !spec.exists() => download(id),
        _ => Ok(spec.to_path_buf()),
    }
}

/// `owner/name` when `spec` has that form (two non-empty parts of letters, digits, `-_.`, not
/// `.` or `..`, and no leading `/` or `./`).
pub fn hub_id(spec: &Path) -> Option<&str> {
    let s = spec.to_str()?;
    let (owner, name) = s.split_once('/')?;
    let part = |p: &str| {
        !p.is_empty()
            && p != "."
            && p != ".."
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    };
    (part(owner) && part(name)).then_some(s)
}

fn offline() -> bool {
    std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| !matches!(v.as_str(), "" | "0" | "false"))
}

fn hub_error(id: &str, message: String) -> LavitError {
    LavitError::Hub {
        id: id.to_string(),
        message,
    }
}

/// The snapshot directory of `id`, every file of [`FILES`] and the weights fetched.
fn download(id: &str) -> Result<PathBuf> {
    if offline() {
        return cached(id);
    }
    let api = ApiBuilder::from_env()
        .with_progress(true)
        .build()
        .map_err(|e| hub_error(id, format!("cannot set up the hub client: {e}")))?;
    let repo = api.model(id.to_string());
    let config = fetch(&repo, id, FILES[0])?.ok_or_else(|| {
        hub_error(
            id,
            "the repository has no config.json: not a checkpoint".into(),
        )
    })?;
    for f in &FILES[1..] {
        fetch(&repo, id, f)?;
    }
    match fetch(&repo, id, "model.safetensors.index.json")? {
        Some(index) => {
            for shard in shards(&index)? {
                fetch(&repo, id, &shard)?
                    .ok_or_else(|| hub_error(id, format!("shard {shard} is missing")))?;
            }
        }
        None => {
            fetch(&repo, id, "model.safetensors")?.ok_or_else(|| {
                hub_error(
                    id,
                    "no model.safetensors or model.safetensors.index.json".into(),
                )
            })?;
        }
    }
    Ok(snapshot_dir(&config))
}

/// `file` of `repo` in the cache, downloaded if needed; `None` when the repository has no
/// such file (HTTP 404).
fn fetch(repo: &ApiRepo, id: &str, file: &str) -> Result<Option<PathBuf>> {
    match repo.get(file) {
        Ok(p) => Ok(Some(p)),
        Err(ApiError::RequestError(e)) => match *e {
            ureq::Error::Status(404, _) => Ok(None),
            ureq::Error::Status(code, _) => Err(hub_error(
                id,
                format!(
                    "{file}: the hub answered HTTP {code} (a private or gated repository needs a token in $HF_HOME/token)"
                ),
            )),
            other => Err(hub_error(
                id,
                format!(
                    "cannot reach the hub ({other}); set HF_ENDPOINT to a mirror, or HF_HUB_OFFLINE=1 to use only the cache"
                ),
            )),
        },
        Err(e) => Err(hub_error(id, format!("{file}: {e}"))),
    }
}

/// The shard files a `model.safetensors.index.json` lists.
fn shards(index: &Path) -> Result<Vec<String>> {
    #[derive(serde::Deserialize)]
    struct Index {
        weight_map: std::collections::BTreeMap<String, String>,
    }
    let idx: Index = crate::error::read_json(index)?;
    let set: std::collections::BTreeSet<String> = idx.weight_map.into_values().collect();
    Ok(set.into_iter().collect())
}

/// `HF_HUB_OFFLINE=1`: the cached snapshot of `id`, or an error saying it is not cached.
fn cached(id: &str) -> Result<PathBuf> {
    let cache = hf_hub::Cache::from_env();
    let repo = cache.model(id.to_string());
    match repo.get("config.json") {
        Some(config) => Ok(snapshot_dir(&config)),
        None => Err(hub_error(
            id,
            format!(
                "HF_HUB_OFFLINE is set and the model is not in the cache ({}); download it once without HF_HUB_OFFLINE",
                cache.path().display()
            ),
        )),
    }
}

fn snapshot_dir(config: &Path) -> PathBuf {
    config.parent().map(Path::to_path_buf).unwrap_or_default()
}
