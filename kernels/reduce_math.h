#pragma once
// The reduction arithmetic shared by CPU and CUDA: an accumulator of (value, index) and the
// combine rule of each op. f16/bf16/f32 accumulate in f32, f64 in f64, integers in i64.
#include <limits>
#include <type_traits>

#include "kernels/math.h"
#include "kernels/reduce.h"
#include "core/dtype.h"

namespace ember {

template <class A>
struct ReduceAcc {
  A v;
  int64_t i;
};

template <ReduceOp OP, class A>
EMBER_HD ReduceAcc<A> reduce_identity() {
  if constexpr (OP == ReduceOp::sum || OP == ReduceOp::mean) {
    return {A(0), 0};
  } else if constexpr (OP == ReduceOp::max || OP == ReduceOp::argmax) {
    if constexpr (std::is_floating_point_v<A>) return {-std::numeric_limits<A>::infinity(), -1};
    else return {std::numeric_limits<A>::lowest(), -1};
  } else {
    if constexpr (std::is_floating_point_v<A>) return {std::numeric_limits<A>::infinity(), -1};
    else return {std::numeric_limits<A>::max(), -1};
  }
}

/// Combines two partial results; for max/min NaN wins and ties keep the lower index,
/// so the result does not depend on how the work was split.
template <ReduceOp OP, class A>
EMBER_HD ReduceAcc<A> reduce_combine(ReduceAcc<A> x, ReduceAcc<A> y) {
  if constexpr (OP == ReduceOp::sum || OP == ReduceOp::mean) {
    return {A(x.v + y.v), 0};
  } else {
    if (y.i < 0) return x;
    if (x.i < 0) return y;
    bool xn = math::isnan(x.v), yn = math::isnan(y.v);
    if (xn || yn) {
      if (xn && yn) return x.i <= y.i ? x : y;
      return xn ? x : y;
    }
    constexpr bool is_max = OP == ReduceOp::max || OP == ReduceOp::argmax;
    bool y_better = is_max ? (y.v > x.v) : (y.v < x.v);
    if (y_better || (y.v == x.v && y.i < x.i)) return y;
    return x;
  }
}

}  // namespace ember

#define EMBER_REDUCE_SWITCH(op, ...)                                            \
  switch (op) {                                                                 \
    EMBER_REDUCE_CASE(sum, __VA_ARGS__) EMBER_REDUCE_CASE(mean, __VA_ARGS__)    \
    EMBER_REDUCE_CASE(max, __VA_ARGS__) EMBER_REDUCE_CASE(min, __VA_ARGS__)     \
    EMBER_REDUCE_CASE(argmax, __VA_ARGS__) EMBER_REDUCE_CASE(argmin, __VA_ARGS__) \
  }
#define EMBER_REDUCE_CASE(name, ...)                              \
  case ::ember::ReduceOp::name: {                                 \
    constexpr ::ember::ReduceOp kOp = ::ember::ReduceOp::name;    \
    __VA_ARGS__();                                                \
    break;                                                        \
  }
