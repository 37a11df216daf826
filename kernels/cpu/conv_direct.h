#pragma once
// Direct f32 convolution for stride-1 convolutions on x86-64 CPUs with AVX2 and FMA: forward,
// weight gradient, and the input gradient as a convolution of the output gradient. Internal
// to kernels/cpu/conv.cpp, which spreads images over threads and falls back to im2col + BLAS.
//
// Note [Direct convolution]: im2col turns a 1-channel 28x28 image into a 25 x 784 matrix,
// 25 times its size, and BLAS runs the skinny products that follow (6 x 25 x 784) at a
// fraction of its speed; writing and reading the column matrices cost as much again. Here
// each image is copied once into a zero-padded buffer (rows of Wp = W + 2 pw) and every tap
// (c, i, j) is a fixed offset into it, so an output row is a sum over taps of shifted input
// rows times one weight each: an implicit GEMM with register tiles of up to 6 output
// channels x 16 output columns (forward) or 3 channels x 4 taps of partial dot products
// (weight gradient). Lanes past the end of an output row are computed from in-buffer values
// and never stored (forward) or masked to zero (weight gradient). Short rows (LeNet's second
// layer has rows of 10) would waste most lanes, so there the tiles run across 16 output
// channels instead (a few output positions x 16 channels, or 6 taps x 16 channels of the
// weight gradient), on transposed copies of the weights or of the output gradient. Kernel
// rows that fall wholly into the top or bottom padding are skipped, which matters for the
// input gradient (padded by k - 1). Measured on LeNet (bench_lenet, one thread), this more
// than halved the convolutions' time.
#include <cstdint>
#include <vector>

#include "kernels/conv.h"

namespace ember::cpu::direct {

/// How the direct kernels tile a convolution's output: 16 columns of one output row per
/// register tile (rows), or 16 output channels of a few output positions (channels: for
/// short rows and channel counts that are multiples of 16, e.g. LeNet's second layer);
/// none when neither fills at least 60% of its lanes (im2col + BLAS then).
enum class Tiling { none, rows, channels };

/// The tiling of the forward pass (and of the input gradient's convolution) of g, f32 being
/// the caller's check: none unless stride 1, one group and a CPU with AVX2 and FMA.
Tiling fwd_tiling(const ConvGeometry& g);
/// The tiling of the weight gradient (rows: 8-wide; channels: 16-wide).
Tiling grad_weight_tiling(const ConvGeometry& g);
inline bool eligible(const ConvGeometry& g) { return fwd_tiling(g) != Tiling::none; }
inline bool eligible_grad_weight(const ConvGeometry& g) {
  return grad_weight_tiling(g) != Tiling::none;
}

/// The input gradient of a stride-1 convolution is itself one: the output gradient
/// (C_out channels, padded by dilation * (k - 1) - padding) convolved with the weights
/// flipped in both spatial dims and with C_in and C_out swapped. Eligible when that
/// convolution is and the padding is not negative (padding <= dilation * (k - 1)).
bool eligible_grad_input(const ConvGeometry& g);
/// That convolution's geometry (input gy, output gx).
ConvGeometry grad_input_geometry(const ConvGeometry& g);
/// That convolution's weights, w (C_out, C_in, kH, kW) flipped in kH and kW, as
/// (C_in, C_out, kH, kW); pass them through fwd_weights with grad_input_geometry(g).
std::vector<float> grad_input_weights(const float* w, const ConvGeometry& g);

/// w (C_out, C_in, kH, kW) in the forward kernel's order for fwd_tiling(g): taps (i, c, j),
/// kernel rows contiguous so that an output row next to the top or bottom padding skips the
/// kernel rows that would only read padding; channels tiling: transposed to (taps, C_out
/// rounded up to 16, zero-filled).
std::vector<float> fwd_weights(const float* w, const ConvGeometry& g);

/// Scratch of one thread for fwd: the zero-padded image, the taps' offsets into it and, for
/// the channels tiling, the output in (positions, channels) order before it is transposed.
class Workspace {
 public:
  explicit Workspace(const ConvGeometry& g);
  Tiling tiling;
  int64_t hp, wp;             // padded plane
  int64_t cp;                 // C_out rounded up to 16 (channels tiling)
  std::vector<int64_t> offr;  // offset of tap (i, c, j) in the padded image
  std::vector<float> xp;      // (C_in, hp, wp) plus slack for vector reads past the last row
  std::vector<float> bias;    // (cp): the bias or zeros (channels tiling)
  std::vector<float> yt;      // (OH * OW, cp) (channels tiling)
};

/// y[n] = conv(x[n], w) + b for images [n0, n1); w from fwd_weights; b may be null.
void fwd(const float* x, const float* w, const float* b, float* y, const ConvGeometry& g,
         int64_t n0, int64_t n1, Workspace& ws);
/// gw (C_out, C_in * kH * kW) += the weight gradient of images [n0, n1).
void grad_weight(const float* x, const float* gy, float* gw, const ConvGeometry& g, int64_t n0,
                 int64_t n1);

}  // namespace ember::cpu::direct
