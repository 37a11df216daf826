// The autograd engine: accumulation, retain_graph, grad(), hooks, no-grad, version checks,
// memory; gradcheck's kink skipping and failure report, max ties, casts.
#include <cmath>

#include "test_util.h"

using namespace ember;
using ember::test::all_close;

namespace {
Tensor leaf(std::vector<double> v, Shape s = {}) {
  if (s.empty()) s = {int64_t(v.size())};
  return from_vector(v, s, {.dtype = DType::f64, .requires_grad = true});
}
Tensor rnd(Shape s, double lo = -1, double hi = 1) {
  return uniform(s, lo, hi, {.dtype = DType::f64}).requires_grad_();
}
}  // namespace

TEST(Autograd, LeafFlags) {
  Tensor x = leaf({1, 2});
  EXPECT_TRUE(x.requires_grad());
  EXPECT_TRUE(x.is_leaf());
  Tensor y = x * 2.0;
  EXPECT_TRUE(y.requires_grad());
  EXPECT_FALSE(y.is_leaf());
  EXPECT_EQ(y.grad_fn()->name(), "mulBackward");
  Tensor d = y.detach();
  EXPECT_FALSE(d.requires_grad());
  EXPECT_EQ(d.storage(), y.storage());
  EXPECT_THROW(from_vector(std::vector<int64_t>{1}).requires_grad_(), Error);
}

TEST(Autograd, SimpleChainAndSharedInputsSum) {
  Tensor x = leaf({1, 2, 3});
  Tensor y = (x * x + x * 3.0).sum();  // dy/dx = 2x + 3
  y.backward();
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{5, 7, 9}));
}

TEST(Autograd, GradientsAccumulateAcrossCallsUntilZeroed) {
  Tensor x = leaf({1, 2});
  (x * 2.0).sum().backward();
  (x * 3.0).sum().backward();
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{5, 5}));
  x.grad().zero_();
  (x * 1.0).sum().backward();
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{1, 1}));
}

TEST(Autograd, SharedGradientBuffersAreNotAliased) {
  // a + b hands the same gradient to both leaves; accumulating into one must not change
  // the other.
  Tensor a = leaf({1}), b = leaf({2});
  (a + b).sum().backward();
  (a * 5.0).sum().backward();
  EXPECT_EQ(a.grad().item(), 6.0);
  EXPECT_EQ(b.grad().item(), 1.0);
}

TEST(Autograd, BackwardNeedsScalarOrExplicitGrad) {
  Tensor x = leaf({1, 2});
  Tensor y = x * 2.0;
  EXPECT_THROW(y.backward(), Error);
  y.backward(from_vector(std::vector<double>{1, 10}));
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{2, 20}));
  EXPECT_THROW(y.backward(ones({3}, {.dtype = DType::f64})), Error);
  EXPECT_THROW(zeros({1}).backward(), Error);  // no grad_fn, no requires_grad
}

TEST(Autograd, RetainGraph) {
  Tensor x = leaf({3});
  Tensor y = (x * x).sum();
  y.backward(Tensor(), /*retain_graph=*/true);
  y.backward();
  EXPECT_EQ(x.grad().item(), 12.0);
  try {
    y.backward();
    FAIL() << "a third backward through freed saved tensors must fail";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("retain_graph"), std::string::npos) << e.what();
  }
}

TEST(Autograd, GradFunctionDoesNotTouchDotGrad) {
  Tensor x = leaf({1, 2}), w = leaf({3, 4});
  Tensor y = (x * w).sum();
  TensorList g = autograd::grad({y}, {x, w});
  EXPECT_EQ(g[0].to_vector<double>(), (std::vector<double>{3, 4}));
  EXPECT_EQ(g[1].to_vector<double>(), (std::vector<double>{1, 2}));
  EXPECT_FALSE(x.grad().defined());
  EXPECT_FALSE(w.grad().defined());
  // Non-leaf input.
  Tensor x2 = leaf({2});
  Tensor h = x2 * 3.0;
  Tensor out = (h * h).sum();
  EXPECT_EQ(autograd::grad({out}, {h})[0].item(), 12.0);
  Tensor unused = leaf({1});
  Tensor z = (leaf({1}) * 2.0).sum();
  EXPECT_THROW(autograd::grad({z}, {unused}, {}, true), Error);
  EXPECT_FALSE(autograd::grad({z}, {unused}, {}, false, /*allow_unused=*/true)[0].defined());
}

TEST(Autograd, NoGradGuardRecordsNothing) {
  Tensor x = leaf({1});
  {
    NoGradGuard ng;
    Tensor y = x * 2.0;
    EXPECT_FALSE(y.requires_grad());
    EXPECT_EQ(y.grad_fn(), nullptr);
    {
      EnableGradGuard eg;
      EXPECT_TRUE((x * 2.0).requires_grad());
    }
    EXPECT_FALSE(GradMode::is_enabled());
  }
  EXPECT_TRUE(GradMode::is_enabled());
}

TEST(Autograd, GradModeIsThreadLocal) {
  NoGradGuard ng;
  bool other = false;
  std::thread t([&] { other = GradMode::is_enabled(); });
  t.join();
  EXPECT_TRUE(other);
}

TEST(Autograd, InPlaceAfterSaveIsAnErrorNamingTheOp) {
  Tensor x = leaf({1, 2});
  Tensor h = x * 1.0;  // non-leaf, saved by exp
  Tensor y = exp(h);
  Tensor s = y.sum();
  {
    NoGradGuard ng;
    y.add_(1.0);  // modifies exp's saved output
  }
  try {
    s.backward();
    FAIL() << "expected a version-counter error";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("expBackward"), std::string::npos) << m;
    EXPECT_NE(m.find("modified in place"), std::string::npos) << m;
  }
}

