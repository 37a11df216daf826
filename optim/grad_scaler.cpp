// GradScaler: unscale with one inf/NaN check per step, skip bad steps, adapt the scale.
#include "optim/grad_scaler.h"

#include <cmath>

#include "autograd/grad_mode.h"
#include "autograd/ops.h"

namespace ember::optim {

GradScaler::GradScaler(GradScalerOptions o) : options_(o), scale_(o.init_scale) {
  EMBER_CHECK(o.init_scale > 0 && std::isfinite(o.init_scale),
              "GradScaler: init_scale must be positive and finite, got ", o.init_scale);
  EMBER_CHECK(o.growth_factor > 1.0, "GradScaler: growth_factor must be > 1, got ", o.growth_factor);
  EMBER_CHECK(o.backoff_factor > 0.0 && o.backoff_factor < 1.0,
              "GradScaler: backoff_factor must be in (0, 1), got ", o.backoff_factor);
  EMBER_CHECK(o.growth_interval > 0, "GradScaler: growth_interval must be positive, got ",
              o.growth_interval);
}

Tensor GradScaler::scale(const Tensor& loss) const {
  if (!options_.enabled) return loss;
  return loss * scale_;
}

void GradScaler::unscale_(Optimizer& optimizer) {
  if (!options_.enabled) return;
  EMBER_CHECK(!unscaled_, "GradScaler: unscale_() was already called since the last update()");
  NoGradGuard no_grad;
  const double inv = 1.0 / scale_;
  // x * 0 is 0 for finite x and NaN for inf/NaN, so the sum of g * 0 over all gradients is
  // NaN exactly when one of them is not finite: one host read per step.
  Tensor probe;
  for (const Tensor& p : optimizer.params()) {
    Tensor g = p.grad();
    if (!g.defined()) continue;
    g.mul_(inv);
    Tensor s = sum(g * 0.0).to(DType::f32);  // 0-d, on the gradient's device
    probe = probe.defined() ? probe + s.to(probe.device()) : s;
  }
  found_inf_ = probe.defined() && !std::isfinite(probe.item<double>());
  unscaled_ = true;
}

bool GradScaler::step(Optimizer& optimizer) {
  if (!options_.enabled) {
    optimizer.step();
    return true;
  }
  if (!unscaled_) unscale_(optimizer);
  if (found_inf_) return false;
  optimizer.step();
  return true;
}

void GradScaler::update() {
  if (!options_.enabled) return;
  if (found_inf_) {
    scale_ *= options_.backoff_factor;
    growth_tracker_ = 0;
  } else if (++growth_tracker_ == options_.growth_interval) {
    scale_ *= options_.growth_factor;
    growth_tracker_ = 0;
  }
  unscaled_ = false;
  found_inf_ = false;
}

ScalarState GradScaler::state_dict() const {
  return {{"scale", scale_},
          {"growth_factor", options_.growth_factor},
          {"backoff_factor", options_.backoff_factor},
          {"growth_interval", double(options_.growth_interval)},
          {"growth_tracker", double(growth_tracker_)}};
}

void GradScaler::load_state_dict(const ScalarState& s) {
  auto get = [&](const char* key) {
    auto it = s.find(key);
    EMBER_CHECK(it != s.end(), "GradScaler.load_state_dict: the state has no '", key, "' entry");
    return it->second;
  };
  double scale = get("scale"), gf = get("growth_factor"), bf = get("backoff_factor");
  double gi = get("growth_interval"), gt = get("growth_tracker");
  // The counts are converted to integers: they must be integers in range first.
  auto count_ok = [](double v, double lo) {
    return std::isfinite(v) && v == std::floor(v) && v >= lo && v <= 9007199254740992.0;
  };
  EMBER_CHECK(scale > 0 && std::isfinite(scale) && gf > 1 && std::isfinite(gf) && bf > 0 && bf < 1 &&
                  count_ok(gi, 1) && count_ok(gt, 0),
              "GradScaler.load_state_dict: invalid state (scale ", scale, ", growth_factor ", gf,
              ", backoff_factor ", bf, ", growth_interval ", gi, ", growth_tracker ", gt, ")");
  scale_ = scale;
  options_.growth_factor = gf;
  options_.backoff_factor = bf;
  options_.growth_interval = int64_t(gi);
  growth_tracker_ = int64_t(gt);
  unscaled_ = false;
  found_inf_ = false;
}

}  // namespace ember::optim
