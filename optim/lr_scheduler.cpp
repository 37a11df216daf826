// LR schedules: closed forms of PyTorch's schedulers (Note [Schedule steps]).
#include "optim/lr_scheduler.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace ember::optim {

// ---- LRScheduler

LRScheduler::LRScheduler(Optimizer& optimizer)
    : optimizer_(&optimizer), base_lr_(optimizer.lr()) {}

void LRScheduler::apply() { optimizer_->set_lr(lr_at(last_step_)); }

void LRScheduler::step() {
  ++last_step_;
  apply();
}

void LRScheduler::set_step(int64_t t) {
  EMBER_CHECK(t >= 0, name(), ": step must be >= 0, got ", t);
  last_step_ = t;
  apply();
}

double LRScheduler::get(const ScalarState& s, const std::string& key, const std::string& who) {
  auto it = s.find(key);
  EMBER_CHECK(it != s.end(), who, ".load_state_dict: the state has no '", key, "' entry");
  return it->second;
}

namespace {
/// A count stored as a double in a ScalarState: it must be an integer in [lo, 2^53] (the
/// doubles that hold integers exactly) before it is converted; 1e300 or NaN is an error.
int64_t count_of(double v, const std::string& key, const std::string& who, int64_t lo) {
  constexpr double kMax = 9007199254740992.0;  // 2^53
  EMBER_CHECK(std::isfinite(v) && v == std::floor(v) && v >= double(lo) && v <= kMax, who,
              ".load_state_dict: ", key, " must be an integer in [", lo, ", 2^53], got ", v);
  return int64_t(v);
}
}  // namespace

ScalarState LRScheduler::state_dict() const {
  return {{"last_step", double(last_step_)}, {"base_lr", base_lr_}};
}

void LRScheduler::load_state_dict(const ScalarState& s) {
  const int64_t t = count_of(get(s, "last_step", name()), "last_step", name(), 0);
  const double base_lr = get(s, "base_lr", name());
  EMBER_CHECK(std::isfinite(base_lr), name(), ".load_state_dict: base_lr must be finite, got ", base_lr);
  base_lr_ = base_lr;
  last_step_ = t;
  apply();
}

// ---- CosineAnnealingLR

CosineAnnealingLR::CosineAnnealingLR(Optimizer& optimizer, int64_t T_max, double eta_min)
    : LRScheduler(optimizer), T_max_(T_max), eta_min_(eta_min) {
  EMBER_CHECK(T_max > 0, "CosineAnnealingLR: T_max must be positive, got ", T_max);
  apply();
}

double CosineAnnealingLR::lr_at(int64_t t) const {
  return eta_min_ + (base_lr_ - eta_min_) *
                        (1.0 + std::cos(std::numbers::pi * double(t) / double(T_max_))) / 2.0;
}

ScalarState CosineAnnealingLR::state_dict() const {
  ScalarState s = LRScheduler::state_dict();
  s["T_max"] = double(T_max_);
  s["eta_min"] = eta_min_;
  return s;
}

void CosineAnnealingLR::load_state_dict(const ScalarState& s) {
  const int64_t T = count_of(get(s, "T_max", name()), "T_max", name(), 1);
  count_of(get(s, "last_step", name()), "last_step", name(), 0);  // check before changing anything
  T_max_ = T;
  eta_min_ = get(s, "eta_min", name());
  LRScheduler::load_state_dict(s);
}

// ---- StepLR

StepLR::StepLR(Optimizer& optimizer, int64_t step_size, double gamma)
    : LRScheduler(optimizer), step_size_(step_size), gamma_(gamma) {
  EMBER_CHECK(step_size > 0, "StepLR: step_size must be positive, got ", step_size);
  apply();
}

double StepLR::lr_at(int64_t t) const {
  return base_lr_ * std::pow(gamma_, double(t / step_size_));
}

ScalarState StepLR::state_dict() const {
  ScalarState s = LRScheduler::state_dict();
  s["step_size"] = double(step_size_);
  s["gamma"] = gamma_;
  return s;
}

void StepLR::load_state_dict(const ScalarState& s) {
  const int64_t n = count_of(get(s, "step_size", name()), "step_size", name(), 1);
  count_of(get(s, "last_step", name()), "last_step", name(), 0);  // check before changing anything
  step_size_ = n;
  gamma_ = get(s, "gamma", name());
  LRScheduler::load_state_dict(s);
}

// ---- MultiStepLR

