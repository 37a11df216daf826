// matmul / mm / bmm / linear on the CPU against an f64 triple loop, plus hand-computed
// gradients (the gradchecks are op-case table rows, tests/op_cases.cpp).
#include <cmath>
#include <string>

#include "kernels/matmul.h"
#include "test_util.h"

namespace ember {
namespace {

using test::all_close;

Tensor randn64(const Shape& s) { return randn(s, {.dtype = DType::f64}); }
Tensor f64v(const std::vector<double>& v, const Shape& s) { return from_vector(v, s, {.dtype = DType::f64}); }

// The (c, r) transpose of the last two dims as a view (no copy).
Tensor tview(const Tensor& t) {
  Shape sz = t.shape(), st = t.strides();
  std::swap(sz[sz.size() - 1], sz[sz.size() - 2]);
  std::swap(st[st.size() - 1], st[st.size() - 2]);
  return make_view(t, sz, st, t.offset());
}

// Every other column of a (r, 2c) tensor: neither last-two stride is 1, so matmul must copy.
Tensor every_other_col(const Tensor& t) {
  return make_view(t, {t.size(0), t.size(1) / 2}, {t.stride(0), 2 * t.stride(1)}, t.offset());
}

// NumPy matmul in f64 with plain loops: 1-D promotion, broadcast batch dims.
Tensor ref_matmul(const Tensor& a, const Tensor& b) {
  Shape as = a.shape(), bs = b.shape();
  bool a1 = as.size() == 1, b1 = bs.size() == 1;
  if (a1) as = {1, as[0]};
  if (b1) bs = {bs[0], 1};
  std::vector<double> av = a.to_vector<double>(), bv = b.to_vector<double>();
  int64_t m = as[as.size() - 2], k = as.back(), n = bs.back();
  EXPECT_EQ(k, bs[bs.size() - 2]);
  size_t nb = std::max(as.size(), bs.size()) - 2;
  auto batch_of = [&](const Shape& s) {  // left-padded with 1s to nb dims
    Shape r(nb, 1);
    for (size_t i = 0; i + 2 < s.size(); ++i) r[nb - (s.size() - 2) + i] = s[i];
    return r;
  };
  Shape ba = batch_of(as), bb = batch_of(bs), batch(nb);
  for (size_t i = 0; i < nb; ++i) batch[i] = std::max(ba[i], bb[i]);
  int64_t nbatch = shape_numel(batch);
  std::vector<double> out(size_t(nbatch * m * n), 0.0);
  for (int64_t bi = 0; bi < nbatch; ++bi) {
    int64_t rem = bi, ia = 0, ib = 0, sa = 1, sb = 1;
    for (int64_t d = int64_t(nb) - 1; d >= 0; --d) {
      int64_t idx = rem % batch[size_t(d)];
      rem /= batch[size_t(d)];
      ia += (ba[size_t(d)] == 1 ? 0 : idx) * sa;
      ib += (bb[size_t(d)] == 1 ? 0 : idx) * sb;
      sa *= ba[size_t(d)];
      sb *= bb[size_t(d)];
    }
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double s = 0;
        for (int64_t p = 0; p < k; ++p)
          s += av[size_t(ia * m * k + i * k + p)] * bv[size_t(ib * k * n + p * n + j)];
        out[size_t(bi * m * n + i * n + j)] = s;
      }
  }
  Shape shape = batch;
  if (!a1) shape.push_back(m);
  if (!b1) shape.push_back(n);
  return from_vector(out, shape, {.dtype = DType::f64});
}

void expect_matmul(const Tensor& a, const Tensor& b, double rtol = 1e-10, double atol = 1e-10) {
  Tensor out = matmul(a, b);
  Tensor ref = ref_matmul(a, b);
  EXPECT_EQ(out.dtype(), a.dtype());
  EXPECT_TRUE(all_close(out.to(DType::f64), ref, rtol, atol))
      << a.shape_str() << " @ " << b.shape_str();
}

TEST(Matmul, TwoDimF64AndF32) {
  manual_seed(1);
  expect_matmul(randn64({5, 7}), randn64({7, 3}));
  expect_matmul(randn({5, 7}), randn({7, 3}), 1e-5, 1e-5);
  // Hand-computed: [[1,2],[3,4]] @ [[5,6],[7,8]] = [[19,22],[43,50]].
  Tensor a = f64v({1, 2, 3, 4}, {2, 2}), b = f64v({5, 6, 7, 8}, {2, 2});
  EXPECT_EQ(mm(a, b).to_vector<double>(), (std::vector<double>{19, 22, 43, 50}));
}

TEST(Matmul, TransposedAndStridedOperands) {
  manual_seed(2);
  Tensor a = randn64({7, 5}), b = randn64({3, 7});
  expect_matmul(tview(a), tview(b));                   // both read through trans flags
  expect_matmul(tview(a), randn64({7, 4}));
  expect_matmul(randn64({4, 7}), tview(b));
  expect_matmul(every_other_col(randn64({6, 8})), randn64({4, 2}));  // needs a copy
  Tensor batched = randn64({2, 7, 5});
  expect_matmul(tview(batched), randn64({2, 7, 3}));   // batched transposed view
  // A row of a bigger matrix (offset view) and a column (strided 1-D).
  Tensor big = randn64({4, 6});
  Tensor row = make_view(big, {6}, {1}, 6);
  Tensor col = make_view(big, {4}, {6}, 1);
  expect_matmul(row, randn64({6, 2}));
  expect_matmul(randn64({3, 4}), col);
}

TEST(Matmul, BroadcastBatch) {
  manual_seed(3);
  expect_matmul(randn64({2, 1, 4, 3}), randn64({5, 3, 2}));
  expect_matmul(randn64({3, 4, 5}), randn64({5, 2}));      // folds into one GEMM
  expect_matmul(randn64({4, 5}), randn64({3, 5, 2}));
  expect_matmul(randn64({2, 3, 4, 5}), randn64({2, 3, 5, 6}));
  expect_matmul(randn64({1, 3, 1, 5}), randn64({2, 1, 5, 4}));  // m == 1 and broadcast
  // An operand that is itself an expanded view (stride 0 batch dim).
  Tensor base = randn64({4, 3});
  Tensor expanded = make_view(base, {5, 4, 3}, {0, 3, 1}, 0);
  expect_matmul(expanded, randn64({5, 3, 2}));
  expect_matmul(randn64({5, 2, 4}), expanded);
}

TEST(Matmul, OneDimensionalOperands) {
  manual_seed(4);
  Tensor v = randn64({6}), w = randn64({6});
  Tensor d = matmul(v, w);
  EXPECT_EQ(d.dim(), 0);
  expect_matmul(v, w);
  expect_matmul(v, randn64({6, 3}));
  expect_matmul(randn64({4, 6}), v);
  expect_matmul(v, randn64({2, 6, 3}));
  expect_matmul(randn64({2, 4, 6}), v);
  EXPECT_EQ(matmul(randn64({2, 4, 6}), v).shape(), (Shape{2, 4}));
  EXPECT_EQ(matmul(v, randn64({2, 6, 3})).shape(), (Shape{2, 3}));
  // Hand-computed dot product.
  EXPECT_DOUBLE_EQ(matmul(f64v({1, 2, 3}, {3}), f64v({4, 5, 6}, {3})).item(), 32.0);
}

TEST(Matmul, EveryFloatingDtype) {
  manual_seed(5);
  Tensor a = randn64({3, 6, 9}), b = randn64({3, 9, 4});
  Tensor ref = ref_matmul(a, b);
  struct Case {
    DType dt;
    double tol;
  } cases[] = {{DType::f64, 1e-12}, {DType::f32, 1e-5}, {DType::f16, 2e-2}, {DType::bf16, 1e-1}};
  for (const Case& c : cases) {
    // Compare with the reference on the operands as rounded to the dtype.
    Tensor ac = a.to(c.dt), bc = b.to(c.dt);
    Tensor out = matmul(ac, bc);
    EXPECT_EQ(out.dtype(), c.dt);
    EXPECT_TRUE(all_close(out.to(DType::f64), ref_matmul(ac.to(DType::f64), bc.to(DType::f64)),
                          c.tol, c.tol))
        << dtype_name(c.dt);
    EXPECT_TRUE(all_close(out.to(DType::f64), ref, 10 * c.tol, 10 * c.tol)) << dtype_name(c.dt);
    // Transposed 16-bit operands go through the same conversion path.
    Tensor outt = matmul(tview(bc), tview(ac));
    EXPECT_TRUE(all_close(outt.to(DType::f64), ref_matmul(tview(b), tview(a)), 10 * c.tol, 10 * c.tol));
  }
}

TEST(Matmul, ManySmallAndOneLargeGemm) {
  manual_seed(6);
  expect_matmul(randn64({64, 8, 8}), randn64({64, 8, 8}));     // OpenMP over the batch
  expect_matmul(randn64({2, 96, 80}), randn64({2, 80, 72}));   // OpenBLAS threads inside
}

TEST(Matmul, EmptyShapes) {
  Tensor z = matmul(zeros({3, 0}), zeros({0, 4}));
  EXPECT_EQ(z.shape(), (Shape{3, 4}));
  EXPECT_EQ(sum(z).item(), 0.0);
  EXPECT_EQ(matmul(zeros({0, 5}), zeros({5, 4})).shape(), (Shape{0, 4}));
  EXPECT_EQ(matmul(zeros({2, 0, 5}), zeros({5, 4})).shape(), (Shape{2, 0, 4}));
}

TEST(Matmul, GemmKernelEntryPoint) {
  // C = 2 * A^T @ B + 1 * C with padded leading dimensions and two batch entries, f32.
  int64_t m = 3, n = 2, k = 4, lda = 5, ldb = 3, ldc = 4;
  std::vector<float> A(size_t(2 * k * lda)), B(size_t(2 * k * ldb)), C(size_t(2 * m * ldc));
  for (size_t i = 0; i < A.size(); ++i) A[i] = float(i % 7) - 3.0f;
  for (size_t i = 0; i < B.size(); ++i) B[i] = float(i % 5) - 2.0f;
  for (size_t i = 0; i < C.size(); ++i) C[i] = float(i % 3);
  std::vector<float> expect = C;
  for (int bt = 0; bt < 2; ++bt)
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double s = 0;
        for (int64_t p = 0; p < k; ++p)
          s += double(A[size_t(bt * k * lda + p * lda + i)]) * B[size_t(bt * k * ldb + p * ldb + j)];
        float& e = expect[size_t(bt * m * ldc + i * ldc + j)];
        e = float(2 * s + e);
      }
  GemmParams p;
  p.trans_a = true;
  p.m = m;
  p.n = n;
  p.k = k;
  p.lda = lda;
  p.ldb = ldb;
  p.ldc = ldc;
  p.stride_a = k * lda;
  p.stride_b = k * ldb;
  p.stride_c = m * ldc;
  p.batch = 2;
  p.alpha = 2.0;
  p.beta = 1.0;
  cpu::gemm_strided_batched(DType::f32, A.data(), B.data(), C.data(), p);
  for (size_t i = 0; i < C.size(); ++i) EXPECT_NEAR(C[i], expect[i], 1e-4) << i;
}

