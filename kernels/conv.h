#pragma once
// 2-D convolution (NCHW, groups, stride, padding, dilation): raw entry points.
// CPU: direct AVX2 kernels for f32 stride-1 convolutions (kernels/cpu/conv_direct.h), else
// im2col + BLAS GEMM; CUDA: cuDNN (kernels/cudnn/conv.cpp) or, without cuDNN or when
// it is switched off, direct kernels (kernels/cuda/conv.cu).
#include <cstdint>

#include "core/dtype.h"
#if EMBER_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

namespace ember {

/// Everything the kernels need to know about one convolution.
struct ConvGeometry {
  int64_t n = 0, c_in = 0, h = 0, w = 0;  // input (N, C_in, H, W)
  int64_t c_out = 0, kh = 0, kw = 0;      // weight (C_out, C_in / groups, kH, kW)
  int64_t oh = 0, ow = 0;                 // output (N, C_out, OH, OW)
  int64_t sh = 1, sw = 1, ph = 0, pw = 0, dh = 1, dw = 1;
  int64_t groups = 1;
};

}  // namespace ember

namespace ember::cpu {
/// y = conv(x, w) + b; b may be null. dtype f32 or f64; all buffers contiguous.
void conv2d_fwd(DType dtype, const void* x, const void* w, const void* b, void* y,
                const ConvGeometry& g);
/// Any of gx, gw, gb may be null (not needed). gw and gb are overwritten.
/// `deterministic`: the weight and bias gradients do not depend on the thread count
/// (Note [Thread-count-independent sums] in kernels/cpu/conv.cpp).
void conv2d_bwd(DType dtype, const void* x, const void* w, const void* gy, void* gx, void* gw,
                void* gb, const ConvGeometry& g, bool deterministic = false);
}  // namespace ember::cpu

#if EMBER_WITH_CUDA
namespace ember::cuda {
// Direct kernels: the path of a build without cuDNN (deterministic, no workspace).
void conv2d_fwd(DType dtype, const void* x, const void* w, const void* b, void* y,
                const ConvGeometry& g, cudaStream_t stream);
void conv2d_bwd(DType dtype, const void* x, const void* w, const void* gy, void* gx, void* gw,
                void* gb, const ConvGeometry& g, cudaStream_t stream);
}  // namespace ember::cuda
#endif

#if EMBER_WITH_CUDNN
namespace ember::cudnn {
// cuDNN calls on the device's current stream; algorithms found once per shape and cached.
// `deterministic` restricts the choice to deterministic algorithms.
void conv2d_fwd(DType dtype, const void* x, const void* w, const void* b, void* y,
                const ConvGeometry& g, int device, bool deterministic);
void conv2d_bwd(DType dtype, const void* x, const void* w, const void* gy, void* gx, void* gw,
                void* gb, const ConvGeometry& g, int device, bool deterministic);
}  // namespace ember::cudnn
#endif