MultiStepLR::MultiStepLR(Optimizer& optimizer, std::vector<int64_t> milestones, double gamma)
    : LRScheduler(optimizer), milestones_(std::move(milestones)), gamma_(gamma) {
  std::sort(milestones_.begin(), milestones_.end());
  apply();
}

double MultiStepLR::lr_at(int64_t t) const {
  // bisect_right: milestones <= t have passed (a repeated milestone counts twice, as PyTorch).
  auto passed = std::upper_bound(milestones_.begin(), milestones_.end(), t) - milestones_.begin();
  return base_lr_ * std::pow(gamma_, double(passed));
}

ScalarState MultiStepLR::state_dict() const {
  ScalarState s = LRScheduler::state_dict();
  s["gamma"] = gamma_;
  s["milestones.count"] = double(milestones_.size());
  for (size_t i = 0; i < milestones_.size(); ++i)
    s["milestones." + std::to_string(i)] = double(milestones_[i]);
  return s;
}

void MultiStepLR::load_state_dict(const ScalarState& s) {
  const int64_t n = count_of(get(s, "milestones.count", name()), "milestones.count", name(), 0);
  EMBER_CHECK(n <= int64_t(s.size()), name(), ".load_state_dict: milestones.count ", n,
              " exceeds the number of entries in the state (", s.size(), ")");
  std::vector<int64_t> ms;
  for (int64_t i = 0; i < n; ++i) {
    const std::string key = "milestones." + std::to_string(i);
    ms.push_back(count_of(get(s, key, name()), key, name(), -(int64_t(1) << 53)));
  }
  std::sort(ms.begin(), ms.end());
  double gamma = get(s, "gamma", name());
  get(s, "last_step", name());  // check before changing anything
  get(s, "base_lr", name());
  milestones_ = std::move(ms);
  gamma_ = gamma;
  LRScheduler::load_state_dict(s);
}

// ---- PiecewiseLinearLR

void PiecewiseLinearLR::check_points(const std::vector<std::pair<int64_t, double>>& p, const std::string& who) {
  EMBER_CHECK(!p.empty(), who, ": needs at least one (step, factor) point");
  for (size_t i = 1; i < p.size(); ++i)
    EMBER_CHECK(p[i].first > p[i - 1].first, who, ": the steps must increase, got ", p[i - 1].first, " then ",
                p[i].first);
}

PiecewiseLinearLR::PiecewiseLinearLR(Optimizer& optimizer, std::vector<std::pair<int64_t, double>> points)
    : LRScheduler(optimizer), points_(std::move(points)) {
  check_points(points_, "PiecewiseLinearLR");
  apply();
}

double PiecewiseLinearLR::lr_at(int64_t t) const {
  if (t <= points_.front().first) return base_lr_ * points_.front().second;
  for (size_t i = 1; i < points_.size(); ++i) {
    const auto& [t1, f1] = points_[i];
    if (t <= t1) {
      const auto& [t0, f0] = points_[i - 1];
      return base_lr_ * (f0 + (f1 - f0) * double(t - t0) / double(t1 - t0));
    }
  }
  return base_lr_ * points_.back().second;
}

ScalarState PiecewiseLinearLR::state_dict() const {
  ScalarState s = LRScheduler::state_dict();
  s["points.count"] = double(points_.size());
  for (size_t i = 0; i < points_.size(); ++i) {
    s["points." + std::to_string(i) + ".step"] = double(points_[i].first);
    s["points." + std::to_string(i) + ".factor"] = points_[i].second;
  }
  return s;
}

void PiecewiseLinearLR::load_state_dict(const ScalarState& s) {
  double n = get(s, "points.count", name());
  EMBER_CHECK(n >= 1 && n <= 1e6 && n == std::floor(n), name(), ".load_state_dict: bad points.count ", n);
  std::vector<std::pair<int64_t, double>> pts;
  for (int64_t i = 0; i < int64_t(n); ++i) {
    double t = get(s, "points." + std::to_string(i) + ".step", name());
    EMBER_CHECK(std::isfinite(t) && std::fabs(t) < 9e15, name(), ".load_state_dict: bad step ", t);
    pts.emplace_back(int64_t(t), get(s, "points." + std::to_string(i) + ".factor", name()));
  }
  check_points(pts, name() + ".load_state_dict");
  get(s, "last_step", name());
  get(s, "base_lr", name());
  points_ = std::move(pts);
  LRScheduler::load_state_dict(s);
}

// ---- LambdaLR

