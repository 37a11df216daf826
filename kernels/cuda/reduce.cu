// CUDA reductions over (outer, r, inner). inner == 1: a block per row (rows split across
// several blocks plus a second pass when there are too few rows to fill the GPU); sum and
// mean there take 16-byte vector loads into four independent accumulators and shuffle
// values only (no index). inner > 1: a thread per output column, reading coalesced along
// inner, with r split across blocks plus an ordered second pass when the columns are too
// few to fill the GPU (a bias gradient: 4096 rows, 10 columns).
// Every split is fixed by the shape and the GPU, so results do not depend on timing.
// Speed: none of this has been measured on a GPU yet.
#include "kernels/cuda/block_sum.cuh"
#include "kernels/cuda/launch.h"
#include "kernels/reduce_math.h"
#include "core/allocator.h"

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

/// sum/mean of rows, as reduce_rows_kernel computes them (same chunks, same partials), but
/// with a scalar head up to a 16-byte boundary, a vector body four loads deep per thread,
/// and a scalar tail. The order of the additions differs from the generic kernel's; it is
/// fixed, so results repeat.
template <ReduceOp OP, class T, class A, class O>
__global__ void sum_rows_kernel(const T* __restrict__ in, O* __restrict__ out,
                                ReduceAcc<A>* __restrict__ partial, int64_t outer, int64_t r,
                                int64_t splits) {
  constexpr int V = vec_width<T>();
  using VT = Vec<T, V>;
  const int64_t bd = blockDim.x;
  for (int64_t blk = blockIdx.x; blk < outer * splits; blk += gridDim.x) {
    int64_t row = blk / splits, part = blk % splits;
    int64_t b = r * part / splits, e = r * (part + 1) / splits;
    const T* x = in + row * r;
    A acc[4] = {A(0), A(0), A(0), A(0)};
    // Elements before the first 16-byte boundary (T's alignment makes this exact).
    int64_t mis = int64_t(reinterpret_cast<uintptr_t>(x + b) % sizeof(VT)) / int64_t(sizeof(T));
    int64_t vb = mis == 0 ? b : b + (V - mis);
    if (vb > e) vb = e;
    for (int64_t j = b + threadIdx.x; j < vb; j += bd) acc[0] += A(x[j]);
    const int64_t nv = (e - vb) / V;
    const VT* xv = reinterpret_cast<const VT*>(x + vb);
    int64_t k = threadIdx.x;
    for (; k + 3 * bd < nv; k += 4 * bd) {
      VT a0 = xv[k], a1 = xv[k + bd], a2 = xv[k + 2 * bd], a3 = xv[k + 3 * bd];
#pragma unroll
      for (int q = 0; q < V; ++q) {
        acc[0] += A(a0.v[q]);
        acc[1] += A(a1.v[q]);
        acc[2] += A(a2.v[q]);
        acc[3] += A(a3.v[q]);
      }
    }
    for (; k < nv; k += bd) {
      VT a0 = xv[k];
#pragma unroll
      for (int q = 0; q < V; ++q) acc[0] += A(a0.v[q]);
    }
    for (int64_t j = vb + nv * V + threadIdx.x; j < e; j += bd) acc[1] += A(x[j]);
    A total[1] = {(acc[0] + acc[1]) + (acc[2] + acc[3])};
    block_sum<1>(total);  // ends with a barrier: shared memory is free for the next row
    if (threadIdx.x == 0) {
      ReduceAcc<A> res{total[0], 0};
      if (splits == 1) out[row] = reduce_finish<OP, A, O>(res, r);
      else partial[blk] = res;
    }
  }
}

/// Columns split along r: block (c, part) reduces rows [b, e) of kThreads columns and
/// writes one partial per column; reduce_cols_finish_kernel combines the parts in order.
template <ReduceOp OP, class T, class A>
__global__ void reduce_cols_split_kernel(const T* __restrict__ in, ReduceAcc<A>* __restrict__ partial,
                                         int64_t outer, int64_t r, int64_t inner, int64_t splits) {
  const int64_t cols = outer * inner, col_blocks = ceil_div(cols, int64_t(blockDim.x));
  for (int64_t blk = blockIdx.x; blk < col_blocks * splits; blk += gridDim.x) {
    int64_t part = blk / col_blocks, k = (blk % col_blocks) * blockDim.x + threadIdx.x;
    if (k >= cols) continue;
    int64_t o = k / inner, i = k % inner;
    int64_t b = r * part / splits, e = r * (part + 1) / splits;
    const T* x = in + o * r * inner + i;
    ReduceAcc<A> acc = reduce_identity<OP, A>();
    for (int64_t j = b; j < e; ++j) acc = reduce_combine<OP, A>(acc, ReduceAcc<A>{A(x[j * inner]), j});
    partial[part * cols + k] = acc;
  }
}

