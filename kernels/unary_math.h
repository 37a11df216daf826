#pragma once
// The per-element arithmetic of unary ops: one functor, used by the CPU loop and the CUDA
// kernel, so the same math is tested on machines without a GPU.
#include "kernels/math.h"
#include "kernels/unary.h"

namespace ember {

/// y = op(x) computed in C (float for 16-bit types, the type itself otherwise).
template <UnaryOp OP, class C>
EMBER_HD C unary_apply(C x, C p0, C p1) {
  if constexpr (OP == UnaryOp::neg) return -x;
  if constexpr (OP == UnaryOp::abs) return x < C(0) ? -x : x;
  if constexpr (OP == UnaryOp::exp) return math::exp(x);
  if constexpr (OP == UnaryOp::log) return math::log(x);
  if constexpr (OP == UnaryOp::sqrt) return math::sqrt(x);
  if constexpr (OP == UnaryOp::rsqrt) return C(1) / math::sqrt(x);
  if constexpr (OP == UnaryOp::sin) return math::sin(x);
  if constexpr (OP == UnaryOp::cos) return math::cos(x);
  if constexpr (OP == UnaryOp::tanh) return math::tanh(x);
  if constexpr (OP == UnaryOp::sigmoid) {
    // Stable on both tails: exp of a non-positive number only.
    if (x >= C(0)) return C(1) / (C(1) + math::exp(-x));
    C e = math::exp(x);
    return e / (C(1) + e);
  }
  if constexpr (OP == UnaryOp::relu) return x > C(0) ? x : C(0);
  if constexpr (OP == UnaryOp::gelu) return C(0.5) * x * (C(1) + math::erf(x * C(0.70710678118654752)));
  if constexpr (OP == UnaryOp::square) return x * x;
  if constexpr (OP == UnaryOp::reciprocal) return C(1) / x;
  if constexpr (OP == UnaryOp::sign) return C((x > C(0)) - (x < C(0)));
  if constexpr (OP == UnaryOp::clamp) {
    if (math::isnan(x)) return x;
    return x < p0 ? p0 : (x > p1 ? p1 : x);
  }
  if constexpr (OP == UnaryOp::gelu_grad) {
    C cdf = C(0.5) * (C(1) + math::erf(x * C(0.70710678118654752)));
    C pdf = math::exp(C(-0.5) * x * x) * C(0.39894228040143268);
    return cdf + x * pdf;
  }
  return x;
}

}  // namespace ember

/// Expands BODY (which sees `constexpr UnaryOp kOp`) for the runtime op.
#define EMBER_UNARY_SWITCH(op, ...)                                              \
  switch (op) {                                                                  \
    EMBER_UNARY_CASE(neg, __VA_ARGS__) EMBER_UNARY_CASE(abs, __VA_ARGS__)        \
    EMBER_UNARY_CASE(exp, __VA_ARGS__) EMBER_UNARY_CASE(log, __VA_ARGS__)        \
    EMBER_UNARY_CASE(sqrt, __VA_ARGS__) EMBER_UNARY_CASE(rsqrt, __VA_ARGS__)     \
    EMBER_UNARY_CASE(sin, __VA_ARGS__) EMBER_UNARY_CASE(cos, __VA_ARGS__)        \
    EMBER_UNARY_CASE(tanh, __VA_ARGS__) EMBER_UNARY_CASE(sigmoid, __VA_ARGS__)   \
    EMBER_UNARY_CASE(relu, __VA_ARGS__) EMBER_UNARY_CASE(gelu, __VA_ARGS__)      \
    EMBER_UNARY_CASE(square, __VA_ARGS__) EMBER_UNARY_CASE(reciprocal, __VA_ARGS__) \
    EMBER_UNARY_CASE(sign, __VA_ARGS__) EMBER_UNARY_CASE(clamp, __VA_ARGS__)     \
    EMBER_UNARY_CASE(gelu_grad, __VA_ARGS__)                                     \
  }
#define EMBER_UNARY_CASE(name, ...)                 \
  case ::ember::UnaryOp::name: {                    \
    constexpr ::ember::UnaryOp kOp = ::ember::UnaryOp::name; \
    __VA_ARGS__();                                  \
    break;                                          \
  }
