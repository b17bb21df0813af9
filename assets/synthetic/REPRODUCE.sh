#!/usr/bin/env bash
# Rebuilds the shipped synthetic-task models (assets/synthetic/tokenizer.json, teacher/,
# student-base/, student-lavit/, student-baseline/) from scratch with this project's own
# commands, CPU only: stage 0, a teacher of the plain task (noise background, short steps,
# left/right; ~4 h on one core), then REPRODUCE-vertical.sh's four stages on the shipped task
# (assets/synthetic/task.json; ~3.5 h) and its student base, then the demo's two students.
# Results are deterministic for a given CPU, backend and thread count. The shipped teacher
# descends from the stage 0 committed at dc58e23; `lavit init` has drawn its random weights
# differently since 456489c, so on this commit stage 0 starts elsewhere and the route after it
# is the same recipe, not the same weights (REPRODUCE-vertical.sh alone starts from dc58e23's).
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/lavit-rs/target}"
cargo build --workspace
L="$CARGO_TARGET_DIR/debug/lavit"
W=runs/assets
mkdir -p "$W"

# Tokenizer and data: questions (balanced over every type's answers) and scene descriptions
# (size, colour, kind and 3 × 3 location of every object).
# The shipped tokenizer (397 tokens) was made by `lavit task-tokenizer` at dc58e23; today's
# generator writes more kinds of answers, and the same command would make 412 tokens.
git show dc58e23:assets/synthetic/tokenizer.json > assets/synthetic/tokenizer.json
$L synth --out $W/qa --n-train 24000 --n-test 1000 --seed 101
$L synth --describe --out $W/describe --n-train 12000 --n-test 100 --seed 202
python3 - "$W" <<'PY'
import json, random, sys
w = sys.argv[1]
qa = json.load(open(f"{w}/qa/train.json")); de = json.load(open(f"{w}/describe/train.json"))
for r in qa: r["image"] = ["qa/images/" + r["image"][0]]; r["question_id"] = "qa-" + r["question_id"]
for r in de: r["image"] = ["describe/images/" + r["image"][0]]; r["question_id"] = "de-" + r["question_id"]
mix = qa + de; random.Random(0).shuffle(mix)
json.dump(mix, open(f"{w}/mix.json", "w"))
PY

# Stage 0: teacher of the plain task (questions + descriptions, vision trained too). (Until the
# vertical task shipped, a student base trained on these descriptions beside it was shipped
# too; the shipped one is now REPRODUCE-vertical.sh's, on the vertical task's scenes.)
$L init --config assets/synthetic/teacher-config.json --tokenizer assets/synthetic/tokenizer.json --out $W/teacher-init --seed 1
$L --threads 1 train --student $W/teacher-init --data $W/mix.json --images $W --out $W/teacher-run \
  --steps 15000 --lr 1e-3 --warmup 300 --min-lr-ratio 0.05 --weight-decay 0.01 --grad-accum 8 \
  --checkpoint-every 1000 --seed 1 --train-vision true --export-dtype f16

$L eval --model $W/teacher-run/final --bench synthetic --data-root $W/qa --out $W/teacher-eval.jsonl

# Stages 1-4 on the shipped task, and its student base.
START=$W/teacher-run/final bash assets/synthetic/REPRODUCE-vertical.sh
V=runs/assets-vertical
rm -rf assets/synthetic/teacher assets/synthetic/student-base
cp -r $V/teacher assets/synthetic/teacher
cp -r $V/student-run/final assets/synthetic/student-base

# The students of the browser demo (web-demo/): the `lavit` and `baseline` students of the
# default demo run (seed 0), written in f16.
$L demo --out $W/demo
rm -rf assets/synthetic/student-lavit assets/synthetic/student-baseline
$L export --model $W/demo/students/lavit/final --out assets/synthetic/student-lavit --dtype f16
$L export --model $W/demo/students/baseline/final --out assets/synthetic/student-baseline --dtype f16
