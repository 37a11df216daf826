// Tensor basics: factories, dtypes, views, copies, printing, random streams, errors.
#include <cmath>
#include <cstring>

#include "core/half.h"
#include "test_util.h"

using namespace ember;
using ember::test::all_close;

TEST(Tensor, FactoriesFillValues) {
  Tensor z = zeros({2, 3});
  EXPECT_EQ(z.shape(), (Shape{2, 3}));
  EXPECT_EQ(z.dtype(), DType::f32);
  EXPECT_TRUE(z.is_contiguous());
  for (double v : z.to_vector<double>()) EXPECT_EQ(v, 0.0);
  for (double v : ones({4}, {.dtype = DType::f64}).to_vector<double>()) EXPECT_EQ(v, 1.0);
  for (int64_t v : full({3}, 7, {.dtype = DType::i64}).to_vector<int64_t>()) EXPECT_EQ(v, 7);
  EXPECT_EQ(arange(5).to_vector<int64_t>(), (std::vector<int64_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(arange(1.0, 2.0, 0.25).to_vector<double>(), (std::vector<double>{1, 1.25, 1.5, 1.75}));
  std::vector<double> l = linspace(0.0, 1.0, 5, {.dtype = DType::f64}).to_vector<double>();
  EXPECT_EQ(l, (std::vector<double>{0, 0.25, 0.5, 0.75, 1.0}));
  EXPECT_EQ(scalar_tensor(3.5).dim(), 0);
  EXPECT_DOUBLE_EQ(scalar_tensor(3.5).item(), 3.5);
}

TEST(Tensor, EveryDTypeRoundTripsThroughCasts) {
  std::vector<double> vals{0, 1, 2, 3, 100, 127};
  for (DType dt : {DType::f32, DType::f64, DType::f16, DType::bf16, DType::i32, DType::i64, DType::u8}) {
    Tensor t = from_vector(vals, {6}, {.dtype = dt});
    EXPECT_EQ(t.dtype(), dt);
    EXPECT_EQ(t.element_size(), dtype_size(dt));
    EXPECT_EQ(t.to_vector<double>(), vals) << dtype_name(dt);
    EXPECT_EQ(t.to(DType::f64).to(dt).to_vector<double>(), vals) << dtype_name(dt);
  }
  Tensor b = from_vector(std::vector<double>{0, 2, -1, 0}, {4}).to(DType::b8);
  EXPECT_EQ(b.to_vector<double>(), (std::vector<double>{0, 1, 1, 0}));
}

TEST(Tensor, HalfAndBFloat16Rounding) {
  // Exact values, round-to-nearest-even, overflow, subnormals.
  EXPECT_EQ(float(Half(1.0f)), 1.0f);
  EXPECT_EQ(float(Half(65504.0f)), 65504.0f);
  EXPECT_TRUE(std::isinf(float(Half(65520.0f))));
  EXPECT_EQ(float(Half(1.0f + 1.0f / 2048)), 1.0f);  // halfway, rounds to even
  EXPECT_EQ(float(Half(1.0f + 3.0f / 2048)), 1.0f + 2.0f / 1024);
  EXPECT_EQ(float(Half(5.960464477539063e-08f)), 5.960464477539063e-08f);  // smallest subnormal
  EXPECT_TRUE(std::isnan(float(Half(NAN))));
  EXPECT_EQ(float(BFloat16(1.0f)), 1.0f);
  EXPECT_EQ(float(BFloat16(1.0f + 1.0f / 256)), 1.0f);  // halfway, rounds to even
  EXPECT_EQ(float(BFloat16(1.0f + 3.0f / 256)), 1.0f + 4.0f / 256);  // 1.5 ulp: to even
}

TEST(Tensor, ViewsShareStorageAndStrides) {
  Tensor a = arange(0.0, 6.0).reshape({2, 3});
  Tensor v = a.view({3, 2});
  EXPECT_EQ(v.storage(), a.storage());
  {
    NoGradGuard ng;
    v.fill_(1.0);
  }
  EXPECT_EQ(a.sum().item(), 6.0);
  Tensor t = make_view(a, {3, 2}, {1, 3}, 0);  // transpose by hand
  EXPECT_FALSE(t.is_contiguous());
  Tensor c = t.contiguous();
  EXPECT_TRUE(c.is_contiguous());
  EXPECT_NE(c.storage(), a.storage());
}

TEST(Tensor, ContiguousOfTransposeAndOffsetView) {
  Tensor a = arange(0.0, 12.0, 1.0, {.dtype = DType::f64}).reshape({3, 4});
  Tensor t = make_view(a, {4, 3}, {1, 4}, 0);
  EXPECT_EQ(t.contiguous().to_vector<double>(),
            (std::vector<double>{0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11}));
  Tensor row1 = make_view(a, {4}, {1}, 4);
  EXPECT_EQ(row1.to_vector<double>(), (std::vector<double>{4, 5, 6, 7}));
  Tensor col2 = make_view(a, {3}, {4}, 2);
  EXPECT_EQ(col2.clone().to_vector<double>(), (std::vector<double>{2, 6, 10}));
  EXPECT_EQ(t.to(DType::i32).to_vector<int32_t>()[1], 4);
}

TEST(Tensor, ViewErrorsAndReshapeCopies) {
  Tensor a = arange(0.0, 6.0).reshape({2, 3});
  Tensor t = make_view(a, {3, 2}, {1, 3}, 0);
  EXPECT_THROW(t.view({6}), Error);
  Tensor r = t.reshape({6});
  EXPECT_EQ(r.to_vector<float>(), (std::vector<float>{0, 3, 1, 4, 2, 5}));
  EXPECT_EQ(a.reshape({-1}).shape(), (Shape{6}));
  EXPECT_THROW(a.reshape({4, -1}), Error);
  EXPECT_THROW(a.reshape({-1, -1}), Error);
}

TEST(Tensor, FromBlobUsesCallerMemoryAndDeleter) {
  float buf[4] = {1, 2, 3, 4};
  bool deleted = false;
  {
    Tensor t = from_blob(buf, {2, 2}, {}, [&](void*) { deleted = true; });
    EXPECT_EQ(t.data<float>(), buf);
    EXPECT_EQ(t.sum().item(), 10.0);
  }
  EXPECT_TRUE(deleted);
}

// Note [CPU caching allocator]: a freed CPU block goes back to ember's cache and the next
// request of that size gets it again (no fresh pages to fault in); blocks stay 64-byte aligned.
TEST(Tensor, CpuAllocatorReusesFreedBlocksAligned) {
  if (const char* e = std::getenv("EMBER_CPU_ALLOC"); e && std::string(e) == "direct") {
    GTEST_SKIP() << "EMBER_CPU_ALLOC=direct: caching is off";
  }
  for (int64_t n : {int64_t(1), int64_t(1000), int64_t(1) << 20, int64_t(3) << 20}) {
    const void* p = nullptr;
    {
      Tensor a = empty({n});
      p = a.data_ptr();
      EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 64, 0u) << n;
    }
    Tensor b = empty({n});
    EXPECT_EQ(b.data_ptr(), p) << n;
    Tensor c = empty({n});  // b still holds its block: c gets another one
    EXPECT_NE(c.data_ptr(), p) << n;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(c.data_ptr()) % 64, 0u) << n;
  }
}

