// nn ops on CUDA against the CPU: conv2d (cuDNN and the direct kernels), pooling and
// batch_norm, forward and backward, plus running-stat updates and deterministic mode.
#include <functional>
#include <string>

#include "test_util.h"

namespace ember {
namespace {

using test::all_close;

struct NnCase {
  std::string name;
  std::vector<Shape> inputs;  // random inputs, all requiring grad
  std::function<Tensor(const TensorList&)> fn;
};

std::vector<NnCase> cases() {
  return {
      {"conv_plain", {{2, 3, 9, 8}, {4, 3, 3, 3}, {4}},
       [](const TensorList& in) { return conv2d(in[0], in[1], in[2], {1, 1}, {1, 1}); }},
      {"conv_stride_dilation", {{2, 4, 11, 10}, {6, 4, 3, 2}, {6}},
       [](const TensorList& in) { return conv2d(in[0], in[1], in[2], {2, 1}, {1, 2}, {2, 1}); }},
      {"conv_groups", {{3, 6, 7, 7}, {9, 2, 3, 3}},
       [](const TensorList& in) { return conv2d(in[0], in[1], Tensor(), {1, 2}, {1, 1}, {1, 1}, 3); }},
      {"conv_lenet1", {{8, 1, 28, 28}, {6, 1, 5, 5}, {6}},
       [](const TensorList& in) { return conv2d(in[0], in[1], in[2], {1, 1}, {2, 2}); }},
      {"conv_pointwise", {{4, 16, 8, 8}, {8, 16, 1, 1}, {8}},
       [](const TensorList& in) { return conv2d(in[0], in[1], in[2]); }},
      {"max_pool", {{2, 3, 9, 8}}, [](const TensorList& in) { return max_pool2d(in[0], {3, 3}, {2, 2}, {1, 1}); }},
      {"max_pool_k2", {{2, 3, 8, 8}}, [](const TensorList& in) { return max_pool2d(in[0], {2, 2}); }},
      {"avg_pool_pad", {{2, 3, 9, 7}}, [](const TensorList& in) { return avg_pool2d(in[0], {3, 2}, {2, 1}, {1, 1}); }},
      {"avg_pool_nopad", {{2, 3, 9, 7}},
       [](const TensorList& in) { return avg_pool2d(in[0], {3, 3}, {2, 2}, {1, 1}, false); }},
      {"adaptive", {{2, 3, 7, 10}}, [](const TensorList& in) { return adaptive_avg_pool2d(in[0], {3, 4}); }},
      {"adaptive_global", {{2, 5, 8, 8}}, [](const TensorList& in) { return adaptive_avg_pool2d(in[0], {1, 1}); }},
      {"bn_train_4d", {{4, 3, 5, 6}, {3}, {3}},
       [](const TensorList& in) { return batch_norm(in[0], Tensor(), Tensor(), in[1], in[2], true); }},
      {"bn_train_2d", {{37, 5}, {5}, {5}},
       [](const TensorList& in) { return batch_norm(in[0], Tensor(), Tensor(), in[1], in[2], true); }},
      {"bn_train_large_s", {{2, 2, 40, 40}, {2}, {2}},
       [](const TensorList& in) { return batch_norm(in[0], Tensor(), Tensor(), in[1], in[2], true); }},
      // Few channels, 16384 elements each: the (channel x range) grid.
      {"bn_train_split", {{16, 2, 32, 32}, {2}, {2}},
       [](const TensorList& in) { return batch_norm(in[0], Tensor(), Tensor(), in[1], in[2], true); }},
      {"bn_eval", {{4, 3, 5, 6}, {3}, {3}},
       [](const TensorList& in) {
         Tensor rm = full({3}, 0.25, {.dtype = in[0].dtype(), .device = in[0].device()});
         Tensor rv = full({3}, 1.5, {.dtype = in[0].dtype(), .device = in[0].device()});
         return batch_norm(in[0], rm, rv, in[1], in[2], false);
       }},
  };
}

struct Run {
  Tensor out;
  TensorList grads;
};
Run run_on(const NnCase& c, const TensorList& cpu_in, const Tensor& v, Device d) {
  TensorList in;
  for (const Tensor& x : cpu_in) in.push_back(x.to(d).detach().requires_grad_());
  Run r;
  r.out = c.fn(in);
  r.grads = autograd::grad({r.out}, in, {v.to(d)});
  return r;
}

void check_parity(DType dtype, double rtol, double atol) {
  Device gpu(DeviceType::cuda, 0);
  default_generator().manual_seed(11);
  for (const NnCase& c : cases()) {
    SCOPED_TRACE(c.name + " " + dtype_name(dtype));
    TensorList inputs;
    for (const Shape& s : c.inputs) inputs.push_back(randn(s, {.dtype = dtype}));
    Tensor probe;
    {
      NoGradGuard ng;
      probe = c.fn(inputs);
    }
    Tensor v = randn(probe.shape(), {.dtype = dtype});
    Run ref = run_on(c, inputs, v, kCPU);
    Run got = run_on(c, inputs, v, gpu);
    ASSERT_TRUE(got.out.is_cuda());
    EXPECT_TRUE(all_close(got.out.cpu(), ref.out, rtol, atol));
    for (size_t i = 0; i < ref.grads.size(); ++i)
      EXPECT_TRUE(all_close(got.grads[i].cpu(), ref.grads[i], rtol, atol)) << "input " << i;
  }
}

TEST(NnGpu, ParityF64) {
  EMBER_REQUIRE_GPU();
  check_parity(DType::f64, 1e-9, 1e-9);
}

TEST(NnGpu, ParityF32) {
  EMBER_REQUIRE_GPU();
  check_parity(DType::f32, 1e-4, 1e-4);
}

TEST(NnGpu, DirectConvKernelsMatchCpu) {
  EMBER_REQUIRE_GPU();
  // The path of a build without cuDNN, forced on.
  bool was = cudnn::enabled();
  cudnn::set_enabled(false);
  check_parity(DType::f64, 1e-9, 1e-9);
  cudnn::set_enabled(was);
}

TEST(NnGpu, DeterministicConvIsBitwiseRepeatable) {
  EMBER_REQUIRE_GPU();
  cudnn::set_deterministic(true);
  Tensor x = randn({16, 8, 16, 16}, {.device = "cuda"}).requires_grad_();
  Tensor w = randn({16, 8, 3, 3}, {.device = "cuda"}).requires_grad_();
  Tensor gy = randn({16, 16, 16, 16}, {.device = "cuda"});
  auto grads = [&] { return autograd::grad({conv2d(x, w, Tensor(), {1, 1}, {1, 1})}, {x, w}, {gy}); };
  TensorList a = grads(), b = grads();
  EXPECT_TRUE(all_close(a[0].cpu(), b[0].cpu(), 0, 0));
  EXPECT_TRUE(all_close(a[1].cpu(), b[1].cpu(), 0, 0));
  cudnn::set_deterministic(false);
}

TEST(NnGpu, RunningStatsMatchCpu) {
  EMBER_REQUIRE_GPU();
  Tensor x = randn({8, 4, 6, 6}, {.dtype = DType::f64});
  Tensor rm = randn({4}, {.dtype = DType::f64}), rv = rand({4}, {.dtype = DType::f64}) + 0.5;
  Tensor grm = rm.cuda(), grv = rv.cuda();
  batch_norm(x, rm, rv, Tensor(), Tensor(), true, 0.3);
  batch_norm(x.cuda(), grm, grv, Tensor(), Tensor(), true, 0.3);
  EXPECT_TRUE(all_close(grm.cpu(), rm, 1e-12, 1e-12));
  EXPECT_TRUE(all_close(grv.cpu(), rv, 1e-12, 1e-12));
}

TEST(NnGpu, HalfTypes) {
  EMBER_REQUIRE_GPU();
  Tensor x = randn({4, 8, 10, 10}), w = randn({8, 8, 3, 3}) * 0.2;
  for (DType dt : {DType::f16, DType::bf16}) {
    SCOPED_TRACE(dtype_name(dt));
    Tensor xh = x.to(dt).to(DType::f32), wh = w.to(dt).to(DType::f32);
    double tol = dt == DType::f16 ? 2e-2 : 1e-1;
    auto gpu = [&](const Tensor& t) { return t.to(Device(DeviceType::cuda, 0), dt); };
    EXPECT_TRUE(all_close(conv2d(gpu(xh), gpu(wh), Tensor(), {1, 1}, {1, 1}).to(kCPU, DType::f32),
                          conv2d(xh, wh, Tensor(), {1, 1}, {1, 1}), tol, tol));
    EXPECT_TRUE(all_close(max_pool2d(gpu(xh), {2, 2}).to(kCPU, DType::f32), max_pool2d(xh, {2, 2}), 0, 0));
    EXPECT_TRUE(all_close(batch_norm(gpu(xh), Tensor(), Tensor(), Tensor(), Tensor(), true).to(kCPU, DType::f32),
                          batch_norm(xh, Tensor(), Tensor(), Tensor(), Tensor(), true), tol, tol));
  }
}

TEST(NnGpu, CudnnErrorsAreEmberErrors) {
  EMBER_REQUIRE_GPU();
  // Shape errors are caught before any kernel runs, on CUDA as on CPU.
  Tensor x = randn({2, 4, 5, 5}, {.device = "cuda"});
  EXPECT_THROW(conv2d(x, randn({6, 3, 3, 3}, {.device = "cuda"})), Error);
  EXPECT_THROW(conv2d(x, randn({6, 4, 3, 3})), Error);  // weight on the CPU
}

}  // namespace
}  // namespace ember
