#!/usr/bin/env bash
# Work in progress (README, "The teacher: what it sees"): the reproducible route to a teacher
# for the vertical task — `--background zones --steps grounded --relation vertical` — from the
# shipped teacher (assets/synthetic/teacher, which REPRODUCE.sh rebuilds), vision tower trained
# throughout. Every stage is resumable: run the script again after an interruption.
#
#   stage 1  the shipped teacher, 10,000 steps on 24,000 questions + 12,000 scene descriptions
#            + 10,000 extra relation and count questions (lr 7e-4, cosine to 10 %)
#   stage 2  from stage 1's step-6,000 export, 8,000 steps on the same mix + 5,000 more relation
#            questions (lr 5e-4, cosine to 20 %)
#   stage 3  from stage 2's final export, the stage-2 mix at a constant lr 5e-4, exported every
#            1,000 steps; the teacher is the first export that reaches >= 95 % on every
#            question type of the held-out split (`lavit eval --bench synthetic --data-root $W/qa`)
#
# About 150 steps a minute on one core of this 2-core machine (one thread; the runs reported in
# the README used one thread, except stage 1's steps 3,000-10,000, which ran with two: the same
# recipe, not the same bits). Then a student base for the same scenes (REPRODUCE.sh's recipe on
# these descriptions). Nothing here is shipped until a teacher reaches >= 95 % on every type.
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
[ -f $W/extra2/train.json ] || $L synth --out $W/extra2 --n-train 25000 --n-test 10 --seed 404 $T
# mix.json (stage 1): qa + describe + the relation and count questions of extra;
# mix-rel.json (stages 2, 3): the same + the relation questions of extra2.
[ -f $W/mix-rel.json ] || python3 - "$W" <<'PY'
import json, random, sys
w = sys.argv[1]
def load(d, keep=None):
    rows = json.load(open(f"{w}/{d}/train.json"))
    rows = [r for r in rows if keep is None or r["qtype"] in keep]
    for r in rows: r["image"] = [f"{d}/images/" + r["image"][0]]; r["question_id"] = f"{d}-" + r["question_id"]
    return rows
qa, de, ex = load("qa"), load("describe"), load("extra", ("relation", "count"))
mix = qa + de + ex; random.Random(0).shuffle(mix)
json.dump(mix, open(f"{w}/mix.json", "w"))
qa, de, ex, ex2 = load("qa"), load("describe"), load("extra", ("relation", "count")), load("extra2", ("relation",))
mix = qa + de + ex + ex2; random.Random(1).shuffle(mix)
json.dump(mix, open(f"{w}/mix-rel.json", "w"))
PY
common="--weight-decay 0.01 --grad-accum 8 --checkpoint-every 250 --export-every 1000 --train-vision true"
resume() { [ -d "$1/checkpoint" ] && echo --resume || true; }
[ -d $W/teacher-1/final ] || $L --threads 1 train --student assets/synthetic/teacher --data $W/mix.json --images $W \
  --out $W/teacher-1 --steps 10000 --lr 7e-4 --warmup 200 --min-lr-ratio 0.1 --seed 7 $common $(resume $W/teacher-1)
[ -d $W/teacher-2/final ] || $L --threads 1 train --student $W/teacher-1/step-6000 --data $W/mix-rel.json --images $W \
  --out $W/teacher-2 --steps 8000 --lr 5e-4 --warmup 100 --min-lr-ratio 0.2 --seed 8 $common $(resume $W/teacher-2)
# Stage 3 runs to STAGE3_STEPS (default 30,000). Its learning rate is constant, so ending it
# early (STAGE3_STEPS=N, or an interruption) is the same run cut short; evaluate its exports as
# they appear (the loop at the end, in another shell) and stop once one passes.
[ -d $W/teacher-3/final ] || $L --threads 1 train --student $W/teacher-2/final --data $W/mix-rel.json --images $W \
  --out $W/teacher-3 --steps "${STAGE3_STEPS:-30000}" --lr 5e-4 --warmup 100 --min-lr-ratio 1.0 --seed 10 $common $(resume $W/teacher-3)
[ -d $W/student-init ] || $L init --config assets/synthetic/student-config.json --tokenizer assets/synthetic/tokenizer.json --out $W/student-init --seed 2
[ -d $W/student-run/final ] || $L --threads 1 train --student $W/student-init --data $W/describe/train.json \
  --images $W/describe/images --out $W/student-run --steps 3000 --lr 2e-3 --warmup 100 --min-lr-ratio 0.1 \
  --weight-decay 0.01 --grad-accum 8 --checkpoint-every 500 --seed 2 --train-vision true --export-dtype f16 \
  $(resume $W/student-run)
for e in $W/teacher-3/step-*; do
  [ -f "$e/eval.jsonl" ] || $L eval --model "$e" --bench synthetic --data-root $W/qa --out "$e/eval.jsonl"
done
