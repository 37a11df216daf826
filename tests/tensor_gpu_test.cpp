// CUDA tensors against their CPU twins: transfers, copies and casts (contiguous, strided,
// misaligned, broadcast), fill, seeded random fills, and the caching allocator's
// statistics and out-of-memory error. Every test skips visibly without a GPU.
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "test_util.h"

namespace ember {
namespace {

const DType kAllDTypes[] = {DType::f32, DType::f64, DType::f16, DType::bf16,
                            DType::i32, DType::i64, DType::u8,  DType::b8};
const DType kFloatDTypes[] = {DType::f32, DType::f64, DType::f16, DType::bf16};
const Device kGPU{DeviceType::cuda, 0};

/// The raw bytes of t's elements in row-major order (for bit-exact comparisons).
std::vector<unsigned char> bytes_of(const Tensor& t) {
  Tensor c = t.cpu().contiguous();
  std::vector<unsigned char> b(size_t(c.nbytes()));
  if (!b.empty()) std::memcpy(b.data(), c.data_ptr(), b.size());
  return b;
}

::testing::AssertionResult bit_equal(const Tensor& gpu, const Tensor& cpu) {
  if (gpu.shape() != cpu.shape() || gpu.dtype() != cpu.dtype()) {
    return ::testing::AssertionFailure()
           << "got " << gpu.shape_str() << " " << dtype_name(gpu.dtype()) << ", expected "
           << cpu.shape_str() << " " << dtype_name(cpu.dtype());
  }
  std::vector<unsigned char> a = bytes_of(gpu), b = bytes_of(cpu);
  int64_t es = dtype_size(cpu.dtype());
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i] != b[i]) {
      return ::testing::AssertionFailure()
             << dtype_name(cpu.dtype()) << " element " << int64_t(i) / es << " differs: cuda "
             << gpu.cpu().to_vector<double>()[i / size_t(es)] << " vs cpu "
             << cpu.to_vector<double>()[i / size_t(es)];
    }
  }
  return ::testing::AssertionSuccess();
}

/// n values valid in every dtype: non-negative, below 256, with fractions that need rounding
/// in f16/bf16 (so casts are exercised, not just moved).
Tensor sample_values(int64_t n, DType dtype) {
  std::vector<double> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[size_t(i)] = double((i * 37) % 251) + double(i % 7) / 7.0;
  return from_vector(v, {n}, {.dtype = dtype});
}

// ---- transfers and copies

TEST(TensorGpu, RoundTripEveryDtype) {
  EMBER_REQUIRE_GPU();
  for (DType dt : kAllDTypes) {
    for (int64_t n : {int64_t(1), int64_t(1027), int64_t(1) << 20}) {
      Tensor x = sample_values(n, dt);
      Tensor g = x.to(kGPU);
      EXPECT_EQ(g.device(), kGPU);
      EXPECT_EQ(g.dtype(), dt);
      EXPECT_TRUE(bit_equal(g, x)) << dtype_name(dt) << " n=" << n;
      EXPECT_TRUE(bit_equal(g.clone(), x)) << "device-to-device clone, " << dtype_name(dt);
    }
  }
}

TEST(TensorGpu, CastsMatchCpuForEveryDtypePair) {
  EMBER_REQUIRE_GPU();
  // 4099: a vectorized body plus a scalar tail; the offset-1 view is misaligned, which forces
  // the scalar kernel throughout.
  for (DType from : kAllDTypes) {
    Tensor x = sample_values(4099, from);
    Tensor xg = x.to(kGPU);
    Tensor x_off = make_view(x, {4098}, {1}, 1);
    Tensor xg_off = make_view(xg, {4098}, {1}, 1);
    for (DType to : kAllDTypes) {
      EXPECT_TRUE(bit_equal(xg.to(to), x.to(to))) << dtype_name(from) << " -> " << dtype_name(to);
      EXPECT_TRUE(bit_equal(xg_off.to(to), x_off.to(to)))
          << "misaligned " << dtype_name(from) << " -> " << dtype_name(to);
    }
  }
}

