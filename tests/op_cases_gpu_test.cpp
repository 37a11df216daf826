// The device-parity tier of the op-case table (tests/op_cases.h), one test per case and dtype:
//   OpParity/<case>_<dtype>          CPU vs cuda:0, the forward and every input gradient;
//   OpParityDirectConv/<case>_f64    the same for conv2d with cuDNN off (ember's direct
//                                    kernels, the path of a build without cuDNN).
// Skips visibly without a GPU. The CPU tiers (gradcheck, reference) are op_cases_test.cpp.
#include "op_cases.h"
#include "test_util.h"

namespace ember::test {
namespace {

constexpr uint64_t kSeed = 1234;

struct ParityParam {
  const OpCase* c;
  DType dtype;
  Tol tol;
};

std::vector<ParityParam> parity_params(bool conv_only) {
  std::vector<ParityParam> v;
  for (const OpCase& c : op_cases()) {
    if (conv_only) {
      if (c.name.rfind("conv2d_", 0) == 0) v.push_back({&c, DType::f64, c.parity.at(DType::f64)});
      continue;
    }
    for (const auto& [dt, tol] : c.parity) v.push_back({&c, dt, tol});
  }
  return v;
}

void PrintTo(const ParityParam& p, std::ostream* os) { *os << p.c->name << " " << dtype_name(p.dtype); }

std::string parity_name(const ::testing::TestParamInfo<ParityParam>& info) {
  return info.param.c->name + "_" + dtype_name(info.param.dtype);
}

void expect_parity(const ParityParam& p) {
  const OpCase& c = *p.c;
  const Device gpu(DeviceType::cuda, 0);
  manual_seed(kSeed);
  TensorList cpu_in = make_inputs(c, c.shapes, p.dtype);
  TensorList gpu_in, cpu_need, gpu_need;
  for (size_t i = 0; i < cpu_in.size(); ++i) {
    Tensor g = to_device_keeping_layout(cpu_in[i], gpu);
    if (differentiable(c, cpu_in, i)) {
      cpu_in[i].requires_grad_();
      g.requires_grad_();
      cpu_need.push_back(cpu_in[i]);
      gpu_need.push_back(g);
    }
    gpu_in.push_back(g);
  }
  Tensor out_c = c.fn(cpu_in), out_g = c.fn(gpu_in);
  ASSERT_TRUE(out_g.is_cuda());
  ASSERT_EQ(out_g.dtype(), out_c.dtype());
  double frt = c.exact_forward ? 0 : p.tol.rtol, fat = c.exact_forward ? 0 : p.tol.atol;
  EXPECT_TRUE(all_close(out_g.cpu().to(DType::f64), out_c.to(DType::f64), frt, fat)) << "forward";
  if (cpu_need.empty()) return;
  Tensor grad = randn(out_c.shape(), {.dtype = out_c.dtype()});
  TensorList gc = autograd::grad({out_c}, cpu_need, {grad}, false, /*allow_unused=*/true);
  TensorList gg = autograd::grad({out_g}, gpu_need, {grad.to(gpu)}, false, /*allow_unused=*/true);
  ASSERT_EQ(gc.size(), gg.size());
  for (size_t i = 0; i < gc.size(); ++i) {
    ASSERT_EQ(gc[i].defined(), gg[i].defined()) << "gradient " << i;
    if (!gc[i].defined()) continue;
    EXPECT_TRUE(gg[i].is_cuda());
    EXPECT_TRUE(all_close(gg[i].cpu().to(DType::f64), gc[i].to(DType::f64), p.tol.rtol, p.tol.atol))
        << "gradient of differentiable input " << i;
  }
}

class OpParity : public ::testing::TestWithParam<ParityParam> {};

TEST_P(OpParity, ForwardAndBackwardMatchCpu) {
  EMBER_REQUIRE_GPU();
  expect_parity(GetParam());
}

INSTANTIATE_TEST_SUITE_P(Table, OpParity, ::testing::ValuesIn(parity_params(false)), parity_name);

// The path of a build without cuDNN, forced on.
class OpParityDirectConv : public ::testing::TestWithParam<ParityParam> {};

TEST_P(OpParityDirectConv, ForwardAndBackwardMatchCpu) {
  EMBER_REQUIRE_GPU();
  struct CudnnOff {  // restored even when an assertion returns early
    bool was = cudnn::enabled();
    CudnnOff() { cudnn::set_enabled(false); }
    ~CudnnOff() { cudnn::set_enabled(was); }
  } off;
  expect_parity(GetParam());
}

INSTANTIATE_TEST_SUITE_P(Table, OpParityDirectConv, ::testing::ValuesIn(parity_params(true)), parity_name);

}  // namespace
}  // namespace ember::test
