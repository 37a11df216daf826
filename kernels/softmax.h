#pragma once
// softmax / log_softmax along one dim. A contiguous tensor is viewed as (outer, C, inner):
// row (o, i) holds the C elements o*C*inner + c*inner + i. Max-subtracted for stability;
// f16/bf16 compute in f32.
#include <cstdint>

#include "kernels/math.h"
#include "core/dtype.h"
#if EMBER_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

namespace ember::cpu {
/// y = softmax(x) (or log_softmax when `log`) over C.
void softmax_fwd(DType dtype, const void* x, void* y, int64_t outer, int64_t C, int64_t inner,
                 bool log);
/// From the forward output y and its gradient g: softmax gx = y * (g - sum(g * y));
/// log_softmax gx = g - exp(y) * sum(g). g and gx are contiguous like y.
void softmax_bwd(DType dtype, const void* y, const void* g, void* gx, int64_t outer, int64_t C,
                 int64_t inner, bool log);
}  // namespace ember::cpu

#if EMBER_WITH_CUDA
namespace ember::cuda {
void softmax_fwd(DType dtype, const void* x, void* y, int64_t outer, int64_t C, int64_t inner,
                 bool log, cudaStream_t stream);
void softmax_bwd(DType dtype, const void* y, const void* g, void* gx, int64_t outer, int64_t C,
                 int64_t inner, bool log, cudaStream_t stream);
}  // namespace ember::cuda
#endif
