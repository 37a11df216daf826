// CUDA fused cross-entropy and NLL, forward and backward.
#include <cuda_runtime.h>

#include <limits>

#include "core/strided_layout.h"
#include "core/cuda/check.h"
#include "kernels/cuda/row_reduce.cuh"
#include "kernels/loss.h"
#include "kernels/softmax.h"
#include "core/error.h"

namespace ember::cuda {

namespace {

// ---- kernels

__device__ __forceinline__ void report_bad(int64_t* bad_row, int64_t r) {
  atomicMin(reinterpret_cast<long long*>(bad_row), static_cast<long long>(r));
}

// The per-row epilogue shared by both forward layouts.
template <class A>
__device__ __forceinline__ A ce_row_loss(A lse, A x_label, A sum_x, A eps, A C) {
  return lse - (A(1) - eps) * x_label - eps * sum_x / C;
}

// inner == 1: a warp or a block per row (blockDim.y rows per block).
template <class T>
__global__ void ce_fwd_rows(const T* __restrict__ x, const int64_t* __restrict__ labels,
                            acc_t<T>* loss, acc_t<T>* valid, acc_t<T>* lse, int64_t rows,
                            int64_t C, acc_t<T> eps, int64_t ignore_index, int64_t* bad_row) {
  using A = acc_t<T>;
  int64_t r = int64_t(blockIdx.x) * blockDim.y + threadIdx.y;
  if (r >= rows) return;
  int64_t y = labels[r];
  bool live = y != ignore_index && y >= 0 && y < C;  // the same for every thread of the row
  if (!live) {
    if (threadIdx.x == 0) {
      loss[r] = 0;
      valid[r] = 0;
      lse[r] = 0;
      if (y != ignore_index) report_bad(bad_row, r);
    }
    return;
  }
  const T* xr = x + r * C;
  A mx = -std::numeric_limits<A>::infinity();
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) mx = MaxOp()(mx, A(xr[c]));
  mx = row_reduce(mx, MaxOp(), -std::numeric_limits<A>::infinity());
  A se = 0, sx = 0;
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
    A v = A(xr[c]);
    se += math::exp(v - mx);
    sx += v;
  }
  se = row_reduce(se, SumOp(), A(0));
  sx = row_reduce(sx, SumOp(), A(0));
  if (threadIdx.x == 0) {
    A l = mx + math::log(se);
    lse[r] = l;
    loss[r] = ce_row_loss(l, A(xr[y]), sx, eps, A(C));
    valid[r] = 1;
  }
}

// inner > 1: a thread per row, walking C with stride inner (coalesced across threads).
template <class T>
__global__ void ce_fwd_cols(const T* __restrict__ x, const int64_t* __restrict__ labels,
                            acc_t<T>* loss, acc_t<T>* valid, acc_t<T>* lse, int64_t outer,
                            int64_t C, int64_t inner, acc_t<T> eps, int64_t ignore_index,
                            int64_t* bad_row) {
  using A = acc_t<T>;
  int64_t r = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (r >= outer * inner) return;
  int64_t y = labels[r];
  loss[r] = 0;
  valid[r] = 0;
  lse[r] = 0;
  if (y == ignore_index) return;
  if (y < 0 || y >= C) {
    report_bad(bad_row, r);
    return;
  }
  const T* xr = x + (r / inner) * C * inner + r % inner;
  A mx = -std::numeric_limits<A>::infinity();
  for (int64_t c = 0; c < C; ++c) mx = MaxOp()(mx, A(xr[c * inner]));
  A se = 0, sx = 0;
  for (int64_t c = 0; c < C; ++c) {
    A v = A(xr[c * inner]);
    se += math::exp(v - mx);
    sx += v;
  }
  A l = mx + math::log(se);
  lse[r] = l;
  loss[r] = ce_row_loss(l, A(xr[y * inner]), sx, eps, A(C));
  valid[r] = 1;
}

// Elementwise over the logits: element k is class c of row r.
template <class T>
__global__ void ce_bwd(const T* __restrict__ x, const int64_t* __restrict__ labels,
                       const acc_t<T>* __restrict__ lse, const acc_t<T>* __restrict__ g,
                       int64_t g_stride, T* __restrict__ gx, int64_t n, int64_t C, int64_t inner,
                       acc_t<T> eps, int64_t ignore_index) {
  using A = acc_t<T>;
  for (int64_t k = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; k < n;
       k += int64_t(gridDim.x) * blockDim.x) {
    int64_t i = k % inner, c = (k / inner) % C, r = (k / (inner * C)) * inner + i;
    int64_t y = labels[r];
    bool live = y != ignore_index && y >= 0 && y < C;
    A v = 0;
    if (live) {
      v = math::exp(A(x[k]) - lse[r]) - eps / A(C) - (c == y ? A(1) - eps : A(0));
      v *= g[r * g_stride];
    }
    gx[k] = T(v);
  }
}

