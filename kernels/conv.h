#pragma once
// 2-D convolution (NCHW, groups, stride, padding, dilation): raw entry points.
// CPU: f32 passes choose per shape, by measurement, among direct AVX2 kernels
// (kernels/cpu/conv_direct.h), im2col + GEMM per image or batched over images
// (kernels/cpu/conv_gemm.h) and Winograd F(4x4, 3x3) (kernels/cpu/conv_winograd.h); f64 runs
// im2col + GEMM (Note [Choosing a CPU convolution algorithm] in kernels/cpu/conv.cpp); CUDA: cuDNN (kernels/cudnn/conv.cpp) or, without cuDNN or when
// it is switched off, direct kernels (kernels/cuda/conv.cu).
#include <cstdint>
#include <string>
#include <string_view>

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
/// `deterministic`: the same bits on every run and at any thread count (a fixed algorithm
/// rule instead of the measured choice, Note [Choosing a CPU convolution algorithm]).
void conv2d_fwd(DType dtype, const void* x, const void* w, const void* b, void* y,
                const ConvGeometry& g, bool deterministic = false);
/// Any of gx, gw, gb may be null (not needed). gw and gb are overwritten.
/// `deterministic`: the same bits on every run and at any thread count (Note
/// [Thread-count-independent sums] in kernels/cpu/conv.cpp).
void conv2d_bwd(DType dtype, const void* x, const void* w, const void* gy, void* gx, void* gw,
                void* gb, const ConvGeometry& g, bool deterministic = false);

/// The CPU convolution algorithms (Note [Choosing a CPU convolution algorithm]).
enum class ConvAlgo { automatic, direct, im2col, batched, winograd, dnnl };
/// The three passes a convolution's algorithm is chosen for.
enum class ConvPass { fwd, grad_input, grad_weight };
/// Forces one algorithm on every f32 pass it can take (the others choose as `automatic`,
/// the default: measured once per shape). Starts from EMBER_CPU_CONV_ALGO
/// (direct|im2col|batched|winograd|dnnl|auto) when that is set. For tests and benchmarks.
void set_conv_algo(ConvAlgo a);
ConvAlgo conv_algo();
const char* conv_algo_name(ConvAlgo a);
/// "auto", "direct", "im2col", "batched", "winograd" or "dnnl"; anything else throws.
ConvAlgo parse_conv_algo(std::string_view name);
/// The algorithm the latest f32 call of pass p ran (automatic before any).
ConvAlgo last_conv_algo(ConvPass p);
/// The measured choices so far, one line per (shape, pass, threads): each candidate's time
/// and the pick. For benchmark reports.
std::string conv_algo_choices();
/// Forgets the measured choices (the next call of each shape measures again).
void clear_conv_algo_choices();
/// The measured picks as text, one line per (shape, pass, threads): its key and the
/// algorithm. Saved with checkpoints and weights (Note [Algorithm choices travel with the
/// run]) so a resumed run or an evaluation in another process runs the same algorithms.
std::string export_conv_algo_choices();
/// Adds picks made by export_conv_algo_choices, replacing measured ones of the same key.
/// A pick the running machine cannot run (no AVX2 for direct) is measured again at use.
/// Throws on text that is not such a list, and then adds nothing.
void import_conv_algo_choices(const std::string& text);
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
