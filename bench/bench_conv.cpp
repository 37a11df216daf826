// CPU convolution backends side by side (issue 16): ember's own kernels (kernels/cpu/conv.cpp)
// against oneDNN (kernels/cpu/conv_dnnl.h), per shape and pass, at 1 and 2 threads, f32:
//   conv/<shape>/<pass>/<backend>/threads:<t>
//     pass: fwd | bwd_data | bwd_weights (the latter with the bias gradient when the layer
//           has a bias)
//     backend: ember | dnnl (blocked layouts + reorders, direct algorithm) | dnnl_auto
//              (oneDNN may pick Winograd; 3x3 stride-1 shapes only) | dnnl_plain (NCHW
//              buffers as they are; ResNet-20 shapes at 1 thread only); steps also
//              `measured` (oneDNN with Winograd allowed where cpu::dnnl_conv_wins, ember
//              elsewhere: EMBER_CPU_CONV_BACKEND=measured)
//   step/<model>/batch:<n>/<backend>/threads:<t>
//     one training step (forward, cross-entropy, backward, SGD momentum 0.9) with every
//     convolution on that backend (oneDNN forced as EMBER_CPU_CONV_BACKEND=dnnl does); the
//     same step as bench_ddp's step_plain rows, at PyTorch's batch (bench/step_pytorch.py).
// Shapes: ResNet-20 (16/32/64 channels on 32/16/8 maps) and ResNet-18 for CIFAR (64-512
// channels on 32-4 maps, 1x1 stride-2 shortcuts) at batch 128, LeNet and the MNIST convnet
// at batch 64. Random data, buffers made once per benchmark, one untimed call first (oneDNN
// makes its primitives there). Results: bench/results/2026-12-01-cpu-onednn.md. Compare
// backends interleaved: --benchmark_enable_random_interleaving=true
// --benchmark_repetitions=3 (the machine is shared, so single runs are noisy).
#include <omp.h>

#include <random>

#include "bench/bench_util.h"
#include "kernels/conv.h"
#include "kernels/cpu/conv_dnnl.h"
#include "optim/sgd.h"