TEST(Tensor, ItemAndDataChecks) {
  EXPECT_THROW(zeros({2}).item(), Error);
  EXPECT_THROW(zeros({2}).data<double>(), Error);
  EXPECT_NO_THROW(zeros({2}).data<float>());
  EXPECT_EQ(full({1}, 3).item<int>(), 3);
}

TEST(Tensor, PrintingIsReadable) {
  Tensor a = from_vector(std::vector<float>{1, 2.5, -3, 4}, {2, 2});
  std::string s = a.str();
  EXPECT_NE(s.find("tensor([["), std::string::npos) << s;
  EXPECT_NE(s.find("2.5"), std::string::npos) << s;
  EXPECT_NE(s.find("shape=[2, 2]"), std::string::npos) << s;
  EXPECT_NE(s.find("dtype=f32"), std::string::npos) << s;
  std::string big = arange(100).str();
  EXPECT_NE(big.find("..."), std::string::npos) << big;
  EXPECT_EQ(Tensor().str(), "Tensor(undefined)");
}

TEST(Tensor, DeviceParsingAndErrors) {
  EXPECT_EQ(Device("cpu"), kCPU);
  EXPECT_EQ(Device("cuda:1").index, 1);
  EXPECT_TRUE(Device("cuda").is_cuda());
  EXPECT_THROW(Device("gpu"), Error);
  EXPECT_THROW(Device("cuda:x"), Error);
  if (cuda::device_count() == 0) {
    // "Compiled with CUDA" and "a GPU is present" are different facts; neither aborts.
    EXPECT_FALSE(cuda::is_available());
    try {
      zeros({2}, {.device = Device("cuda:0")});
      FAIL() << "expected an error";
    } catch (const Error& e) {
      std::string m = e.what();
      EXPECT_TRUE(m.find("CUDA") != std::string::npos || m.find("cuda") != std::string::npos) << m;
    }
  }
}

TEST(Tensor, NegativeShapeIsAnError) {
  EXPECT_THROW(zeros({2, -1}), Error);
  EXPECT_THROW(from_vector(std::vector<float>{1, 2, 3}, {2, 2}), Error);
}

TEST(Random, SeededStreamsAreReproducible) {
  manual_seed(42);
  Tensor a = rand({1000});
  Tensor n1 = randn({1001});
  manual_seed(42);
  Tensor b = rand({1000});
  Tensor n2 = randn({1001});
  EXPECT_EQ(a.to_vector<float>(), b.to_vector<float>());
  EXPECT_EQ(n1.to_vector<float>(), n2.to_vector<float>());
  Tensor c = rand({1000});
  EXPECT_NE(a.to_vector<float>(), c.to_vector<float>());
}

