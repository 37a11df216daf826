// sum over all elements (f32, 4 KiB to 256 MiB) on CPU and CUDA. Bytes/s counts the bytes
// read; compare with memcpy_d2d_reference in bench_elementwise on the same GPU.
#include "bench/bench_util.h"

namespace ember::bench {
namespace {

void bm_sum(benchmark::State& state, Device d) {
  int64_t bytes = state.range(0), n = bytes / 4;
  Tensor x = rand({n}, {.device = d});
  {
    Tensor warm = sum(x);
    sync(d);
  }
  for (auto _ : state) {
    Tensor y = sum(x);
    sync(d);
    benchmark::DoNotOptimize(y.data_ptr());
  }
  state.SetBytesProcessed(state.iterations() * bytes);
}

void register_all() {
  for (Device d : bench_devices()) {
    benchmark::RegisterBenchmark(("sum_f32/" + device_tag(d)).c_str(),
                                 [d](benchmark::State& s) { bm_sum(s, d); })
        ->RangeMultiplier(4)
        ->Range(int64_t(4) << 10, max_bytes(d))
        ->ArgName("bytes")
        ->UseRealTime()
        ->Unit(benchmark::kMicrosecond);
  }
}

}  // namespace
}  // namespace ember::bench

EMBER_BENCH_MAIN(ember::bench::register_all)
