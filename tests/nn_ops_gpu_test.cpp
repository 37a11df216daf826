// nn ops on CUDA beyond the op-case table (tests/op_cases.cpp, whose OpParity and
// OpParityDirectConv tiers compare conv2d (cuDNN and the direct kernels), pooling and
// batch_norm with the CPU): deterministic mode, running-stat updates, 16-bit types, errors,
// and both CUDA batch-norm implementations (ember's kernels, cuDNN's) against the CPU.
#include <string>

#include "test_util.h"
#if EMBER_WITH_CUDNN
#include "kernels/batch_norm.h"
#endif

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

#if EMBER_WITH_CUDNN
/// Sets the CUDA batch-norm implementation for its scope.
struct BnImpl {
  cudnn::BatchNormImpl prev = cudnn::batch_norm_impl();
  explicit BnImpl(cudnn::BatchNormImpl i) { cudnn::set_batch_norm_impl(i); }
  ~BnImpl() { cudnn::set_batch_norm_impl(prev); }
};

const char* impl_name(cudnn::BatchNormImpl i) {
  return i == cudnn::BatchNormImpl::ember ? "ember" : i == cudnn::BatchNormImpl::cudnn ? "cudnn" : "auto";
}

/// Training batch norm forward with one implementation and backward with another (either
/// may be the CPU), from the same inputs: y, gx, gw, gb and the running mean and variance.
TensorList bn_train(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& gy, const Tensor& rm0,
                    const Tensor& rv0, Device d, cudnn::BatchNormImpl fwd, cudnn::BatchNormImpl bwd) {
  Tensor xi = x.to(d).requires_grad_(), wi = w.to(d).requires_grad_(), bi = b.to(d).requires_grad_();
  Tensor rm = rm0.to(d).clone(), rv = rv0.to(d).clone();
  Tensor y;
  {
    BnImpl f(fwd);
    y = batch_norm(xi, rm, rv, wi, bi, true, 0.1, 1e-5);
  }
  BnImpl g(bwd);
  TensorList gr = autograd::grad({y}, {xi, wi, bi}, {gy.to(d)});
  return {y.cpu(), gr[0].cpu(), gr[1].cpu(), gr[2].cpu(), rm.cpu(), rv.cpu()};
}
#endif

// Note [Batch norm: ours or cuDNN's]: each implementation, and a forward by one with a
// backward by the other, gives the CPU's results; a forced cuDNN really runs cuDNN.
TEST(NnGpu, BatchNormOursAndCudnnsMatchTheCpu) {
  EMBER_REQUIRE_GPU();
#if !EMBER_WITH_CUDNN
  GTEST_SKIP() << "ember was built without cuDNN";
#else
  using I = cudnn::BatchNormImpl;
  manual_seed(41);
  struct Case {
    Shape shape;
    DType dtype;
  };
  const Case cases[] = {{{8, 16, 6, 6}, DType::f32}, {{37, 5}, DType::f32}, {{64, 1, 32, 64}, DType::f32},
                        {{3, 200, 1, 513}, DType::f32}, {{4, 3, 5, 6}, DType::f64}};
  const Device gpu("cuda:0");
  for (const Case& cs : cases) {
    const int64_t c = cs.shape[1];
    const TensorOptions o{.dtype = cs.dtype};
    Tensor x = randn(cs.shape, o) * 2 + 0.5, w = randn({c}, o), b = randn({c}, o), gy = randn(cs.shape, o);
    Tensor rm0 = randn({c}, o) * 0.1, rv0 = rand({c}, o) + 0.5;
    const TensorList want = bn_train(x, w, b, gy, rm0, rv0, kCPU, I::automatic, I::automatic);
    const double tol = cs.dtype == DType::f64 ? 1e-10 : 1e-4;
    for (auto [f, g] : {std::pair{I::ember, I::ember}, {I::cudnn, I::cudnn}, {I::cudnn, I::ember},
                        {I::ember, I::cudnn}, {I::automatic, I::automatic}}) {
      SCOPED_TRACE(std::string(dtype_name(cs.dtype)) + " " + x.shape_str() + " forward " +
                   impl_name(f) + ", backward " + impl_name(g));
      const int64_t before = cudnn::batch_norm_cudnn_calls();
      const TensorList got = bn_train(x, w, b, gy, rm0, rv0, gpu, f, g);
      const int64_t ran = cudnn::batch_norm_cudnn_calls() - before;
      if (f != I::automatic) EXPECT_EQ(ran, int64_t(f == I::cudnn) + int64_t(g == I::cudnn));
      const char* names[] = {"y", "gx", "gw", "gb", "running_mean", "running_var"};
      for (size_t k = 0; k < want.size(); ++k) EXPECT_TRUE(all_close(got[k], want[k], tol, tol)) << names[k];
    }
  }
  // Two timed choices (forward, backward) per f32/f64 shape above were made and listed.
  EXPECT_NE(cudnn::batch_norm_choices().find("forward f32"), std::string::npos) << cudnn::batch_norm_choices();
  EXPECT_NE(cudnn::batch_norm_choices().find("backward f64"), std::string::npos) << cudnn::batch_norm_choices();
#endif
}

