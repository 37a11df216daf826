#pragma once
// torch.optim.SGD over the fused update op (sgd_update_, autograd/ops/optim.cpp).
#include <vector>

#include "autograd/ops.h"  // SgdOptions, sgd_update_
#include "optim/optimizer.h"

namespace ember::optim {

/// lr, momentum, dampening, weight_decay, nesterov, maximize (kernels/sgd_math.h).
using SGDOptions = ember::SgdOptions;

/// Stochastic gradient descent with PyTorch's exact update rule, for each parameter p
/// with gradient g (one fused pass over p, g and the momentum buffer b):
///   g = g + weight_decay * p                         (when weight_decay != 0)
///   b = g at the first step, else momentum * b + (1 - dampening) * g   (momentum != 0)
///   g = g + momentum * b (nesterov) or g = b
///   p = p - lr * g
/// The update runs outside autograd and bumps the parameter's version.
///
/// Note [16-bit parameters]: for an f16/bf16 parameter (pure 16-bit training, Module::to)
/// SGD keeps an f32 master copy and an f32 momentum buffer: the update runs in f32 on the
/// master, which is then rounded into the parameter. Updated in 16 bits, a step smaller
/// than half a unit in the last place of the weight (lr * g < 2^-11 * |p| in f16) would be
/// lost entirely. The master is made from the parameter at its first step, and again
/// whenever something else has written the parameter since (its version tells).
class SGD : public Optimizer {
 public:
  SGD(TensorList params, SGDOptions options = {});
  void step() override;

  double lr() const override { return options_.lr; }
  void set_lr(double lr) override;
  const SGDOptions& options() const { return options_; }

  /// tensors "state.<i>.momentum_buffer" for each parameter that has one (and
  /// "state.<i>.master" for 16-bit parameters: Note [16-bit parameters]); scalars lr,
  /// momentum, dampening, weight_decay, nesterov, maximize (0/1), num_params. The tensors
  /// are the live buffers: write or clone them before the next step.
  OptimizerState state_dict() const override;
  void load_state_dict(const OptimizerState& state) override;

  /// The momentum buffer of parameter i (undefined before its first step with momentum).
  const Tensor& momentum_buffer(size_t i) const;
  /// The f32 master copy of 16-bit parameter i (undefined for others, and before its first step).
  const Tensor& master(size_t i) const;

 private:
  /// The tensor the update runs on: the parameter, or its f32 master (made or refreshed here).
  Tensor& update_target(size_t i);

  SGDOptions options_;
  std::vector<Tensor> buffers_;
  std::vector<Tensor> masters_;            // f32 copies of 16-bit parameters
  std::vector<uint64_t> master_versions_;  // the parameter's version when its master was written
};

}  // namespace ember::optim
