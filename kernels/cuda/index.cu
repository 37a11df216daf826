// CUDA gather-by-index, scatter-add (atomicAdd) and the index range check
// (Note [Index layouts] in kernels/index.h).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "kernels/cuda/launch.h"
#include "kernels/index.h"

namespace ember::cuda {

namespace {

__device__ __forceinline__ void atomic_add(float* p, float v) { atomicAdd(p, v); }
__device__ __forceinline__ void atomic_add(double* p, double v) { atomicAdd(p, v); }
// ember::Half / BFloat16 are bit-compatible with CUDA's types (tensor/half.h).
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
                              int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    int64_t k = int64_t(index[idx_l.offset_of(i)]);
    out[out_l.offset_of(i)] = src[src_l.offset_of(i) + k * dim_stride];
  }
}

template <class T, class I>
__global__ void scatter_add_kernel(T* dst, StridedLayout dst_l, int64_t dim_stride,
                                   const I* index, StridedLayout idx_l, const T* src,
                                   StridedLayout src_l, int64_t n) {
  using C = compute_t<T>;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    int64_t k = int64_t(index[idx_l.offset_of(i)]);
    atomic_add(dst + dst_l.offset_of(i) + k * dim_stride, C(src[src_l.offset_of(i)]));
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
}  // namespace

// ---- launchers
void gather(DType dtype, const void* src, const StridedLayout& src_l, int64_t dim_stride,
            DType index_dtype, const void* index, const StridedLayout& idx_l, void* out,
            const StridedLayout& out_l, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  dispatch_index(index_dtype, [&](auto* tag) {
    using I = std::remove_cv_t<std::remove_pointer_t<decltype(tag)>>;
    EMBER_DISPATCH_ALL(dtype, "gather", [&] {
      gather_kernel<scalar_t, I><<<grid_for(n), kThreads, 0, stream>>>(
          static_cast<const scalar_t*>(src), src_l, dim_stride, static_cast<const I*>(index),
          idx_l, static_cast<scalar_t*>(out), out_l, n);
      EMBER_CUDA_CHECK_LAUNCH();
    });
  });
}

void scatter_add(DType dtype, void* dst, const StridedLayout& dst_l, int64_t dim_stride,
                 DType index_dtype, const void* index, const StridedLayout& idx_l,
                 const void* src, const StridedLayout& src_l, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  dispatch_index(index_dtype, [&](auto* tag) {
    using I = std::remove_cv_t<std::remove_pointer_t<decltype(tag)>>;
    EMBER_DISPATCH_FLOAT(dtype, "scatter_add", [&] {
      scatter_add_kernel<scalar_t, I><<<grid_for(n), kThreads, 0, stream>>>(
          static_cast<scalar_t*>(dst), dst_l, dim_stride, static_cast<const I*>(index), idx_l,
          static_cast<const scalar_t*>(src), src_l, n);
      EMBER_CUDA_CHECK_LAUNCH();
    });
  });
}

int64_t find_bad_index(DType index_dtype, const void* index, const StridedLayout& idx_l,
                       int64_t n, int64_t limit, int64_t* bad_value, int64_t* scratch,
                       cudaStream_t stream) {
  if (n == 0) return -1;
  int64_t pos = -1;
  dispatch_index(index_dtype, [&](auto* tag) {
    using I = std::remove_cv_t<std::remove_pointer_t<decltype(tag)>>;
    auto* first = reinterpret_cast<unsigned long long*>(scratch);
    EMBER_CUDA_CHECK(cudaMemsetAsync(first, 0xff, sizeof(unsigned long long), stream));
    find_bad_index_kernel<I><<<grid_for(n), kThreads, 0, stream>>>(
        static_cast<const I*>(index), idx_l, n, limit, first);
    EMBER_CUDA_CHECK_LAUNCH();
    unsigned long long host_first = 0;
    EMBER_CUDA_CHECK(cudaMemcpyAsync(&host_first, first, sizeof(host_first),
                                     cudaMemcpyDeviceToHost, stream));
    EMBER_CUDA_CHECK(cudaStreamSynchronize(stream));
    if (host_first >= static_cast<unsigned long long>(n)) return;
    pos = int64_t(host_first);
    I v{};
    EMBER_CUDA_CHECK(cudaMemcpyAsync(&v, static_cast<const I*>(index) + idx_l.offset_of(pos),
                                     sizeof(I), cudaMemcpyDeviceToHost, stream));
    EMBER_CUDA_CHECK(cudaStreamSynchronize(stream));
    *bad_value = int64_t(v);
  });
  return pos;
}

}  // namespace ember::cuda
