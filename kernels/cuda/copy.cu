// CUDA copy/cast between dtypes and fill: the twins of kernels/cpu/copy.cpp.
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "kernels/cast.h"
#include "kernels/copy.h"
#include "core/cuda/check.h"
#include "core/cuda/stream.h"

namespace ember::cuda {

namespace {

constexpr int kThreads = 256;


/// N elements loaded or stored as one access of up to 16 bytes.
template <class T, int N>
struct alignas(sizeof(T) * N) Vec {
  T v[N];
};

/// Elements per thread for a vectorized cast: as many as fit 16 bytes of the wider type.
template <class S, class D>
constexpr int cast_vec() {
  constexpr int w = sizeof(S) > sizeof(D) ? int(sizeof(S)) : int(sizeof(D));
  return 16 / w;
}

// ---- kernels

// Contiguous cast; each thread converts N elements per step with one load and one store.
template <class S, class D, int N>
__global__ void cast_contig_vec(const S* __restrict__ src, D* __restrict__ dst, int64_t nvec) {
  int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < nvec; i += stride) {
    Vec<S, N> in = reinterpret_cast<const Vec<S, N>*>(src)[i];
    Vec<D, N> out;
#pragma unroll
    for (int k = 0; k < N; ++k) out.v[k] = cast_to<D>(in.v[k]);
    reinterpret_cast<Vec<D, N>*>(dst)[i] = out;
  }
}

template <class S, class D>
__global__ void cast_contig(const S* __restrict__ src, D* __restrict__ dst, int64_t n) {
  int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    dst[i] = cast_to<D>(src[i]);
  }
}

// Strided source and/or destination: element offsets from the row-major index.
// SMALL: n < 2^31, index math in 32 bits (StridedLayout::offset_of32).
template <class S, class D, bool DstContig, bool SMALL>
__global__ void cast_strided(const S* __restrict__ src, StridedLayout sl, D* __restrict__ dst,
                             StridedLayout dl, int64_t n) {
  int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    int64_t di = DstContig ? i : dl.offset<SMALL>(i);
    dst[di] = cast_to<D>(src[sl.offset<SMALL>(i)]);
  }
}

template <class T, int N>
__global__ void fill_contig_vec(T* __restrict__ dst, T value, int64_t nvec) {
  Vec<T, N> v;
#pragma unroll
  for (int k = 0; k < N; ++k) v.v[k] = value;
  int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < nvec; i += stride) {
    reinterpret_cast<Vec<T, N>*>(dst)[i] = v;
  }
}

template <class T>
__global__ void fill_contig(T* __restrict__ dst, T value, int64_t n) {
  int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    dst[i] = value;
  }
}

template <class T, bool SMALL>
__global__ void fill_strided(T* __restrict__ dst, StridedLayout l, T value, int64_t n) {
  int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    dst[l.offset<SMALL>(i)] = value;
  }
}

// ---- launchers

/// Blocks for a grid-stride loop over `work` items: enough to fill every SM several times
/// over, no more (the loop covers the rest).
int grid_for(int64_t work) {
  int dev = 0;
  EMBER_CUDA_CHECK(cudaGetDevice(&dev));
  int64_t cap = int64_t(sm_count(dev)) * 16;
  int64_t blocks = ceil_div(work, kThreads);
  return int(blocks < cap ? (blocks > 0 ? blocks : 1) : cap);
}

bool aligned_to(const void* p, size_t bytes) {
  return reinterpret_cast<uintptr_t>(p) % bytes == 0;
}

template <class S, class D>
void launch_cast_contig(const S* s, D* d, int64_t n, cudaStream_t stream) {
  constexpr int N = cast_vec<S, D>();
  int64_t nvec = N > 1 && aligned_to(s, sizeof(S) * N) && aligned_to(d, sizeof(D) * N) ? n / N : 0;
  if (nvec > 0) {
    cast_contig_vec<S, D, N><<<grid_for(nvec), kThreads, 0, stream>>>(s, d, nvec);
    EMBER_CUDA_CHECK_LAUNCH();
  }
  int64_t done = nvec * N;
  if (done < n) {
    cast_contig<S, D><<<grid_for(n - done), kThreads, 0, stream>>>(s + done, d + done, n - done);
    EMBER_CUDA_CHECK_LAUNCH();
  }
}

