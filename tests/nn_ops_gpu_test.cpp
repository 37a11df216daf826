// nn ops on CUDA beyond the op-case table (tests/op_cases.cpp, whose OpParity and
// OpParityDirectConv tiers compare conv2d (cuDNN and the direct kernels), pooling and
// batch_norm with the CPU): deterministic mode, running-stat updates, 16-bit types, errors.
#include <string>

#include "test_util.h"

namespace ember {
namespace {

using test::all_close;

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
