// CUDA binary elementwise ops and where(): vectorized when both operands are contiguous
// (or one is a scalar), one modulo per element for a broadcast row (bias add), strided
// index math otherwise (32-bit when n < 2^31). Speed unmeasured: no GPU run yet.
#include "kernels/binary_math.h"
#include "kernels/cuda/launch.h"

namespace ember::cuda {

// ---- kernels
// MODE 0: both contiguous; 1: b is a scalar; 2: a is a scalar.
template <BinaryOp OP, class T, int VEC, int MODE>
__global__ void binary_flat_kernel(const T* __restrict__ a, const T* __restrict__ b,
                                   binary_out_t<OP, T>* __restrict__ out, int64_t n,
                                   compute_t<T> alpha) {
  using C = compute_t<T>;
  using O = binary_out_t<OP, T>;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t tid = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t nvec = n / VEC;
  const C sa = MODE == 2 ? C(a[0]) : C(0);
  const C sb = MODE == 1 ? C(b[0]) : C(0);
  for (int64_t i = tid; i < nvec; i += stride) {
    Vec<T, VEC> va, vb;
    if (MODE != 2) va = reinterpret_cast<const Vec<T, VEC>*>(a)[i];
    if (MODE != 1) vb = reinterpret_cast<const Vec<T, VEC>*>(b)[i];
    Vec<O, VEC> vo;
#pragma unroll
    for (int k = 0; k < VEC; ++k) {
      C x = MODE == 2 ? sa : C(va.v[k]);
      C y = MODE == 1 ? sb : C(vb.v[k]);
      vo.v[k] = O(binary_apply<OP, C>(x, y, alpha));
    }
    reinterpret_cast<Vec<O, VEC>*>(out)[i] = vo;
  }
  for (int64_t i = nvec * VEC + tid; i < n; i += stride) {
    C x = MODE == 2 ? sa : C(a[i]);
    C y = MODE == 1 ? sb : C(b[i]);
    out[i] = O(binary_apply<OP, C>(x, y, alpha));
  }
}

// SMALL: n < 2^31, index math in 32 bits (StridedLayout::offset_of32).
template <BinaryOp OP, class T, bool SMALL>
__global__ void binary_strided_kernel(const T* __restrict__ a, StridedLayout la,
                                      const T* __restrict__ b, StridedLayout lb,
                                      binary_out_t<OP, T>* __restrict__ out, int64_t n,
                                      compute_t<T> alpha) {
  using C = compute_t<T>;
  using O = binary_out_t<OP, T>;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    out[i] = O(binary_apply<OP, C>(C(a[la.offset<SMALL>(i)]), C(b[lb.offset<SMALL>(i)]), alpha));
  }
}

// One operand contiguous, the other a row of m elements repeated over the rows (a bias
// add): one modulo per element instead of a div/mod per dim for both operands.
template <BinaryOp OP, class T, bool SMALL, bool ROW_IS_B>
__global__ void binary_row_kernel(const T* __restrict__ a, const T* __restrict__ b,
                                  binary_out_t<OP, T>* __restrict__ out, int64_t n, int64_t m,
                                  compute_t<T> alpha) {
  using C = compute_t<T>;
  using O = binary_out_t<OP, T>;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const int64_t j = SMALL ? int64_t(uint32_t(i) % uint32_t(m)) : i % m;
    const C x = ROW_IS_B ? C(a[i]) : C(a[j]);
    const C y = ROW_IS_B ? C(b[j]) : C(b[i]);
    out[i] = O(binary_apply<OP, C>(x, y, alpha));
  }
}

template <class T, bool SMALL>
__global__ void where_kernel(const bool* __restrict__ c, StridedLayout lc, const T* __restrict__ a,
                             StridedLayout la, const T* __restrict__ b, StridedLayout lb,
                             T* __restrict__ out, int64_t n) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    out[i] = c[lc.offset<SMALL>(i)] ? a[la.offset<SMALL>(i)] : b[lb.offset<SMALL>(i)];
  }
}

