// CPU threading defaults (Note [One thread pool] in kernels/cpu/threads.cpp): OpenBLAS on one
// thread, OMP_WAIT_POLICY=passive chosen by ember and removed from the environment again,
// deterministic mode pinning GEMMs, and large GEMMs split over the OpenMP team.
#include <gtest/gtest.h>
#include <omp.h>

#include <cstdlib>

#include "ember.h"
#include "kernels/cpu/threads.h"
#include "kernels/matmul.h"

extern "C" int openblas_get_num_threads(void);

namespace ember {
namespace {

bool env_set(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0';
}

TEST(CpuThreads, BlasOnOneThreadUnlessTheUserSetIt) {
  if (env_set("OPENBLAS_NUM_THREADS") || env_set("GOTO_NUM_THREADS")) {
    GTEST_SKIP() << "the user set OpenBLAS's thread count";
  }
  EXPECT_EQ(cpu::blas_default_threads(), 1);
  EXPECT_EQ(openblas_get_num_threads(), 1);
}

TEST(CpuThreads, WaitPolicyChosenAndItsVariablesRemoved) {
  // What ember added is gone from the environment (child processes see the user's).
  EXPECT_FALSE(env_set("EMBER_THREAD_DEFAULTS"));
  if (cpu::wait_policy_set_by_ember()) {
    EXPECT_FALSE(env_set("OMP_WAIT_POLICY"));
  } else if (!env_set("OMP_WAIT_POLICY") && !env_set("GOMP_SPINCOUNT") && !env_set("LD_PRELOAD")) {
    ADD_FAILURE() << "no wait policy set, yet ember did not choose passive (this test links kernels/cpu/thread_defaults.cpp)";
  }
}

TEST(CpuThreads, DeterministicModePinsBlasAndGivesItBack) {
  set_deterministic(true);
  EXPECT_EQ(openblas_get_num_threads(), 1);
  EXPECT_TRUE(cpu::blas_pinned());
  set_deterministic(false);
  EXPECT_EQ(openblas_get_num_threads(), cpu::blas_default_threads());
  EXPECT_FALSE(cpu::blas_pinned());
}

TEST(CpuThreads, SplitGemmMatchesOneThread) {
  // MLP-sized products, split by columns (m < n) and by rows (m > n), plain and transposed.
  manual_seed(5);
  struct Case { Shape a, b; bool ta, tb; };
  for (const Case& c : {Case{{64, 784}, {784, 512}, false, false}, Case{{784, 64}, {784, 512}, true, false},
                        Case{{784, 64}, {512, 64}, false, true}, Case{{600, 300}, {300, 40}, false, false}}) {
    Tensor a = randn(c.a), b = randn(c.b);
    Tensor at = c.ta ? a.t() : a, bt = c.tb ? b.t() : b;
    const int before = omp_get_max_threads();
    omp_set_num_threads(1);
    std::vector<float> one = matmul(at, bt).to_vector<float>();
    omp_set_num_threads(std::max(2, before));
    std::vector<float> many = matmul(at, bt).to_vector<float>();
    omp_set_num_threads(before);
    ASSERT_EQ(one.size(), many.size());
    for (size_t i = 0; i < one.size(); ++i) {
      ASSERT_NEAR(one[i], many[i], 1e-4f * (1.0f + std::abs(one[i]))) << "element " << i;
    }
  }
}

}  // namespace
}  // namespace ember
