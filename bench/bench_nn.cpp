// conv2d, max_pool2d and batch_norm (training) forward and forward+backward at LeNet and
// CIFAR ResNet-20 / ResNet-18 layer shapes, f32, on CPU and (when present) CUDA. On CUDA
// also raw cuDNN references on the same stream: conv (Find*Ex-chosen algorithms, same
// math mode as ember) and cudnnBatchNormalization*. Batch norm on CUDA has three rows per
// shape: batch_norm_train (what users get: the per-shape choice between ember's kernels and
// cuDNN's, Note [Batch norm: ours or cuDNN's]; its cudnn_calls counter says which ran),
// batch_norm_train_ember_kernels (ours forced) and cudnn_batch_norm_reference (raw cuDNN).
// Pooling and batch norm report bytes/s (each tensor read or written counted once).
#include "bench/bench_util.h"
#if EMBER_WITH_CUDNN
#include <cudnn.h>
#include <cuda_runtime_api.h>

#include "core/cuda/check.h"
#include "core/cuda/stream.h"
#include "kernels/batch_norm.h"
#endif

namespace ember::bench {
namespace {

struct ConvShape {
  const char* name;
  int64_t n, c, h, o, k, s, p;
};
// LeNet (batch 64, as the MNIST app trains, and 128), ResNet-20 stages, ResNet-18 (CIFAR).
const ConvShape kConvs[] = {
    {"lenet_c1_b64", 64, 1, 28, 6, 5, 1, 2},      {"lenet_c2_b64", 64, 6, 14, 16, 5, 1, 0},
    {"lenet_c1", 128, 1, 28, 6, 5, 1, 2},         {"lenet_c2", 128, 6, 14, 16, 5, 1, 0},
    {"r20_16x32x32", 128, 16, 32, 16, 3, 1, 1},   {"r20_32x16x16", 128, 32, 16, 32, 3, 1, 1},
    {"r20_64x8x8", 128, 64, 8, 64, 3, 1, 1},      {"r20_down_16to32_s2", 128, 16, 32, 32, 3, 2, 1},
    {"r18_64x32x32", 128, 64, 32, 64, 3, 1, 1},   {"r18_128x16x16", 128, 128, 16, 128, 3, 1, 1},
    {"r18_256x8x8", 128, 256, 8, 256, 3, 1, 1},   {"r18_512x4x4", 128, 512, 4, 512, 3, 1, 1},
};

void bm_conv(benchmark::State& state, Device d, ConvShape c, bool backward) {
  Tensor x = randn({c.n, c.c, c.h, c.h}, {.device = d}).requires_grad_(backward);
  Tensor w = (randn({c.o, c.c, c.k, c.k}, {.device = d}) * 0.1).detach().requires_grad_(backward);
  Tensor b = zeros({c.o}, {.device = d}).requires_grad_(backward);
  auto step = [&] {
    Tensor y = conv2d(x, w, b, {c.s, c.s}, {c.p, c.p});
    if (backward) autograd::grad({y}, {x, w, b}, {ones_like(y)});
    sync(d);
  };
  step();  // algorithm search, allocator warm-up
  for (auto _ : state) step();
  const double oh = double((c.h + 2 * c.p - c.k) / c.s + 1);
  const double flops = 2.0 * double(c.n * c.o * c.c * c.k * c.k) * oh * oh * (backward ? 3 : 1);
  state.counters["GFLOP/s"] = benchmark::Counter(flops * double(state.iterations()) / 1e9,
                                                 benchmark::Counter::kIsRate);
}

void bm_max_pool(benchmark::State& state, Device d, Shape shape, bool backward) {
  Tensor x = randn(shape, {.device = d}).requires_grad_(backward);
  auto step = [&] {
    Tensor y = max_pool2d(x, {2, 2});
    if (backward) autograd::grad({y}, {x}, {ones_like(y)});
    sync(d);
  };
  step();
  for (auto _ : state) step();
  // forward: read x, write y (x/4) and indices (x/4, 8 bytes); backward: read gy and
  // indices, write gx.
  const double n = double(shape_numel(shape));
  const double fwd = n * 4 + n / 4 * 4 + n / 4 * 8, bwd = n / 4 * 4 + n / 4 * 8 + n * 4;
  state.SetBytesProcessed(int64_t(double(state.iterations()) * (fwd + (backward ? bwd : 0))));
}

/// `ember_only`: on CUDA, ember's own kernels even where the per-shape choice (Note [Batch
/// norm: ours or cuDNN's]) would take cuDNN's; the plain rows run the choice, as users get it.
void bm_batch_norm(benchmark::State& state, Device d, Shape shape, bool backward, bool ember_only = false) {
#if EMBER_WITH_CUDNN
  struct Force {
    cudnn::BatchNormImpl prev = cudnn::batch_norm_impl();
    explicit Force(bool on) {
      if (on) cudnn::set_batch_norm_impl(cudnn::BatchNormImpl::ember);
    }
    ~Force() { cudnn::set_batch_norm_impl(prev); }
  } force(ember_only);
  const int64_t cudnn_before = cudnn::batch_norm_cudnn_calls();
#else
  (void)ember_only;
#endif
  const int64_t c = shape[1];
  Tensor x = randn(shape, {.device = d}).requires_grad_(backward);
  Tensor w = ones({c}, {.device = d}).requires_grad_(backward), b = zeros({c}, {.device = d}).requires_grad_(backward);
  Tensor rm = zeros({c}, {.device = d}), rv = ones({c}, {.device = d});
  auto step = [&] {
    Tensor y = batch_norm(x, rm, rv, w, b, true);
    if (backward) autograd::grad({y}, {x, w, b}, {ones_like(y)});
    sync(d);
  };
  step();
  for (auto _ : state) step();
  // forward: x read twice for the statistics and once to normalize, y written;
  // backward: x and gy read twice, gx written.
  const double bytes = double(shape_numel(shape)) * 4;
  state.SetBytesProcessed(int64_t(double(state.iterations()) * bytes * (4 + (backward ? 5 : 0))));
#if EMBER_WITH_CUDNN
  if (d.is_cuda()) state.counters["cudnn_calls"] = double(cudnn::batch_norm_cudnn_calls() - cudnn_before);
#endif
}

#if EMBER_WITH_CUDNN
#define BENCH_CUDNN(expr)                                                               \
  do {                                                                                  \
    cudnnStatus_t st_ = (expr);                                                         \
    if (st_ != CUDNN_STATUS_SUCCESS) {                                                  \
      state.SkipWithError(cudnnGetErrorString(st_));                                    \
      return;                                                                           \
    }                                                                                   \
  } while (0)

/// Raw cuDNN: the same conv (forward, or forward + backward-data + backward-filter +
/// bias) with the fastest algorithms cudnnFind*Ex reports, workspace from cudaMalloc.
void bm_cudnn_conv(benchmark::State& state, ConvShape c, bool backward) {
  Device d(DeviceType::cuda, 0);
  cudnnHandle_t h;
  BENCH_CUDNN(cudnnCreate(&h));
  BENCH_CUDNN(cudnnSetStream(h, cuda::current_stream(0)));
  const int64_t oh = (c.h + 2 * c.p - c.k) / c.s + 1;
  Tensor x = randn({c.n, c.c, c.h, c.h}, {.device = d}), w = randn({c.o, c.c, c.k, c.k}, {.device = d});
  Tensor y = empty({c.n, c.o, oh, oh}, {.device = d}), gy = ones_like(y), gx = empty_like(x),
         gw = empty_like(w), b = zeros({c.o}, {.device = d}), gb = empty_like(b);
  cudnnTensorDescriptor_t xd, yd, bd;
  cudnnFilterDescriptor_t wd;
  cudnnConvolutionDescriptor_t cd;
  cudnnCreateTensorDescriptor(&xd), cudnnCreateTensorDescriptor(&yd), cudnnCreateTensorDescriptor(&bd);
  cudnnCreateFilterDescriptor(&wd), cudnnCreateConvolutionDescriptor(&cd);
  cudnnSetTensor4dDescriptor(xd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, int(c.n), int(c.c), int(c.h), int(c.h));
  cudnnSetTensor4dDescriptor(yd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, int(c.n), int(c.o), int(oh), int(oh));
  cudnnSetTensor4dDescriptor(bd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, int(c.o), 1, 1);
  cudnnSetFilter4dDescriptor(wd, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, int(c.o), int(c.c), int(c.k), int(c.k));
  cudnnSetConvolution2dDescriptor(cd, int(c.p), int(c.p), int(c.s), int(c.s), 1, 1, CUDNN_CROSS_CORRELATION,
                                  CUDNN_DATA_FLOAT);
  cudnnSetConvolutionMathType(cd, cuda::allow_tf32() ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH);
  size_t ws_size = size_t(512) << 20;
  void* ws = nullptr;
  EMBER_CUDA_CHECK(cudaMalloc(&ws, ws_size));
  int n = 0;
  cudnnConvolutionFwdAlgoPerf_t fp[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
  cudnnConvolutionBwdDataAlgoPerf_t dp[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
  cudnnConvolutionBwdFilterAlgoPerf_t wp[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
  BENCH_CUDNN(cudnnFindConvolutionForwardAlgorithmEx(h, xd, x.data_ptr(), wd, w.data_ptr(), cd, yd, y.data_ptr(),
                                                     CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &n, fp, ws, ws_size));
  BENCH_CUDNN(cudnnFindConvolutionBackwardDataAlgorithmEx(h, wd, w.data_ptr(), yd, gy.data_ptr(), cd, xd,
                                                          gx.data_ptr(), CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT,
                                                          &n, dp, ws, ws_size));
  BENCH_CUDNN(cudnnFindConvolutionBackwardFilterAlgorithmEx(h, xd, x.data_ptr(), yd, gy.data_ptr(), cd, wd,
                                                            gw.data_ptr(), CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT,
                                                            &n, wp, ws, ws_size));
  const float one = 1.f, zero = 0.f;
  auto step = [&] {
    cudnnSetConvolutionMathType(cd, fp[0].mathType);
    cudnnConvolutionForward(h, &one, xd, x.data_ptr(), wd, w.data_ptr(), cd, fp[0].algo, ws, ws_size, &zero, yd,
                            y.data_ptr());
    cudnnAddTensor(h, &one, bd, b.data_ptr(), &one, yd, y.data_ptr());
    if (backward) {
      cudnnSetConvolutionMathType(cd, dp[0].mathType);
      cudnnConvolutionBackwardData(h, &one, wd, w.data_ptr(), yd, gy.data_ptr(), cd, dp[0].algo, ws, ws_size,
                                   &zero, xd, gx.data_ptr());
      cudnnSetConvolutionMathType(cd, wp[0].mathType);
      cudnnConvolutionBackwardFilter(h, &one, xd, x.data_ptr(), yd, gy.data_ptr(), cd, wp[0].algo, ws, ws_size,
                                     &zero, wd, gw.data_ptr());
      cudnnConvolutionBackwardBias(h, &one, yd, gy.data_ptr(), &zero, bd, gb.data_ptr());
    }
    sync(d);
  };
  step();
  for (auto _ : state) step();
  cudaFree(ws);
  cudnnDestroyTensorDescriptor(xd), cudnnDestroyTensorDescriptor(yd), cudnnDestroyTensorDescriptor(bd);
  cudnnDestroyFilterDescriptor(wd), cudnnDestroyConvolutionDescriptor(cd), cudnnDestroy(h);
}

/// Raw cuDNN spatial batch norm, training forward (+ backward), to compare with ours.
void bm_cudnn_batch_norm(benchmark::State& state, Shape shape, bool backward) {
  Device d(DeviceType::cuda, 0);
  cudnnHandle_t h;
  BENCH_CUDNN(cudnnCreate(&h));
  BENCH_CUDNN(cudnnSetStream(h, cuda::current_stream(0)));
  const int64_t c = shape[1];
  Tensor x = randn(shape, {.device = d}), y = empty_like(x), gy = ones_like(x), gx = empty_like(x);
  Tensor w = ones({c}, {.device = d}), b = zeros({c}, {.device = d}), rm = zeros({c}, {.device = d}),
         rv = ones({c}, {.device = d}), sm = empty({c}, {.device = d}), si = empty({c}, {.device = d}),
         gw = empty({c}, {.device = d}), gb = empty({c}, {.device = d});
  cudnnTensorDescriptor_t xd, pd;
  cudnnCreateTensorDescriptor(&xd), cudnnCreateTensorDescriptor(&pd);
  cudnnSetTensor4dDescriptor(xd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, int(shape[0]), int(c), int(shape[2]),
                             int(shape[3]));
  cudnnSetTensor4dDescriptor(pd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, int(c), 1, 1);
  const float one = 1.f, zero = 0.f;
  auto step = [&] {
    cudnnBatchNormalizationForwardTraining(h, CUDNN_BATCHNORM_SPATIAL, &one, &zero, xd, x.data_ptr(), xd,
                                           y.data_ptr(), pd, w.data_ptr(), b.data_ptr(), 0.1, rm.data_ptr(),
                                           rv.data_ptr(), 1e-5, sm.data_ptr(), si.data_ptr());
    if (backward)
      cudnnBatchNormalizationBackward(h, CUDNN_BATCHNORM_SPATIAL, &one, &zero, &one, &zero, xd, x.data_ptr(), xd,
                                      gy.data_ptr(), xd, gx.data_ptr(), pd, w.data_ptr(), gw.data_ptr(),
                                      gb.data_ptr(), 1e-5, sm.data_ptr(), si.data_ptr());
    sync(d);
  };
  step();
  for (auto _ : state) step();
  const double bytes = double(shape_numel(shape)) * 4;
  state.SetBytesProcessed(int64_t(double(state.iterations()) * bytes * (4 + (backward ? 5 : 0))));
  cudnnDestroyTensorDescriptor(xd), cudnnDestroyTensorDescriptor(pd), cudnnDestroy(h);
}
#endif

const Shape kPools[] = {{128, 6, 28, 28}, {128, 16, 10, 10}, {128, 64, 32, 32}};
const Shape kBns[] = {{128, 16, 32, 32}, {128, 32, 16, 16}, {128, 64, 8, 8}, {128, 64, 32, 32}, {128, 512, 4, 4}};

std::string shape_name(const Shape& s) {
  std::string r;
  for (int64_t v : s) r += (r.empty() ? "" : "x") + std::to_string(v);
  return r;
}

void register_all() {
  for (Device d : bench_devices()) {
    const std::string dev = device_tag(d);
    for (bool bwd : {false, true}) {
      const std::string pass = bwd ? "fwd_bwd" : "fwd";
      for (const ConvShape& c : kConvs) {
        benchmark::RegisterBenchmark(("conv2d/" + pass + "/" + c.name + "/" + dev).c_str(),
                                     [d, c, bwd](benchmark::State& s) { bm_conv(s, d, c, bwd); })
            ->Unit(benchmark::kMillisecond)
            ->UseRealTime();
#if EMBER_WITH_CUDNN
        if (d.is_cuda())
          benchmark::RegisterBenchmark(("cudnn_conv_reference/" + pass + "/" + c.name).c_str(),
                                       [c, bwd](benchmark::State& s) { bm_cudnn_conv(s, c, bwd); })
              ->Unit(benchmark::kMillisecond)
              ->UseRealTime();
#endif
      }
      for (const Shape& sh : kPools)
        benchmark::RegisterBenchmark(("max_pool2d_k2/" + pass + "/" + shape_name(sh) + "/" + dev).c_str(),
                                     [d, sh, bwd](benchmark::State& s) { bm_max_pool(s, d, sh, bwd); })
            ->Unit(benchmark::kMillisecond)
            ->UseRealTime();
      for (const Shape& sh : kBns) {
        benchmark::RegisterBenchmark(("batch_norm_train/" + pass + "/" + shape_name(sh) + "/" + dev).c_str(),
                                     [d, sh, bwd](benchmark::State& s) { bm_batch_norm(s, d, sh, bwd); })
            ->Unit(benchmark::kMillisecond)
            ->UseRealTime();
#if EMBER_WITH_CUDNN
        if (d.is_cuda())
          benchmark::RegisterBenchmark(("batch_norm_train_ember_kernels/" + pass + "/" + shape_name(sh) + "/" + dev).c_str(),
                                       [d, sh, bwd](benchmark::State& s) { bm_batch_norm(s, d, sh, bwd, true); })
              ->Unit(benchmark::kMillisecond)
              ->UseRealTime();
        if (d.is_cuda())
          benchmark::RegisterBenchmark(("cudnn_batch_norm_reference/" + pass + "/" + shape_name(sh)).c_str(),
                                       [sh, bwd](benchmark::State& s) { bm_cudnn_batch_norm(s, sh, bwd); })
              ->Unit(benchmark::kMillisecond)
              ->UseRealTime();
#endif
      }
    }
  }
}

}  // namespace
}  // namespace ember::bench

EMBER_BENCH_MAIN(ember::bench::register_all)
