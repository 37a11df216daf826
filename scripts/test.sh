#!/usr/bin/env bash
# Sets up, builds and runs the whole test suite (the README's second command).
# CUDA is compiled and linked when nvcc is present; GPU tests skip visibly without a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
scripts/setup.sh
BUILD=${BUILD_DIR:-build}
# ccache keys on paths relative to the checkout, so clones in other folders share hits.
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$PWD}
JOBS=${JOBS:-$(nproc)}
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache ${CMAKE_ARGS:-}
cmake --build "$BUILD" -j "$JOBS"
cd "$BUILD"
ctest --output-on-failure -j "$JOBS" ${CTEST_ARGS:-}

# Any machine (issue 15): the numerics-heavy tests again with OpenBLAS forced onto other
# kernels (Debian's OpenBLAS is built with DYNAMIC_ARCH, so OPENBLAS_CORETYPE picks the
# kernel) and two OpenMP threads, so a result that depends on one machine's BLAS rounding or
# thread count fails here, not on a user's Xeon. SkylakeX (AVX-512) only where the CPU has it.
# SKIP_CORETYPES=1 skips this step.
if [ "${SKIP_CORETYPES:-0}" != 1 ]; then
  cores=(Nehalem Haswell)
  grep -qw avx512f /proc/cpuinfo 2>/dev/null && cores+=(SkylakeX)
  for core in "${cores[@]}"; do
    start=$SECONDS
    named=0
    for t in models_test nn_ops_test optim_test matmul_test determinism_test; do
      [ -x "tests/$t" ] || continue
      out=$(OPENBLAS_CORETYPE=$core OPENBLAS_VERBOSE=2 OMP_NUM_THREADS=2 "tests/$t" --gtest_brief=1 2>&1) || {
        echo "$out"; echo "test.sh: tests/$t failed with OPENBLAS_CORETYPE=$core OMP_NUM_THREADS=2"; exit 1; }
      # OpenBLAS (OPENBLAS_VERBOSE=2) names the kernel it chose when a program loads it.
      got=$(grep -i -m1 "core:" <<<"$out" || true)
      [ -z "$got" ] && continue
      named=1
      grep -qi "core: *$core" <<<"$got" || {
        echo "test.sh: OPENBLAS_CORETYPE=$core gave '$got' in tests/$t (not a DYNAMIC_ARCH OpenBLAS?)"; exit 1; }
    done
    ((named)) || echo "test.sh: warning: OpenBLAS never named its kernel; OPENBLAS_CORETYPE=$core may have had no effect"
    echo "test.sh: numerics tests pass with OPENBLAS_CORETYPE=$core, OMP_NUM_THREADS=2 ($((SECONDS - start)) s)"
  done
fi

# Reliability (issue 15), after the suite, each in its own build folder:
# - fuzzing: scripts/fuzz.sh builds the libFuzzer targets (clang-14, ASan+UBSan; build-fuzz)
#   and runs each of the 7 for FUZZ_SECONDS (default 10) from its seed corpus; a finding
#   (its input is kept under build-fuzz/findings/) fails the run. SKIP_FUZZ=1 skips it.
# - ASan+UBSan: scripts/sanitize.sh asan-ci (gcc; build-asan): the CPU suite but the
#   end-to-end app, crash-safety and launcher programs and install_example, with the caching
#   allocator off. SKIP_ASAN=1 skips it; `scripts/sanitize.sh asan` is the whole suite.
cd "$ROOT"
if [ "${SKIP_FUZZ:-0}" != 1 ]; then
  start=$SECONDS
  # A fixed seed: the same mutations on every run (a faster machine only gets further).
  FUZZ_SEED=${FUZZ_SEED:-1} JOBS=$JOBS scripts/fuzz.sh "${FUZZ_SECONDS:-10}"
  echo "test.sh: fuzz targets built and run ($((SECONDS - start)) s)"
fi
if [ "${SKIP_ASAN:-0}" != 1 ]; then
  start=$SECONDS
  JOBS=$JOBS scripts/sanitize.sh asan-ci
  echo "test.sh: ASan+UBSan suite built and run ($((SECONDS - start)) s)"
fi
