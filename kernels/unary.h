#pragma once
// Elementwise unary ops over contiguous buffers (the op layer makes inputs contiguous).
#include <cstdint>

#include "core/dtype.h"
#if EMBER_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

namespace ember {
enum class UnaryOp : uint8_t {
  neg, abs, exp, log, sqrt, rsqrt, sin, cos, tanh, sigmoid, relu, gelu, square, reciprocal,
  sign, clamp,  // clamp: [p0, p1]
  gelu_grad,    // d gelu(x) / dx (for backward)
};
const char* unary_name(UnaryOp op);
/// Ops defined for integer dtypes too (the rest need a floating dtype).
constexpr bool unary_supports_integers(UnaryOp op) {
  return op == UnaryOp::neg || op == UnaryOp::abs || op == UnaryOp::relu ||
         op == UnaryOp::square || op == UnaryOp::sign || op == UnaryOp::clamp;
}
}  // namespace ember

namespace ember::cpu {
void unary(UnaryOp op, DType dtype, const void* in, void* out, int64_t n, double p0 = 0,
           double p1 = 0);
}

#if EMBER_WITH_CUDA
namespace ember::cuda {
void unary(UnaryOp op, DType dtype, const void* in, void* out, int64_t n, double p0, double p1,
           cudaStream_t stream);
}
#endif
