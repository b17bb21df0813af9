//! Hub ids for `--model`: `lavit forward --model fixture/tiny-tied` against a small local HTTP
//! server that serves the tiny-tied fixture the way the Hugging Face Hub does (the `resolve`
//! URLs, `ETag`, `X-Repo-Commit`, `Content-Range` on a `Range: bytes=0-0` probe), reached
//! through `HF_ENDPOINT`, cached under `HF_HOME`; then `HF_HUB_OFFLINE=1` from the cache, and
//! clear errors for an unreachable hub and an uncached offline id.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use lavit_core::io::tensors::read_safetensors;

use super::common::{assert_failed_cleanly, fixtures};

const REPO: &str = "fixture/tiny-tied";
const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// Serves `root`'s files as the hub serves repository `REPO` at `main`; counts requests.
fn serve(root: PathBuf) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let count = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            count.fetch_add(1, Ordering::SeqCst);
            respond(stream, &root);
        }
    });
    (url, hits)
}

/// One request: the file (whole, or its first byte for the `bytes=0-0` metadata probe) with
/// the hub's headers, or 404.
fn respond(mut stream: TcpStream, root: &Path) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
    let mut range = String::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
        if let Some(v) = h.to_ascii_lowercase().strip_prefix("range:") {
            range = v.trim().to_string();
        }
    }
    let file = path
        .strip_prefix(&format!("/{REPO}/resolve/main/"))
        .map(|f| root.join(f))
        .filter(|p| p.is_file());
    let Some(file) = file else {
        let _ = stream
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        return;
    };
    let body = std::fs::read(&file).unwrap();
    let n = body.len();
    // FNV-1a of the bytes: a file-name-safe ETag, as the hub's (a hash of the content).
    let etag = body.iter().fold(0xcbf29ce484222325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    });
    let body = if range == "bytes=0-0" {
        body[..1].to_vec()
    } else {
        body
    };
    let status = if range.is_empty() {
        "200 OK"
    } else {
        "206 Partial Content"
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nETag: \"{etag:016x}\"\r\nX-Repo-Commit: {COMMIT}\r\nContent-Range: bytes 0-{}/{n}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len() - 1,
        body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(&body);
}

/// `lavit forward --model MODEL` on the tiny-tied fixture's image and question, with the hub
/// environment `env` (and no proxy, which would catch 127.0.0.1).
fn forward(model: &str, out: &Path, env: &[(&str, &str)]) -> Output {
    let meta: serde_json::Value = serde_json::from_slice(
        &std::fs::read(fixtures().join("tiny-tied/reference.json")).unwrap(),
    )
    .unwrap();
    let image = fixtures().join(meta["image"].as_str().unwrap());
    let mut c = Command::new(env!("CARGO_BIN_EXE_lavit"));
    c.args([
        "forward",
        "--model",
        model,
        "--image",
        image.to_str().unwrap(),
    ])
    .args(["--prompt", meta["question"].as_str().unwrap()])
    .args(["--max-pixels", &meta["max_pixels"].to_string()])
    .args(["--min-pixels", &meta["min_pixels"].to_string()])
    .args(["--out", out.to_str().unwrap()]);
    for v in [
        "ALL_PROXY",
        "HTTPS_PROXY",
        "HTTP_PROXY",
        "all_proxy",
        "https_proxy",
        "http_proxy",
    ] {
        c.env_remove(v);
    }
    c.env_remove("HF_HUB_OFFLINE");
    c.envs(env.iter().copied());
    c.output().unwrap()
}

fn logits(path: &Path) -> Vec<f32> {
    read_safetensors(path).unwrap()["logits"].to_f32()
}

#[test]
fn a_hub_id_is_fetched_through_hf_endpoint_and_then_read_offline() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("hf");
    let home_s = home.to_str().unwrap();
    let (url, hits) = serve(fixtures().join("tiny-tied"));
    let local = tmp.path().join("local.safetensors");
    let fixture = fixtures().join("tiny-tied");
    let res = forward(fixture.to_str().unwrap(), &local, &[]);
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );

    let hub = tmp.path().join("hub.safetensors");
    let res = forward(REPO, &hub, &[("HF_ENDPOINT", &url), ("HF_HOME", home_s)]);
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    assert_eq!(
        logits(&local),
        logits(&hub),
        "the fetched model computes other logits"
    );
    let snapshot = home
        .join("hub/models--fixture--tiny-tied/snapshots")
        .join(COMMIT);
    assert!(
        snapshot.join("model-00010-of-00010.safetensors").exists(),
        "shards not cached"
    );
    assert!(hits.load(Ordering::SeqCst) > 10, "the server was not asked");

    // Offline, with the server's address gone: from the cache, not a single request.
    let before = hits.load(Ordering::SeqCst);
    let offline = tmp.path().join("offline.safetensors");
    let env = [
        ("HF_ENDPOINT", "http://127.0.0.1:9"),
        ("HF_HOME", home_s),
        ("HF_HUB_OFFLINE", "1"),
    ];
    let res = forward(REPO, &offline, &env);
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    assert_eq!(logits(&local), logits(&offline));
    assert_eq!(
        hits.load(Ordering::SeqCst),
        before,
        "offline mode made requests"
    );
}

#[test]
fn an_unreachable_hub_and_an_uncached_offline_id_fail_with_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("empty-hf");
    let home_s = home.to_str().unwrap();
    let out = tmp.path().join("out.safetensors");
    // Port 9 (discard) is closed on a test machine: connection refused.
    let env = [("HF_ENDPOINT", "http://127.0.0.1:9"), ("HF_HOME", home_s)];
    let res = forward(REPO, &out, &env);
    assert_failed_cleanly("unreachable hub", &res, "cannot reach the hub");
    let res = forward(REPO, &out, &[("HF_HOME", home_s), ("HF_HUB_OFFLINE", "1")]);
    assert_failed_cleanly("offline, not cached", &res, "not in the cache");
    assert!(!out.exists());
}