TEST(Random, DistributionsHaveTheRightMoments) {
  manual_seed(7);
  int64_t n = 200000;
  std::vector<double> u = rand({n}, {.dtype = DType::f64}).to_vector<double>();
  double mu = 0, m2 = 0;
  for (double v : u) {
    ASSERT_GE(v, 0.0);
    ASSERT_LT(v, 1.0);
    mu += v;
  }
  mu /= double(n);
  EXPECT_NEAR(mu, 0.5, 0.005);
  std::vector<float> z = randn({n}).to_vector<float>();
  mu = 0;
  for (float v : z) mu += v;
  mu /= double(n);
  for (float v : z) m2 += (v - mu) * (v - mu);
  m2 /= double(n);
  EXPECT_NEAR(mu, 0.0, 0.01);
  EXPECT_NEAR(m2, 1.0, 0.01);
  std::vector<int64_t> r = randint(3, 7, {n}).to_vector<int64_t>();
  std::vector<int> counts(4, 0);
  for (int64_t v : r) {
    ASSERT_GE(v, 3);
    ASSERT_LT(v, 7);
    counts[size_t(v - 3)]++;
  }
  for (int c : counts) EXPECT_NEAR(double(c) / double(n), 0.25, 0.01);
  double ones_frac = bernoulli({n}, 0.3).sum().item() / double(n);
  EXPECT_NEAR(ones_frac, 0.3, 0.005);
  EXPECT_THROW(bernoulli({2}, 1.5), Error);
  EXPECT_THROW(randint(5, 5, {2}), Error);
  EXPECT_THROW(rand({2}, {.dtype = DType::i32}), Error);
}

TEST(Random, StreamDependsOnlyOnSeedAndOffset) {
  // Element i of one big draw equals element i of the same draw split in two: the
  // counters, not the call pattern, decide the numbers.
  manual_seed(3);
  std::vector<float> whole = rand({16}).to_vector<float>();
  manual_seed(3);
  std::vector<float> first = rand({8}).to_vector<float>();
  std::vector<float> second = rand({8}).to_vector<float>();
  for (size_t i = 0; i < 8; ++i) {
    EXPECT_EQ(whole[i], first[i]);
    EXPECT_EQ(whole[8 + i], second[i]);
  }
  GeneratorState s = default_generator().state();
  Tensor x = randn({5});
  default_generator().set_state(s);
  EXPECT_EQ(randn({5}).to_vector<float>(), x.to_vector<float>());
}

// The CPU's f32 <-> f16 casts of contiguous tensors use F16C where the CPU has it
// (kernels/cpu/copy.cpp); they must give Half's portable round-to-nearest-even bit for bit:
// every one of the 65536 half patterns to f32, and f32 patterns around every rounding
// boundary (ties, the subnormal range, overflow to inf) plus random ones back to f16.
TEST(Tensor, HalfCastsMatchThePortableConversion) {
  std::vector<uint16_t> all(65536);
  for (size_t i = 0; i < all.size(); ++i) all[i] = uint16_t(i);
  Tensor h = from_blob(all.data(), {65536}, {.dtype = DType::f16});
  std::vector<float> f = h.to(DType::f32).to_vector<float>();
  for (size_t i = 0; i < all.size(); ++i) {
    float ref = Half::to_float(all[i]);
    if (std::isnan(ref)) {
      EXPECT_TRUE(std::isnan(f[i])) << i;
      continue;
    }
    uint32_t a, b;
    std::memcpy(&a, &f[i], 4);
    std::memcpy(&b, &ref, 4);
    ASSERT_EQ(a, b) << "half bits " << i;
  }
  std::vector<float> xs;
  for (size_t i = 0; i < all.size(); ++i) {  // each half value, its neighbours and midpoints
    float v = Half::to_float(all[i]);
    if (!std::isfinite(v)) continue;
    float next = Half::to_float(uint16_t(all[i] + 1));
    xs.push_back(v);
    if (std::isfinite(next) && ((all[i] & 0x7fff) != 0x7bff)) {
      float mid = 0.5f * (v + next);
      xs.push_back(mid);
      xs.push_back(std::nextafter(mid, v));
      xs.push_back(std::nextafter(mid, next));
    }
  }
  for (float v : {65504.0f, 65519.0f, 65520.0f, 65536.0f, 1e10f, 5.96e-8f, 2.98e-8f, 2.99e-8f, 1e-30f, 0.0f, -0.0f})
    for (float s : {1.0f, -1.0f}) xs.push_back(s * v);
  manual_seed(7);
  std::vector<int64_t> r = randint(0, int64_t(1) << 32, {100000}, {.dtype = DType::i64}).to_vector<int64_t>();
  for (int64_t u : r) {
    uint32_t bits = uint32_t(u);
    float v;
    std::memcpy(&v, &bits, 4);
    if (!std::isnan(v)) xs.push_back(v);
  }
  Tensor x = from_vector<float>(xs, {int64_t(xs.size())});
  Tensor y = x.to(DType::f16);
  const uint16_t* yb = static_cast<const uint16_t*>(y.data_ptr());
  for (size_t i = 0; i < xs.size(); ++i) ASSERT_EQ(yb[i], Half::from_float(xs[i])) << "f32 value " << xs[i];
}
