#pragma once
// Learning-rate schedules with PyTorch's closed forms (torch.optim.lr_scheduler).
//
// Note [Schedule steps]: a scheduler counts steps, and a step is whatever unit its
// lengths (T_max, step_size, milestones, warm-up length) are given in. Call step() once per
// epoch with lengths in epochs (PyTorch's usual pattern), or once per iteration with lengths
// in iterations (e.g. T_max = epochs * iterations_per_epoch) for a smooth per-iteration
// schedule. Construction sets the optimizer's lr to the step-0 value; step() advances the
// count and sets lr = lr_at(count). Each lr is computed from the closed form, never
// recursively, so resuming from a state_dict gives the same numbers bit for bit.
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "optim/optimizer.h"

namespace ember::optim {

class LRScheduler {
 public:
  /// Takes the optimizer's current lr as the base lr. The optimizer must outlive it.
  explicit LRScheduler(Optimizer& optimizer);
  virtual ~LRScheduler() = default;

  /// Advances one step and sets the optimizer's lr.
  void step();
  /// Jumps to step `t` and sets the optimizer's lr.
  void set_step(int64_t t);
  /// Steps taken so far (PyTorch's last_epoch).
  int64_t last_step() const { return last_step_; }
  double base_lr() const { return base_lr_; }
  /// The lr of the current step.
  double get_lr() const { return lr_at(last_step_); }
  /// The closed-form lr after `t` steps.
  virtual double lr_at(int64_t t) const = 0;
  virtual std::string name() const = 0;

  /// last_step, base_lr and the schedule's parameters.
  virtual ScalarState state_dict() const;
  /// Restores them and sets the optimizer's lr to the restored step's value; throws when a
  /// key is missing.
  virtual void load_state_dict(const ScalarState& state);

 protected:
  /// Sets the optimizer's lr to the current step's value (subclass constructors call it
  /// once their parameters are set).
  void apply();
  static double get(const ScalarState& s, const std::string& key, const std::string& who);

  Optimizer* optimizer_;
  double base_lr_;
  int64_t last_step_ = 0;
};

/// lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * t / T_max)) / 2. Past T_max the
/// closed form continues (rising again), as PyTorch's.
class CosineAnnealingLR : public LRScheduler {
 public:
  CosineAnnealingLR(Optimizer& optimizer, int64_t T_max, double eta_min = 0.0);
  double lr_at(int64_t t) const override;
  std::string name() const override { return "CosineAnnealingLR"; }
  ScalarState state_dict() const override;
  void load_state_dict(const ScalarState& state) override;

 private:
  int64_t T_max_;
  double eta_min_;
};

/// lr = base_lr * gamma ^ floor(t / step_size).
class StepLR : public LRScheduler {
 public:
  StepLR(Optimizer& optimizer, int64_t step_size, double gamma = 0.1);
  double lr_at(int64_t t) const override;
  std::string name() const override { return "StepLR"; }
  ScalarState state_dict() const override;
  void load_state_dict(const ScalarState& state) override;

 private:
  int64_t step_size_;
  double gamma_;
};

/// lr = base_lr * gamma ^ (number of milestones <= t).
class MultiStepLR : public LRScheduler {
 public:
  MultiStepLR(Optimizer& optimizer, std::vector<int64_t> milestones, double gamma = 0.1);
  double lr_at(int64_t t) const override;
  std::string name() const override { return "MultiStepLR"; }
  ScalarState state_dict() const override;
  void load_state_dict(const ScalarState& state) override;

 private:
  std::vector<int64_t> milestones_;  // sorted
  double gamma_;
};

/// lr = base_lr * f(t), f piecewise linear through the points (t_i, f_i) (ignite's
/// PiecewiseLinear, with factors of the base lr): f_0 before the first point, the last f
/// after the last one. The CIFAR script's schedule is {(0, 0), (W, 1), (T, 0)}: a linear
/// warm-up from 0 over W steps, then a linear decay to 0 at step T.
class PiecewiseLinearLR : public LRScheduler {
 public:
  PiecewiseLinearLR(Optimizer& optimizer, std::vector<std::pair<int64_t, double>> points);
  double lr_at(int64_t t) const override;
  std::string name() const override { return "PiecewiseLinearLR"; }
  ScalarState state_dict() const override;
  void load_state_dict(const ScalarState& state) override;

 private:
  static void check_points(const std::vector<std::pair<int64_t, double>>& points, const std::string& who);
  std::vector<std::pair<int64_t, double>> points_;  // strictly increasing steps
};

/// lr = base_lr * factor(t); the function itself is not part of the state.
class LambdaLR : public LRScheduler {
 public:
  LambdaLR(Optimizer& optimizer, std::function<double(int64_t)> factor);
  double lr_at(int64_t t) const override;
  std::string name() const override { return "LambdaLR"; }

 private:
  std::function<double(int64_t)> factor_;
};

/// The constant base lr (a "no schedule" that can still take a warm-up).
class ConstantLR : public LRScheduler {
 public:
  explicit ConstantLR(Optimizer& optimizer) : LRScheduler(optimizer) { apply(); }
  double lr_at(int64_t) const override { return base_lr_; }
  std::string name() const override { return "ConstantLR"; }
};

/// Linear warm-up in front of another schedule, as PyTorch's
/// SequentialLR([LinearLR(start_factor, 1.0, total_iters=W), after], milestones=[W]):
///   t <  W: base_lr * (start_factor + (1 - start_factor) * t / W)
///   t >= W: after.lr_at(t - W)
/// `after` must drive the same optimizer (its length excludes the warm-up, e.g. cosine with
/// T_max = total - W); only its closed form is used, this scheduler owns the step count.
class WarmupLR : public LRScheduler {
 public:
  WarmupLR(Optimizer& optimizer, std::shared_ptr<LRScheduler> after, int64_t warmup_steps,
           double start_factor = 1.0 / 3.0);
  double lr_at(int64_t t) const override;
  std::string name() const override { return "WarmupLR(" + after_->name() + ")"; }
  /// Its own entries plus the wrapped schedule's under "after.".
  ScalarState state_dict() const override;
  void load_state_dict(const ScalarState& state) override;
  const LRScheduler& after() const { return *after_; }

 private:
  std::shared_ptr<LRScheduler> after_;
  int64_t warmup_steps_;
  double start_factor_;
};

/// The schedules the apps choose by name.
struct SchedulerConfig {
  /// cosine | step | multistep | linear | none. linear: the CIFAR script's piecewise-linear
  /// schedule, from 0 up to the base lr over the warm-up (no warm-up: from the base lr), then
  /// down to 0 at total_steps (its warm-up starts at 0, not at warmup_start_factor).
  std::string kind = "cosine";
  int64_t total_steps = 0;      // cosine, linear: warm-up + annealing length (T_max = total - warm-up)
  int64_t warmup_steps = 0;     // 0: no warm-up
  double warmup_start_factor = 1.0 / 3.0;
  double eta_min = 0.0;                // cosine
  int64_t step_size = 30;              // step
  std::vector<int64_t> milestones;     // multistep (counted after the warm-up)
  double gamma = 0.1;                  // step, multistep
};
/// Builds the scheduler `config` describes (with a WarmupLR in front when warmup_steps > 0);
/// throws for an unknown kind, listing the valid ones.
std::shared_ptr<LRScheduler> make_scheduler(Optimizer& optimizer, const SchedulerConfig& config);

}  // namespace ember::optim
