// gradcheck: one backward with a random projection v, and two forwards per input element.
#include "autograd/gradcheck.h"

#include <cmath>
#include <sstream>

#include "autograd/grad_mode.h"
#include "autograd/node.h"
#include "autograd/ops.h"
#include "core/strided_layout.h"
#include "tensor/generator.h"
#include "tensor/layout.h"

namespace ember {

GradcheckResult gradcheck(const std::function<Tensor(const TensorList&)>& fn,
                          const TensorList& inputs, const GradcheckOptions& opt) {
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& t = inputs[i];
    EMBER_CHECK(t.defined() && t.dtype() == DType::f64 && t.device().is_cpu(),
                "gradcheck: input ", i, " must be an f64 CPU tensor");
    for (int64_t d = 0; d < t.dim(); ++d)
      EMBER_CHECK(t.stride(d) != 0 || t.size(d) <= 1, "gradcheck: input ", i,
                  " is an expanded view; its elements overlap");
  }
  GradcheckResult res;

  // Analytic: the vector-Jacobian product with a random v.
  Tensor out = fn(inputs);
  EMBER_CHECK(out.dtype() == DType::f64, "gradcheck: fn must return an f64 tensor");
  GeneratorState saved_state = default_generator().state();
  default_generator().manual_seed(opt.seed);
  Tensor v = randn(out.shape(), {.dtype = DType::f64});
  default_generator().set_state(saved_state);
  TensorList need;
  std::vector<size_t> need_idx;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (inputs[i].requires_grad()) {
      need.push_back(inputs[i]);
      need_idx.push_back(i);
    }
  }
  EMBER_CHECK(!need.empty(), "gradcheck: no input requires grad");
  TensorList analytic = autograd::grad({out}, need, {v}, false, /*allow_unused=*/true);
  std::vector<double> vv = v.to_vector<double>();

  auto project = [&](const TensorList& in) {
    NoGradGuard ng;
    Tensor o = fn(in);
    std::vector<double> ov = o.to_vector<double>();
    double s = 0;
    for (size_t k = 0; k < ov.size(); ++k) s += ov[k] * vv[k];
    return s;
  };

  std::ostringstream msg;
  int reported = 0;
  double f0 = project(inputs);
  for (size_t n = 0; n < need.size(); ++n) {
    const Tensor& x = need[n];
    std::vector<double> an = analytic[n].defined() ? analytic[n].to_vector<double>()
                                                   : std::vector<double>(size_t(x.numel()), 0.0);
    StridedLayout l = layout_of(x);
    double* base = static_cast<double*>(x.data_ptr());
    for (int64_t j = 0; j < x.numel(); ++j) {
      double* p = base + (x.dim() == 0 ? 0 : l.offset_of(j));
      double orig = *p;
      *p = orig + opt.eps;
      double fp = project(inputs);
      *p = orig - opt.eps;
      double fm = project(inputs);
      *p = orig;
      double num = (fp - fm) / (2 * opt.eps);
      double right = (fp - f0) / opt.eps, left = (f0 - fm) / opt.eps;
      double scale = std::max({1.0, std::fabs(right), std::fabs(left)});
      if (std::fabs(right - left) > opt.kink_tol * scale) {
        ++res.skipped;
        continue;
      }
      ++res.checked;
      double a = an[size_t(j)];
      if (!(std::fabs(a - num) <= opt.atol + opt.rtol * std::fabs(num))) {
        res.ok = false;
        if (reported++ < 8)
          msg << "\n  input " << need_idx[n] << " element " << j << ": backward " << a
              << ", numerical " << num;
      }
    }
  }
  if (!res.ok) res.message = "gradcheck failed:" + msg.str();
  return res;
}

}  // namespace ember
