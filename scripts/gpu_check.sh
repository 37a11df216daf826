#!/usr/bin/env bash
# The GPU check: one call that turns a GPU machine's few minutes into a committed summary.
#
#   scripts/gpu_check.sh --prepare        here, with network: gathers the kit (.gpu-kit/)
#   scripts/gpu_check.sh [--commit SHA]   on the GPU machine (or any machine with CUDA)
#   scripts/gpu_check.sh --dry-run        here: the same run from the kit alone, in a minimal
#                                         Debian root (no build dependencies, no GPU)
#
# The run builds ember for this GPU's architecture only (library, GPU tests, kernel
# benchmarks, the mnist app) and runs stages under one deadline, most valuable first:
# device facts, every *_gpu_test (in parallel, XML), kernel benchmarks (ratios to the
# device copy and to raw cuBLAS), compute-sanitizer memcheck, racecheck and synccheck, end to
# end against the machine's PyTorch (one LeNet MNIST epoch, the ResNet-20 training step).
# Each stage runs under `timeout`, is skipped when it no longer fits, and appends its verdict
# to the summary the moment it ends; an exit trap writes the stage table and packs the logs.
# Results: $OUT/<date>-<gpu>.md and $OUT/gpu_check_logs.tar.gz, or without $OUT
# bench/results/<date>-<gpu>.md (JSON in bench/results/<date>-<gpu>/, logs packed in the
# build folder).
#
# Dependencies: with the kit (.gpu-kit/deps.tar.gz, made by --prepare) and no GoogleTest on
# the machine, the kit is unpacked into /tmp/ember-gpu-kit and used (nothing goes into /);
# otherwise the system's packages (scripts/setup.sh installs them where apt-get works).
# cuDNN and NCCL are required (EMBER_CUDNN=ON, EMBER_NCCL=ON): they are looked for in the CUDA
# toolkit, then in the nvidia-* Python packages (python3 says where), and configure fails
# with the reason when they are in neither.
#
# Options:
#   --deadline S     seconds for the whole run (default 480; --dry-run: 7200)
#   --commit SHA     the commit being checked (the machine's copy may have no .git)
#   --arch NN        CUDA architecture when there is no GPU to ask (default 90)
#   --kit DIR        the kit folder (default .gpu-kit); --no-kit: system packages only
#   --no-bench --no-sanitizer --no-e2e    leave those stages out
#   --full-suite     also build everything and run the whole ctest suite (last stage)
#   --keep-build     (--dry-run) reuse the root's build folder instead of a clean build
#   --fake-gpu       (--dry-run) stand-ins for nvidia-smi and compute-sanitizer in the root, to
#                    walk the GPU branches of this script (the programs still find no GPU, so
#                    those stages fail: the point is the script's own paths); implies
#                    --keep-build; the summary stays in build-dryrun/
# Env: BUILD_DIR (build-gpu), JOBS (nproc), OUT, EMBER_DATA_DIR (MNIST idx files),
#      EMBER_GPU_KIT_DIR (where the kit is unpacked, /tmp/ember-gpu-kit),
#      EMBER_GPU_ROOT (--dry-run's minimal root, /var/cache/ember-gpu-root).
# Exit status: 0 when every stage that ran passed (or had no GPU), 1 otherwise, 2 usage.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
SRC=$PWD

MODE=run DEADLINE="" COMMIT_ARG="" ARCH_ARG="" KIT_SRC=$SRC/.gpu-kit USE_KIT=auto
RUN_BENCH=1 RUN_SAN=1 RUN_E2E=1 RUN_FULL=0 KEEP_BUILD=0 FAKE_GPU=0
while [ $# -gt 0 ]; do
  case "$1" in
    --prepare) MODE=prepare ;;
    --dry-run) MODE=dry-run ;;
    --deadline) DEADLINE=${2:?--deadline needs seconds}; shift ;;
    --deadline=*) DEADLINE=${1#*=} ;;
    --commit) COMMIT_ARG=${2:?--commit needs a value}; shift ;;
    --commit=*) COMMIT_ARG=${1#*=} ;;
    --arch) ARCH_ARG=${2:?--arch needs a value}; shift ;;
    --arch=*) ARCH_ARG=${1#*=} ;;
    --kit) KIT_SRC=$(cd "${2:?--kit needs a folder}" && pwd) || exit 2; USE_KIT=on; shift ;;
    --no-kit) USE_KIT=off ;;
    --no-bench) RUN_BENCH=0 ;;
    --no-sanitizer) RUN_SAN=0 ;;
    --no-e2e) RUN_E2E=0 ;;
    --full-suite) RUN_FULL=1 ;;
    --no-full-suite) RUN_FULL=0 ;;   # the default now; kept for old command lines
    --keep-build) KEEP_BUILD=1 ;;
    --fake-gpu) FAKE_GPU=1 KEEP_BUILD=1 ;;
    -h|--help) sed -n '2,/^# Exit status/p' "$0"; exit 0 ;;
    *) echo "gpu_check: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
  shift
done
[ -z "$DEADLINE" ] || [[ "$DEADLINE" =~ ^[0-9]+$ ]] || { echo "gpu_check: --deadline takes whole seconds" >&2; exit 2; }

log() { echo "gpu_check: $*"; }
human_size() { du -sh --apparent-size "$@" 2>/dev/null | cut -f1; }

# The Debian packages the build needs and the GPU machine lacks (find_package targets of
# CMakeLists.txt, cmake/EmberDeps.cmake, tests/, bench/, apps/; stb is header-only here).
# OpenMPI stays out: the kit build configures with EMBER_MPI=OFF.
KIT_PKGS=(
  libopenblas-dev libopenblas-pthread-dev libopenblas0-pthread libgfortran5 libquadmath0
  libgtest-dev libgmock-dev libbenchmark-dev libbenchmark1debian
  libyaml-cpp-dev libyaml-cpp0.7 libcli11-dev libspdlog-dev libspdlog1.10 libfmt-dev libfmt9
  nlohmann-json3-dev libstb-dev zlib1g-dev zlib1g
  libprotobuf-dev libprotobuf32 libprotobuf-lite32 protobuf-compiler libprotoc32
  libgloo-dev libgloo0 libhiredis0.14 libibverbs1 libnl-3-200 libnl-route-3-200
)

