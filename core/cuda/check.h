#pragma once
// Error checks for CUDA and its libraries: throw ember::Error with file, line and the
// library's own message, so a failure is catchable and readable.
#include <cuda_runtime_api.h>

#include "core/error.h"

namespace ember::cuda::detail {
[[noreturn]] void throw_cuda(cudaError_t e, const char* expr, const char* file, int line);
}  // namespace ember::cuda::detail

#define EMBER_CUDA_CHECK(expr)                                                            \
  do {                                                                                    \
    cudaError_t ember_err_ = (expr);                                                      \
    if (ember_err_ != cudaSuccess)                                                        \
      ::ember::cuda::detail::throw_cuda(ember_err_, #expr, __FILE__, __LINE__);           \
  } while (0)

/// After every kernel launch: a bad configuration surfaces here, not at a later sync.
#define EMBER_CUDA_CHECK_LAUNCH() EMBER_CUDA_CHECK(cudaGetLastError())
