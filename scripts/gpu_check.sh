#!/usr/bin/env bash
# The GPU check (run it whenever an NVIDIA GPU is at hand, and commit the summary):
#  1. builds ember in its own build dir for this GPU's compute capability,
#  2. runs the `gpu` tests, then the whole suite,
#  3. reruns every *_gpu_test program under compute-sanitizer memcheck with the caching
#     allocator off (EMBER_CUDA_ALLOC=direct, so each buffer's real bounds are checked),
#  4. runs the bench/ programs (JSON output), then the data-parallel checks: NCCL in a world
#     of one, and mpirun -np <GPUs> (tests, NCCL bandwidth, DDP steps, mnist) with 2+ GPUs,
#  5. writes bench/results/YYYY-MM-DD-<gpu>.md (device, driver, CUDA, commit, test results,
#     benchmark figures and the issue's goals) and the JSON files beside it.
# Usage: scripts/gpu_check.sh [--no-bench] [--no-sanitizer] [--no-full-suite]
# Env: BUILD_DIR (default build-gpu), JOBS (default nproc), EMBER_BENCH_MAX_MB (see bench/README.md).
# Exits non-zero when there is no GPU, the build fails, a test or sanitizer run fails, gpu
# tests skip although nvidia-smi sees a GPU, or compute-sanitizer is missing (see --no-sanitizer).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

RUN_BENCH=1 RUN_SANITIZER=1 RUN_FULL=1
for arg in "$@"; do
  case "$arg" in
    --no-bench) RUN_BENCH=0 ;;
    --no-sanitizer) RUN_SANITIZER=0 ;;
    --no-full-suite) RUN_FULL=0 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "gpu_check: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done

die() {
  echo "gpu_check: ERROR: $*" >&2
  exit 1
}
log() { echo "gpu_check: $*"; }

# ---- 0. is there a GPU?
command -v nvidia-smi >/dev/null 2>&1 ||
  die "nvidia-smi not found: this check needs a machine with an NVIDIA GPU and its driver (use scripts/test.sh for the CPU suite)"
if ! nvidia-smi -L >/dev/null 2>&1; then
  die "nvidia-smi found no usable GPU (driver not loaded, or no device visible): $(nvidia-smi -L 2>&1 | head -1)"