TEST(TensorGpu, CastsRoundLikeCpu) {
  EMBER_REQUIRE_GPU();
  // Values at f16/bf16 rounding boundaries, overflow, subnormals, signed zero and the
  // f64 -> f32 -> f16 double rounding.
  std::vector<double> v = {0.0,     -0.0,    1.0 / 3.0, 65504.0, 65520.0,  70000.0, -1e9,
                           6e-8,    3e-8,    1e-40,     2049.0,  1.00048828125,   -3.999,
                           1.0 + 1.0 / 256.0, 1e38, -7.5, 1e-5, 0.1};
  Tensor x = from_vector(v, {int64_t(v.size())}, {.dtype = DType::f64});
  for (DType mid : {DType::f64, DType::f32}) {
    Tensor xm = x.to(mid), xg = xm.to(kGPU);
    for (DType to : kFloatDTypes) {
      EXPECT_TRUE(bit_equal(xg.to(to), xm.to(to))) << dtype_name(mid) << " -> " << dtype_name(to);
    }
    EXPECT_TRUE(bit_equal(xg.to(DType::b8), xm.to(DType::b8))) << dtype_name(mid) << " -> b8";
  }
}

TEST(TensorGpu, TransposedAndSlicedCopies) {
  EMBER_REQUIRE_GPU();
  for (DType dt : {DType::f32, DType::f16, DType::i64, DType::u8}) {
    Tensor x = sample_values(64 * 48, dt);  // viewed as (64, 48)
    Tensor xg = x.to(kGPU);
    // (48, 64) transpose.
    Tensor t = make_view(x, {48, 64}, {1, 48}, 0), tg = make_view(xg, {48, 64}, {1, 48}, 0);
    EXPECT_FALSE(tg.is_contiguous());
    EXPECT_TRUE(bit_equal(tg.contiguous(), t.contiguous())) << dtype_name(dt);
    // Every other row and every third column, from an offset: (31, 15).
    Tensor s = make_view(x, {31, 15}, {96, 3}, 50), sg = make_view(xg, {31, 15}, {96, 3}, 50);
    EXPECT_TRUE(bit_equal(sg.contiguous(), s.contiguous())) << dtype_name(dt);
    // Strided source with a cast.
    EXPECT_TRUE(bit_equal(tg.to(DType::f64), t.to(DType::f64))) << dtype_name(dt);
    EXPECT_TRUE(bit_equal(sg.to(DType::bf16), s.to(DType::bf16))) << dtype_name(dt);
  }
}

TEST(TensorGpu, CopyIntoStridedDestination) {
  EMBER_REQUIRE_GPU();
  Tensor src = sample_values(48 * 64, DType::f32);  // (48, 64) once viewed
  Tensor src2d = make_view(src, {48, 64}, {64, 1}, 0);
  Tensor dst = zeros({64 * 48}, {.dtype = DType::f16});
  Tensor dstg = dst.to(kGPU);
  // Write into the (48, 64) transpose of a (64, 48) buffer, casting f32 -> f16 on the way.
  make_view(dst, {48, 64}, {1, 48}, 0).copy_(src2d);
  make_view(dstg, {48, 64}, {1, 48}, 0).copy_(src2d.to(kGPU));
  EXPECT_TRUE(bit_equal(dstg, dst));
  // From the host straight into a strided device view, and back into a strided host view.
  Tensor dstg2 = zeros({64 * 48}, {.dtype = DType::f16, .device = kGPU});
  make_view(dstg2, {48, 64}, {1, 48}, 0).copy_(src2d);
  EXPECT_TRUE(bit_equal(dstg2, dst));
  Tensor host = zeros({64 * 48}, {.dtype = DType::f32});
  make_view(host, {48, 64}, {1, 48}, 0).copy_(src2d.to(kGPU));
  Tensor host_ref = zeros({64 * 48}, {.dtype = DType::f32});
  make_view(host_ref, {48, 64}, {1, 48}, 0).copy_(src2d);
  EXPECT_TRUE(bit_equal(host, host_ref));
}

