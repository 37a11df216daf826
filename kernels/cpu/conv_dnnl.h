#pragma once
// oneDNN convolutions on the CPU: an optional backend next to ember's own kernels
// (kernels/cpu/conv.cpp), the way cuDNN serves the GPU side. Note [oneDNN convolutions] in
// kernels/cpu/dnnl/conv_dnnl.cpp says what runs and why. Include this header
// unconditionally: in a build without oneDNN (EMBER_WITH_DNNL=0) the functions exist, take
// nothing and return false.
#include <string>

#include "core/dtype.h"
#include "kernels/conv.h"

namespace ember::cpu {

/// How oneDNN runs a convolution. Part of the primitive cache's key, so it may change
/// between calls.
struct DnnlConvConfig {
  /// true: oneDNN chooses its own (blocked, nChw16c-like) layouts, and ember's NCHW/OIHW
  /// buffers are reordered into and out of them around each primitive. false: the
  /// primitive runs on the NCHW/OIHW buffers themselves (oneDNN then takes its im2col + GEMM
  /// implementation, several times slower: bench/results/2026-12-01-cpu-onednn.md).
  bool blocked = true;
  /// true: algorithm::convolution_auto, which lets oneDNN pick Winograd F(4,3) for 3x3
  /// stride-1 shapes where it expects a gain (fewer multiplications, larger rounding
  /// error); false: algorithm::convolution_direct only (what PyTorch runs).
  bool winograd = false;
};

/// The configuration in use: EMBER_DNNL_CONV_LAYOUT=blocked|plain and
/// EMBER_DNNL_CONV_ALGO=direct|auto (read once), unless set_dnnl_conv_config replaced it.
DnnlConvConfig dnnl_conv_config();
void set_dnnl_conv_config(const DnnlConvConfig& c);

/// Whether oneDNN can run this convolution: the build has it, dtype is f32, and no
/// dimension is empty (those stay on ember's own path).
bool dnnl_conv_supported(DType dtype, const ConvGeometry& g);

/// y = conv(x, w) + b, b may be null: the contract of cpu::conv2d_fwd. Returns false and
/// does nothing when !dnnl_conv_supported(dtype, g).
bool dnnl_conv2d_fwd(DType dtype, const void* x, const void* w, const void* b, void* y,
                     const ConvGeometry& g);

/// The gradients of the convolution above: the contract of cpu::conv2d_bwd. Any of gx, gw,
/// gb may be null (not needed); gw and gb are overwritten, not accumulated. Returns false
/// and does nothing when !dnnl_conv_supported(dtype, g).
bool dnnl_conv2d_bwd(DType dtype, const void* x, const void* w, const void* gy, void* gx,
                     void* gw, void* gb, const ConvGeometry& g);

/// Whether oneDNN's results are bitwise the same at any thread count (they are not:
/// Note [oneDNN convolutions]); deterministic mode (ember::set_deterministic) must then
/// keep ember's own kernels.
bool dnnl_conv_deterministic();

/// Whether oneDNN is forced for every convolution it supports: EMBER_CPU_CONV_BACKEND=dnnl
/// (`ember` or unset: not forced; read once, a value naming oneDNN in a build without it is
/// an error), unless set_dnnl_conv_forced replaced it. For tests and benchmarks; the
/// default per-shape choice belongs to conv.cpp's chooser.
bool dnnl_conv_forced();
void set_dnnl_conv_forced(bool on);

/// The hook at the top of cpu::conv2d_fwd / conv2d_bwd: forced, supported, and not in
/// deterministic mode (unless oneDNN were deterministic).
bool use_dnnl_conv(DType dtype, const ConvGeometry& g, bool deterministic);

enum class DnnlConvPass { fwd, bwd_data, bwd_weights };

/// The oneDNN implementation that runs this pass under the current configuration and
/// thread count (its impl_info_str, e.g. "jit:avx512_core", "jit_wino_4x3:avx512_core",
/// "gemm:jit"); makes and caches the primitive. Empty when not supported.
std::string dnnl_conv_implementation(const ConvGeometry& g, DnnlConvPass pass, bool bias);

/// Primitives created so far (every pass and reorder, all keys): a test checks the cache.
int64_t dnnl_conv_cached_primitives();

}  // namespace ember::cpu
