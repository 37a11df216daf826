// One training step (forward, cross-entropy, backward, SGD) in ember: the same step as
// bench/step_pytorch.py, with the same command line, for side-by-side runs in one window.
//
// Usage: step_ember MODEL BATCH ITERS [--choices] [--infer]
//        MODEL: lenet | convnet | mlp | resnet20 | resnet18 (nn::make_model), CPU only.
// One warm-up step (it also runs the CPU convolution algorithm search, Note [Choosing a CPU
// convolution algorithm] in kernels/cpu/conv.cpp), then ITERS timed steps. Prints one JSON
// line: median and mean step time, median process CPU time per step, and images per second
// over the mean; --choices also prints
// the convolution algorithm picked for each shape and pass, with the candidates' times;
// --infer times the forward pass alone, in eval mode without autograd (step_pytorch.py's --infer).
#include <omp.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <string>
#include <vector>

#include "ember.h"
#include "kernels/conv.h"
#include "optim/sgd.h"

int main(int argc, char** argv) {
  using namespace ember;
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s MODEL BATCH ITERS [--choices]\n", argv[0]);
    return 2;
  }
  const std::string model = argv[1];
  const int64_t batch = std::atoll(argv[2]);
  const int iters = std::atoi(argv[3]);
  bool choices = false, infer = false;
  for (int i = 4; i < argc; ++i) {
    if (std::strcmp(argv[i], "--choices") == 0) {
      choices = true;
    } else if (std::strcmp(argv[i], "--infer") == 0) {
      infer = true;
    } else {
      std::fprintf(stderr, "unknown option %s (expected --choices or --infer)\n", argv[i]);
      return 2;
    }
  }
  manual_seed(1);
  nn::ModulePtr m = nn::make_model(model);
  const bool mnist = model == "lenet" || model == "convnet" || model == "mlp";
  Shape shape = mnist ? Shape{batch, 1, 28, 28} : Shape{batch, 3, 32, 32};
  Tensor x = randn(shape);
  Tensor y = randint(0, 10, {batch}, {.dtype = DType::i64});
  optim::SGD opt(m->parameters(), {.lr = 0.01, .momentum = 0.9});
  auto train_step = [&] {
    Tensor loss = cross_entropy((*m)(x), y);
    m->zero_grad();
    loss.backward();
    opt.step();
  };
  auto infer_step = [&] {
    NoGradGuard no_grad;
    (*m)(x);
  };
  if (infer) m->eval();
  auto step = [&] { infer ? infer_step() : train_step(); };
  step();  // warm-up: allocator, the convolution algorithm search
  // Process CPU time as well as wall time: on a shared machine a one-thread step's CPU time
  // leaves out the time the process waited for a core (step_pytorch.py reports the same).
  auto cpu_now = [] {
    timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
  };
  std::vector<double> t, tc;
  for (int i = 0; i < iters; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    const double c0 = cpu_now();
    step();
    tc.push_back(cpu_now() - c0);
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  auto median = [](std::vector<double> s) {
    std::sort(s.begin(), s.end());
    return s.size() % 2 ? s[s.size() / 2] : (s[s.size() / 2 - 1] + s[s.size() / 2]) / 2;
  };
  const double med = median(t), med_cpu = median(tc);
  const double mean = std::accumulate(t.begin(), t.end(), 0.0) / double(t.size());
  std::printf(
      "{\"framework\": \"ember\", \"model\": \"%s\", \"infer\": %s, \"batch\": %lld, \"iters\": %d, \"threads\": %d, "
      "\"conv_algo\": \"%s\", \"median_step_ms\": %.3f, \"mean_step_ms\": %.3f, \"median_step_cpu_ms\": %.3f, "
      "\"images_per_second\": %.1f}\n",
      model.c_str(), infer ? "true" : "false", (long long)batch, iters, omp_get_max_threads(), cpu::conv_algo_name(cpu::conv_algo()), med * 1e3,
      mean * 1e3, med_cpu * 1e3, double(batch) / mean);
  if (choices) std::fprintf(stderr, "%s", cpu::conv_algo_choices().c_str());
  return 0;
}
