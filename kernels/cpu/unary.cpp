// CPU unary elementwise ops: one loop per (op, dtype), vectorized by the compiler.
#include <type_traits>

#include "kernels/cpu/loops.h"
#include "kernels/unary_math.h"
#include "core/error.h"

namespace ember::cpu {

namespace {
template <UnaryOp OP, class T>
void run(const T* in, T* out, int64_t n, double p0, double p1) {
  using C = compute_t<T>;
  if constexpr (std::is_integral_v<T> && !unary_supports_integers(OP)) {
    EMBER_THROW(unary_name(OP), ": needs a floating dtype");
  } else {
    C a = C(p0), b = C(p1);
    parallel_for(n, [&](int64_t s, int64_t e) {
      for (int64_t i = s; i < e; ++i) out[i] = T(unary_apply<OP, C>(C(in[i]), a, b));
    });
  }
}
}  // namespace

void unary(UnaryOp op, DType dtype, const void* in, void* out, int64_t n, double p0, double p1) {
  EMBER_DISPATCH_NUMERIC(dtype, unary_name(op), [&] {
    const scalar_t* x = static_cast<const scalar_t*>(in);
    scalar_t* y = static_cast<scalar_t*>(out);
    EMBER_UNARY_SWITCH(op, [&] { run<kOp, scalar_t>(x, y, n, p0, p1); });
  });
}

}  // namespace ember::cpu

namespace ember {
const char* unary_name(UnaryOp op) {
  switch (op) {
    case UnaryOp::neg: return "neg";
    case UnaryOp::abs: return "abs";
    case UnaryOp::exp: return "exp";
    case UnaryOp::log: return "log";
    case UnaryOp::sqrt: return "sqrt";
    case UnaryOp::rsqrt: return "rsqrt";
    case UnaryOp::sin: return "sin";
    case UnaryOp::cos: return "cos";
    case UnaryOp::tanh: return "tanh";
    case UnaryOp::sigmoid: return "sigmoid";
    case UnaryOp::relu: return "relu";
    case UnaryOp::gelu: return "gelu";
    case UnaryOp::square: return "square";
    case UnaryOp::reciprocal: return "reciprocal";
    case UnaryOp::sign: return "sign";
    case UnaryOp::clamp: return "clamp";
    case UnaryOp::gelu_grad: return "gelu_grad";
  }
  return "?";
}
}  // namespace ember
