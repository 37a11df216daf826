#pragma once
// Batch norm over a contiguous (N, C, S) view (S = H * W, or 1 for 2-D inputs).
// Statistics (mean, invstd) are kept in the accumulation type: f32 for f32/f16/bf16, f64
// for f64. weight, bias and running buffers have the input's dtype and may be null.
#include <cstdint>

#include "core/dtype.h"
#if EMBER_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

namespace ember {
/// The dtype of saved batch-norm statistics for inputs of `dtype`.
inline DType batch_norm_stat_dtype(DType dtype) { return dtype == DType::f64 ? DType::f64 : DType::f32; }
}  // namespace ember

namespace ember::cpu {
/// Batch mean and 1/sqrt(biased var + eps) per channel; when running_mean/var are non-null
/// they become (1 - momentum) * running + momentum * batch (unbiased variance).
void batch_norm_stats(DType dtype, const void* x, void* mean, void* invstd, void* running_mean,
                      void* running_var, int64_t n, int64_t c, int64_t s, double momentum,
                      double eps);
/// y = (x - mean) * invstd * weight + bias.
void batch_norm_apply(DType dtype, const void* x, const void* mean, const void* invstd,
                      const void* weight, const void* bias, void* y, int64_t n, int64_t c, int64_t s);
/// Gradients; `training`: mean/invstd came from this batch (gx sees them depend on x).
/// gx, gw, gb may be null.
void batch_norm_bwd(DType dtype, const void* x, const void* gy, const void* mean, const void* invstd,
                    const void* weight, void* gx, void* gw, void* gb, int64_t n, int64_t c,
                    int64_t s, bool training);
}  // namespace ember::cpu

#if EMBER_WITH_CUDA
namespace ember::cuda {
void batch_norm_stats(DType dtype, const void* x, void* mean, void* invstd, void* running_mean,
                      void* running_var, int64_t n, int64_t c, int64_t s, double momentum,
                      double eps, cudaStream_t stream);
void batch_norm_apply(DType dtype, const void* x, const void* mean, const void* invstd,
                      const void* weight, const void* bias, void* y, int64_t n, int64_t c,
                      int64_t s, cudaStream_t stream);
void batch_norm_bwd(DType dtype, const void* x, const void* gy, const void* mean, const void* invstd,
                    const void* weight, void* gx, void* gw, void* gb, int64_t n, int64_t c,
                    int64_t s, bool training, cudaStream_t stream);
}  // namespace ember::cuda
#endif

#if EMBER_WITH_CUDNN
#include <string>

namespace ember::cudnn {
// Training batch norm on CUDA by ember's kernels or cuDNN's, the faster one per shape
// (Note [Batch norm: ours or cuDNN's] in kernels/cudnn/batch_norm.cpp). On the device's
// current stream; the same arguments and saved statistics as cuda::batch_norm_stats/apply/bwd.
enum class BatchNormImpl { automatic, ember, cudnn };
/// Forces one implementation (automatic: timed per shape). The default comes from
/// EMBER_CUDA_BATCH_NORM (ember, cudnn or auto; unset: auto).
void set_batch_norm_impl(BatchNormImpl impl);
BatchNormImpl batch_norm_impl();
/// Statistics, the running update and y: cuda::batch_norm_stats + batch_norm_apply, or cuDNN.
void batch_norm_train_fwd(DType dtype, const void* x, const void* w, const void* b, void* y, void* mean,
                          void* invstd, void* running_mean, void* running_var, int64_t n, int64_t c, int64_t s,
                          double momentum, double eps, int device, bool deterministic);
/// cuda::batch_norm_bwd with training = true, or cuDNN; eps as in the forward call.
void batch_norm_train_bwd(DType dtype, const void* x, const void* gy, const void* mean, const void* invstd,
                          const void* w, void* gx, void* gw, void* gb, int64_t n, int64_t c, int64_t s, double eps,
                          int device, bool deterministic);
/// The timed choices so far, one line each: pass, dtype, device, shape, both times, the pick.
std::string batch_norm_choices();
void clear_batch_norm_choices();
/// How many calls cuDNN has run (tests and benchmarks check which implementation ran).
int64_t batch_norm_cudnn_calls();
}  // namespace ember::cudnn
#endif
