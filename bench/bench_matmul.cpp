// Square f32 matmul (n = 32 .. 8192, i.e. 4 KiB to 256 MiB per matrix) on CPU and CUDA,
// reported as FLOP/s (2 n^3 per product), and on CUDA a raw cublasSgemm on the same
// stream and sizes: ember's matmul should come within 5% of it.
// EMBER_BENCH_TF32=1 lets both use TF32 tensor cores (ember::cuda::set_allow_tf32).
#include <cmath>
#include <cstdlib>

#include "bench/bench_util.h"
#if EMBER_WITH_CUDA
#include <cublas_v2.h>

#include "core/cuda/stream.h"
#endif

namespace ember::bench {
namespace {

benchmark::Counter flops(int64_t n) {
  return benchmark::Counter(2.0 * double(n) * double(n) * double(n),
                            benchmark::Counter::kIsIterationInvariantRate);
}

void bm_matmul(benchmark::State& state, Device d) {
  int64_t n = state.range(0);
  Tensor a = randn({n, n}, {.device = d}), b = randn({n, n}, {.device = d});
  {
    Tensor warm = matmul(a, b);
    sync(d);
  }
  for (auto _ : state) {
    Tensor c = matmul(a, b);
    sync(d);
    benchmark::DoNotOptimize(c.data_ptr());
  }
  state.counters["FLOP/s"] = flops(n);
}

#if EMBER_WITH_CUDA
#define BENCH_CUBLAS_CHECK(expr)                                                \
  do {                                                                          \
    cublasStatus_t st_ = (expr);                                                \
    EMBER_CHECK(st_ == CUBLAS_STATUS_SUCCESS, #expr, " failed: ",               \
                cublasGetStatusString(st_));                                    \
  } while (0)

// The reference: one cublasSgemm into a preallocated output, nothing else.
void bm_cublas_sgemm(benchmark::State& state) {
  int64_t n = state.range(0);
  Device d{DeviceType::cuda, 0};
  Tensor a = randn({n, n}, {.device = d}), b = randn({n, n}, {.device = d});
  Tensor c = empty({n, n}, {.device = d});
  cuda::DeviceGuard g(0);
  cublasHandle_t h = nullptr;
  BENCH_CUBLAS_CHECK(cublasCreate(&h));
  BENCH_CUBLAS_CHECK(cublasSetStream(h, cuda::current_stream(0)));
  BENCH_CUBLAS_CHECK(cublasSetMathMode(
      h, cuda::allow_tf32() ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
  const float one = 1.0f, zero = 0.0f;
  int ni = int(n);
  // Row-major C = A B is column-major C^T = B^T A^T: swap the operands.
  auto gemm = [&] {
    BENCH_CUBLAS_CHECK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, ni, ni, ni, &one,
                                   b.data<float>(), ni, a.data<float>(), ni, &zero,
                                   c.data<float>(), ni));
  };
  gemm();
  sync(d);
  for (auto _ : state) {
    gemm();
    sync(d);
  }
  state.counters["FLOP/s"] = flops(n);
  cublasDestroy(h);
}
#endif

void register_all() {
  if (const char* e = std::getenv("EMBER_BENCH_TF32"); e && std::string(e) == "1") {
    cuda::set_allow_tf32(true);
    benchmark::AddCustomContext("ember_tf32", "on");
  }
  for (Device d : bench_devices()) {
    // CPU default: 4 MiB matrices (n = 1024), a few seconds on two cores.
    int64_t cap = max_bytes(d, int64_t(4) << 20);
    int64_t nmax = 32;
    while ((2 * nmax) * (2 * nmax) * 4 <= cap) nmax *= 2;
    benchmark::RegisterBenchmark(("matmul_f32/" + device_tag(d)).c_str(),
                                 [d](benchmark::State& s) { bm_matmul(s, d); })
        ->RangeMultiplier(2)
        ->Range(32, nmax)
        ->ArgName("n")
        ->UseRealTime()
        ->Unit(benchmark::kMicrosecond);
#if EMBER_WITH_CUDA
    if (d.is_cuda()) {
      benchmark::RegisterBenchmark("cublas_sgemm_reference/cuda", bm_cublas_sgemm)
          ->RangeMultiplier(2)
          ->Range(32, nmax)
          ->ArgName("n")
          ->UseRealTime()
          ->Unit(benchmark::kMicrosecond);
    }
#endif
  }
}

}  // namespace
}  // namespace ember::bench

EMBER_BENCH_MAIN(ember::bench::register_all)
