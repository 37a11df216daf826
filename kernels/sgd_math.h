#pragma once
// The SGD update of one element, shared by the CPU loop and the CUDA kernel so that the
// arithmetic the GPU runs is the one the CPU tests check (DESIGN.md, "one functor").
#include "core/half.h"

namespace ember {

/// SGD's hyperparameters, as torch.optim.SGD's. One definition for the optimizer and its
/// kernels: optim::SGDOptions is this struct.
struct SgdOptions {
  double lr = 0.01;
  double momentum = 0.0;
  double dampening = 0.0;
  double weight_decay = 0.0;
  bool nesterov = false;
  bool maximize = false;
};
/// What one kernel call needs: the hyperparameters and whether the momentum buffer is new.
struct SgdStepArgs : SgdOptions {
  bool first_step = false;  // momentum buffer not yet initialized: it becomes the gradient
};

/// Hyper-parameters of one fused SGD step, already converted to the compute type C.
template <class C>
struct SgdCoeffs {
  C lr;
  C momentum;
  C one_minus_dampening;
  C weight_decay;
  bool nesterov;
  bool has_momentum;  // momentum != 0: a buffer exists
  bool first_step;    // the buffer is initialized to the gradient (PyTorch's rule)
  bool maximize;
};

/// PyTorch's torch.optim.SGD rule for one element: returns the new parameter value and
/// updates `buf` (the momentum buffer) when momentum is on.
///   g = grad (+ wd * p);  buf = first ? g : momentum * buf + (1 - dampening) * g
///   g = nesterov ? g + momentum * buf : buf;  p = p - lr * g
template <class C>
EMBER_HD C sgd_apply(C p, C g, C& buf, const SgdCoeffs<C>& k) {
  if (k.maximize) g = -g;
  if (k.weight_decay != C(0)) g = g + k.weight_decay * p;
  if (k.has_momentum) {
    buf = k.first_step ? g : k.momentum * buf + k.one_minus_dampening * g;
    g = k.nesterov ? g + k.momentum * buf : buf;
  }
  return p - k.lr * g;
}

}  // namespace ember
