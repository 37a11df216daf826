#pragma once
// The optimizer interface shared by SGD (and later optimizers) and the LR schedulers.
#include <map>
#include <string>

#include "nn/module.h"
#include "tensor/tensor.h"

namespace ember::optim {

/// Scalar state (hyper-parameters, counters) by name; i64 values are exact up to 2^53.
using ScalarState = std::map<std::string, double>;

/// An optimizer's state: tensors named as PyTorch's nested state dict flattened with dots
/// ("state.<param index>.momentum_buffer") and scalars ("lr", "momentum", ...), ready to be
/// written to a checkpoint (tensors as tensors, scalars in its metadata).
struct OptimizerState {
  nn::StateDict tensors;
  ScalarState scalars;
};

class Optimizer {
 public:
  explicit Optimizer(TensorList params);
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  /// One update of every parameter that has a gradient (parameters without one are skipped).
  virtual void step() = 0;
  /// Clears the parameters' gradients: drops them (PyTorch's default) or zero-fills them.
  void zero_grad(bool set_to_none = true);

  virtual double lr() const = 0;
  virtual void set_lr(double lr) = 0;

  virtual OptimizerState state_dict() const = 0;
  /// Restores hyper-parameters and buffers; throws (changing nothing) when the state does not
  /// fit these parameters (count, shapes).
  virtual void load_state_dict(const OptimizerState& state) = 0;

  const TensorList& params() const { return params_; }

 protected:
  TensorList params_;
};

}  // namespace ember::optim
