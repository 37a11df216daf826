// Mixed precision (issue 12): the autocast policy table op by op, the parameter cast cache,
// gradients under autocast against an f64 reference, loss scaling with a forced overflow,
// f32 master weights for 16-bit parameters, gradient clipping, and the bytes saved for
// backward. All on the CPU, where autocast rounds to the 16-bit type at the same op
// boundaries as on the GPU (kernels/cpu compute 16-bit ops in f32).
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <map>

#include "ember.h"
#include "nn/clip_grad.h"
#include "optim/grad_scaler.h"
#include "tensor/storage.h"
#include "test_util.h"

using namespace ember;
using autocast::Op;
using autocast::Policy;

namespace {

Tensor rnd(const Shape& s, DType dt = DType::f32) { return randn(s).to(dt); }

// One call of each op of the policy table, on inputs of dtype `dt` (the second operand of
// a two-tensor op has dtype `dt2`). Returns the op's output.
using OpCall = std::function<Tensor(DType dt, DType dt2)>;
const std::map<Op, OpCall>& op_calls() {
  static const std::map<Op, OpCall> calls = {
      {Op::conv2d, [](DType a, DType b) { return conv2d(rnd({2, 3, 6, 6}, a), rnd({4, 3, 3, 3}, b), rnd({4}, b)); }},
      {Op::linear, [](DType a, DType b) { return linear(rnd({5, 3}, a), rnd({4, 3}, b), rnd({4}, b)); }},
      {Op::matmul, [](DType a, DType b) { return matmul(rnd({2, 5, 3}, a), rnd({3, 4}, b)); }},
      {Op::mm, [](DType a, DType b) { return mm(rnd({5, 3}, a), rnd({3, 4}, b)); }},
      {Op::bmm, [](DType a, DType b) { return bmm(rnd({2, 5, 3}, a), rnd({2, 3, 4}, b)); }},
      {Op::softmax, [](DType a, DType) { return softmax(rnd({4, 5}, a), 1); }},
      {Op::log_softmax, [](DType a, DType) { return log_softmax(rnd({4, 5}, a), 1); }},
      {Op::cross_entropy,
       [](DType a, DType) { return cross_entropy(rnd({4, 5}, a), from_vector<int64_t>({0, 1, 2, 4}, {4})); }},
      {Op::nll_loss, [](DType a, DType) { return nll_loss(rnd({4, 5}, a), from_vector<int64_t>({0, 1, 2, 4}, {4})); }},
      {Op::mse_loss, [](DType a, DType b) { return mse_loss(rnd({4, 5}, a), rnd({4, 5}, b)); }},
      {Op::sum, [](DType a, DType) { return sum(rnd({4, 5}, a)); }},
      {Op::mean, [](DType a, DType) { return mean(rnd({4, 5}, a), {1}); }},
      {Op::var, [](DType a, DType) { return var(rnd({4, 5}, a), {1}); }},
      {Op::std, [](DType a, DType) { return ember::std(rnd({4, 5}, a), {1}); }},
      {Op::logsumexp, [](DType a, DType) { return logsumexp(rnd({4, 5}, a), {1}); }},
      {Op::exp, [](DType a, DType) { return exp(rnd({4, 5}, a)); }},
      {Op::log, [](DType a, DType) { return log(abs(rnd({4, 5}, a)) + 1.0); }},
      {Op::pow, [](DType a, DType b) { return pow(abs(rnd({4, 5}, a)), rnd({4, 5}, b)); }},
      {Op::rsqrt, [](DType a, DType) { return rsqrt(abs(rnd({4, 5}, a)) + 1.0); }},
      {Op::reciprocal, [](DType a, DType) { return reciprocal(abs(rnd({4, 5}, a)) + 1.0); }},
      {Op::batch_norm,
       [](DType a, DType b) {
         return batch_norm(rnd({4, 3, 2, 2}, a), zeros({3}, {.dtype = b}), ones({3}, {.dtype = b}),
                           ones({3}, {.dtype = b}), zeros({3}, {.dtype = b}), /*training=*/true);
       }},
      {Op::add, [](DType a, DType b) { return add(rnd({4, 5}, a), rnd({4, 5}, b)); }},
      {Op::sub, [](DType a, DType b) { return sub(rnd({4, 5}, a), rnd({4, 5}, b)); }},
      {Op::mul, [](DType a, DType b) { return mul(rnd({4, 5}, a), rnd({4, 5}, b)); }},
      {Op::div, [](DType a, DType b) { return div(rnd({4, 5}, a), abs(rnd({4, 5}, b)) + 1.0); }},
      {Op::maximum, [](DType a, DType b) { return maximum(rnd({4, 5}, a), rnd({4, 5}, b)); }},
      {Op::minimum, [](DType a, DType b) { return minimum(rnd({4, 5}, a), rnd({4, 5}, b)); }},
      {Op::where, [](DType a, DType b) { return where(gt(randn({4, 5}), 0.0), rnd({4, 5}, a), rnd({4, 5}, b)); }},
      {Op::cat, [](DType a, DType b) { return cat({rnd({2, 5}, a), rnd({3, 5}, b)}, 0); }},
      {Op::stack, [](DType a, DType b) { return stack({rnd({2, 5}, a), rnd({2, 5}, b)}, 0); }},
  };
  return calls;
}

// The dtype each policy gives: for inputs (16-bit activation `lo`, f32 parameter) under
// autocast type `lo`.
DType expected(Policy p, DType lo) {
  switch (p) {
    case Policy::lower: return lo;
    case Policy::f32: return DType::f32;
    case Policy::widest: return DType::f32;  // lo and f32 -> f32
    case Policy::mixed: return lo;           // batch_norm keeps the activation's type
  }
  return DType::f32;
}

}  // namespace

