#pragma once
// Gradient clipping, as torch.nn.utils.clip_grad_norm_ / clip_grad_value_.
#include <limits>

#include "tensor/tensor.h"

namespace ember::nn {

/// Scales the gradients of `params` in place so that their total norm (all gradients as
/// one vector; `norm_type` 2 by default, any p > 0, or infinity) is at most `max_norm`, and
/// returns that total norm before clipping as a 0-d tensor (f32; f64 when a gradient is
/// f64) on the first gradient's device. Parameters without a gradient are skipped. The
/// scaling runs on the device without waiting for it (the factor is
/// min(1, max_norm / (norm + 1e-6)), as PyTorch); with `error_if_nonfinite` a NaN or inf
/// norm throws instead (which reads the norm on the host). Under loss scaling, unscale the
/// gradients first (GradScaler::unscale_), or the norm is the scaled one.
Tensor clip_grad_norm_(const TensorList& params, double max_norm, double norm_type = 2.0,
                       bool error_if_nonfinite = false);

/// Clamps every gradient element to [-clip_value, clip_value] in place.
void clip_grad_value_(const TensorList& params, double clip_value);

}  // namespace ember::nn
