#!/usr/bin/env bash
# GPU side by side for the Qwen2.5-VL-3B shape (random weights), in one short run: lavit on
# CUDA and on wgpu-Vulkan, PyTorch on CUDA with SDPA and with eager attention. Results (JSON,
# the log, RESULTS-*.md with the card's name and MFU) go to the folder given as the argument.
#
#   bench/gpu.sh /tmp/gpu-results                          # on a machine with an NVIDIA GPU
#   BACKEND=cpu SHAPE=tiny ITERS=1 bench/gpu.sh /tmp/g      # the same script, tested on a CPU
#
# Needs: Rust, a Python with bench/requirements.txt installed (PYTHON=...; default bench/.venv,
# created if the machine can reach PyPI); for BACKEND=cuda a CUDA driver and a Vulkan ICD for
# the card. PEAK_TFLOPS (the card's dense fp32 peak; default 67 = H100 SXM fp32, 60 for an
# H200's fp32 is close) is the MFU denominator; on BACKEND=cpu lavit reckons the CPU's peak.
set -euo pipefail
OUT=${1:?usage: bench/gpu.sh OUT_DIR}
cd "$(dirname "$0")/.."
source bench/shape.sh
mkdir -p "$OUT"
exec > >(tee "$OUT/log.txt") 2>&1
BACKEND=${BACKEND:-cuda}
SHAPE=${SHAPE:-qwen2.5-vl-3b}
SIDE=${IMAGE_SIDE:-448}
ITERS=${ITERS:-5}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/lavit-rs/target}
if [ -z "${PYTHON:-}" ]; then
  if [ ! -x bench/.venv/bin/python ]; then
    python3 -m venv bench/.venv && bench/.venv/bin/pip install -q -r bench/requirements.txt
  fi
  PYTHON=bench/.venv/bin/python
fi
if [ "$BACKEND" = cuda ]; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/card.csv"
  timeout 300 cargo build --release -p lavit-cli --features cuda,vulkan
  LAVIT="$CARGO_TARGET_DIR/release/lavit"
  PEAK=(--peak-gflops "$(awk "BEGIN{print ${PEAK_TFLOPS:-67} * 1000}")")
  TORCH_DEVICE=cuda
  SECOND=vulkan # lavit's other backend on the same card
else
  cargo build --workspace --bin lavit
  LAVIT="$CARGO_TARGET_DIR/debug/lavit"
  PEAK=()
  TORCH_DEVICE=cpu
  SECOND=""
fi
"$LAVIT" devices
lavit_run() { # backend workload out_dir
  mkdir -p "$3"
  timeout 240 "$LAVIT" bench --config "$SHAPE" --what "$2" --image-side "$SIDE" --iters "$ITERS" \
    --backend "$1" "${PEAK[@]}" --json "$3/lavit-$SHAPE-$2.json" || echo "FAILED: lavit $1 $2"
}
torch_run() { # attn workload out_dir
  mkdir -p "$3"
  timeout 240 "$PYTHON" bench/reference.py --config "$(shape_config "$SHAPE")" --what "$2" \
    --image-side "$SIDE" --iters "$ITERS" --device "$TORCH_DEVICE" --attn "$1" \
    --json "$3/torch-$SHAPE-$2.json" || echo "FAILED: torch $1 $2"
}
for w in train extract generate; do
  lavit_run "$BACKEND" "$w" "$OUT/sdpa"
  torch_run sdpa "$w" "$OUT/sdpa"
done
# PyTorch with eager attention beside the same lavit numbers (extraction is eager in both).
for w in train generate; do
  torch_run eager "$w" "$OUT/eager"
  cp "$OUT/sdpa/lavit-$SHAPE-$w.json" "$OUT/eager/" 2>/dev/null || true
done
if [ -n "$SECOND" ]; then
  for w in train extract generate; do
    lavit_run "$SECOND" "$w" "$OUT/$SECOND"
    cp "$OUT/sdpa/torch-$SHAPE-$w.json" "$OUT/$SECOND/" 2>/dev/null || true
  done
fi
# The 3B student's LoRA step at full depth — r = 16, only the latent tokens' embedding rows,
# the frozen base in bf16, gradient checkpointing — with the process's peak host RSS (printed
# by lavit) and, on CUDA, the card's peak memory in use (nvidia-smi every 100 ms; whole card).
lora_full_depth() {
  local mon=""
  if [ "$BACKEND" = cuda ]; then
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 >"$OUT/lora-memory.csv" &
    mon=$!
  fi
  timeout 300 "$LAVIT" bench --config "$SHAPE" --what train --lora-rank 16 --grad-checkpointing \
    --base-dtype bf16 --image-side "$SIDE" --iters "$ITERS" --backend "$BACKEND" "${PEAK[@]}" \
    --json "$OUT/lavit-$SHAPE-train-lora.json" || echo "FAILED: lavit LoRA step at full depth"
  if [ -n "$mon" ]; then
    kill "$mon" || true
    echo "LoRA step, full depth: peak device memory $(sort -n "$OUT/lora-memory.csv" | tail -1) MiB (nvidia-smi, whole card)"
  fi
}
lora_full_depth
# burn's collective all-reduce: two devices with half the batch each against one device
# (tests/tests/training.rs); an all-reduce over one device proves nothing, so it is skipped.
if [ "$BACKEND" = cuda ] && [ "$(nvidia-smi -L | wc -l)" -ge 2 ]; then
  LAVIT_COLLECTIVE_BACKEND=cuda timeout 300 cargo test --release --workspace \
    --features lavit-backends/cuda --test training collective -- --nocapture ||
    echo "FAILED: collective all-reduce check"
else
  echo "collective all-reduce check: skipped (needs two CUDA devices)"
fi
report() { # dir title
  "$PYTHON" bench/report.py "$1" --command "BACKEND=$BACKEND SHAPE=$SHAPE bench/gpu.sh" --title "$2"
}
report "$OUT/sdpa" "lavit ($BACKEND) vs PyTorch SDPA ($TORCH_DEVICE)" > "$OUT/RESULTS-$BACKEND-sdpa.md"
report "$OUT/eager" "lavit ($BACKEND) vs PyTorch eager ($TORCH_DEVICE)" > "$OUT/RESULTS-$BACKEND-eager.md"
if [ -n "$SECOND" ]; then
  report "$OUT/$SECOND" "lavit ($SECOND) vs PyTorch SDPA ($TORCH_DEVICE)" > "$OUT/RESULTS-$SECOND.md"
fi
cat "$OUT"/RESULTS-*.md
