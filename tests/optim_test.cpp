// SGD against PyTorch's update rule, LR schedules against their closed forms, state dicts,
// and a small model whose loss falls.
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>

#include "test_util.h"

namespace ember {
namespace {

using test::all_close;

Tensor leaf(const std::vector<double>& v, DType dt = DType::f64) {
  Tensor t = from_vector<double>(v, {int64_t(v.size())}).to(dt);
  t.requires_grad_();
  return t;
}

// ---- SGD: hand-computed steps (p = 1, constant gradient 0.5, lr 0.1)

struct HandCase {
  const char* name;
  optim::SGDOptions opt;
  double after1, after2;
};

TEST(SGD, MatchesHandComputedPyTorchSteps) {
  const HandCase cases[] = {
      // p -= 0.1 * 0.5
      {"plain", {.lr = 0.1}, 0.95, 0.9},
      // g = 0.5 + 0.1 p: 0.6 -> p 0.94; g = 0.594, buf = 0.9 * 0.6 + 0.594 = 1.134 -> 0.8266
      {"momentum+wd", {.lr = 0.1, .momentum = 0.9, .weight_decay = 0.1}, 0.94, 0.8266},
      // buf = g = 0.6, step 0.6 + 0.9 * 0.6 = 1.14 -> 0.886; g = 0.5886, buf = 1.1286,
      // step 0.5886 + 0.9 * 1.1286 = 1.60434 -> 0.725566
      {"nesterov+wd", {.lr = 0.1, .momentum = 0.9, .weight_decay = 0.1, .nesterov = true},
       0.886, 0.725566},
      // The first step takes the raw gradient (no dampening): buf = 0.5 -> 0.95;
      // buf = 0.9 * 0.5 + (1 - 0.5) * 0.5 = 0.7 -> 0.88
      {"momentum+dampening", {.lr = 0.1, .momentum = 0.9, .dampening = 0.5}, 0.95, 0.88},
      // maximize ascends: p += 0.1 * 0.5
      {"maximize", {.lr = 0.1, .maximize = true}, 1.05, 1.1},
  };
  for (const auto& c : cases) {
    for (DType dt : {DType::f64, DType::f32}) {
      Tensor p = leaf({1.0}, dt);
      optim::SGD sgd({p}, c.opt);
      p.set_grad(full({1}, 0.5, {.dtype = dt}));
      sgd.step();
      double tol = dt == DType::f64 ? 1e-12 : 1e-6;
      EXPECT_NEAR(p.item(), c.after1, tol) << c.name << " " << dt;
      sgd.step();
      EXPECT_NEAR(p.item(), c.after2, tol) << c.name << " " << dt;
    }
  }
}

// PyTorch's rule written out in double, element by element (the reference for the fused
// kernel over many steps with changing gradients).
struct RefSGD {
  optim::SGDOptions o;
  std::vector<double> p, buf;
  bool started = false;
  void step(const std::vector<double>& grad) {
    for (size_t i = 0; i < p.size(); ++i) {
      double g = o.maximize ? -grad[i] : grad[i];
      if (o.weight_decay != 0) g += o.weight_decay * p[i];
      if (o.momentum != 0) {
        if (!started) {
          buf.push_back(g);
        } else {
          buf[i] = o.momentum * buf[i] + (1 - o.dampening) * g;
        }
        g = o.nesterov ? g + o.momentum * buf[i] : buf[i];
      }
      p[i] -= o.lr * g;
    }
    started = true;
  }
};

TEST(SGD, FusedKernelMatchesTheReferenceForEveryOptionCombination) {
  int combos = 0;
  for (double momentum : {0.0, 0.9})
    for (double dampening : {0.0, 0.3})
      for (bool nesterov : {false, true})
        for (double wd : {0.0, 5e-4})
          for (DType dt : {DType::f64, DType::f32}) {
            if (nesterov && (momentum == 0 || dampening != 0)) continue;
            optim::SGDOptions o{.lr = 0.05, .momentum = momentum, .dampening = dampening,
                                .weight_decay = wd, .nesterov = nesterov};
            manual_seed(11);
            // 70000 elements: the CPU loop splits across threads above its grain.
            Tensor p0 = randn({70000}, {.dtype = DType::f64});
            Tensor p = p0.to(dt);
            p.requires_grad_();
            optim::SGD sgd({p}, o);
            RefSGD ref{o, p.to_vector<double>()};
            for (int s = 0; s < 4; ++s) {
              Tensor g = randn({70000}, {.dtype = dt});
              p.set_grad(g);
              sgd.step();
              ref.step(g.to_vector<double>());
            }
            Tensor expect = from_vector<double>(ref.p, {70000});
            double rtol = dt == DType::f64 ? 1e-12 : 2e-5;
            EXPECT_TRUE(all_close(p.to(DType::f64), expect, rtol, rtol))
                << "momentum " << momentum << " dampening " << dampening << " nesterov "
                << nesterov << " wd " << wd << " " << dt;
            if (momentum != 0) {
              EXPECT_TRUE(all_close(sgd.momentum_buffer(0).to(DType::f64),
                                    from_vector<double>(ref.buf, {70000}), rtol, rtol));
            } else {
              EXPECT_FALSE(sgd.momentum_buffer(0).defined());
            }
            ++combos;
          }
  EXPECT_EQ(combos, 2 * (8 + 2));  // momentum 0: 4 (no nesterov); momentum 0.9: 6
}

TEST(SGD, SkipsParametersWithoutGradAndBumpsVersions) {
  Tensor a = leaf({1, 2}), b = leaf({3, 4});
  optim::SGD sgd({a, b}, {.lr = 0.5, .momentum = 0.9});
  a.set_grad(from_vector<double>({1, 1}, {2}));
  uint64_t va = a.version(), vb = b.version();
  sgd.step();
  EXPECT_EQ(a.to_vector<double>(), (std::vector<double>{0.5, 1.5}));
  EXPECT_EQ(b.to_vector<double>(), (std::vector<double>{3, 4}));
  EXPECT_GT(a.version(), va);
  EXPECT_EQ(b.version(), vb);
  EXPECT_TRUE(sgd.momentum_buffer(0).defined());
  EXPECT_FALSE(sgd.momentum_buffer(1).defined());
  EXPECT_FALSE(a.grad_fn());  // the update is not recorded
}

TEST(SGD, ZeroGrad) {
  Tensor a = leaf({1, 2});
  optim::SGD sgd({a}, {.lr = 0.1});
  a.set_grad(ones({2}, {.dtype = DType::f64}));
  sgd.zero_grad(/*set_to_none=*/false);
  EXPECT_EQ(a.grad().to_vector<double>(), (std::vector<double>{0, 0}));
  sgd.zero_grad();
  EXPECT_FALSE(a.grad().defined());
}

TEST(SGD, RejectsBadOptionsAndParameters) {
  Tensor a = leaf({1});
  EXPECT_THROW(optim::SGD({a}, {.lr = -1}), Error);
  EXPECT_THROW(optim::SGD({a}, {.lr = 0.1, .weight_decay = -1}), Error);
  EXPECT_THROW(optim::SGD({a}, {.lr = 0.1, .nesterov = true}), Error);  // needs momentum
  EXPECT_THROW(optim::SGD({a}, {.lr = 0.1, .momentum = 0.9, .dampening = 0.1, .nesterov = true}),
               Error);
  EXPECT_THROW(optim::SGD({}, {}), Error);
  EXPECT_THROW(optim::SGD({a, a}, {}), Error);
  EXPECT_THROW(optim::SGD({zeros({1}, {.dtype = DType::i64})}, {}), Error);
  optim::SGD sgd({a}, {.lr = 0.1});
  a.set_grad(ones({1}, {.dtype = DType::f32}));  // wrong dtype
  EXPECT_THROW(sgd.step(), Error);
}

TEST(SGD, StateDictRoundTripContinuesIdentically) {
  optim::SGDOptions o{.lr = 0.1, .momentum = 0.9, .weight_decay = 1e-2, .nesterov = true};
  manual_seed(5);
  Tensor p = randn({3, 4}, {.dtype = DType::f64});
  p.requires_grad_();
  Tensor q = leaf({1, 2});  // never gets a gradient: no buffer
  optim::SGD a({p, q}, o);
  for (int s = 0; s < 3; ++s) {
    p.set_grad(randn({3, 4}, {.dtype = DType::f64}));
    a.step();
  }
  auto state = a.state_dict();
  EXPECT_EQ(state.tensors.keys(), std::vector<std::string>{"state.0.momentum_buffer"});
  EXPECT_EQ(state.scalars.at("lr"), 0.1);
  EXPECT_EQ(state.scalars.at("nesterov"), 1.0);
  EXPECT_EQ(state.scalars.at("num_params"), 2.0);

  // A fresh optimizer with other options over copies of the parameters.
  Tensor p2 = p.detach().clone();
  p2.requires_grad_();
  Tensor q2 = q.detach().clone();
  q2.requires_grad_();
  optim::SGD b({p2, q2}, {.lr = 1.0});
  b.load_state_dict(state);
  EXPECT_EQ(b.lr(), 0.1);
  EXPECT_TRUE(b.options().nesterov);
  EXPECT_NE(b.momentum_buffer(0).data_ptr(), a.momentum_buffer(0).data_ptr());  // a copy
  for (int s = 0; s < 2; ++s) {
    Tensor g = randn({3, 4}, {.dtype = DType::f64});
    p.set_grad(g);
    p2.set_grad(g.clone());
    a.step();
    b.step();
  }
  EXPECT_TRUE(all_close(p2, p, 0, 0));
}

TEST(SGD, LoadStateDictRejectsMismatchedState) {
  Tensor p = leaf({1, 2, 3});
  optim::SGD a({p}, {.lr = 0.1, .momentum = 0.9});
  p.set_grad(ones({3}, {.dtype = DType::f64}));
  a.step();
  auto state = a.state_dict();

  Tensor other = leaf({1, 2});
  optim::SGD wrong_shape({other}, {.lr = 0.1});
  EXPECT_THROW(wrong_shape.load_state_dict(state), Error);
  EXPECT_EQ(wrong_shape.lr(), 0.1);
  EXPECT_FALSE(wrong_shape.momentum_buffer(0).defined());

  optim::SGD wrong_count({leaf({1, 2, 3}), leaf({1})}, {.lr = 0.1});
  EXPECT_THROW(wrong_count.load_state_dict(state), Error);

  auto no_lr = state;
  no_lr.scalars.erase("lr");
  optim::SGD c({leaf({1, 2, 3})}, {});
  EXPECT_THROW(c.load_state_dict(no_lr), Error);

  auto stray = state;
  stray.tensors.insert("state.7.momentum_buffer", zeros({3}, {.dtype = DType::f64}));
  EXPECT_THROW(c.load_state_dict(stray), Error);
}

TEST(SGD, FollowsParametersConvertedByModuleTo) {
  struct One : nn::Module {
    Tensor w;
    One() : Module("One") { w = register_parameter("w", from_vector<float>({1, 2}, {2})); }
  };
  One m;
  optim::SGD sgd(m.parameters(), {.lr = 0.1, .momentum = 0.9});
  m.w.set_grad(ones({2}));
  sgd.step();  // buffer (f32) = 1, w = (0.9, 1.9)
  m.to(DType::f64);
  m.w.set_grad(ones({2}, {.dtype = DType::f64}));
  sgd.step();  // buffer = 0.9 + 1 = 1.9, w -= 0.19
  EXPECT_EQ(sgd.momentum_buffer(0).dtype(), DType::f64);
  EXPECT_TRUE(all_close(m.w, from_vector<double>({0.9 - 0.19, 1.9 - 0.19}, {2}), 1e-6));
}

// ---- schedules

TEST(Schedules, CosineAnnealingMatchesTheClosedForm) {
  Tensor p = leaf({0});
  optim::SGD sgd({p}, {.lr = 0.1});
  optim::CosineAnnealingLR sched(sgd, /*T_max=*/10, /*eta_min=*/0.001);
  // Hand values: t=0 -> lr0; t=5 -> eta_min + (lr0 - eta_min) / 2; t=10 -> eta_min;
  // t=2 -> 0.001 + 0.099 * (1 + cos(pi / 5)) / 2 = 0.09054634...
  EXPECT_DOUBLE_EQ(sgd.lr(), 0.1);
  std::vector<double> seen{sgd.lr()};
  for (int t = 1; t <= 12; ++t) {
    sched.step();
    seen.push_back(sgd.lr());
    double expect = 0.001 + (0.1 - 0.001) * (1 + std::cos(std::numbers::pi * t / 10)) / 2;
    EXPECT_NEAR(sgd.lr(), expect, 1e-15) << t;
  }
  EXPECT_NEAR(seen[2], 0.0905463412, 1e-9);
  EXPECT_NEAR(seen[5], 0.0505, 1e-15);
  EXPECT_NEAR(seen[10], 0.001, 1e-15);
  EXPECT_GT(seen[12], seen[10]);  // the closed form continues past T_max, as PyTorch's
  EXPECT_EQ(sched.last_step(), 12);
  EXPECT_THROW(optim::CosineAnnealingLR(sgd, 0), Error);
}

TEST(Schedules, StepAndMultiStep) {
  Tensor p = leaf({0});
  optim::SGD sgd({p}, {.lr = 0.1});
  optim::StepLR step(sgd, /*step_size=*/3, /*gamma=*/0.1);
  const double expect_step[] = {0.1, 0.1, 0.1, 0.01, 0.01, 0.01, 0.001};
  for (int t = 0; t < 7; ++t) {
    if (t) step.step();
    EXPECT_NEAR(sgd.lr(), expect_step[t], 1e-15) << t;
  }

  optim::SGD sgd2({p}, {.lr = 0.1});
  optim::MultiStepLR ms(sgd2, {5, 2}, /*gamma=*/0.5);  // unsorted on purpose
  const double expect_ms[] = {0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025};
  for (int t = 0; t < 7; ++t) {
    if (t) ms.step();
    EXPECT_DOUBLE_EQ(sgd2.lr(), expect_ms[t]) << t;
  }
}

TEST(Schedules, LinearWarmupThenCosine) {
  Tensor p = leaf({0});
  optim::SGD sgd({p}, {.lr = 0.1});
  auto cosine = std::make_shared<optim::CosineAnnealingLR>(sgd, /*T_max=*/7, /*eta_min=*/0.0);
  optim::WarmupLR sched(sgd, cosine, /*warmup_steps=*/3, /*start_factor=*/0.25);
  // Warm-up: 0.1 * (0.25 + 0.75 * t / 3) for t < 3: 0.025, 0.05, 0.075; then cosine(t - 3).
  std::vector<double> expect{0.025, 0.05, 0.075};
  for (int t = 3; t <= 10; ++t)
    expect.push_back(0.1 * (1 + std::cos(std::numbers::pi * (t - 3) / 7)) / 2);
  for (int t = 0; t <= 10; ++t) {
    if (t) sched.step();
    EXPECT_NEAR(sgd.lr(), expect[size_t(t)], 1e-15) << t;
  }
  EXPECT_NEAR(sgd.lr(), 0.0, 1e-15);  // t = 10 is the end of the cosine
}

TEST(Schedules, WarmupInFrontOfStepAndNone) {
  Tensor p = leaf({0});
  optim::SGD sgd({p}, {.lr = 1.0});
  auto sched = optim::make_scheduler(
      sgd, {.kind = "multistep", .warmup_steps = 2, .warmup_start_factor = 0.5,
            .milestones = {0, 3}, .gamma = 0.1});
  // t=0: 0.5, t=1: 0.75; then MultiStep at t-2: milestone 0 passed at once -> 0.1, 0.1, 0.1,
  // milestone 3 -> 0.01
  const double expect[] = {0.5, 0.75, 0.1, 0.1, 0.1, 0.01};
  for (int t = 0; t < 6; ++t) {
    if (t) sched->step();
    EXPECT_NEAR(sgd.lr(), expect[t], 1e-15) << t;
  }
  optim::SGD sgd2({p}, {.lr = 1.0});
  auto none = optim::make_scheduler(sgd2, {.kind = "none", .warmup_steps = 4, .warmup_start_factor = 0.2});
  const double expect_none[] = {0.2, 0.4, 0.6, 0.8, 1.0, 1.0};
  for (int t = 0; t < 6; ++t) {
    if (t) none->step();
    EXPECT_NEAR(sgd2.lr(), expect_none[t], 1e-15) << t;
  }
  optim::LambdaLR lam(sgd2, [](int64_t t) { return 1.0 / double(t + 1); });
  lam.step();
  EXPECT_DOUBLE_EQ(sgd2.lr(), lam.base_lr() / 2);
}

TEST(Schedules, MakeSchedulerCosineLengthExcludesWarmup) {
  Tensor p = leaf({0});
  optim::SGD sgd({p}, {.lr = 0.2});
  auto s = optim::make_scheduler(sgd, {.kind = "cosine", .total_steps = 10, .warmup_steps = 2,
                                       .warmup_start_factor = 0.5, .eta_min = 0.02});
  s->set_step(2);
  EXPECT_NEAR(sgd.lr(), 0.2, 1e-15);
  s->set_step(10);
  EXPECT_NEAR(sgd.lr(), 0.02, 1e-15);
  s->set_step(6);  // halfway through the 8-step cosine
  EXPECT_NEAR(sgd.lr(), 0.02 + 0.18 / 2, 1e-15);
  try {
    optim::make_scheduler(sgd, {.kind = "exponential"});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cosine, step, multistep, linear, none"), std::string::npos);
  }
  EXPECT_THROW(optim::make_scheduler(sgd, {.kind = "cosine", .total_steps = 3, .warmup_steps = 3}),
               Error);
}

TEST(Schedules, StateDictRoundTripResumesTheSameLrs) {
  Tensor p = leaf({0});
  optim::SGD sgd({p}, {.lr = 0.1});
  auto a = optim::make_scheduler(sgd, {.kind = "cosine", .total_steps = 20, .warmup_steps = 3,
                                       .eta_min = 1e-4});
  for (int i = 0; i < 5; ++i) a->step();
  optim::ScalarState st = a->state_dict();
  EXPECT_EQ(st.at("last_step"), 5);
  EXPECT_EQ(st.at("after.T_max"), 17);
  EXPECT_EQ(st.at("after.eta_min"), 1e-4);

  // The resumed run: another optimizer whose lr is whatever, another scheduler built the same.
  optim::SGD sgd2({p}, {.lr = 0.1});
  auto b = optim::make_scheduler(sgd2, {.kind = "cosine", .total_steps = 20, .warmup_steps = 3,
                                        .eta_min = 1e-4});
  sgd2.set_lr(123.0);
  b->load_state_dict(st);
  EXPECT_EQ(b->last_step(), 5);
  EXPECT_EQ(sgd2.lr(), sgd.lr());
  for (int i = 0; i < 10; ++i) {
    a->step();
    b->step();
    EXPECT_EQ(sgd2.lr(), sgd.lr()) << i;  // bit for bit
  }

  optim::SGD sgd3({p}, {.lr = 0.5});
  optim::MultiStepLR m(sgd3, {2, 4}, 0.5);
  m.step();
  m.step();
  m.step();
  optim::SGD sgd4({p}, {.lr = 9.0});
  optim::MultiStepLR m2(sgd4, {7}, 0.9);
  m2.load_state_dict(m.state_dict());
  EXPECT_EQ(sgd4.lr(), 0.25);
  m.step();
  m2.step();
  EXPECT_EQ(sgd4.lr(), sgd3.lr());
  EXPECT_EQ(sgd4.lr(), 0.125);

  optim::ScalarState missing = m.state_dict();
  missing.erase("gamma");
  EXPECT_THROW(m2.load_state_dict(missing), Error);
}

// ---- dynamic loss scaling

TEST(GradScaler, UnscalesStepsAndGrows) {
  Tensor p = leaf({1.0, 2.0});
  optim::SGD sgd({p}, {.lr = 0.5});
  optim::GradScaler scaler({.init_scale = 8.0, .growth_interval = 2});
  Tensor loss = sum(p * p);  // grad = 2p
  Tensor scaled = scaler.scale(loss);
  EXPECT_DOUBLE_EQ(scaled.item(), 8.0 * 5.0);
  scaled.backward();
  EXPECT_EQ(p.grad().to_vector<double>(), (std::vector<double>{16, 32}));
  EXPECT_TRUE(scaler.step(sgd));  // unscales to (2, 4), then p -= 0.5 g
  EXPECT_EQ(p.to_vector<double>(), (std::vector<double>{0, 0}));
  scaler.update();
  EXPECT_EQ(scaler.get_scale(), 8.0);  // one clean step of two
  p.set_grad(ones({2}, {.dtype = DType::f64}));
  scaler.unscale_(sgd);
  EXPECT_EQ(p.grad().to_vector<double>(), (std::vector<double>{0.125, 0.125}));
  EXPECT_THROW(scaler.unscale_(sgd), Error);  // twice in one step
  EXPECT_TRUE(scaler.step(sgd));             // uses the already unscaled gradients
  scaler.update();
  EXPECT_EQ(scaler.get_scale(), 16.0);  // grew after growth_interval clean steps
}

TEST(GradScaler, SkipsStepsWithInfOrNanAndBacksOff) {
  for (double bad : {INFINITY, -INFINITY, NAN}) {
    Tensor p = leaf({1.0, 2.0});
    Tensor q = leaf({3.0});
    optim::SGD sgd({p, q}, {.lr = 0.5, .momentum = 0.9});
    optim::GradScaler scaler({.init_scale = 1024.0, .growth_interval = 1});
    p.set_grad(from_vector<double>({1.0, 1.0}, {2}));
    q.set_grad(from_vector<double>({bad}, {1}));
    EXPECT_FALSE(scaler.step(sgd));
    EXPECT_TRUE(scaler.found_inf());
    EXPECT_EQ(p.to_vector<double>(), (std::vector<double>{1, 2}));  // untouched
    EXPECT_FALSE(sgd.momentum_buffer(0).defined());
    scaler.update();
    EXPECT_EQ(scaler.get_scale(), 512.0);
    EXPECT_FALSE(scaler.found_inf());
  }
}

TEST(GradScaler, StateDictAndDisabled) {
  optim::GradScaler a({.init_scale = 4.0, .growth_interval = 3});
  Tensor p = leaf({1.0});
  optim::SGD sgd({p}, {.lr = 0.1});
  p.set_grad(ones({1}, {.dtype = DType::f64}));
  a.step(sgd);
  a.update();
  auto st = a.state_dict();
  EXPECT_EQ(st.at("growth_tracker"), 1);
  optim::GradScaler b;
  b.load_state_dict(st);
  EXPECT_EQ(b.get_scale(), 4.0);
  for (int i = 0; i < 2; ++i) {
    p.set_grad(ones({1}, {.dtype = DType::f64}));
    b.step(sgd);
    b.update();
  }
  EXPECT_EQ(b.get_scale(), 8.0);
  st.erase("scale");
  EXPECT_THROW(b.load_state_dict(st), Error);
  EXPECT_THROW(optim::GradScaler({.backoff_factor = 1.5}), Error);

  optim::GradScaler off({.enabled = false});
  Tensor loss = scalar_tensor(3.0);
  EXPECT_TRUE(off.scale(loss).is_same(loss));
  p.set_grad(full({1}, INFINITY, {.dtype = DType::f64}));
  EXPECT_TRUE(off.step(sgd));  // disabled: no checks, the step runs
  EXPECT_TRUE(std::isinf(p.item()));
}

// ---- end to end: a small MLP fits a smooth function

// A two-layer perceptron built from elementwise ops and sums (x W^T as a broadcast product),
// so that this test only depends on the core ops.
struct TinyMLP : nn::Module {
  Tensor w1, b1, w2, b2;
  TinyMLP(int64_t in, int64_t hidden, int64_t out) : Module("TinyMLP") {
    w1 = register_parameter("w1", empty({hidden, in}));
    b1 = register_parameter("b1", zeros({hidden}));
    w2 = register_parameter("w2", empty({out, hidden}));
    b2 = register_parameter("b2", zeros({out}));
    nn::init::kaiming_uniform_(w1, std::sqrt(5.0));
    nn::init::kaiming_uniform_(w2, std::sqrt(5.0));
  }
  static Tensor dense(const Tensor& x, const Tensor& w, const Tensor& b) {
    return sum(unsqueeze(x, 1) * unsqueeze(w, 0), {2}) + b;  // (N, out)
  }
  Tensor forward(const Tensor& x) override { return dense(relu(dense(x, w1, b1)), w2, b2); }
};

TEST(Training, SGDWithMomentumAndCosineCutsTheLossHundredfold) {
  manual_seed(2024);
  const int64_t n = 128;
  Tensor x = uniform({n, 2}, -1.0, 1.0);
  // Target: a smooth nonlinear function of the two inputs.
  Tensor x0 = select(x, 1, 0), x1 = select(x, 1, 1);
  Tensor y = unsqueeze(x0 * x0 - 0.5 * x1 + 0.3 * x0 * x1, 1).detach();  // (N, 1)
  auto model = std::make_shared<TinyMLP>(2, 32, 1);
  optim::SGD sgd(model->parameters(), {.lr = 0.1, .momentum = 0.9});
  const int steps = 1500;
  optim::CosineAnnealingLR sched(sgd, steps, 1e-3);
  double first = 0, last = 0;
  for (int s = 0; s < steps; ++s) {
    sgd.zero_grad();
    Tensor diff = model->forward(x) - y;
    Tensor loss = mean(diff * diff);
    loss.backward();
    sgd.step();
    sched.step();
    if (s == 0) first = loss.item();
    last = loss.item();
  }
  EXPECT_LT(last, first / 100.0) << "first loss " << first << ", last " << last;
}

}  // namespace
}  // namespace ember

