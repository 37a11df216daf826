// Graphs recorded at once on several threads over one model's parameters (the leaves are
// shared): autograd::grad on each thread gives that thread's gradients, and backward from
// several threads accumulates every contribution into the shared .grad.
#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "autograd/node.h"
#include "ember.h"
#include "test_util.h"

namespace ember {
namespace {

using test::all_close;

constexpr int kThreads = 4, kRounds = 30;

// Each thread's batch: its own inputs, the same model.
struct Shared {
  nn::ModulePtr model;
  TensorList params;
  std::vector<Tensor> xs, ys;
  Shared() {
    manual_seed(7);
    model = nn::make_model("lenet");
    params = model->parameters();
    for (int t = 0; t < kThreads; ++t) {
      xs.push_back(randn({3, 1, 28, 28}));
      ys.push_back(randint(0, 10, {3}, {.dtype = DType::i64}));
    }
  }
  Tensor loss(int t) const { return cross_entropy((*model)(xs[size_t(t)]), ys[size_t(t)]); }
};

TEST(AutogradThreads, GradOnSeveralThreadsAtOnceMatchesOneAtATime) {
  Shared s;
  std::vector<TensorList> want;
  for (int t = 0; t < kThreads; ++t) want.push_back(autograd::grad({s.loss(t)}, s.params));
  for (int round = 0; round < kRounds; ++round) {
    // New leaves' accumulators each round: the race was in making them.
    nn::ModulePtr fresh = nn::make_model("lenet");
    TensorList fp = fresh->parameters();
    for (size_t i = 0; i < fp.size(); ++i) {
      NoGradGuard ng;
      fp[i].copy_(s.params[i]);
    }
    std::vector<TensorList> got(kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        Tensor l = cross_entropy((*fresh)(s.xs[size_t(t)]), s.ys[size_t(t)]);
        got[size_t(t)] = autograd::grad({l}, fp);
      });
    }
    for (auto& th : threads) th.join();
    for (int t = 0; t < kThreads; ++t)
      for (size_t i = 0; i < fp.size(); ++i)
        ASSERT_TRUE(all_close(got[size_t(t)][i], want[size_t(t)][i], 1e-5, 1e-6))
            << "round " << round << " thread " << t << " parameter " << i;
  }
}

TEST(AutogradThreads, BackwardOnSeveralThreadsAccumulatesEveryContribution) {
  Shared s;
  std::vector<TensorList> per;
  for (int t = 0; t < kThreads; ++t) per.push_back(autograd::grad({s.loss(t)}, s.params));
  for (int round = 0; round < 10; ++round) {
    s.model->zero_grad();
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) threads.emplace_back([&, t] { s.loss(t).backward(); });
    for (auto& th : threads) th.join();
    for (size_t i = 0; i < s.params.size(); ++i) {
      Tensor sum = per[0][i];
      for (int t = 1; t < kThreads; ++t) sum = sum + per[size_t(t)][i];
      ASSERT_TRUE(s.params[i].grad().defined());
      // The order of the additions differs by a rounding of each.
      ASSERT_TRUE(all_close(s.params[i].grad(), sum, 1e-5, 1e-5)) << "round " << round << " parameter " << i;
    }
  }
}

}  // namespace
}  // namespace ember
