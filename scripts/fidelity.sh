#!/usr/bin/env bash
# The pre-registered fidelity experiment (docs/PREREGISTRATION.md) on the test split, as run:
# the primary condition with its three ablations and the paper's schedule, seeds 0-9. Each
# condition runs as two processes (seeds 0-4 and 5-9, one CPU thread each) into one output
# directory; a last `lavit demo --seeds 0,...,9` finds every seed's report made by the same
# binary with the same settings and writes the aggregate report (runs/fidelity/*/report.md).
# Resumable: a seed whose report exists is not run again.
#
# Usage: scripts/fidelity.sh [OUT]   (default runs/fidelity). LAVIT=<binary> to pin a build.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/fidelity}
L=${LAVIT:-${CARGO_TARGET_DIR:-$HOME/.cache/lavit-rs/target}/debug/lavit}
primary=(--ablate traj --ablate vtop --ablate last-layer --parallel 1 --out "$OUT/primary")
paper=(--no-bottleneck --gate-closed 0.4 --parallel 1 --out "$OUT/paper-schedule")
mkdir -p "$OUT"
run() { # name, seeds, flags...
  local name=$1 seeds=$2; shift 2
  echo "$(date +%T) start $name seeds $seeds"
  "$L" --threads 1 demo --seeds "$seeds" "$@" > "$OUT/$name-$seeds.log" 2>&1
  echo "$(date +%T) done $name seeds $seeds"
}
for cond in primary paper; do
  declare -n flags=$cond
  run "$cond" 0,1,2,3,4 "${flags[@]}" &
  run "$cond" 5,6,7,8,9 "${flags[@]}" &
  wait
  "$L" --threads 1 demo --seeds 0,1,2,3,4,5,6,7,8,9 "${flags[@]}" > "$OUT/$cond.log" 2>&1
done
