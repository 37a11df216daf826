#pragma once
// 2-D pooling over contiguous (planes = N * C, H, W) inputs: max (with argmax indices),
// average (count_include_pad or not) and adaptive average (PyTorch's window formula).
#include <cstdint>

#include "core/strided_layout.h"
#include "core/dtype.h"
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

/// The clipped window of avg-pool output (oh, ow) and its divisor, as PyTorch (floor mode):
/// with count_include_pad the divisor counts padding up to the padded border.
struct AvgWindow {
  int64_t h0, h1, w0, w1, div;
};
EMBER_HD AvgWindow avg_window(const PoolGeometry& g, int64_t oh, int64_t ow, bool include_pad) {
  int64_t h0 = oh * g.sh - g.ph, w0 = ow * g.sw - g.pw;
  int64_t h1 = h0 + g.kh < g.h + g.ph ? h0 + g.kh : g.h + g.ph;
  int64_t w1 = w0 + g.kw < g.w + g.pw ? w0 + g.kw : g.w + g.pw;
  const int64_t pool = (h1 - h0) * (w1 - w0);
  h0 = h0 < 0 ? 0 : h0;
  w0 = w0 < 0 ? 0 : w0;
  h1 = h1 < g.h ? h1 : g.h;
  w1 = w1 < g.w ? w1 : g.w;
  return {h0, h1, w0, w1, include_pad ? pool : (h1 - h0) * (w1 - w0)};
}

/// Outputs [lo, hi) along one dim whose window (start o * s - p, size k) covers input i.
EMBER_HD void covering_outputs(int64_t i, int64_t k, int64_t s, int64_t p, int64_t out, int64_t& lo,
                               int64_t& hi) {
  lo = i + p < k ? 0 : (i + p - k) / s + 1;
  hi = (i + p) / s + 1;
  hi = hi < out ? hi : out;
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
