#pragma once
// The per-element arithmetic of binary ops, shared by the CPU loop and the CUDA kernel.
#include <type_traits>

#include "kernels/binary.h"
#include "kernels/math.h"

namespace ember {

/// Result type of a binary op on element type T.
template <BinaryOp OP, class T>
using binary_out_t = std::conditional_t<is_comparison(OP), bool, T>;

template <BinaryOp OP, class C>
EMBER_HD auto binary_apply(C a, C b, C alpha) {
  if constexpr (OP == BinaryOp::add) return C(a + alpha * b);
  if constexpr (OP == BinaryOp::sub) return C(a - alpha * b);
  if constexpr (OP == BinaryOp::mul) return C(a * b);
  if constexpr (OP == BinaryOp::div) return C(a / b);
  if constexpr (OP == BinaryOp::pow) {
    if constexpr (std::is_integral_v<C>) {
      return C(::ember::math::pow(double(a), double(b)));
    } else {
      return math::pow(a, b);
    }
  }
  // maximum/minimum propagate NaN, as PyTorch.
  if constexpr (OP == BinaryOp::maximum) return math::isnan(a) ? a : (math::isnan(b) ? b : (a > b ? a : b));
  if constexpr (OP == BinaryOp::minimum) return math::isnan(a) ? a : (math::isnan(b) ? b : (a < b ? a : b));
  if constexpr (OP == BinaryOp::eq) return a == b;
  if constexpr (OP == BinaryOp::ne) return a != b;
  if constexpr (OP == BinaryOp::lt) return a < b;
  if constexpr (OP == BinaryOp::le) return a <= b;
  if constexpr (OP == BinaryOp::gt) return a > b;
  if constexpr (OP == BinaryOp::ge) return a >= b;
  if constexpr (OP == BinaryOp::relu_bwd) return b > C(0) ? a : C(0);
  if constexpr (OP == BinaryOp::sigmoid_bwd) return C(a * b * (C(1) - b));
  if constexpr (OP == BinaryOp::tanh_bwd) return C(a * (C(1) - b * b));
}

}  // namespace ember

#define EMBER_BINARY_SWITCH(op, ...)                                                       \
  switch (op) {                                                                            \
    EMBER_BINARY_CASE(add, __VA_ARGS__) EMBER_BINARY_CASE(sub, __VA_ARGS__)                \
    EMBER_BINARY_CASE(mul, __VA_ARGS__) EMBER_BINARY_CASE(div, __VA_ARGS__)                \
    EMBER_BINARY_CASE(pow, __VA_ARGS__) EMBER_BINARY_CASE(maximum, __VA_ARGS__)            \
    EMBER_BINARY_CASE(minimum, __VA_ARGS__) EMBER_BINARY_CASE(eq, __VA_ARGS__)             \
    EMBER_BINARY_CASE(ne, __VA_ARGS__) EMBER_BINARY_CASE(lt, __VA_ARGS__)                  \
    EMBER_BINARY_CASE(le, __VA_ARGS__) EMBER_BINARY_CASE(gt, __VA_ARGS__)                  \
    EMBER_BINARY_CASE(ge, __VA_ARGS__) EMBER_BINARY_CASE(relu_bwd, __VA_ARGS__)            \
    EMBER_BINARY_CASE(sigmoid_bwd, __VA_ARGS__) EMBER_BINARY_CASE(tanh_bwd, __VA_ARGS__)   \
  }
#define EMBER_BINARY_CASE(name, ...)                              \
  case ::ember::BinaryOp::name: {                                 \
    constexpr ::ember::BinaryOp kOp = ::ember::BinaryOp::name;    \
    __VA_ARGS__();                                                \
    break;                                                        \
  }
