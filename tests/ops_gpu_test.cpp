// The parity table for the elementwise and reduction ops: each case runs forward and
// backward on CUDA and on the CPU and compares (|a-b| <= atol + rtol*|ref|). Skips visibly
// on a machine without a GPU.
#include <functional>
#include <string>

#include "test_util.h"

namespace ember {
namespace {

using test::all_close;

struct OpCase {
  std::string name;
  std::vector<Shape> inputs;  // random inputs in [lo, hi), all requiring grad
  std::function<Tensor(const TensorList&)> fn;
  double lo = -2, hi = 2;
};

Tensor tr(const Tensor& x) { return transpose(x, 0, 1); }  // a non-contiguous view

std::vector<OpCase> cases() {
  using L = const TensorList&;
  return {
      {"neg", {{33, 17}}, [](L in) { return neg(tr(in[0])); }},
      {"abs", {{1000}}, [](L in) { return abs(in[0]); }},
      {"exp", {{4097}}, [](L in) { return exp(in[0]); }},
      {"log", {{513}}, [](L in) { return log(in[0]); }, 0.1, 3},
      {"sqrt", {{300}}, [](L in) { return sqrt(in[0]); }, 0.1, 3},
      {"rsqrt", {{300}}, [](L in) { return rsqrt(in[0]); }, 0.1, 3},
      {"sin", {{64, 3}}, [](L in) { return sin(tr(in[0])); }},
      {"cos", {{129}}, [](L in) { return cos(in[0]); }},
      {"tanh", {{1025}}, [](L in) { return tanh(in[0]); }},
      {"sigmoid", {{77, 5}}, [](L in) { return sigmoid(in[0]); }},
      {"relu", {{100000}}, [](L in) { return relu(in[0]); }},
      {"gelu", {{999}}, [](L in) { return gelu(in[0]); }},
      {"square", {{31}}, [](L in) { return square(in[0]); }},
      {"reciprocal", {{31}}, [](L in) { return reciprocal(in[0]); }, 0.5, 2},
      {"clamp", {{257}}, [](L in) { return clamp(in[0], -0.5, 1.0); }},
      {"add_broadcast", {{8, 1, 5}, {3, 1}}, [](L in) { return add(in[0], in[1], 0.5); }},
      {"sub_noncontig", {{6, 7}, {7, 6}}, [](L in) { return tr(in[0]) - in[1]; }},
      {"mul_scalar", {{1023}}, [](L in) { return in[0] * 3.0 + 1.0; }},
      {"div", {{40, 3}, {3}}, [](L in) { return in[0] / in[1]; }, 0.5, 2},
      {"pow", {{50}, {50}}, [](L in) { return pow(in[0], in[1]); }, 0.5, 2},
      {"maximum", {{16, 16}, {16}}, [](L in) { return maximum(in[0], in[1]); }},
      {"minimum", {{16, 16}, {16, 1}}, [](L in) { return minimum(in[0], in[1]); }},
      {"where", {{64}, {64}}, [](L in) { return where(gt(in[0], 0.0), in[0], in[1]); }},
      {"sum_all", {{1 << 18}}, [](L in) { return sum(in[0]); }},
      {"sum_rows", {{37, 1000}}, [](L in) { return sum(in[0], {1}); }},
      {"sum_cols", {{1000, 37}}, [](L in) { return sum(in[0], {0}); }},
      {"sum_mixed", {{4, 5, 6}}, [](L in) { return sum(in[0], {0, 2}, true); }},
      // The column split (r across blocks) and the vector row kernel on misaligned rows.
      {"sum_cols_split", {{4096, 10}}, [](L in) { return sum(in[0], {0}); }},
      {"mean_cols_split", {{3000, 3, 7}}, [](L in) { return mean(in[0], {1, 0}); }},
      {"max_cols_split", {{2000, 9}}, [](L in) { return max(in[0], {0}); }},
      {"sum_rows_misaligned", {{5, 4099}}, [](L in) { return sum(in[0], {1}); }},
      {"mean_rows_split", {{2, 70001}}, [](L in) { return mean(in[0], {1}); }},
      {"mean_noncontig", {{30, 40}}, [](L in) { return mean(tr(in[0]), {1}); }},
      {"max_dim", {{20, 33}}, [](L in) { return max(in[0], {1}); }},
      {"min_all", {{4099}}, [](L in) { return min(in[0]); }},
      {"cast_roundtrip", {{100}}, [](L in) { return in[0].to(DType::f16).to(in[0].dtype()) * 2.0; }},
  };
}

class OpsGpuParity : public ::testing::TestWithParam<DType> {};

TEST_P(OpsGpuParity, ForwardAndBackwardMatchCpu) {
  EMBER_REQUIRE_GPU();
  DType dt = GetParam();
  double tol = dt == DType::f64 ? 1e-10 : 1e-4;
  Device gpu(DeviceType::cuda, 0);
  manual_seed(11);
  for (const OpCase& c : cases()) {
    SCOPED_TRACE(c.name);
    TensorList cpu_in, gpu_in;
    for (const Shape& s : c.inputs) {
      Tensor base = uniform(s, c.lo, c.hi, {.dtype = dt});
      cpu_in.push_back(base.clone().requires_grad_());
      gpu_in.push_back(base.to(gpu).requires_grad_());
    }
    Tensor yc = c.fn(cpu_in), yg = c.fn(gpu_in);
    ASSERT_EQ(yg.device(), gpu);
    EXPECT_TRUE(all_close(yg.cpu(), yc, tol, tol));
    Tensor g = uniform(yc.shape(), -1, 1, {.dtype = dt});
    yc.backward(g);
    yg.backward(g.to(gpu));
    for (size_t i = 0; i < cpu_in.size(); ++i) {
      ASSERT_TRUE(gpu_in[i].grad().defined()) << "input " << i;
      EXPECT_TRUE(all_close(gpu_in[i].grad().cpu(), cpu_in[i].grad(), tol, tol)) << "grad of input " << i;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, OpsGpuParity, ::testing::Values(DType::f32, DType::f64),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

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
