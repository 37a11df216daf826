// Elementwise unary ops: neg, abs, exp, log, ..., clamp, with their backward nodes.
#include <limits>

#include "autograd/autocast.h"
#include "autograd/node.h"
#include "autograd/ops.h"
#include "tensor/dispatch.h"
#include "kernels/binary.h"
#include "kernels/unary.h"
#include "tensor/layout.h"

namespace ember {

namespace {

/// Runs the unary kernel on a contiguous copy of x (integers go to f32 for float-only ops).
Tensor unary_forward(UnaryOp op, const Tensor& x_in, double p0 = 0, double p1 = 0) {
  EMBER_CHECK(x_in.defined(), unary_name(op), ": undefined input");
  check_device_available(x_in.device(), unary_name(op));
  Tensor x = x_in;
  if (x.dtype() == DType::b8) x = x.to(DType::u8);
  if (is_integral(x.dtype()) && !unary_supports_integers(op)) x = x.to(DType::f32);
  x = x.contiguous();
  Tensor out = empty(x.shape(), {.dtype = x.dtype(), .device = x.device()});
  if (x.numel() == 0) return out;
  on_device(
      x.device(), unary_name(op), [&] { cpu::unary(op, x.dtype(), x.data_ptr(), out.data_ptr(), x.numel(), p0, p1); },
      EMBER_ON_CUDA(cuda::unary(op, x.dtype(), x.data_ptr(), out.data_ptr(), x.numel(), p0, p1, stream)));
  return out;
}

/// Runs a fused binary backward kernel: out = op(grad, saved), same shape and dtype.
Tensor fused_backward(BinaryOp op, const Tensor& g, const Tensor& saved) {
  Tensor a = g.contiguous(), b = saved.to(g.dtype()).contiguous();
  Tensor out = empty(a.shape(), {.dtype = a.dtype(), .device = a.device()});
  StridedLayout la = layout_of(a), lb = layout_of(b);
  StridedLayout* ls[2] = {&la, &lb};
  coalesce(ls, 2);
  on_device(
      a.device(), "backward",
      [&] { cpu::binary(op, a.dtype(), a.data_ptr(), la, b.data_ptr(), lb, out.data_ptr(), a.numel()); },
      EMBER_ON_CUDA(cuda::binary(op, a.dtype(), a.data_ptr(), la, b.data_ptr(), lb, out.data_ptr(), a.numel(), 1.0,
                                 stream)));
  return out;
}

struct UnaryBackward : autograd::Node {
  UnaryOp op;
  autograd::SavedTensor x, y;  // input, output (each saved only when backward needs it)
  double p0 = 0, p1 = 0;
  std::string name() const override { return std::string(unary_name(op)) + "Backward"; }
  void release_saved() override {
    x.reset();
    y.reset();
  }
  TensorList apply(TensorList&& grads) override {
    const Tensor& g = grads[0];
    if (!g.defined()) return {Tensor()};
    Tensor X = x.unpack(*this), Y = y.unpack(*this);
    switch (op) {
      case UnaryOp::neg: return {neg(g)};
      case UnaryOp::abs: return {g * sign(X)};
      case UnaryOp::exp: return {g * Y};
      case UnaryOp::log: return {g / X};
      case UnaryOp::sqrt: return {g * 0.5 / Y};
      case UnaryOp::rsqrt: return {g * (-0.5) * Y * Y * Y};
      case UnaryOp::sin: return {g * cos(X)};
      case UnaryOp::cos: return {-(g * sin(X))};
      case UnaryOp::tanh: return {fused_backward(BinaryOp::tanh_bwd, g, Y)};
      case UnaryOp::sigmoid: return {fused_backward(BinaryOp::sigmoid_bwd, g, Y)};
      case UnaryOp::relu: return {fused_backward(BinaryOp::relu_bwd, g, Y)};
      case UnaryOp::gelu: return {g * unary_forward(UnaryOp::gelu_grad, X)};
      case UnaryOp::square: return {g * X * 2.0};
      case UnaryOp::reciprocal: return {-(g * Y * Y)};
      case UnaryOp::sign: return {zeros_like(g)};
      case UnaryOp::clamp: {
        Tensor inside = ge(X, p0).to(g.dtype()) * le(X, p1).to(g.dtype());
        return {g * inside};
      }
      case UnaryOp::gelu_grad: break;
    }
    EMBER_THROW(name(), ": not differentiable");
  }
};

bool saves_input(UnaryOp op) {
  switch (op) {
    case UnaryOp::abs: case UnaryOp::log: case UnaryOp::sin: case UnaryOp::cos:
    case UnaryOp::gelu: case UnaryOp::square: case UnaryOp::clamp:
      return true;
    default:
      return false;
  }
}
bool saves_output(UnaryOp op) {
  switch (op) {
    case UnaryOp::exp: case UnaryOp::sqrt: case UnaryOp::rsqrt: case UnaryOp::tanh:
    case UnaryOp::sigmoid: case UnaryOp::relu: case UnaryOp::reciprocal:
      return true;
    default:
      return false;
  }
}

Tensor unary_op(UnaryOp op, const Tensor& x, double p0 = 0, double p1 = 0) {
  Tensor out = unary_forward(op, x, p0, p1);
  if (auto node = autograd::make_node<UnaryBackward>({x})) {
    node->op = op;
    node->p0 = p0;
    node->p1 = p1;
    if (saves_input(op)) node->x = x;
    if (saves_output(op)) node->y = out;
    autograd::set_history(out, node);
  }
  return out;
}
}  // namespace

Tensor neg(const Tensor& x) { return unary_op(UnaryOp::neg, x); }
Tensor abs(const Tensor& x) { return unary_op(UnaryOp::abs, x); }
Tensor exp(const Tensor& x_in) {
  auto [x] = autocast::inputs(autocast::Op::exp, x_in);
  return unary_op(UnaryOp::exp, x);
}
Tensor log(const Tensor& x_in) {
  auto [x] = autocast::inputs(autocast::Op::log, x_in);
  return unary_op(UnaryOp::log, x);
}
Tensor sqrt(const Tensor& x) { return unary_op(UnaryOp::sqrt, x); }
Tensor rsqrt(const Tensor& x_in) {
  auto [x] = autocast::inputs(autocast::Op::rsqrt, x_in);
  return unary_op(UnaryOp::rsqrt, x);
}
Tensor sin(const Tensor& x) { return unary_op(UnaryOp::sin, x); }
Tensor cos(const Tensor& x) { return unary_op(UnaryOp::cos, x); }
Tensor tanh(const Tensor& x) { return unary_op(UnaryOp::tanh, x); }
Tensor sigmoid(const Tensor& x) { return unary_op(UnaryOp::sigmoid, x); }
Tensor relu(const Tensor& x) { return unary_op(UnaryOp::relu, x); }
Tensor gelu(const Tensor& x) { return unary_op(UnaryOp::gelu, x); }
Tensor square(const Tensor& x) { return unary_op(UnaryOp::square, x); }
Tensor reciprocal(const Tensor& x_in) {
  auto [x] = autocast::inputs(autocast::Op::reciprocal, x_in);
  return unary_op(UnaryOp::reciprocal, x);
}
Tensor sign(const Tensor& x) { return unary_op(UnaryOp::sign, x); }

Tensor clamp(const Tensor& x, std::optional<double> min, std::optional<double> max) {
  EMBER_CHECK(min || max, "clamp: give at least one of min and max");
  double lo = min ? *min : -std::numeric_limits<double>::infinity();
  double hi = max ? *max : std::numeric_limits<double>::infinity();
  EMBER_CHECK(lo <= hi, "clamp: min (", lo, ") must not exceed max (", hi, ")");
  if (is_integral(x.dtype())) {
    // Keep the bounds representable in the integer type.
    lo = std::max(lo, -9.2e18);
    hi = std::min(hi, 9.2e18);
  }
  return unary_op(UnaryOp::clamp, x, lo, hi);
}

Tensor relu_(Tensor& x) {
  EMBER_CHECK(!(GradMode::is_enabled() && x.requires_grad()),
              "relu_: in-place on a tensor that requires grad is not supported; use relu()");
  x.copy_(relu(x));
  return x;
}

Tensor operator-(const Tensor& x) { return neg(x); }

}  // namespace ember
