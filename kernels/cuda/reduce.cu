// CUDA reductions over (outer, r, inner). inner == 1: a block per row (rows split across
// several blocks plus a second pass when there are too few rows to fill the GPU);
// inner > 1: a thread per output column, reading coalesced along inner.
#include "kernels/cuda/launch.h"
#include "kernels/reduce_math.h"
#include "tensor/allocator.h"

namespace ember::cuda {

// ---- kernels
template <ReduceOp OP, class A>
__device__ ReduceAcc<A> warp_reduce(ReduceAcc<A> acc) {
  for (int off = 16; off > 0; off /= 2) {
    ReduceAcc<A> o;
    o.v = __shfl_down_sync(0xffffffffu, acc.v, off);
    o.i = __shfl_down_sync(0xffffffffu, acc.i, off);
    acc = reduce_combine<OP, A>(acc, o);
  }
  return acc;
}

/// Reduces one value per thread to thread 0 of the block.
template <ReduceOp OP, class A>
__device__ ReduceAcc<A> block_reduce(ReduceAcc<A> acc) {
  __shared__ A sv[32];
  __shared__ int64_t si[32];
  int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  acc = warp_reduce<OP, A>(acc);
  if (lane == 0) {
    sv[warp] = acc.v;
    si[warp] = acc.i;
  }
  __syncthreads();
  int nwarps = (blockDim.x + 31) / 32;
  if (warp == 0) {
    acc = lane < nwarps ? ReduceAcc<A>{sv[lane], si[lane]} : reduce_identity<OP, A>();
    acc = warp_reduce<OP, A>(acc);
  }
  return acc;
}

template <ReduceOp OP, class A, class O>
__device__ O reduce_finish(ReduceAcc<A> a, int64_t r) {
  if constexpr (OP == ReduceOp::argmax || OP == ReduceOp::argmin) {
    return O(a.i < 0 ? 0 : a.i);
  } else if constexpr (OP == ReduceOp::mean) {
    return O(A(a.v / A(r)));
  } else {
    return O(a.v);
  }
}

/// Block b reduces chunk (b % splits) of row (b / splits); with splits == 1 it writes the
/// final value, otherwise a partial.
template <ReduceOp OP, class T, class A, class O>
__global__ void reduce_rows_kernel(const T* __restrict__ in, O* __restrict__ out,
                                   ReduceAcc<A>* __restrict__ partial, int64_t outer, int64_t r,
                                   int64_t splits) {
  for (int64_t blk = blockIdx.x; blk < outer * splits; blk += gridDim.x) {
    int64_t row = blk / splits, part = blk % splits;
    int64_t b = r * part / splits, e = r * (part + 1) / splits;
    const T* x = in + row * r;
    ReduceAcc<A> acc = reduce_identity<OP, A>();
    for (int64_t j = b + threadIdx.x; j < e; j += blockDim.x)
      acc = reduce_combine<OP, A>(acc, ReduceAcc<A>{A(x[j]), j});
    acc = block_reduce<OP, A>(acc);
    if (threadIdx.x == 0) {
      if (splits == 1) out[row] = reduce_finish<OP, A, O>(acc, r);
      else partial[blk] = acc;
    }
    __syncthreads();  // shared memory is reused by the next row
  }
}

template <ReduceOp OP, class A, class O>
__global__ void reduce_partials_kernel(const ReduceAcc<A>* __restrict__ partial, O* __restrict__ out,
                                       int64_t outer, int64_t splits, int64_t r) {
  for (int64_t row = blockIdx.x; row < outer; row += gridDim.x) {
    ReduceAcc<A> acc = reduce_identity<OP, A>();
    // In order of the splits, so the result does not depend on timing.
    for (int64_t j = threadIdx.x; j < splits; j += blockDim.x)
      acc = reduce_combine<OP, A>(acc, partial[row * splits + j]);
    acc = block_reduce<OP, A>(acc);
    if (threadIdx.x == 0) out[row] = reduce_finish<OP, A, O>(acc, r);
    __syncthreads();
  }
}

template <ReduceOp OP, class T, class A, class O>
__global__ void reduce_cols_kernel(const T* __restrict__ in, O* __restrict__ out, int64_t outer,
                                   int64_t r, int64_t inner) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t k = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; k < outer * inner; k += stride) {
    int64_t o = k / inner, i = k % inner;
    const T* x = in + o * r * inner + i;
    ReduceAcc<A> acc = reduce_identity<OP, A>();
    for (int64_t j = 0; j < r; ++j) acc = reduce_combine<OP, A>(acc, ReduceAcc<A>{A(x[j * inner]), j});
    out[k] = reduce_finish<OP, A, O>(acc, r);
  }
}

// ---- launchers
namespace {
template <ReduceOp OP, class T, class O>
void launch(const T* in, O* out, int64_t outer, int64_t r, int64_t inner, cudaStream_t s) {
  using A = acc_t<T>;
  if (inner > 1) {
    reduce_cols_kernel<OP, T, A, O><<<grid_for(outer * inner), kThreads, 0, s>>>(in, out, outer, r, inner);
    EMBER_CUDA_CHECK_LAUNCH();
    return;
  }
  int dev = 0;
  EMBER_CUDA_CHECK(cudaGetDevice(&dev));
  int64_t target = int64_t(sm_count(dev)) * 4;  // blocks that keep every SM busy
  int64_t splits = 1;
  if (outer < target && r >= 16 * kThreads) {
    splits = std::min<int64_t>(ceil_div(target, outer), ceil_div(r, 4 * kThreads));
    splits = std::max<int64_t>(splits, 1);
  }
  int64_t blocks = std::min<int64_t>(outer * splits, int64_t(1) << 20);
  if (splits == 1) {
    reduce_rows_kernel<OP, T, A, O><<<int(blocks), kThreads, 0, s>>>(in, out, nullptr, outer, r, 1);
    EMBER_CUDA_CHECK_LAUNCH();
    return;
  }
  // Workspace from the caching allocator; stream order makes the early free safe
  // (Note [Streams] in tensor/cuda/allocator.cpp).
  Allocator& alloc = allocator_for(Device(DeviceType::cuda, dev));
  auto* partial = static_cast<ReduceAcc<A>*>(alloc.allocate(size_t(outer * splits) * sizeof(ReduceAcc<A>)));
  reduce_rows_kernel<OP, T, A, O><<<int(blocks), kThreads, 0, s>>>(in, out, partial, outer, r, splits);
  EMBER_CUDA_CHECK_LAUNCH();
  int64_t blocks2 = std::min<int64_t>(outer, int64_t(1) << 20);
  reduce_partials_kernel<OP, A, O><<<int(blocks2), kThreads, 0, s>>>(partial, out, outer, splits, r);
  EMBER_CUDA_CHECK_LAUNCH();
  alloc.deallocate(partial);
}
}  // namespace

void reduce(ReduceOp op, DType in_dtype, const void* in, void* out, int64_t outer, int64_t r,
            int64_t inner, cudaStream_t stream) {
  if (outer * inner == 0) return;
  DType od = reduce_out_dtype(op, in_dtype);
  EMBER_DISPATCH_ALL(in_dtype, reduce_name(op), [&] {
    using T = scalar_t;
    const T* x = static_cast<const T*>(in);
    EMBER_REDUCE_SWITCH(op, [&] {
      if (od == DType::i64) {
        launch<kOp, T, int64_t>(x, static_cast<int64_t*>(out), outer, r, inner, stream);
      } else {
        launch<kOp, T, T>(x, static_cast<T*>(out), outer, r, inner, stream);
      }
    });
  });
}

}  // namespace ember::cuda
