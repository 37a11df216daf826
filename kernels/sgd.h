#pragma once
// Fused SGD step: one pass over parameter, gradient and momentum buffer (contiguous, same
// dtype). The optimizer (optim/sgd.cpp) checks shapes, devices and contiguity.
#include <cstdint>

#include "tensor/dtype.h"
#if EMBER_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

namespace ember {
struct SgdStepArgs {
  double lr = 0.01;
  double momentum = 0.0;
  double dampening = 0.0;
  double weight_decay = 0.0;
  bool nesterov = false;
  bool maximize = false;
  bool first_step = false;  // momentum buffer not yet initialized: it becomes the gradient
};
}  // namespace ember

namespace ember::cpu {
/// param <- SGD(param, grad, momentum_buf); `momentum_buf` may be null when momentum == 0.
void sgd_step(DType dtype, void* param, const void* grad, void* momentum_buf, int64_t n,
              const SgdStepArgs& args);
}

#if EMBER_WITH_CUDA
namespace ember::cuda {
void sgd_step(DType dtype, void* param, const void* grad, void* momentum_buf, int64_t n,
              const SgdStepArgs& args, cudaStream_t stream);
}
#endif
