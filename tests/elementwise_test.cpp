// Elementwise ops on the CPU: broadcasting, non-contiguous inputs, dtypes, promotion,
// in-place forms, error paths. Every unary op against its f64 scalar reference in every
// float dtype is the op-case table's OpReference tier (tests/op_cases.cpp).
#include <cmath>
#include <functional>

#include "test_util.h"

using namespace ember;
using ember::test::all_close;

namespace {
Tensor vec(std::vector<double> v, DType dt = DType::f64) {
  Shape s{int64_t(v.size())};
  return from_vector(v, s, {.dtype = dt});
}
}  // namespace

TEST(Unary, NonContiguousInputs) {
  Tensor a = arange(0.0, 12.0, 1.0, {.dtype = DType::f64}).reshape({3, 4});
  Tensor t = make_view(a, {4, 3}, {1, 4}, 0);
  EXPECT_TRUE(all_close(exp(t), exp(t.contiguous())));
  EXPECT_EQ(neg(t).to_vector<double>(), neg(t.contiguous()).to_vector<double>());
}

TEST(Unary, IntegerInputs) {
  Tensor i = from_vector(std::vector<int64_t>{-3, 0, 4});
  EXPECT_EQ(abs(i).dtype(), DType::i64);
  EXPECT_EQ(abs(i).to_vector<int64_t>(), (std::vector<int64_t>{3, 0, 4}));
  EXPECT_EQ(relu(i).to_vector<int64_t>(), (std::vector<int64_t>{0, 0, 4}));
  EXPECT_EQ(clamp(i, -1.0, 2.0).to_vector<int64_t>(), (std::vector<int64_t>{-1, 0, 2}));
  // Float-only ops promote integers to f32, as PyTorch.
  EXPECT_EQ(exp(i).dtype(), DType::f32);
  EXPECT_TRUE(all_close(sqrt(from_vector(std::vector<int32_t>{4, 9})), vec({2, 3}, DType::f32)));
}

TEST(Unary, LargeTensorsUseAllThreadsAndStayCorrect) {
  int64_t n = 1 << 20;
  Tensor x = arange(0.0, double(n), 1.0, {.dtype = DType::f64}) / double(n);
  Tensor y = sigmoid(x);
  std::vector<double> yv = y.to_vector<double>();
  for (int64_t i = 0; i < n; i += 9973) EXPECT_NEAR(yv[size_t(i)], 1 / (1 + std::exp(-double(i) / double(n))), 1e-14);
}

TEST(Binary, OpsMatchReference) {
  Tensor a = vec({1, -2, 3, 4.5}), b = vec({2, 2, -1, 0.5});
  EXPECT_EQ((a + b).to_vector<double>(), (std::vector<double>{3, 0, 2, 5}));
  EXPECT_EQ((a - b).to_vector<double>(), (std::vector<double>{-1, -4, 4, 4}));
  EXPECT_EQ((a * b).to_vector<double>(), (std::vector<double>{2, -4, -3, 2.25}));
  EXPECT_EQ((a / b).to_vector<double>(), (std::vector<double>{0.5, -1, -3, 9}));
  EXPECT_EQ(add(a, b, 2.0).to_vector<double>(), (std::vector<double>{5, 2, 1, 5.5}));
  EXPECT_TRUE(all_close(pow(abs(a), b), vec({1, 4, 1.0 / 3, std::sqrt(4.5)})));
  EXPECT_EQ(maximum(a, b).to_vector<double>(), (std::vector<double>{2, 2, 3, 4.5}));
  EXPECT_EQ(minimum(a, b).to_vector<double>(), (std::vector<double>{1, -2, -1, 0.5}));
  EXPECT_EQ(eq(a, b).to_vector<bool>(), (std::vector<bool>{false, false, false, false}));
  EXPECT_EQ(lt(a, b).to_vector<bool>(), (std::vector<bool>{true, true, false, false}));
  EXPECT_EQ(ge(a, 3.0).to_vector<bool>(), (std::vector<bool>{false, false, true, true}));
  EXPECT_EQ(ne(a, a).to_vector<bool>(), (std::vector<bool>{false, false, false, false}));
  EXPECT_EQ(le(a, b).dtype(), DType::b8);
  EXPECT_EQ(gt(a, b).to_vector<bool>(), (std::vector<bool>{false, false, true, true}));
}