// The table test: every rule has a case, and each op's output dtype is its policy's, for
// f16 and bf16, from f32 inputs and from a 16-bit activation with f32 parameters.
TEST(Autocast, PolicyTableGivesEachOpItsOutputDtype) {
  manual_seed(1);
  ASSERT_EQ(autocast::rules().size(), op_calls().size()) << "a rule without a test case, or the reverse";
  for (DType lo : {DType::f16, DType::bf16}) {
    for (const autocast::Rule& r : autocast::rules()) {
      SCOPED_TRACE(std::string(r.name) + " under " + dtype_name(lo));
      auto it = op_calls().find(r.op);
      ASSERT_NE(it, op_calls().end());
      // A 16-bit activation with an f32 parameter (what a model under autocast feeds ops).
      {
        AutocastGuard amp(lo);
        Tensor y = it->second(lo, DType::f32);
        EXPECT_EQ(y.dtype(), expected(r.policy, lo)) << autocast::policy_name(r.policy);
      }
      // Plain f32 inputs: lower goes 16-bit; f32 and widest stay f32; batch_norm stays f32.
      {
        AutocastGuard amp(lo);
        Tensor y = it->second(DType::f32, DType::f32);
        EXPECT_EQ(y.dtype(), r.policy == Policy::lower ? lo : DType::f32) << autocast::policy_name(r.policy);
      }
      // Outside the scope nothing changes: f32 in, f32 out.
      EXPECT_EQ(it->second(DType::f32, DType::f32).dtype(), DType::f32);
    }
  }
}

TEST(Autocast, OpsOutsideTheTableKeepTheirInputDtype) {
  AutocastGuard amp(DType::f16);
  Tensor x = rnd({2, 3, 4, 4}, DType::f16);
  EXPECT_EQ(relu(x).dtype(), DType::f16);
  EXPECT_EQ(max_pool2d(x, {2, 2}).dtype(), DType::f16);
  EXPECT_EQ(avg_pool2d(x, {2, 2}).dtype(), DType::f16);
  EXPECT_EQ(flatten(x, 1).dtype(), DType::f16);
  EXPECT_EQ(dropout(x, 0.5, true).dtype(), DType::f16);
  // f64 is never cast (gradient checks run in f64 with autocast anywhere).
  Tensor a = rnd({3, 3}, DType::f64);
  EXPECT_EQ(matmul(a, a).dtype(), DType::f64);
  EXPECT_EQ(sum(rnd({3}, DType::f16)).dtype(), DType::f32);
}

