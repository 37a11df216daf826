#!/usr/bin/env bash
# Builds ember's libFuzzer targets (fuzz/: safetensors, training checkpoint, idx raw+gzip,
# CIFAR binary, image decode, YAML config, command line) with clang, ASan and UBSan, and runs
# each for SECONDS (default 30). CI (scripts/test.sh) runs it with a few seconds per target.
# Usage: scripts/fuzz.sh [SECONDS]     (FUZZ_BUILD_DIR, default build-fuzz; JOBS;
#                                       FUZZ_TARGETS="checkpoint_fuzz cli_fuzz" picks some)
# Seed corpora: tests/data/repro (the inputs of issue 15's defects), tests/data, a few real
# files from ../shared/data, what a test run left under the temp folder (ember_* dirs), and
# files the real writers produce (checkpoint, config and cli targets, EMBER_FUZZ_WRITE_SEEDS).
# The corpora grow under $FUZZ_BUILD_DIR/corpus/ from run to run.
# Findings (crash-*, leak-*, oom-*, timeout-*) land in $FUZZ_BUILD_DIR/findings/<target>/;
# each should become a regression test in tests/repro_test.cpp. Exit 1 if any target failed.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${1:-30}
BUILD=${FUZZ_BUILD_DIR:-build-fuzz}
JOBS=${JOBS:-$(nproc)}
CC=${CC_FUZZ:-clang-14}
CXX=${CXX_FUZZ:-clang++-14}
command -v "$CXX" >/dev/null || { echo "fuzz.sh: $CXX not found (apt-get install clang-14 libclang-rt-14-dev)"; exit 1; }
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$PWD}
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER="$CC" -DCMAKE_CXX_COMPILER="$CXX" \
  -DEMBER_CUDA=OFF -DEMBER_MPI=OFF -DEMBER_FUZZ=ON -DEMBER_BUILD_TESTS=OFF -DEMBER_BUILD_BENCH=OFF \
  -DEMBER_BUILD_APPS=ON "${launcher[@]}" >/dev/null
cmake --build "$BUILD" -j "$JOBS" --target fuzz_targets

data=${EMBER_DATA_DIR:-../shared/data}
tmp=${TMPDIR:-/tmp}
seed() {  # seed <target> <files...>: copies the existing ones into the target's corpus
  local dir="$BUILD/corpus/$1"; shift
  mkdir -p "$dir"
  for f in "$@"; do [ -f "$f" ] && cp -f "$f" "$dir/" 2>/dev/null || true; done
}
shopt -s nullglob
seed safetensors_fuzz tests/data/repro/st_* "$tmp"/ember_*/*.safetensors "$tmp"/ember_*/*.ckpt
seed checkpoint_fuzz tests/data/repro/ckpt_* "$tmp"/ember_*/*.ckpt
seed config_fuzz tests/data/repro/cfg_* "$tmp"/ember_*/args.yaml "$tmp"/ember_*/*/args.yaml
mkdir -p "$BUILD/corpus/cli_fuzz"
# Real files from the real writers: a checkpoint of the fuzzed trainer, args.yaml, command lines.
for t in checkpoint_fuzz config_fuzz cli_fuzz; do
  mkdir -p "$BUILD/corpus/$t"
  EMBER_FUZZ_WRITE_SEEDS="$BUILD/corpus/$t" "$BUILD/fuzz/$t" >/dev/null 2>&1 ||
    { echo "fuzz.sh: $t could not write its seeds"; exit 1; }
done
seed idx_fuzz tests/data/repro/idx_* "$data"/mnist/t10k-labels-idx1-ubyte* "$data"/fashion*/t10k-labels-idx1-ubyte*
# A small idx3 file: the header and two images of the real test set, raw and gzip; two
# CIFAR records (from the real binary when present, else synthetic).
python3 - "$data" "$BUILD/corpus" <<'PY' || true
import gzip, os, struct, sys
data, out = sys.argv[1], sys.argv[2]
for name in ('t10k-images-idx3-ubyte', 't10k-images-idx3-ubyte.gz'):
    src = os.path.join(data, 'mnist', name)
    if os.path.exists(src):
        b = (gzip.open if name.endswith('.gz') else open)(src, 'rb').read(16 + 2 * 784)
        small = b[:4] + struct.pack('>I', 2) + b[8:16] + b[16:16 + 2 * 784]
        open(out + '/idx_fuzz/two_images.idx3', 'wb').write(small)
        open(out + '/idx_fuzz/two_images.idx3.gz', 'wb').write(gzip.compress(small))
        break
os.makedirs(out + '/cifar_fuzz', exist_ok=True)
src = os.path.join(data, 'cifar10', 'cifar-10-batches-bin', 'test_batch.bin')
rec = open(src, 'rb').read(2 * 3073) if os.path.exists(src) else \
    bytes([3]) + bytes(range(256)) * 12 + bytes([7]) + bytes(3072)
open(out + '/cifar_fuzz/two_records.bin', 'wb').write(rec)
PY
# image_fuzz: the first byte picks the extension (0 jpg, 1 png, 2 bmp, 3 ppm, 4 pgm, 5 jpeg).
mkdir -p "$BUILD/corpus/image_fuzz"
for f in tests/data/repro/img_* tests/data/*.jpg tests/data/*.png; do
  case "$f" in
    *.jpg|*.jpeg) p='\x00' ;; *.png) p='\x01' ;; *.bmp) p='\x02' ;; *.ppm) p='\x03' ;; *.pgm) p='\x04' ;; *) continue ;;
  esac
  { printf "$p"; cat "$f"; } > "$BUILD/corpus/image_fuzz/$(basename "$f")"
done

failed=()
for t in ${FUZZ_TARGETS:-safetensors_fuzz checkpoint_fuzz idx_fuzz cifar_fuzz image_fuzz config_fuzz cli_fuzz}; do
  # The parsers print --help to stdout: closed (-close_fd_mask=1), stderr keeps the reports.
  extra=()
  case "$t" in config_fuzz|cli_fuzz) extra=(-close_fd_mask=1) ;; esac
  mkdir -p "$BUILD/corpus/$t" "$BUILD/findings/$t"
  echo "fuzz.sh: $t for ${SECONDS_EACH}s ($(ls "$BUILD/corpus/$t" | wc -l) corpus files)"
  # -rss_limit_mb/-malloc_limit_mb: a size field that makes a reader allocate past 2 GiB
  # before checking it against the file is a finding (issue 15: bound sizes by the file).
  if ! (cd "$BUILD/findings/$t" && ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=0 \
        UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        "../../fuzz/$t" -max_total_time="$SECONDS_EACH" ${FUZZ_SEED:+-seed=$FUZZ_SEED} -timeout=10 -rss_limit_mb=4096 -malloc_limit_mb=2048 \
        -max_len=65536 -print_final_stats=1 "${extra[@]}" "../../corpus/$t" 2>&1 | tail -n 25); then
    failed+=("$t")
  fi
done
if ((${#failed[@]})); then
  echo "fuzz.sh: findings in: ${failed[*]} (inputs under $BUILD/findings/)"
  exit 1
fi
echo "fuzz.sh: all targets ran ${SECONDS_EACH}s without a finding"
