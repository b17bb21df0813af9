#!/usr/bin/env bash
# Work in progress (README, "The teacher: what it sees"): a teacher for the vertical task —
# `--background zones --steps grounded --relation vertical` — fine-tuned from the shipped
# teacher (assets/synthetic/teacher, which REPRODUCE.sh rebuilds) on 24,000 questions, 12,000
# scene descriptions and 10,000 extra relation and count questions, vision tower trained.
# Resumable: run it again after an interruption. One thread; about 170 steps a minute on one
# core of this 2-core machine. Then a student base for the same scenes (REPRODUCE.sh's recipe
# on these descriptions). Nothing here is shipped until the teacher reaches >= 95 % on every
# question type of the held-out split (`lavit eval --bench synthetic --data-root $W/qa`).
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/lavit-rs/target}"
cargo build -p lavit-cli
L="$CARGO_TARGET_DIR/debug/lavit"
W=runs/assets-vertical
T="--background zones --steps grounded --relation vertical"
mkdir -p "$W"
[ -f $W/qa/train.json ] || $L synth --out $W/qa --n-train 24000 --n-test 1000 --seed 101 $T
[ -f $W/describe/train.json ] || $L synth --describe --out $W/describe --n-train 12000 --n-test 100 --seed 202 $T
[ -f $W/extra/train.json ] || $L synth --out $W/extra --n-train 25000 --n-test 10 --seed 303 $T
[ -f $W/mix.json ] || python3 - "$W" <<'PY'
import json, random, sys
w = sys.argv[1]
qa = json.load(open(f"{w}/qa/train.json")); de = json.load(open(f"{w}/describe/train.json"))
ex = [r for r in json.load(open(f"{w}/extra/train.json")) if r["qtype"] in ("relation", "count")]
for d, rows in (("qa", qa), ("describe", de), ("extra", ex)):
    for r in rows: r["image"] = [f"{d}/images/" + r["image"][0]]; r["question_id"] = f"{d}-" + r["question_id"]
mix = qa + de + ex; random.Random(0).shuffle(mix)
json.dump(mix, open(f"{w}/mix.json", "w"))
PY
$L --threads 1 train --student assets/synthetic/teacher --data $W/mix.json --images $W --out $W/teacher-run \
  --steps 10000 --lr 7e-4 --warmup 200 --min-lr-ratio 0.1 --weight-decay 0.01 --grad-accum 8 \
  --checkpoint-every 250 --export-every 1000 --seed 7 --train-vision true \
  $( [ -d $W/teacher-run/checkpoint ] && echo --resume )
[ -d $W/student-init ] || $L init --config assets/synthetic/student-config.json --tokenizer assets/synthetic/tokenizer.json --out $W/student-init --seed 2
[ -d $W/student-run/final ] || $L --threads 1 train --student $W/student-init --data $W/describe/train.json \
  --images $W/describe/images --out $W/student-run --steps 3000 --lr 2e-3 --warmup 100 --min-lr-ratio 0.1 \
  --weight-decay 0.01 --grad-accum 8 --checkpoint-every 500 --seed 2 --train-vision true --export-dtype f16 \
  $( [ -d $W/student-run/checkpoint ] && echo --resume )
$L eval --model $W/teacher-run/final --bench synthetic --data-root $W/qa --out $W/teacher-eval.jsonl
