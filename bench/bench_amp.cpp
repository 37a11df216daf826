// Mixed precision (issue 12): one training step (forward under autocast, cross-entropy,
// backward, SGD with f32 master weights) of ResNet-20 and the CIFAR ResNet-18, in f32 and
// with autocast f16 (plus loss scaling, as the Trainer runs it) and bf16:
//   amp_step_<model>/<none|f16|bf16>/<cpu|cuda>
// Batch 32 / 16 on the CPU (resnet20 / resnet18), 128 on a GPU; random CIFAR-sized inputs.
// bench/step_pytorch.py MODEL BATCH ITERS DEVICE --amp fp16|bf16 is PyTorch's autocast on
// the same step (scripts/gpu_check.sh runs both side by side). On the CPU autocast computes
// each 16-bit op in f32 and rounds at the op boundaries, so it is expected to cost more than
// f32 there; the speed goal is the GPU's (tensor cores, half the memory traffic).
#include <chrono>

#include "bench/bench_util.h"
#include "optim/grad_scaler.h"
#include "optim/sgd.h"

namespace ember::bench {
namespace {

void bm_amp_step(benchmark::State& state, std::string model, DType amp, Device d) {
  const int64_t batch = d.is_cuda() ? 128 : (model == "resnet18" ? 16 : 32);
  manual_seed(1);
  nn::ModulePtr m = nn::make_model(model);
  m->to(d);
  m->train();
  optim::SGD opt(m->parameters(), {.lr = 0.01, .momentum = 0.9});
  optim::GradScaler scaler({.enabled = amp == DType::f16});
  Tensor x = randn({batch, 3, 32, 32}, {.device = d});
  Tensor y = randint(0, 10, {batch}, {.dtype = DType::i64, .device = d});
  auto step = [&] {
    Tensor loss;
    {
      AutocastGuard guard(amp == DType::f32 ? DType::f16 : amp, /*enabled=*/amp != DType::f32);
      loss = cross_entropy((*m)(x), y);
    }
    m->zero_grad();
    scaler.scale(loss).backward();
    scaler.step(opt);
    scaler.update();
    sync(d);
  };
  step();  // warm-up: allocator, cuDNN plans, the scaler's first (possibly skipped) step
  for (auto _ : state) {
    auto t0 = std::chrono::steady_clock::now();
    step();
    state.SetIterationTime(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  state.counters["images_per_s"] = benchmark::Counter(double(state.iterations()) * double(batch),
                                                      benchmark::Counter::kIsRate);
  state.counters["batch"] = double(batch);
}

void register_all() {
  for (Device d : bench_devices()) {
    for (const char* model : {"resnet20", "resnet18"}) {
      for (DType amp : {DType::f32, DType::f16, DType::bf16}) {
        const int iters = d.is_cuda() ? 30 : (std::string(model) == "resnet18" ? 2 : 3);
        std::string name = std::string("amp_step_") + model + "/" +
                           (amp == DType::f32 ? "none" : dtype_name(amp)) + "/" + device_tag(d);
        benchmark::RegisterBenchmark(name.c_str(), bm_amp_step, std::string(model), amp, d)
            ->UseManualTime()
            ->Unit(benchmark::kMillisecond)
            ->Iterations(iters);
      }
    }
  }
}

}  // namespace
}  // namespace ember::bench

EMBER_BENCH_MAIN(ember::bench::register_all)
