// Elementwise add and relu (f32, 4 KiB to 256 MiB per operand) on CPU and CUDA, ember's own
// copy (clone), and on CUDA a raw device-to-device cudaMemcpy: the reference bandwidth the
// elementwise kernels are measured against. Bytes/s counts every byte read and written.
#include "bench/bench_util.h"
#if EMBER_WITH_CUDA
#include <cuda_runtime_api.h>

#include "core/cuda/check.h"
#include "core/cuda/stream.h"
#endif

namespace ember::bench {
namespace {

void bm_add(benchmark::State& state, Device d) {
  int64_t bytes = state.range(0), n = bytes / 4;
  Tensor a = rand({n}, {.device = d}), b = rand({n}, {.device = d});
  {
    Tensor warm = add(a, b);  // first touch, allocator warm-up
    sync(d);
  }
  for (auto _ : state) {
    Tensor y = add(a, b);
    sync(d);
    benchmark::DoNotOptimize(y.data_ptr());
  }
  state.SetBytesProcessed(state.iterations() * 3 * bytes);  // read a, b; write y
}

void bm_relu(benchmark::State& state, Device d) {
  int64_t bytes = state.range(0), n = bytes / 4;
  Tensor x = randn({n}, {.device = d});
  {
    Tensor warm = relu(x);
    sync(d);
  }
  for (auto _ : state) {
    Tensor y = relu(x);
    sync(d);
    benchmark::DoNotOptimize(y.data_ptr());
  }
  state.SetBytesProcessed(state.iterations() * 2 * bytes);  // read x; write y
}

void bm_clone(benchmark::State& state, Device d) {
  int64_t bytes = state.range(0), n = bytes / 4;
  Tensor x = rand({n}, {.device = d});
  {
    Tensor warm = x.clone();
    sync(d);
  }
  for (auto _ : state) {
    Tensor y = x.clone();
    sync(d);
    benchmark::DoNotOptimize(y.data_ptr());
  }
  state.SetBytesProcessed(state.iterations() * 2 * bytes);
}

#if EMBER_WITH_CUDA
// The reference: the driver's own device-to-device copy into a preallocated buffer.
void bm_cuda_memcpy(benchmark::State& state) {
  int64_t bytes = state.range(0);
  Device d{DeviceType::cuda, 0};
  Tensor src = rand({bytes / 4}, {.device = d}), dst = empty({bytes / 4}, {.device = d});
  cuda::DeviceGuard g(0);
  cudaStream_t s = cuda::current_stream(0);
  EMBER_CUDA_CHECK(cudaMemcpyAsync(dst.data_ptr(), src.data_ptr(), size_t(bytes),
                                   cudaMemcpyDeviceToDevice, s));
  sync(d);
  for (auto _ : state) {
    EMBER_CUDA_CHECK(cudaMemcpyAsync(dst.data_ptr(), src.data_ptr(), size_t(bytes),
                                     cudaMemcpyDeviceToDevice, s));
    sync(d);
  }
  state.SetBytesProcessed(state.iterations() * 2 * bytes);  // read src; write dst
}
#endif

void register_all() {
  const int64_t kMin = int64_t(4) << 10;
  for (Device d : bench_devices()) {
    int64_t cap = max_bytes(d);
    std::string t = device_tag(d);
    auto reg = [&](const std::string& name, void (*fn)(benchmark::State&, Device)) {
      benchmark::RegisterBenchmark(name.c_str(), [fn, d](benchmark::State& s) { fn(s, d); })
          ->RangeMultiplier(4)
          ->Range(kMin, cap)
          ->ArgName("bytes")
          ->UseRealTime()
          ->Unit(benchmark::kMicrosecond);
    };
    reg("add_f32/" + t, bm_add);
    reg("relu_f32/" + t, bm_relu);
    reg("clone_f32/" + t, bm_clone);
#if EMBER_WITH_CUDA
    if (d.is_cuda()) {
      benchmark::RegisterBenchmark("memcpy_d2d_reference/cuda", bm_cuda_memcpy)
          ->RangeMultiplier(4)
          ->Range(kMin, cap)
          ->ArgName("bytes")
          ->UseRealTime()
          ->Unit(benchmark::kMicrosecond);
    }
#endif
  }
}

}  // namespace
}  // namespace ember::bench

EMBER_BENCH_MAIN(ember::bench::register_all)
