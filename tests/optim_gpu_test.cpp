// CUDA paths of nn and optim: the fused SGD kernel against its CPU twin, and module moves to
// the GPU. Skipped (visibly) without a GPU.
#include <gtest/gtest.h>

#include <cmath>

#include "test_util.h"

namespace ember {
namespace {

using test::all_close;

TEST(SGDGpu, FusedKernelMatchesCpuForEveryOptionAndDtype) {
  EMBER_REQUIRE_GPU();
  const Device gpu("cuda:0");
  struct Case {
    optim::SGDOptions o;
    const char* name;
  };
  const Case cases[] = {
      {{.lr = 0.1}, "plain"},
      {{.lr = 0.1, .weight_decay = 1e-2}, "wd"},
      {{.lr = 0.05, .momentum = 0.9}, "momentum"},
      {{.lr = 0.05, .momentum = 0.9, .dampening = 0.3, .weight_decay = 5e-4}, "dampening+wd"},
      {{.lr = 0.05, .momentum = 0.9, .weight_decay = 5e-4, .nesterov = true}, "nesterov+wd"},
      {{.lr = 0.05, .momentum = 0.5, .maximize = true}, "maximize"},
  };
  // Odd sizes exercise the vector body and the scalar tail; a 1-element view is unaligned.
  for (int64_t n : {int64_t(1), int64_t(1000003)}) {
    for (DType dt : {DType::f32, DType::f64, DType::f16, DType::bf16}) {
      for (const auto& c : cases) {
        manual_seed(9);
        Tensor init = randn({n}, {.dtype = dt});
        Tensor pc = init.clone(), pg = init.to(gpu);
        pc.requires_grad_();
        pg.requires_grad_();
        optim::SGD cpu_opt({pc}, c.o), gpu_opt({pg}, c.o);
        for (int s = 0; s < 3; ++s) {
          Tensor g = randn({n}, {.dtype = dt});
          pc.set_grad(g);
          pg.set_grad(g.to(gpu));
          cpu_opt.step();
          gpu_opt.step();
        }
        // Same arithmetic (sgd_apply) in the same compute type: equal up to FMA contraction.
        double tol = dt == DType::f64 ? 1e-12 : dt == DType::f32 ? 1e-5 : 1e-2;
        EXPECT_TRUE(all_close(pg.cpu(), pc, tol, tol)) << c.name << " " << dt << " n=" << n;
        if (c.o.momentum != 0)
          EXPECT_TRUE(all_close(gpu_opt.momentum_buffer(0).cpu(), cpu_opt.momentum_buffer(0), tol, tol))
              << c.name << " " << dt << " n=" << n;
      }
    }
  }
}

TEST(SGDGpu, MisalignedParameterViewTakesTheScalarPath) {
  EMBER_REQUIRE_GPU();
  const Device gpu("cuda:0");
  // A parameter that starts one element into its storage (not 16-byte aligned).
  Tensor base = randn({1025}, {.device = gpu});
  Tensor pg = narrow(base, 0, 1, 1024).detach();
  Tensor pc = pg.cpu();
  pg.requires_grad_();
  pc.requires_grad_();
  optim::SGDOptions o{.lr = 0.1, .momentum = 0.9, .weight_decay = 1e-3};
  optim::SGD a({pc}, o), b({pg}, o);
  for (int s = 0; s < 2; ++s) {
    Tensor g = randn({1024});
    pc.set_grad(g);
    pg.set_grad(g.to(gpu));
    a.step();
    b.step();
  }
  EXPECT_TRUE(all_close(pg.cpu(), pc, 1e-5, 1e-6));
}

TEST(SGDGpu, ManyParametersInOneMultiTensorStepMatchCpu) {
  EMBER_REQUIRE_GPU();
  const Device gpu("cuda:0");
  // More tensors than one launch lists (36), one with more chunks than one launch has
  // blocks (320 x 16384), sizes on both sides of a chunk, two dtypes (two groups), an
  // empty parameter and a misaligned view.
  std::vector<int64_t> sizes = {0, 1, 3, 16383, 16384, 16385, 6000001};
  for (int i = 0; i < 45; ++i) sizes.push_back(1 + (i * 7919) % 5000);
  manual_seed(13);
  TensorList pc, pg;
  for (size_t i = 0; i < sizes.size(); ++i) {
    DType dt = i % 3 == 2 ? DType::f16 : DType::f32;
    Tensor init = randn({sizes[i]}, {.dtype = dt});
    pc.push_back(init.clone().requires_grad_());
    pg.push_back(init.to(gpu).requires_grad_());
  }
  Tensor base = randn({1001}, {.device = gpu});
  pg.push_back(narrow(base, 0, 1, 1000).detach().requires_grad_());
  pc.push_back(pg.back().detach().cpu().clone().requires_grad_());
  optim::SGDOptions o{.lr = 0.05, .momentum = 0.9, .weight_decay = 1e-3, .nesterov = true};
  optim::SGD a(pc, o), b(pg, o);
  for (int s = 0; s < 3; ++s) {
    for (size_t i = 0; i < pc.size(); ++i) {
      Tensor g = randn(pc[i].shape(), {.dtype = pc[i].dtype()});
      pc[i].set_grad(g);
      pg[i].set_grad(g.to(gpu));
    }
    a.step();
    b.step();
  }
  for (size_t i = 0; i < pc.size(); ++i) {
    double tol = pc[i].dtype() == DType::f16 ? 1e-2 : 1e-5;
    EXPECT_TRUE(all_close(pg[i].cpu(), pc[i], tol, tol)) << "parameter " << i << " of " << sizes.size();
    EXPECT_TRUE(all_close(b.momentum_buffer(i).cpu(), a.momentum_buffer(i), tol, tol)) << "buffer " << i;
  }
}

TEST(GradScalerGpu, FindsInfInCudaGradientsOfAnyFloatDtype) {
  EMBER_REQUIRE_GPU();
  const Device gpu("cuda:0");
  for (DType dt : {DType::f32, DType::f16, DType::bf16}) {
    Tensor p = ones({1000}, {.dtype = dt, .device = gpu});
    p.requires_grad_();
    optim::SGD sgd({p}, {.lr = 0.1});
    optim::GradScaler scaler({.init_scale = 4.0});
    Tensor g = full({1000}, 4.0, {.dtype = dt});
    p.set_grad(g.to(gpu));
    EXPECT_TRUE(scaler.step(sgd)) << dt;  // unscaled to 1: p = 1 - 0.1
    EXPECT_TRUE(all_close(p.cpu().to(DType::f32), full({1000}, 0.9), 1e-2)) << dt;
    scaler.update();
    std::vector<float> bad(1000, 1.f);
    bad[777] = INFINITY;
    p.set_grad(from_vector<float>(bad, {1000}).to(gpu, dt));
    EXPECT_FALSE(scaler.step(sgd)) << dt;
    scaler.update();
    EXPECT_EQ(scaler.get_scale(), 2.0) << dt;
  }
}

TEST(ModuleGpu, ToCudaMovesInPlaceAndTrainsThere) {
  EMBER_REQUIRE_GPU();
  const Device gpu("cuda:0");
  manual_seed(1);
  auto model = std::make_shared<nn::Sequential>(std::initializer_list<nn::ModulePtr>{
      std::make_shared<nn::Linear>(8, 16), std::make_shared<nn::ReLU>(),
      std::make_shared<nn::Linear>(16, 1)});
  TensorList params = model->parameters();  // handles taken before the move
  optim::SGD sgd(params, {.lr = 0.05, .momentum = 0.9});
  std::vector<std::vector<float>> before;
  for (const auto& p : params) before.push_back(p.to_vector<float>());
  model->to(gpu);
  EXPECT_EQ(model->device(), gpu);
  for (size_t i = 0; i < params.size(); ++i) {
    EXPECT_EQ(params[i].device(), gpu);
    EXPECT_TRUE(params[i].is_same(model->parameters()[i]));
    EXPECT_EQ(params[i].to_vector<float>(), before[i]);
    EXPECT_TRUE(params[i].requires_grad());
  }
  Tensor x = randn({32, 8}, {.device = gpu});
  Tensor y = sum(x, {1}, true) * 0.1;
  double first = 0, last = 0;
  for (int s = 0; s < 200; ++s) {
    sgd.zero_grad();
    Tensor d = model->forward(x) - y;
    Tensor loss = mean(d * d);
    loss.backward();
    sgd.step();
    if (s == 0) first = loss.item();
    last = loss.item();
  }
  EXPECT_LT(last, first / 10.0);
  // Back to the CPU: the optimizer follows its parameters (buffers are moved at the next step).
  model->to(kCPU);
  EXPECT_EQ(params[0].device(), kCPU);
  sgd.zero_grad();
  Tensor xc = x.cpu(), yc = y.cpu();
  Tensor d = model->forward(xc) - yc;
  mean(d * d).backward();
  sgd.step();
  EXPECT_EQ(sgd.momentum_buffer(0).device(), kCPU);
}

}  // namespace
}  // namespace ember
