#!/usr/bin/env bash
# lavit bench beside the PyTorch reference (HF transformers), on this machine, in one run:
# one process per (tool, shape, workload) so peak-memory readings do not mix, then
# bench/RESULTS.md from the JSON files (bench/report.py).
#
#   bench/run.sh                      # small shape, CPU, 448 px image
#   SHAPES="small 3b-d2v8" bench/run.sh   # and Qwen2.5-VL-3B widths, depth cut to 2 + 8
#   PYTHON=/path/to/python bench/run.sh
#   WORKLOADS=matmul SHAPES=3b-d2v8 bench/run.sh   # only the matrix products of a step
#   BLAS=1 bench/run.sh               # lavit with its matrix products on OpenBLAS
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/shape.sh
SHAPES=${SHAPES:-small}
SIDE=${IMAGE_SIDE:-448}
ITERS=${ITERS:-5}
BACKEND=${BACKEND:-cpu}
OUT=${OUT:-bench/out}
# matmul: each matrix product of a training step at the shape, timed alone (PyTorch times the
# shapes lavit's JSON lists).
WORKLOADS=${WORKLOADS:-train extract generate matmul}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/lavit-rs/target}

if [ -z "${PYTHON:-}" ]; then
  if [ ! -x bench/.venv/bin/python ]; then
    python3 -m venv bench/.venv
    bench/.venv/bin/pip install -q -r bench/requirements.txt
  fi
  PYTHON=bench/.venv/bin/python
fi
# The same build as `lavit demo` (dev profile: dependencies at opt-level 3); BLAS=1 builds the
# CPU backend's matrix products on the system's OpenBLAS (needs libopenblas-dev).
features=()
[ "${BLAS:-0}" = 1 ] && features=(--features lavit-backends/blas)
cargo build --workspace ${features[@]+"${features[@]}"}
LAVIT="$CARGO_TARGET_DIR/debug/lavit"
mkdir -p "$OUT"
THREADS=$(nproc)
for shape in $SHAPES; do
  for w in $WORKLOADS; do
    echo "== $shape $w: lavit ($BACKEND)"
    case "$shape" in tiny|small|qwen2.5-vl-*) cfg=$shape ;; *) cfg=$(shape_config "$shape") ;; esac
    "$LAVIT" bench --config "$cfg" --what "$w" --image-side "$SIDE" --iters "$ITERS" \
      --backend "$BACKEND" --json "$OUT/lavit-$shape-$w.json"
    echo "== $shape $w: pytorch"
    "$PYTHON" bench/reference.py --config "$(shape_config "$shape")" --what "$w" \
      --image-side "$SIDE" --iters "$ITERS" --threads "$THREADS" --json "$OUT/torch-$shape-$w.json" \
      --shapes-from "$OUT/lavit-$shape-$w.json"
  done
done
"$PYTHON" bench/report.py "$OUT" \
  --command "SHAPES=\"$SHAPES\" IMAGE_SIDE=$SIDE ITERS=$ITERS BACKEND=$BACKEND BLAS=${BLAS:-0} bench/run.sh" \
  > bench/RESULTS.md
cat bench/RESULTS.md