template <class T>
__global__ void nll_fwd_kernel(const T* __restrict__ x, const int64_t* __restrict__ labels,
                               acc_t<T>* loss, acc_t<T>* valid, int64_t rows, int64_t C,
                               int64_t inner, int64_t ignore_index, int64_t* bad_row) {
  using A = acc_t<T>;
  int64_t r = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (r >= rows) return;
  int64_t y = labels[r];
  loss[r] = 0;
  valid[r] = 0;
  if (y == ignore_index) return;
  if (y < 0 || y >= C) {
    report_bad(bad_row, r);
    return;
  }
  loss[r] = -A(x[(r / inner) * C * inner + y * inner + r % inner]);
  valid[r] = 1;
}

template <class T>
__global__ void nll_bwd_kernel(const int64_t* __restrict__ labels, const acc_t<T>* __restrict__ g,
                               int64_t g_stride, T* __restrict__ gx, int64_t n, int64_t C,
                               int64_t inner, int64_t ignore_index) {
  using A = acc_t<T>;
  for (int64_t k = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; k < n;
       k += int64_t(gridDim.x) * blockDim.x) {
    int64_t i = k % inner, c = (k / inner) % C, r = (k / (inner * C)) * inner + i;
    int64_t y = labels[r];
    bool hit = y != ignore_index && y == c;
    gx[k] = T(hit ? -g[r * g_stride] : A(0));
  }
}

// ---- launchers

constexpr int kThreads = 256;

unsigned grid_for(int64_t n) {
  // Grid-stride loops: enough blocks to fill the GPU, capped for huge n.
  return unsigned(std::min<int64_t>(ceil_div(n, kThreads), int64_t(1) << 16));
}

}  // namespace

void cross_entropy_fwd(DType dtype, const void* logits, const int64_t* labels, void* loss,
                       void* valid, void* lse, const LossShape& s, double smoothing,
                       int64_t ignore_index, int64_t* bad_row, cudaStream_t stream) {
  int64_t rows = s.rows();
  if (rows == 0) return;
  EMBER_DISPATCH_FLOAT(dtype, "cross_entropy", [&] {
    using T = scalar_t;
    using A = acc_t<T>;
    const T* x = static_cast<const T*>(logits);
    A* lo = static_cast<A*>(loss);
    A* va = static_cast<A*>(valid);
    A* ls = static_cast<A*>(lse);
    if (s.inner == 1) {
      dim3 block = s.C <= kWarpRowMaxC ? dim3(kWarp, kRowsPerWarpBlock) : dim3(kRowBlockThreads, 1);
      dim3 grid(unsigned(ceil_div(rows, int64_t(block.y))));
      ce_fwd_rows<T><<<grid, block, 0, stream>>>(x, labels, lo, va, ls, rows, s.C, A(smoothing),
                                                 ignore_index, bad_row);
    } else {
      ce_fwd_cols<T><<<unsigned(ceil_div(rows, kThreads)), kThreads, 0, stream>>>(
          x, labels, lo, va, ls, s.outer, s.C, s.inner, A(smoothing), ignore_index, bad_row);
    }
    EMBER_CUDA_CHECK_LAUNCH();
  });
}

void cross_entropy_bwd(DType dtype, const void* logits, const int64_t* labels, const void* lse,
                       const void* g, int64_t g_stride, void* gx, const LossShape& s,
                       double smoothing, int64_t ignore_index, cudaStream_t stream) {
  int64_t n = s.rows() * s.C;
  if (n == 0) return;
  EMBER_DISPATCH_FLOAT(dtype, "cross_entropy backward", [&] {
    using T = scalar_t;
    using A = acc_t<T>;
    ce_bwd<T><<<grid_for(n), kThreads, 0, stream>>>(
        static_cast<const T*>(logits), labels, static_cast<const A*>(lse),
        static_cast<const A*>(g), g_stride, static_cast<T*>(gx), n, s.C, s.inner, A(smoothing),
        ignore_index);
    EMBER_CUDA_CHECK_LAUNCH();
  });
}

void nll_fwd(DType dtype, const void* log_probs, const int64_t* labels, void* loss, void* valid,
             const LossShape& s, int64_t ignore_index, int64_t* bad_row, cudaStream_t stream) {
  int64_t rows = s.rows();
  if (rows == 0) return;
  EMBER_DISPATCH_FLOAT(dtype, "nll_loss", [&] {
    using T = scalar_t;
    using A = acc_t<T>;
    nll_fwd_kernel<T><<<unsigned(ceil_div(rows, kThreads)), kThreads, 0, stream>>>(
        static_cast<const T*>(log_probs), labels, static_cast<A*>(loss), static_cast<A*>(valid),
        rows, s.C, s.inner, ignore_index, bad_row);
    EMBER_CUDA_CHECK_LAUNCH();
  });
}

void nll_bwd(DType dtype, const int64_t* labels, const void* g, int64_t g_stride, void* gx,
             const LossShape& s, int64_t ignore_index, cudaStream_t stream) {
  int64_t n = s.rows() * s.C;
  if (n == 0) return;
  EMBER_DISPATCH_FLOAT(dtype, "nll_loss backward", [&] {
    using T = scalar_t;
    using A = acc_t<T>;
    nll_bwd_kernel<T><<<grid_for(n), kThreads, 0, stream>>>(
        labels, static_cast<const A*>(g), g_stride, static_cast<T*>(gx), n, s.C, s.inner,
        ignore_index);
    EMBER_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace ember::cuda
