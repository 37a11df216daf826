// CUDA dropout: the shared keep rule (kernels/dropout.h) applied elementwise.
#include <cuda_runtime.h>

#include <algorithm>

#include "core/strided_layout.h"
#include "core/cuda/check.h"
#include "kernels/dropout.h"
#include "core/error.h"

namespace ember::cuda {

namespace {

// ---- kernels

// Each thread takes 4 consecutive elements: they share one Philox counter (i / 4).
template <class T>
__global__ void dropout_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t n,
                               uint64_t seed, uint64_t offset, double p, compute_t<T> scale) {
  using C = compute_t<T>;
  for (int64_t q = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; q * 4 < n;
       q += int64_t(gridDim.x) * blockDim.x) {
    unsigned keep = dropout_keep4(q, seed, offset, p);
    int64_t end = min(q * 4 + 4, n);
    for (int64_t i = q * 4, j = 0; i < end; ++i, ++j)
      y[i] = (keep >> j) & 1u ? T(C(x[i]) * scale) : T(C(0));
  }
}

// ---- launchers

constexpr int kThreads = 256;

}  // namespace

void dropout(DType dtype, const void* x, void* y, int64_t n, uint64_t seed, uint64_t offset,
             double p, double scale, cudaStream_t stream) {
  if (n == 0) return;
  EMBER_DISPATCH_FLOAT(dtype, "dropout", [&] {
    using T = scalar_t;
    unsigned grid = unsigned(std::min<int64_t>(ceil_div(ceil_div(n, 4), kThreads), int64_t(1) << 16));
    dropout_kernel<T><<<grid, kThreads, 0, stream>>>(static_cast<const T*>(x), static_cast<T*>(y),
                                                     n, seed, offset, p,
                                                     compute_t<T>(scale));
    EMBER_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace ember::cuda
