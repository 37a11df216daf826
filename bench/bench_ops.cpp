// Every case of the op-case table (tests/op_cases.cpp) at its parity shapes, on every
// device: the forward alone, and the forward plus the backward to every differentiable
// input. f32, or for the table's 16-bit-only rows their first dtype. Named
// <family>/<case>/<dtype>/<fwd|fwd_bwd>/<device>, so --benchmark_filter picks a case
// (`/relu/`), a family (`^softmax/`) or a device (`/cuda$`).
#include "bench/bench_util.h"
#include "tests/op_cases.h"

namespace ember::bench {
namespace {

using test::OpCase;

DType bench_dtype(const OpCase& c) { return c.parity.count(DType::f32) ? DType::f32 : c.parity.begin()->first; }

/// The case's inputs on d (views stay views, as in the parity tier); `need` gets the
/// differentiable ones, requiring grad, when `with_grad`.
TensorList inputs_on(const OpCase& c, Device d, bool with_grad, TensorList* need) {
  manual_seed(1234);
  TensorList cpu = test::make_inputs(c, c.shapes, bench_dtype(c));
  TensorList in;
  for (size_t i = 0; i < cpu.size(); ++i) {
    Tensor t = test::to_device_keeping_layout(cpu[i], d);
    if (with_grad && test::differentiable(c, cpu, i)) {
      t.requires_grad_();
      need->push_back(t);
    }
    in.push_back(t);
  }
  return in;
}

void bm_forward(benchmark::State& state, const OpCase* c, Device d) {
  TensorList in = inputs_on(*c, d, false, nullptr);
  NoGradGuard ng;
  {
    Tensor warm = c->fn(in);  // first touch, allocator warm-up
    sync(d);
  }
  for (auto _ : state) {
    Tensor y = c->fn(in);
    sync(d);
    benchmark::DoNotOptimize(y.data_ptr());
  }
}

void bm_forward_backward(benchmark::State& state, const OpCase* c, Device d) {
  TensorList need;
  TensorList in = inputs_on(*c, d, true, &need);
  Tensor gy;
  {
    Tensor warm = c->fn(in);
    gy = randn(warm.shape(), {.dtype = warm.dtype(), .device = d});
    autograd::grad({warm}, need, {gy}, false, /*allow_unused=*/true);
    sync(d);
  }
  for (auto _ : state) {
    Tensor y = c->fn(in);
    TensorList g = autograd::grad({y}, need, {gy}, false, /*allow_unused=*/true);
    sync(d);
    benchmark::DoNotOptimize(g.data());
  }
}

void register_all() {
  for (Device d : bench_devices()) {
    for (const OpCase& c : test::op_cases()) {
      std::string base = std::string(test::family_name(c.family)) + "/" + c.name + "/" +
                         dtype_name(bench_dtype(c)) + "/";
      const OpCase* cp = &c;
      benchmark::RegisterBenchmark((base + "fwd/" + device_tag(d)).c_str(),
                                   [cp, d](benchmark::State& s) { bm_forward(s, cp, d); })
          ->UseRealTime()
          ->Unit(benchmark::kMicrosecond);
      benchmark::RegisterBenchmark((base + "fwd_bwd/" + device_tag(d)).c_str(),
                                   [cp, d](benchmark::State& s) { bm_forward_backward(s, cp, d); })
          ->UseRealTime()
          ->Unit(benchmark::kMicrosecond);
    }
  }
}

}  // namespace
}  // namespace ember::bench

EMBER_BENCH_MAIN(ember::bench::register_all)
