// Deterministic mode on the CPU: training gives the same weights bit for bit at any OpenMP
// thread count (Note [Thread-count-independent sums] in kernels/cpu/conv.cpp).
#include <gtest/gtest.h>
#include <omp.h>

#include "ember.h"
#include "kernels/conv.h"
#include "optim/sgd.h"
#include "test_util.h"

namespace ember {
namespace {

/// The parameters and buffers after `steps` SGD steps of `model` on a fixed random batch,
/// with `threads` OpenMP threads.
std::vector<std::vector<double>> train(const std::string& model, Shape image, int64_t batch, int steps, int threads) {
  int before = omp_get_max_threads();
  omp_set_num_threads(threads);
  manual_seed(3);
  nn::ModulePtr m = nn::make_model(model);
  Shape xs = {batch};
  xs.insert(xs.end(), image.begin(), image.end());
  Tensor x = randn(xs), y = randint(0, 10, {batch});
  optim::SGD opt(m->parameters(), {.lr = 0.05, .momentum = 0.9, .weight_decay = 5e-4});
  for (int s = 0; s < steps; ++s) {
    opt.zero_grad();
    cross_entropy((*m)(x), y).backward();
    opt.step();
  }
  std::vector<std::vector<double>> out;
  nn::StateDict sd = m->state_dict();
  for (const auto& [k, t] : sd.items()) out.push_back(t.to_vector<double>());
  omp_set_num_threads(before);
  return out;
}

struct DeterministicScope {
  DeterministicScope() { set_deterministic(true); }
  ~DeterministicScope() { set_deterministic(false); }
};

TEST(Deterministic, LeNetTrainsToTheSameBitsAtOneTwoAndThreeThreads) {
  DeterministicScope on;
  auto one = train("lenet", {1, 28, 28}, 32, 3, 1);
  EXPECT_EQ(train("lenet", {1, 28, 28}, 32, 3, 2), one);
  EXPECT_EQ(train("lenet", {1, 28, 28}, 32, 3, 3), one);
}

TEST(Deterministic, ResNet20WithBatchNormTrainsToTheSameBitsAtOneAndTwoThreads) {
  DeterministicScope on;
  auto one = train("resnet20", {3, 32, 32}, 8, 2, 1);
  EXPECT_EQ(train("resnet20", {3, 32, 32}, 8, 2, 2), one);
}

/// A 3x3 convolution's output and gradients with `threads` OpenMP threads.
std::vector<std::vector<double>> conv_pass(const Tensor& x0, const Tensor& w0, int threads) {
  int before = omp_get_max_threads();
  omp_set_num_threads(threads);
  Tensor x = x0.detach().requires_grad_(), w = w0.detach().requires_grad_();
  Tensor y = conv2d(x, w, Tensor(), {1, 1}, {1, 1});
  TensorList g = autograd::grad({y}, {x, w}, {y.detach() * 0.5 + 1.0});
  omp_set_num_threads(before);
  return {y.to_vector<double>(), g[0].to_vector<double>(), g[1].to_vector<double>()};
}

// Note [Choosing a CPU convolution algorithm]: in deterministic mode every algorithm, forced
// or picked by the fixed rule (auto), gives the same bits at any thread count.
TEST(Deterministic, EveryCpuConvAlgorithmGivesTheSameBitsAtOneTwoAndThreeThreads) {
  DeterministicScope on;
  manual_seed(5);
  Tensor x = randn({12, 32, 8, 8}), w = randn({32, 32, 3, 3}) * 0.1;
  const cpu::ConvAlgo before = cpu::conv_algo();
  for (cpu::ConvAlgo a : {cpu::ConvAlgo::automatic, cpu::ConvAlgo::direct, cpu::ConvAlgo::im2col,
                          cpu::ConvAlgo::batched, cpu::ConvAlgo::winograd}) {
    SCOPED_TRACE(cpu::conv_algo_name(a));
    cpu::set_conv_algo(a);
    auto one = conv_pass(x, w, 1);
    EXPECT_EQ(conv_pass(x, w, 2), one);
    EXPECT_EQ(conv_pass(x, w, 3), one);
  }
  cpu::set_conv_algo(before);
}

TEST(Deterministic, ALongSumDoesNotDependOnTheThreadCount) {
  manual_seed(1);
  Tensor x = randn({1 << 20});
  omp_set_num_threads(1);
  double a = sum(x).item();
  omp_set_num_threads(2);
  double b = sum(x).item();
  omp_set_num_threads(3);
  double c = sum(x).item();
  EXPECT_EQ(a, b);
  EXPECT_EQ(a, c);
}

}  // namespace
}  // namespace ember
