// Sweeps for the bugs only a GPU shows: (1) every vectorized kernel on views that start 0-15
// elements past an aligned address, with lengths 0-67 and 2^k +- 1, bit for bit against
// the CPU and with a guard zone around the view that must stay untouched; (2) shapes on
// both sides of each block-size switch point (softmax/CE rows, reduction splits, batch
// norm blocks), against the CPU and bitwise repeatable; (3) more than 2^31 elements, where
// 32-bit index math would wrap. Meant to run under compute-sanitizer (racecheck, synccheck,
// memcheck with EMBER_CUDA_ALLOC=direct) as well. Every test skips visibly without a GPU.
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>

#if EMBER_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

#include "test_util.h"

namespace ember {
namespace {

using test::all_close;
const Device kGpu("cuda:0");
constexpr int64_t kGuard = 16;  // elements on each side of a view

using test::bytes_of;

// scripts/gpu_check.sh reruns the gpu tests under compute-sanitizer with the caching
// allocator off; there every launch is many times slower, so the sweeps thin out (every
// third offset, shorter powers of two) and the 2^31 test skips.
bool sanitizer_run() {
  const char* e = std::getenv("EMBER_CUDA_ALLOC");
  return e && std::string(e) == "direct";
}

std::vector<int64_t> sweep_lengths() {
  std::vector<int64_t> n;
  for (int64_t i = 0; i <= 67; ++i) n.push_back(i);
  const int kmax = sanitizer_run() ? 10 : 13;
  for (int k = 7; k <= kmax; ++k)  // tails of the vector body and of multi-block grids
    for (int64_t d : {-1, 0, 1}) n.push_back((int64_t(1) << k) + d);
  return n;
}

std::vector<int64_t> sweep_offsets() {
  std::vector<int64_t> o;
  for (int64_t i = 0; i < 16; i += sanitizer_run() ? 3 : 1) o.push_back(i);
  if (o.back() != 15) o.push_back(15);
  return o;
}

/// n values valid in every dtype: in [0, 250), with fractions that f16/bf16 must round.
Tensor values(int64_t n, DType dt, int salt) {
  std::vector<double> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[size_t(i)] = double((i * 37 + salt * 11) % 239) + double((i + salt) % 7) / 7.0;
  return from_vector(v, {n}, {.dtype = dt});
}

/// The same values `off` elements into a zeroed buffer with kGuard spare elements after
/// the view, on device d; `buffer` receives the whole buffer (guard zone included).
Tensor placed(const Tensor& v, int64_t off, Device d, Tensor* buffer = nullptr) {
  int64_t n = v.numel();
  Tensor buf = zeros({off + n + kGuard}, {.dtype = v.dtype(), .device = d});
  Tensor view = buf.narrow(0, off, n);
  view.copy_(v.to(d));
  if (buffer) *buffer = buf;
  return view;
}

/// Stops a sweep after a few failures, so one bug does not print thousands of lines.
struct FailureBudget {
  int left = 5;
  bool spent() const { return left <= 0; }
  void check(bool ok, const std::string& what) {
    if (ok) return;
    ADD_FAILURE() << what;
    --left;
  }
};

std::string where(const char* op, DType dt, int64_t off, int64_t n) {
  return std::string(op) + " " + dtype_name(dt) + " offset " + std::to_string(off) + " length " + std::to_string(n);
}

// ---- (1) alignment and tail sweep

struct SweepOp {
  const char* name;
  std::vector<DType> dtypes;
  // Out of place on views a, b of one device; the CPU twin gets CPU views.
  std::function<Tensor(const Tensor&, const Tensor&)> fn;
};

TEST(SweepGpu, OutOfPlaceKernelsOnOffsetViewsAreBitExact) {
  EMBER_REQUIRE_GPU();
  NoGradGuard ng;
  const std::vector<DType> floats{DType::f32, DType::f16, DType::bf16};
  const std::vector<DType> numeric{DType::f32, DType::f16, DType::bf16, DType::i32, DType::u8};
  auto scalar = [](const Tensor& like, double v) { return full({}, v, {.dtype = like.dtype(), .device = like.device()}); };
  const std::vector<SweepOp> ops = {
      {"add (both vectors)", numeric, [](const Tensor& a, const Tensor& b) { return add(a, b); }},
      {"mul (vector, scalar)", numeric, [&](const Tensor& a, const Tensor&) { return mul(a, scalar(a, 3.0)); }},
      {"sub (scalar, vector)", floats, [&](const Tensor& a, const Tensor&) { return sub(scalar(a, 2.5), a); }},
      {"div", floats, [](const Tensor& a, const Tensor& b) { return div(a, b + 1.0); }},
      {"maximum", numeric, [](const Tensor& a, const Tensor& b) { return maximum(a, b); }},
      {"neg", floats, [](const Tensor& a, const Tensor&) { return neg(a); }},
      {"abs", floats, [](const Tensor& a, const Tensor&) { return abs(a); }},
      {"relu", floats, [](const Tensor& a, const Tensor&) { return relu(a); }},
      {"sqrt", floats, [](const Tensor& a, const Tensor&) { return sqrt(a); }},
      {"contiguous copy", numeric, [](const Tensor& a, const Tensor&) { return a.clone(); }},
  };
  FailureBudget budget;
  for (const SweepOp& op : ops) {
    for (DType dt : op.dtypes) {
      for (int64_t n : sweep_lengths()) {
        Tensor va = values(n, dt, 1), vb = values(n, dt, 2);
        Tensor want = op.fn(va, vb);
        for (int64_t off : sweep_offsets()) {
          if (budget.spent()) break;
          Tensor a = placed(va, off, kGpu), b = placed(vb, (off * 7 + 3) % 16, kGpu);
          budget.check(bytes_of(op.fn(a, b)) == bytes_of(want), where(op.name, dt, off, n));
        }
      }
    }
  }
  // Every cast pair, from offset views (the copy kernel's vector path needs both ends aligned).
  const DType all[] = {DType::f32, DType::f64, DType::f16, DType::bf16, DType::i32, DType::i64, DType::u8, DType::b8};
  for (DType from : all) {
    for (DType to : all) {
      for (int64_t n : sweep_lengths()) {
        Tensor v = values(n, from, 3);
        Tensor want = v.to(to);
        for (int64_t off : sweep_offsets()) {
          if (budget.spent()) break;
          std::string what = where("cast", from, off, n) + " to " + dtype_name(to);
          budget.check(bytes_of(placed(v, off, kGpu).to(to)) == bytes_of(want), what);
        }
      }
    }
  }
}

TEST(SweepGpu, InPlaceKernelsWriteExactlyTheirOffsetView) {
  EMBER_REQUIRE_GPU();
  NoGradGuard ng;
  const std::vector<DType> dts{DType::f32, DType::f16, DType::bf16, DType::u8};
  using InPlace = std::function<void(Tensor&, const Tensor&)>;
  const std::vector<std::pair<const char*, InPlace>> ops = {
      {"fill_", [](Tensor& a, const Tensor&) { a.fill_(3.25); }},
      {"add_", [](Tensor& a, const Tensor& b) { a.add_(b); }},
      {"mul_ scalar", [](Tensor& a, const Tensor&) { a.mul_(2.0); }},
      {"copy_ (cast from f32)", [](Tensor& a, const Tensor& b) { a.copy_(b.to(DType::f32)); }},
      {"copy_ (same dtype, both offset)", [](Tensor& a, const Tensor& b) { a.copy_(b); }},
  };
  FailureBudget budget;
  for (const auto& [name, fn] : ops) {
    for (DType dt : dts) {
      for (int64_t n : sweep_lengths()) {
        Tensor va = values(n, dt, 3), vb = values(n, dt, 4);
        for (int64_t off : sweep_offsets()) {
          if (budget.spent()) break;
          Tensor cbuf, gbuf;
          Tensor ca = placed(va, off, kCPU, &cbuf), cb = placed(vb, (off + 5) % 16, kCPU);
          Tensor ga = placed(va, off, kGpu, &gbuf), gb = placed(vb, (off + 5) % 16, kGpu);
          fn(ca, cb);
          fn(ga, gb);
          // The whole buffer: a write past either end of the view shows in the guard zone.
          budget.check(bytes_of(gbuf) == bytes_of(cbuf), where(name, dt, off, n));
        }
      }
    }
  }
}

TEST(SweepGpu, SgdAndDropoutOnOffsetViews) {
  EMBER_REQUIRE_GPU();
  FailureBudget budget;
  for (DType dt : {DType::f32, DType::f16, DType::bf16}) {
    for (int64_t n : sweep_lengths()) {
      if (n == 0) continue;
      Tensor init = values(n, dt, 5) / 100.0, grad = values(n, dt, 6) / 100.0, x = values(n, dt, 7);
      for (int64_t off : sweep_offsets()) {
        if (budget.spent()) break;
        Tensor cbuf, gbuf;
        Tensor pc = placed(init, off, kCPU, &cbuf).detach(), pg = placed(init, off, kGpu, &gbuf).detach();
        pc.requires_grad_();
        pg.requires_grad_();
        optim::SGDOptions o{.lr = 0.1, .momentum = 0.9, .weight_decay = 1e-2};
        optim::SGD a({pc}, o), b({pg}, o);
        for (int s = 0; s < 2; ++s) {
          pc.set_grad(grad);
          pg.set_grad(grad.to(kGpu));
          a.step();
          b.step();
        }
        // sgd_apply may contract to FMA differently on the two compilers: close, not equal.
        double tol = dt == DType::f32 ? 1e-6 : 1e-2;
        budget.check(all_close(gbuf.cpu(), cbuf, tol, tol), where("sgd", dt, off, n));
        budget.check(bytes_of(gbuf.narrow(0, off + n, kGuard)) == bytes_of(zeros({kGuard}, {.dtype = dt})),
                     where("sgd guard zone", dt, off, n));

        NoGradGuard ng;
        manual_seed(123);
        Tensor yc = dropout(placed(x, off, kCPU), 0.3, true);
        manual_seed(123);
        Tensor yg = dropout(placed(x, off, kGpu), 0.3, true);
        budget.check(bytes_of(yg) == bytes_of(yc), where("dropout", dt, off, n));
      }
    }
  }
}

TEST(SweepGpu, RowBroadcastAndStridedBinaryOpsAreBitExact) {
  EMBER_REQUIRE_GPU();
  NoGradGuard ng;
  FailureBudget budget;
  for (DType dt : {DType::f32, DType::f16}) {
    for (int64_t m : sweep_lengths()) {
      if (m == 0) continue;
      Tensor va = values(3 * m, dt, 1).reshape({3, m}), vb = values(m, dt, 2);
      for (int64_t off = 0; off < 16 && !budget.spent(); off += 5) {
        Tensor a = placed(va.reshape({3 * m}), off, kGpu).reshape({3, m}), b = placed(vb, (off + 3) % 16, kGpu);
        // The bias add (row kernel), both operand orders, and a transposed (strided) operand.
        budget.check(bytes_of(add(a, b)) == bytes_of(add(va, vb)), where("row + bias", dt, off, m));
        budget.check(bytes_of(sub(b, a)) == bytes_of(sub(vb, va)), where("bias - row", dt, off, m));
        budget.check(bytes_of(mul(a.t(), a.t())) == bytes_of(mul(va.t(), va.t())), where("strided mul", dt, off, m));
      }
    }
  }
}

// ---- (2) block-size switch points

TEST(SweepGpu, SoftmaxAndCrossEntropyAroundRowKernelSwitch) {
  EMBER_REQUIRE_GPU();
  manual_seed(21);
  // A warp per row up to C = 1024 (kWarpRowMaxC), a 512-thread block beyond.
  for (int64_t C : {1, 31, 32, 33, 1023, 1024, 1025, 4097}) {
    for (int64_t inner : {1, 3}) {
      Shape shape = inner == 1 ? Shape{7, C} : Shape{2, C, inner};
      Tensor x = randn(shape), gy = randn(shape);
      Tensor lab = randint(0, C, inner == 1 ? Shape{7} : Shape{2, inner});
      auto run = [&](Device d) {
        Tensor xi = x.to(d).requires_grad_();
        Tensor s = softmax(xi, 1), ls = log_softmax(xi, 1);
        Tensor ce = cross_entropy(xi, lab.to(d));
        TensorList g = autograd::grad({s, ce}, {xi}, {gy.to(d), ones({}, {.device = d})});
        return TensorList{s, ls, ce, g[0]};
      };
      TensorList c = run(kCPU), a = run(kGpu), b = run(kGpu);
      const char* names[] = {"softmax", "log_softmax", "cross_entropy", "grad"};
      for (size_t k = 0; k < 4; ++k) {
        EXPECT_TRUE(all_close(a[k].cpu(), c[k], 1e-5, 1e-6)) << names[k] << " C=" << C << " inner=" << inner;
        EXPECT_EQ(bytes_of(a[k]), bytes_of(b[k])) << names[k] << " not repeatable, C=" << C;
      }
    }
  }
}

TEST(SweepGpu, ReductionsAroundBlockAndSplitSwitches) {
  EMBER_REQUIRE_GPU();
  manual_seed(22);
  // Rows: 256-thread blocks, split across blocks from r = 16 * 256 = 4096 when rows are few.
  for (int64_t r : {1, 255, 256, 257, 4095, 4096, 4097, 65537}) {
    for (int64_t outer : {1, 3}) {
      Tensor x = randn({outer, r}, {.dtype = DType::f32});
      Tensor xg = x.to(kGpu);
      std::string tag = "r=" + std::to_string(r) + " outer=" + std::to_string(outer);
      EXPECT_TRUE(all_close(sum(xg, {1}).cpu(), sum(x, {1}), 1e-4, 1e-4)) << "sum " << tag;
      EXPECT_TRUE(all_close(mean(xg, {1}).cpu(), mean(x, {1}), 1e-5, 1e-6)) << "mean " << tag;
      EXPECT_TRUE(all_close(max(xg, {1}).cpu(), max(x, {1}), 0, 0)) << "max " << tag;
      EXPECT_EQ(argmax(xg, 1).to_vector<int64_t>(), argmax(x, 1).to_vector<int64_t>()) << "argmax " << tag;
      EXPECT_EQ(bytes_of(sum(xg, {1})), bytes_of(sum(xg, {1}))) << "sum not repeatable " << tag;
      // Columns: one thread per column, serial over r.
      Tensor xt = randn({r, outer * 5});
      EXPECT_TRUE(all_close(sum(xt.to(kGpu), {0}).cpu(), sum(xt, {0}), 1e-4, 1e-4)) << "sum cols " << tag;
    }
  }
}

TEST(SweepGpu, BatchNormAroundItsBlockSize) {
  EMBER_REQUIRE_GPU();
  manual_seed(23);
  // 512-thread blocks over N x spatial per channel; with few channels and many elements
  // per channel, the (channel x range) grid (the last three shapes), in training and eval.
  struct BnShape {
    int64_t n, channels, spatial;
  };
  std::vector<BnShape> shapes;
  for (int64_t spatial : {1, 511, 512, 513, 1025})
    for (int64_t channels : {1, 200}) shapes.push_back({3, channels, spatial});
  shapes.push_back({16, 3, 4097});
  shapes.push_back({8, 32, 1024});
  shapes.push_back({64, 1, 2048});
  for (bool training : {true, false}) {
    for (const BnShape& sh : shapes) {
      const int64_t spatial = sh.spatial, channels = sh.channels;
      if (!training && sh.n == 3) continue;  // eval: the new grid only
      Tensor x = randn({sh.n, channels, 1, spatial}), w = randn({channels}), b = randn({channels});
      Tensor gy = randn({sh.n, channels, 1, spatial});
      Tensor rm0 = randn({channels}) * 0.1, rv0 = rand({channels}) + 0.5;
      auto run = [&](Device d) {
        Tensor xi = x.to(d).requires_grad_(), wi = w.to(d).requires_grad_(), bi = b.to(d).requires_grad_();
        Tensor rm = rm0.to(d).clone(), rv = rv0.to(d).clone();
        Tensor y = batch_norm(xi, rm, rv, wi, bi, training, 0.1, 1e-5);
        TensorList g = autograd::grad({y}, {xi, wi, bi}, {gy.to(d)});
        return TensorList{y, g[0], g[1], g[2], rm, rv};
      };
      TensorList c = run(kCPU), a = run(kGpu), a2 = run(kGpu);
      for (size_t k = 0; k < c.size(); ++k) {
        EXPECT_TRUE(all_close(a[k].cpu(), c[k], 1e-3, 1e-4))
            << "output " << k << " n=" << sh.n << " spatial=" << spatial << " channels=" << channels
            << " training=" << training;
        EXPECT_EQ(bytes_of(a[k]), bytes_of(a2[k])) << "output " << k << " not repeatable";
      }
    }
  }
}

// ---- (3) more than 2^31 elements

TEST(SweepGpu, MoreThanTwoToThe31ElementsKeepTheirTail) {
  EMBER_REQUIRE_GPU();
  if (sanitizer_run()) GTEST_SKIP() << "skipped with EMBER_CUDA_ALLOC=direct (the sanitizer rerun): too slow there";
#if EMBER_WITH_CUDA
  const int64_t n = (int64_t(1) << 31) + 17;
  size_t free_b = 0, total_b = 0;
  ASSERT_EQ(cudaMemGetInfo(&free_b, &total_b), cudaSuccess);
  // u8 x 4 tensors + f32 x 2 (8.6 GB each) at most at once, with room to spare.
  if (free_b < (size_t(24) << 30)) GTEST_SKIP() << "needs 24 GiB of free GPU memory, has " << (free_b >> 30) << " GiB";
  NoGradGuard ng;
  auto tail = [&](const Tensor& t) { return t.narrow(0, n - 4, 4).to_vector<double>(); };
  Tensor a = full({n}, 1.0, {.dtype = DType::u8, .device = kGpu});
  a.narrow(0, n - 3, 1).fill_(7.0);  // past 2^31: a wrapped index would miss it
  {
    Tensor s = add(a, a);
    EXPECT_EQ(tail(s), (std::vector<double>{2, 14, 2, 2}));
    Tensor w = where(gt(a, 5.0), a, full({}, 0.0, {.dtype = DType::u8, .device = kGpu}));
    EXPECT_EQ(tail(w), (std::vector<double>{0, 7, 0, 0}));
    EXPECT_EQ(sum(a).item<int64_t>(), n + 6);
    EXPECT_EQ(argmax(a).item<int64_t>(), n - 3);
    Tensor picked = index_select(a, 0, from_vector<int64_t>({n - 3, 0, n - 1}, {3}, {.dtype = DType::i64}).to(kGpu));
    EXPECT_EQ(picked.to_vector<double>(), (std::vector<double>{7, 1, 1}));
  }
  {
    Tensor f = a.to(DType::f32);  // cast over the whole range
    a = Tensor();
    EXPECT_EQ(tail(f), (std::vector<double>{1, 7, 1, 1}));
    Tensor r = relu(f - 2.0);
    EXPECT_EQ(tail(r), (std::vector<double>{0, 5, 0, 0}));
    r.fill_(-1.0);
    EXPECT_EQ(tail(r), (std::vector<double>{-1, -1, -1, -1}));
    EXPECT_EQ(argmax(f).item<int64_t>(), n - 3);
    EXPECT_NEAR(sum(f).item<double>(), double(n + 6), double(n) * 1e-4);  // f32 partials round
    Tensor picked = index_select(f, 0, from_vector<int64_t>({n - 3, n - 1}, {2}, {.dtype = DType::i64}).to(kGpu));
    EXPECT_EQ(picked.to_vector<double>(), (std::vector<double>{7, 1}));
  }
#endif
}

}  // namespace
}  // namespace ember