TEST(TensorGpu, BroadcastCopy) {
  EMBER_REQUIRE_GPU();
  Tensor row = sample_values(37, DType::f32);  // broadcast over 19 rows
  Tensor d = zeros({19, 37}, {.dtype = DType::f64});
  Tensor dg = zeros({19, 37}, {.dtype = DType::f64, .device = kGPU});
  d.copy_(row);
  dg.copy_(row.to(kGPU));
  EXPECT_TRUE(bit_equal(dg, d));
}

// ---- fill

TEST(TensorGpu, FillMatchesCpu) {
  EMBER_REQUIRE_GPU();
  for (DType dt : kAllDTypes) {
    for (double v : {0.0, -0.0, 1.0, 2.75, 1.0 / 3.0}) {
      for (int64_t n : {int64_t(3), int64_t(1029), int64_t(1) << 18}) {
        Tensor c = empty({n}, {.dtype = dt});
        Tensor g = empty({n}, {.dtype = dt, .device = kGPU});
        c.fill_(v);
        g.fill_(v);
        EXPECT_TRUE(bit_equal(g, c)) << dtype_name(dt) << " value " << v << " n=" << n;
      }
    }
  }
}

TEST(TensorGpu, FillStridedAndMisalignedViews) {
  EMBER_REQUIRE_GPU();
  for (DType dt : {DType::f32, DType::f16, DType::u8, DType::f64}) {
    Tensor c = zeros({40 * 30}, {.dtype = dt});
    Tensor g = zeros({40 * 30}, {.dtype = dt, .device = kGPU});
    // A (15, 20) strided window, and a misaligned contiguous run.
    make_view(c, {15, 20}, {60, 2}, 7).fill_(3.5);
    make_view(g, {15, 20}, {60, 2}, 7).fill_(3.5);
    make_view(c, {999}, {1}, 101).fill_(-0.0);
    make_view(g, {999}, {1}, 101).fill_(-0.0);
    make_view(c, {77}, {1}, 3).fill_(9.0);
    make_view(g, {77}, {1}, 3).fill_(9.0);
    EXPECT_TRUE(bit_equal(g, c)) << dtype_name(dt);
  }
}

// ---- random: one seed, the same numbers on both devices (Note [Counter-based RNG])

TEST(TensorGpu, UniformIsBitExactAcrossDevices) {
  EMBER_REQUIRE_GPU();
  for (DType dt : kFloatDTypes) {
    for (int64_t n : {int64_t(1), int64_t(4099), int64_t(1) << 20}) {
      manual_seed(1234);
      Tensor a = rand({n}, {.dtype = dt});
      Tensor a2 = uniform({n}, -3.0, 5.0, {.dtype = dt});
      manual_seed(1234);
      Tensor b = rand({n}, {.dtype = dt, .device = kGPU});
      Tensor b2 = uniform({n}, -3.0, 5.0, {.dtype = dt, .device = kGPU});
      EXPECT_TRUE(bit_equal(b, a)) << "rand " << dtype_name(dt) << " n=" << n;
      EXPECT_TRUE(bit_equal(b2, a2)) << "uniform " << dtype_name(dt) << " n=" << n;
    }
  }
}

