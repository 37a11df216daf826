#!/usr/bin/env bash
# One LeNet epoch on MNIST, CPU: ember (build/apps/mnist) against PyTorch (Debian's
# python3-torch) with the same model, optimizer, batch and data, each at the thread count
# that is fastest for it. Prints both training times and their ratio.
# Usage: bench/lenet_vs_pytorch.sh [DATA_DIR] [LIMIT_TRAIN]   (build first: scripts/test.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data/mnist}
LIMIT=${2:-0}
BUILD=${BUILD_DIR:-build}
[ -x "$BUILD/apps/mnist" ] || { echo "build $BUILD/apps/mnist first (scripts/test.sh)"; exit 1; }
/usr/bin/python3 -c "import torch" 2>/dev/null || { echo "needs python3-torch: apt-get install python3-torch"; exit 1; }
NCPU=$(nproc)
best_pt=""; best_em=""
for t in $(seq 1 "$NCPU"); do
  pt=$(/usr/bin/python3 bench/lenet_pytorch.py "$DATA" "$t" "$LIMIT")
  echo "pytorch threads=$t: $pt"
  s=$(echo "$pt" | /usr/bin/python3 -c "import json,sys; print(json.load(sys.stdin)['train_seconds'])")
  if [ -z "$best_pt" ] || awk "BEGIN{exit !($s < $best_pt)}"; then best_pt=$s; fi
  out=$(mktemp -d)
  OMP_NUM_THREADS=$t "$BUILD/apps/mnist" --data "$DATA" --epochs 1 --device cpu --workers 1 \
    --limit-train "$LIMIT" --limit-test 1000 --out "$out" --log-interval 100000 >/dev/null
  em=$(/usr/bin/python3 -c "import json; r=[json.loads(l) for l in open('$out/metrics.jsonl')][-1]; n=r['train_images_per_second']; print(json.dumps({'framework':'ember','threads':$t,'images_per_second':n,'train_seconds':(${LIMIT} or 60000)/n,'train_loss':r['train_loss']}))")
  echo "ember   threads=$t: $em"
  s=$(echo "$em" | /usr/bin/python3 -c "import json,sys; print(json.load(sys.stdin)['train_seconds'])")
  if [ -z "$best_em" ] || awk "BEGIN{exit !($s < $best_em)}"; then best_em=$s; fi
  rm -rf "$out"
done
echo "best: ember ${best_em}s, pytorch ${best_pt}s, ratio ember/pytorch $(awk "BEGIN{printf \"%.3f\", $best_em/$best_pt}") (goal <= 0.7)"
