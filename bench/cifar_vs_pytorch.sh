#!/usr/bin/env bash
# The cifar app's default run (ResNet-20, 30 epochs cosine, batch 128, seed 1) against the
# same recipe in PyTorch (bench/cifar_pytorch.py, Debian's python3-torch and python3-pil), one
# after the other on the same data, then the per-epoch table (bench/cifar_curves.py).
# About two hours on a 2-core CPU.
# Usage: bench/cifar_vs_pytorch.sh [DATA_DIR] [OUT_DIR]   (data: scripts/get_data.sh cifar10)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-data/cifar10}
OUT=${2:-out/cifar_vs_pytorch}
BUILD=${BUILD_DIR:-build}
[ -x "$BUILD/apps/cifar" ] || { echo "build $BUILD/apps/cifar first (scripts/test.sh)"; exit 1; }
/usr/bin/python3 -c "import torch, PIL" 2>/dev/null ||
  { echo "needs python3-torch and python3-pil: apt-get install python3-torch python3-pil"; exit 1; }
mkdir -p "$OUT"
"$BUILD/apps/cifar" --data "$DATA" --out "$OUT/ember"
/usr/bin/python3 bench/cifar_pytorch.py "$DATA" "$OUT/pytorch.jsonl" --threads "$(nproc)" --checkpoint "$OUT/pytorch.pt"
/usr/bin/python3 bench/cifar_curves.py "$OUT/ember/metrics.jsonl" "$OUT/pytorch.jsonl"