TEST(Matmul, Errors) {
  auto expect_error = [](auto fn, std::vector<std::string> parts) {
    try {
      fn();
      ADD_FAILURE() << "no error";
    } catch (const Error& e) {
      for (const auto& p : parts)
        EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what() << " lacks " << p;
    }
  };
  expect_error([] { matmul(zeros({2, 3}), zeros({4, 5})); }, {"[2, 3]", "[4, 5]"});
  expect_error([] { matmul(zeros({2, 2, 3}), zeros({3, 3, 4})); }, {"[2, 2, 3]", "[3, 3, 4]", "broadcast"});
  expect_error([] { matmul(zeros({3}), zeros({4})); }, {"[3]", "[4]"});
  expect_error([] { matmul(zeros({2, 3}), zeros({3, 2}, {.dtype = DType::f64})); }, {"f32", "f64"});
  expect_error([] { matmul(zeros({2, 3}, {.dtype = DType::i64}), zeros({3, 2}, {.dtype = DType::i64})); },
               {"floating", "i64"});
  expect_error([] { matmul(zeros({}), zeros({3})); }, {"at least 1 dim"});
  expect_error([] { mm(zeros({2, 2, 3}), zeros({3, 2})); }, {"mm", "2-D", "[2, 2, 3]"});
  expect_error([] { bmm(zeros({2, 2, 3}), zeros({3, 3, 2})); }, {"bmm", "batch", "[2, 2, 3]", "[3, 3, 2]"});
  expect_error([] { linear(zeros({4, 3}), zeros({5, 2})); }, {"linear", "[4, 3]", "[5, 2]"});
  expect_error([] { linear(zeros({4, 3}), zeros({5, 3}), zeros({4})); }, {"bias", "[4]", "[5]"});
  expect_error([] { linear(zeros({4, 3}), zeros({3})); }, {"weight", "2-D"});
}