# ============================================================================ --prepare
prepare() {
  command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null ||
    { echo "gpu_check --prepare: needs apt-get and dpkg (Debian or Ubuntu)" >&2; return 1; }
  local stage
  stage=$(mktemp -d /tmp/ember-kit.XXXXXX) || return 1
  # shellcheck disable=SC2064
  trap "rm -rf '$stage'" RETURN
  mkdir -p "$stage/debs" "$stage/kit/prefix"
  chmod 777 "$stage/debs"   # apt's _apt user downloads into it
  log "downloading ${#KIT_PKGS[@]} Debian packages"
  if ! (cd "$stage/debs" && apt-get download -q "${KIT_PKGS[@]}" >"$stage/download.log" 2>&1); then
    log "apt-get download failed; running apt-get update once"
    apt-get update -qq >/dev/null 2>&1 || true
    (cd "$stage/debs" && apt-get download -q "${KIT_PKGS[@]}" >"$stage/download.log" 2>&1) ||
      { cat "$stage/download.log" >&2; echo "gpu_check --prepare: apt-get download failed" >&2; return 1; }
  fi
  local p=$stage/kit/prefix deb
  for deb in "$stage"/debs/*.deb; do
    dpkg -x "$deb" "$p" || { echo "gpu_check --prepare: dpkg -x $deb failed" >&2; return 1; }
    dpkg-deb -f "$deb" Package Version | paste -sd' ' >>"$stage/kit/PACKAGES"
  done
  local lib=$p/usr/lib/x86_64-linux-gnu ob=$p/usr/lib/x86_64-linux-gnu/openblas-pthread
  # Not needed: docs, static archives with a shared twin (OpenBLAS's is 58 MB), LAPACK, the
  # googletest sources, stb's compiled library (ember defines the implementation itself).
  rm -rf "$p/usr/share/doc" "$p/usr/share/man" "$p/usr/share/lintian" "$p/usr/src" \
    "$ob"/*.a "$ob"/liblapack* "$lib"/libz.a "$lib"/libyaml-cpp.a "$lib"/libstb.*
  # What update-alternatives would have made, relative so the kit works wherever it lies.
  ln -sfn openblas-pthread/libopenblas.so "$lib/libopenblas.so"
  ln -sfn openblas-pthread/libopenblas.so.0 "$lib/libopenblas.so.0"
  ln -sfn openblas-pthread/libblas.so.3 "$lib/libblas.so.3"
  ln -sfn x86_64-linux-gnu/openblas-pthread/cblas.h "$p/usr/include/cblas.h"
  # Absolute links (zlib1g-dev's libz.so -> /lib/...): point them inside the prefix.
  local l t
  while IFS= read -r l; do
    t=$(readlink "$l")
    if [ -e "$p$t" ]; then
      ln -sfn "$(realpath --relative-to="$(dirname "$l")" "$p$t")" "$l"
    fi
  done < <(find "$p" -type l -lname '/*')
  # cuDNN and NCCL headers, for a machine whose libraries (Python wheels) came without them.
  local cuda_inc=/usr/local/cuda/include
  if ls "$cuda_inc"/cudnn*.h >/dev/null 2>&1; then
    mkdir -p "$stage/kit/cuda-headers/cudnn/include" && cp "$cuda_inc"/cudnn*.h "$stage/kit/cuda-headers/cudnn/include/"
  fi
  if ls "$cuda_inc"/nccl*.h >/dev/null 2>&1; then
    mkdir -p "$stage/kit/cuda-headers/nccl/include" && cp "$cuda_inc"/nccl*.h "$stage/kit/cuda-headers/nccl/include/"
  fi
  {
    echo "ember GPU kit, made $(date -u +%Y-%m-%dT%H:%MZ) on $(. /etc/os-release && echo "$PRETTY_NAME")"
    echo "commit: $(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
    echo "unpacked size: $(human_size "$p")"
    [ -d "$stage/kit/cuda-headers" ] && echo "cuda-headers: from $cuda_inc ($(grep -h '#define CUDNN_MAJOR\|#define CUDNN_MINOR' "$cuda_inc/cudnn_version.h" 2>/dev/null | awk '{print $3}' | paste -sd.))"
  } >"$stage/kit/MANIFEST"
  mkdir -p "$KIT_SRC"
  tar -C "$stage/kit" -czf "$KIT_SRC/deps.tar.gz.tmp" . && mv "$KIT_SRC/deps.tar.gz.tmp" "$KIT_SRC/deps.tar.gz" || return 1
  cp "$stage/kit/MANIFEST" "$stage/kit/PACKAGES" "$KIT_SRC/"
  # MNIST for the LeNet stage (the idx files, gzip as published).
  local mn=""
  for d in "${EMBER_DATA_DIR:-}" data/mnist ../shared/data/mnist; do
    [ -n "$d" ] && [ -f "$d/train-images-idx3-ubyte.gz" ] && mn=$d && break
  done
  if [ -n "$mn" ]; then
    mkdir -p "$KIT_SRC/data/mnist"
    cp "$mn"/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz "$KIT_SRC/data/mnist/"
  else
    log "WARNING: no MNIST .gz files found (scripts/get_data.sh mnist): the LeNet stage will not run there"
  fi
  grep -qxF '/.gpu-kit/' .gitignore 2>/dev/null || log "WARNING: .gpu-kit/ is not in .gitignore"

  local tree_kb kit_kb
  tree_kb=$( (git ls-files -co --exclude-standard -z 2>/dev/null | xargs -0 -r du -k --apparent-size -c 2>/dev/null | tail -1 | cut -f1) || echo 0)
  kit_kb=$(du -sk --apparent-size "$KIT_SRC" | cut -f1)
  echo
  echo "kit: $KIT_SRC"
  echo "  deps.tar.gz  $(human_size "$KIT_SRC/deps.tar.gz") (unpacked $(human_size "$p"); $(wc -l <"$stage/kit/PACKAGES") packages)"
  [ -d "$KIT_SRC/data" ] && echo "  data/mnist   $(human_size "$KIT_SRC/data")"
  echo "  kit total    $((kit_kb / 1024)) MiB; working tree $((tree_kb / 1024)) MiB; together $(((kit_kb + tree_kb) / 1024)) MiB of the 64 MiB a call may send"
  echo
  echo "On the GPU machine (the device tool: run), one call:"
  echo "  command:   bash scripts/gpu_check.sh --commit $(git rev-parse --short=12 HEAD 2>/dev/null || echo SHA)$( [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ] && echo '-dirty') --deadline 480"
  echo "  timeout_s: 560"
  echo "  carry:     [\".gpu-kit\"]"
  echo "Results come back in \$OUT: <date>-<gpu>.md (commit it under bench/results/) and gpu_check_logs.tar.gz."
  echo "Proof without a GPU first: scripts/gpu_check.sh --dry-run"
}

# ============================================================================ --dry-run
# The same run, in a minimal Debian root that has only what the GPU machine has: a C++
# compiler, CMake, ninja, python3 and the CUDA toolkit (an overlay of /usr/local/cuda with
# cuDNN and NCCL removed), plus cuDNN and NCCL as a fake nvidia-* Python package holding only
# versioned library names, as PyTorch's wheels do. No GPU: the GPU stages say so.
dry_run() {
  [ "$(id -u)" -eq 0 ] || { echo "gpu_check --dry-run: needs root (debootstrap, mount, chroot)" >&2; return 1; }
  [ -f "$KIT_SRC/deps.tar.gz" ] || { echo "gpu_check --dry-run: no kit at $KIT_SRC: run scripts/gpu_check.sh --prepare first" >&2; return 1; }
  local base=${EMBER_GPU_ROOT:-/var/cache/ember-gpu-root}
  local root=$base/root cuda_real
  cuda_real=$(realpath /usr/local/cuda) || { echo "gpu_check --dry-run: no CUDA toolkit at /usr/local/cuda" >&2; return 1; }
  if [ ! -f "$base/.made" ]; then
    command -v debootstrap >/dev/null || apt-get install -y -qq debootstrap >/dev/null ||
      { echo "gpu_check --dry-run: apt-get install debootstrap failed" >&2; return 1; }
    # The mirror this machine's apt uses.
    local mirror
    mirror=$(grep -hE '^(URIs:|deb )' /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null |
      grep -m1 -oE 'https?://[^ ]*debian/?' || echo http://deb.debian.org/debian)
    log "making the minimal root $root (debootstrap --variant=minbase bookworm, $mirror; once)"
    rm -rf "$root" && mkdir -p "$base"
    debootstrap --variant=minbase --include=g++,cmake,ninja-build,python3 bookworm "$root" "$mirror" \
      >"$base/debootstrap.log" 2>&1 || { tail -20 "$base/debootstrap.log" >&2; return 1; }
    touch "$base/.made"
  fi
  local mounts=()
  # shellcheck disable=SC2317
  cleanup_mounts() {
    local i
    for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do umount "${mounts[i]}" 2>/dev/null || umount -l "${mounts[i]}" 2>/dev/null; done
    mounts=()
  }
  trap cleanup_mounts RETURN
  mount_into() {  # mount args..., target last
    local target=${*: -1}
    mkdir -p "$target" && mount "$@" && mounts+=("$target")
  }
  # The toolkit, without cuDNN and NCCL (an overlay whose upper layer deletes them).
  local ov=$base/cuda-overlay
  rm -rf "$ov" && mkdir -p "$ov/upper" "$ov/work"
  mkdir -p "$root/usr/local"
  [ -L "$root/usr/local/cuda" ] && rm -f "$root/usr/local/cuda"
  mount_into -t overlay overlay -o "lowerdir=$cuda_real,upperdir=$ov/upper,workdir=$ov/work" "$root/usr/local/cuda" ||
    { echo "gpu_check --dry-run: overlay mount of $cuda_real failed" >&2; return 1; }
  # Delete only inside the overlay (never in the real toolkit): check that it is mounted there.
  awk -v m="$root/usr/local/cuda" '$2 == m && $3 == "overlay" {f = 1} END {exit !f}' /proc/mounts ||
    { echo "gpu_check --dry-run: $root/usr/local/cuda is not the overlay: stopping" >&2; return 1; }
  find "$root/usr/local/cuda/" \( -name 'libcudnn*' -o -name 'libnccl*' -o -name 'cudnn*.h' -o -name 'nccl*.h' \) -exec rm -f {} + 2>/dev/null
  mount_into --bind /proc "$root/proc" && mount_into --bind /dev "$root/dev" ||
    { echo "gpu_check --dry-run: bind mounts failed" >&2; return 1; }
  # cuDNN and NCCL as pip wheels lay them out: versioned names only, headers beside.
  local py site
  py=$(chroot "$root" python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
  site=$root/usr/local/lib/python$py/dist-packages/nvidia
  rm -rf "$site" && mkdir -p "$site"/{cudnn,nccl}/{lib,include}
  local f
  for f in "$cuda_real"/lib*/libcudnn*.so.[0-9] "$cuda_real"/targets/*/lib/libcudnn*.so.[0-9]; do
    [ -e "$f" ] && [ ! -e "$site/cudnn/lib/$(basename "$f")" ] && cp -L "$f" "$site/cudnn/lib/"
  done
  for f in "$cuda_real"/lib*/libnccl*.so.[0-9] "$cuda_real"/targets/*/lib/libnccl*.so.[0-9]; do
    [ -e "$f" ] && [ ! -e "$site/nccl/lib/$(basename "$f")" ] && cp -L "$f" "$site/nccl/lib/"
  done
  cp -L "$cuda_real"/include/cudnn*.h "$site/cudnn/include/" 2>/dev/null
  cp -L "$cuda_real"/include/nccl*.h "$site/nccl/include/" 2>/dev/null
  # The working tree as the device tool sends it (tracked and untracked-not-ignored files,
  # no .git) plus the kit; the build folder stays between dry runs only with --keep-build.
  local tree=$root/work/ember
  mkdir -p "$tree"
  find "$tree" -mindepth 1 -maxdepth 1 ! -name build-gpu -exec rm -rf {} +
  ((KEEP_BUILD)) || rm -rf "$tree/build-gpu"
  git ls-files -co --exclude-standard -z | tar --null -T - -cf - | tar -C "$tree" -xf - ||
    { echo "gpu_check --dry-run: copying the tree failed" >&2; return 1; }
  cp -a "$KIT_SRC" "$tree/.gpu-kit"
  rm -rf "$root/work/out" "$root/tmp/ember-gpu-kit" && mkdir -p "$root/work/out"
  local fake_path=""
  if ((FAKE_GPU)); then
    fake_path=/opt/fakegpu/bin:
    mkdir -p "$root/opt/fakegpu/bin"
    cat >"$root/opt/fakegpu/bin/nvidia-smi" <<'SH'
#!/bin/sh
# A stand-in (gpu_check.sh --dry-run --fake-gpu): answers like one H200.
case "$1" in
  -L) echo "GPU 0: NVIDIA H200 FAKE (UUID: GPU-00000000)" ;;
  --query-gpu=*)
    out=""
    for f in $(echo "${1#--query-gpu=}" | tr ',' ' '); do
      case $f in
        name) v="NVIDIA H200 FAKE" ;; compute_cap) v=9.0 ;; driver_version) v=580.00 ;;
        memory.total) v="143771 MiB" ;; clocks.sm | clocks.max.sm) v="1980 MHz" ;; clocks.mem) v="3201 MHz" ;;
        persistence_mode) v=Enabled ;; *) v="[N/A]" ;;
      esac
      out="${out:+$out, }$v"
    done
    echo "$out" ;;
  *) echo "| NVIDIA-SMI 580.00    Driver Version: 580.00    CUDA Version: 13.0 |" ;;
esac
SH
    cat >"$root/opt/fakegpu/bin/compute-sanitizer" <<'SH'
#!/bin/sh
# A stand-in (gpu_check.sh --dry-run --fake-gpu): runs the program uninstrumented.
while [ $# -gt 0 ]; do case "$1" in --tool | --error-exitcode | --report-api-errors) shift 2 ;; *) break ;; esac; done
"$@"; rc=$?
echo "========= ERROR SUMMARY: 0 errors"
exit $rc
SH
    chmod +x "$root"/opt/fakegpu/bin/*
  fi
  local commit
  commit=${COMMIT_ARG:-$(git rev-parse --short=12 HEAD)$( [ -n "$(git status --porcelain --untracked-files=no)" ] && echo '-dirty')}
  log "dry run in $root: $tree, kit $(human_size "$KIT_SRC"), toolkit $cuda_real without cuDNN/NCCL, cuDNN/NCCL in $site"
  local rc=0
  chroot "$root" /usr/bin/env -i PATH=${fake_path}/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root LANG=C.UTF-8 OUT=/work/out ${JOBS:+JOBS=$JOBS} EMBER_GPU_DRY_RUN=1 \
    bash -c "cd /work/ember && scripts/gpu_check.sh --commit '$commit' --deadline ${DEADLINE:-7200} --arch ${ARCH_ARG:-90}" || rc=$?
  local results=$SRC/bench/results
  local sum
  sum=$(ls -t "$root"/work/out/*.md 2>/dev/null | head -1)
  if ((FAKE_GPU)); then
    rm -rf "$SRC/build-dryrun-fake-gpu" && mkdir -p "$SRC/build-dryrun-fake-gpu"
    cp "$root"/work/out/* "$SRC/build-dryrun-fake-gpu/" 2>/dev/null
    log "fake-GPU walk: build-dryrun-fake-gpu/$(basename "${sum:-none}") (not a result: nothing ran on a GPU)"
    [ -n "$sum" ]
    return
  fi
  # The build's timing: this run's when it built from scratch (kept for later runs), else the
  # last clean build's (a --keep-build run rebuilds only what changed).
  local timing=$tree/build-gpu clean=$base/clean-build timing_note="this run's build, from scratch"
  if ((KEEP_BUILD)) && [ -f "$clean/.ninja_log" ]; then
    timing=$clean timing_note="the clean build of $(cat "$clean/WHEN" 2>/dev/null) (this run reused its build folder)"
  elif ((!KEEP_BUILD)) && [ -f "$tree/build-gpu/.ninja_log" ]; then
    rm -rf "$clean" && mkdir -p "$clean/gpu_check_logs"
    cp "$tree/build-gpu/.ninja_log" "$clean/"
    cp "$tree"/build-gpu/gpu_check_logs/*.times "$tree"/build-gpu/gpu_check_logs/*.wall "$clean/gpu_check_logs/" 2>/dev/null
    echo "$(date -u +%Y-%m-%dT%H:%MZ), commit $commit" >"$clean/WHEN"
  fi
  # Without the hints, configure must fail and say why (never a silent fallback).
  local neg
  neg=$(chroot "$root" /usr/bin/env -i PATH=/usr/bin:/bin HOME=/root bash -c "rm -rf /tmp/neg-build; cd /work/ember && cmake -S . -B /tmp/neg-build -G Ninja -DEMBER_CUDA=ON -DEMBER_CUDNN=ON -DEMBER_NCCL=ON -DCMAKE_CUDA_ARCHITECTURES=${ARCH_ARG:-90} -DEMBER_MPI=OFF -DCMAKE_PREFIX_PATH=/tmp/ember-gpu-kit/prefix/usr 2>&1; echo \"exit status \$?\"" | grep -A7 -E 'CMake Error|^exit status' | tr -s ' \n' ' ')
  if [ -n "$sum" ]; then
    { echo; echo "## cuDNN and NCCL not found: configure must fail (dry run)"; echo
      echo "The same configure in the same root without the Python-package hints (EMBER_CUDNN_ROOT, EMBER_NCCL_ROOT): \`${neg:0:900}\`"; } >>"$sum"
  fi
  if [ -n "$sum" ] && [ -f "$timing/.ninja_log" ]; then
    python3 - "$timing" "$(nproc)" "$(cat /proc/loadavg)" "$timing_note" >>"$sum" <<'PY' || true
# The build's time here, and what it would take on 16 cores: every step's duration from
# .ninja_log, scaled by the share of a core it really had here (CPU time / summed step
# times: the other engineers' builds share this machine's cores), then scheduled in ninja's
# order on 16 workers, with a barrier at each link of the library (everything before it
# must end first; pessimistic: test objects need not wait for it).
import glob, heapq, os, re, sys
build, ncpu, load, note = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
logs = os.path.join(build, "gpu_check_logs")
def secs(t):  # "1m2.5s" -> 62.5
    m = re.fullmatch(r"(\d+)m([\d.]+)s", t)
    return int(m[1]) * 60 + float(m[2]) if m else 0.0
runs, cur, last = [], [], 0
for line in open(os.path.join(build, ".ninja_log")).read().splitlines()[1:]:
    f = line.split("\t")
    if len(f) < 4:
        continue
    a, b, out = int(f[0]), int(f[1]), f[3]
    if cur and b < last - 1000:  # lines come in order of ending: a drop starts the next ninja run
        runs.append(cur); cur = []
    cur.append((a, b, out)); last = b
if cur:
    runs.append(cur)
names = [("build: library, GPU tests", "build.log"), ("build: benchmarks, mnist app", "build_more.log")]
print("\n## Build time here and the 16-core estimate (dry run)\n")
print(f"Measured on this machine: {ncpu} CPU threads shared with other engineers' builds "
      f"(load average at the end: {load.split()[0]}, {load.split()[1]}, {load.split()[2]}), no ccache, CMAKE_CUDA_ARCHITECTURES=90; "
      f"figures from {note}.\n")
print("| build | steps | wall here | CPU here (user+sys) | share of a core per step | longest step (scaled) | estimate on 16 cores |")
print("| --- | ---: | ---: | ---: | ---: | --- | ---: |")
total_est = cpu_all = longest_all = 0.0
for (title, log), steps in zip(names, runs[-2:] if len(runs) >= 2 else runs):
    wall = open(os.path.join(logs, log + ".wall")).read().strip() if os.path.exists(os.path.join(logs, log + ".wall")) else "?"
    cpu = 0.0
    tp = os.path.join(logs, log + ".times")
    if os.path.exists(tp):
        lines = open(tp).read().split("\n")
        if len(lines) > 1:
            cpu = sum(secs(t) for t in lines[1].split())
    summed = sum((b - a) / 1000 for a, b, _ in steps)
    share = min(1.0, cpu / summed) if summed and cpu else 1.0
    steps = sorted(steps)
    workers = [0.0] * 16
    barrier = 0.0
    longest = max(steps, key=lambda s: s[1] - s[0])
    for a, b, out in steps:
        d = (b - a) / 1000 * share
        is_lib = re.search(r"(^|/)libember\.(a|so)$", out) is not None
        if is_lib:
            barrier = max(workers)
            workers = [barrier] * 16
        t = max(heapq.heappop(workers), barrier)
        heapq.heappush(workers, t + d)
        if is_lib:
            barrier = t + d
    est = max(workers)
    total_est += est
    cpu_all += cpu
    longest_all = max(longest_all, (longest[1] - longest[0]) / 1000 * share)
    print(f"| {title} | {len(steps)} | {wall} s | {cpu:.0f} s | {share:.2f} | {(longest[1] - longest[0]) / 1000 * share:.0f} s ({longest[2]}) | {est:.0f} s |")
print(f"\nBoth builds one after the other on 16 cores: about {total_est:.0f} s, if a core there is as fast as one here "
      "(on the GPU machine the second build runs while the GPU tests do); a cruder bound, all CPU time spread over 16 "
      f"cores plus the longest step, gives {cpu_all / 16 + longest_all:.0f} s.\n")
print("Planned within the 480 s deadline on 16 cores (each stage's cap; a stage that no longer fits is skipped with "
      f"the reason): setup and configure ~15 s, build ~{total_est:.0f} s, device facts ~5 s, GPU tests <= 180 s "
      "(all programs at once), kernel benchmarks <= 60 s each (4 programs, CUDA rows only), memcheck <= 150 s "
      "(9 programs at once), racecheck + synccheck <= 60 s each, end to end ~60 s (two PyTorch steps, one LeNet "
      "epoch each side). The caps add up to more than the deadline on purpose: the stages run in order of value "
      "and the deadline cuts the least valuable.")
PY
  fi
  if [ -n "$sum" ]; then
    mkdir -p "$SRC/build-dryrun"
    cp "$root"/work/out/* "$SRC/build-dryrun/" 2>/dev/null
    cp "$sum" "$results/$(date +%Y-%m-%d)-dry-run.md"
    log "dry-run summary: bench/results/$(date +%Y-%m-%d)-dry-run.md (logs: build-dryrun/)"
  else
    log "ERROR: the dry run wrote no summary"
    rc=1
  fi
  return $rc
}

case "$MODE" in
  prepare) prepare; exit $? ;;
  dry-run) dry_run; exit $? ;;
esac

# ============================================================================ the run
DEADLINE=${DEADLINE:-480}
T0=$(date +%s)
END=$((T0 + DEADLINE))
left() { echo $((END - $(date +%s))); }
elapsed() { echo $(($(date +%s) - T0)); }
ORIG_LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}
# Several programs at once share the cores: OpenMP threads must not spin (README), and each
# parallel stage gives each program its share of threads.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
omp_share() { local n=$(($(nproc) / $1)); [ "$n" -lt 1 ] && n=1; echo "$n"; }
py() { env LD_LIBRARY_PATH="$ORIG_LD_LIBRARY_PATH" python3 "$@"; }  # the machine's python, without the kit's libraries

# ---- the GPU, asked once
HAVE_GPU=0 GPU_NAME="" COMPUTE_CAP="" DRIVER="" GPU_MEM="" DRIVER_CUDA="" NGPU=0
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  HAVE_GPU=1
  query() { nvidia-smi --query-gpu="$1" --format=csv,noheader 2>/dev/null | head -1 | sed 's/^ *//;s/ *$//'; }
  GPU_NAME=$(query name)
  COMPUTE_CAP=$(query compute_cap)
  DRIVER=$(query driver_version)
  GPU_MEM=$(query memory.total)
  DRIVER_CUDA=$(nvidia-smi 2>/dev/null | sed -n 's/.*CUDA Version: *\([0-9.]*\).*/\1/p' | head -1)
  NGPU=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU')
  NO_GPU_WHY=""
else
  NO_GPU_WHY=$(command -v nvidia-smi >/dev/null 2>&1 && echo "nvidia-smi lists no GPU: $(nvidia-smi -L 2>&1 | head -1)" || echo "no nvidia-smi on this machine")
fi
ARCH=${ARCH_ARG:-${COMPUTE_CAP//./}}
ARCH=${ARCH:-90}
[[ "$ARCH" =~ ^[0-9]+[a-z]?$ ]] || { echo "gpu_check: bad CUDA architecture '$ARCH' (nvidia-smi said '$COMPUTE_CAP')" >&2; exit 2; }

DATE=$(date +%Y-%m-%d)
if ((HAVE_GPU)); then
  SLUG=$(echo "$GPU_NAME" | tr '[:upper:]' '[:lower:]' | sed 's/[^a-z0-9]\+/-/g;s/^-//;s/-$//')
elif [ -n "${EMBER_GPU_DRY_RUN:-}" ]; then
  SLUG=dry-run
else
  SLUG=no-gpu
fi
BUILD=${BUILD_DIR:-build-gpu}
JOBS=${JOBS:-$(nproc)}
LOGS=$BUILD/gpu_check_logs
rm -rf "$LOGS" && mkdir -p "$LOGS/bench" "$LOGS/xml" || { echo "gpu_check: cannot write $LOGS" >&2; exit 1; }
if [ -n "${OUT:-}" ]; then
  mkdir -p "$OUT"
  SUMMARY=$OUT/$DATE-$SLUG.md
  PACK=$OUT/gpu_check_logs.tar.gz
  JSON_DIR=""
else
  SUMMARY=bench/results/$DATE-$SLUG.md
  PACK=$BUILD/gpu_check_logs.tar.gz
  JSON_DIR=bench/results/$DATE-$SLUG
fi

if [ -n "$COMMIT_ARG" ]; then
  COMMIT=$COMMIT_ARG
elif git rev-parse HEAD >/dev/null 2>&1; then
  COMMIT=$(git rev-parse --short=12 HEAD)
  [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ] && COMMIT="$COMMIT (with uncommitted changes)"
else
  COMMIT="${EMBER_COMMIT:-unknown: pass --commit SHA}"
fi

# ---- the summary: a header now, one section per stage as it ends, the table at exit
STAGES=(setup configure build facts gpu_tests build_more benchmarks memcheck race_sync e2e multi_gpu nccl_store full_suite)
declare -A TITLE=(
  [setup]="dependencies and CUDA libraries" [configure]="configure" [build]="build: library, GPU tests"
  [facts]="device facts" [gpu_tests]="GPU tests" [build_more]="build: benchmarks, mnist app"
  [benchmarks]="kernel benchmarks" [memcheck]="compute-sanitizer memcheck"
  [race_sync]="compute-sanitizer racecheck + synccheck" [e2e]="end to end vs PyTorch"
  [multi_gpu]="several GPUs (NCCL + MPI)" [nccl_store]="NCCL bootstrapped through the store (ember's launcher, Gloo)"
  [full_suite]="whole ctest suite")
declare -A VERDICT SECS
FAILED=()
append() { printf '%s\n' "$@" >>"$SUMMARY"; }
pack_logs() {  # one file back (the device tool returns at most 8, 16 MiB each)
  tar -C "$BUILD" -czf "$PACK.tmp" gpu_check_logs 2>/dev/null || return 0
  if [ "$(stat -c %s "$PACK.tmp")" -gt 15000000 ]; then  # keep each big log's head and tail
    local f
    while IFS= read -r f; do
      { head -c 400000 "$f"; printf '\n[... cut by gpu_check.sh: %s bytes in all ...]\n' "$(stat -c %s "$f")"; tail -c 400000 "$f"; } >"$f.cut" && mv -f "$f.cut" "$f"
    done < <(find "$LOGS" -type f -size +1M)
    tar -C "$BUILD" -czf "$PACK.tmp" gpu_check_logs 2>/dev/null || return 0
  fi
  mv -f "$PACK.tmp" "$PACK"
}
STAGE_T0=0
stage_start() {  # name
  STAGE_T0=$(date +%s)
  log "== ${TITLE[$1]} ($(left) s left)"
}
stage_end() {  # name verdict [detail lines...]
  local name=$1 verdict=$2
  shift 2
  VERDICT[$name]=$verdict
  SECS[$name]=$(($(date +%s) - STAGE_T0))
  case "$verdict" in FAIL* | TIMEOUT*) FAILED+=("$name") ;; esac
  append "" "## ${TITLE[$name]}: $verdict (${SECS[$name]} s, at $(elapsed) s)" ""
  [ $# -gt 0 ] && append "$@"
  pack_logs
  log "${TITLE[$name]}: $verdict (${SECS[$name]} s)"
}
not_run() {  # name reason
  VERDICT[$1]="not run: $2"
  append "" "## ${TITLE[$1]}: not run: $2"
  log "${TITLE[$1]}: not run: $2"
}
fits() {  # name seconds-needed: true when the stage fits before the deadline
  local l
  l=$(left)
  if [ "$l" -lt "$2" ]; then
    not_run "$1" "$l s left before the deadline, needs about $2 s"
    return 1
  fi
}
budget() {  # max [reserve]: seconds a stage may take: at most max, leaving reserve
  local b=$(($(left) - ${2:-0}))
  [ "$b" -gt "$1" ] && b=$1
  [ "$b" -lt 5 ] && b=5
  echo "$b"
}
DIED=""
die() {
  DIED="$*"
  echo "gpu_check: ERROR: $*" >&2
  exit 1
}
finish() {
  local rc=$?
  trap - EXIT
  [ -n "${BUILD_MORE_PID:-}" ] && kill "$BUILD_MORE_PID" 2>/dev/null  # its `timeout` ends the build
  {
    echo
    echo "## Stages"
    echo
    echo "| stage | verdict | seconds |"
    echo "| --- | --- | ---: |"
    local s v
    for s in "${STAGES[@]}"; do
      v=${VERDICT[$s]:-}
      if [ -z "$v" ]; then
        if [ -n "$DIED" ]; then v="not run: the check stopped earlier ($DIED)"
        elif [ "$rc" -ne 0 ]; then v="not run: the check was stopped (exit $rc)"
        else v="not run"; fi
      fi
      echo "| ${TITLE[$s]} | $v | ${SECS[$s]:-} |"
    done
    echo
    echo "Total: $(elapsed) s of a $DEADLINE s deadline; $JOBS build jobs on $(nproc) CPU threads."
    if [ ${#FAILED[@]} -gt 0 ]; then
      echo "Failed: ${FAILED[*]}. Logs: gpu_check_logs.tar.gz ($(basename "$PACK"))."
    elif [ -n "$DIED" ]; then
      echo "Stopped: $DIED"
    else
      echo "Every stage that ran passed or had no GPU to run on."
    fi
  } >>"$SUMMARY"
  pack_logs
  if [ -n "$JSON_DIR" ] && ls "$LOGS"/bench/*.json >/dev/null 2>&1; then
    mkdir -p "$JSON_DIR" && cp "$LOGS"/bench/*.json "$JSON_DIR/"
  fi
  echo
  cat "$SUMMARY"
  log "summary: $SUMMARY; logs: $PACK"
  if [ -n "$DIED" ] || [ ${#FAILED[@]} -gt 0 ] || [ "$rc" -ne 0 ]; then exit 1; fi
  exit 0
}
trap finish EXIT
trap 'DIED="stopped by a signal"; exit 143' TERM INT HUP

{
  if ((HAVE_GPU)); then echo "# GPU check: $GPU_NAME, $DATE"; else echo "# GPU check without a GPU ($SLUG), $DATE"; fi
  echo
  echo "| | |"
  echo "| --- | --- |"
  if ((HAVE_GPU)); then
    echo "| device | $GPU_NAME (compute capability $COMPUTE_CAP, $GPU_MEM), $NGPU GPU(s) |"
    echo "| driver | $DRIVER (driver CUDA ${DRIVER_CUDA:-?}) |"
  else
    echo "| device | none: $NO_GPU_WHY |"
  fi
  echo "| commit | $COMMIT |"
  echo "| host | $(nproc) CPU threads, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr), $(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME") |"
  echo "| started | $(date -u +%Y-%m-%dT%H:%M:%SZ), deadline $DEADLINE s |"
  echo "| build | Release, CMAKE_CUDA_ARCHITECTURES=$ARCH$( ((HAVE_GPU)) || echo ' (no GPU to ask: --arch or 90)'), $BUILD, $JOBS jobs |"
} >"$SUMMARY"

# ============================================================================ stages
# ---- setup: compilers, dependencies (kit or system), CUDA libraries
stage_start setup
SETUP_NOTES=()
NVCC=""
for c in "${CUDACXX:-}" "$(command -v nvcc 2>/dev/null)" /usr/local/cuda/bin/nvcc; do
  if [ -n "$c" ] && [ -x "$c" ]; then NVCC=$(realpath "$c"); break; fi
done
[ -n "$NVCC" ] || { stage_end setup "FAIL" "No CUDA compiler: install the CUDA toolkit (nvcc) at /usr/local/cuda or set CUDACXX."; die "no nvcc"; }
CUDA_HOME=$(dirname "$(dirname "$NVCC")")
TOOLKIT=$("$NVCC" --version | sed -n 's/.*release \([0-9.]*\), V\([0-9.]*\).*/\2/p')
for tool in cmake c++; do
  command -v "$tool" >/dev/null 2>&1 || { stage_end setup "FAIL" "$tool is not installed."; die "no $tool"; }
done
GEN=() GEN_NAME=make
command -v ninja >/dev/null 2>&1 && GEN=(-G Ninja) && GEN_NAME="ninja $(ninja --version)"
SETUP_NOTES+=("- tools: nvcc $TOOLKIT ($NVCC), $(c++ --version | head -1), cmake $(cmake --version | head -1 | awk '{print $3}'), $GEN_NAME, $(python3 --version 2>&1)")

has_system_deps() { [ -f /usr/include/gtest/gtest.h ] || [ -f /usr/local/include/gtest/gtest.h ]; }
KIT_DIR=${EMBER_GPU_KIT_DIR:-/tmp/ember-gpu-kit}
CMAKE_DEPS=()
if [ "$USE_KIT" = auto ]; then
  if [ -f "$KIT_SRC/deps.tar.gz" ] && ! has_system_deps; then USE_KIT=on; else USE_KIT=off; fi
fi
if [ "$USE_KIT" = on ]; then
  [ -f "$KIT_SRC/deps.tar.gz" ] || { stage_end setup "FAIL" "No kit at $KIT_SRC/deps.tar.gz (make it with --prepare, send it with carry)."; die "no kit"; }
  stamp=$(stat -c '%s %Y' "$KIT_SRC/deps.tar.gz")
  if [ "$(cat "$KIT_DIR/.stamp" 2>/dev/null)" != "$stamp" ]; then
    rm -rf "$KIT_DIR" && mkdir -p "$KIT_DIR" && tar -C "$KIT_DIR" -xzf "$KIT_SRC/deps.tar.gz" ||
      { stage_end setup "FAIL" "Unpacking $KIT_SRC/deps.tar.gz into $KIT_DIR failed."; die "kit unpack failed"; }
    echo "$stamp" >"$KIT_DIR/.stamp"
  fi
  KP=$KIT_DIR/prefix/usr
  CMAKE_DEPS=(-DCMAKE_PREFIX_PATH="$KP" -DCMAKE_CXX_FLAGS="-isystem $KP/include" -DEMBER_MPI=OFF)
  # OpenBLAS, libgfortran, yaml-cpp, spdlog, fmt, benchmark, Gloo (in lib/) at run time (and for the test
  # discovery that runs test programs during the build). Not the kit's zlib: the system's.
  export LD_LIBRARY_PATH="$KP/lib/x86_64-linux-gnu:$KP/lib/x86_64-linux-gnu/openblas-pthread:$KP/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  SETUP_NOTES+=("- dependencies: the kit ($KIT_SRC/deps.tar.gz, $(human_size "$KIT_SRC/deps.tar.gz"), $(wc -l <"$KIT_DIR/PACKAGES") Debian packages, $(head -1 "$KIT_DIR/MANIFEST" | sed 's/^ember GPU kit, //')) unpacked into $KIT_DIR; MPI off")
else
  if ! has_system_deps && command -v apt-get >/dev/null 2>&1 && { [ "$(id -u)" -eq 0 ] || sudo -n true 2>/dev/null; }; then
    log "GoogleTest is missing: trying scripts/setup.sh"
    scripts/setup.sh >"$LOGS/setup.log" 2>&1 || log "WARNING: scripts/setup.sh failed (no network?); going on with what is installed"
  fi
  has_system_deps || SETUP_NOTES+=("- WARNING: no GoogleTest headers and no kit: configure will say what is missing")
  SETUP_NOTES+=("- dependencies: the system's packages (no kit used)")
fi
command -v ccache >/dev/null 2>&1 && CMAKE_DEPS+=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache) &&
  export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$SRC}

# cuDNN, NCCL (and cuBLAS, should the toolkit lack it): the toolkit first, then the nvidia-*
# Python packages (the wheels PyTorch uses), then the system's library folders (CMake's own).
toolkit_has() {  # libname header
  { ls "$CUDA_HOME"/lib64/lib"$1".so* "$CUDA_HOME"/targets/*/lib/lib"$1".so* >/dev/null 2>&1; } &&
    { [ -z "$2" ] || ls "$CUDA_HOME"/include/"$2" "$CUDA_HOME"/targets/*/include/"$2" >/dev/null 2>&1; }
}
WHEELS=$(py - <<'PY' 2>"$LOGS/wheel_search.log"
# Where the nvidia-* Python packages keep their libraries: name, library file, include folder.
import glob, importlib.util, os
roots = []
try:
    import nvidia  # a namespace package: every installed nvidia-* wheel adds to its path
    roots += list(nvidia.__path__)
except Exception:
    pass
spec = importlib.util.find_spec("torch")
if spec and spec.origin:
    roots.append(os.path.join(os.path.dirname(spec.origin), "lib"))
libdirs = set()
for name, header in (("cudnn", "cudnn.h"), ("nccl", "nccl.h"), ("cublas", "cublas_v2.h"), ("cublasLt", None), ("nvrtc", None)):
    hits = []
    for r in roots:
        hits += sorted(glob.glob(os.path.join(r, "**", f"lib{name}.so*"), recursive=True))
    if not hits:
        continue
    hits.sort(key=lambda p: (len(os.path.basename(p)), p))  # libx.so.9 before libx.so.9.1.0
    lib = hits[0]
    libdirs.add(os.path.dirname(lib))
    inc = os.path.join(os.path.dirname(os.path.dirname(lib)), "include")
    has_inc = header is None or os.path.exists(os.path.join(inc, header))
    print(f"{name}\t{lib}\t{inc if has_inc else ''}")
for r in roots:
    libdirs.update(d for d in glob.glob(os.path.join(r, "*", "lib")) if os.path.isdir(d))
print("libdirs\t" + ":".join(sorted(libdirs)) + "\t")
PY
)
wheel() { awk -F'\t' -v n="$1" -v f="$2" '$1 == n {print $f}' <<<"$WHEELS"; }
CUDA_EXTRA=$PWD/$BUILD/cuda-extra
rm -rf "$CUDA_EXTRA"
CUDA_LIBDIRS=()
for dep in cudnn nccl; do
  DEP=${dep^^}
  header=$dep.h
  if toolkit_has "$dep" "$header"; then
    SETUP_NOTES+=("- $dep: the CUDA toolkit ($CUDA_HOME)")
  elif [ -n "$(wheel $dep 2)" ]; then
    lib=$(wheel $dep 2) inc=$(wheel $dep 3)
    libdir=$(dirname "$lib")
    CUDA_LIBDIRS+=("$libdir")
    # The root alone: cmake/EmberDeps.cmake finds the versioned name there itself.
    CMAKE_DEPS+=("-DEMBER_${DEP}_ROOT=$(dirname "$libdir")")
    if [ -n "$inc" ]; then
      SETUP_NOTES+=("- $dep: the Python package at $(dirname "$libdir") ($(basename "$lib"), headers beside it)")
    elif [ -f "$KIT_DIR/cuda-headers/$dep/include/$header" ]; then
      CMAKE_DEPS+=("-DEMBER_${DEP}_INCLUDE=$KIT_DIR/cuda-headers/$dep/include")
      SETUP_NOTES+=("- $dep: the Python package at $(dirname "$libdir") ($(basename "$lib")), headers from the kit ($(grep cuda-headers "$KIT_DIR/MANIFEST" 2>/dev/null | cut -d' ' -f2-): the package had none)")
    else
      SETUP_NOTES+=("- $dep: library in the Python package at $libdir but no $header there or in a kit: configure will fail")
    fi
  else
    SETUP_NOTES+=("- $dep: not in the toolkit ($CUDA_HOME) nor in an nvidia-* Python package; left to CMake's system search (configure fails if it is not there)")
  fi
done
if ! toolkit_has cublas cublas_v2.h; then
  lib=$(wheel cublas 2) inc=$(wheel cublas 3) lt=$(wheel cublasLt 2)
  if [ -n "$lib" ] && [ -n "$inc" ]; then
    # FindCUDAToolkit looks for unversioned names: give it a folder of links (CMAKE_LIBRARY_PATH
    # comes before the toolkit's folder, so this is only made when the toolkit has none).
    mkdir -p "$CUDA_EXTRA/lib"
    ln -sfn "$lib" "$CUDA_EXTRA/lib/libcublas.so"
    [ -n "$lt" ] && ln -sfn "$lt" "$CUDA_EXTRA/lib/libcublasLt.so"
    CUDA_LIBDIRS+=("$(dirname "$lib")")
    CMAKE_DEPS+=(-DCMAKE_LIBRARY_PATH="$CUDA_EXTRA/lib" -DCMAKE_CUDA_FLAGS="-isystem $inc")
    CUBLAS_INC=$inc
    SETUP_NOTES+=("- cublas: not in the toolkit; the Python package at $(dirname "$(dirname "$lib")")")
  else
    SETUP_NOTES+=("- cublas: not in the toolkit ($CUDA_HOME) nor in a Python package: configure will fail")
  fi
else
  SETUP_NOTES+=("- cublas: the CUDA toolkit")
fi
if [ -n "${CUBLAS_INC:-}" ]; then  # the C++ sources include cublas_v2.h too
  for i in "${!CMAKE_DEPS[@]}"; do
    [[ "${CMAKE_DEPS[$i]}" == -DCMAKE_CXX_FLAGS=* ]] && CMAKE_DEPS[i]="${CMAKE_DEPS[$i]} -isystem $CUBLAS_INC"
  done
  printf '%s\n' "${CMAKE_DEPS[@]}" | grep -q '^-DCMAKE_CXX_FLAGS=' || CMAKE_DEPS+=(-DCMAKE_CXX_FLAGS="-isystem $CUBLAS_INC")
fi
# Run time: the toolkit's libraries first, then those found in the Python packages (cuDNN
# loads its engine libraries, and NVRTC, by name).
ld_extra="$CUDA_HOME/lib64"
for d in "${CUDA_LIBDIRS[@]}"; do ld_extra="$ld_extra:$d"; done
[ -n "$(wheel libdirs 2)" ] && ld_extra="$ld_extra:$(wheel libdirs 2)"
export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$ld_extra"
SANITIZER=""
for c in "$(command -v compute-sanitizer 2>/dev/null)" "$CUDA_HOME/bin/compute-sanitizer" "$CUDA_HOME/compute-sanitizer/compute-sanitizer"; do
  if [ -n "$c" ] && [ -x "$c" ]; then SANITIZER=$c; break; fi
done
SETUP_NOTES+=("- compute-sanitizer: ${SANITIZER:-not found}")
stage_end setup PASS "${SETUP_NOTES[@]}"

# ---- configure
fits configure 20 || die "no time to configure"
stage_start configure
BENCH_OPT=-DEMBER_BUILD_BENCH=ON
((RUN_BENCH || RUN_E2E)) || BENCH_OPT=-DEMBER_BUILD_BENCH=OFF
CONF=(cmake -S . -B "$BUILD" "${GEN[@]}" -DCMAKE_BUILD_TYPE=Release -DEMBER_CUDA=ON -DEMBER_CUDNN=ON -DEMBER_NCCL=ON
  -DCMAKE_CUDA_COMPILER="$NVCC" -DCMAKE_CUDA_ARCHITECTURES="$ARCH" "$BENCH_OPT" "${CMAKE_DEPS[@]}")
echo "${CONF[*]}" >"$LOGS/configure.log"
if timeout -k 5 "$(budget 180)" "${CONF[@]}" >>"$LOGS/configure.log" 2>&1; then
  stage_end configure PASS "\`$(grep -m1 'ember: CUDA=' "$LOGS/configure.log" | sed 's/^-- //')\`"
else
  stage_end configure FAIL "Configure failed; its last lines:" "" '```' "$(grep -v '^--' "$LOGS/configure.log" | grep -v '^ *$' | tail -15)" '```'
  die "configure failed"
fi

# ---- build: the library and the GPU tests first, then (in the background, while the tests
# run) the benchmarks and the mnist app
GPU_TESTS=()
for f in tests/*_gpu_test.cpp; do GPU_TESTS+=("$(basename "$f" .cpp)"); done
BUILD_A=(ember ember_info "${GPU_TESTS[@]}")
grep -q 'ember_info' bench/CMakeLists.txt 2>/dev/null || BUILD_A=(ember "${GPU_TESTS[@]}")
((RUN_BENCH || RUN_E2E)) || BUILD_A=("${BUILD_A[@]/ember_info/}")
BUILD_B=()
((RUN_BENCH)) && BUILD_B+=(bench_elementwise bench_reduce bench_matmul bench_nn)
((RUN_E2E)) && BUILD_B+=(bench_ddp bench_amp mnist)
KEEP_GOING=(-k 0)
[ ${#GEN[@]} -eq 0 ] && KEEP_GOING=(-k)
build_targets() {  # seconds log targets...: the build under `timeout`; wall and CPU time beside the log
  local secs=$1 logf=$2
  shift 2
  local t targets=() t0 rc
  for t in "$@"; do [ -n "$t" ] && targets+=(--target "$t"); done
  t0=$(date +%s)
  # `times` in the inner shell: the CPU time of everything the build ran (compilers included).
  timeout -k 10 "$secs" bash -c 'cmake --build "$@"; rc=$?; times >"$BUILD_TIMES"; exit $rc' _ \
    "$BUILD" -j "$JOBS" "${targets[@]}" -- "${KEEP_GOING[@]}" >"$logf" 2>&1
  rc=$?
  echo "$(($(date +%s) - t0))" >"$logf.wall"
  return $rc
}
export BUILD_TIMES
build_figures() {  # log: "wall W s, CPU C s (user+sys), longest step L s (file)"
  local w cpu longest=""
  w=$(cat "$1.wall" 2>/dev/null)
  cpu=$(sed -n 2p "$1.times" 2>/dev/null | awk '{t = 0; for (i = 1; i <= NF; i++) {split($i, a, "m"); t += a[1] * 60 + a[2]} printf "%.0f", t}')
  # The longest step of the last ninja run (its lines come in order of ending; a drop in the
  # end time starts the next run).
  [ -f "$BUILD/.ninja_log" ] && longest=$(awk -F'\t' 'NR > 1 {if ($2 < last - 1000) m = 0; last = $2; d = ($2 - $1) / 1000; if (d > m) {m = d; f = $4}} END {if (m) printf "%.0f s (%s)", m, f}' "$BUILD/.ninja_log")
  echo "wall ${w:-?} s, CPU ${cpu:-?} s (user+sys of every compiler and linker), ${longest:+longest single step $longest, }$JOBS jobs on $(nproc) CPU threads"
}
fits build 60 || die "no time to build"
stage_start build
BUILD_TIMES=$LOGS/build.log.times
RETRY_NOTE=""
if build_targets "$(budget 100000 30)" "$LOGS/build.log" "${BUILD_A[@]}"; then
  BUILD_VERDICT=PASS
else
  rc=$?
  BUILD_VERDICT=FAIL
  [ "$rc" = 124 ] || [ "$rc" = 137 ] && BUILD_VERDICT="TIMEOUT (deadline)"
  BUILD_FIG=$(build_figures "$LOGS/build.log")
  # Once more when it was not the deadline: a build stopped from outside (seen here once: a
  # SIGTERM after the last step) finishes in seconds, a real error fails again.
  if [ "$BUILD_VERDICT" = FAIL ] && [ "$(left)" -gt 60 ]; then
    cp "$LOGS/build.log" "$LOGS/build_first_try.log"
    if build_targets "$(budget 100000 30)" "$LOGS/build.log" "${BUILD_A[@]}"; then
      BUILD_VERDICT=PASS
      RETRY_NOTE="The first try ended with exit $rc ($(grep -v '^\[' "$LOGS/build_first_try.log" | tail -1 | cut -c1-100)); the second finished it."
    fi
  fi
fi
[ -n "$RETRY_NOTE" ] || BUILD_FIG=$(build_figures "$LOGS/build.log")
if [ "$BUILD_VERDICT" = PASS ]; then
  stage_end build PASS "$BUILD_FIG${RETRY_NOTE:+ (first try). $RETRY_NOTE}"
else
  stage_end build "$BUILD_VERDICT" "$BUILD_FIG" "" '```' "$(grep -E 'error|FAILED' "$LOGS/build.log" | head -20)" '```'
fi
BUILT_TESTS=()
for t in "${GPU_TESTS[@]}"; do [ -x "$BUILD/tests/$t" ] && BUILT_TESTS+=("$t"); done
[ -x "$BUILD/tests/${GPU_TESTS[0]}" ] || [ ${#BUILT_TESTS[@]} -gt 0 ] || die "the build made no GPU test program"

BUILD_MORE_PID=""
if [ ${#BUILD_B[@]} -gt 0 ]; then
  BUILD_TIMES=$LOGS/build_more.log.times build_targets "$(budget 100000 20)" "$LOGS/build_more.log" "${BUILD_B[@]}" &
  BUILD_MORE_PID=$!
  BUILD_MORE_T0=$(date +%s)
fi

# ---- device facts
stage_start facts
FACTS=()
if [ -x "$BUILD/bench/ember_info" ]; then
  if timeout -k 5 30 "$BUILD/bench/ember_info" >"$LOGS/ember_info.log" 2>&1; then
    while IFS= read -r l; do FACTS+=("- $l"); done <"$LOGS/ember_info.log"
  else
    FACTS+=("- ember_info failed: $(tail -3 "$LOGS/ember_info.log" | tr '\n' ' ')")
  fi
else
  FACTS+=("- ember_info was not built (see the build stage)")
fi
if ((HAVE_GPU)); then
  nvidia-smi >"$LOGS/nvidia-smi.log" 2>&1
  nvidia-smi -q >>"$LOGS/nvidia-smi.log" 2>&1
  FACTS+=("- nvidia-smi: $GPU_NAME, compute capability $COMPUTE_CAP, $GPU_MEM, driver $DRIVER (CUDA $DRIVER_CUDA), clocks $(nvidia-smi --query-gpu=clocks.sm,clocks.max.sm,clocks.mem --format=csv,noheader 2>/dev/null | head -1), persistence $(nvidia-smi --query-gpu=persistence_mode --format=csv,noheader 2>/dev/null | head -1)")
  TORCH_FACT=$(timeout 60 env LD_LIBRARY_PATH="$ORIG_LD_LIBRARY_PATH" python3 -c 'import torch; print("torch", torch.__version__, "CUDA", torch.version.cuda, "cuDNN", torch.backends.cudnn.version(), "NCCL", ".".join(map(str, torch.cuda.nccl.version())), "GPU", torch.cuda.is_available())' 2>&1 | tail -1)
  FACTS+=("- python3: $TORCH_FACT")
  if grep -q '^gpus: 0' "$LOGS/ember_info.log"; then
    stage_end facts "FAIL (nvidia-smi lists a GPU, ember's CUDA runtime sees none: driver older than CUDA $TOOLKIT?)" "${FACTS[@]}"
  else
    stage_end facts PASS "${FACTS[@]}"
  fi
else
  FACTS+=("- nvidia-smi: $NO_GPU_WHY")
  FACTS+=("- python3: $(timeout 60 env LD_LIBRARY_PATH="$ORIG_LD_LIBRARY_PATH" python3 -c 'import torch; print("torch", torch.__version__)' 2>&1 | tail -1)")
  if grep -q '^cudnn: none' "$LOGS/ember_info.log" 2>/dev/null || grep -q '^nccl: none' "$LOGS/ember_info.log" 2>/dev/null; then
    stage_end facts "FAIL (cuDNN or NCCL did not report a version)" "${FACTS[@]}"
  else
    stage_end facts "no GPU (the build's libraries load and report their versions)" "${FACTS[@]}"
  fi
fi

# ---- GPU tests: every *_gpu_test program at once, XML beside each log
xml_counts() {  # xml: "tests failures skipped"
  py - "$1" <<'PY' 2>/dev/null || echo "? ? ?"
import sys, xml.etree.ElementTree as ET
r = ET.parse(sys.argv[1]).getroot()
cases = list(r.iter("testcase"))
failed = sum(1 for c in cases if c.find("failure") is not None)
skipped = sum(1 for c in cases if c.find("skipped") is not None or c.get("result") == "skipped")
print(len(cases), failed, skipped)
PY
}
if [ ${#BUILT_TESTS[@]} -eq 0 ]; then
  not_run gpu_tests "no GPU test program was built"
elif fits gpu_tests 20; then
  stage_start gpu_tests
  T=$(budget 180 20)
  declare -A TPID
  for t in "${BUILT_TESTS[@]}"; do
    OMP_NUM_THREADS=$(omp_share ${#BUILT_TESTS[@]}) timeout -k 5 "$T" "$BUILD/tests/$t" --gtest_output="xml:$LOGS/xml/$t.xml" >"$LOGS/test_$t.log" 2>&1 &
    TPID[$t]=$!
  done
  ROWS=("| program | result | tests | failed | skipped |" "| --- | --- | ---: | ---: | ---: |")
  any_fail=0 total=0 total_skip=0
  for t in "${BUILT_TESTS[@]}"; do
    wait "${TPID[$t]}"
    rc=$?
    read -r n f s < <(xml_counts "$LOGS/xml/$t.xml")
    if [ "$rc" = 0 ]; then r=PASS
    elif [ "$rc" = 124 ] || [ "$rc" = 137 ]; then r="TIMEOUT ($T s)"; any_fail=1
    else r="FAIL (exit $rc)"; any_fail=1; fi
    if ((HAVE_GPU)) && [ "${s:-0}" != 0 ] && [ "$s" != "?" ]; then r="$r, SKIPS with a GPU present"; any_fail=1; fi
    [[ "$n" =~ ^[0-9]+$ ]] && total=$((total + n))
    [[ "$s" =~ ^[0-9]+$ ]] && total_skip=$((total_skip + s))
    ROWS+=("| $t | $r | $n | $f | $s |")
    [ "$rc" != 0 ] && ROWS+=("|  | \`$(grep -m3 -E '^\[  FAILED  \]|Failure|error' "$LOGS/test_$t.log" | tr '\n|' '  ' | cut -c1-300)\` | | | |")
  done
  missing=()
  for t in "${GPU_TESTS[@]}"; do [ -x "$BUILD/tests/$t" ] || missing+=("$t"); done
  [ ${#missing[@]} -gt 0 ] && { ROWS+=("" "Not built: ${missing[*]} (see the build stage)."); any_fail=1; }
  if ((any_fail)); then v=FAIL
  elif ((HAVE_GPU)); then v="PASS ($total tests in ${#BUILT_TESTS[@]} programs)"
  else v="no GPU (the ${#BUILT_TESTS[@]} programs load and run: $total_skip of $total tests skipped, as they must without a GPU)"; fi
  stage_end gpu_tests "$v" "${ROWS[@]}"
fi

# ---- the rest of the build
if [ -n "$BUILD_MORE_PID" ]; then
  stage_start build_more
  STAGE_T0=$BUILD_MORE_T0
  # It ran under `timeout` with the deadline less 20 s.
  wait "$BUILD_MORE_PID"
  rc=$?
  BUILD_MORE_PID=""
  FIG=$(build_figures "$LOGS/build_more.log")
  if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then stage_end build_more "TIMEOUT (deadline)" "$FIG"
  elif [ "$rc" = 0 ]; then stage_end build_more PASS "$FIG"
  else stage_end build_more FAIL "$FIG" "" '```' "$(grep -E 'error|FAILED' "$LOGS/build_more.log" | head -20)" '```'; fi
else
  not_run build_more "--no-bench and --no-e2e"
fi

# ---- kernel benchmarks: the CUDA rows, with the device copy and raw cuBLAS beside them
bench_tables() {
  py - "$LOGS/bench" <<'PY' || echo "(the tables could not be made: see the JSON files)"
import glob, json, os, re, sys

outdir = sys.argv[1]
rows, by_key, bn = [], {}, {}
for path in sorted(glob.glob(os.path.join(outdir, "bench_*.json"))):
    try:
        data = json.load(open(path))
    except Exception:
        continue
    for b in data.get("benchmarks", []):
        if b.get("run_type") == "aggregate" or "error_occurred" in b:
            continue
        name = re.sub(r"/(real|manual)_time$", "", b["name"])
        parts = name.split("/")
        op = parts[0]
        dev = "cuda" if "cuda" in parts or op.endswith("_reference") else parts[1] if len(parts) > 1 else ""
        arg = next((p for p in parts[1:] if ":" in p), "/".join(p for p in parts[1:] if p != "cuda"))
        size = int(arg.split(":")[1]) if re.fullmatch(r"[a-z]+:\d+", arg) else 0
        gbs = b.get("bytes_per_second", 0) / 1e9
        tfl = b.get("FLOP/s", 0) / 1e9
        rows.append((os.path.basename(path)[:-5], op, arg, b["real_time"], b["time_unit"], gbs, tfl))
        by_key[(op, dev, size)] = (gbs, tfl)
        if op in ("batch_norm_train", "batch_norm_train_ember_kernels", "cudnn_batch_norm_reference") and \
                (op.startswith("cudnn") or "cuda" in parts) and len(parts) >= 3:
            bn.setdefault((parts[1], parts[2]), {})[op] = (b["real_time"], b.get("cudnn_calls"))

def human(arg):
    k, _, v = arg.partition(":")
    if k == "bytes" and v.isdigit():
        v = int(v)
        for unit in ("B", "KiB", "MiB", "GiB"):
            if v < 1024:
                return f"{v} {unit}"
            v //= 1024
    return arg.replace(":", " = ")

print("| program | benchmark | size | time | GB/s | GFLOP/s |")
print("| --- | --- | --- | ---: | ---: | ---: |")
for prog, op, arg, t, unit, gbs, tfl in rows:
    print(f"| {prog} | {op} | {human(arg)} | {t:.1f} {unit} | {f'{gbs:.1f}' if gbs else ''} | {f'{tfl:.1f}' if tfl else ''} |")

print("\nGoals (issue 2):\n")
big = 64 << 20
refs = {s: v[0] for (op, dev, s), v in by_key.items() if op == "memcpy_d2d_reference" and s >= big}
if refs:
    for op in ("add_f32", "relu_f32", "sum_f32", "clone_f32"):
        for s in sorted(refs):
            if (op, "cuda", s) in by_key and refs[s] > 0:
                g = by_key[(op, "cuda", s)][0]
                print(f"- {op} at {s >> 20} MiB: {g / refs[s] * 100:.0f}% of the device-to-device copy "
                      f"({g:.0f} vs {refs[s]:.0f} GB/s): {'meets' if g / refs[s] >= 0.9 else 'BELOW'} the 90% goal")
else:
    print("- elementwise/reduce vs the device copy: no memcpy_d2d_reference at >= 64 MiB was measured")
cub = {s: v[1] for (op, dev, s), v in by_key.items() if op == "cublas_sgemm_reference"}
if cub:
    for s in sorted(cub):
        if ("matmul_f32", "cuda", s) in by_key and cub[s] > 0:
            g = by_key[("matmul_f32", "cuda", s)][1]
            print(f"- matmul n={s}: {g / cub[s] * 100:.0f}% of raw cublasSgemm ({g:.0f} vs {cub[s]:.0f} GFLOP/s): "
                  f"{'meets' if g / cub[s] >= 0.95 else 'BELOW'} the 95% goal")
else:
    print("- matmul vs cuBLAS: no cublas_sgemm_reference was measured")
# Note [Batch norm: ours or cuDNN's]: the per-shape choice should be as fast as the faster.
print("\nBatch norm, training (issue 10: ours against cuDNN's, keep the faster):\n")
if bn:
    print("| pass | shape | ember's kernels (ms) | raw cuDNN (ms) | the choice (ms) | cuDNN calls in the choice's row | choice vs the faster |")
    print("| --- | --- | ---: | ---: | ---: | ---: | --- |")
    for (ps, shape), v in sorted(bn.items()):
        ours, ref, ch = (v.get(k, (None, None)) for k in ("batch_norm_train_ember_kernels", "cudnn_batch_norm_reference", "batch_norm_train"))
        best = min(t for t in (ours[0], ref[0]) if t is not None) if ours[0] or ref[0] else None
        verdict = f"{ch[0] / best:.2f}x" if ch[0] and best else "-"
        fmt = lambda t: f"{t:.4f}" if t is not None else "-"
        print(f"| {ps} | {shape} | {fmt(ours[0])} | {fmt(ref[0])} | {fmt(ch[0])} | {'' if ch[1] is None else int(ch[1])} | {verdict} |")
else:
    print("- no batch-norm rows were measured")
PY
}
if ((!RUN_BENCH)); then
  not_run benchmarks "--no-bench"
elif fits benchmarks 30; then
  stage_start benchmarks
  ROWS=()
  bad=0 ran=0
  BENCHES=(bench_elementwise bench_reduce bench_matmul bench_nn)
  for b in "${BENCHES[@]}"; do
    bin=$BUILD/bench/$b
    if [ ! -x "$bin" ]; then ROWS+=("- $b: not built (see the build stages)"); bad=1; continue; fi
    if ((HAVE_GPU)); then
      T=$(budget 60 60)
      if timeout -k 5 "$T" "$bin" --benchmark_filter='cuda|_reference' --benchmark_min_time=0.1 \
           --benchmark_out="$LOGS/bench/$b.json" --benchmark_out_format=json >"$LOGS/$b.log" 2>&1; then
        ran=$((ran + 1))
      else
        rc=$?
        ROWS+=("- $b: $([ "$rc" = 124 ] && echo "TIMEOUT ($T s): its figures are lost (the JSON is written at the end; the console rows are in its log)" || echo "FAIL (exit $rc): $(tail -2 "$LOGS/$b.log" | tr '\n' ' ')")")
        bad=1
      fi
    else
      n=$(timeout 30 "$bin" --benchmark_list_tests 2>>"$LOGS/$b.log" | tee -a "$LOGS/$b.log" | grep -c .)
      ncuda=$(grep -c cuda "$LOGS/$b.log")
      ROWS+=("- $b: loads, registers $n benchmarks ($ncuda on CUDA: none without a GPU)")
      [ "$n" -gt 0 ] || bad=1
    fi
  done
  if ((HAVE_GPU)); then
    nrows=$(py - "$LOGS/bench" <<'PY' 2>/dev/null || echo 0
import glob, json, os, sys
n = 0
for p in glob.glob(os.path.join(sys.argv[1], "bench_*.json")):
    try:
        n += sum(1 for b in json.load(open(p)).get("benchmarks", []) if b.get("run_type") != "aggregate")
    except Exception:
        pass
print(n)
PY
)
    [ "${nrows:-0}" -gt 0 ] || { bad=1; ROWS+=("- no CUDA benchmark row was measured (does ember's runtime see the GPU? see device facts)"); }
    ROWS+=("" "CUDA rows and the raw references only (--benchmark_filter='cuda|_reference', min time 0.1 s each); every iteration waits for the stream; JSON in the logs." "" "$(bench_tables)")
    ((bad)) && v=FAIL || v="PASS ($ran programs, $nrows rows; the goals below are figures, not verdicts)"
  else
    ((bad)) && v=FAIL || v="no GPU (the programs load; nothing measured)"
  fi
  stage_end benchmarks "$v" "${ROWS[@]}"
fi

# ---- compute-sanitizer: memcheck on ember's kernels, racecheck/synccheck on shared memory
MEMCHECK=(op_cases_gpu_test ops_gpu_test mathops_gpu_test nn_ops_gpu_test shape_gpu_test tensor_gpu_test optim_gpu_test
          data_gpu_test cuda_path_gpu_test sweep_gpu_test)
# The kernels with __shared__ memory: reductions (block_sum, row_reduce), softmax, loss,
# batch norm, the direct convolutions. One entry per program (the log is named after it);
# op_cases_gpu_test: the op-case table's parity rows of the matmul/softmax/loss/dropout/var
# families (the old MathopsGpu.ParityTable) and the direct-convolution tier.
RACE=("ops_gpu_test:OpsGpu.LargeReductionsSplitAcrossBlocks"
      "op_cases_gpu_test:*OpParity*/*matmul*:*OpParity*/*linear*:*OpParity*/*softmax*:*OpParity*/*cross_entropy*:*OpParity*/*nll_loss*:*OpParity*/*mse_loss*:*OpParity*/*dropout*:*OpParity*/*var_*:*OpParity*/*std_*:*OpParity*/*logsumexp*:*OpParityDirectConv*"
      "nn_ops_gpu_test:NnGpu.RunningStatsMatchCpu"
      "sweep_gpu_test:SweepGpu.SoftmaxAndCrossEntropyAroundRowKernelSwitch:SweepGpu.ReductionsAroundBlockAndSplitSwitches:SweepGpu.BatchNormAroundItsBlockSize")
san_run() {  # tool log bin [gtest filter]: runs one program under the sanitizer, in the background
  local tool=$1 logf=$2 bin=$3 filter=${4:-}
  EMBER_CUDA_ALLOC=direct OMP_NUM_THREADS=${SAN_OMP:-1} timeout -k 5 "$T" "$SANITIZER" --tool "$tool" --error-exitcode 99 \
    --report-api-errors no "$BUILD/tests/$bin" ${filter:+--gtest_filter=$filter} >"$logf" 2>&1
}
san_row() {  # tool bin rc logf
  local errs
  errs=$(sed -n 's/.*ERROR SUMMARY: \([0-9]*\) error.*/\1/p' "$4" | tail -1)
  [ -z "$errs" ] && errs=$(grep -c '^========= [A-Z]' "$4")
  if grep -qE 'Device not supported|Target application terminated before first instrumented API call' "$4" && [ "$3" != 0 ]; then
    echo "| $1 | $2 | UNSUPPORTED: compute-sanitizer cannot instrument this machine: \`$(grep -m1 -E 'not supported|terminated' "$4" | cut -c1-120 | tr '|' ' ')\` |"
  elif [ "$3" = 0 ]; then echo "| $1 | $2 | PASS, ${errs:-0} errors |"
  elif [ "$3" = 124 ] || [ "$3" = 137 ]; then echo "| $1 | $2 | TIMEOUT ($T s), ${errs:-0} errors before it |"
  else echo "| $1 | $2 | FAIL (exit $3), ${errs:-?} errors: \`$(grep -m1 -E '^========= (Invalid|Race|Barrier|Program hit|Error)' "$4" | cut -c1-160 | tr '|' ' ')\` |"; fi
}
if ((!RUN_SAN)); then
  not_run memcheck "--no-sanitizer"
  not_run race_sync "--no-sanitizer"
elif ((!HAVE_GPU)); then
  stage_start memcheck
  stage_end memcheck "no GPU" "- compute-sanitizer: ${SANITIZER:-not found}; would run ${MEMCHECK[*]} with EMBER_CUDA_ALLOC=direct"
  stage_start race_sync
  stage_end race_sync "no GPU" "- would run racecheck and synccheck on: ${RACE[*]}"
elif [ -z "$SANITIZER" ]; then
  stage_start memcheck
  stage_end memcheck "FAIL (compute-sanitizer not found next to $NVCC)"
  not_run race_sync "compute-sanitizer not found"
else
  if fits memcheck 45; then
    stage_start memcheck
    T=$(budget 150 40)
    declare -A MPID
    SAN_OMP=$(omp_share ${#MEMCHECK[@]})
    for b in "${MEMCHECK[@]}"; do
      [ -x "$BUILD/tests/$b" ] || continue
      san_run memcheck "$LOGS/memcheck_$b.log" "$b" &
      MPID[$b]=$!
    done
    ROWS=("EMBER_CUDA_ALLOC=direct (each buffer's own bounds), API errors not reported (the OOM test provokes one); all programs at once, each under a $T s limit." "" "| tool | program | result |" "| --- | --- | --- |")
    bad=0
    for b in "${MEMCHECK[@]}"; do
      [ -n "${MPID[$b]:-}" ] || { ROWS+=("| memcheck | $b | not built |"); continue; }
      wait "${MPID[$b]}"
      rc=$?
      [ "$rc" != 0 ] && bad=1
      ROWS+=("$(san_row memcheck "$b" "$rc" "$LOGS/memcheck_$b.log")")
    done
    ((bad)) && v=FAIL || v=PASS
    stage_end memcheck "$v" "${ROWS[@]}"
  fi
  if fits race_sync 30; then
    stage_start race_sync
    T=$(budget 60 25)
    ROWS=("Selected tests that run the shared-memory kernels; each under a $T s limit." "" "| tool | program: tests | result |" "| --- | --- | --- |")
    bad=0
    for tool in racecheck synccheck; do
      declare -A RPID=()
      SAN_OMP=$(omp_share ${#RACE[@]})
      for spec in "${RACE[@]}"; do
        b=${spec%%:*} filter=${spec#*:}
        [ -x "$BUILD/tests/$b" ] || continue
        san_run "$tool" "$LOGS/${tool}_$b.log" "$b" "$filter" &
        RPID[$spec]=$!
      done
      for spec in "${RACE[@]}"; do
        [ -n "${RPID[$spec]:-}" ] || continue
        wait "${RPID[$spec]}"
        rc=$?
        [ "$rc" != 0 ] && bad=1
        ROWS+=("$(san_row "$tool" "${spec%%:*}: ${spec#*:}" "$rc" "$LOGS/${tool}_${spec%%:*}.log")")
      done
      [ "$(left)" -lt 40 ] && [ "$tool" = racecheck ] && { ROWS+=("| synccheck | (all) | not run: $(left) s left |"); break; }
    done
    ((bad)) && v=FAIL || v=PASS
    stage_end race_sync "$v" "${ROWS[@]}"
  fi
fi

# ---- end to end on the same GPU: ember against the machine's PyTorch
MNIST=""
for d in "${EMBER_DATA_DIR:-}" "$KIT_SRC/data/mnist" data/mnist ../shared/data/mnist; do
  [ -n "$d" ] && { [ -f "$d/train-images-idx3-ubyte.gz" ] || [ -f "$d/train-images-idx3-ubyte" ]; } && MNIST=$d && break
done
jget() { py -c "import json,sys; d=json.loads(sys.stdin.read().strip().splitlines()[-1]); print(d$1)" 2>/dev/null; }
if ((!RUN_E2E)); then
  not_run e2e "--no-e2e"
elif ((!HAVE_GPU)); then
  stage_start e2e
  torch_ok=$(timeout 60 env LD_LIBRARY_PATH="$ORIG_LD_LIBRARY_PATH" python3 -c 'import torch; print("PyTorch", torch.__version__)' 2>&1 | tail -1)
  stage_end e2e "no GPU" "- would train one LeNet MNIST epoch with $BUILD/apps/mnist ($( [ -x "$BUILD/apps/mnist" ] && echo built || echo 'not built')) on ${MNIST:-no MNIST data found} and time the ResNet-20 step (bench_ddp, $( [ -x "$BUILD/bench/bench_ddp" ] && echo built || echo 'not built')) against python3: $torch_ok"
elif fits e2e 40; then
  stage_start e2e
  ROWS=("| what | ember | PyTorch | ember / PyTorch time |" "| --- | --- | --- | ---: |")
  NOTES=("")
  bad=0
  # ResNet-20 (and LeNet) training step: bench_ddp's plain rows against bench/step_pytorch.py.
  if [ -x "$BUILD/bench/bench_ddp" ]; then
    timeout -k 5 "$(budget 60 30)" "$BUILD/bench/bench_ddp" --benchmark_filter='step_plain_.*/cuda' \
      --benchmark_out="$LOGS/bench/bench_ddp.json" --benchmark_out_format=json >"$LOGS/bench_ddp.log" 2>&1 || { bad=1; NOTES+=("- bench_ddp failed: $(tail -2 "$LOGS/bench_ddp.log" | tr '\n' ' ')"); }
    for m in resnet20:128 lenet:256; do
      model=${m%%:*} batch=${m#*:}
      em=$(py - "$LOGS/bench/bench_ddp.json" "step_plain_$model/cuda" <<'PY'
import json, sys
for b in json.load(open(sys.argv[1])).get("benchmarks", []):
    if b["name"].startswith(sys.argv[2]) and b.get("run_type") != "aggregate":
        print(f'{b["real_time"]:.2f} {b.get("images_per_s", 0):.0f}')
        break
PY
)
      pt=$(timeout -k 5 "$(budget 60 20)" env LD_LIBRARY_PATH="$ORIG_LD_LIBRARY_PATH" python3 bench/step_pytorch.py "$model" "$batch" 50 cuda 2>"$LOGS/pytorch_step_$model.log" | tail -1)
      echo "$pt" >>"$LOGS/pytorch_step_$model.log"
      pms=$(echo "$pt" | jget '["mean_step_ms"]') pips=$(echo "$pt" | jget '["images_per_second"]')
      read -r ems eips <<<"$em"
      ratio=""
      [ -n "$ems" ] && [ -n "$pms" ] && ratio=$(awk "BEGIN {printf \"%.2f\", $ems / $pms}")
      if [ -n "$pms" ] && [ -n "$pips" ]; then pcell="$(printf '%.2f' "$pms") ms, $(printf '%.0f' "$pips") img/s"
      else pcell="failed: $(grep -v '^$' "$LOGS/pytorch_step_$model.log" | tail -1 | cut -c1-120 | tr '|' ' ')"; fi
      ROWS+=("| $model training step, batch $batch (mean of 50) | ${ems:-?} ms, ${eips:-?} img/s | $pcell | ${ratio:-?} |")
      [ -n "$ems" ] || bad=1
    done
  else
    ROWS+=("| training steps | bench_ddp not built | | |")
    bad=1
  fi
  # Mixed precision (issue 12): the ResNet-18 and ResNet-20 steps in f32, fp16 and bf16
  # autocast (bench_amp) against PyTorch's torch.autocast on the same step.
  if [ -x "$BUILD/bench/bench_amp" ] && [ "$(left)" -gt 60 ]; then
    timeout -k 5 "$(budget 90 40)" "$BUILD/bench/bench_amp" --benchmark_filter='amp_step_.*/cuda' \
      --benchmark_out="$LOGS/bench/bench_amp.json" --benchmark_out_format=json >"$LOGS/bench_amp.log" 2>&1 || { bad=1; NOTES+=("- bench_amp failed: $(tail -2 "$LOGS/bench_amp.log" | tr '\n' ' ')"); }
    for model in resnet18 resnet20; do
      for amp in none f16 bf16; do
        [ "$(left)" -gt 40 ] || break 2
        em=$(py - "$LOGS/bench/bench_amp.json" "amp_step_$model/$amp/cuda" <<'PY'
import json, sys
for b in json.load(open(sys.argv[1])).get("benchmarks", []):
    if b["name"].startswith(sys.argv[2]) and b.get("run_type") != "aggregate":
        print(f'{b["real_time"]:.2f} {b.get("images_per_s", 0):.0f}')
        break
PY
)
        pamp=(); [ "$amp" = f16 ] && pamp=(--amp fp16); [ "$amp" = bf16 ] && pamp=(--amp bf16)
        pt=$(timeout -k 5 "$(budget 60 20)" env LD_LIBRARY_PATH="$ORIG_LD_LIBRARY_PATH" python3 bench/step_pytorch.py "$model" 128 30 cuda "${pamp[@]}" 2>"$LOGS/pytorch_amp_${model}_$amp.log" | tail -1)
        echo "$pt" >>"$LOGS/pytorch_amp_${model}_$amp.log"
        pms=$(echo "$pt" | jget '["mean_step_ms"]') pips=$(echo "$pt" | jget '["images_per_second"]')
        read -r ems eips <<<"$em"
        ratio=""
        [ -n "$ems" ] && [ -n "$pms" ] && ratio=$(awk "BEGIN {printf \"%.2f\", $ems / $pms}")
        if [ -n "$pms" ] && [ -n "$pips" ]; then pcell="$(printf '%.2f' "$pms") ms, $(printf '%.0f' "$pips") img/s"
        else pcell="failed: $(grep -v '^$' "$LOGS/pytorch_amp_${model}_$amp.log" | tail -1 | cut -c1-120 | tr '|' ' ')"; fi
        ROWS+=("| $model step, autocast $amp, batch 128 (mean of 30) | ${ems:-?} ms, ${eips:-?} img/s | $pcell | ${ratio:-?} |")
        [ -n "$ems" ] || bad=1
      done
    done
  fi
  # One LeNet MNIST epoch: the mnist app against bench/lenet_pytorch.py.
  if [ -z "$MNIST" ]; then
    ROWS+=("| LeNet MNIST epoch | no MNIST data (kit data/mnist, data/mnist, EMBER_DATA_DIR) | | |")
  elif [ -x "$BUILD/apps/mnist" ] && [ "$(left)" -gt 25 ]; then
    rm -rf "$LOGS/mnist_run"
    if timeout -k 5 "$(budget 90 15)" "$BUILD/apps/mnist" --data "$MNIST" --epochs 1 --device cuda \
         --out "$LOGS/mnist_run" --log-interval 100000 >"$LOGS/mnist.log" 2>&1; then
      m=$(tail -1 "$LOGS/mnist_run/metrics.jsonl")
      ets=$(echo "$m" | jget '["epoch_seconds"]') eips=$(echo "$m" | jget '["train_images_per_second"]') eacc=$(echo "$m" | jget '["test_acc"]')
      [ -n "$eips" ] && etrain=$(awk "BEGIN {printf \"%.2f\", 60000 / $eips}")
      [ -n "$ets" ] && ets=$(printf '%.1f' "$ets")
    else
      bad=1
      NOTES+=("- mnist app failed: $(tail -2 "$LOGS/mnist.log" | tr '\n' ' ')")
    fi
    pt=""
    [ "$(left)" -gt 15 ] && pt=$(timeout -k 5 "$(budget 90 5)" env LD_LIBRARY_PATH="$ORIG_LD_LIBRARY_PATH" python3 bench/lenet_pytorch.py "$MNIST" "$(nproc)" 0 cuda 2>"$LOGS/pytorch_lenet.log" | tail -1)
    echo "$pt" >>"$LOGS/pytorch_lenet.log"
    pts=$(echo "$pt" | jget '["train_seconds"]')
    ratio=""
    [ -n "${etrain:-}" ] && [ -n "$pts" ] && ratio=$(awk "BEGIN {printf \"%.2f\", $etrain / $pts}")
    ROWS+=("| LeNet MNIST epoch (60000 images, batch 64), training time | ${etrain:+$etrain s}${etrain:-failed}${eacc:+ (test acc $eacc%, epoch with test ${ets:-?} s)} | ${pts:+$(printf '%.2f' "$pts") s}${pts:-failed: $(grep -v '^$' "$LOGS/pytorch_lenet.log" | tail -1 | cut -c1-120 | tr '|' ' ')} | ${ratio:-?} |")
  else
    ROWS+=("| LeNet MNIST epoch | $( [ -x "$BUILD/apps/mnist" ] && echo "not run: $(left) s left" || echo 'mnist app not built') | | |")
  fi
  fw=$(tail -1 "$LOGS/pytorch_step_resnet20.log" 2>/dev/null | jget '["framework"]')
  NOTES+=("" "PyTorch: ${fw:-not importable}, its defaults (cudnn.benchmark off), same models, optimizer and batch; ember's epoch time includes its data loader, PyTorch's has the whole set on the GPU beforehand.")
  ((bad)) && v=FAIL || v="PASS (figures, not goals)"
  stage_end e2e "$v" "${ROWS[@]}" "${NOTES[@]}"
fi

# ---- several GPUs (a machine with 2+ and an MPI build)
if [ "$NGPU" -ge 2 ] && grep -q 'MPI=ON' "$LOGS/configure.log"; then
  if fits multi_gpu 60; then
    stage_start multi_gpu
    cmake --build "$BUILD" -j "$JOBS" --target dist_mpi_test >"$LOGS/build_dist.log" 2>&1
    if timeout -k 5 "$(budget 120 5)" tests/dist/run_mpi.sh "$NGPU" "$BUILD/tests/dist_mpi_test" >"$LOGS/dist_mpi.log" 2>&1; then
      stage_end multi_gpu PASS "- tests/dist/run_mpi.sh $NGPU dist_mpi_test (NCCL + MPI proofs)"
    else
      rc=$?
      [ "$rc" = 77 ] && stage_end multi_gpu "SKIPPED: $(head -1 "$LOGS/dist_mpi.log")" || stage_end multi_gpu "FAIL (exit $rc)"
    fi
  fi
else
  VERDICT[multi_gpu]="not run: $NGPU GPU(s)$( [ "$USE_KIT" = on ] && echo ', MPI off in the kit build')"
fi

# ---- NCCL without MPI (issue 13): ember's launcher, one worker per GPU (one GPU: a world of
# one), the NCCL unique id through the launcher's TCP store, Gloo on the CPU
if [ "$NGPU" -ge 1 ] && grep -q 'Gloo=ON' "$LOGS/configure.log"; then
  if fits nccl_store 60; then
    stage_start nccl_store
    cmake --build "$BUILD" -j "$JOBS" --target dist_mpi_test dist_launch >"$LOGS/build_nccl_store.log" 2>&1
    if timeout -k 5 "$(budget 120 5)" env EMBER_DIST_TIMEOUT=60 "$BUILD/tests/dist_launch" --nproc-per-node "$NGPU" -- \
        "$BUILD/tests/dist_mpi_test" --gtest_filter='DistMpi.Nccl*' >"$LOGS/nccl_store.log" 2>&1; then
      stage_end nccl_store PASS "- dist_launch --nproc-per-node $NGPU -- dist_mpi_test --gtest_filter='DistMpi.Nccl*' ($(grep -c '^\[       OK' "$LOGS/nccl_store.log") passed, $(grep -c '^\[  SKIPPED \] DistMpi' "$LOGS/nccl_store.log") skipped)"
    else
      stage_end nccl_store "FAIL (exit $?)" '```' "$(tail -15 "$LOGS/nccl_store.log")" '```'
    fi
  fi
else
  VERDICT[nccl_store]="not run: $NGPU GPU(s)$(grep -q 'Gloo=ON' "$LOGS/configure.log" || echo ', no Gloo in the build (the kit needs --prepare again for libgloo-dev)')"
fi

# ---- the whole suite (--full-suite)
if ((RUN_FULL)) && fits full_suite 120; then
  stage_start full_suite
  if timeout -k 5 "$(budget 100000 5)" bash -c "cmake --build '$BUILD' -j $JOBS >'$LOGS/build_all.log' 2>&1 && ctest --test-dir '$BUILD' -j $JOBS --output-on-failure >'$LOGS/ctest_all.log' 2>&1"; then
    stage_end full_suite "PASS: $(grep -E 'tests passed|tests failed' "$LOGS/ctest_all.log" | tail -1)"
  else
    stage_end full_suite "FAIL: $(grep -E 'tests passed|tests failed' "$LOGS/ctest_all.log" 2>/dev/null | tail -1)"
  fi
elif ((!RUN_FULL)); then
  VERDICT[full_suite]="not run (--full-suite not given)"
fi
exit 0