// ---- launchers
namespace {
bool is_scalar(const StridedLayout& l) {
  for (int d = 0; d < l.ndim; ++d)
    if (l.strides[d] != 0 && l.sizes[d] != 1) return false;
  return true;
}

template <BinaryOp OP, class T, int MODE>
void launch_flat(const T* a, const T* b, binary_out_t<OP, T>* out, int64_t n, compute_t<T> alpha,
                 cudaStream_t s) {
  using O = binary_out_t<OP, T>;
  constexpr int V = vec_width<T>();
  bool ok = aligned_to(out, sizeof(O) * V) && (MODE == 2 || aligned_to(a, sizeof(T) * V)) &&
            (MODE == 1 || aligned_to(b, sizeof(T) * V));
  if (ok) {
    binary_flat_kernel<OP, T, V, MODE><<<grid_for(ceil_div(n, V)), kThreads, 0, s>>>(a, b, out, n, alpha);
  } else {
    binary_flat_kernel<OP, T, 1, MODE><<<grid_for(n), kThreads, 0, s>>>(a, b, out, n, alpha);
  }
}

// A row broadcast over rows after coalescing: (rows, m) with strides (0, 1).
bool is_row(const StridedLayout& l) { return l.ndim == 2 && l.strides[0] == 0 && l.strides[1] == 1; }

template <BinaryOp OP, class T>
void launch(const T* a, const StridedLayout& la, const T* b, const StridedLayout& lb,
            binary_out_t<OP, T>* out, int64_t n, double alpha_d, cudaStream_t s) {
  compute_t<T> alpha = compute_t<T>(alpha_d);
  bool ca = la.is_contiguous(), cb = lb.is_contiguous();
  const bool small = n <= INT32_MAX;
  if (ca && cb) {
    launch_flat<OP, T, 0>(a, b, out, n, alpha, s);
  } else if (ca && is_scalar(lb)) {
    launch_flat<OP, T, 1>(a, b, out, n, alpha, s);
  } else if (is_scalar(la) && cb) {
    launch_flat<OP, T, 2>(a, b, out, n, alpha, s);
  } else if (ca && is_row(lb)) {
    if (small) binary_row_kernel<OP, T, true, true><<<grid_for(n), kThreads, 0, s>>>(a, b, out, n, lb.sizes[1], alpha);
    else binary_row_kernel<OP, T, false, true><<<grid_for(n), kThreads, 0, s>>>(a, b, out, n, lb.sizes[1], alpha);
  } else if (is_row(la) && cb) {
    if (small) binary_row_kernel<OP, T, true, false><<<grid_for(n), kThreads, 0, s>>>(a, b, out, n, la.sizes[1], alpha);
    else binary_row_kernel<OP, T, false, false><<<grid_for(n), kThreads, 0, s>>>(a, b, out, n, la.sizes[1], alpha);
  } else if (small) {
    binary_strided_kernel<OP, T, true><<<grid_for(n), kThreads, 0, s>>>(a, la, b, lb, out, n, alpha);
  } else {
    binary_strided_kernel<OP, T, false><<<grid_for(n), kThreads, 0, s>>>(a, la, b, lb, out, n, alpha);
  }
  EMBER_CUDA_CHECK_LAUNCH();
}
}  // namespace

void binary(BinaryOp op, DType dtype, const void* a, const StridedLayout& la, const void* b,
            const StridedLayout& lb, void* out, int64_t n, double alpha, cudaStream_t stream) {
  if (n == 0) return;
  EMBER_DISPATCH_NUMERIC(dtype, binary_name(op), [&] {
    using T = scalar_t;
    EMBER_BINARY_SWITCH(op, [&] {
      launch<kOp, T>(static_cast<const T*>(a), la, static_cast<const T*>(b), lb,
                     static_cast<binary_out_t<kOp, T>*>(out), n, alpha, stream);
    });
  });
}

void where(DType dtype, const bool* cond, const StridedLayout& lc, const void* a,
           const StridedLayout& la, const void* b, const StridedLayout& lb, void* out, int64_t n,
           cudaStream_t stream) {
  if (n == 0) return;
  EMBER_DISPATCH_ALL(dtype, "where", [&] {
    using T = scalar_t;
    if (n <= INT32_MAX) {
      where_kernel<T, true><<<grid_for(n), kThreads, 0, stream>>>(cond, lc, static_cast<const T*>(a), la,
                                                                  static_cast<const T*>(b), lb,
                                                                  static_cast<T*>(out), n);
    } else {
      where_kernel<T, false><<<grid_for(n), kThreads, 0, stream>>>(cond, lc, static_cast<const T*>(a), la,
                                                                   static_cast<const T*>(b), lb,
                                                                   static_cast<T*>(out), n);
    }
    EMBER_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace ember::cuda
