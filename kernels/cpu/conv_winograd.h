#pragma once
// Winograd F(4x4, 3x3) convolution for f32 3x3 stride-1 convolutions (forward, and the input
// gradient as the convolution of gy with the flipped, transposed weights). Internal to
// kernels/cpu/conv.cpp, which spreads image ranges over threads and picks the algorithm.
//
// Note [Winograd F(4x4, 3x3)]: each 4x4 tile of an output plane is a 6x6 patch of each input
// plane correlated with a 3x3 kernel. Winograd's minimal filtering algorithm (Lavin & Gray
// 2015) computes it as Y = A^T [ sum_c (G g_c G^T) .* (B^T d_c B) ] A with constant matrices
// A (6x4), B (6x6), G (6x3) from the interpolation points 0, 1, -1, 2, -2 and infinity: 36
// multiplies per tile and channel pair instead of 144. With the weights transformed once
// (U = G g G^T, in double, rounded once) and the input patches transformed per channel
// (V = B^T d B), the sum over channels is, for each of the 36 positions p, one GEMM:
// M_p (C_out, tiles) = U_p (C_out, C_in) V_p (C_in, tiles), run through OpenBLAS over the
// tiles of a block of images at once (about kWinogradTiles columns); the output transform
// A^T M A then gives 4x4 outputs per tile, edges cut to the plane (input reads past the
// plane are zeros, which is also how padding enters).
//
// Numerical error: the transforms mix values of different size, so the rounding error is
// not that of the direct sum. Bounding every rounding of the bilinear form (Higham's
// analysis for fast matrix products, applied to Y = A^T[(G g G^T) .* (B^T d B)]A) gives, per
// output element and in units of the round-off u = 2^-24,
//   |Y - Y_exact| <= gamma * C_in * a_i * a_j * max|g| * max|d|,   a_i = sum_p |A^T_ip| s_G(p) s_B(p)
// with s_G(p) and s_B(p) the absolute row sums of G and B^T and gamma ~ (C_in + 12) u (the
// GEMM's sum plus the depth of the transforms). Here s_G s_B = (2.5, 5, 5, 1.75, 1.75, 10)
// and a = (16, 17, 24, 48): the worst output row/column amplifies the bound 48^2 / 9 = 256
// times over the direct convolution's 9 * C_in * max|g| max|d| * gamma. In practice (random
// data) the error is about 10-30x that of the direct sum, ~1e-5 relative: fine for training
// (cuDNN and oneDNN use the same F(4x4, 3x3)), and why f64 never takes this path. The test
// (Conv2d.CpuAlgorithmsMatchF64 in tests/nn_ops_test.cpp) asserts the per-element form of the
// bound, gamma * |A^T| [sum_c (|G||g_c||G^T|) .* (|B^T||d_c||B|)] |A| computed from the
// matrices and the data, and that the scalar form above holds over it.
#include <cstdint>
#include <vector>

#include "kernels/conv.h"

namespace ember::cpu::winograd {

/// 3x3, stride 1, dilation 1, one group, non-empty output.
bool eligible(const ConvGeometry& g);
/// Also the input gradient's convolution (padding 2 - p must not be negative).
bool eligible_grad_input(const ConvGeometry& g);

/// U (36, C_out, C_in) = G w G^T per (C_out, C_in) pair of w (C_out, C_in, 3, 3), in this
/// thread's scratch slot 4 (valid until its next call on this thread).
const float* transform_weights(const float* w, const ConvGeometry& g);
/// y[n] = conv(x[n], w) + b for images [n0, n1); u from transform_weights; b may be null.
void fwd(const float* x, const float* u, const float* b, float* y, const ConvGeometry& g, int64_t n0, int64_t n1);

/// The transform matrices (row-major: A^T 4x6, B^T 6x6, G 6x3), for the error bound's test.
extern const double kAT[4][6], kBT[6][6], kG[6][3];

}  // namespace ember::cpu::winograd
