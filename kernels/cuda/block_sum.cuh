#pragma once
// Block-wide sums of a few values at once (warp shuffles, then one warp over the warps):
// the reduction used by the per-channel conv and batch-norm kernels. Deterministic.
#include <cuda_runtime_api.h>

namespace ember::cuda {

/// Sums v[0..K) over the block; every thread gets the totals. blockDim.x % 32 == 0,
/// at most 1024 threads. Contains __syncthreads(): call from all threads.
template <int K, class A>
__device__ void block_sum(A (&v)[K]) {
  __shared__ A shared[K][32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nwarps = blockDim.x / 32;
  for (int k = 0; k < K; ++k)
    for (int off = 16; off > 0; off /= 2) v[k] += __shfl_down_sync(0xffffffffu, v[k], off);
  if (lane == 0)
    for (int k = 0; k < K; ++k) shared[k][warp] = v[k];
  __syncthreads();
  if (warp == 0) {
    for (int k = 0; k < K; ++k) {
      A t = lane < nwarps ? shared[k][lane] : A(0);
      for (int off = 16; off > 0; off /= 2) t += __shfl_down_sync(0xffffffffu, t, off);
      if (lane == 0) shared[k][0] = t;
    }
  }
  __syncthreads();
  for (int k = 0; k < K; ++k) v[k] = shared[k][0];
  __syncthreads();  // shared may be reused by the caller's next round
}

}  // namespace ember::cuda
