// CUDA softmax / log_softmax forward and backward over (outer, C, inner) rows.
#include <cuda_runtime.h>

#include <limits>

#include "core/strided_layout.h"
#include "core/cuda/check.h"
#include "kernels/cuda/row_reduce.cuh"
#include "kernels/softmax.h"
#include "core/error.h"

namespace ember::cuda {

namespace {

// ---- kernels

// inner == 1: row r is x[r*C .. r*C + C), handled by the threads of threadIdx.x (a warp or
// a block); blockDim.y rows per block.
template <class T>
__global__ void softmax_fwd_rows(const T* __restrict__ x, T* __restrict__ y, int64_t rows,
                                 int64_t C, bool log) {
  using A = acc_t<T>;
  int64_t r = int64_t(blockIdx.x) * blockDim.y + threadIdx.y;
  if (r >= rows) return;  // whole rows leave together: no thread of a live row exits early
  const T* xr = x + r * C;
  T* yr = y + r * C;
  A mx = -std::numeric_limits<A>::infinity();
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) mx = MaxOp()(mx, A(xr[c]));
  mx = row_reduce(mx, MaxOp(), -std::numeric_limits<A>::infinity());
  A sum = 0;
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) sum += math::exp(A(xr[c]) - mx);
  sum = row_reduce(sum, SumOp(), A(0));
  if (log) {
    A lse = mx + math::log(sum);
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) yr[c] = T(A(xr[c]) - lse);
  } else {
    A inv = A(1) / sum;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) yr[c] = T(math::exp(A(xr[c]) - mx) * inv);
  }
}

template <class T>
__global__ void softmax_bwd_rows(const T* __restrict__ y, const T* __restrict__ g,
                                 T* __restrict__ gx, int64_t rows, int64_t C, bool log) {
  using A = acc_t<T>;
  int64_t r = int64_t(blockIdx.x) * blockDim.y + threadIdx.y;
  if (r >= rows) return;
  const T* yr = y + r * C;
  const T* gr = g + r * C;
  T* gxr = gx + r * C;
  A dot = 0;
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) dot += log ? A(gr[c]) : A(gr[c]) * A(yr[c]);
  dot = row_reduce(dot, SumOp(), A(0));
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
    A yv = A(yr[c]), gv = A(gr[c]);
    gxr[c] = log ? T(gv - math::exp(yv) * dot) : T(yv * (gv - dot));
  }
}

// inner > 1: one thread per (outer, inner) column; neighbouring threads read neighbouring
// addresses at every step of the walk over C.
template <class T>
__global__ void softmax_fwd_cols(const T* __restrict__ x, T* __restrict__ y, int64_t outer,
                                 int64_t C, int64_t inner, bool log) {
  using A = acc_t<T>;
  int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (t >= outer * inner) return;
  int64_t base = (t / inner) * C * inner + t % inner;
  A mx = -std::numeric_limits<A>::infinity();
  for (int64_t c = 0; c < C; ++c) mx = MaxOp()(mx, A(x[base + c * inner]));
  A sum = 0;
  for (int64_t c = 0; c < C; ++c) sum += math::exp(A(x[base + c * inner]) - mx);
  if (log) {
    A lse = mx + math::log(sum);
    for (int64_t c = 0; c < C; ++c) y[base + c * inner] = T(A(x[base + c * inner]) - lse);
  } else {
    A inv = A(1) / sum;
    for (int64_t c = 0; c < C; ++c)
      y[base + c * inner] = T(math::exp(A(x[base + c * inner]) - mx) * inv);
  }
}

template <class T>
__global__ void softmax_bwd_cols(const T* __restrict__ y, const T* __restrict__ g,
                                 T* __restrict__ gx, int64_t outer, int64_t C, int64_t inner,
                                 bool log) {
  using A = acc_t<T>;
  int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (t >= outer * inner) return;
  int64_t base = (t / inner) * C * inner + t % inner;
  A dot = 0;
  for (int64_t c = 0; c < C; ++c) {
    int64_t k = base + c * inner;
    dot += log ? A(g[k]) : A(g[k]) * A(y[k]);
  }
  for (int64_t c = 0; c < C; ++c) {
    int64_t k = base + c * inner;
    A yv = A(y[k]), gv = A(g[k]);
    gx[k] = log ? T(gv - math::exp(yv) * dot) : T(yv * (gv - dot));
  }
}

// ---- launchers

// Grid and block for the row kernels: a warp per row up to kWarpRowMaxC, else a block.
void row_launch_dims(int64_t rows, int64_t C, dim3* grid, dim3* block) {
  if (C <= kWarpRowMaxC) {
    *block = dim3(kWarp, kRowsPerWarpBlock);
    *grid = dim3(unsigned(ceil_div(rows, kRowsPerWarpBlock)));
  } else {
    *block = dim3(kRowBlockThreads, 1);
    *grid = dim3(unsigned(rows));
  }
}

constexpr int kColThreads = 256;

}  // namespace

void softmax_fwd(DType dtype, const void* x, void* y, int64_t outer, int64_t C, int64_t inner,
                 bool log, cudaStream_t stream) {
  if (outer * C * inner == 0) return;
  EMBER_DISPATCH_FLOAT(dtype, log ? "log_softmax" : "softmax", [&] {
    const scalar_t* xp = static_cast<const scalar_t*>(x);
    scalar_t* yp = static_cast<scalar_t*>(y);
    if (inner == 1) {
      dim3 grid, block;
      row_launch_dims(outer, C, &grid, &block);
      softmax_fwd_rows<scalar_t><<<grid, block, 0, stream>>>(xp, yp, outer, C, log);
    } else {
      unsigned blocks = unsigned(ceil_div(outer * inner, kColThreads));
      softmax_fwd_cols<scalar_t><<<blocks, kColThreads, 0, stream>>>(xp, yp, outer, C, inner, log);
    }
    EMBER_CUDA_CHECK_LAUNCH();
  });
}

void softmax_bwd(DType dtype, const void* y, const void* g, void* gx, int64_t outer, int64_t C,
                 int64_t inner, bool log, cudaStream_t stream) {
  if (outer * C * inner == 0) return;
  EMBER_DISPATCH_FLOAT(dtype, log ? "log_softmax backward" : "softmax backward", [&] {
    const scalar_t* yp = static_cast<const scalar_t*>(y);
    const scalar_t* gp = static_cast<const scalar_t*>(g);
    scalar_t* gxp = static_cast<scalar_t*>(gx);
    if (inner == 1) {
      dim3 grid, block;
      row_launch_dims(outer, C, &grid, &block);
      softmax_bwd_rows<scalar_t><<<grid, block, 0, stream>>>(yp, gp, gxp, outer, C, log);
    } else {
      unsigned blocks = unsigned(ceil_div(outer * inner, kColThreads));
      softmax_bwd_cols<scalar_t><<<blocks, kColThreads, 0, stream>>>(yp, gp, gxp, outer, C, inner,
                                                                     log);
    }
    EMBER_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace ember::cuda
