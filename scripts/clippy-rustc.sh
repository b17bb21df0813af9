#!/usr/bin/env bash
# rustc wrapper of the test build (scripts/test.sh sets it as RUSTC_WORKSPACE_WRAPPER, which
# cargo applies to this workspace's crates only): compiles them with clippy-driver, so clippy's
# lints run while the tests are built instead of in a separate `cargo clippy`, which would
# type-check every dependency a second time (docs/DEVELOPMENT.md, "CI time").
# scripts/test.sh also exports CLIPPY_ARGS (how `cargo clippy` hands its lint flags to
# clippy-driver; clippy-driver records it, so it must be the same for every crate or cargo
# sees a changed environment and rebuilds): warnings are errors. Libraries and binaries also
# get the 80-line function limit of clippy.toml; test targets (`rustc --test`) do not.
set -euo pipefail
for a in "$@"; do
  [ "$a" != --test ] || exec clippy-driver "$@"
done
exec clippy-driver "$@" -W clippy::too_many_lines