namespace ember::bench {
namespace {

struct Shape2 {
  std::string name;
  int64_t n, c_in, hw, c_out, k, s, p;
  bool bias = false;
};

ConvGeometry geometry(const Shape2& s) {
  ConvGeometry g;
  g.n = s.n, g.c_in = s.c_in, g.h = s.hw, g.w = s.hw, g.c_out = s.c_out, g.kh = s.k, g.kw = s.k;
  g.sh = g.sw = s.s, g.ph = g.pw = s.p;
  g.oh = g.ow = (s.hw + 2 * s.p - s.k) / s.s + 1;
  return g;
}

std::vector<Shape2> shapes() {
  return {
      // ResNet-20 (CIFAR), batch 128
      {"r20_stem_3to16_32x32", 128, 3, 32, 16, 3, 1, 1},
      {"r20_16_32x32", 128, 16, 32, 16, 3, 1, 1},
      {"r20_16to32_s2_32x32", 128, 16, 32, 32, 3, 2, 1},
      {"r20_32_16x16", 128, 32, 16, 32, 3, 1, 1},
      {"r20_32to64_s2_16x16", 128, 32, 16, 64, 3, 2, 1},
      {"r20_64_8x8", 128, 64, 8, 64, 3, 1, 1},
      // ResNet-18 (CIFAR), batch 128
      {"r18_stem_3to64_32x32", 128, 3, 32, 64, 3, 1, 1},
      {"r18_64_32x32", 128, 64, 32, 64, 3, 1, 1},
      {"r18_64to128_s2_32x32", 128, 64, 32, 128, 3, 2, 1},
      {"r18_sc_64to128_1x1s2_32x32", 128, 64, 32, 128, 1, 2, 0},
      {"r18_128_16x16", 128, 128, 16, 128, 3, 1, 1},
      {"r18_128to256_s2_16x16", 128, 128, 16, 256, 3, 2, 1},
      {"r18_sc_128to256_1x1s2_16x16", 128, 128, 16, 256, 1, 2, 0},
      {"r18_256_8x8", 128, 256, 8, 256, 3, 1, 1},
      {"r18_256to512_s2_8x8", 128, 256, 8, 512, 3, 2, 1},
      {"r18_sc_256to512_1x1s2_8x8", 128, 256, 8, 512, 1, 2, 0},
      {"r18_512_4x4", 128, 512, 4, 512, 3, 1, 1},
      // LeNet and the MNIST convnet, batch 64, with bias
      {"lenet_conv1_1to6_5x5_28x28", 64, 1, 28, 6, 5, 1, 2, true},
      {"lenet_conv2_6to16_5x5_14x14", 64, 6, 14, 16, 5, 1, 0, true},
      {"mnistnet_conv1_1to32_28x28", 64, 1, 28, 32, 3, 1, 0, true},
      {"mnistnet_conv2_32to64_26x26", 64, 32, 26, 64, 3, 1, 0, true},
  };
}

enum class Backend { ember, dnnl, dnnl_auto, dnnl_plain, measured };
const char* backend_name(Backend b) {
  switch (b) {
    case Backend::ember: return "ember";
    case Backend::dnnl: return "dnnl";
    case Backend::dnnl_auto: return "dnnl_auto";
    case Backend::dnnl_plain: return "dnnl_plain";
    case Backend::measured: return "measured";
  }
  return "?";
}

/// Selects the backend for the scope of one benchmark (EMBER_CPU_CONV_BACKEND's switch and
/// the oneDNN configuration). `measured`: oneDNN (Winograd allowed) where dnnl_conv_wins.
struct UseBackend {
  cpu::DnnlConvConfig saved = cpu::dnnl_conv_config();
  cpu::CpuConvBackend saved_backend = cpu::cpu_conv_backend();
  explicit UseBackend(Backend b) {
    const bool wino = b == Backend::dnnl_auto || b == Backend::measured;
    cpu::set_dnnl_conv_config({.blocked = b != Backend::dnnl_plain, .winograd = wino});
    cpu::set_cpu_conv_backend(b == Backend::ember      ? cpu::CpuConvBackend::ember
                              : b == Backend::measured ? cpu::CpuConvBackend::measured
                                                       : cpu::CpuConvBackend::dnnl);
  }
  ~UseBackend() {
    cpu::set_dnnl_conv_config(saved);
    cpu::set_cpu_conv_backend(saved_backend);
  }
};

struct Threads {
  int saved = omp_get_max_threads();
  explicit Threads(int n) { omp_set_num_threads(n); }
  ~Threads() { omp_set_num_threads(saved); }
};

std::vector<float> random_f32(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = u(rng);
  return v;
}

void bm_conv(benchmark::State& state, Shape2 s, int pass, Backend backend, int threads) {
  Threads t(threads);
  UseBackend use(backend);
  const ConvGeometry g = geometry(s);
  auto x = random_f32(size_t(g.n * g.c_in * g.h * g.w), 1);
  auto w = random_f32(size_t(g.c_out * g.c_in * g.kh * g.kw), 2);
  auto b = random_f32(size_t(g.c_out), 3);
  auto gy = random_f32(size_t(g.n * g.c_out * g.oh * g.ow), 4);
  std::vector<float> y(gy.size()), gx(x.size()), gw(w.size()), gb(b.size());
  const float* bp = s.bias ? b.data() : nullptr;
  float* gbp = s.bias ? gb.data() : nullptr;
  // The public entry points, as autograd calls them: the backend switch picks the kernels.
  auto run = [&] {
    if (pass == 0) cpu::conv2d_fwd(DType::f32, x.data(), w.data(), bp, y.data(), g);
    else if (pass == 1) cpu::conv2d_bwd(DType::f32, x.data(), w.data(), gy.data(), gx.data(), nullptr, nullptr, g);
    else cpu::conv2d_bwd(DType::f32, x.data(), w.data(), gy.data(), nullptr, gw.data(), gbp, g);
  };
  run();
  for (auto _ : state) {
    run();
    benchmark::ClobberMemory();
  }
  const double macs = double(g.n * g.c_out * g.oh * g.ow * g.c_in * g.kh * g.kw);
  state.counters["GMAC/s"] = benchmark::Counter(macs * 1e-9 * double(state.iterations()), benchmark::Counter::kIsRate);
  if (backend != Backend::ember) {
    const auto p = pass == 0 ? cpu::DnnlConvPass::fwd : pass == 1 ? cpu::DnnlConvPass::bwd_data : cpu::DnnlConvPass::bwd_weights;
    state.SetLabel(cpu::dnnl_conv_implementation(g, p, s.bias));
  }
}

void bm_step(benchmark::State& state, std::string model, int64_t batch, Backend backend, int threads) {
  Threads t(threads);
  UseBackend use(backend);
  manual_seed(1);
  nn::ModulePtr m = nn::make_model(model);
  optim::SGD opt(m->parameters(), {.lr = 0.01, .momentum = 0.9});
  Shape shape = model == "lenet" ? Shape{batch, 1, 28, 28} : Shape{batch, 3, 32, 32};
  Tensor x = randn(shape);
  Tensor y = randint(0, 10, {batch}, {.dtype = DType::i64});
  auto step = [&] {
    Tensor loss = cross_entropy((*m)(x), y);
    m->zero_grad();
    loss.backward();
    opt.step();
  };
  step();  // warm-up: allocator, oneDNN primitives
  for (auto _ : state) step();
  state.counters["images_per_s"] = benchmark::Counter(double(state.iterations()) * double(batch), benchmark::Counter::kIsRate);
}

void register_all() {
  if (!EMBER_WITH_DNNL) benchmark::AddCustomContext("ember_dnnl", "not built: only the ember rows run");
  const char* passes[] = {"fwd", "bwd_data", "bwd_weights"};
  for (const Shape2& s : shapes()) {
    const bool r20 = s.name.rfind("r20_", 0) == 0;
    const bool wino_candidate = s.k == 3 && s.s == 1 && s.c_in >= 16;
    for (int pass = 0; pass < 3; ++pass) {
      for (int threads : {1, 2}) {
        for (Backend b : {Backend::ember, Backend::dnnl, Backend::dnnl_auto, Backend::dnnl_plain}) {
          if (b != Backend::ember && !EMBER_WITH_DNNL) continue;
          if (b == Backend::dnnl_auto && !wino_candidate) continue;
          if (b == Backend::dnnl_plain && (!r20 || threads != 1)) continue;
          const std::string name = "conv/" + s.name + "/" + passes[pass] + "/" + backend_name(b) +
                                   "/threads:" + std::to_string(threads);
          benchmark::RegisterBenchmark(name.c_str(), bm_conv, s, pass, b, threads)
              ->Unit(benchmark::kMillisecond)
              ->UseRealTime();
        }
      }
    }
  }
  struct Step {
    std::string model;
    int64_t batch;
    int iters;
  };
  for (const Step& st : {Step{"resnet20", 128, 3}, Step{"resnet18", 32, 1}, Step{"lenet", 64, 20}}) {
    for (int threads : {1, 2}) {
      for (Backend b : {Backend::ember, Backend::dnnl, Backend::dnnl_auto, Backend::measured}) {
        if (b != Backend::ember && !EMBER_WITH_DNNL) continue;
        const std::string name = "step/" + st.model + "/batch:" + std::to_string(st.batch) + "/" +
                                 backend_name(b) + "/threads:" + std::to_string(threads);
        benchmark::RegisterBenchmark(name.c_str(), bm_step, st.model, st.batch, b, threads)
            ->Unit(benchmark::kMillisecond)
            ->UseRealTime()
            ->Iterations(st.iters);
      }
    }
  }
}

}  // namespace
}  // namespace ember::bench

EMBER_BENCH_MAIN(ember::bench::register_all)