TEST(Autocast, GuardsNestRestoreAndRejectOtherDtypes) {
  EXPECT_FALSE(autocast::is_enabled());
  {
    AutocastGuard a(DType::bf16);
    EXPECT_TRUE(autocast::is_enabled());
    EXPECT_EQ(autocast::dtype(), DType::bf16);
    {
      AutocastGuard off = AutocastGuard::disabled();
      EXPECT_FALSE(autocast::is_enabled());
      EXPECT_EQ(mm(rnd({2, 2}), rnd({2, 2})).dtype(), DType::f32);
    }
    EXPECT_TRUE(autocast::is_enabled());
    {
      AutocastGuard b(DType::f16);
      EXPECT_EQ(mm(rnd({2, 2}), rnd({2, 2})).dtype(), DType::f16);
    }
    EXPECT_EQ(autocast::dtype(), DType::bf16);
  }
  EXPECT_FALSE(autocast::is_enabled());
  EXPECT_THROW(AutocastGuard(DType::f64), Error);
  EXPECT_THROW(AutocastGuard(DType::i32), Error);
}

// One forward casts each parameter once, however often the parameter is used; the cast is
// redone after the parameter changes, and in a new scope.
TEST(Autocast, CachesOneCastPerParameterPerScope) {
  manual_seed(2);
  nn::Linear lin(8, 8);
  Tensor x = randn({4, 8});
  {
    AutocastGuard amp(DType::f16);
    Tensor y = lin(lin(lin(x)));  // weight and bias used three times each
    EXPECT_EQ(autocast::cache_stats().casts, 2);
    EXPECT_EQ(autocast::cache_stats().hits, 4);
    {
      NoGradGuard ng;
      lin.weight.add_(1.0);  // an optimizer step inside the scope
    }
    lin(x);
    EXPECT_EQ(autocast::cache_stats().casts, 3);  // the weight again, the bias from the cache
    EXPECT_EQ(autocast::cache_stats().hits, 5);
  }
  AutocastGuard again(DType::f16);
  lin(x);
  EXPECT_EQ(autocast::cache_stats().casts, 2);
}

// Gradients flow through the casts and arrive at each leaf in its own dtype; backward runs
// with autocast off, even when called inside the scope.
TEST(Autocast, GradientsArriveInTheLeafDtype) {
  manual_seed(3);
  Tensor w = randn({4, 3, 3, 3}).requires_grad_();
  Tensor b = randn({4}).requires_grad_();
  Tensor x = randn({2, 3, 6, 6}).requires_grad_();
  AutocastGuard amp(DType::bf16);
  Tensor y = conv2d(x, w, b);
  EXPECT_EQ(y.dtype(), DType::bf16);
  Tensor loss = sum(y);
  EXPECT_EQ(loss.dtype(), DType::f32);
  loss.backward();
  for (const Tensor* t : {&w, &b, &x}) {
    ASSERT_TRUE(t->grad().defined());
    EXPECT_EQ(t->grad().dtype(), DType::f32);
  }
  // d(sum)/d(bias) is the number of output positions per channel, exact in bf16.
  for (float g : b.grad().to_vector<float>()) EXPECT_EQ(g, 2.0f * 4 * 4);
}

// A small conv net's loss and gradients under autocast against the same net in f64. The
// tolerance follows from the 16-bit type: every op boundary named by the policy rounds to
// it (relative error <= u = 2^-(mantissa bits + 1): 2^-11 for f16, 2^-8 for bf16); forward
// and backward pass about ten such roundings along any path, which add up incoherently, so
// the relative error of a gradient, measured in norm, stays well under 10 u.
TEST(Autocast, GradientsMatchAnF64ReferenceWithinTheTypesTolerance) {
  for (DType lo : {DType::f16, DType::bf16}) {
    SCOPED_TRACE(dtype_name(lo));
    const double u = lo == DType::f16 ? std::ldexp(1.0, -11) : std::ldexp(1.0, -8);
    manual_seed(4);
    Tensor x = randn({8, 3, 8, 8});
    Tensor labels = from_vector<int64_t>({0, 1, 2, 3, 4, 0, 1, 2}, {8});
    Tensor w1 = (randn({6, 3, 3, 3}) * 0.3).detach(), b1 = (randn({6}) * 0.1).detach();
    Tensor w2 = (randn({5, 6 * 2 * 2}) * 0.1).detach(), b2 = (randn({5}) * 0.1).detach();
    auto run = [&](DType pdt, bool amp_on) {
      TensorList p = {w1.to(pdt), b1.to(pdt), w2.to(pdt), b2.to(pdt)};
      for (Tensor& t : p) t.requires_grad_();
      Tensor loss;
      {
        AutocastGuard amp(lo, amp_on);
        Tensor h = relu(conv2d(x.to(pdt), p[0], p[1], {1, 1}, {1, 1}));
        h = flatten(max_pool2d(h, {3, 3}), 1);
        loss = cross_entropy(linear(h, p[2], p[3]), labels);
      }
      loss.backward();
      TensorList g;
      for (Tensor& t : p) g.push_back(t.grad().to(DType::f64));
      return std::make_pair(loss.to(DType::f64).item(), g);
    };
    auto [ref_loss, ref] = run(DType::f64, false);
    auto [loss, got] = run(DType::f32, true);
    EXPECT_NEAR(loss, ref_loss, 10 * u * std::fabs(ref_loss));
    for (size_t i = 0; i < ref.size(); ++i) {
      double err = sum(square(got[i] - ref[i])).item(), nrm = sum(square(ref[i])).item();
      EXPECT_LT(std::sqrt(err / nrm), 10 * u) << "parameter " << i;
    }
    // And not trivially: autocast did change the numbers (the f32 run differs from f64 by
    // f32 rounding only, orders of magnitude less).
    auto [f32_loss, f32g] = run(DType::f32, false);
    EXPECT_NE(loss, f32_loss);
  }
}

