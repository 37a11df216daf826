#pragma once
// Convolution lowered to GEMM through OpenBLAS: im2col + one GEMM per image (any dtype,
// groups, stride, dilation: the exact reference path, and f64's only one), and the batched
// lowering that puts several images' columns side by side in one GEMM (f32, one group).
// Internal to kernels/cpu/conv.cpp, which spreads image ranges over threads and picks the
// algorithm (Note [Choosing a CPU convolution algorithm] there).
//
// Note [Batched GEMM lowering]: a per-image GEMM has N = OH * OW columns: 64 on an 8x8 map,
// 16 on a 4x4 one, where OpenBLAS runs far below its peak (its micro-kernel tiles are 16
// columns wide and the packing of the C_out x (C_in * 9) weights is paid again per image).
// Putting B images' column matrices side by side, col (C_in * kH * kW, B * OH * OW), makes
// one GEMM of B times the columns: forward Y_B = W col, weight gradient gW += gY_B col^T
// (the sum over the block's images is the GEMM's own inner sum), input gradient
// gcol = W^T gY_B then col2im per image. The output and its gradient are NCHW per image, so
// Y_B and gY_B are (C_out, B * OH * OW) staging copies, scattered or gathered per image:
// C_out * B * OH * OW floats moved against C_in * kH * kW times as many multiply-adds. B
// depends on the geometry alone (about kBatchedColumns columns), never on the thread count.
#include <cstdint>

#include "kernels/conv.h"

namespace ember::cpu::gemm_conv {

/// y[n] = conv(x[n], w) + b for images [n0, n1), one im2col + GEMM per image and group.
template <class T>
void fwd_images(const T* x, const T* w, const T* b, T* y, const ConvGeometry& g, int64_t n0, int64_t n1);
/// gx[n] for images [n0, n1) (overwritten): GEMM + col2im per image.
template <class T>
void grad_input_images(const T* w, const T* gy, T* gx, const ConvGeometry& g, int64_t n0, int64_t n1);
/// gwt += the weight gradient of images [n0, n1), in transposed per-group blocks
/// (K_g, C_out / groups) (the operand order OpenBLAS runs fastest at LeNet-sized shapes);
/// transpose_weight_blocks turns the sum into (C_out, K_g) order.
template <class T>
void grad_weight_images(const T* x, const T* gy, T* gwt, const ConvGeometry& g, int64_t n0, int64_t n1);
template <class T>
void transpose_weight_blocks(const T* gwt, T* gw, const ConvGeometry& g);

/// Whether the batched lowering takes g (f32 being the caller's check): one group.
bool batched_eligible(const ConvGeometry& g);
/// Images per batched GEMM for g (Note [Batched GEMM lowering]).
int64_t batched_block(const ConvGeometry& g);
void fwd_batched(const float* x, const float* w, const float* b, float* y, const ConvGeometry& g, int64_t n0,
                 int64_t n1);
void grad_input_batched(const float* w, const float* gy, float* gx, const ConvGeometry& g, int64_t n0, int64_t n1);
/// gw (C_out, C_in * kH * kW) += the weight gradient of images [n0, n1).
void grad_weight_batched(const float* x, const float* gy, float* gw, const ConvGeometry& g, int64_t n0,
                         int64_t n1);

/// A per-thread scratch buffer of at least n floats, kept for the thread's next call (the
/// batched and Winograd buffers are megabytes: allocating and faulting them in per call costs
/// as much as a small convolution). slot tells a caller's buffers apart: 0-1 batched,
/// 2-3 Winograd's per-thread V and M, 4 the Winograd weights (the calling thread's, read by
/// the whole team).
float* scratch(int slot, int64_t n);

}  // namespace ember::cpu::gemm_conv
