#pragma once
// 2-D pooling over contiguous (planes = N * C, H, W) inputs: max (with argmax indices),
// average (count_include_pad or not) and adaptive average (PyTorch's window formula).
#include <cstdint>

#include "kernels/common.h"
#include "tensor/dtype.h"
#if EMBER_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

namespace ember {

struct PoolGeometry {
  int64_t planes = 0, h = 0, w = 0, oh = 0, ow = 0;
  int64_t kh = 1, kw = 1, sh = 1, sw = 1, ph = 0, pw = 0;  // unused by adaptive pooling
};

/// Adaptive pooling window of output o over an input of n for m outputs: [start, end).
EMBER_HD int64_t adaptive_start(int64_t o, int64_t n, int64_t m) { return (o * n) / m; }
EMBER_HD int64_t adaptive_end(int64_t o, int64_t n, int64_t m) {
  return ((o + 1) * n + m - 1) / m;
}

}  // namespace ember

namespace ember::cpu {
/// idx gets the argmax of each window as ih * W + iw within its plane.
void max_pool2d_fwd(DType dtype, const void* x, void* y, int64_t* idx, const PoolGeometry& g);
void max_pool2d_bwd(DType dtype, const void* gy, const int64_t* idx, void* gx, const PoolGeometry& g);
void avg_pool2d_fwd(DType dtype, const void* x, void* y, const PoolGeometry& g, bool count_include_pad);
void avg_pool2d_bwd(DType dtype, const void* gy, void* gx, const PoolGeometry& g, bool count_include_pad);
void adaptive_avg_pool2d_fwd(DType dtype, const void* x, void* y, const PoolGeometry& g);
void adaptive_avg_pool2d_bwd(DType dtype, const void* gy, void* gx, const PoolGeometry& g);
}  // namespace ember::cpu

#if EMBER_WITH_CUDA
namespace ember::cuda {
void max_pool2d_fwd(DType dtype, const void* x, void* y, int64_t* idx, const PoolGeometry& g,
                    cudaStream_t stream);
void max_pool2d_bwd(DType dtype, const void* gy, const int64_t* idx, void* gx, const PoolGeometry& g,
                    cudaStream_t stream);
void avg_pool2d_fwd(DType dtype, const void* x, void* y, const PoolGeometry& g, bool count_include_pad,
                    cudaStream_t stream);
void avg_pool2d_bwd(DType dtype, const void* gy, void* gx, const PoolGeometry& g,
                    bool count_include_pad, cudaStream_t stream);
void adaptive_avg_pool2d_fwd(DType dtype, const void* x, void* y, const PoolGeometry& g,
                             cudaStream_t stream);
void adaptive_avg_pool2d_bwd(DType dtype, const void* gy, void* gx, const PoolGeometry& g,
                             cudaStream_t stream);
}  // namespace ember::cuda
#endif
