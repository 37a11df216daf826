// Elementwise binary ops with NumPy broadcasting and type promotion, where(), the in-place
// forms and the operators; backward reduces broadcast dims with sum_to.
#include <cmath>
#include <functional>
#include <utility>

#include "autograd/autocast.h"
#include "autograd/node.h"
#include "autograd/ops.h"
#include "tensor/dispatch.h"
#include "kernels/binary.h"
#include "tensor/layout.h"

namespace ember {

Shape broadcast_shapes(const Shape& a, const Shape& b) {
  size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    EMBER_CHECK(da == db || da == 1 || db == 1, "shapes ", shape_str(a), " and ", shape_str(b),
                " cannot be broadcast together (dim ", i, ": ", da, " vs ", db, ")");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

namespace {

void check_same_device(const Tensor& a, const Tensor& b, const char* op) {
  EMBER_CHECK(a.device() == b.device(), op, ": expected both tensors on one device, got ",
              a.device(), " and ", b.device());
}

/// Writes op(a, b) into `out` (contiguous, broadcast shape; dtype `ct` or bool).
void binary_into(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out, double alpha) {
  if (out.numel() == 0) return;
  StridedLayout la = layout_of(a, out.shape()), lb = layout_of(b, out.shape()), lo = layout_of(out);
  StridedLayout* ls[3] = {&la, &lb, &lo};
  coalesce(ls, 3);
  on_device(
      out.device(), binary_name(op),
      [&] { cpu::binary(op, a.dtype(), a.data_ptr(), la, b.data_ptr(), lb, out.data_ptr(), out.numel(), alpha); },
      EMBER_ON_CUDA(cuda::binary(op, a.dtype(), a.data_ptr(), la, b.data_ptr(), lb, out.data_ptr(), out.numel(),
                                 alpha, stream)));
}

/// The dtype an op computes in: promoted; true division and pow of integers go to f32.
DType compute_dtype(BinaryOp op, const Tensor& a, const Tensor& b) {
  DType ct = promote_types(a.dtype(), b.dtype());
  if (op == BinaryOp::div && is_integral(ct)) ct = DType::f32;
  if (ct == DType::b8) ct = DType::u8;  // bools compute as 0/1 (comparisons too)
  return ct;
}

Tensor binary_forward(BinaryOp op, const Tensor& a_in, const Tensor& b_in, double alpha) {
  EMBER_CHECK(a_in.defined() && b_in.defined(), binary_name(op), ": undefined input");
  check_same_device(a_in, b_in, binary_name(op));
  check_device_available(a_in.device(), binary_name(op));
  DType ct = compute_dtype(op, a_in, b_in);
  Tensor a = a_in.dtype() == ct ? a_in : a_in.detach().to(ct);
  Tensor b = b_in.dtype() == ct ? b_in : b_in.detach().to(ct);
  Shape shape = broadcast_shapes(a.shape(), b.shape());
  Tensor out = empty(shape, {.dtype = is_comparison(op) ? DType::b8 : ct, .device = a.device()});
  binary_into(op, a, b, out, alpha);
  return out;
}

/// a && b for bool tensors (broadcast).
Tensor logical_and_(const Tensor& a, const Tensor& b) { return ne(mul(a, b), 0.0); }

// Note [Saved next to the formula]: each case of binary_formula saves exactly the tensors its
// own backward formula reads, in the same few lines, and the lambda it returns captures them:
// what a backward keeps cannot drift from what it uses. need_a / need_b (whether each input
// wants a gradient) are known when the node is made, so a case saves only what the wanted
// gradients read (mul's a when b needs a gradient, and so on). The node drops the lambda,
// and with it the saved tensors, when it has run (release_saved).
using BinaryGrads = std::pair<Tensor, Tensor>;
using BinaryFormula = std::function<BinaryGrads(const autograd::Node& self, const Tensor& g)>;

BinaryFormula binary_formula(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out, double alpha,
                             bool need_a, bool need_b) {
  using autograd::SavedTensor;
  using autograd::Node;
  // A saved tensor only when the gradient that reads it is wanted.
  auto keep_if = [](bool wanted, const Tensor& t) { return wanted ? SavedTensor(t) : SavedTensor(); };
  switch (op) {
    case BinaryOp::add:
      return [=](const Node&, const Tensor& g) -> BinaryGrads {
        return {need_a ? g : Tensor(), need_b ? (alpha == 1.0 ? g : g * alpha) : Tensor()};
      };
    case BinaryOp::sub:
      return [=](const Node&, const Tensor& g) -> BinaryGrads {
        return {need_a ? g : Tensor(), need_b ? (alpha == 1.0 ? neg(g) : g * (-alpha)) : Tensor()};
      };
    case BinaryOp::mul: {
      SavedTensor sa = keep_if(need_b, a), sb = keep_if(need_a, b);
      return [=](const Node& self, const Tensor& g) -> BinaryGrads {
        return {need_a ? g * sb.unpack(self) : Tensor(), need_b ? g * sa.unpack(self) : Tensor()};
      };
    }
    case BinaryOp::div: {
      SavedTensor sa = keep_if(need_b, a), sb = b;
      return [=](const Node& self, const Tensor& g) -> BinaryGrads {
        Tensor B = sb.unpack(self);
        return {need_a ? g / B : Tensor(), need_b ? -(g * sa.unpack(self)) / (B * B) : Tensor()};
      };
    }
    case BinaryOp::pow: {
      // As PyTorch's pow_backward_self / pow_backward_exponent.
      SavedTensor sa = a, sb = b, sout = keep_if(need_b, out);
      return [=](const Node& self, const Tensor& g) -> BinaryGrads {
        Tensor A = sa.unpack(self), B = sb.unpack(self), ga, gb;
        if (need_a) {
          // b a^(b-1), and 0 where b == 0 (a^0 is constant): at a = 0 the formula would
          // give 0 * 0^-1 = NaN.
          Tensor d = g * B * ember::pow(A, B - 1.0);
          ga = where(eq(B, 0.0), zeros_like(d), d);
        }
        if (need_b) {
          // a^b log a, and 0 where a == 0 and b >= 0 (the limit; 0 * log 0 would be NaN).
          Tensor d = g * sout.unpack(self) * log(A);
          gb = where(logical_and_(eq(A, 0.0), ge(B, 0.0)), zeros_like(d), d);
        }
        return {ga, gb};
      };
    }
    case BinaryOp::maximum:
    case BinaryOp::minimum: {
      // Ties split the gradient evenly, as PyTorch does.
      const bool is_max = op == BinaryOp::maximum;
      SavedTensor sa = a, sb = b;
      return [=](const Node& self, const Tensor& g) -> BinaryGrads {
        Tensor A = sa.unpack(self), B = sb.unpack(self);
        Tensor win_a = (is_max ? gt(A, B) : lt(A, B)).to(g.dtype());
        Tensor tie = eq(A, B).to(g.dtype()) * 0.5;
        return {need_a ? g * (win_a + tie) : Tensor(), need_b ? g * (rsub(win_a, 1.0) - tie) : Tensor()};
      };
    }
    default:
      EMBER_THROW(binary_name(op), ": not differentiable");
  }
}

struct BinaryBackward : autograd::Node {
  BinaryOp op;
  BinaryFormula formula;  // with the tensors it saved (Note [Saved next to the formula])
  Shape a_shape, b_shape;
  DType a_dtype, b_dtype;
  std::string name() const override { return std::string(binary_name(op)) + "Backward"; }
  void release_saved() override { formula = nullptr; }
  TensorList apply(TensorList&& grads) override {
    const Tensor& g = grads[0];
    if (!g.defined()) return {Tensor(), Tensor()};
    auto [ga, gb] = formula(*this, g);
    if (ga.defined()) ga = autograd::sum_to(ga, a_shape).to(a_dtype);
    if (gb.defined()) gb = autograd::sum_to(gb, b_shape).to(b_dtype);
    return {ga, gb};
  }
};

Tensor binary_op(BinaryOp op, const Tensor& a, const Tensor& b, double alpha = 1.0) {
  Tensor out = binary_forward(op, a, b, alpha);
  if (is_comparison(op) || !is_floating(out.dtype())) return out;
  if (auto node = autograd::make_node<BinaryBackward>({a, b})) {
    node->op = op;
    node->a_shape = a.shape();
    node->b_shape = b.shape();
    node->a_dtype = a.dtype();
    node->b_dtype = b.dtype();
    node->formula = binary_formula(op, a, b, out, alpha, node->next[0].valid(), node->next[1].valid());
    autograd::set_history(out, node);
  }
  return out;
}

/// A 0-d tensor for a scalar operand of a comparison: it takes the tensor's dtype, unless a
/// fractional scalar meets an integer tensor (then f32). The result is bool either way; an
/// integer tensor compares exactly with a whole number.
Tensor scalar_like(const Tensor& t, double v) {
  DType dt = t.dtype();
  if (is_integral(dt) && (std::floor(v) != v || !std::isfinite(v))) dt = DType::f32;
  if (dt == DType::b8) dt = (v == 0.0 || v == 1.0) ? DType::b8 : DType::i64;
  return scalar_tensor(v, {.dtype = dt, .device = t.device()});
}

/// A 0-d tensor for a scalar operand of arithmetic (Scalar): its dtype depends on the
/// scalar's kind, not its value, as PyTorch's: a floating tensor keeps its dtype; an
/// integer or bool tensor with a floating-point number computes in f32; a bool tensor with
/// an integer in i64; an integer tensor with an integer (or bool) keeps its dtype.
Tensor scalar_operand(const Tensor& t, Scalar s) {
  DType dt = t.dtype();
  if (!is_floating(dt)) {
    if (s.is_floating()) dt = DType::f32;
    else if (dt == DType::b8 && s.kind() == Scalar::Kind::integral) dt = DType::i64;
  }
  return scalar_tensor(s.value(), {.dtype = dt, .device = t.device()});
}

}  // namespace

namespace {
/// A binary op with its inputs cast by autocast's policy for `aop` (Note [Autocast policy]).
Tensor autocast_binary(autocast::Op aop, BinaryOp op, const Tensor& a_in, const Tensor& b_in, double alpha = 1.0) {
  auto [a, b] = autocast::inputs(aop, a_in, b_in);
  return binary_op(op, a, b, alpha);
}
}  // namespace

using AOp = autocast::Op;
Tensor add(const Tensor& a, const Tensor& b, double alpha) { return autocast_binary(AOp::add, BinaryOp::add, a, b, alpha); }
Tensor sub(const Tensor& a, const Tensor& b) { return autocast_binary(AOp::sub, BinaryOp::sub, a, b); }
Tensor mul(const Tensor& a, const Tensor& b) { return autocast_binary(AOp::mul, BinaryOp::mul, a, b); }
Tensor div(const Tensor& a, const Tensor& b) { return autocast_binary(AOp::div, BinaryOp::div, a, b); }
Tensor pow(const Tensor& a, const Tensor& b) { return autocast_binary(AOp::pow, BinaryOp::pow, a, b); }
Tensor maximum(const Tensor& a, const Tensor& b) { return autocast_binary(AOp::maximum, BinaryOp::maximum, a, b); }
Tensor minimum(const Tensor& a, const Tensor& b) { return autocast_binary(AOp::minimum, BinaryOp::minimum, a, b); }
Tensor add(const Tensor& a, Scalar b) { return add(a, scalar_operand(a, b)); }
Tensor sub(const Tensor& a, Scalar b) { return sub(a, scalar_operand(a, b)); }
Tensor mul(const Tensor& a, Scalar b) { return mul(a, scalar_operand(a, b)); }
Tensor div(const Tensor& a, Scalar b) { return div(a, scalar_operand(a, b)); }
Tensor pow(const Tensor& a_in, Scalar e) {
  auto [a] = autocast::inputs(autocast::Op::pow, a_in);
  Tensor b = scalar_operand(a, e);
  if (e.value() == 2.0 && b.dtype() == a.dtype()) return square(a);
  return pow(a, b);
}
Tensor rsub(const Tensor& a, Scalar b) { return sub(scalar_operand(a, b), a); }

Tensor eq(const Tensor& a, const Tensor& b) { return binary_op(BinaryOp::eq, a, b); }
Tensor ne(const Tensor& a, const Tensor& b) { return binary_op(BinaryOp::ne, a, b); }
Tensor lt(const Tensor& a, const Tensor& b) { return binary_op(BinaryOp::lt, a, b); }
Tensor le(const Tensor& a, const Tensor& b) { return binary_op(BinaryOp::le, a, b); }
Tensor gt(const Tensor& a, const Tensor& b) { return binary_op(BinaryOp::gt, a, b); }
Tensor ge(const Tensor& a, const Tensor& b) { return binary_op(BinaryOp::ge, a, b); }
Tensor eq(const Tensor& a, double b) { return eq(a, scalar_like(a, b)); }
Tensor ne(const Tensor& a, double b) { return ne(a, scalar_like(a, b)); }
Tensor lt(const Tensor& a, double b) { return lt(a, scalar_like(a, b)); }
Tensor le(const Tensor& a, double b) { return le(a, scalar_like(a, b)); }
Tensor gt(const Tensor& a, double b) { return gt(a, scalar_like(a, b)); }
Tensor ge(const Tensor& a, double b) { return ge(a, scalar_like(a, b)); }

Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
Tensor operator+(const Tensor& a, Scalar b) { return add(a, b); }
Tensor operator-(const Tensor& a, Scalar b) { return sub(a, b); }
Tensor operator*(const Tensor& a, Scalar b) { return mul(a, b); }
Tensor operator/(const Tensor& a, Scalar b) { return div(a, b); }
Tensor operator+(Scalar a, const Tensor& b) { return add(b, a); }
Tensor operator-(Scalar a, const Tensor& b) { return rsub(b, a); }
Tensor operator*(Scalar a, const Tensor& b) { return mul(b, a); }
Tensor operator/(Scalar a, const Tensor& b) { return div(scalar_operand(b, a), b); }

// ---- where
namespace {
struct WhereBackward : autograd::Node {
  autograd::SavedTensor cond;
  Shape a_shape, b_shape;
  std::string name() const override { return "WhereBackward"; }
  void release_saved() override { cond.reset(); }
  TensorList apply(TensorList&& grads) override {
    const Tensor& g = grads[0];
    if (!g.defined()) return {Tensor(), Tensor()};
    Tensor c = cond.unpack(*this);
    Tensor z = zeros({}, {.dtype = g.dtype(), .device = g.device()});
    Tensor ga, gb;
    if (next[0].valid()) ga = autograd::sum_to(where(c, g, z), a_shape);
    if (next[1].valid()) gb = autograd::sum_to(where(c, z, g), b_shape);
    return {ga, gb};
  }
};
}  // namespace

Tensor where(const Tensor& cond_in, const Tensor& a_arg, const Tensor& b_arg) {
  auto [a_in, b_in] = autocast::inputs(autocast::Op::where, a_arg, b_arg);
  EMBER_CHECK(cond_in.defined() && a_in.defined() && b_in.defined(), "where: undefined input");
  check_same_device(cond_in, a_in, "where");
  check_same_device(a_in, b_in, "where");
  check_device_available(a_in.device(), "where");
  Tensor cond = cond_in.dtype() == DType::b8 ? cond_in : ne(cond_in.detach(), 0.0);
  DType ct = promote_types(a_in.dtype(), b_in.dtype());
  Tensor a = a_in.dtype() == ct ? a_in.detach() : a_in.detach().to(ct);
  Tensor b = b_in.dtype() == ct ? b_in.detach() : b_in.detach().to(ct);
  Shape shape = broadcast_shapes(broadcast_shapes(cond.shape(), a.shape()), b.shape());
  Tensor out = empty(shape, {.dtype = ct, .device = a.device()});
  if (out.numel() > 0) {
    StridedLayout lc = layout_of(cond, shape), la = layout_of(a, shape), lb = layout_of(b, shape);
    StridedLayout lo = layout_of(out);
    StridedLayout* ls[4] = {&lc, &la, &lb, &lo};
    coalesce(ls, 4);
    on_device(
        out.device(), "where",
        [&] { cpu::where(ct, cond.data<bool>(), lc, a.data_ptr(), la, b.data_ptr(), lb, out.data_ptr(), out.numel()); },
        EMBER_ON_CUDA(cuda::where(ct, cond.data<bool>(), lc, a.data_ptr(), la, b.data_ptr(), lb, out.data_ptr(),
                                  out.numel(), stream)));
  }
  if (is_floating(ct)) {
    if (auto node = autograd::make_node<WhereBackward>({a_in, b_in})) {
      node->cond = cond;
      node->a_shape = a_in.shape();
      node->b_shape = b_in.shape();
      autograd::set_history(out, node);
    }
  }
  return out;
}

// ---- in-place forms: not recorded; allowed on tensors outside the graph (or in NoGradGuard)
namespace {
Tensor& binary_inplace(Tensor& self, BinaryOp op, const Tensor& other, double alpha, const char* name) {
  EMBER_CHECK(self.defined() && other.defined(), name, ": undefined tensor");
  EMBER_CHECK(!(GradMode::is_enabled() && (self.requires_grad() || other.requires_grad())), name,
              ": in-place ops on tensors that require grad are not recorded; use the out-of-place "
              "op, or run under NoGradGuard");
  check_same_device(self, other, name);
  Shape shape = broadcast_shapes(self.shape(), other.shape());
  EMBER_CHECK(shape == self.shape(), name, ": the result shape ", shape_str(shape),
              " does not fit the in-place target of shape ", self.shape_str());
  DType ct = compute_dtype(op, self, other);
  if (ct == self.dtype() && self.is_contiguous()) {
    // Each element reads self at the index it writes; `other` may alias self in any other
    // way only through a copy (Note [In-place overlap] in tensor/layout.h).
    Tensor b = other.dtype() == ct ? unaliased_input(self, other) : other.to(ct);
    binary_into(op, self, b, self, alpha);
  } else {
    copy_into(self, binary_forward(op, self, other, alpha));
  }
  self.bump_version();
  return self;
}
}  // namespace

Tensor& Tensor::add_(const Tensor& other, double alpha) { return binary_inplace(*this, BinaryOp::add, other, alpha, "add_"); }
Tensor& Tensor::sub_(const Tensor& other) { return binary_inplace(*this, BinaryOp::sub, other, 1.0, "sub_"); }
Tensor& Tensor::mul_(const Tensor& other) { return binary_inplace(*this, BinaryOp::mul, other, 1.0, "mul_"); }
Tensor& Tensor::div_(const Tensor& other) { return binary_inplace(*this, BinaryOp::div, other, 1.0, "div_"); }
Tensor& Tensor::add_(double value) { return add_(scalar_like(*this, value)); }
Tensor& Tensor::mul_(double value) { return mul_(scalar_like(*this, value)); }

}  // namespace ember
