#!/usr/bin/env bash
# The GPU figures in docs/performance.md: fitlab-bench on one GPU, fitlab and the plain loop on
# the same card in the same process. Usage: scripts/bench_gpu.sh [OUTPUT_DIR]
set -euo pipefail
out=${1:-bench-results}
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
python -c "import torch, lightning; print('torch', torch.__version__, 'lightning', lightning.__version__)" | tee -a "$out/gpu.txt"

# 1. The default model and batch on digits, trainer=gpu (bf16-mixed); also times fitlab-train.
python -m fitlab.bench --device gpu --precision bf16-mixed --out "$out/gpu_digits.json" \
  --run-overrides trainer=gpu
# 2. GPU-sized work: digits at 32x32, 20 copies of the training set, a wider CNN, batch 512.
wide=(--image-size 32 --train-copies 20 --channels 64 128 256 --batch-size 512 --epochs 8)
python -m fitlab.bench --device gpu --precision bf16-mixed "${wide[@]}" --skip-run \
  --out "$out/gpu_wide.json"
# 3. The same with torch.compile (model.compile=true) in both paths.
python -m fitlab.bench --device gpu --precision bf16-mixed "${wide[@]}" --compile --skip-run \
  --out "$out/gpu_wide_compile.json"
