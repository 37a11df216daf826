#pragma once
// Strided-batched GEMM, row-major: for b in [0, batch):
//   C_b = alpha * op(A_b) @ op(B_b) + beta * C_b,  op(X) = X or X^T (trans flag)
// with A_b = a + b * stride_a (likewise B, C). op(A) is (m, k), op(B) is (k, n), C is (m, n).
// A stored matrix has rows of `ld` elements: A is (m, k) with lda >= k, or (k, m) with
// lda >= m when trans_a. A batch stride of 0 reuses one matrix for every batch entry.
#include <cstdint>

#include "core/dtype.h"
#if EMBER_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

namespace ember {

struct GemmParams {
  bool trans_a = false, trans_b = false;
  int64_t m = 0, n = 0, k = 0;
  int64_t lda = 0, ldb = 0, ldc = 0;
  int64_t stride_a = 0, stride_b = 0, stride_c = 0;  // elements between batch entries
  int64_t batch = 1;
  double alpha = 1.0, beta = 0.0;
};

}  // namespace ember

namespace ember::cpu {
/// OpenBLAS for f32/f64; f16/bf16 convert to f32, multiply, convert back.
void gemm_strided_batched(DType dtype, const void* a, const void* b, void* c,
                          const GemmParams& p);
/// OpenBLAS's rounding depends on its own thread count, and a GEMM split over ember's threads
/// on theirs, so deterministic mode runs every GEMM whole on one thread (`on`), or gives
/// OpenBLAS back its default count (cpu::blas_default_threads: 1 unless the user set
/// OPENBLAS_NUM_THREADS) and lets large GEMMs split again. Other ember loops are not affected.
void set_blas_single_threaded(bool on);
}  // namespace ember::cpu

#if EMBER_WITH_CUDA
namespace ember::cuda {
/// cuBLAS on the current device: f32 (TF32 only when allow_tf32()), f64, f16/bf16 with f32
/// compute. Runs on `stream`.
void gemm_strided_batched(DType dtype, const void* a, const void* b, void* c,
                          const GemmParams& p, cudaStream_t stream);
}  // namespace ember::cuda
#endif
