// One LeNet training step on MNIST-shaped data (batch 64, 1x28x28, 10 classes): forward,
// cross-entropy, zero_grad, backward and an SGD step (lr 0.01, momentum 0.9, wd 5e-4), the
// loop of bench/lenet_vs_pytorch.sh without data loading. items_per_second is images/s.
// Also the forward pass alone (no grad), as in evaluation.
#include "bench_util.h"
#include "nn/nn.h"
#include "optim/optim.h"

namespace {

using namespace ember;

constexpr int64_t kBatch = 64;

void train_step(benchmark::State& state, Device d) {
  manual_seed(1);
  nn::LeNet model(10);
  model.to(d);
  optim::SGD opt(model.parameters(), {.lr = 0.01, .momentum = 0.9, .weight_decay = 5e-4});
  Tensor x = randn({kBatch, 1, 28, 28}, {.device = d});
  Tensor y = randint(0, 10, {kBatch}, {.dtype = DType::i64, .device = d});
  for (auto _ : state) {
    Tensor loss = cross_entropy(model.forward(x), y);
    model.zero_grad();
    loss.backward();
    opt.step();
    bench::sync(d);
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}

void forward_no_grad(benchmark::State& state, Device d) {
  manual_seed(1);
  nn::LeNet model(10);
  model.to(d);
  model.eval();
  Tensor x = randn({kBatch, 1, 28, 28}, {.device = d});
  NoGradGuard ng;
  for (auto _ : state) {
    Tensor logits = model.forward(x);
    benchmark::DoNotOptimize(logits);
    bench::sync(d);
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}

void register_all() {
  for (Device d : bench::bench_devices()) {
    std::string tag = bench::device_tag(d);
    benchmark::RegisterBenchmark(("lenet_train_step/" + tag).c_str(), train_step, d)
        ->Unit(benchmark::kMillisecond)->UseRealTime();
    benchmark::RegisterBenchmark(("lenet_forward_no_grad/" + tag).c_str(), forward_no_grad, d)
        ->Unit(benchmark::kMillisecond)->UseRealTime();
  }
}

}  // namespace

EMBER_BENCH_MAIN(register_all)
