#pragma once
// cuBLAS errors as ember::Error (file, line, cuBLAS's own message), and the cuBLAS handle
// of the calling thread for a device, bound to the given stream (Note [Library handles] in
// kernels/cuda/thread_handles.h).
#include <cublas_v2.h>

#include "core/cuda/check.h"

namespace ember::cuda {
namespace detail {
[[noreturn]] void throw_cublas(cublasStatus_t s, const char* expr, const char* file, int line);
}  // namespace detail

/// The calling thread's cuBLAS handle of `device` (created on first use, one per thread and
/// device, destroyed when the thread ends), with its stream set to `stream`. Call with
/// `device` current.
cublasHandle_t cublas_handle(int device, cudaStream_t stream);
}  // namespace ember::cuda

#define EMBER_CUBLAS_CHECK(expr)                                                          \
  do {                                                                                    \
    cublasStatus_t ember_st_ = (expr);                                                    \
    if (ember_st_ != CUBLAS_STATUS_SUCCESS)                                               \
      ::ember::cuda::detail::throw_cublas(ember_st_, #expr, __FILE__, __LINE__);          \
  } while (0)