TEST(Autograd, InPlaceOnLeafRequiringGradIsRejected) {
  Tensor x = leaf({1});
  EXPECT_THROW(x.add_(1.0), Error);
  EXPECT_THROW(x.fill_(1.0), Error);
  NoGradGuard ng;
  EXPECT_NO_THROW(x.add_(1.0));
}

TEST(Autograd, TensorHooksCanReplaceGradients) {
  Tensor x = leaf({1, 2});
  int calls = 0;
  x.register_hook([&](const Tensor& g) {
    ++calls;
    return g * 10.0;
  });
  Tensor h = x * 2.0;
  int id = h.register_hook([&](const Tensor& g) {
    ++calls;
    return g + 1.0;
  });
  h.sum().backward();
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{40, 40}));  // ((1+1)*2)*10
  h.remove_hook(id);
}

TEST(Autograd, GradReadyHookFiresAfterAccumulationInReverseOrder) {
  Tensor w1 = leaf({1}), w2 = leaf({2});
  std::vector<std::string> order;
  w1.register_grad_ready_hook([&](const Tensor& t) {
    order.push_back("w1:" + std::to_string(t.grad().item()));
  });
  w2.register_grad_ready_hook([&](const Tensor& t) {
    order.push_back("w2:" + std::to_string(t.grad().item()));
  });
  Tensor h = w1 * 3.0;      // layer 1
  Tensor y = (h * w2).sum();  // layer 2: its gradient is ready first
  y.backward();
  ASSERT_EQ(order.size(), 2u);
  EXPECT_EQ(order[0].substr(0, 3), "w2:");
  EXPECT_EQ(order[1].substr(0, 3), "w1:");
  EXPECT_EQ(w1.grad().item(), 6.0);
}

TEST(Autograd, SavedTensorsAreFreedAfterBackward) {
  Tensor x = leaf({1, 2, 3});
  std::weak_ptr<Storage> saved_storage;
  {
    Tensor h = exp(x);  // exp saves its output
    saved_storage = h.storage();
    Tensor y = h.sum();
    h = Tensor();
    EXPECT_FALSE(saved_storage.expired());  // kept alive by the graph only
    y.backward();
    EXPECT_TRUE(saved_storage.expired());  // freed as soon as expBackward ran
  }
}

TEST(Autograd, RepeatedLoopsDoNotKeepOldGraphsAlive) {
  Tensor w = rnd({64});
  std::weak_ptr<autograd::Node> first_node;
  for (int it = 0; it < 200; ++it) {
    Tensor loss = (sigmoid(w * 2.0) * w).sum();
    if (it == 0) first_node = loss.grad_fn();
    loss.backward();
    {
      NoGradGuard ng;
      w.add_(w.grad(), -0.01);
      w.grad().zero_();
    }
  }
  // The first iteration's graph is gone: nothing keeps nodes alive across iterations.
  EXPECT_TRUE(first_node.expired());
}

TEST(Autograd, MemoryReturnsToTheSameLevelEveryIteration) {
  Tensor w = rnd({256, 64});
  Tensor x = rnd({32, 256});
  auto step = [&] {
    Tensor h = tanh(matmul(x, w));
    Tensor loss = (softmax(h, 1) * h).sum();
    loss.backward();
    NoGradGuard ng;
    w.add_(w.grad(), -0.01);
    w.grad().zero_();
  };
  step();  // .grad exists from here on
  int64_t count = Storage::live_count(), bytes = Storage::live_bytes();
  for (int it = 0; it < 50; ++it) {
    step();
    ASSERT_EQ(Storage::live_count(), count) << "iteration " << it;
    ASSERT_EQ(Storage::live_bytes(), bytes) << "iteration " << it;
  }
}

// ---- gradcheck itself and gradients with special behavior. The per-op gradchecks are in
// the op-case table (tests/op_cases.cpp, OpGradcheck).

TEST(Gradcheck, ReluKinkIsSkippedNotFailed) {
  Tensor x = from_vector(std::vector<double>{-1, 0, 1}, {3}, {.dtype = DType::f64, .requires_grad = true});
  GradcheckResult r = gradcheck([](const TensorList& in) { return relu(in[0]); }, {x});
  EXPECT_TRUE(r.ok) << r.message;
  EXPECT_EQ(r.skipped, 1);
}

TEST(Gradcheck, CatchesAWrongGradient) {
  // A deliberately wrong backward (hook doubles the gradient) must be reported.
  Tensor x = rnd({4});
  GradcheckResult r = gradcheck(
      [](const TensorList& in) {
        Tensor h = in[0] * 1.0;
        if (h.requires_grad()) h.register_hook([](const Tensor& g) { return g * 2.0; });
        return exp(h);
      },
      {x});
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.message.find("backward"), std::string::npos);
}

TEST(Gradcheck, MaxTiesShareTheGradient) {
  Tensor x = from_vector(std::vector<double>{1, 3, 3}, {3}, {.dtype = DType::f64, .requires_grad = true});
  max(x).backward();
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{0, 0.5, 0.5}));
}

TEST(Gradcheck, CastsBetweenFloatTypes) {
  Tensor x = from_vector(std::vector<double>{1.5, -2.0}, {2}, {.dtype = DType::f64, .requires_grad = true});
  Tensor y = (x.to(DType::f32) * 2.0).to(DType::f16).to(DType::f64).sum();
  y.backward();
  EXPECT_EQ(x.grad().dtype(), DType::f64);
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{2, 2}));
}