TEST(TensorGpu, RandintAndBernoulliAreBitExactAcrossDevices) {
  EMBER_REQUIRE_GPU();
  for (DType dt : {DType::i64, DType::i32, DType::u8, DType::f32}) {
    manual_seed(99);
    Tensor a = randint(0, 200, {5003}, {.dtype = dt});
    manual_seed(99);
    Tensor b = randint(0, 200, {5003}, {.dtype = dt, .device = kGPU});
    EXPECT_TRUE(bit_equal(b, a)) << "randint " << dtype_name(dt);
  }
  manual_seed(5);
  Tensor a = randint(-1000000, 1000000, {3, 1001});
  manual_seed(5);
  Tensor b = randint(-1000000, 1000000, {3, 1001}, {.dtype = DType::i64, .device = kGPU});
  EXPECT_TRUE(bit_equal(b, a)) << "randint with negative low";
  for (DType dt : {DType::f32, DType::f16, DType::b8, DType::u8}) {
    manual_seed(7);
    Tensor p = bernoulli({10007}, 0.3, {.dtype = dt});
    manual_seed(7);
    Tensor q = bernoulli({10007}, 0.3, {.dtype = dt, .device = kGPU});
    EXPECT_TRUE(bit_equal(q, p)) << "bernoulli " << dtype_name(dt);
  }
}

TEST(TensorGpu, NormalIsCloseAcrossDevices) {
  EMBER_REQUIRE_GPU();
  struct Tol {
    DType dt;
    double rtol, atol;
  };
  // The libm's sin/cos/log may differ in the last ulp between host and device.
  for (Tol t : {Tol{DType::f64, 1e-12, 1e-12}, Tol{DType::f32, 1e-5, 1e-5},
                Tol{DType::f16, 2e-3, 2e-3}, Tol{DType::bf16, 1e-2, 1e-2}}) {
    manual_seed(42);
    Tensor a = randn({10001}, {.dtype = t.dt});
    Tensor a2 = normal({513}, 2.0, 0.5, {.dtype = t.dt});
    manual_seed(42);
    Tensor b = randn({10001}, {.dtype = t.dt, .device = kGPU});
    Tensor b2 = normal({513}, 2.0, 0.5, {.dtype = t.dt, .device = kGPU});
    EXPECT_TRUE(test::all_close(b.cpu(), a, t.rtol, t.atol)) << dtype_name(t.dt);
    EXPECT_TRUE(test::all_close(b2.cpu(), a2, t.rtol, t.atol)) << dtype_name(t.dt);
  }
}

TEST(TensorGpu, RandomStreamAdvancesAlikeOnBothDevices) {
  EMBER_REQUIRE_GPU();
  // Mixing devices inside one seeded run: the k-th draw is the same wherever it runs.
  manual_seed(3);
  Tensor a1 = rand({100});
  Tensor a2 = randn({101});
  Tensor a3 = rand({7});
  manual_seed(3);
  Tensor b1 = rand({100}, {.device = kGPU});
  Tensor b2 = randn({101});  // on the CPU this time
  Tensor b3 = rand({7}, {.device = kGPU});
  EXPECT_TRUE(bit_equal(b1, a1));
  EXPECT_TRUE(bit_equal(b2, a2));
  EXPECT_TRUE(bit_equal(b3, a3));
}

// ---- the caching allocator

// scripts/gpu_check.sh reruns these tests under compute-sanitizer with EMBER_CUDA_ALLOC=direct
// (no caching): the allocator tests check what each mode promises.
bool caching_on() {
  const char* e = std::getenv("EMBER_CUDA_ALLOC");
  return !(e && std::string(e) == "direct");
}