// Loss scaling: a scale so large that the scaled gradients overflow the 16-bit activations
// skips the step (weights bit-identical), halves the scale, and the scale grows again after
// growth_interval clean steps.
TEST(Autocast, ForcedOverflowSkipsTheStepAndBacksOffThenGrows) {
  manual_seed(5);
  nn::Linear lin(6, 3);
  optim::SGD opt(lin.parameters(), {.lr = 0.1, .momentum = 0.9});
  optim::GradScaler scaler({.init_scale = std::ldexp(1.0, 100), .growth_interval = 2});
  Tensor x = randn({4, 6}), y = from_vector<int64_t>({0, 1, 2, 1}, {4});
  auto step = [&] {
    Tensor loss;
    {
      AutocastGuard amp(DType::f16);
      loss = cross_entropy(lin(x), y);
    }
    opt.zero_grad();
    scaler.scale(loss).backward();
    bool stepped = scaler.step(opt);
    scaler.update();
    return stepped;
  };
  std::vector<unsigned char> w0 = test::bytes_of(lin.weight), b0 = test::bytes_of(lin.bias);
  EXPECT_FALSE(step());  // 2^100 * gradient overflows f16 (max 65504)
  EXPECT_EQ(test::bytes_of(lin.weight), w0);
  EXPECT_EQ(test::bytes_of(lin.bias), b0);
  EXPECT_FALSE(opt.momentum_buffer(0).defined());
  EXPECT_EQ(scaler.get_scale(), std::ldexp(1.0, 99));
  // Back off until the scaled gradients fit, then two clean steps double the scale.
  int skipped = 1;
  while (!step()) ++skipped;
  EXPECT_GT(skipped, 70);  // 2^100 -> below 2^30 or so
  double fit = scaler.get_scale();
  EXPECT_NE(test::bytes_of(lin.weight), w0);
  EXPECT_TRUE(step());
  EXPECT_EQ(scaler.get_scale(), 2 * fit);
}

// Pure 16-bit training: SGD updates an f32 master copy, so steps below half an f16 ulp of
// the weight add up instead of vanishing; the master is in the optimizer's state.
TEST(Autocast, SgdKeepsF32MastersFor16BitParameters) {
  Tensor p = full({4}, 1.0, {.dtype = DType::f16}).requires_grad_();
  optim::SGD opt({p}, {.lr = 1e-4, .momentum = 0.0});
  for (int i = 0; i < 20; ++i) {
    p.set_grad(ones({4}, {.dtype = DType::f16}));
    opt.step();
  }
  // 1 - 20 * 1e-4 = 0.998; an f16 update of 1e-4 would round back to 1.0 every time (the
  // f16 spacing below 1 is 2^-11 = 4.9e-4).
  ASSERT_TRUE(opt.master(0).defined());
  EXPECT_EQ(opt.master(0).dtype(), DType::f32);
  EXPECT_NEAR(opt.master(0).to_vector<float>()[0], 0.998, 1e-6);
  EXPECT_NEAR(p.to(DType::f32).to_vector<float>()[0], 0.998, 5e-4);
  EXPECT_NE(p.to(DType::f32).to_vector<float>()[0], 1.0f);
  // The state round-trips, master included; a parameter written by someone else gets a
  // fresh master.
  optim::OptimizerState s = opt.state_dict();
  ASSERT_TRUE(s.tensors.get("state.0.master").defined());
  optim::SGD opt2({p}, {.lr = 1e-4});
  opt2.load_state_dict(s);
  EXPECT_EQ(test::bytes_of(opt2.master(0)), test::bytes_of(opt.master(0)));
  {
    NoGradGuard ng;
    p.fill_(2.0);
  }
  p.set_grad(zeros({4}, {.dtype = DType::f16}));
  opt2.step();
  EXPECT_EQ(opt2.master(0).to_vector<float>()[0], 2.0f);
}

