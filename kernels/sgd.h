#pragma once
// Fused SGD step: one pass over parameter, gradient and momentum buffer (contiguous, same
// dtype). The optimizer (optim/sgd.cpp) checks shapes, devices and contiguity.
#include <cstdint>

#include "core/dtype.h"
#include "kernels/sgd_math.h"  // SgdOptions, SgdStepArgs
#if EMBER_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

namespace ember::cpu {
/// param <- SGD(param, grad, momentum_buf); `momentum_buf` may be null when momentum == 0.
void sgd_step(DType dtype, void* param, const void* grad, void* momentum_buf, int64_t n,
              const SgdStepArgs& args);
}

#if EMBER_WITH_CUDA
#include <vector>

namespace ember::cuda {
void sgd_step(DType dtype, void* param, const void* grad, void* momentum_buf, int64_t n,
              const SgdStepArgs& args, cudaStream_t stream);

/// One parameter of a multi-tensor step (contiguous; `buf` null when momentum is off).
struct SgdSlice {
  void* param;
  const void* grad;
  void* buf;
  int64_t n;
};
/// The same update for many parameters of one dtype in a few launches (chunks of every
/// tensor spread over one grid) instead of one launch per parameter. All slices share
/// `args` (so all have a buffer, or none; first_step alike). Element arithmetic as sgd_step.
void sgd_step_multi(DType dtype, const std::vector<SgdSlice>& slices, const SgdStepArgs& args,
                    cudaStream_t stream);
}  // namespace ember::cuda
#endif