// cuDNN cannot take these calls; forcing it runs ember's kernels, with the same results.
TEST(NnGpu, BatchNormForcedCudnnFallsBackWhereCudnnCannot) {
  EMBER_REQUIRE_GPU();
#if !EMBER_WITH_CUDNN
  GTEST_SKIP() << "ember was built without cuDNN";
#else
  BnImpl force(cudnn::BatchNormImpl::cudnn);
  Tensor x = randn({6, 4, 5, 5});
  const int64_t before = cudnn::batch_norm_cudnn_calls();
  // No weight and bias (cuDNN's scale and shift are not optional).
  EXPECT_TRUE(all_close(batch_norm(x.cuda(), Tensor(), Tensor(), Tensor(), Tensor(), true).cpu(),
                        batch_norm(x, Tensor(), Tensor(), Tensor(), Tensor(), true), 1e-4, 1e-4));
  // Only one running statistic.
  Tensor rm = zeros({4}), grm = rm.cuda(), w = randn({4}), b = randn({4});
  EXPECT_TRUE(all_close(batch_norm(x.cuda(), grm, Tensor(), w.cuda(), b.cuda(), true).cpu(),
                        batch_norm(x, rm, Tensor(), w, b, true), 1e-4, 1e-4));
  EXPECT_TRUE(all_close(grm.cpu(), rm, 1e-5, 1e-6));
  // Pure f16 parameters.
  Tensor xh = x.to(DType::f16), wh = w.to(DType::f16), bh = b.to(DType::f16);
  EXPECT_TRUE(all_close(batch_norm(xh.cuda(), Tensor(), Tensor(), wh.cuda(), bh.cuda(), true).to(kCPU, DType::f32),
                        batch_norm(xh, Tensor(), Tensor(), wh, bh, true).to(DType::f32), 2e-2, 2e-2));
  EXPECT_EQ(cudnn::batch_norm_cudnn_calls(), before);
#endif
}

// Deterministic mode never times a choice: ember's kernels, the same bits every run.
TEST(NnGpu, BatchNormInDeterministicModeIsOursAndRepeats) {
  EMBER_REQUIRE_GPU();
#if !EMBER_WITH_CUDNN
  GTEST_SKIP() << "ember was built without cuDNN";
#else
  BnImpl automatic(cudnn::BatchNormImpl::automatic);
  cudnn::clear_batch_norm_choices();
  set_deterministic(true);
  Tensor x = randn({32, 8, 12, 12}), w = randn({8}), b = randn({8}), gy = randn({32, 8, 12, 12});
  const int64_t before = cudnn::batch_norm_cudnn_calls();
  using I = cudnn::BatchNormImpl;
  const TensorList a = bn_train(x, w, b, gy, zeros({8}), ones({8}), Device("cuda:0"), I::automatic, I::automatic);
  const TensorList a2 = bn_train(x, w, b, gy, zeros({8}), ones({8}), Device("cuda:0"), I::automatic, I::automatic);
  set_deterministic(false);
  EXPECT_EQ(cudnn::batch_norm_cudnn_calls(), before);
  EXPECT_EQ(cudnn::batch_norm_choices(), "");
  for (size_t k = 0; k < a.size(); ++k) EXPECT_EQ(test::bytes_of(a[k]), test::bytes_of(a2[k])) << k;
#endif
}

}  // namespace
}  // namespace ember
