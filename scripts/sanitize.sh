#!/usr/bin/env bash
# Sanitizer builds of the CPU suite (issue 15). CPU only (-DEMBER_CUDA=OFF: nvcc code is not
# instrumented), gcc by default (SAN_CC/SAN_CXX=clang-14/clang++-14 work too), -O1 -g1.
#
#   scripts/sanitize.sh asan [CTEST ARGS]   AddressSanitizer + UndefinedBehaviorSanitizer over
#                                           the whole CPU suite (build-asan; label cpu)
#   scripts/sanitize.sh tsan [CTEST ARGS]   ThreadSanitizer over the loader's workers, the
#                                           thread pool and the data-parallel tests (build-tsan)
#   scripts/sanitize.sh asan-ci [CTEST ARGS] what CI runs (scripts/test.sh): asan without the
#                                           end-to-end programs (the app, crash-safety and
#                                           launcher tests re-run training loops the other
#                                           tests cover piece by piece, and take half the
#                                           build and run time) and without install_example
#
# The *_gpu_test programs are not built (they would only skip without CUDA).
# Both run with EMBER_CPU_ALLOC=direct: the CPU caching allocator is off, so every tensor is
# its own allocation of exactly its size and ASan sees each buffer's real bounds. A
# sanitizer report fails the test that triggered it (halt_on_error; UBSan aborts). Extra
# arguments go to ctest (e.g. -R Loader). Environment: SAN_BUILD_DIR, JOBS, SAN_CTEST_J.
# Suppressions (each with its reason) are in scripts/sanitize/.
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:-asan}
shift || true
case "$kind" in
  asan|asan-ci) sanitize=address ;;
  tsan) sanitize=thread ;;
  *) echo "usage: scripts/sanitize.sh [asan|tsan] [ctest args...]"; exit 2 ;;
esac
BUILD=${SAN_BUILD_DIR:-build-${kind%-ci}}
JOBS=${JOBS:-$(nproc)}
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$PWD}
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_COMPILER="${SAN_CC:-gcc}" -DCMAKE_CXX_COMPILER="${SAN_CXX:-g++}" \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1" -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g1" \
  -DEMBER_CUDA=OFF -DEMBER_SANITIZE=$sanitize -DEMBER_BUILD_BENCH=OFF "${launcher[@]}" >/dev/null

supp=$PWD/scripts/sanitize
export EMBER_CPU_ALLOC=direct
mpi=0
grep -q "build tests/dist_mpi_test:" "$BUILD/build.ninja" && mpi=1  # EMBER_WITH_MPI (libopenmpi-dev found)
if [ "$kind" != tsan ]; then
  # Every CPU test program (tests/*_test.cpp but *_gpu_test), and what the tests run.
  targets=()
  for f in tests/*_test.cpp; do
    t=$(basename "$f" .cpp)
    case "$t" in *_gpu_test) continue ;; esac
    [ "$kind" = asan-ci ] && case "$t" in mnist_app_test|cifar_app_test|crash_safety_test|dist_launch_test) continue ;; esac
    targets+=("$t")
  done
  [ "$kind" = asan ] && targets+=(mnist cifar)
  ((mpi)) && targets+=(dist_mpi_test dist_sync_bn_test)
  # The same two programs under ember's own launcher over Gloo (dist_gloo_np2, dist_sync_bn_gloo_np2).
  grep -q "build tests/dist_launch:" "$BUILD/build.ninja" && targets+=(dist_launch)
  [ "$kind" = asan ] && ((mpi)) && targets+=(dist_fault)
  cmake --build "$BUILD" -j "$JOBS" --target "${targets[@]}"
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:halt_on_error=1:abort_on_error=0:detect_stack_use_after_return=0:strict_string_checks=1}
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
  export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$supp/lsan.supp:print_suppressions=0}
  tests=(-L cpu)
  [ "$kind" = asan-ci ] && tests+=(-E "^(MnistApp|CifarApp|CrashSafety|DistLaunch)[.]|^install_example$")
else
  # The programs TSan runs: the loader (prefetch workers), the thread settings, host sync,
  # the in-process data-parallel pieces (bucket allreduce overlapping backward), the
  # 2-process MPI tests (each rank's communication and its backward thread) and the
  # launcher tests (a rank killed or stalled; they run the mnist app).
  targets=(loader_test threads_test host_sync_test dist_test sync_batch_norm_test dist_launch_test mnist)
  ((mpi)) && targets+=(dist_mpi_test dist_sync_bn_test dist_fault)
  cmake --build "$BUILD" -j "$JOBS" --target "${targets[@]}"
  # OpenMP: Debian's libgomp is not built with TSan, so its barriers look like races on
  # every parallel loop (false positives). One OpenMP thread means no team is started; the
  # threads that remain are ember's own (loader workers, DDP, MPI's progress thread), which
  # is what this run checks. OpenBLAS likewise runs on the calling thread.
  export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
  export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1:suppressions=$supp/tsan.supp}
  # CpuThreads.SplitGemmMatchesOneThread is left out: it sets two OpenMP threads itself
  # (omp_set_num_threads), and TSan then reports libgomp's team handing the main thread's
  # stack variables to its worker (the barrier is invisible to TSan): a false positive.
  tests=(-R "^((DataLoader|Sampler|Dataset|CpuThreads|DeferredChecks|HostSyncCount|Dist[A-Za-z]*|SyncBatchNorm)[.]|dist_mpi_np2$|dist_sync_bn_np2$)"
         -E "^CpuThreads[.]SplitGemmMatchesOneThread$")
fi
cd "$BUILD"
start=$SECONDS
ctest --output-on-failure -j "${SAN_CTEST_J:-$JOBS}" "${tests[@]}" "$@"
echo "sanitize.sh: $kind suite passed ($((SECONDS - start)) s)"
