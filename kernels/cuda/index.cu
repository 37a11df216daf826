// CUDA gather-by-index, scatter-add (atomicAdd, or one thread per destination element in
// deterministic mode) and the index range check (Note [Index layouts] in kernels/index.h).
// The check's result stays on the device (Note [Deferred checks] in core/cuda_context.h),
// so gather and scatter-add guard every index themselves and never touch memory outside
// the indexed tensor.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "kernels/cuda/launch.h"
#include "kernels/index.h"

namespace ember::cuda {

namespace {

__device__ __forceinline__ void atomic_add(float* p, float v) { atomicAdd(p, v); }
__device__ __forceinline__ void atomic_add(double* p, double v) { atomicAdd(p, v); }
// ember::Half / BFloat16 are bit-compatible with CUDA's types (core/half.h).
__device__ __forceinline__ void atomic_add(Half* p, float v) {
  atomicAdd(reinterpret_cast<__half*>(p), __float2half(v));
}
__device__ __forceinline__ void atomic_add(BFloat16* p, float v) {
  atomicAdd(reinterpret_cast<__nv_bfloat16*>(p), __float2bfloat16(v));
}

// ---- kernels
template <class T, class I>
__global__ void gather_kernel(const T* src, StridedLayout src_l, int64_t dim_stride,
                              const I* index, StridedLayout idx_l, T* out, StridedLayout out_l,
                              int64_t n, int64_t limit) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    int64_t k = int64_t(index[idx_l.offset_of(i)]);
    out[out_l.offset_of(i)] = k >= 0 && k < limit ? src[src_l.offset_of(i) + k * dim_stride] : T(0);
  }
}

template <class T, class I>
__global__ void scatter_add_kernel(T* dst, StridedLayout dst_l, int64_t dim_stride,
                                   const I* index, StridedLayout idx_l, const T* src,
                                   StridedLayout src_l, int64_t n, int64_t limit) {
  using C = compute_t<T>;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    int64_t k = int64_t(index[idx_l.offset_of(i)]);
    if (k < 0 || k >= limit) continue;
    atomic_add(dst + dst_l.offset_of(i) + k * dim_stride, C(src[src_l.offset_of(i)]));
  }
}

// Thread per destination element: walks the iteration shape along g.dim in order, so the
// additions come in the CPU's order (increasing source position) with the same rounding.
template <class T, class I>
__global__ void scatter_add_det_kernel(T* dst, const I* index, const T* src, ScatterGeometry g,
                                       int64_t n_dst) {
  using C = compute_t<T>;
  for (int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; t < n_dst;
       t += int64_t(gridDim.x) * blockDim.x) {
    int64_t rest = t, dst_off = 0, idx_off = 0, src_off = 0, p = 0;
    bool inside = true;  // gather's iteration shape may be smaller than dst off `dim`
    for (int d = g.ndim - 1; d >= 0; --d) {
      int64_t c = rest % g.dst_sizes[d];
      rest /= g.dst_sizes[d];
      dst_off += c * g.dst_strides[d];
      if (d == g.dim) {
        p = c;
      } else {
        inside = inside && c < g.iter_sizes[d];
        idx_off += c * g.idx_strides[d];
        src_off += c * g.src_strides[d];
      }
    }
    if (!inside) continue;
    T acc = dst[dst_off];
    const int64_t len = g.iter_sizes[g.dim], is = g.idx_strides[g.dim], ss = g.src_strides[g.dim];
    for (int64_t j = 0; j < len; ++j) {
      if (int64_t(index[idx_off + j * is]) == p) acc = T(C(acc) + C(src[src_off + j * ss]));
    }
    dst[dst_off] = acc;
  }
}

// `first` starts at all-ones (the largest unsigned value); atomicMin keeps the smallest
// bad position, so the error names the same element as the CPU check.
template <class I>
__global__ void find_bad_index_kernel(const I* index, StridedLayout idx_l, int64_t n,
                                      int64_t limit, unsigned long long* first) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    int64_t v = int64_t(index[idx_l.offset_of(i)]);
    if (v < 0 || v >= limit) atomicMin(first, static_cast<unsigned long long>(i));
  }
}

// One thread: turns a candidate position into {position, value} or {-1, 0}.
template <class I>
__global__ void resolve_bad_index_kernel(const I* index, StridedLayout idx_l, int64_t n,
                                         int64_t* result) {
  unsigned long long p = static_cast<unsigned long long>(result[0]);
  if (p < static_cast<unsigned long long>(n)) {
    result[1] = int64_t(index[idx_l.offset_of(int64_t(p))]);
  } else {
    result[0] = -1;
    result[1] = 0;
  }
}
}  // namespace

