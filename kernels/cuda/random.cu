// CUDA random fills: the twin of kernels/cpu/random.cpp. Both call random_value
// (kernels/random_math.h) per element, so one seed gives the same tensor on either device
// (bit-exact for uniform/bernoulli/randint; normal differs by the libm's last ulps).
#include <type_traits>

#include "core/strided_layout.h"
#include "core/cuda/check.h"
#include "kernels/random_math.h"
#include "core/cuda/stream.h"

namespace ember::cuda {

namespace {

constexpr int kThreads = 256;

// ---- kernels

template <class T>
__global__ void random_fill_kernel(T* __restrict__ out, int64_t n, RandomKind kind, bool f64,
                                   uint64_t seed, uint64_t offset, double a, double b) {
  int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    double v = random_value(kind, f64, i, seed, offset, a, b);
    if constexpr (std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>) {
      out[i] = T(float(v));
    } else {
      out[i] = static_cast<T>(v);
    }
  }
}

// ---- launchers

int grid_for(int64_t work) {
  int dev = 0;
  EMBER_CUDA_CHECK(cudaGetDevice(&dev));
  int64_t cap = int64_t(sm_count(dev)) * 16;
  int64_t blocks = ceil_div(work, kThreads);
  return int(blocks < cap ? (blocks > 0 ? blocks : 1) : cap);
}

}  // namespace

void random_fill(RandomKind kind, DType dtype, void* out, int64_t n, uint64_t seed,
                 uint64_t offset, double a, double b, cudaStream_t stream) {
  if (n == 0) return;
  bool f64 = dtype == DType::f64;
  EMBER_DISPATCH_ALL(dtype, "cuda random", [&] {
    random_fill_kernel<scalar_t><<<grid_for(n), kThreads, 0, stream>>>(
        static_cast<scalar_t*>(out), n, kind, f64, seed, offset, a, b);
    EMBER_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace ember::cuda
