// var, std and logsumexp as compositions of the core reductions and elementwise ops: their
// backward comes from the ops they are made of.
#include <cmath>
#include <limits>

#include "autograd/node.h"
#include "autograd/autocast.h"
#include "autograd/ops.h"

namespace ember {

namespace {
// Number of elements each output of a reduction over `dims` (empty: all) combines.
int64_t reduced_count(const Tensor& x, const Shape& dims, const char* op) {
  if (dims.empty()) return x.numel();
  int64_t n = 1;
  std::vector<bool> seen(size_t(std::max<int64_t>(x.dim(), 1)), false);
  for (int64_t d : dims) {
    int64_t w = wrap_dim(d, std::max<int64_t>(x.dim(), 1), op);
    EMBER_CHECK(!seen[size_t(w)], op, ": dim ", d, " appears twice in the reduced dims");
    seen[size_t(w)] = true;
    n *= x.dim() == 0 ? 1 : x.size(w);
  }
  return n;
}
}  // namespace

Tensor var(const Tensor& x_in, const Shape& dims, int64_t correction, bool keepdim) {
  auto [x] = autocast::inputs(autocast::Op::var, x_in);
  EMBER_CHECK(x.defined() && is_floating(x.dtype()), "var: expected a floating tensor");
  int64_t n = reduced_count(x, dims, "var");
  Tensor d = sub(x, mean(x, dims, /*keepdim=*/true));
  // n - correction <= 0 divides by zero: inf or nan, as PyTorch.
  double denom = double(std::max<int64_t>(n - correction, 0));
  return div(sum(mul(d, d), dims, keepdim), denom);
}

Tensor std(const Tensor& x_in, const Shape& dims, int64_t correction, bool keepdim) {
  auto [x] = autocast::inputs(autocast::Op::std, x_in);
  return sqrt(var(x, dims, correction, keepdim));
}

Tensor logsumexp(const Tensor& x_in, const Shape& dims, bool keepdim) {
  auto [x] = autocast::inputs(autocast::Op::logsumexp, x_in);
  EMBER_CHECK(x.defined() && is_floating(x.dtype()), "logsumexp: expected a floating tensor");
  reduced_count(x, dims, "logsumexp");  // validates dims
  // The max shift is a constant for autograd (it cancels in the gradient); an infinite max
  // (all -inf, or +inf present) shifts by 0 so that exp/log give -inf/+inf, not nan.
  Tensor m;
  {
    NoGradGuard no_grad;
    m = max(x.detach(), dims, /*keepdim=*/true);
    m = where(eq(abs(m), std::numeric_limits<double>::infinity()), zeros_like(m), m);
  }
  Tensor s = log(sum(exp(sub(x, m)), dims, keepdim));
  return add(s, keepdim ? m : m.reshape(s.shape()));
}

}  // namespace ember
