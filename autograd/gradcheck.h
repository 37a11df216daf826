#pragma once
// Gradient checks: backward against central differences, in f64 on the CPU.
#include <functional>
#include <string>

#include "tensor/tensor.h"

namespace ember {

struct GradcheckOptions {
  double eps = 1e-6;
  double atol = 1e-5;
  double rtol = 1e-3;
  /// Skip elements where the one-sided differences disagree by more than this relative
  /// amount: the function has a kink there (relu at 0, max-pool ties), no derivative.
  double kink_tol = 1e-2;
  uint64_t seed = 1234;
};

struct GradcheckResult {
  bool ok = true;
  int64_t checked = 0;  // elements compared
  int64_t skipped = 0;  // elements skipped at kinks
  std::string message;  // what differed, when !ok
  explicit operator bool() const { return ok; }
};

/// Checks d(sum(fn(inputs) * v))/d(inputs) from backward against central differences, for
/// a random projection v. Inputs must be f64 CPU tensors with requires_grad; they may be
/// non-contiguous views, but not overlapping (expanded) ones.
GradcheckResult gradcheck(const std::function<Tensor(const TensorList&)>& fn,
                          const TensorList& inputs, const GradcheckOptions& opt = {});

}  // namespace ember
