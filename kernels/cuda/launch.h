#pragma once
// Launch helpers shared by the .cu files: grid sizing and 128-bit vector types.
#include <cuda_runtime_api.h>

#include <cstdint>

#include "core/strided_layout.h"
#include "core/cuda/check.h"
#include "core/cuda/stream.h"

namespace ember::cuda {

inline constexpr int kThreads = 256;

/// Blocks for a grid-stride loop over `work` items: enough to fill the GPU, no more.
inline int grid_for(int64_t work, int threads = kThreads) {
  int dev = 0;
  EMBER_CUDA_CHECK(cudaGetDevice(&dev));
  int64_t cap = int64_t(sm_count(dev)) * 16;
  int64_t g = ceil_div(work, threads);
  if (g > cap) g = cap;
  return int(g < 1 ? 1 : g);
}

/// VEC elements of T moved as one aligned load/store (128 bits when sizeof(T)*VEC == 16).
template <class T, int VEC>
struct alignas(sizeof(T) * VEC) Vec {
  T v[VEC];
};

template <class T>
inline constexpr int vec_width() {
  return sizeof(T) >= 16 ? 1 : int(16 / sizeof(T));
}

inline bool aligned_to(const void* p, size_t bytes) {
  return reinterpret_cast<uintptr_t>(p) % bytes == 0;
}

}  // namespace ember::cuda
