#pragma once
// Classification losses over (outer, C, inner) logits (see kernels/softmax.h for the
// layout): row r = o*inner + i reads label[r] and elements o*C*inner + c*inner + i.
// Per-row outputs are in the accumulation type A (f32 for f32/f16/bf16, f64 for f64).
// A label equal to ignore_index gives loss 0 and valid 0; any other label outside [0, C)
// is reported through `bad_row`: it holds rows() (no bad row) before the call and is
// lowered to the smallest such row (the same row on every device, for the same message).
#include <cstdint>

#include "core/dtype.h"
#if EMBER_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

namespace ember {
struct LossShape {
  int64_t outer = 1, C = 1, inner = 1;
  int64_t rows() const { return outer * inner; }
};
}  // namespace ember

namespace ember::cpu {
/// Fused log-softmax + NLL with label smoothing eps:
///   loss[r] = lse - (1 - eps) * x[y] - eps * mean_c(x[c]),  lse[r] = log(sum_c exp(x[c])).
void cross_entropy_fwd(DType dtype, const void* logits, const int64_t* labels, void* loss,
                       void* valid, void* lse, const LossShape& s, double smoothing,
                       int64_t ignore_index, int64_t* bad_row);
/// gx[r, c] = (softmax[c] - (1 - eps) * [c == y] - eps / C) * g[r * g_stride] (0 for ignored
/// rows). g is in the accumulation type; g_stride 0 broadcasts one value.
void cross_entropy_bwd(DType dtype, const void* logits, const int64_t* labels, const void* lse,
                       const void* g, int64_t g_stride, void* gx, const LossShape& s,
                       double smoothing, int64_t ignore_index);
/// loss[r] = -log_probs[r, y].
void nll_fwd(DType dtype, const void* log_probs, const int64_t* labels, void* loss, void* valid,
             const LossShape& s, int64_t ignore_index, int64_t* bad_row);
/// gx[r, c] = -g[r * g_stride] where c == y (not ignored), else 0.
void nll_bwd(DType dtype, const int64_t* labels, const void* g, int64_t g_stride, void* gx,
             const LossShape& s, int64_t ignore_index);
}  // namespace ember::cpu

#if EMBER_WITH_CUDA
namespace ember::cuda {
// As the CPU twins; bad_row points to device memory.
void cross_entropy_fwd(DType dtype, const void* logits, const int64_t* labels, void* loss,
                       void* valid, void* lse, const LossShape& s, double smoothing,
                       int64_t ignore_index, int64_t* bad_row, cudaStream_t stream);
void cross_entropy_bwd(DType dtype, const void* logits, const int64_t* labels, const void* lse,
                       const void* g, int64_t g_stride, void* gx, const LossShape& s,
                       double smoothing, int64_t ignore_index, cudaStream_t stream);
void nll_fwd(DType dtype, const void* log_probs, const int64_t* labels, void* loss, void* valid,
             const LossShape& s, int64_t ignore_index, int64_t* bad_row, cudaStream_t stream);
void nll_bwd(DType dtype, const int64_t* labels, const void* g, int64_t g_stride, void* gx,
             const LossShape& s, int64_t ignore_index, cudaStream_t stream);
}  // namespace ember::cuda
#endif
