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
// and never stored (forward) or masked to zero (weight gradient), so the path is taken only
// where rows fill most of a 16-wide tile. Kernel rows that fall wholly into the top or
// bottom padding are skipped, which matters for the input gradient (padded by k - 1).
// Measured on LeNet (bench_lenet, one thread), this roughly halved the convolutions' time.
#include <cstdint>
#include <vector>

#include "kernels/conv.h"

namespace ember::cpu::direct {

/// The direct kernels handle g (f32 is the caller's check) and beat im2col + BLAS on it:
/// stride 1, one group, output rows that fill most of the 16-wide tiles, and this CPU has
/// AVX2 and FMA.
bool eligible(const ConvGeometry& g);

/// The input gradient of a stride-1 convolution is itself one: the output gradient
/// (C_out channels, padded by dilation * (k - 1) - padding) convolved with the weights
/// flipped in both spatial dims and with C_in and C_out swapped. Eligible when that
/// convolution is and the padding is not negative (padding <= dilation * (k - 1)).
bool eligible_grad_input(const ConvGeometry& g);
/// That convolution's geometry (input gy, output gx).
ConvGeometry grad_input_geometry(const ConvGeometry& g);
/// That convolution's weights in fwd's order: w (C_out, C_in, kH, kW) flipped in kH and kW,
/// as (C_in, kH, C_out, kW).
std::vector<float> grad_input_weights(const float* w, const ConvGeometry& g);

/// Scratch of one thread: the zero-padded image and the taps' offsets into it.
class Workspace {
 public:
  explicit Workspace(const ConvGeometry& g);
  int64_t hp, wp;             // padded plane
  std::vector<int64_t> off;   // offset of tap (c, i, j), in weight order (weight gradient)
  std::vector<int64_t> offr;  // offset of tap (i, c, j): row-major taps (forward)
  std::vector<float> xp;      // (C_in, hp, wp) plus slack for vector reads past the last row
};

/// w (C_out, C_in, kH, kW) reordered to (C_out, kH, C_in, kW), the forward kernel's tap
/// order: the taps of one kernel row are contiguous, so an output row next to the top or
/// bottom padding skips the kernel rows that would only read padding.
std::vector<float> fwd_weights(const float* w, const ConvGeometry& g);

/// y[n] = conv(x[n], w) + b for images [n0, n1); w from fwd_weights; b may be null.
void fwd(const float* x, const float* w, const float* b, float* y, const ConvGeometry& g,
         int64_t n0, int64_t n1, Workspace& ws);
/// gw (C_out, C_in * kH * kW) += the weight gradient of images [n0, n1).
void grad_weight(const float* x, const float* gy, float* gw, const ConvGeometry& g, int64_t n0,
                 int64_t n1, Workspace& ws);

}  // namespace ember::cpu::direct
