#!/usr/bin/env bash
# Fuzzes every parser of user files (cli/tests/fuzz.rs): LAVIT_FUZZ_CASES cases each (default
# 10,000), fixed seeds; prints `fuzz <parser>: <N> cases, <P> panics, …` per parser and fails
# on any panic or any allocation over the cap. scripts/test.sh runs it after the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/lavit-rs/target}"
args=(--ignored --test-threads 2 --nocapture fuzz_)
# LAVIT_FUZZ_BIN names the built `cli` test binary to run without cargo (scripts/test.sh does,
# while its clippy pass holds cargo's lock); it runs in cli/ with the variable the tests read,
# as cargo runs it.
if [ -n "${LAVIT_FUZZ_BIN:-}" ]; then
  cd cli && CARGO_MANIFEST_DIR="$PWD" exec "$LAVIT_FUZZ_BIN" "${args[@]}"
fi
# Extra arguments go to cargo (e.g. the test run's --features, so nothing is rebuilt).
cargo test --workspace "$@" --test cli -- "${args[@]}"
