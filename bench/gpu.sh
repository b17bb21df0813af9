#!/usr/bin/env bash
# GPU side by side for the Qwen2.5-VL-3B shape (random weights): lavit on CUDA and on
# wgpu-Vulkan, PyTorch eager on CUDA, in one run (budget: 8 minutes). Results (JSON, the log,
# RESULTS.md with the card's name) go to the folder given as the argument.
#
#   bench/gpu.sh /tmp/gpu-results
#
# Needs: a CUDA driver, Vulkan ICD for the card, Rust, and a Python with bench/requirements.txt
# installed (PYTHON=...; default bench/.venv, created if the machine can reach PyPI).
# PEAK_TFLOPS (dense fp32 / tf32 peak of the card, default 67 = H100 SXM fp32) sets the MFU
# denominator.
set -euo pipefail
OUT=${1:?usage: bench/gpu.sh OUT_DIR}
cd "$(dirname "$0")/.."
source bench/shape.sh
mkdir -p "$OUT"
exec > >(tee "$OUT/log.txt") 2>&1
SHAPE=${SHAPE:-qwen2.5-vl-3b}
SIDE=${IMAGE_SIDE:-448}
ITERS=${ITERS:-5}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/lavit-rs/target}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/card.csv"
if [ -z "${PYTHON:-}" ]; then
  if [ ! -x bench/.venv/bin/python ]; then
    python3 -m venv bench/.venv && bench/.venv/bin/pip install -q -r bench/requirements.txt
  fi
  PYTHON=bench/.venv/bin/python
fi
timeout 300 cargo build --release -p lavit-cli --features cuda,vulkan
LAVIT="$CARGO_TARGET_DIR/release/lavit"
"$LAVIT" devices
run() { # tool backend workload
  local json="$OUT/$1-$SHAPE-$3.json"
  if [ "$1" = torch ]; then
    timeout 240 "$PYTHON" bench/reference.py --config "$(shape_config "$SHAPE")" --what "$3" \
      --image-side "$SIDE" --iters "$ITERS" --device cuda --json "$json" || echo "FAILED: $*"
  else
    timeout 240 "$LAVIT" bench --config "$SHAPE" --what "$3" --image-side "$SIDE" \
      --iters "$ITERS" --backend "$2" --json "$json" || echo "FAILED: $*"
  fi
}
for w in train extract generate; do
  run lavit cuda "$w"
  run torch cuda "$w"
done
mkdir -p "$OUT/vulkan"
for w in train extract generate; do
  SHAPE_OUT="$OUT/vulkan"
  timeout 240 "$LAVIT" bench --config "$SHAPE" --what "$w" --image-side "$SIDE" --iters "$ITERS" \
    --backend vulkan --json "$SHAPE_OUT/lavit-$SHAPE-$w.json" || echo "FAILED: vulkan $w"
  cp "$OUT/torch-$SHAPE-$w.json" "$SHAPE_OUT/" 2>/dev/null || true
done
"$PYTHON" bench/report.py "$OUT" --command "bench/gpu.sh" --title "GPU: lavit (CUDA) vs PyTorch eager (CUDA)" \
  > "$OUT/RESULTS-cuda.md"
"$PYTHON" bench/report.py "$OUT/vulkan" --command "bench/gpu.sh" \
  --title "GPU: lavit (wgpu-Vulkan) vs PyTorch eager (CUDA)" > "$OUT/RESULTS-vulkan.md"
"$PYTHON" - "$OUT" "${PEAK_TFLOPS:-67}" <<'PY'
import json, sys, glob
out, peak = sys.argv[1], float(sys.argv[2])
for p in sorted(glob.glob(f"{out}/**/lavit-*-train.json", recursive=True)):
    d = json.load(open(p))
    r = d["results"][0]
    tf = r["flops_per_step"] / r["median_s"] / 1e12
    print(f"{p}: {tf:.1f} TFLOP/s, MFU {tf / peak:.1%} of {peak} TFLOP/s ({d['device']})")
PY
cat "$OUT"/RESULTS-*.md
