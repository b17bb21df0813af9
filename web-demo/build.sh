#!/usr/bin/env bash
# Builds the browser demo into web-demo/dist: the wasm module and its JS bindings
# (wasm-bindgen-cli, no tool that downloads binaries), the page, and the models it shows —
# the LaViT student, the CE-only baseline student, the teacher, and the student base that the
# page's Train panel trains.
#   web-demo/build.sh [--release]
# --release builds the bundle to deploy: the size-tuned `wasm-release` profile, then binaryen's
# wasm-opt (npm package pinned in web-demo/tools), and brotli / gzip copies of every file that
# serve.sh (and any static server that serves precompressed files) sends instead. Without it
# the bundle is built with the quick-to-compile `wasm-dev` profile.
# LAVIT_STUDENT, LAVIT_BASELINE, LAVIT_TEACHER, LAVIT_BASE override the model directories,
# LAVIT_TASK the task file (assets/synthetic/task.json: the scenes the page draws) and
# LAVIT_TRAIN_TASK the one the Train panel trains on (the demo's, assets/synthetic/task-prior.json).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/lavit-rs/target}"
profile="wasm-dev"
if [ "${1:-}" = "--release" ]; then profile="wasm-release"; shift; fi
lavit="${LAVIT_STUDENT:-assets/synthetic/student-lavit}"
baseline="${LAVIT_BASELINE:-assets/synthetic/student-baseline}"
teacher="${LAVIT_TEACHER:-assets/synthetic/teacher}"
base="${LAVIT_BASE:-assets/synthetic/student-base}"
task="${LAVIT_TASK:-assets/synthetic/task.json}"
train_task="${LAVIT_TRAIN_TASK:-assets/synthetic/task-prior.json}"
bindgen_version=0.2.130   # = the wasm-bindgen crate version pinned in web-demo/Cargo.toml
rustup target list --installed | grep -q wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
if ! wasm-bindgen --version 2>/dev/null | grep -q "$bindgen_version"; then
  cargo install wasm-bindgen-cli --version "$bindgen_version"
fi
t0=$SECONDS
# `cargo rustc --crate-type cdylib`: the crate is also an rlib (for tests/session.rs), and cargo
# applies no LTO to a crate that builds an rlib, so `cargo build` would ignore the profile's
# `lto = "fat"`. With LTO the module is smaller before and after wasm-opt (docs/DEVELOPMENT.md).
cargo rustc --profile "$profile" --target wasm32-unknown-unknown -p lavit-web-demo --crate-type cdylib
echo "web-demo/build.sh: cargo rustc ($profile) took $((SECONDS - t0)) s"
out=web-demo/dist
rm -rf "$out" && mkdir -p "$out/pkg" "$out/model"
wasm-bindgen --target web --no-typescript --out-dir "$out/pkg" \
  "$CARGO_TARGET_DIR/wasm32-unknown-unknown/$profile/lavit_web_demo.wasm"
wasm="$out/pkg/lavit_web_demo_bg.wasm"
if [ "$profile" = wasm-release ]; then
  # -O1 with the function-merging passes, not -Os: smaller (13.32 against 13.86 MB) in 65 s
  # against 139 s, and as fast in the page (docs/DEVELOPMENT.md, "CI time").
  opt=(-O1 --duplicate-function-elimination --merge-similar-functions --code-folding
    --strip-debug --strip-producers --enable-bulk-memory --enable-nontrapping-float-to-int
    --enable-sign-ext --enable-mutable-globals --enable-reference-types --enable-multivalue
    --enable-simd)
  # wasm-opt takes minutes; its output is kept in the target directory by the hash of its
  # input and its options.
  cache="$CARGO_TARGET_DIR/wasm-opt-cache"
  key=$( (sha256sum <"$wasm" && echo "${opt[*]}") | sha256sum | cut -c1-32)
  if [ ! -f "$cache/$key.wasm" ]; then
    t0=$SECONDS
    (cd web-demo/tools && npm ci --no-audit --no-fund --silent)
    mkdir -p "$cache"
    web-demo/tools/node_modules/.bin/wasm-opt "${opt[@]}" "$wasm" -o "$cache/$key.tmp"
    mv "$cache/$key.tmp" "$cache/$key.wasm"
    echo "web-demo/build.sh: wasm-opt took $((SECONDS - t0)) s"
  fi
  cp "$cache/$key.wasm" "$wasm"
fi
cp web-demo/www/* "$out/"
for m in "lavit:$lavit:lavit_heads.safetensors" "baseline:$baseline:lavit_heads.safetensors" "teacher:$teacher:" "student-base:$base:"; do
  IFS=: read -r name dir heads <<<"$m"
  mkdir -p "$out/model/$name"
  for f in config.json model.safetensors tokenizer.json $heads; do
    [ -f "$dir/$f" ] || { echo "web-demo/build.sh: $dir/$f is missing ($name model)" >&2; exit 1; }
    cp "$dir/$f" "$out/model/$name/$f"
  done
done
# The task the teacher was trained on (the page draws its scenes from it) and the one the Train
# panel's students learn (the demo's).
for t in "$task:task.json" "$train_task:task-prior.json"; do
  IFS=: read -r from to <<<"$t"
  [ -f "$from" ] || { echo "web-demo/build.sh: $from is missing" >&2; exit 1; }
  cp "$from" "$out/model/$to"
done
if [ "$profile" = wasm-release ]; then
  node web-demo/tools/compress.mjs "$out" "$CARGO_TARGET_DIR/compress-cache"
fi
printf '{"profile": "%s"}\n' "$profile" > "$out/build.json"
echo "wasm bundle ($profile): $(stat -c %s "$wasm") bytes ($wasm)"