template <class T>
void launch_fill_contig(T* d, T v, int64_t n, cudaStream_t stream) {
  constexpr int N = 16 / int(sizeof(T));
  int64_t nvec = aligned_to(d, 16) ? n / N : 0;
  if (nvec > 0) {
    fill_contig_vec<T, N><<<grid_for(nvec), kThreads, 0, stream>>>(d, v, nvec);
    EMBER_CUDA_CHECK_LAUNCH();
  }
  int64_t done = nvec * N;
  if (done < n) {
    fill_contig<T><<<grid_for(n - done), kThreads, 0, stream>>>(d + done, v, n - done);
    EMBER_CUDA_CHECK_LAUNCH();
  }
}

}  // namespace

void copy(DType src_dtype, const void* src, const StridedLayout& src_l, DType dst_dtype,
          void* dst, const StridedLayout& dst_l, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  bool src_contig = src_l.is_contiguous(), dst_contig = dst_l.is_contiguous();
  if (src_contig && dst_contig && src_dtype == dst_dtype) {
    EMBER_CUDA_CHECK(cudaMemcpyAsync(dst, src, size_t(n * dtype_size(src_dtype)),
                                     cudaMemcpyDeviceToDevice, stream));
    return;
  }
  EMBER_DISPATCH_ALL(src_dtype, "cuda copy", [&] {
    using S = scalar_t;
    EMBER_DISPATCH_ALL(dst_dtype, "cuda copy", [&] {
      using D = scalar_t;
      const S* s = static_cast<const S*>(src);
      D* d = static_cast<D*>(dst);
      if (src_contig && dst_contig) {
        launch_cast_contig<S, D>(s, d, n, stream);
      } else {
        const bool small = n <= INT32_MAX;
        if (dst_contig && small) {
          cast_strided<S, D, true, true><<<grid_for(n), kThreads, 0, stream>>>(s, src_l, d, dst_l, n);
        } else if (dst_contig) {
          cast_strided<S, D, true, false><<<grid_for(n), kThreads, 0, stream>>>(s, src_l, d, dst_l, n);
        } else if (small) {
          cast_strided<S, D, false, true><<<grid_for(n), kThreads, 0, stream>>>(s, src_l, d, dst_l, n);
        } else {
          cast_strided<S, D, false, false><<<grid_for(n), kThreads, 0, stream>>>(s, src_l, d, dst_l, n);
        }
        EMBER_CUDA_CHECK_LAUNCH();
      }
    });
  });
}

void fill(DType dtype, void* dst, const StridedLayout& l, double value, int64_t n,
          cudaStream_t stream) {
  if (n == 0) return;
  bool contig = l.is_contiguous();
  // +0.0 is all-zero bits in every dtype: a memset is the fastest fill there is.
  if (contig && value == 0.0 && !std::signbit(value)) {
    EMBER_CUDA_CHECK(cudaMemsetAsync(dst, 0, size_t(n * dtype_size(dtype)), stream));
    return;
  }
  EMBER_DISPATCH_ALL(dtype, "cuda fill", [&] {
    scalar_t v = cast_to<scalar_t>(value);
    scalar_t* d = static_cast<scalar_t*>(dst);
    if (contig) {
      launch_fill_contig<scalar_t>(d, v, n, stream);
    } else {
      if (n <= INT32_MAX) {
        fill_strided<scalar_t, true><<<grid_for(n), kThreads, 0, stream>>>(d, l, v, n);
      } else {
        fill_strided<scalar_t, false><<<grid_for(n), kThreads, 0, stream>>>(d, l, v, n);
      }
      EMBER_CUDA_CHECK_LAUNCH();
    }
  });
}

}  // namespace ember::cuda