template <ReduceOp OP, class A, class O>
__global__ void reduce_cols_finish_kernel(const ReduceAcc<A>* __restrict__ partial, O* __restrict__ out,
                                          int64_t cols, int64_t splits, int64_t r) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t k = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; k < cols; k += stride) {
    ReduceAcc<A> acc = reduce_identity<OP, A>();
    for (int64_t p = 0; p < splits; ++p) acc = reduce_combine<OP, A>(acc, partial[p * cols + k]);
    out[k] = reduce_finish<OP, A, O>(acc, r);
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
template <class A>
ReduceAcc<A>* partials(int dev, int64_t n) {
  // From the caching allocator; stream order makes the early free after the finishing
  // launch safe (Note [Streams] in core/cuda/allocator.cpp).
  return static_cast<ReduceAcc<A>*>(
      allocator_for(Device(DeviceType::cuda, dev)).allocate(size_t(n) * sizeof(ReduceAcc<A>)));
}

template <ReduceOp OP, class T, class O>
void launch_cols(const T* in, O* out, int64_t outer, int64_t r, int64_t inner, int dev, cudaStream_t s) {
  using A = acc_t<T>;
  const int64_t cols = outer * inner;
  const int64_t target = int64_t(sm_count(dev)) * 8;  // blocks of kThreads to keep every SM busy
  const int64_t col_blocks = ceil_div(cols, int64_t(kThreads));
  int64_t splits = 1;
  // Split r when the columns leave most SMs idle, keeping >= 64 rows per part.
  if (col_blocks < target && r >= 128) splits = std::min(ceil_div(target, col_blocks), r / 64);
  if (splits <= 1) {
    reduce_cols_kernel<OP, T, A, O><<<grid_for(cols), kThreads, 0, s>>>(in, out, outer, r, inner);
    EMBER_CUDA_CHECK_LAUNCH();
    return;
  }
  Allocator& alloc = allocator_for(Device(DeviceType::cuda, dev));
  ReduceAcc<A>* partial = partials<A>(dev, splits * cols);
  int64_t blocks = std::min<int64_t>(col_blocks * splits, int64_t(1) << 20);
  reduce_cols_split_kernel<OP, T, A><<<int(blocks), kThreads, 0, s>>>(in, partial, outer, r, inner, splits);
  cudaError_t e = cudaGetLastError();
  if (e == cudaSuccess) {
    reduce_cols_finish_kernel<OP, A, O><<<grid_for(cols), kThreads, 0, s>>>(partial, out, cols, splits, r);
    e = cudaGetLastError();
  }
  alloc.deallocate(partial);
  EMBER_CUDA_CHECK(e);
}

template <ReduceOp OP, class T, class O>
void launch(const T* in, O* out, int64_t outer, int64_t r, int64_t inner, cudaStream_t s) {
  using A = acc_t<T>;
  int dev = 0;
  EMBER_CUDA_CHECK(cudaGetDevice(&dev));
  if (inner > 1) {
    launch_cols<OP, T, O>(in, out, outer, r, inner, dev, s);
    return;
  }
  constexpr bool kSum = OP == ReduceOp::sum || OP == ReduceOp::mean;
  // Blocks that keep every SM busy; sum/mean threads hold no index, so more fit.
  int64_t target = int64_t(sm_count(dev)) * (kSum ? 8 : 4);
  int64_t splits = 1;
  if (outer < target && r >= 16 * kThreads) {
    splits = std::min<int64_t>(ceil_div(target, outer), ceil_div(r, 4 * kThreads));
    splits = std::max<int64_t>(splits, 1);
  }
  int64_t blocks = std::min<int64_t>(outer * splits, int64_t(1) << 20);
  auto rows = [&](ReduceAcc<A>* partial) {
    if constexpr (kSum) {
      sum_rows_kernel<OP, T, A, O><<<int(blocks), kThreads, 0, s>>>(in, out, partial, outer, r, splits);
    } else {
      reduce_rows_kernel<OP, T, A, O><<<int(blocks), kThreads, 0, s>>>(in, out, partial, outer, r, splits);
    }
  };
  if (splits == 1) {
    rows(nullptr);
    EMBER_CUDA_CHECK_LAUNCH();
    return;
  }
  Allocator& alloc = allocator_for(Device(DeviceType::cuda, dev));
  ReduceAcc<A>* partial = partials<A>(dev, outer * splits);
  rows(partial);
  cudaError_t e = cudaGetLastError();
  if (e == cudaSuccess) {
    int64_t blocks2 = std::min<int64_t>(outer, int64_t(1) << 20);
    reduce_partials_kernel<OP, A, O><<<int(blocks2), kThreads, 0, s>>>(partial, out, outer, splits, r);
    e = cudaGetLastError();
  }
  alloc.deallocate(partial);  // also when a launch failed: the block must not leak
  EMBER_CUDA_CHECK(e);
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