TEST(ClipGradNorm, ScalesToTheMaxNormAndReturnsTheNorm) {
  Tensor a = zeros({2}).requires_grad_(), b = zeros({2}).requires_grad_();
  a.set_grad(from_vector<float>({3, 0}, {2}));
  b.set_grad(from_vector<float>({0, 4}, {2}));
  Tensor n = nn::clip_grad_norm_({a, b}, 1.0);
  EXPECT_NEAR(n.item(), 5.0, 1e-6);
  EXPECT_NEAR(a.grad().to_vector<float>()[0], 3.0 / 5.0, 1e-6);
  EXPECT_NEAR(b.grad().to_vector<float>()[1], 4.0 / 5.0, 1e-6);
  // Under the max: unchanged (the factor is clamped to 1).
  Tensor n2 = nn::clip_grad_norm_({a, b}, 10.0);
  EXPECT_NEAR(n2.item(), 1.0, 1e-5);
  EXPECT_NEAR(a.grad().to_vector<float>()[0], 0.6, 1e-6);
  // The infinity norm and a general p.
  a.set_grad(from_vector<float>({-3, 1}, {2}));
  b.set_grad(from_vector<float>({2, 2}, {2}));
  EXPECT_NEAR(nn::clip_grad_norm_({a, b}, 100.0, INFINITY).item(), 3.0, 1e-6);
  EXPECT_NEAR(nn::clip_grad_norm_({a, b}, 100.0, 1.0).item(), 8.0, 1e-5);
  // A non-finite norm: an error when asked for.
  a.set_grad(from_vector<float>({NAN, 1}, {2}));
  EXPECT_THROW(nn::clip_grad_norm_({a, b}, 1.0, 2.0, /*error_if_nonfinite=*/true), Error);
  EXPECT_THROW(nn::clip_grad_norm_({a, b}, -1.0), Error);
  // 16-bit gradients: the squares are summed in f32 (in f16, 300^2 would overflow).
  Tensor h = zeros({2}, {.dtype = DType::f16}).requires_grad_();
  h.set_grad(full({2}, 300.0, {.dtype = DType::f16}));
  EXPECT_NEAR(nn::clip_grad_norm_({h}, 1e9).item(), 300.0 * std::sqrt(2.0), 1e-2);
}

// The activations a model saves for backward under autocast are 16-bit: the storage that
// a forward pass of ResNet-20 leaves alive (held by the graph: each conv's input, each
// batch norm's input, each relu's output) is about half of what f32 leaves. (LeNet would
// not show it: its saved bytes are mostly max-pooling indices, which are i64 either way.)
TEST(Autocast, SavesHalfTheActivationBytesForBackward) {
  manual_seed(6);
  nn::ModulePtr model = nn::make_model("resnet20");
  Tensor x = randn({16, 3, 32, 32});
  Tensor y = from_vector<int64_t>(std::vector<int64_t>(16, 3), {16});
  auto held = [&](bool amp_on) {
    int64_t before = Storage::live_bytes();
    Tensor loss;
    {
      AutocastGuard amp(DType::f16, amp_on);
      loss = cross_entropy((*model)(x), y);
    }  // the cast cache is gone with the scope; what stays is what backward needs
    int64_t bytes = Storage::live_bytes() - before;
    loss.backward();
    for (const Tensor& p : model->parameters()) EXPECT_EQ(p.grad().dtype(), DType::f32);
    model->zero_grad();
    return bytes;
  };
  int64_t f32 = held(false), f16 = held(true);
  EXPECT_GT(f32, 16 * 16 * 32 * 32 * 4 * 10);  // at least ten 16-channel activations in f32
  EXPECT_LT(double(f16), 0.6 * double(f32)) << "f32 " << f32 << " bytes, f16 autocast " << f16;
}
