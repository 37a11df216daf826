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
  /// implementation, 1.1-7.7x slower on ResNet-20's layers: bench/results/2026-12-01-cpu-onednn.md).
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

/// Which backend cpu::conv2d_fwd / conv2d_bwd use for f32 (f64 always runs ember's own).
enum class CpuConvBackend {
  ember,     // ember's own kernels (the default)
  dnnl,      // oneDNN for every convolution it supports
  measured,  // oneDNN where dnnl_conv_wins says it beat ember's kernels, ember's elsewhere
};

/// EMBER_CPU_CONV_BACKEND=ember|dnnl|measured (unset: ember; read once; a value naming
/// oneDNN in a build without it is an error), unless set_cpu_conv_backend replaced it. For
/// tests and benchmarks; the default per-shape choice belongs to conv.cpp's chooser.
CpuConvBackend cpu_conv_backend();
void set_cpu_conv_backend(CpuConvBackend b);

/// The per-shape result of bench/results/2026-12-01-cpu-onednn.md (f32, AVX-512, 1-2
/// threads, ember's kernels as of that date): oneDNN won every pass of the kernels larger
/// than 1x1 with at least 32 input channels per group, and of the stride-2 ones with 16;
/// ember's own kernels won the 1-16 channel layers (LeNet, the stems, ResNet-20's first
/// stage) and the 1x1 stride-2 shortcuts, where oneDNN's reorders into 16-channel blocks
/// cost more than the arithmetic. Grouped convolutions were not measured (false).
bool dnnl_conv_wins(const ConvGeometry& g);

/// The hook at the top of cpu::conv2d_fwd / conv2d_bwd: the backend says oneDNN for this
/// geometry, oneDNN supports it, and not in deterministic mode (unless oneDNN were
/// deterministic).
bool use_dnnl_conv(DType dtype, const ConvGeometry& g, bool deterministic);

enum class DnnlConvPass { fwd, bwd_data, bwd_weights };

/// The oneDNN implementation that runs this pass under the current configuration and
/// thread count (its impl_info_str, e.g. "jit:avx512_core", "jit_wino_4x3:avx512_core",
/// "gemm:jit"); makes and caches the primitive. Empty when not supported.
std::string dnnl_conv_implementation(const ConvGeometry& g, DnnlConvPass pass, bool bias);

/// Primitives created so far (every pass and reorder, all keys): a test checks the cache.
int64_t dnnl_conv_cached_primitives();

}  // namespace ember::cpu
