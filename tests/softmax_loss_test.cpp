// softmax/log_softmax, cross_entropy, nll_loss, mse_loss, dropout, var/std/logsumexp on the
// CPU against hand-written f64 references and hand-computed gradients. Their gradchecks are
// rows of the op-case table (tests/op_cases.cpp).
#include <cmath>
#include <limits>
#include <string>

#include "kernels/dropout.h"
#include "test_util.h"

namespace ember {
namespace {

using test::all_close;

Tensor randn64(const Shape& s) { return randn(s, {.dtype = DType::f64}); }
// from_vector makes f32 unless told otherwise: these pin the dtype.
Tensor f64v(const std::vector<double>& v, Shape s = {}) {
  if (s.empty()) s = {int64_t(v.size())};
  return from_vector(v, s, {.dtype = DType::f64});
}
Tensor labels_of(const std::vector<int64_t>& v, Shape s = {}) {
  if (s.empty()) s = {int64_t(v.size())};
  return from_vector(v, s, {.dtype = DType::i64});
}

template <class F>
void expect_error(F fn, std::vector<std::string> parts) {
  try {
    fn();
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    for (const auto& p : parts)
      EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what() << " lacks " << p;
  }
}

// Row-major element index helpers for an (outer, C, inner) split around `dim`.
struct Split {
  int64_t outer = 1, C = 1, inner = 1;
};
Split split(const Shape& s, int64_t dim) {
  Split r;
  for (int64_t d = 0; d < int64_t(s.size()); ++d) {
    if (d < dim) r.outer *= s[size_t(d)];
    else if (d == dim) r.C = s[size_t(d)];
    else r.inner *= s[size_t(d)];
  }
  return r;
}

// softmax / log_softmax in f64 with plain loops (long double sums).
Tensor ref_softmax(const Tensor& x, int64_t dim, bool log) {
  std::vector<double> v = x.to_vector<double>(), out(v.size());
  Split s = split(x.shape(), dim);
  for (int64_t o = 0; o < s.outer; ++o)
    for (int64_t i = 0; i < s.inner; ++i) {
      auto at = [&](int64_t c) { return size_t(o * s.C * s.inner + c * s.inner + i); };
      double mx = -INFINITY;
      for (int64_t c = 0; c < s.C; ++c) mx = std::max(mx, v[at(c)]);
      long double sum = 0;
      for (int64_t c = 0; c < s.C; ++c) sum += std::exp((long double)(v[at(c)] - mx));
      for (int64_t c = 0; c < s.C; ++c)
        out[at(c)] = log ? double(v[at(c)] - mx - std::log(sum))
                         : double(std::exp((long double)(v[at(c)] - mx)) / sum);
    }
  return from_vector(out, x.shape(), {.dtype = DType::f64});
}

// ---- softmax

TEST(Softmax, MatchesReferenceAlongEveryDim) {
  manual_seed(11);
  Tensor x = randn64({3, 4, 5});
  for (int64_t d : {0, 1, 2, -1}) {
    int64_t w = d < 0 ? d + 3 : d;
    EXPECT_TRUE(all_close(softmax(x, d), ref_softmax(x, w, false), 1e-12, 1e-14)) << d;
    EXPECT_TRUE(all_close(log_softmax(x, d), ref_softmax(x, w, true), 1e-12, 1e-14)) << d;
  }
  // Hand values: softmax([0, ln 3]) = [0.25, 0.75].
  Tensor h = softmax(f64v({0.0, std::log(3.0)}), 0);
  EXPECT_NEAR(h.to_vector<double>()[0], 0.25, 1e-15);
  EXPECT_NEAR(h.to_vector<double>()[1], 0.75, 1e-15);
  // Rows sum to one.
  Tensor s = sum(softmax(randn({7, 33}), 1), {1});
  EXPECT_TRUE(all_close(s, ones({7}), 1e-6, 1e-6));
  // A 0-d tensor is a row of one.
  EXPECT_EQ(softmax(scalar_tensor(3.0), 0).item(), 1.0);
  EXPECT_EQ(log_softmax(scalar_tensor(3.0), -1).item(), 0.0);
}

TEST(Softmax, StableForLargeValuesAndInf) {
  Tensor x = from_vector<float>({1000.f, 1001.f, 1002.f});
  std::vector<double> y = softmax(x, 0).to_vector<double>();
  double e = std::exp(1.0), z = 1 + e + e * e;
  EXPECT_NEAR(y[0], 1 / z, 1e-6);
  EXPECT_NEAR(y[2], e * e / z, 1e-6);
  std::vector<double> ly = log_softmax(x, 0).to_vector<double>();
  EXPECT_NEAR(ly[0], -std::log(z), 1e-4);  // f32 near 1000: ulp 6e-5
  // -inf entries get probability 0, and log-probability -inf.
  Tensor xi = from_vector<float>({0.f, -INFINITY, 0.f});
  EXPECT_EQ(softmax(xi, 0).to_vector<double>(), (std::vector<double>{0.5, 0.0, 0.5}));
  EXPECT_TRUE(std::isinf(log_softmax(xi, 0).to_vector<double>()[1]));
}

TEST(Softmax, NonContiguousAndDtypes) {
  manual_seed(12);
  Tensor base = randn64({5, 6});
  Tensor t = make_view(base, {6, 5}, {1, 6}, 0);  // transposed view
  EXPECT_TRUE(all_close(softmax(t, 1), ref_softmax(t.contiguous(), 1, false), 1e-12, 1e-14));
  EXPECT_TRUE(all_close(log_softmax(t, 0), ref_softmax(t.contiguous(), 0, true), 1e-12, 1e-14));
  Tensor x = randn64({4, 40});
  Tensor ref = ref_softmax(x, 1, false), lref = ref_softmax(x, 1, true);
  struct Case {
    DType dt;
    double tol;
  } cases[] = {{DType::f32, 1e-6}, {DType::f16, 2e-3}, {DType::bf16, 2e-2}};
  for (const Case& c : cases) {
    Tensor xc = x.to(c.dt);
    Tensor y = softmax(xc, 1);
    EXPECT_EQ(y.dtype(), c.dt);
    EXPECT_TRUE(all_close(y.to(DType::f64), ref_softmax(xc.to(DType::f64), 1, false), c.tol, c.tol))
        << dtype_name(c.dt);
    EXPECT_TRUE(all_close(log_softmax(xc, 1).to(DType::f64), ref_softmax(xc.to(DType::f64), 1, true),
                          c.tol, 4 * c.tol))
        << dtype_name(c.dt);
  }
  expect_error([] { softmax(zeros({2, 3}), 2); }, {"softmax", "2"});
  expect_error([] { softmax(zeros({2, 3}, {.dtype = DType::i64}), 1); }, {"floating", "i64"});
}

// ---- cross entropy / nll

// PyTorch's definition, in f64 loops: per-row (1-eps)*nll + eps*mean_c(-log p_c), 0 for
// ignored rows; mean divides by the non-ignored count.
Tensor ref_cross_entropy(const Tensor& logits, const std::vector<int64_t>& labels,
                         Reduction red, double eps, int64_t ignore) {
  Split s = logits.dim() == 1 ? Split{1, logits.size(0), 1} : split(logits.shape(), 1);
  Tensor lp = ref_softmax(logits, logits.dim() == 1 ? 0 : 1, true);
  std::vector<double> v = lp.to_vector<double>();
  std::vector<double> rows;
  double total = 0, count = 0;
  for (int64_t o = 0; o < s.outer; ++o)
    for (int64_t i = 0; i < s.inner; ++i) {
      int64_t y = labels[size_t(o * s.inner + i)];
      double l = 0;
      if (y != ignore) {
        double smooth = 0;
        for (int64_t c = 0; c < s.C; ++c) smooth -= v[size_t(o * s.C * s.inner + c * s.inner + i)];
        l = (1 - eps) * -v[size_t(o * s.C * s.inner + y * s.inner + i)] + eps * smooth / double(s.C);
        count += 1;
      }
      rows.push_back(l);
      total += l;
    }
  if (red == Reduction::sum) return scalar_tensor(total, {.dtype = DType::f64});
  if (red == Reduction::mean) return scalar_tensor(total / count, {.dtype = DType::f64});
  Shape shape;
  if (logits.dim() > 1) {
    shape.push_back(logits.size(0));
    for (int64_t d = 2; d < logits.dim(); ++d) shape.push_back(logits.size(d));
  }
  return from_vector(rows, shape, {.dtype = DType::f64});
}

TEST(CrossEntropy, MatchesPyTorchDefinition) {
  manual_seed(14);
  Tensor x = randn64({6, 5});
  std::vector<int64_t> lab = {0, 4, 2, -100, 1, 3};
  Tensor labels = labels_of(lab, {6});
  for (Reduction red : {Reduction::mean, Reduction::sum, Reduction::none})
    for (double eps : {0.0, 0.1, 1.0}) {
      Tensor out = cross_entropy(x, labels, red, eps);
      EXPECT_TRUE(all_close(out, ref_cross_entropy(x, lab, red, eps, -100), 1e-12, 1e-12))
          << int(red) << " eps " << eps;
    }
  // Hand value: logits [0, 0] with label 0 -> log 2.
  EXPECT_NEAR(cross_entropy(zeros({1, 2}), labels_of({0})).item(), std::log(2.0), 1e-7);
  // Equals nll_loss(log_softmax(x)) without smoothing.
  Tensor viacomp = nll_loss(log_softmax(x, 1), labels);
  EXPECT_TRUE(all_close(cross_entropy(x, labels), viacomp, 1e-12, 1e-12));
  // i32 labels and a custom ignore_index.
  Tensor l32 = from_vector<int32_t>({0, 4, 2, 2, 1, 3}, {6}, {.dtype = DType::i32});
  EXPECT_TRUE(all_close(cross_entropy(x, l32, Reduction::mean, 0.0, 2),
                        ref_cross_entropy(x, {0, 4, 2, 2, 1, 3}, Reduction::mean, 0.0, 2), 1e-12, 1e-12));
}

TEST(CrossEntropy, SpatialOneDimAndEdgeCases) {
  manual_seed(15);
  Tensor x = randn64({2, 4, 3, 2});  // (N, C, d1, d2)
  std::vector<int64_t> lab = {0, 1, 2, 3, -100, 0, 3, 3, 2, 1, 0, 1};
  Tensor labels = labels_of(lab, {2, 3, 2});
  for (Reduction red : {Reduction::mean, Reduction::sum, Reduction::none}) {
    Tensor out = cross_entropy(x, labels, red, 0.2);
    EXPECT_TRUE(all_close(out, ref_cross_entropy(x, lab, red, 0.2, -100), 1e-12, 1e-12)) << int(red);
  }
  EXPECT_EQ(cross_entropy(x, labels, Reduction::none).shape(), (Shape{2, 3, 2}));
  // (C) logits with a 0-d label.
  Tensor v = randn64({5});
  Tensor l0 = full({}, 3.0, {.dtype = DType::i64});
  EXPECT_TRUE(all_close(cross_entropy(v, l0), ref_cross_entropy(v, {3}, Reduction::mean, 0, -100), 1e-12, 1e-12));
  // Every label ignored: mean is 0/0 = nan, sum is 0, as PyTorch.
  Tensor all_ign = labels_of({-100, -100});
  EXPECT_TRUE(std::isnan(cross_entropy(randn64({2, 3}), all_ign).item()));
  EXPECT_EQ(cross_entropy(randn64({2, 3}), all_ign, Reduction::sum).item(), 0.0);
  // f32 / f16 / bf16 logits return their own dtype, close to the f64 value.
  Tensor xl = randn64({8, 10});
  std::vector<int64_t> ll = {0, 1, 2, 3, 4, 5, 6, 7};
  Tensor lt = labels_of(ll, {8});
  for (auto [dt, tol] : {std::pair{DType::f32, 1e-6}, {DType::f16, 2e-3}, {DType::bf16, 2e-2}}) {
    Tensor xc = xl.to(dt);
    Tensor out = cross_entropy(xc, lt, Reduction::mean, 0.1);
    EXPECT_EQ(out.dtype(), dt);
    EXPECT_NEAR(out.item(), ref_cross_entropy(xc.to(DType::f64), ll, Reduction::mean, 0.1, -100).item(),
                tol * 10);
  }
  // Large logits stay finite.
  Tensor big = from_vector<float>({1000.f, 0.f, -1000.f}, {1, 3});
  EXPECT_NEAR(cross_entropy(big, labels_of({0})).item(), 0.0, 1e-6);
  EXPECT_NEAR(cross_entropy(big, labels_of({2})).item(), 2000.0, 1e-2);
}

TEST(CrossEntropy, Errors) {
  Tensor x = zeros({3, 5});
  expect_error([&] { cross_entropy(x, labels_of({0, 7, 1})); }, {"label 7", "5 classes"});
  expect_error([&] { cross_entropy(x, labels_of({0, 1, -3})); }, {"label -3", "5 classes"});
  expect_error([&] { nll_loss(x, labels_of({5, 0, 1})); }, {"label 5", "5 classes"});
  expect_error([&] { cross_entropy(x, labels_of({0, 1})); }, {"[2]", "[3, 5]", "[3]"});
  expect_error([&] { cross_entropy(x, zeros({3})); }, {"labels", "f32"});
  expect_error([&] { cross_entropy(x, labels_of({0, 1, 2}), Reduction::mean, 1.5); },
               {"label_smoothing", "1.5"});
  expect_error([&] { cross_entropy(zeros({3, 5}, {.dtype = DType::i64}), labels_of({0, 1, 2})); },
               {"floating", "i64"});
}

// The gradchecks (reductions, smoothing, spatial, non-contiguous) are op-case table rows.
TEST(CrossEntropyGrad, HandValue) {
  // Hand value: d/dx mean CE at x = 0 (C = 2, label 0) = [0.5 - 1, 0.5].
  Tensor z = zeros({1, 2}, {.dtype = DType::f64}).requires_grad_();
  cross_entropy(z, labels_of({0})).backward();
  EXPECT_EQ(z.grad().to_vector<double>(), (std::vector<double>{-0.5, 0.5}));
}

TEST(NllLoss, Values) {
  manual_seed(17);
  Tensor lp = randn64({4, 3});
  Tensor labels = labels_of({2, 0, -100, 1});
  std::vector<double> v = lp.to_vector<double>();
  double l0 = -v[2], l1 = -v[3], l3 = -v[10];
  EXPECT_NEAR(nll_loss(lp, labels).item(), (l0 + l1 + l3) / 3, 1e-12);
  EXPECT_NEAR(nll_loss(lp, labels, Reduction::sum).item(), l0 + l1 + l3, 1e-12);
  EXPECT_EQ(nll_loss(lp, labels, Reduction::none).to_vector<double>(), (std::vector<double>{l0, l1, 0, l3}));
  // A custom ignore_index inside [0, C).
  EXPECT_NEAR(nll_loss(lp, labels_of({2, 0, 1, 1}), Reduction::mean, 0).item(),
              (-v[2] - v[7] - v[10]) / 3, 1e-12);
}

TEST(MseLoss, ValuesAndShapeError) {
  Tensor a = f64v({1, 2, 3, 4}, {2, 2}), b = f64v({0, 2, 5, 1}, {2, 2});
  EXPECT_DOUBLE_EQ(mse_loss(a, b).item(), (1 + 0 + 4 + 9) / 4.0);
  EXPECT_DOUBLE_EQ(mse_loss(a, b, Reduction::sum).item(), 14.0);
  EXPECT_EQ(mse_loss(a, b, Reduction::none).to_vector<double>(), (std::vector<double>{1, 0, 4, 9}));
  expect_error([] { mse_loss(zeros({2, 3}), zeros({4})); }, {"[2, 3]", "[4]"});
}

// ---- dropout

TEST(Dropout, MaskScaleAndModes) {
  Tensor x = randn({1000});
  EXPECT_TRUE(dropout(x, 0.5, /*train=*/false).is_same(x));  // eval: identity
  EXPECT_TRUE(dropout(x, 0.0, true).is_same(x));
  EXPECT_EQ(sum(abs(dropout(x, 1.0, true))).item(), 0.0);  // p = 1: zeros
  // The mask is the generator's bernoulli(1 - p) stream: same seed, same elements.
  manual_seed(99);
  Tensor mask = bernoulli({1000}, 0.7, {.dtype = DType::f64});
  manual_seed(99);
  Tensor ones64 = ones({1000}, {.dtype = DType::f64});
  Tensor y = dropout(ones64, 0.3, true);
  EXPECT_TRUE(all_close(y, mask * (1.0 / 0.7), 1e-15, 0));
  double kept = sum(mask).item() / 1000.0;
  EXPECT_NEAR(kept, 0.7, 0.05);
  // The 4-at-once fast path agrees with the per-element rule.
  for (int64_t q = 0; q < 64; ++q) {
    unsigned bits = dropout_keep4(q, 5, 11, 0.4);
    for (int j = 0; j < 4; ++j) EXPECT_EQ(bool((bits >> j) & 1u), dropout_keep(4 * q + j, 5, 11, 0.4));
  }
  // Two calls draw different masks; a reseed repeats one.
  Tensor a = dropout(ones64, 0.5, true), b = dropout(ones64, 0.5, true);
  EXPECT_FALSE(all_close(a, b));
  // Non-contiguous input, 16-bit dtype.
  Tensor base = randn({8, 6});
  Tensor t = make_view(base, {6, 8}, {1, 6}, 0);
  manual_seed(5);
  Tensor yt = dropout(t, 0.25, true);
  manual_seed(5);
  Tensor yc = dropout(t.contiguous(), 0.25, true);
  EXPECT_TRUE(all_close(yt, yc, 0, 0));
  manual_seed(5);
  Tensor yh = dropout(t.to(DType::bf16), 0.25, true);
  EXPECT_EQ(yh.dtype(), DType::bf16);
  EXPECT_TRUE(all_close(yh.to(DType::f32), yc, 1e-2, 1e-2));  // same mask as f32
  expect_error([] { dropout(zeros({2}), 1.5, true); }, {"dropout", "1.5"});
  expect_error([] { dropout(zeros({2}), -0.1, true); }, {"dropout", "-0.1"});
}

TEST(DropoutGrad, BackwardIsMaskTimesScale) {
  manual_seed(21);
  Tensor x = randn64({50}).requires_grad_();
  manual_seed(3);
  Tensor y = dropout(x, 0.4, true);
  Tensor g = randn64({50});
  y.backward(g);
  std::vector<double> yv = y.to_vector<double>(), xv = x.to_vector<double>();
  std::vector<double> gv = g.to_vector<double>(), gx = x.grad().to_vector<double>();
  for (size_t i = 0; i < yv.size(); ++i) {
    bool kept = yv[i] != 0.0;
    EXPECT_DOUBLE_EQ(gx[i], kept ? gv[i] / 0.6 : 0.0) << i;
    if (kept) EXPECT_NEAR(yv[i], xv[i] / 0.6, 1e-12);
  }
}

// ---- var / std / logsumexp

TEST(ReduceComposite, VarStdLogsumexp) {
  Tensor x = f64v({1, 2, 3, 4, 5, 7}, {2, 3});
  // Row 0: mean 2, squared deviations 1 + 0 + 1 = 2.
  // Row 1: mean 16/3, squared deviations 16/9 + 1/9 + 25/9 = 14/3.
  EXPECT_TRUE(all_close(var(x, {1}), f64v({1.0, 7.0 / 3}), 1e-12));
  EXPECT_TRUE(all_close(var(x, {1}, 0), f64v({2.0 / 3, 14.0 / 9}), 1e-12));
  double m = 22.0 / 6, ss = 0;
  for (double v : {1, 2, 3, 4, 5, 7}) ss += (v - m) * (v - m);
  EXPECT_NEAR(var(x).item(), ss / 5, 1e-12);
  EXPECT_NEAR(std(x).item(), std::sqrt(ss / 5), 1e-12);
  EXPECT_EQ(var(x, {0}, 1, true).shape(), (Shape{1, 3}));
  EXPECT_TRUE(std::isnan(var(f64v({3.0})).item()));  // one element, correction 1
  Tensor lse = logsumexp(x, {1});
  EXPECT_NEAR(lse.to_vector<double>()[0], std::log(std::exp(1) + std::exp(2) + std::exp(3)), 1e-12);
  EXPECT_EQ(logsumexp(x, {1}, true).shape(), (Shape{2, 1}));
  EXPECT_NEAR(logsumexp(x, {}).item(), std::log(std::exp(1) + std::exp(2) + std::exp(3) + std::exp(4) +
                                                 std::exp(5) + std::exp(7)), 1e-12);
  // Large and -inf inputs.
  EXPECT_NEAR(logsumexp(f64v({1000, 1000}), {0}).item(), 1000 + std::log(2.0), 1e-9);
  double ninf = -std::numeric_limits<double>::infinity();
  EXPECT_EQ(logsumexp(f64v({ninf, ninf}), {0}).item(), ninf);
}

}  // namespace
}  // namespace ember