TEST(Linear, MatchesMatmulPlusBias) {
  manual_seed(7);
  Tensor w = randn64({5, 4}), b = randn64({5});
  for (Shape xs : {Shape{3, 4}, Shape{2, 3, 4}, Shape{4}, Shape{0, 4}}) {
    Tensor x = randn64(xs);
    Tensor ref = ref_matmul(x, tview(w)) + b;
    EXPECT_TRUE(all_close(linear(x, w, b), ref, 1e-12, 1e-12)) << shape_str(xs);
    EXPECT_TRUE(all_close(linear(x, w), ref_matmul(x, tview(w)), 1e-12, 1e-12)) << shape_str(xs);
  }
  // Transposed input and weight views.
  Tensor xt = randn64({4, 3});
  Tensor wt = randn64({4, 5});
  EXPECT_TRUE(all_close(linear(tview(xt), tview(wt), b), ref_matmul(tview(xt), wt) + b, 1e-12, 1e-12));
  // f32 and 16-bit.
  Tensor x32 = randn({6, 4});
  Tensor ref32 = ref_matmul(x32.to(DType::f64), tview(w)) + b;
  EXPECT_TRUE(all_close(linear(x32, w.to(DType::f32), b.to(DType::f32)).to(DType::f64), ref32, 1e-5, 1e-5));
  EXPECT_TRUE(all_close(linear(x32.to(DType::bf16), w.to(DType::bf16), b.to(DType::bf16)).to(DType::f64),
                        ref32, 5e-2, 5e-2));
  // One node for the whole op.
  Tensor xg = randn64({3, 4}).requires_grad_();
  Tensor y = linear(xg, w, b);
  ASSERT_TRUE(y.grad_fn());
  EXPECT_EQ(y.grad_fn()->name(), "LinearBackward");
}

// ---- gradient checks

// The gradchecks of matmul (every operand rank, broadcast, views), mm, bmm and linear are
// rows of the op-case table (tests/op_cases.cpp).
TEST(MatmulGrad, HandValues) {
  // d(sum(a @ b))/da = ones @ b^T: for a (1, 2), b (2, 1) = [[3], [4]] that is [[3, 4]].
  Tensor x = f64v({1, 2}, {1, 2}).requires_grad_();
  Tensor y = f64v({3, 4}, {2, 1}).requires_grad_();
  sum(matmul(x, y)).backward();
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{3, 4}));
  EXPECT_EQ(y.grad().to_vector<double>(), (std::vector<double>{1, 2}));
}

}  // namespace
}  // namespace ember
