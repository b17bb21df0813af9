#!/usr/bin/env bash
# The validation sweep that chose `lavit demo`'s pre-registered configuration
# (docs/PREREGISTRATION.md): each configuration below trains its students on seeds 0, 1, 2
# and is scored on the validation split (300 questions per seed; the test split is not
# touched). Two runs at a time, one thread each. Then scripts/sweep_table.py writes the table
# RUNS_DIR/sweep.md from the runs' seeds.json files (the sweep as run: docs/validation/sweep.md).
#
# Usage: scripts/validation-sweep.sh [RUNS_DIR]   (default results/validation; resumable: a
# configuration whose seeds.json exists is skipped). Extra configurations: CONFIGS=file.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-results/validation}
L=${LAVIT:-${CARGO_TARGET_DIR:-$HOME/.cache/lavit-rs/target}/debug/lavit}
mkdir -p "$RUNS"
# name | flags (on top of the defaults of the binary that runs them)
configs=${CONFIGS:-scripts/validation-configs.txt}
grep -v '^#' "$configs" | grep -v '^\s*$' | while IFS='|' read -r name flags; do
  name=$(echo $name)
  [ -f "$RUNS/$name/seeds.json" ] && continue
  echo "$name|$flags"
done | xargs -P 2 -I{} bash -c '
  line="{}"; name=${line%%|*}; flags=${line#*|}
  echo "$(date +%T) start $name: $flags"
  '"$L"' --threads 1 demo --seeds 0,1,2 --eval-split val --parallel 1 \
    --out '"$RUNS"'/$name $flags > '"$RUNS"'/$name.log 2>&1 \
    && echo "$(date +%T) done $name" || echo "$(date +%T) FAILED $name"
'
python3 scripts/sweep_table.py "$RUNS" > "$RUNS/sweep.md"