namespace ember {
// The fused update op under SGD::step (autograd/ops/optim.cpp): a bad argument is an error
// naming it, raised before any parameter changes.
TEST(SgdUpdateOp, BadArgumentsAreErrorsAndChangeNothing) {
  Tensor p = ones({4}), q = ones({3}), g = full({4}, 2.0), h = full({3}, 2.0);
  const std::vector<float> before = p.to_vector<float>();
  SgdOptions plain{.lr = 0.5};
  // The second pair is bad: the first must stay as it was.
  EXPECT_ERROR(sgd_update_({p, q}, {g, g}, {Tensor(), Tensor()}, {false, false}, plain),
               "gradient 1 ([4], f32, cpu) does not match its parameter ([3], f32, cpu)");
  EXPECT_EQ(p.to_vector<float>(), before);
  EXPECT_ERROR(sgd_update_({p}, {g}, {Tensor(), Tensor()}, {false}, plain), "1 parameters but 1 gradients, 2 buffers");
  EXPECT_ERROR(sgd_update_({p}, {g}, {Tensor()}, {false}, SgdOptions{.lr = 0.5, .momentum = 0.9}),
               "needs a momentum buffer");
  EXPECT_ERROR(sgd_update_({p}, {g}, {zeros({4})}, {false}, plain), "has a buffer but momentum is 0");
  EXPECT_ERROR(sgd_update_({p}, {g}, {zeros({2})}, {false}, SgdOptions{.lr = 0.5, .momentum = 0.9}),
               "the momentum buffer of parameter 0");
  EXPECT_ERROR(sgd_update_({p}, {make_view(full({8}, 2.0), {4}, {2}, 0)}, {Tensor()}, {false}, plain),
               "must be contiguous");
  EXPECT_EQ(p.to_vector<float>(), before);
  // And a good call does the step: p - lr * g, and bumps the version.
  const uint64_t v = q.version();
  sgd_update_({q}, {h}, {Tensor()}, {false}, plain);
  EXPECT_EQ(q.to_vector<float>(), (std::vector<float>{0, 0, 0}));
  EXPECT_GT(q.version(), v);
}
}  // namespace ember
