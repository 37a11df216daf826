// CUDA binary elementwise ops and where(): vectorized when both operands are contiguous
// (or one is a scalar), strided index math otherwise.
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

template <BinaryOp OP, class T>
__global__ void binary_strided_kernel(const T* __restrict__ a, StridedLayout la,
                                      const T* __restrict__ b, StridedLayout lb,
                                      binary_out_t<OP, T>* __restrict__ out, int64_t n,
                                      compute_t<T> alpha) {
  using C = compute_t<T>;
  using O = binary_out_t<OP, T>;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    out[i] = O(binary_apply<OP, C>(C(a[la.offset_of(i)]), C(b[lb.offset_of(i)]), alpha));
  }
}

template <class T>
__global__ void where_kernel(const bool* __restrict__ c, StridedLayout lc, const T* __restrict__ a,
                             StridedLayout la, const T* __restrict__ b, StridedLayout lb,
                             T* __restrict__ out, int64_t n) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    out[i] = c[lc.offset_of(i)] ? a[la.offset_of(i)] : b[lb.offset_of(i)];
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

template <BinaryOp OP, class T>
void launch(const T* a, const StridedLayout& la, const T* b, const StridedLayout& lb,
            binary_out_t<OP, T>* out, int64_t n, double alpha_d, cudaStream_t s) {
  compute_t<T> alpha = compute_t<T>(alpha_d);
  bool ca = la.is_contiguous(), cb = lb.is_contiguous();
  if (ca && cb) {
    launch_flat<OP, T, 0>(a, b, out, n, alpha, s);
  } else if (ca && is_scalar(lb)) {
    launch_flat<OP, T, 1>(a, b, out, n, alpha, s);
  } else if (is_scalar(la) && cb) {
    launch_flat<OP, T, 2>(a, b, out, n, alpha, s);
  } else {
    binary_strided_kernel<OP, T><<<grid_for(n), kThreads, 0, s>>>(a, la, b, lb, out, n, alpha);
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
    where_kernel<T><<<grid_for(n), kThreads, 0, stream>>>(cond, lc, static_cast<const T*>(a), la,
                                                          static_cast<const T*>(b), lb,
                                                          static_cast<T*>(out), n);
    EMBER_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace ember::cuda
