#pragma once
// Dynamic loss scaling for reduced-precision training, as torch.cuda.amp.GradScaler:
//   scaler.scale(loss).backward(); scaler.step(opt); scaler.update();
// Gradients are unscaled before the step; a step whose gradients hold an inf or NaN is
// skipped and the scale backs off; after `growth_interval` clean steps the scale grows.
#include "optim/optimizer.h"

namespace ember::optim {

struct GradScalerOptions {
  double init_scale = 65536.0;  // 2^16
  double growth_factor = 2.0;
  double backoff_factor = 0.5;
  int64_t growth_interval = 2000;
  bool enabled = true;  // disabled: scale() and unscale_() are no-ops, step() just steps
};

class GradScaler {
 public:
  explicit GradScaler(GradScalerOptions options = {});

  /// loss * scale (the loss itself when disabled).
  Tensor scale(const Tensor& loss) const;
  /// Divides the optimizer's gradients by the scale in place and records whether any is
  /// non-finite. At most once per step (a second call before update() throws).
  void unscale_(Optimizer& optimizer);
  /// Unscales (unless done already) and runs optimizer.step() unless an inf/NaN was found.
  /// Returns whether the step ran.
  bool step(Optimizer& optimizer);
  /// Adjusts the scale after a step: back off on inf/NaN, grow after growth_interval clean
  /// steps. Call once per iteration, after step().
  void update();

  double get_scale() const { return scale_; }
  bool found_inf() const { return found_inf_; }
  bool is_enabled() const { return options_.enabled; }

  /// scale, growth_factor, backoff_factor, growth_interval, growth_tracker (PyTorch's keys,
  /// "_growth_tracker" without the underscore).
  ScalarState state_dict() const;
  void load_state_dict(const ScalarState& state);

 private:
  GradScalerOptions options_;
  double scale_;
  int64_t growth_tracker_ = 0;
  bool unscaled_ = false;
  bool found_inf_ = false;
};

}  // namespace ember::optim