LambdaLR::LambdaLR(Optimizer& optimizer, std::function<double(int64_t)> factor)
    : LRScheduler(optimizer), factor_(std::move(factor)) {
  EMBER_CHECK(static_cast<bool>(factor_), "LambdaLR: the factor function is empty");
  apply();
}

double LambdaLR::lr_at(int64_t t) const { return base_lr_ * factor_(t); }

// ---- WarmupLR

WarmupLR::WarmupLR(Optimizer& optimizer, std::shared_ptr<LRScheduler> after,
                   int64_t warmup_steps, double start_factor)
    : LRScheduler(optimizer), after_(std::move(after)), warmup_steps_(warmup_steps),
      start_factor_(start_factor) {
  EMBER_CHECK(after_ != nullptr, "WarmupLR: the schedule after the warm-up is null");
  EMBER_CHECK(warmup_steps >= 0, "WarmupLR: warmup_steps must be >= 0, got ", warmup_steps);
  EMBER_CHECK(start_factor > 0.0 && start_factor <= 1.0,
              "WarmupLR: start_factor must be in (0, 1], got ", start_factor);
  // `after` already set the optimizer's lr to its own step 0: take its base lr instead.
  base_lr_ = after_->base_lr();
  apply();
}

double WarmupLR::lr_at(int64_t t) const {
  if (t < warmup_steps_)
    return base_lr_ * (start_factor_ + (1.0 - start_factor_) * double(t) / double(warmup_steps_));
  return after_->lr_at(t - warmup_steps_);
}

ScalarState WarmupLR::state_dict() const {
  ScalarState s = LRScheduler::state_dict();
  s["warmup_steps"] = double(warmup_steps_);
  s["start_factor"] = start_factor_;
  for (const auto& [k, v] : after_->state_dict()) s["after." + k] = v;
  return s;
}

void WarmupLR::load_state_dict(const ScalarState& s) {
  const int64_t w = count_of(get(s, "warmup_steps", name()), "warmup_steps", name(), 0);
  double f = get(s, "start_factor", name());
  EMBER_CHECK(f > 0.0 && f <= 1.0, name(), ".load_state_dict: bad warm-up (steps ",
              w, ", start_factor ", f, ")");
  count_of(get(s, "last_step", name()), "last_step", name(), 0);  // check before changing anything
  ScalarState inner;
  for (const auto& [k, v] : s)
    if (k.rfind("after.", 0) == 0) inner[k.substr(6)] = v;
  after_->load_state_dict(inner);  // sets the lr to its own step; ours is applied below
  warmup_steps_ = w;
  start_factor_ = f;
  LRScheduler::load_state_dict(s);
}

// ---- factory

std::shared_ptr<LRScheduler> make_scheduler(Optimizer& opt, const SchedulerConfig& c) {
  EMBER_CHECK(c.warmup_steps >= 0, "scheduler: warmup_steps must be >= 0, got ", c.warmup_steps);
  std::shared_ptr<LRScheduler> main;
  if (c.kind == "cosine") {
    int64_t T = c.total_steps - c.warmup_steps;
    EMBER_CHECK(T > 0, "scheduler: cosine needs total_steps (", c.total_steps,
                ") greater than warmup_steps (", c.warmup_steps, ")");
    main = std::make_shared<CosineAnnealingLR>(opt, T, c.eta_min);
  } else if (c.kind == "step") {
    main = std::make_shared<StepLR>(opt, c.step_size, c.gamma);
  } else if (c.kind == "multistep") {
    main = std::make_shared<MultiStepLR>(opt, c.milestones, c.gamma);
  } else if (c.kind == "linear") {
    EMBER_CHECK(c.total_steps > c.warmup_steps, "scheduler: linear needs total_steps (", c.total_steps,
                ") greater than warmup_steps (", c.warmup_steps, ")");
    std::vector<std::pair<int64_t, double>> pts;
    if (c.warmup_steps > 0) pts = {{0, 0.0}, {c.warmup_steps, 1.0}, {c.total_steps, 0.0}};
    else pts = {{0, 1.0}, {c.total_steps, 0.0}};
    return std::make_shared<PiecewiseLinearLR>(opt, pts);  // the warm-up is part of it
  } else if (c.kind == "none" || c.kind == "constant") {
    main = std::make_shared<ConstantLR>(opt);
  } else {
    EMBER_THROW("unknown scheduler '", c.kind, "'; valid schedulers are: cosine, step, "
                "multistep, linear, none");
  }
  if (c.warmup_steps == 0) return main;
  return std::make_shared<WarmupLR>(opt, main, c.warmup_steps, c.warmup_start_factor);
}

}  // namespace ember::optim
