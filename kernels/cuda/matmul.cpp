// CUDA strided-batched GEMM through cuBLAS (cublasGemmStridedBatchedEx).
#include <climits>
#include <string>
#include <vector>

#include "kernels/cuda/cublas_check.h"
#include "kernels/cuda/thread_handles.h"
#include "kernels/matmul.h"
#include "core/cuda_context.h"

namespace ember::cuda {

namespace detail {
void throw_cublas(cublasStatus_t s, const char* expr, const char* file, int line) {
  throw Error(std::string("cuBLAS error ") + cublasGetStatusName(s) + " (" +
              cublasGetStatusString(s) + ") in " + expr + " at " + file + ":" +
              std::to_string(line));
}
}  // namespace detail

// One handle per thread and device: Note [Library handles] in kernels/cuda/thread_handles.h.
cublasHandle_t cublas_handle(int device, cudaStream_t stream) {
  EMBER_CHECK(device >= 0, "cublas_handle: expected a device index >= 0, got ", device);
  thread_local ThreadHandles<cublasHandle_t> mine(+[](cublasHandle_t h) { (void)cublasDestroy(h); });
  cublasHandle_t& h = mine.slot(device);
  if (!h) {
    detail::watch_process_exit();
    EMBER_CUBLAS_CHECK(cublasCreate(&h));
  }
  EMBER_CUBLAS_CHECK(cublasSetStream(h, stream));
  return h;
}

void gemm_strided_batched(DType dtype, const void* a, const void* b, void* c,
                          const GemmParams& p, cudaStream_t stream) {
  EMBER_CHECK(p.m >= 0 && p.n >= 0 && p.k >= 0 && p.batch >= 0, "gemm: negative size m=", p.m,
              " n=", p.n, " k=", p.k, " batch=", p.batch);
  EMBER_CHECK(p.m < INT_MAX && p.n < INT_MAX && p.k < INT_MAX && p.batch < INT_MAX &&
                  p.lda < INT_MAX && p.ldb < INT_MAX && p.ldc < INT_MAX,
              "gemm: dimensions above 2^31 are not supported by cuBLAS (m=", p.m, " n=", p.n,
              " k=", p.k, " batch=", p.batch, ")");
  if (p.m == 0 || p.n == 0 || p.batch == 0) return;
  int device = 0;
  EMBER_CUDA_CHECK(cudaGetDevice(&device));
  cublasHandle_t h = cublas_handle(device, stream);

  cudaDataType_t type;
  cublasComputeType_t compute;
  switch (dtype) {
    case DType::f32:
      type = CUDA_R_32F;
      compute = allow_tf32() ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
      break;
    case DType::f64: type = CUDA_R_64F; compute = CUBLAS_COMPUTE_64F; break;
    case DType::f16: type = CUDA_R_16F; compute = CUBLAS_COMPUTE_32F; break;
    case DType::bf16: type = CUDA_R_16BF; compute = CUBLAS_COMPUTE_32F; break;
    default:
      EMBER_THROW("matmul: expected a floating dtype (f32, f64, f16, bf16), got ",
                  dtype_name(dtype));
  }
  // alpha/beta live on the host, in the compute type.
  float alpha_f = float(p.alpha), beta_f = float(p.beta);
  double alpha_d = p.alpha, beta_d = p.beta;
  const void* alpha = dtype == DType::f64 ? static_cast<const void*>(&alpha_d) : &alpha_f;
  const void* beta = dtype == DType::f64 ? static_cast<const void*>(&beta_d) : &beta_f;
  EMBER_CUBLAS_CHECK(cublasSetPointerMode(h, CUBLAS_POINTER_MODE_HOST));

  // Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: swap the operands,
  // and every stored row-major matrix reads as its transpose with the same ld.
  // cuBLAS wants ld >= 1 even for an empty operand (k == 0).
  int lda = int(std::max<int64_t>(p.lda, 1)), ldb = int(std::max<int64_t>(p.ldb, 1));
  int ldc = int(std::max<int64_t>(p.ldc, 1));
  EMBER_CUBLAS_CHECK(cublasGemmStridedBatchedEx(
      h, p.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, p.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, int(p.n),
      int(p.m), int(p.k), alpha, b, type, ldb, p.stride_b, a, type, lda, p.stride_a, beta, c,
      type, ldc, p.stride_c, int(p.batch), compute, CUBLAS_GEMM_DEFAULT));
}

}  // namespace ember::cuda
