// matmul and loss paths on CUDA beyond the op-case table (tests/op_cases.cpp, whose OpParity
// tier compares matmul/linear, softmax, losses, dropout and var/std/logsumexp with the CPU):
// the TF32 switch, the GEMM entry point against its CPU twin, bad labels. Skips without a GPU.
#include <string>

#include "kernels/matmul.h"
#if EMBER_WITH_CUDA
#include "core/cuda/stream.h"
#endif
#include "test_util.h"

namespace ember {
namespace {

using test::all_close;

const Device kGpu(DeviceType::cuda, 0);

Tensor rn(const Shape& s, DType dt = DType::f32) { return randn(s, {.dtype = dt}); }
Tensor labels(const std::vector<int64_t>& v, const Shape& s) {
  return from_vector(v, s, {.dtype = DType::i64});
}

TEST(MathopsGpu, Tf32Switch) {
  EMBER_REQUIRE_GPU();
  manual_seed(5);
  Tensor a = rn({256, 256}), b = rn({256, 256});
  Tensor ref = matmul(a.to(DType::f64), b.to(DType::f64));
  ASSERT_FALSE(cuda::allow_tf32());  // off by default
  Tensor exact = matmul(a.to(kGpu), b.to(kGpu)).cpu().to(DType::f64);
  EXPECT_TRUE(all_close(exact, ref, 1e-4, 1e-4));
  cuda::set_allow_tf32(true);
  Tensor fast = matmul(a.to(kGpu), b.to(kGpu)).cpu().to(DType::f64);
  cuda::set_allow_tf32(false);
  EXPECT_TRUE(all_close(fast, ref, 2e-2, 2e-1));  // 10-bit mantissa inputs
}

TEST(MathopsGpu, GemmEntryPointMatchesCpuTwin) {
  EMBER_REQUIRE_GPU();
#if EMBER_WITH_CUDA
  // C = 0.5 * A^T @ B^T + 2 * C over 3 batch entries, with padded leading dims.
  GemmParams p;
  p.trans_a = true;
  p.trans_b = true;
  p.m = 5;
  p.n = 4;
  p.k = 6;
  p.lda = 7;   // A stored (k, m) with ld 7
  p.ldb = 8;   // B stored (n, k) with ld 8
  p.ldc = 6;
  p.stride_a = 6 * 7;
  p.stride_b = 4 * 8;
  p.stride_c = 5 * 6;
  p.batch = 3;
  p.alpha = 0.5;
  p.beta = 2.0;
  for (DType dt : {DType::f32, DType::f64, DType::f16, DType::bf16}) {
    Tensor a = rn({3 * 6 * 7}, dt), b = rn({3 * 4 * 8}, dt), c = rn({3 * 5 * 6}, dt);
    Tensor cc = c.clone();
    cpu::gemm_strided_batched(dt, a.data_ptr(), b.data_ptr(), cc.data_ptr(), p);
    Tensor ag = a.to(kGpu), bg = b.to(kGpu), cg = c.to(kGpu);
    cuda::gemm_strided_batched(dt, ag.data_ptr(), bg.data_ptr(), cg.data_ptr(), p,
                               cuda::current_stream(0));
    double tol = dt == DType::f64 ? 1e-12 : dt == DType::f32 ? 1e-5 : dt == DType::f16 ? 1e-2 : 5e-2;
    EXPECT_TRUE(all_close(cg.cpu().to(DType::f64), cc.to(DType::f64), tol, tol)) << dtype_name(dt);
  }
  // A cuBLAS failure is an ember::Error naming cuBLAS, file and line.
  GemmParams bad = p;
  bad.lda = 1;  // below m for a transposed A
  Tensor a = rn({300}).to(kGpu), b = rn({300}).to(kGpu), c = rn({300}).to(kGpu);
  try {
    cuda::gemm_strided_batched(DType::f32, a.data_ptr(), b.data_ptr(), c.data_ptr(), bad,
                               cuda::current_stream(0));
    ADD_FAILURE() << "no error for lda = 1";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("cuBLAS"), std::string::npos) << msg;
    EXPECT_NE(msg.find("matmul.cpp"), std::string::npos) << msg;
  }
#endif
}

TEST(MathopsGpu, BadLabelIsAnError) {
  EMBER_REQUIRE_GPU();
  Tensor x = rn({4, 3}).to(kGpu);
  for (int64_t bad : {3, -2}) {
    Tensor lab = labels({0, 1, bad, 2}, {4}).to(kGpu);
    // Reported at the next synchronization (Note [Deferred checks]), here the item().
    Tensor loss = cross_entropy(x, lab);
    try {
      (void)loss.item();
      ADD_FAILURE() << "no error";
    } catch (const Error& e) {
      std::string msg = e.what();
      EXPECT_NE(msg.find("label " + std::to_string(bad) + " at position 2"), std::string::npos) << msg;
      EXPECT_NE(msg.find("3 classes"), std::string::npos) << msg;
    }
    Tensor nll = nll_loss(x, lab);
    EXPECT_THROW(cuda::synchronize(), Error);
  }
  // The device stays usable afterwards.
  EXPECT_NO_THROW(cross_entropy(x, labels({0, 1, 2, 2}, {4}).to(kGpu)).cpu());
}

}  // namespace
}  // namespace ember
