#!/usr/bin/env bash
# Installs every build and test dependency of ember from Debian packages (idempotent).
# Usage: scripts/setup.sh            (as root, or with sudo available)
set -euo pipefail

PKGS=(
  build-essential cmake ninja-build pkg-config ccache
  googletest libgtest-dev libgmock-dev libbenchmark-dev
  libopenblas-dev zlib1g-dev libstb-dev
  nlohmann-json3-dev libcli11-dev libyaml-cpp-dev libspdlog-dev
  libprotobuf-dev protobuf-compiler
  openmpi-bin libopenmpi-dev
  libgloo-dev
  # oneDNN: the optional CPU convolution backend (kernels/cpu/dnnl/, EMBER_DNNL)
  libdnnl-dev
  # libFuzzer (scripts/fuzz.sh, run by scripts/test.sh): clang and its runtime libraries
  # (libclang_rt.fuzzer and the sanitizers; about 65 MB). gcc's own -fsanitize needs nothing.
  clang-14 libclang-rt-14-dev
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "setup: all Debian packages present"
fi

if [ -x /usr/local/cuda/bin/nvcc ]; then
  echo "setup: CUDA toolkit found at /usr/local/cuda ($(/usr/local/cuda/bin/nvcc --version | tail -1))"
else
  echo "setup: no CUDA toolkit at /usr/local/cuda: building the CPU backend only"
fi
