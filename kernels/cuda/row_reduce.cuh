#pragma once
// Row reductions for kernels that give each row either one warp (blockDim = (32, rows per
// block)) or one whole block (blockDim = (threads, 1)): shuffles inside a warp, shared
// memory across the warps of a block. Every thread of the row gets the result.
#include <cuda_runtime.h>

namespace ember::cuda {

inline constexpr int kWarp = 32;
inline constexpr int kRowsPerWarpBlock = 4;   // warp-per-row launches: rows per block
inline constexpr int kRowBlockThreads = 512;  // block-per-row launches: threads per row
inline constexpr int kWarpRowMaxC = 1024;     // up to this row length a warp per row

struct SumOp {
  template <class A>
  __device__ __forceinline__ A operator()(A a, A b) const { return a + b; }
};
struct MaxOp {
  template <class A>
  __device__ __forceinline__ A operator()(A a, A b) const { return (a != a || a > b) ? a : b; }  // NaN wins
};

template <class A, class Op>
__device__ __forceinline__ A warp_reduce(A v, Op op) {
#pragma unroll
  for (int o = kWarp / 2; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

/// Reduces v over the threads of this row (a warp, or the block when blockDim.x > 32).
/// `identity` fills the unused lanes of the cross-warp step.
template <class A, class Op>
__device__ __forceinline__ A row_reduce(A v, Op op, A identity) {
  v = warp_reduce(v, op);
  if (blockDim.x == kWarp) return v;
  __shared__ double smem_raw[kWarp];  // double-sized slots serve float and double
  A* smem = reinterpret_cast<A*>(smem_raw);
  int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  __syncthreads();  // the previous reduction's readers are done with smem
  if (lane == 0) smem[warp] = v;
  __syncthreads();
  int nwarps = blockDim.x / kWarp;
  v = lane < nwarps ? smem[lane] : identity;
  return warp_reduce(v, op);
}

}  // namespace ember::cuda
