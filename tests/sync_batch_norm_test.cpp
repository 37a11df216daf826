// SyncBatchNorm in one process: a world of one is exactly BatchNorm2d, and the synchronized
// statistics path (Note [SyncBatchNorm statistics]) is checked against BatchNorm2d and by
// gradcheck through a stand-in group. The N-process proofs are in tests/dist/sync_bn_test.cpp.
#include <gtest/gtest.h>

#include "dist/dist.h"
#include "ember.h"
#include "test_util.h"

namespace ember {
namespace {

using test::all_close;

/// A "group" of `world` processes in which this one is rank 0 and every other rank brings
/// an empty batch: its sum is the identity, so the group's statistics are this batch's.
struct AloneInAGroup : nn::CrossProcessSum {
  int world;
  int calls = 0;
  explicit AloneInAGroup(int w) : world(w) {}
  int rank() const override { return 0; }
  int world_size() const override { return world; }
  Tensor sum(const Tensor& t) override {
    ++calls;
    // The other ranks' rows are zero: count 0, mean 0, M2 0.
    return t * 1.0;
  }
};

Tensor input(uint64_t seed, DType dt) {
  manual_seed(seed);
  return (randn({6, 3, 5, 4}) * 2.0 + 3.0).to(dt);  // an offset mean, as after a conv
}

TEST(SyncBatchNorm, AWorldOfOneIsExactlyBatchNorm2d) {
  for (DType dt : {DType::f32, DType::f64}) {
    nn::BatchNorm2d ref(3);
    dist::SyncBatchNorm2d sync(3);
    ref.to(dt);
    sync.to(dt);
    EXPECT_EQ(sync.type_name(), "SyncBatchNorm");
    Tensor x1 = input(1, dt).requires_grad_(), x2 = input(1, dt).requires_grad_();
    Tensor y1 = ref(x1), y2 = sync(x2);
    EXPECT_TRUE(all_close(y2, y1, 0, 0));
    (y1 * y1).sum().backward();
    (y2 * y2).sum().backward();
    EXPECT_TRUE(all_close(x2.grad(), x1.grad(), 0, 0));
    EXPECT_TRUE(all_close(sync.weight.grad(), ref.weight.grad(), 0, 0));
    EXPECT_TRUE(all_close(sync.running_var, ref.running_var, 0, 0));
  }
}

TEST(SyncBatchNorm, SynchronizedStatisticsEqualBatchNorm2dOnTheSameBatch) {
  for (DType dt : {DType::f64, DType::f32}) {
    // Another order of summation: f64 to ~1e-13; f32 gradients summed over 120 values and
    // 3 steps to a few 1e-5 relative.
    double rtol = dt == DType::f64 ? 1e-11 : 1e-4, atol = dt == DType::f64 ? 1e-12 : 1e-5;
    nn::BatchNorm2d ref(3), sync(3);
    auto group = std::make_shared<AloneInAGroup>(2);
    sync.sync = group;
    manual_seed(7);
    Tensor w = rand({3}) + 0.5, b = randn({3});
    for (nn::BatchNorm2d* m : {&ref, &sync}) {
      m->to(dt);
      NoGradGuard g;
      m->weight.copy_(w);
      m->bias.copy_(b);
    }
    Tensor x1 = input(2, dt).requires_grad_(), x2 = input(2, dt).requires_grad_();
    Tensor gy = input(3, dt);
    for (int step = 0; step < 3; ++step) {  // running statistics over a few batches
      Tensor y1 = ref(x1), y2 = sync(x2);
      EXPECT_TRUE(all_close(y2, y1, rtol, atol)) << dtype_name(dt);
      (y1 * gy).sum().backward();
      (y2 * gy).sum().backward();
    }
    EXPECT_EQ(group->calls, 3);  // one collective per forward (this stand-in's backward is local)
    EXPECT_TRUE(all_close(x2.grad(), x1.grad(), rtol, atol));
    EXPECT_TRUE(all_close(sync.weight.grad(), ref.weight.grad(), rtol, atol));
    EXPECT_TRUE(all_close(sync.bias.grad(), ref.bias.grad(), rtol, atol));
    EXPECT_TRUE(all_close(sync.running_mean, ref.running_mean, rtol, atol));
    EXPECT_TRUE(all_close(sync.running_var, ref.running_var, rtol, atol));
    EXPECT_EQ(sync.num_batches_tracked.item<int64_t>(), 3);
    // Eval mode uses the running statistics, as BatchNorm2d, without a collective.
    ref.eval();
    sync.eval();
    EXPECT_TRUE(all_close(sync(x2), ref(x1), rtol, atol));
    EXPECT_EQ(group->calls, 3);
  }
}

TEST(SyncBatchNorm, GradcheckThroughTheSynchronizedPath) {
  nn::BatchNorm2d bn(2);
  bn.to(DType::f64);
  bn.sync = std::make_shared<AloneInAGroup>(3);
  manual_seed(4);
  Tensor x = randn({3, 2, 3, 2}, {.dtype = DType::f64}).requires_grad_();
  // Training mode updates the running statistics at each call; they do not enter the output.
  test::expect_gradcheck([&](const TensorList& in) { return bn(in[0]) * in[0]; }, {x});
  test::expect_gradcheck([&](const TensorList& in) { return square(bn(in[0]) - in[0]); }, {x});
}

TEST(SyncBatchNorm, ConvertReachesEveryBatchNormOfAResNet) {
  nn::ModulePtr m = nn::make_model("resnet20");
  int bns = 0;
  for (auto& [name, sub] : m->named_modules())
    if (dynamic_cast<nn::BatchNorm2d*>(sub.get())) ++bns;
  EXPECT_EQ(bns, 19);
  auto names_before = m->state_dict().keys();
  EXPECT_EQ(dist::convert_sync_batchnorm(*m), bns);
  for (auto& [name, sub] : m->named_modules())
    if (auto* bn = dynamic_cast<nn::BatchNorm2d*>(sub.get())) EXPECT_TRUE(bn->sync) << name;
  EXPECT_EQ(m->state_dict().keys(), names_before);
  // In a world of one it computes exactly as before.
  manual_seed(9);
  Tensor x = randn({4, 3, 32, 32});
  manual_seed(10);
  nn::ModulePtr a = nn::make_model("resnet20");
  manual_seed(10);
  nn::ModulePtr b = nn::make_model("resnet20");
  dist::convert_sync_batchnorm(*b);
  EXPECT_TRUE(all_close((*b)(x), (*a)(x), 0, 0));
}

}  // namespace
}  // namespace ember