fi
query() { nvidia-smi --query-gpu="$1" --format=csv,noheader 2>/dev/null | head -1 | sed 's/^ *//;s/ *$//'; }
GPU_NAME=$(query name)
COMPUTE_CAP=$(query compute_cap)       # e.g. "9.0"
DRIVER=$(query driver_version)
GPU_MEM=$(query memory.total)
ARCH=${COMPUTE_CAP//./}                 # e.g. "90"
[[ "$ARCH" =~ ^[0-9]+$ ]] || die "could not read the GPU's compute capability (nvidia-smi said '$COMPUTE_CAP')"
DRIVER_CUDA=$(nvidia-smi 2>/dev/null | sed -n 's/.*CUDA Version: *\([0-9.]*\).*/\1/p' | head -1)
log "GPU: $GPU_NAME (compute capability $COMPUTE_CAP, $GPU_MEM), driver $DRIVER"

# ---- 1. dependencies: install from Debian packages when apt works, else use what is there
need_setup=0
for tool in cmake c++; do command -v "$tool" >/dev/null 2>&1 || need_setup=1; done
[ -f /usr/include/gtest/gtest.h ] || need_setup=1
[ -f /usr/include/benchmark/benchmark.h ] || need_setup=1
if ((need_setup)); then
  if command -v apt-get >/dev/null 2>&1 && { [ "$(id -u)" -eq 0 ] || sudo -n true 2>/dev/null; }; then
    log "some dependencies are missing: trying scripts/setup.sh"
    scripts/setup.sh || log "WARNING: scripts/setup.sh failed (no network?); going on with what is installed"
  else
    log "WARNING: some dependencies are missing and apt-get cannot run here; going on with what is installed"
  fi
fi
command -v cmake >/dev/null 2>&1 || die "cmake is not installed and could not be installed"

NVCC=""
for c in "${CUDACXX:-}" "$(command -v nvcc 2>/dev/null)" /usr/local/cuda/bin/nvcc; do
  if [ -n "$c" ] && [ -x "$c" ]; then NVCC=$c; break; fi
done
[ -n "$NVCC" ] || die "no CUDA compiler: install the CUDA toolkit (nvcc) at /usr/local/cuda or set CUDACXX"
TOOLKIT=$("$NVCC" --version | sed -n 's/.*release \([0-9.]*\), V\([0-9.]*\).*/\2/p')
SANITIZER=""
for c in "$(command -v compute-sanitizer 2>/dev/null)" "$(dirname "$NVCC")/compute-sanitizer" \
         "$(dirname "$NVCC")/../compute-sanitizer/compute-sanitizer"; do
  if [ -n "$c" ] && [ -x "$c" ]; then SANITIZER=$c; break; fi
done

COMMIT=$(git rev-parse --short=12 HEAD 2>/dev/null || echo "${EMBER_COMMIT:-unknown}")
if git rev-parse HEAD >/dev/null 2>&1 && [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
  COMMIT="$COMMIT (with uncommitted changes)"
fi

DATE=$(date +%Y-%m-%d)
SLUG=$(echo "$GPU_NAME" | tr '[:upper:]' '[:lower:]' | sed 's/[^a-z0-9]\+/-/g;s/^-//;s/-$//')
RESULTS=bench/results
OUTDIR=$RESULTS/$DATE-$SLUG
SUMMARY=$RESULTS/$DATE-$SLUG.md
BUILD=${BUILD_DIR:-build-gpu}
JOBS=${JOBS:-$(nproc)}
LOGS=$BUILD/gpu_check
mkdir -p "$OUTDIR" "$LOGS"
FAILED=()

# ---- 2. build for this GPU
GEN=()
command -v ninja >/dev/null 2>&1 && GEN=(-G Ninja)
LAUNCH=()
command -v ccache >/dev/null 2>&1 &&
  LAUNCH=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache)
BENCH_OPT=-DEMBER_BUILD_BENCH=ON
if ((RUN_BENCH)) && [ ! -f /usr/include/benchmark/benchmark.h ] && [ ! -f /usr/local/include/benchmark/benchmark.h ]; then
  log "WARNING: Google Benchmark is not installed: benchmarks skipped"
  BENCH_OPT=-DEMBER_BUILD_BENCH=OFF
  RUN_BENCH=0
  BENCH_NOTE="not run: Google Benchmark is not installed"
fi
((RUN_BENCH)) || BENCH_OPT=-DEMBER_BUILD_BENCH=OFF
log "configuring $BUILD (CMAKE_CUDA_ARCHITECTURES=$ARCH)"
if ! cmake -S . -B "$BUILD" "${GEN[@]}" -DCMAKE_BUILD_TYPE=Release -DEMBER_CUDA=ON \
     -DCMAKE_CUDA_COMPILER="$NVCC" -DCMAKE_CUDA_ARCHITECTURES="$ARCH" "$BENCH_OPT" \
     "${LAUNCH[@]}" >"$LOGS/configure.log" 2>&1; then
  tail -30 "$LOGS/configure.log" >&2
  die "configure failed (log: $LOGS/configure.log)"
fi
log "building with $JOBS jobs"
# Keep going past a failing target (a bench that needs an op not merged yet), so every test
# that does build still runs; the failure is reported and fails the check.
KEEP_GOING=(-- -k 0)
[ ${#GEN[@]} -eq 0 ] && KEEP_GOING=(-- -k)
BUILD_STATUS=PASS
if ! cmake --build "$BUILD" -j "$JOBS" "${KEEP_GOING[@]}" >"$LOGS/build.log" 2>&1; then
  BUILD_STATUS="FAIL (see $LOGS/build.log)"
  FAILED+=("build")
  grep -E "error|FAILED" "$LOGS/build.log" | head -20 >&2
  log "WARNING: the build failed; running what was built"
fi

# ---- 3. tests
ctest_line() { grep -E "tests passed|tests failed" "$1" | tail -1; }
skips() { grep -cE "\[  SKIPPED \] [A-Za-z0-9_./]+ \([0-9]+ ms\)" "$1" 2>/dev/null || true; }
log "running the gpu tests"
GPU_STATUS=PASS
if ! ctest --test-dir "$BUILD" -L gpu --output-on-failure -V >"$LOGS/ctest_gpu.log" 2>&1; then
  GPU_STATUS=FAIL
  FAILED+=("gpu tests")
fi
GPU_LINE=$(ctest_line "$LOGS/ctest_gpu.log")
GPU_SKIPS=$(skips "$LOGS/ctest_gpu.log")
[ -n "$GPU_LINE" ] || { GPU_STATUS=FAIL; GPU_LINE="no gpu tests ran"; FAILED+=("gpu tests missing"); }
if [ "${GPU_SKIPS:-0}" != 0 ]; then
  # nvidia-smi sees a GPU but ember's CUDA runtime does not (driver older than the toolkit?).
  GPU_STATUS="FAIL ($GPU_SKIPS skipped although nvidia-smi lists a GPU)"
  FAILED+=("gpu tests skipped")
fi
log "gpu tests: $GPU_STATUS — $GPU_LINE (skipped: ${GPU_SKIPS:-0})"

FULL_STATUS="not run" FULL_LINE=""
if ((RUN_FULL)); then
  log "running the full suite"
  FULL_STATUS=PASS
  if ! ctest --test-dir "$BUILD" -j "$JOBS" --output-on-failure >"$LOGS/ctest_all.log" 2>&1; then
    FULL_STATUS=FAIL
    FAILED+=("full suite")
  fi
  FULL_LINE=$(ctest_line "$LOGS/ctest_all.log")
  log "full suite: $FULL_STATUS — $FULL_LINE"
fi

# ---- 4. compute-sanitizer memcheck on the gpu test programs
SAN_ROWS=()
if ((RUN_SANITIZER)); then
  if [ -z "$SANITIZER" ]; then
    SAN_ROWS+=("| (all) | FAIL: compute-sanitizer not found next to $NVCC (install the toolkit's sanitizer or pass --no-sanitizer) |")
    FAILED+=("compute-sanitizer missing")
    log "ERROR: compute-sanitizer not found: memcheck cannot run (pass --no-sanitizer to skip it)"
  else
    for bin in "$BUILD"/tests/*_gpu_test; do
      [ -x "$bin" ] || continue
      name=$(basename "$bin")
      log "compute-sanitizer memcheck: $name"
      # API errors are the tests' business (the OOM test provokes one on purpose).
      if EMBER_CUDA_ALLOC=direct "$SANITIZER" --tool memcheck --error-exitcode 99 \
           --report-api-errors no "$bin" >"$LOGS/memcheck_$name.log" 2>&1; then
        status=PASS
      else
        status="FAIL (exit $?)"
        FAILED+=("memcheck $name")
      fi
      errs=$(sed -n 's/.*ERROR SUMMARY: \([0-9]*\) error.*/\1/p' "$LOGS/memcheck_$name.log" | tail -1)
      SAN_ROWS+=("| $name | $status, ${errs:-?} errors |")
    done
    [ ${#SAN_ROWS[@]} -gt 0 ] || SAN_ROWS+=("| (none) | no *_gpu_test programs were built |")
  fi
fi

# ---- 5. benchmarks
BENCH_RAN=()
if ((RUN_BENCH)); then
  for bin in "$BUILD"/bench/bench_*; do
    [ -x "$bin" ] || continue
    name=$(basename "$bin")
    log "benchmark: $name"
    if "$bin" --benchmark_out="$OUTDIR/$name.json" --benchmark_out_format=json \
         >"$LOGS/$name.log" 2>&1; then
      BENCH_RAN+=("$name")
    else
      FAILED+=("benchmark $name")
      log "WARNING: $name failed (log: $LOGS/$name.log)"
    fi
  done
  [ ${#BENCH_RAN[@]} -gt 0 ] || BENCH_NOTE="no bench program was built or ran (see $LOGS/build.log)"
fi

# ---- 5b. data parallel on the GPU(s). A world of one runs NCCL in dist_gpu_test (one of
# the gpu tests above; rerun here to record it) and in bench_allreduce/bench_ddp (the
# benchmarks above). With several GPUs: mpirun -np <GPUs> of the multi-rank proofs
# (dist_mpi_test, NCCL cases included), NCCL allreduce bandwidth, DDP step times and a
# one-epoch mnist run. tests/dist/run_mpi.sh adds the flags containers need.
NGPU=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU')
DIST_ROWS=()
run_dist() {  # label, log name, command...
  local label=$1 name=$2
  shift 2
  log "data parallel: $label"
  if "$@" >"$LOGS/dist_$name.log" 2>&1; then
    DIST_ROWS+=("| $label | PASS |")
  else
    local rc=$?
    if [ "$rc" = 77 ]; then
      DIST_ROWS+=("| $label | SKIPPED: $(head -1 "$LOGS/dist_$name.log") |")
    else
      DIST_ROWS+=("| $label | FAIL (exit $rc, log $LOGS/dist_$name.log) |")
      FAILED+=("data parallel: $label")
    fi
  fi
}
if [ -x "$BUILD/tests/dist_gpu_test" ]; then
  run_dist "NCCL, world of 1: dist_gpu_test" gpu_test "$BUILD/tests/dist_gpu_test"
else
  DIST_ROWS+=("| NCCL, world of 1 | FAIL: dist_gpu_test was not built |")
  FAILED+=("dist_gpu_test missing")
fi
MNIST_DATA=""
for d in data/mnist ../shared/data/mnist; do [ -d "$d" ] && MNIST_DATA=$d && break; done
if [ "$NGPU" -ge 2 ]; then
  if [ -x "$BUILD/tests/dist_mpi_test" ]; then
    run_dist "mpirun -np $NGPU dist_mpi_test (NCCL + MPI proofs)" mpi_test \
      tests/dist/run_mpi.sh "$NGPU" "$BUILD/tests/dist_mpi_test"
  else
    DIST_ROWS+=("| mpirun -np $NGPU | FAIL: dist_mpi_test was not built (no MPI?) |")
    FAILED+=("dist_mpi_test missing")
  fi
  if ((RUN_BENCH)) && [ -x "$BUILD/bench/bench_allreduce" ]; then
    run_dist "mpirun -np $NGPU bench_allreduce (NCCL)" bench_allreduce \
      tests/dist/run_mpi.sh "$NGPU" "$BUILD/bench/bench_allreduce" --benchmark_filter=nccl \
      --benchmark_out="$OUTDIR/bench_allreduce_np$NGPU.json" --benchmark_out_format=json
    run_dist "mpirun -np $NGPU bench_ddp (cuda)" bench_ddp \
      tests/dist/run_mpi.sh "$NGPU" "$BUILD/bench/bench_ddp" --benchmark_filter=cuda \
      --benchmark_out="$OUTDIR/bench_ddp_np$NGPU.json" --benchmark_out_format=json
  fi
  if [ -n "$MNIST_DATA" ] && [ -x "$BUILD/apps/mnist" ]; then
    run_dist "mpirun -np $NGPU mnist, 1 epoch" mnist \
      tests/dist/run_mpi.sh "$NGPU" "$BUILD/apps/mnist" --epochs 1 --batch-size 64 --data "$MNIST_DATA" \
      --out "$LOGS/mnist_np$NGPU"
    [ -f "$LOGS/mnist_np$NGPU/metrics.jsonl" ] &&
      DIST_ROWS+=("| mnist metrics (np $NGPU) | \`$(tail -1 "$LOGS/mnist_np$NGPU/metrics.jsonl")\` |")
  fi
else
  DIST_ROWS+=("| several ranks | not run: $NGPU GPU (NCCL needs one GPU per rank) |")
fi

# ---- 6. the summary
bench_tables() {
  command -v python3 >/dev/null 2>&1 || {
    echo "(python3 not found: see the JSON files in $OUTDIR)"
    return
  }
  python3 - "$OUTDIR" <<'PY'
import glob, json, os, re, sys

outdir = sys.argv[1]
rows, by_key = [], {}
for path in sorted(glob.glob(os.path.join(outdir, "*.json"))):
    with open(path) as f:
        data = json.load(f)
    for b in data.get("benchmarks", []):
        if b.get("run_type") == "aggregate":
            continue
        name = re.sub(r"/real_time$", "", b["name"])
        parts = name.split("/")  # op/device/arg:value
        op, dev, arg = parts[0], parts[1], parts[2] if len(parts) > 2 else ""
        size = int(arg.split(":")[1]) if ":" in arg else 0
        gbs = b.get("bytes_per_second", 0) / 1e9
        tfl = b.get("FLOP/s", 0) / 1e9
        rows.append((os.path.basename(path)[:-5], op, dev, arg, b["real_time"], b["time_unit"], gbs, tfl))
        by_key[(op, dev, size)] = (gbs, tfl)

def human(arg):
    k, _, v = arg.partition(":")
    if k == "bytes":
        v = int(v)
        for unit in ("B", "KiB", "MiB", "GiB"):
            if v < 1024:
                return f"{v} {unit}"
            v //= 1024
    return arg.replace(":", " = ")

print("| program | benchmark | device | size | time | GB/s | GFLOP/s |")
print("| --- | --- | --- | --- | ---: | ---: | ---: |")
for prog, op, dev, arg, t, unit, gbs, tfl in rows:
    g = f"{gbs:.1f}" if gbs else ""
    f = f"{tfl:.1f}" if tfl else ""
    print(f"| {prog} | {op} | {dev} | {human(arg)} | {t:.1f} {unit} | {g} | {f} |")

print("\n### Goals (issue 2)\n")
big = 64 << 20
refs = {s: v[0] for (op, dev, s), v in by_key.items() if op == "memcpy_d2d_reference" and s >= big}
if refs:
    for op in ("add_f32", "relu_f32", "sum_f32", "clone_f32"):
        for s in sorted(refs):
            if (op, "cuda", s) in by_key:
                r = by_key[(op, "cuda", s)][0] / refs[s]
                ok = "meets" if r >= 0.9 else "BELOW"
                print(f"- {op} at {s >> 20} MiB: {r * 100:.0f}% of device-to-device memcpy "
                      f"({by_key[(op, 'cuda', s)][0]:.0f} vs {refs[s]:.0f} GB/s): {ok} the 90% goal")
else:
    print("- elementwise/reduce vs memcpy: no CUDA memcpy reference at >= 64 MiB was measured")
cub = {s: v[1] for (op, dev, s), v in by_key.items() if op == "cublas_sgemm_reference"}
if cub:
    for s in sorted(cub):
        if ("matmul_f32", "cuda", s) in by_key and cub[s] > 0:
            r = by_key[("matmul_f32", "cuda", s)][1] / cub[s]
            ok = "meets" if r >= 0.95 else "BELOW"
            print(f"- matmul n={s}: {r * 100:.0f}% of raw cublasSgemm "
                  f"({by_key[('matmul_f32', 'cuda', s)][1]:.0f} vs {cub[s]:.0f} GFLOP/s): {ok} the 95% goal")
else:
    print("- matmul vs cuBLAS: no cublas_sgemm_reference was measured")
PY
}

{
  echo "# GPU check: $GPU_NAME, $DATE"
  echo
  echo "| | |"
  echo "| --- | --- |"
  echo "| device | $GPU_NAME (compute capability $COMPUTE_CAP, $GPU_MEM) |"
  echo "| driver | $DRIVER (driver CUDA ${DRIVER_CUDA:-?}) |"
  echo "| CUDA toolkit | nvcc $TOOLKIT ($NVCC) |"
  echo "| commit | $COMMIT |"
  echo "| build | Release, CMAKE_CUDA_ARCHITECTURES=$ARCH, $BUILD: $BUILD_STATUS |"
  echo "| host | $(nproc) CPU threads, $(uname -sr) |"
  echo
  echo "## Tests"
  echo
  echo "| run | result |"
  echo "| --- | --- |"
  echo "| \`ctest -L gpu\` | $GPU_STATUS: $GPU_LINE (gtest skips: ${GPU_SKIPS:-0}) |"
  echo "| full suite (\`ctest\`) | $FULL_STATUS${FULL_LINE:+: $FULL_LINE} |"
  if ((RUN_SANITIZER)); then
    echo
    echo "compute-sanitizer --tool memcheck, EMBER_CUDA_ALLOC=direct:"
    echo
    echo "| program | result |"
    echo "| --- | --- |"
    printf '%s\n' "${SAN_ROWS[@]}"
  fi
  echo
  echo "## Data parallel (NCCL), $NGPU GPU(s)"
  echo
  echo "| run | result |"
  echo "| --- | --- |"
  printf '%s\n' "${DIST_ROWS[@]}"
  echo
  echo "## Benchmarks"
  echo
  if ((RUN_BENCH)) && [ ${#BENCH_RAN[@]} -gt 0 ]; then
    echo "JSON: \`$OUTDIR/\`. CPU sizes are capped (bench/README.md); GPU waits for its stream in every iteration."
    echo
    bench_tables
  else
    echo "${BENCH_NOTE:-not run (--no-bench)}"
  fi
  if [ ${#FAILED[@]} -gt 0 ]; then
    echo
    echo "## Failures"
    echo
    printf -- '- %s\n' "${FAILED[@]}"
    echo
    echo "Logs were in \`$LOGS/\` on the machine that ran the check."
  fi
} >"$SUMMARY"

log "summary written to $SUMMARY"
if [ ${#FAILED[@]} -gt 0 ]; then
  echo "gpu_check: FAILED: ${FAILED[*]}" >&2
  exit 1
fi
log "all checks passed"