// ---- launchers
void gather(DType dtype, const void* src, const StridedLayout& src_l, int64_t dim_stride,
            DType index_dtype, const void* index, const StridedLayout& idx_l, void* out,
            const StridedLayout& out_l, int64_t n, int64_t limit, cudaStream_t stream) {
  if (n == 0) return;
  dispatch_index(index_dtype, [&](auto* tag) {
    using I = std::remove_cv_t<std::remove_pointer_t<decltype(tag)>>;
    EMBER_DISPATCH_ALL(dtype, "gather", [&] {
      gather_kernel<scalar_t, I><<<grid_for(n), kThreads, 0, stream>>>(
          static_cast<const scalar_t*>(src), src_l, dim_stride, static_cast<const I*>(index),
          idx_l, static_cast<scalar_t*>(out), out_l, n, limit);
      EMBER_CUDA_CHECK_LAUNCH();
    });
  });
}

void scatter_add(DType dtype, void* dst, const StridedLayout& dst_l, int64_t dim_stride,
                 DType index_dtype, const void* index, const StridedLayout& idx_l,
                 const void* src, const StridedLayout& src_l, int64_t n, int64_t limit,
                 cudaStream_t stream) {
  if (n == 0) return;
  dispatch_index(index_dtype, [&](auto* tag) {
    using I = std::remove_cv_t<std::remove_pointer_t<decltype(tag)>>;
    EMBER_DISPATCH_FLOAT(dtype, "scatter_add", [&] {
      scatter_add_kernel<scalar_t, I><<<grid_for(n), kThreads, 0, stream>>>(
          static_cast<scalar_t*>(dst), dst_l, dim_stride, static_cast<const I*>(index), idx_l,
          static_cast<const scalar_t*>(src), src_l, n, limit);
      EMBER_CUDA_CHECK_LAUNCH();
    });
  });
}

void scatter_add_deterministic(DType dtype, void* dst, DType index_dtype, const void* index,
                               const void* src, const ScatterGeometry& g, cudaStream_t stream) {
  int64_t n_dst = 1;
  for (int d = 0; d < g.ndim; ++d) n_dst *= g.dst_sizes[d];
  int64_t n_iter = 1;
  for (int d = 0; d < g.ndim; ++d) n_iter *= g.iter_sizes[d];
  if (n_dst == 0 || n_iter == 0) return;
  dispatch_index(index_dtype, [&](auto* tag) {
    using I = std::remove_cv_t<std::remove_pointer_t<decltype(tag)>>;
    EMBER_DISPATCH_FLOAT(dtype, "scatter_add", [&] {
      scatter_add_det_kernel<scalar_t, I><<<grid_for(n_dst), kThreads, 0, stream>>>(
          static_cast<scalar_t*>(dst), static_cast<const I*>(index),
          static_cast<const scalar_t*>(src), g, n_dst);
      EMBER_CUDA_CHECK_LAUNCH();
    });
  });
}

void resolve_bad_index(DType index_dtype, const void* index, const StridedLayout& idx_l,
                       int64_t n, int64_t* result, cudaStream_t stream) {
  dispatch_index(index_dtype, [&](auto* tag) {
    using I = std::remove_cv_t<std::remove_pointer_t<decltype(tag)>>;
    resolve_bad_index_kernel<I><<<1, 1, 0, stream>>>(static_cast<const I*>(index), idx_l, n, result);
    EMBER_CUDA_CHECK_LAUNCH();
  });
}

void find_bad_index(DType index_dtype, const void* index, const StridedLayout& idx_l,
                    int64_t n, int64_t limit, int64_t* result, cudaStream_t stream) {
  EMBER_CUDA_CHECK(cudaMemsetAsync(result, 0xff, sizeof(int64_t), stream));
  if (n > 0) {
    dispatch_index(index_dtype, [&](auto* tag) {
      using I = std::remove_cv_t<std::remove_pointer_t<decltype(tag)>>;
      find_bad_index_kernel<I><<<grid_for(n), kThreads, 0, stream>>>(
          static_cast<const I*>(index), idx_l, n, limit,
          reinterpret_cast<unsigned long long*>(result));
      EMBER_CUDA_CHECK_LAUNCH();
    });
  }
  resolve_bad_index(index_dtype, index, idx_l, n, result, stream);
}

}  // namespace ember::cuda
