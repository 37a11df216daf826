// Mixed precision on the GPU (issue 12): the same autocast policy on CUDA tensors, the
// 16-bit GEMMs and convolutions (cuBLAS / cuDNN with f32 accumulation) against the CPU's
// autocast twin, and one loss-scaled ResNet-20 step with f32 master weights. Skipped
// (visibly) without a GPU.
#include <gtest/gtest.h>

#include <cmath>

#include "optim/grad_scaler.h"
#include "test_util.h"

namespace ember {
namespace {

// Norm-wise relative difference.
double rel(const Tensor& a, const Tensor& b) {
  Tensor x = a.to(kCPU, DType::f64), y = b.to(kCPU, DType::f64);
  return std::sqrt(sum(square(x - y)).item() / std::max(sum(square(y)).item(), 1e-300));
}

TEST(AutocastGpu, ConvLinearAndLossMatchTheCpuTwin) {
  EMBER_REQUIRE_GPU();
  const Device gpu("cuda:0");
  for (DType lo : {DType::f16, DType::bf16}) {
    SCOPED_TRACE(dtype_name(lo));
    const double u = lo == DType::f16 ? std::ldexp(1.0, -11) : std::ldexp(1.0, -8);
    manual_seed(11);
    Tensor x = randn({8, 3, 16, 16}), w = (randn({8, 3, 3, 3}) * 0.3), b = randn({8}) * 0.1;
    Tensor w2 = randn({10, 8 * 8 * 8}) * 0.05, labels = randint(0, 10, {8}, {.dtype = DType::i64});
    auto run = [&](Device d) {
      TensorList p = {w.to(d), b.to(d), w2.to(d)};
      for (Tensor& t : p) t.requires_grad_();
      Tensor y, loss;
      {
        AutocastGuard amp(lo);
        y = relu(conv2d(x.to(d), p[0], p[1], {1, 1}, {1, 1}));
        EXPECT_EQ(y.dtype(), lo);
        Tensor logits = linear(flatten(max_pool2d(y, {2, 2}), 1), p[2]);
        EXPECT_EQ(logits.dtype(), lo);
        loss = cross_entropy(logits, labels.to(d));
        EXPECT_EQ(loss.dtype(), DType::f32);
      }
      loss.backward();
      TensorList out = {y, loss};
      for (Tensor& t : p) {
        EXPECT_EQ(t.grad().dtype(), DType::f32);
        out.push_back(t.grad());
      }
      return out;
    };
    TensorList c = run(kCPU), g = run(gpu);
    // Both round to the 16-bit type at the same op boundaries; inside the ops the sums are
    // f32 in a different order, so the results differ by a few units of the 16-bit type.
    for (size_t i = 0; i < c.size(); ++i) EXPECT_LT(rel(g[i], c[i]), 8 * u) << "output " << i;
  }
}

TEST(AutocastGpu, LossScaledResNetStepKeepsF32Masters) {
  EMBER_REQUIRE_GPU();
  const Device gpu("cuda:0");
  manual_seed(12);
  nn::ModulePtr m = nn::make_model("resnet20");
  m->to(gpu);
  optim::SGD opt(m->parameters(), {.lr = 0.05, .momentum = 0.9});
  optim::GradScaler scaler;
  Tensor x = randn({32, 3, 32, 32}, {.device = gpu});
  Tensor y = randint(0, 10, {32}, {.dtype = DType::i64, .device = gpu});
  double first = 0, last = 0;
  for (int step = 0; step < 20; ++step) {
    Tensor loss;
    {
      AutocastGuard amp(DType::f16);
      loss = cross_entropy((*m)(x), y);
    }
    if (step == 0) first = loss.item();
    last = loss.item();
    m->zero_grad();
    scaler.scale(loss).backward();
    scaler.step(opt);
    scaler.update();
  }
  for (const Tensor& p : m->parameters()) {
    EXPECT_EQ(p.dtype(), DType::f32);
    EXPECT_EQ(p.grad().dtype(), DType::f32);
  }
  EXPECT_TRUE(std::isfinite(last));
  EXPECT_LT(last, first);  // it memorizes the fixed batch
}

}  // namespace
}  // namespace ember
