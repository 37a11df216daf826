// Elementwise and reduction ops on CUDA beyond the op-case table (tests/op_cases.cpp, whose
// OpParity tier compares every case with the CPU): 16-bit forwards, integer ops, reductions
// over 2^24 elements, in-place forms. Skips visibly on a machine without a GPU.

#include "test_util.h"

namespace ember {
namespace {

using test::all_close;

TEST(OpsGpu, HalfPrecisionForward) {
  EMBER_REQUIRE_GPU();
  Device gpu(DeviceType::cuda, 0);
  for (DType dt : {DType::f16, DType::bf16}) {
    Tensor x = uniform({4099}, -2, 2, {.dtype = dt});
    Tensor y = uniform({4099}, -2, 2, {.dtype = dt});
    EXPECT_TRUE(all_close((x.to(gpu) * y.to(gpu) + 1.0).cpu(), x * y + 1.0, 1e-2, 1e-2));
    EXPECT_TRUE(all_close(sigmoid(x.to(gpu)).cpu(), sigmoid(x), 1e-2, 1e-2));
    EXPECT_TRUE(all_close(sum(x.to(gpu)).cpu(), sum(x), 2e-2, 2e-1));
  }
}

TEST(OpsGpu, IntegerOpsAndComparisons) {
  EMBER_REQUIRE_GPU();
  Device gpu(DeviceType::cuda, 0);
  Tensor a = randint(-50, 50, {1000}), b = randint(-50, 50, {1000});
  EXPECT_EQ((a.to(gpu) + b.to(gpu)).cpu().to_vector<int64_t>(), (a + b).to_vector<int64_t>());
  EXPECT_EQ(lt(a.to(gpu), b.to(gpu)).cpu().to_vector<bool>(), lt(a, b).to_vector<bool>());
  EXPECT_EQ(sum(a.to(gpu)).item<int64_t>(), sum(a).item<int64_t>());
  EXPECT_EQ(argmax(a.to(gpu)).item<int64_t>(), argmax(a).item<int64_t>());
  EXPECT_EQ(argmin(a.to(gpu).reshape({10, 100}), 1).cpu().to_vector<int64_t>(),
            argmin(a.reshape({10, 100}), 1).to_vector<int64_t>());
}

TEST(OpsGpu, LargeReductionsSplitAcrossBlocks) {
  EMBER_REQUIRE_GPU();
  Device gpu(DeviceType::cuda, 0);
  Tensor x = rand({1 << 24}, {.dtype = DType::f64});
  Tensor g = x.to(gpu);
  EXPECT_NEAR(sum(g).item(), sum(x).item(), 1e-6);
  EXPECT_EQ(max(g).item(), max(x).item());
  EXPECT_EQ(argmax(g).item<int64_t>(), argmax(x).item<int64_t>());
  Tensor r = rand({3, 1 << 20});
  EXPECT_TRUE(all_close(sum(r.to(gpu), {1}).cpu(), sum(r, {1}), 1e-5, 1e-2));
}

TEST(OpsGpu, InPlaceOnGpu) {
  EMBER_REQUIRE_GPU();
  Device gpu(DeviceType::cuda, 0);
  Tensor a = ones({5}, {.device = gpu});
  a.add_(ones({5}, {.device = gpu}), 2.0).mul_(2.0);
  EXPECT_EQ(a.cpu().to_vector<float>(), (std::vector<float>(5, 6.0f)));
}

}  // namespace
}  // namespace ember
