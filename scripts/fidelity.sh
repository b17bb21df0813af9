#!/usr/bin/env bash
# The pre-registered fidelity experiment (docs/PREREGISTRATION.md) on the test split, as run,
# in its pre-registered order: the primary endpoint (baseline and LaViT, the default demo), the
# paper's schedule, the ablations; seeds 0-9. Each condition runs as two processes (seeds 0-4
# and 5-9, one CPU thread each) into one directory; a last `lavit demo --seeds 0,...,9` finds
# every seed's report made by the same binary with the same settings and writes the aggregate
# (results/fidelity/*/report.md, seeds.json).
# Resumable: a seed whose report exists is not run again.
#
# Usage: scripts/fidelity.sh [OUT] [CONDITION...]   (default results/fidelity, all three).
# LAVIT=<binary> to pin a build.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-results/fidelity}
shift || true
conds=("$@")
[ ${#conds[@]} -gt 0 ] || conds=(primary paper ablations)
L=${LAVIT:-${CARGO_TARGET_DIR:-$HOME/.cache/lavit-rs/target}/debug/lavit}
# The conditions, read through `declare -n` below (shellcheck cannot see that use).
# shellcheck disable=SC2034,SC2054
primary=(--parallel 1 --out "$OUT/primary")
# shellcheck disable=SC2034
paper=(--no-bottleneck --gate-closed 0.4 --parallel 1 --out "$OUT/paper-schedule")
# shellcheck disable=SC2034,SC2054
ablations=(--ablate traj --ablate vtop --ablate last-layer
  --students lavit-no-traj,lavit-no-vtop,lavit-last-layer --parallel 1 --out "$OUT/ablations")
mkdir -p "$OUT"
run() { # name, seeds, flags...
  local name=$1 seeds=$2; shift 2
  echo "$(date +%T) start $name seeds $seeds"
  "$L" --threads 1 demo --seeds "$seeds" "$@" > "$OUT/$name-$seeds.log" 2>&1
  echo "$(date +%T) done $name seeds $seeds"
}
for cond in "${conds[@]}"; do
  declare -n flags=$cond
  run "$cond" 0,1,2,3,4 "${flags[@]}" &
  run "$cond" 5,6,7,8,9 "${flags[@]}" &
  wait
  "$L" --threads 1 demo --seeds 0,1,2,3,4,5,6,7,8,9 "${flags[@]}" > "$OUT/$cond.log" 2>&1
  unset -n flags
done
