// Reductions on CPU against hand-computed references: all elements and chosen dims,
// keepdim, non-contiguous inputs, dtypes, accumulation precision, error paths.
#include <cmath>

#include "test_util.h"

using namespace ember;
using ember::test::all_close;

namespace {
Tensor m23() { return from_vector(std::vector<double>{1, 5, 3, 4, 2, 6}, {2, 3}); }
}

TEST(Reduce, SumMeanAllAndDims) {
  Tensor a = m23();
  EXPECT_EQ(sum(a).item(), 21.0);
  EXPECT_EQ(sum(a).dim(), 0);
  EXPECT_EQ(mean(a).item(), 3.5);
  EXPECT_EQ(sum(a, {0}).to_vector<double>(), (std::vector<double>{5, 7, 9}));
  EXPECT_EQ(sum(a, {1}).to_vector<double>(), (std::vector<double>{9, 12}));
  EXPECT_EQ(sum(a, {-1}, true).shape(), (Shape{2, 1}));
  EXPECT_EQ(mean(a, {0}).to_vector<double>(), (std::vector<double>{2.5, 3.5, 4.5}));
  EXPECT_EQ(sum(a, {0, 1}).item(), 21.0);
}

TEST(Reduce, MaxMinArg) {
  Tensor a = m23();
  EXPECT_EQ(max(a).item(), 6.0);
  EXPECT_EQ(min(a).item(), 1.0);
  EXPECT_EQ(max(a, {1}).to_vector<double>(), (std::vector<double>{5, 6}));
  EXPECT_EQ(min(a, {0}).to_vector<double>(), (std::vector<double>{1, 2, 3}));
  EXPECT_EQ(argmax(a).item<int64_t>(), 5);
  EXPECT_EQ(argmin(a).item<int64_t>(), 0);
  EXPECT_EQ(argmax(a, 1).to_vector<int64_t>(), (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(argmin(a, 0, true).shape(), (Shape{1, 3}));
  EXPECT_EQ(argmax(a, 0).dtype(), DType::i64);
  // Ties: the first index wins.
  EXPECT_EQ(argmax(from_vector(std::vector<float>{1, 3, 3, 0})).item<int64_t>(), 1);
  // NaN is the maximum, as PyTorch.
  EXPECT_TRUE(std::isnan(max(from_vector(std::vector<float>{1, NAN, 3})).item()));
}

TEST(Reduce, ThreeDimsAnyCombination) {
  Tensor x = arange(0.0, 24.0, 1.0, {.dtype = DType::f64}).reshape({2, 3, 4});
  std::vector<double> xv = x.to_vector<double>();
  auto at = [&](int i, int j, int k) { return xv[size_t(i * 12 + j * 4 + k)]; };
  // dims {0, 2} are not adjacent: exercises the permute path.
  std::vector<double> s02 = sum(x, {0, 2}).to_vector<double>();
  for (int j = 0; j < 3; ++j) {
    double r = 0;
    for (int i = 0; i < 2; ++i)
      for (int k = 0; k < 4; ++k) r += at(i, j, k);
    EXPECT_EQ(s02[size_t(j)], r);
  }
  std::vector<double> m1 = max(x, {1}).to_vector<double>();
  for (int i = 0; i < 2; ++i)
    for (int k = 0; k < 4; ++k) EXPECT_EQ(m1[size_t(i * 4 + k)], at(i, 2, k));
  EXPECT_EQ(sum(x, {1, 2}, true).shape(), (Shape{2, 1, 1}));
}

TEST(Reduce, NonContiguousInput) {
  Tensor a = arange(0.0, 12.0, 1.0, {.dtype = DType::f64}).reshape({3, 4});
  Tensor t = make_view(a, {4, 3}, {1, 4}, 0);
  EXPECT_EQ(sum(t, {1}).to_vector<double>(), sum(t.contiguous(), {1}).to_vector<double>());
  EXPECT_EQ(argmax(t, 0).to_vector<int64_t>(), (std::vector<int64_t>{3, 3, 3}));
}

TEST(Reduce, DTypesAndAccumulation) {
  // f16 sums accumulate in f32: 4096 ones would stall at 2048 in f16 arithmetic.
  Tensor h = ones({4096}, {.dtype = DType::f16});
  EXPECT_EQ(sum(h).dtype(), DType::f16);
  EXPECT_EQ(sum(h).item(), 4096.0);
  Tensor b = ones({4096}, {.dtype = DType::bf16});
  EXPECT_EQ(sum(b).item(), 4096.0);
  // Integers sum in i64.
  Tensor i = full({1000}, 3e6, {.dtype = DType::i32});
  EXPECT_EQ(sum(i).dtype(), DType::i64);
  EXPECT_EQ(sum(i).item<int64_t>(), int64_t(3e9));
  EXPECT_EQ(sum(from_vector(std::vector<bool>{true, false, true})).item<int64_t>(), 2);
  EXPECT_THROW(mean(i), Error);
  // A long f32 sum stays accurate (lanes + threads, not one running sum).
  int64_t n = 1 << 22;
  Tensor f = full({n}, 0.1);
  EXPECT_NEAR(sum(f).item(), 0.1 * double(n), 1e-4 * 0.1 * double(n));
}

TEST(Reduce, LargeColumnAndRowReductions) {
  Tensor x = rand({300, 500}, {.dtype = DType::f64});
  std::vector<double> xv = x.to_vector<double>();
  std::vector<double> c = sum(x, {0}).to_vector<double>();
  std::vector<double> r = max(x, {1}).to_vector<double>();
  for (int j = 0; j < 500; j += 37) {
    double s = 0;
    for (int i = 0; i < 300; ++i) s += xv[size_t(i * 500 + j)];
    EXPECT_NEAR(c[size_t(j)], s, 1e-10);
  }
  for (int i = 0; i < 300; i += 29) {
    double m = -1;
    for (int j = 0; j < 500; ++j) m = std::max(m, xv[size_t(i * 500 + j)]);
    EXPECT_EQ(r[size_t(i)], m);
  }
}

TEST(Reduce, Errors) {
  Tensor a = m23();
  EXPECT_THROW(sum(a, {2}), Error);
  EXPECT_THROW(sum(a, {0, 0}), Error);
  EXPECT_THROW(max(zeros({0, 3})), Error);
  EXPECT_EQ(sum(zeros({0, 3})).item(), 0.0);
  EXPECT_EQ(sum(zeros({0, 3}), {0}).to_vector<float>(), (std::vector<float>{0, 0, 0}));
}