TEST(Binary, ScalarForms) {
  Tensor a = vec({1, 2, 4});
  EXPECT_EQ((a + 1.0).to_vector<double>(), (std::vector<double>{2, 3, 5}));
  EXPECT_EQ((a - 1.0).to_vector<double>(), (std::vector<double>{0, 1, 3}));
  EXPECT_EQ((2.0 * a).to_vector<double>(), (std::vector<double>{2, 4, 8}));
  EXPECT_EQ((1.0 - a).to_vector<double>(), (std::vector<double>{0, -1, -3}));
  EXPECT_EQ((8.0 / a).to_vector<double>(), (std::vector<double>{8, 4, 2}));
  EXPECT_EQ(pow(a, 3.0).to_vector<double>(), (std::vector<double>{1, 8, 64}));
  EXPECT_EQ(pow(a, 2.0).to_vector<double>(), (std::vector<double>{1, 4, 16}));
  // Scalars keep a floating tensor's dtype. With an integer tensor the kind of the scalar
  // decides, never its value (as PyTorch): an integer keeps the dtype, a floating-point
  // number (3.0 as well as 0.5) computes in f32.
  EXPECT_EQ((vec({1, 2}, DType::f16) * 3.0).dtype(), DType::f16);
  EXPECT_EQ((from_vector(std::vector<int32_t>{1, 2}) + 3).dtype(), DType::i32);
  EXPECT_EQ((from_vector(std::vector<int32_t>{1, 2}) + 3.0).dtype(), DType::f32);
  EXPECT_EQ((from_vector(std::vector<int32_t>{1, 2}) * 0.5).dtype(), DType::f32);
}

TEST(Binary, BroadcastingShapes) {
  Tensor a = arange(0.0, 6.0, 1.0, {.dtype = DType::f64}).reshape({2, 3});
  Tensor row = vec({10, 20, 30});
  Tensor col = vec({100, 200}).reshape({2, 1});
  EXPECT_EQ((a + row).to_vector<double>(), (std::vector<double>{10, 21, 32, 13, 24, 35}));
  EXPECT_EQ((a + col).to_vector<double>(), (std::vector<double>{100, 101, 102, 203, 204, 205}));
  Tensor outer = col * row;  // (2,1) * (3) -> (2,3)
  EXPECT_EQ(outer.shape(), (Shape{2, 3}));
  EXPECT_EQ(outer.to_vector<double>(), (std::vector<double>{1000, 2000, 3000, 2000, 4000, 6000}));
  EXPECT_EQ(broadcast_shapes({4, 1, 3}, {2, 1}), (Shape{4, 2, 3}));
  EXPECT_EQ(broadcast_shapes({}, {2, 2}), (Shape{2, 2}));
  try {
    a + vec({1, 2});
    FAIL();
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("[2, 3]"), std::string::npos) << m;
    EXPECT_NE(m.find("[2]"), std::string::npos) << m;
  }
}

TEST(Binary, NonContiguousAndBroadcastTogether) {
  Tensor a = arange(0.0, 12.0, 1.0, {.dtype = DType::f64}).reshape({3, 4});
  Tensor t = make_view(a, {4, 3}, {1, 4}, 0);  // transposed
  Tensor r = vec({1, 2, 3});
  std::vector<double> got = (t * r).to_vector<double>();
  std::vector<double> tc = t.contiguous().to_vector<double>();
  for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], tc[i] * double(i % 3 + 1));
  // Two non-contiguous operands.
  EXPECT_EQ((t + t).to_vector<double>(), (t.contiguous() * 2.0).to_vector<double>());
  // Large strided case takes the threaded strided path.
  Tensor big = arange(0.0, 512.0 * 513, 1.0, {.dtype = DType::f64}).reshape({512, 513});
  Tensor bt = make_view(big, {513, 512}, {1, 513}, 0);
  Tensor s = bt + bt;
  std::vector<double> sv = s.to_vector<double>();
  EXPECT_EQ(sv[1], 2.0 * 513);
  EXPECT_EQ(sv[513 * 512 - 1], 2.0 * (512.0 * 513 - 1));
}

