#!/usr/bin/env bash
# Rebuilds the shipped synthetic-task models (assets/synthetic/tokenizer.json, teacher/,
# student-base/, student-lavit/) from scratch with this project's own commands, CPU only.
# Measured on 2 cores: the teacher ~4 h, the student base ~15 min (the two run side by side,
# one thread each). Results are deterministic for a given CPU, backend and thread count.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/lavit-rs/target}"
cargo build --workspace
L="$CARGO_TARGET_DIR/debug/lavit"
W=runs/assets
mkdir -p "$W"

# Tokenizer and data: questions (balanced over every type's answers) and scene descriptions
# (size, colour, kind and 3 × 3 location of every object).
$L task-tokenizer --out assets/synthetic/tokenizer.json
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

# Teacher (questions + descriptions, vision trained too) and student base (descriptions only),
# side by side on one thread each.
$L init --config assets/synthetic/teacher-config.json --tokenizer assets/synthetic/tokenizer.json --out $W/teacher-init --seed 1
$L init --config assets/synthetic/student-config.json --tokenizer assets/synthetic/tokenizer.json --out $W/student-init --seed 2
$L --threads 1 train --student $W/teacher-init --data $W/mix.json --images $W --out $W/teacher-run \
  --steps 15000 --lr 1e-3 --warmup 300 --min-lr-ratio 0.05 --weight-decay 0.01 --grad-accum 8 \
  --checkpoint-every 1000 --seed 1 --train-vision true --export-dtype f16 &
$L --threads 1 train --student $W/student-init --data $W/describe/train.json --images $W/describe/images --out $W/student-run \
  --steps 3000 --lr 2e-3 --warmup 100 --min-lr-ratio 0.1 --weight-decay 0.01 --grad-accum 8 \
  --checkpoint-every 500 --seed 2 --train-vision true --export-dtype f16
wait

rm -rf assets/synthetic/teacher assets/synthetic/student-base
cp -r $W/teacher-run/final assets/synthetic/teacher
cp -r $W/student-run/final assets/synthetic/student-base
# Held-out accuracy of the teacher per question type (the numbers in README.md).
$L eval --model assets/synthetic/teacher --bench synthetic --data-root $W/qa --out $W/teacher-eval.jsonl

# The students of the browser demo (web-demo/): the `lavit` and `baseline` students of the
# default demo run (seed 0), written in f16.
$L demo --out $W/demo
rm -rf assets/synthetic/student-lavit assets/synthetic/student-baseline
$L export --model $W/demo/students/lavit/final --out assets/synthetic/student-lavit --dtype f16
$L export --model $W/demo/students/baseline/final --out assets/synthetic/student-baseline --dtype f16
