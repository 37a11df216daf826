// Gradient clipping by total norm and by value (nn/clip_grad.h).
#include "nn/clip_grad.h"

#include <cmath>

#include "autograd/grad_mode.h"
#include "autograd/ops.h"

namespace ember::nn {

Tensor clip_grad_norm_(const TensorList& params, double max_norm, double norm_type,
                       bool error_if_nonfinite) {
  EMBER_CHECK(max_norm >= 0 && !std::isnan(max_norm), "clip_grad_norm_: max_norm must be >= 0, got ", max_norm);
  EMBER_CHECK(norm_type > 0, "clip_grad_norm_: norm_type must be > 0 (or infinity), got ", norm_type);
  NoGradGuard no_grad;
  TensorList grads;
  bool f64 = false;
  for (const Tensor& p : params) {
    if (!p.defined() || !p.grad().defined()) continue;
    grads.push_back(p.grad());
    f64 = f64 || p.grad().dtype() == DType::f64;
  }
  const DType acc = f64 ? DType::f64 : DType::f32;
  if (grads.empty()) return zeros({}, {.dtype = acc});
  const Device dev = grads[0].device();
  const bool inf_norm = std::isinf(norm_type);
  // Per-gradient norms in the accumulation type (a 16-bit gradient's squares would overflow),
  // combined on the first gradient's device.
  Tensor total;
  for (const Tensor& g : grads) {
    Tensor a = abs(g.to(acc));
    Tensor part = inf_norm ? max(a) : norm_type == 2.0 ? sum(square(a)) : sum(pow(a, norm_type));
    part = part.to(dev);
    total = !total.defined() ? part : inf_norm ? maximum(total, part) : add(total, part);
  }
  if (!inf_norm) total = norm_type == 2.0 ? sqrt(total) : pow(total, 1.0 / norm_type);
  if (error_if_nonfinite) {
    double v = total.item();
    EMBER_CHECK(std::isfinite(v), "clip_grad_norm_: the total norm of order ", norm_type, " of the gradients of ",
                grads.size(), " parameters is ", v, "; set error_if_nonfinite=false to scale them anyway");
  }
  Tensor coef = clamp(div(scalar_tensor(max_norm, {.dtype = acc, .device = dev}), add(total, 1e-6)), std::nullopt, 1.0);
  for (Tensor& g : grads) {
    Tensor c = coef.to(g.device(), g.dtype());
    g.mul_(c);
  }
  return total;
}

void clip_grad_value_(const TensorList& params, double clip_value) {
  EMBER_CHECK(clip_value >= 0 && !std::isnan(clip_value), "clip_grad_value_: clip_value must be >= 0, got ",
              clip_value);
  NoGradGuard no_grad;
  for (const Tensor& p : params) {
    if (!p.defined() || !p.grad().defined()) continue;
    Tensor g = p.grad();
    g.copy_(clamp(g, -clip_value, clip_value));
  }
}

}  // namespace ember::nn
