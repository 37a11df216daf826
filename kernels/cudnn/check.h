#pragma once
// cuDNN plumbing: EMBER_CUDNN_CHECK (throws ember::Error with file, line and cuDNN's
// message) and one handle per device and thread, bound to the device's current stream.
#include <cudnn.h>

#include "core/error.h"

namespace ember::cudnn::detail {
[[noreturn]] void throw_cudnn(cudnnStatus_t s, const char* expr, const char* file, int line);
}  // namespace ember::cudnn::detail

#define EMBER_CUDNN_CHECK(expr)                                                            \
  do {                                                                                     \
    cudnnStatus_t ember_st_ = (expr);                                                      \
    if (ember_st_ != CUDNN_STATUS_SUCCESS)                                                 \
      ::ember::cudnn::detail::throw_cudnn(ember_st_, #expr, __FILE__, __LINE__);           \
  } while (0)

namespace ember::cudnn {
/// This thread's handle for `device` (made current by the caller; made on first use,
/// destroyed when the thread ends), set to the device's current stream.
cudnnHandle_t handle(int device);
}  // namespace ember::cudnn
