#!/usr/bin/env bash
# The main job: set up, build, fetch MNIST and train LeNet on it (reference script 001's
# defaults: 10 epochs, SGD lr 0.01 momentum 0.9 weight decay 5e-4, cosine, batch 64).
# Extra arguments go to the app, e.g. `scripts/train_mnist.sh --epochs 1 --device cpu`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
BUILD=${BUILD_DIR:-build}
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$PWD}
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache ${CMAKE_ARGS:-}
cmake --build "$BUILD" -j "$(nproc)" --target mnist
scripts/get_data.sh mnist data/mnist
exec "$BUILD/apps/mnist" --data data/mnist --out out/mnist "$@"
