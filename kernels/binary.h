#pragma once
// Elementwise binary ops with broadcasting, and where(). Operands come as strided layouts
// over the output's (coalesced) sizes; broadcast dims have stride 0; out is contiguous.
#include <cstdint>

#include "core/strided_layout.h"
#include "core/dtype.h"
#if EMBER_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

namespace ember {
enum class BinaryOp : uint8_t {
  add, sub, mul, div, pow, maximum, minimum,  // out dtype = input dtype
  eq, ne, lt, le, gt, ge,                     // out dtype = bool
  // Fused backward helpers: (a = incoming gradient, b = saved tensor).
  relu_bwd,     // b > 0 ? a : 0           (b = relu output or input)
  sigmoid_bwd,  // a * b * (1 - b)         (b = sigmoid output)
  tanh_bwd,     // a * (1 - b * b)         (b = tanh output)
};
constexpr bool is_comparison(BinaryOp op) { return op >= BinaryOp::eq && op <= BinaryOp::ge; }
const char* binary_name(BinaryOp op);
}  // namespace ember

namespace ember::cpu {
/// out[i] = op(a[i], b[i]) (add/sub: a + alpha * b); a, b of `dtype`, out of `dtype` or bool.
void binary(BinaryOp op, DType dtype, const void* a, const StridedLayout& la, const void* b,
            const StridedLayout& lb, void* out, int64_t n, double alpha = 1.0);
/// out[i] = cond[i] ? a[i] : b[i].
void where(DType dtype, const bool* cond, const StridedLayout& lc, const void* a,
           const StridedLayout& la, const void* b, const StridedLayout& lb, void* out, int64_t n);
}  // namespace ember::cpu

#if EMBER_WITH_CUDA
namespace ember::cuda {
void binary(BinaryOp op, DType dtype, const void* a, const StridedLayout& la, const void* b,
            const StridedLayout& lb, void* out, int64_t n, double alpha, cudaStream_t stream);
void where(DType dtype, const bool* cond, const StridedLayout& lc, const void* a,
           const StridedLayout& la, const void* b, const StridedLayout& lb, void* out, int64_t n,
           cudaStream_t stream);
}  // namespace ember::cuda
#endif