TEST(TensorGpu, MemoryStatsGoUpAndDown) {
  EMBER_REQUIRE_GPU();
  cuda::synchronize(0);
  cuda::empty_cache(0);
  MemoryStats s0 = cuda::memory_stats(0);
  constexpr int64_t kBytes = 4 << 20;  // a large-pool block
  {
    Tensor t = empty({kBytes / 4}, {.dtype = DType::f32, .device = kGPU});
    MemoryStats s1 = cuda::memory_stats(0);
    EXPECT_EQ(s1.allocated - s0.allocated, kBytes);
    if (caching_on()) {
      EXPECT_GE(s1.reserved - s0.reserved, kBytes);
    } else {
      EXPECT_EQ(s1.reserved - s0.reserved, kBytes);
    }
    EXPECT_GE(s1.peak, s1.allocated);
    EXPECT_EQ(s1.num_allocs, s0.num_allocs + 1);
  }
  MemoryStats s2 = cuda::memory_stats(0);
  EXPECT_EQ(s2.allocated, s0.allocated);
  if (!caching_on()) {
    EXPECT_EQ(s2.reserved, s0.reserved) << "direct mode returns memory at once";
    return;
  }
  EXPECT_GT(s2.reserved, s0.reserved) << "the freed block stays cached";
  {
    // The same size again comes from the cache: nothing new is reserved.
    Tensor t = empty({kBytes / 4}, {.dtype = DType::f32, .device = kGPU});
    EXPECT_EQ(cuda::memory_stats(0).reserved, s2.reserved);
  }
  cuda::empty_cache(0);
  MemoryStats s3 = cuda::memory_stats(0);
  EXPECT_EQ(s3.reserved, s0.reserved);
  EXPECT_GE(s3.peak, s0.allocated + kBytes);
  cuda::reset_peak_memory_stats(0);
  EXPECT_EQ(cuda::memory_stats(0).peak, cuda::memory_stats(0).allocated);
}

TEST(TensorGpu, SmallTensorsShareASegment) {
  EMBER_REQUIRE_GPU();
  if (!caching_on()) GTEST_SKIP() << "EMBER_CUDA_ALLOC=direct: no segments to share";
  cuda::empty_cache(0);
  MemoryStats s0 = cuda::memory_stats(0);
  std::vector<Tensor> ts;
  for (int i = 0; i < 16; ++i) ts.push_back(empty({1000}, {.dtype = DType::f32, .device = kGPU}));
  MemoryStats s1 = cuda::memory_stats(0);
  EXPECT_EQ(s1.allocated - s0.allocated, 16 * 4096);  // 4000 bytes round to 4096
  EXPECT_LE(s1.reserved - s0.reserved, int64_t(2) << 20) << "one 2 MiB small segment at most";
  ts.clear();
  cuda::empty_cache(0);
  EXPECT_EQ(cuda::memory_stats(0).reserved, s0.reserved);
}

TEST(TensorGpu, OutOfMemoryErrorSaysWhatWasAsked) {
  EMBER_REQUIRE_GPU();
  MemoryStats s0 = cuda::memory_stats(0);
  const int64_t absurd = int64_t(1) << 50;  // 1 PiB
  try {
    Tensor t = empty({absurd}, {.dtype = DType::u8, .device = kGPU});
    FAIL() << "allocating 1 PiB succeeded";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("out of memory on cuda:0"), std::string::npos) << m;
    EXPECT_NE(m.find("tried to allocate 1.00 PiB (1125899906842624 bytes)"), std::string::npos) << m;
    EXPECT_NE(m.find("allocated"), std::string::npos) << m;
    EXPECT_NE(m.find("cached and free"), std::string::npos) << m;
    EXPECT_NE(m.find("the GPU has"), std::string::npos) << m;
  }
  EXPECT_EQ(cuda::memory_stats(0).num_ooms, s0.num_ooms + 1);
  // The failed cudaMalloc leaves no sticky error behind: kernels still launch and check.
  Tensor ok = full({1000}, 2.0, {.device = kGPU});
  std::vector<float> v = ok.to_vector<float>();
  EXPECT_EQ(v.front(), 2.0f);
  EXPECT_EQ(v.back(), 2.0f);
}

TEST(TensorGpu, BadDeviceIndexIsAnError) {
  EMBER_REQUIRE_GPU();
  int n = cuda::device_count();
  EXPECT_THROW(cuda::memory_stats(n), Error);
  EXPECT_THROW(cuda::empty_cache(-1), Error);
}

}  // namespace
}  // namespace ember
