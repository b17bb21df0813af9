#!/usr/bin/env bash
# Builds the browser demo into web-demo/dist: the wasm module and its JS bindings
# (wasm-bindgen-cli, no tool that downloads binaries), the page, and a LaViT student.
#   web-demo/build.sh [--release] [STUDENT_DIR]     (default: assets/synthetic/student-lavit)
# Without --release the bundle is built with the quick-to-compile `wasm-dev` profile (what the
# browser test runs); --release builds the optimised bundle to deploy.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/lavit-rs/target}"
profile=wasm-dev
if [ "${1:-}" = "--release" ]; then profile=release; shift; fi
student="${1:-assets/synthetic/student-lavit}"
bindgen_version=0.2.130   # = the wasm-bindgen crate version pinned in web-demo/Cargo.toml
rustup target list --installed | grep -q wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
if ! wasm-bindgen --version 2>/dev/null | grep -q "$bindgen_version"; then
  cargo install wasm-bindgen-cli --version "$bindgen_version"
fi
cargo build --profile "$profile" --target wasm32-unknown-unknown -p lavit-web-demo
out=web-demo/dist
rm -rf "$out" && mkdir -p "$out/pkg" "$out/model"
wasm-bindgen --target web --no-typescript --out-dir "$out/pkg" \
  "$CARGO_TARGET_DIR/wasm32-unknown-unknown/$profile/lavit_web_demo.wasm"
cp web-demo/www/* "$out/"
for f in config.json model.safetensors lavit_heads.safetensors tokenizer.json; do
  cp "$student/$f" "$out/model/$f"
done
echo "wasm bundle ($profile): $(stat -c %s "$out/pkg/lavit_web_demo_bg.wasm") bytes ($out/pkg/lavit_web_demo_bg.wasm)"
