// Host overhead of autograd on small models: record and run forward + backward of a chain
// of 1000 tiny ops (4-element tensors, so the arithmetic is negligible). Reported per op;
// goal on CPU: under 2 us per op (issue 3): items_per_second is ops/s, so 1/that.
#include "bench_util.h"

namespace {

using namespace ember;

void BM_AutogradChain(benchmark::State& state) {
  const int64_t kOps = 1000;
  Tensor x = ones({4}).requires_grad_();
  Tensor w = full({4}, 1.0001);
  for (auto _ : state) {
    Tensor h = x;
    for (int64_t i = 0; i < kOps; i += 2) h = relu(h * w);  // 2 ops per step
    Tensor s = h.sum();
    s.backward();
    NoGradGuard ng;
    x.grad().zero_();
  }
  state.SetItemsProcessed(state.iterations() * kOps);
}
BENCHMARK(BM_AutogradChain)->Unit(benchmark::kMillisecond);

void BM_ForwardOnlyNoGrad(benchmark::State& state) {
  const int64_t kOps = 1000;
  Tensor x = ones({4});
  Tensor w = full({4}, 1.0001);
  NoGradGuard ng;
  for (auto _ : state) {
    Tensor h = x;
    for (int64_t i = 0; i < kOps; i += 2) h = relu(h * w);
    benchmark::DoNotOptimize(h);
  }
  state.SetItemsProcessed(state.iterations() * kOps);
}
BENCHMARK(BM_ForwardOnlyNoGrad)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
