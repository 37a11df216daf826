// Shape and index ops on CUDA beyond the op-case table (tests/op_cases.cpp, whose OpParity
// tier compares forward values and gradients with the CPU): storage sharing, the CUDA-only
// paths (device-side index check, atomicAdd scatter in f16/bf16), integer dtypes.
#include <string>

#include "test_util.h"

namespace ember {
namespace {

using test::all_close;

Tensor i64(const std::vector<int64_t>& v, const Shape& shape, Device device = kCPU) {
  return from_vector(v, shape, {.dtype = DType::i64, .device = device});
}

TEST(ShapeGpu, ViewsShareStorage) {
  EMBER_REQUIRE_GPU();
  NoGradGuard ng;
  Tensor base = zeros({3, 4}, {.device = "cuda"});
  Tensor col = select(transpose(base, 0, 1), 0, 1);
  EXPECT_EQ(col.storage().get(), base.storage().get());
  col.fill_(7.0);
  narrow(base, 0, 2, 1).fill_(1.0);
  EXPECT_EQ(base.to_vector<float>(), (std::vector<float>{0, 7, 0, 0, 0, 7, 0, 0, 1, 1, 1, 1}));
}

// The range check runs on the device and is reported at the next synchronization (Note
// [Deferred checks] in core/cuda_context.h), with the CPU's message; the op itself
// returns without waiting and reads bad indices as 0.
TEST(ShapeGpu, IndexRangeCheckedOnDevice) {
  EMBER_REQUIRE_GPU();
  Tensor x = randn({3, 4}, {.device = "cuda"});
  Tensor picked = index_select(x, 0, i64({0, 2, 7, 9}, {4}, x.device()));
  try {
    cuda::synchronize();
    ADD_FAILURE() << "expected an out-of-range error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("index 7 at position 2 is out of range for dim 0 of size 3"),
              std::string::npos)
        << e.what();
  }
  Tensor g = gather(x, 1, i64({0, 1, -1, 0}, {2, 2}, x.device()));
  try {
    (void)g.sum().item();  // item() is a synchronization too
    ADD_FAILURE() << "expected an out-of-range error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("index -1 at position [1, 0]"), std::string::npos) << e.what();
  }
  // Eager mode throws from the op itself.
  cuda::set_eager_checks(true);
  EXPECT_ERROR(index_select(x, 1, i64({4}, {1}, x.device())), "index 4 at position 0 is out of range");
  cuda::set_eager_checks(false);
  // A CPU index for a CUDA input names both devices.
  try {
    index_select(x, 0, i64({0}, {1}));
    ADD_FAILURE() << "expected a device mismatch error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("the index is on cpu"), std::string::npos) << e.what();
  }
  // The device is still usable after a failed check.
  EXPECT_EQ(index_select(x, 0, i64({1}, {1}, x.device())).shape(), (Shape{1, 4}));
}

TEST(ShapeGpu, ScatterAddManyCollisions) {
  EMBER_REQUIRE_GPU();
  // 200k rows gathered from 7: the backward piles ~28k atomicAdds onto each row.
  const int64_t n = 200000;
  Tensor idx = randint(0, 7, {n});
  Tensor x = randn({7, 5}, {.dtype = DType::f64});
  Tensor v = randn({n, 5}, {.dtype = DType::f64});
  auto grad_on = [&](Device d, DType dt) {
    Tensor xi = x.to(d, dt).detach().requires_grad_();
    Tensor out = index_select(xi, 0, idx.to(d));
    return autograd::grad({out}, {xi}, {v.to(d, dt)})[0].to(kCPU, DType::f64);
  };
  Tensor ref = grad_on(kCPU, DType::f64);
  Device gpu(DeviceType::cuda, 0);
  EXPECT_TRUE(all_close(grad_on(gpu, DType::f64), ref, 1e-9, 1e-9));
  EXPECT_TRUE(all_close(grad_on(gpu, DType::f32), ref, 1e-4, 1e-2));
}

TEST(ShapeGpu, HalfTypes) {
  EMBER_REQUIRE_GPU();
  // f16/bf16: forward gathers are exact; backward atomicAdds in the 16-bit type, compared
  // with an f32 CPU reference at 16-bit tolerance (few collisions keep the error small).
  Tensor idx = i64({3, 0, 3, 1}, {4});
  Tensor gidx = i64({0, 2, 2, 1, 1, 1}, {3, 2});
  Tensor x = randn({4, 3});
  Tensor v1 = randn({4, 3}), v2 = randn({3, 2});
  Device gpu(DeviceType::cuda, 0);
  for (DType dt : {DType::f16, DType::bf16}) {
    SCOPED_TRACE(dtype_name(dt));
    Tensor xh = x.to(dt).to(DType::f32);  // the values the 16-bit run actually sees
    auto run = [&](Device d, DType t) {
      Tensor xi = xh.to(d, t).detach().requires_grad_();
      Tensor a = index_select(xi, 0, idx.to(d));
      Tensor b = gather(xi, 1, gidx.to(d));
      TensorList g = autograd::grad({a, b}, {xi}, {v1.to(d, t), v2.to(d, t)});
      return std::vector<Tensor>{a.to(kCPU, DType::f32), b.to(kCPU, DType::f32), g[0].to(kCPU, DType::f32)};
    };
    auto ref = run(kCPU, DType::f32);
    auto got = run(gpu, dt);
    double tol = dt == DType::f16 ? 1e-2 : 5e-2;
    EXPECT_TRUE(all_close(got[0], ref[0], 0.0, 0.0));
    EXPECT_TRUE(all_close(got[1], ref[1], 0.0, 0.0));
    EXPECT_TRUE(all_close(got[2], ref[2], tol, tol));
  }
}

TEST(ShapeGpu, CatAndPadIntegers) {
  EMBER_REQUIRE_GPU();
  Device gpu(DeviceType::cuda, 0);
  Tensor a = i64({1, 2}, {2}, gpu), b = i64({3}, {1}, gpu);
  EXPECT_EQ(cat({a, b}).to_vector<int64_t>(), (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(pad(a, {1, 1}, 9).to_vector<int64_t>(), (std::vector<int64_t>{9, 1, 2, 9}));
  EXPECT_EQ(index_select(a, 0, i64({1, 1, 0}, {3}, gpu)).to_vector<int64_t>(), (std::vector<int64_t>{2, 2, 1}));
  try {
    cat({a, i64({3}, {1})});
    ADD_FAILURE() << "expected a device mismatch error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tensor 1 is on cpu but tensor 0 is on cuda:0"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace ember