TEST(Binary, TypePromotion) {
  Tensor f = vec({1.5, 2.5}, DType::f32);
  Tensor d = vec({1, 2}, DType::f64);
  Tensor i = from_vector(std::vector<int64_t>{1, 2});
  Tensor h = vec({1, 2}, DType::f16);
  Tensor bf = vec({1, 2}, DType::bf16);
  EXPECT_EQ((f + d).dtype(), DType::f64);
  EXPECT_EQ((f + i).dtype(), DType::f32);
  EXPECT_EQ((h + f).dtype(), DType::f32);
  EXPECT_EQ((h + bf).dtype(), DType::f32);
  EXPECT_EQ((h + h).dtype(), DType::f16);
  EXPECT_EQ((i + i).dtype(), DType::i64);
  EXPECT_EQ((i / i).dtype(), DType::f32);  // true division
  EXPECT_EQ((i / from_vector(std::vector<int64_t>{2, 4})).to_vector<double>(), (std::vector<double>{0.5, 0.5}));
  EXPECT_EQ((from_vector(std::vector<uint8_t>{250}) + from_vector(std::vector<int32_t>{10})).to_vector<int32_t>()[0], 260);
}

TEST(Binary, NaNPropagatesThroughMaxMin) {
  Tensor a = vec({NAN, 1.0, 2.0}), b = vec({0.0, NAN, 1.0});
  std::vector<double> mx = maximum(a, b).to_vector<double>();
  EXPECT_TRUE(std::isnan(mx[0]));
  EXPECT_TRUE(std::isnan(mx[1]));
  EXPECT_EQ(mx[2], 2.0);
}

TEST(Binary, Where) {
  Tensor c = from_vector(std::vector<bool>{true, false, true});
  Tensor a = vec({1, 2, 3}), b = vec({-1, -2, -3});
  EXPECT_EQ(where(c, a, b).to_vector<double>(), (std::vector<double>{1, -2, 3}));
  // Broadcast cond (3) against (2,3) and a scalar.
  Tensor m = arange(0.0, 6.0, 1.0, {.dtype = DType::f64}).reshape({2, 3});
  EXPECT_EQ(where(c, m, scalar_tensor(0.0, {.dtype = DType::f64})).to_vector<double>(),
            (std::vector<double>{0, 0, 2, 3, 0, 5}));
}

TEST(Binary, InPlaceForms) {
  Tensor a = vec({1, 2, 3});
  uint64_t v0 = a.version();
  a.add_(vec({1, 1, 1}));
  EXPECT_EQ(a.to_vector<double>(), (std::vector<double>{2, 3, 4}));
  EXPECT_GT(a.version(), v0);
  a.mul_(2.0).sub_(vec({1, 1, 1}));
  EXPECT_EQ(a.to_vector<double>(), (std::vector<double>{3, 5, 7}));
  a.div_(vec({3, 5, 7}));
  EXPECT_EQ(a.to_vector<double>(), (std::vector<double>{1, 1, 1}));
  a.add_(vec({1, 2, 3}), -1.0);
  EXPECT_EQ(a.to_vector<double>(), (std::vector<double>{0, -1, -2}));
  // Into a non-contiguous view, broadcasting the operand.
  Tensor m = zeros({2, 3}, {.dtype = DType::f64});
  Tensor col = make_view(m, {2}, {3}, 1);
  col.add_(5.0);
  EXPECT_EQ(m.to_vector<double>(), (std::vector<double>{0, 5, 0, 0, 5, 0}));
  // The result must fit the target.
  EXPECT_THROW(vec({1}).add_(vec({1, 2})), Error);
  // f32 target with an f64 operand stays f32.
  Tensor f = vec({1, 2}, DType::f32);
  f.add_(vec({0.5, 0.5}));
  EXPECT_EQ(f.dtype(), DType::f32);
  EXPECT_EQ(f.to_vector<float>(), (std::vector<float>{1.5f, 2.5f}));
}

TEST(Binary, CopyAndFillInPlace) {
  Tensor m = zeros({2, 3});
  m.copy_(vec({1, 2, 3}));  // broadcast rows, cast f64 -> f32
  EXPECT_EQ(m.to_vector<float>(), (std::vector<float>{1, 2, 3, 1, 2, 3}));
  EXPECT_THROW(m.copy_(vec({1, 2})), Error);
  m.fill_(-1.0);
  EXPECT_EQ(m.sum().item(), -6.0);
  m.zero_();
  EXPECT_EQ(m.sum().item(), 0.0);
}

TEST(Binary, DeviceMismatchNamesBothDevices) {
  if (!cuda::is_available()) GTEST_SKIP() << "needs a GPU to build a cuda tensor";
  Tensor a = ones({2}), b = ones({2}, {.device = Device("cuda:0")});
  try {
    a + b;
    FAIL();
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("cpu"), std::string::npos);
    EXPECT_NE(m.find("cuda:0"), std::string::npos);
  }
}
