#!/usr/bin/env bash
# The main job (the README's first command): builds `lavit` and runs `lavit demo` — the whole
# LaViT pipeline on the embedded synthetic task, CPU backend by default, no download.
# Extra arguments go to `lavit demo` (e.g. --backend wgpu, --steps 600, --ablate traj).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/lavit-rs/target}"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/lavit-xdg-$(id -u)}"
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
# The dev profile builds burn at opt-level 3 and shares its artifacts with the tests.
cargo build --workspace
exec "$CARGO_TARGET_DIR/debug/lavit" demo "$@"
