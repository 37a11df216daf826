// CUDA pooling: one thread per output in forward; one thread per input in backward,
// gathering from the outputs whose windows cover it (no atomics: deterministic).
#include "kernels/cuda/launch.h"
#include "kernels/pool.h"

#include <utility>

namespace ember::cuda {

// Note [32-bit pooling index math]: each thread splits its flat index k into (plane, row,
// column) with two divisions. 64-bit integer division is a long software sequence on a GPU
// (several times the instructions of a 32-bit one), and it ran once per element. Launchers
// pick SMALL = true when every flat index of the launch fits in 31 bits (all but tensors of
// over 2^31 elements), and the split then divides in 32 bits; offsets are formed in 64 bits
// either way. The parity tests run SMALL; the 64-bit path is the same code with wider types.
template <bool SMALL>
__device__ __forceinline__ void split_index(int64_t k, int64_t rows, int64_t cols, int64_t& plane, int64_t& row,
                                            int64_t& col) {
  if constexpr (SMALL) {
    const uint32_t kk = uint32_t(k), cc = uint32_t(cols), rr = uint32_t(rows);
    const uint32_t q = kk / cc, p = q / rr;
    col = int64_t(kk - q * cc);
    row = int64_t(q - p * rr);
    plane = int64_t(p);
  } else {
    const int64_t q = k / cols;
    col = k - q * cols;
    plane = q / rows;
    row = q - plane * rows;
  }
}

/// Launches kernel<.., true> when every flat index below `total` fits the 32-bit split,
/// else kernel<.., false>, over `total` work items.
template <class... P, class... A>
void launch_split(void (*small)(P...), void (*large)(P...), int64_t total, cudaStream_t stream, A&&... args) {
  if (total < (int64_t(1) << 31)) {
    small<<<grid_for(total), kThreads, 0, stream>>>(std::forward<A>(args)...);
  } else {
    large<<<grid_for(total), kThreads, 0, stream>>>(std::forward<A>(args)...);
  }
}

// ---- kernels
template <class T, bool SMALL>
__global__ void max_fwd_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t* __restrict__ idx,
                               PoolGeometry g, int64_t total) {
  using A = acc_t<T>;
  for (int64_t k = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; k < total;
       k += int64_t(gridDim.x) * blockDim.x) {
    int64_t p, oh, ow;
    split_index<SMALL>(k, g.oh, g.ow, p, oh, ow);
    const T* xp = x + p * g.h * g.w;
    int64_t h0 = oh * g.sh - g.ph, w0 = ow * g.sw - g.pw;
    int64_t h1 = min(h0 + g.kh, g.h), w1 = min(w0 + g.kw, g.w);
    h0 = max(h0, int64_t(0)), w0 = max(w0, int64_t(0));
    A best = -INFINITY;
    int64_t arg = h0 * g.w + w0;
    bool nan = false;
    for (int64_t ih = h0; ih < h1 && !nan; ++ih) {
      for (int64_t iw = w0; iw < w1; ++iw) {
        A v = A(xp[ih * g.w + iw]);
        if (v > best || v != v) {  // NaN wins and sticks, as in PyTorch
          best = v;
          arg = ih * g.w + iw;
          if (v != v) {
            nan = true;
            break;
          }
        }
      }
    }
    y[k] = T(best);
    idx[k] = arg;
  }
}

template <class T, bool SMALL>
__global__ void max_bwd_kernel(const T* __restrict__ gy, const int64_t* __restrict__ idx,
                               T* __restrict__ gx, PoolGeometry g, int64_t total) {
  using A = acc_t<T>;
  for (int64_t k = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; k < total;
       k += int64_t(gridDim.x) * blockDim.x) {
    int64_t p, ih, iw;
    split_index<SMALL>(k, g.h, g.w, p, ih, iw);
    int64_t oh0, oh1, ow0, ow1;
    covering_outputs(ih, g.kh, g.sh, g.ph, g.oh, oh0, oh1);
    covering_outputs(iw, g.kw, g.sw, g.pw, g.ow, ow0, ow1);
    const int64_t me = ih * g.w + iw, base = p * g.oh * g.ow;
    A acc = 0;
    for (int64_t oh = oh0; oh < oh1; ++oh)
      for (int64_t ow = ow0; ow < ow1; ++ow) {
        const int64_t o = base + oh * g.ow + ow;
        if (idx[o] == me) acc += A(gy[o]);
      }
    gx[k] = T(acc);
  }
}

template <class T, bool SMALL>
__global__ void avg_fwd_kernel(const T* __restrict__ x, T* __restrict__ y, PoolGeometry g,
                               bool include_pad, int64_t total) {
  using A = acc_t<T>;
  for (int64_t k = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; k < total;
       k += int64_t(gridDim.x) * blockDim.x) {
    int64_t p, oh, ow;
    split_index<SMALL>(k, g.oh, g.ow, p, oh, ow);
    const T* xp = x + p * g.h * g.w;
    AvgWindow wd = avg_window(g, oh, ow, include_pad);
    A s = 0;
    for (int64_t ih = wd.h0; ih < wd.h1; ++ih)
      for (int64_t iw = wd.w0; iw < wd.w1; ++iw) s += A(xp[ih * g.w + iw]);
    y[k] = T(s / A(wd.div));
  }
}

template <class T, bool SMALL>
__global__ void avg_bwd_kernel(const T* __restrict__ gy, T* __restrict__ gx, PoolGeometry g,
                               bool include_pad, int64_t total) {
  using A = acc_t<T>;
  for (int64_t k = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; k < total;
       k += int64_t(gridDim.x) * blockDim.x) {
    int64_t p, ih, iw;
    split_index<SMALL>(k, g.h, g.w, p, ih, iw);
    int64_t oh0, oh1, ow0, ow1;
    covering_outputs(ih, g.kh, g.sh, g.ph, g.oh, oh0, oh1);
    covering_outputs(iw, g.kw, g.sw, g.pw, g.ow, ow0, ow1);
    const T* gyp = gy + p * g.oh * g.ow;
    A acc = 0;
    for (int64_t oh = oh0; oh < oh1; ++oh)
      for (int64_t ow = ow0; ow < ow1; ++ow)
        acc += A(gyp[oh * g.ow + ow]) / A(avg_window(g, oh, ow, include_pad).div);
    gx[k] = T(acc);
  }
}

template <class T, bool SMALL>
__global__ void adaptive_fwd_kernel(const T* __restrict__ x, T* __restrict__ y, PoolGeometry g,
                                    int64_t total) {
  using A = acc_t<T>;
  for (int64_t k = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; k < total;
       k += int64_t(gridDim.x) * blockDim.x) {
    int64_t p, oh, ow;
    split_index<SMALL>(k, g.oh, g.ow, p, oh, ow);
    const T* xp = x + p * g.h * g.w;
    const int64_t h0 = adaptive_start(oh, g.h, g.oh), h1 = adaptive_end(oh, g.h, g.oh);
    const int64_t w0 = adaptive_start(ow, g.w, g.ow), w1 = adaptive_end(ow, g.w, g.ow);
    A s = 0;
    for (int64_t ih = h0; ih < h1; ++ih)
      for (int64_t iw = w0; iw < w1; ++iw) s += A(xp[ih * g.w + iw]);
    y[k] = T(s / A((h1 - h0) * (w1 - w0)));
  }
}

template <class T, bool SMALL>
__global__ void adaptive_bwd_kernel(const T* __restrict__ gy, T* __restrict__ gx, PoolGeometry g,
                                    int64_t total) {
  using A = acc_t<T>;
  for (int64_t k = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; k < total;
       k += int64_t(gridDim.x) * blockDim.x) {
    int64_t p, ih, iw;
    split_index<SMALL>(k, g.h, g.w, p, ih, iw);
    // Output o covers input i iff floor(i * O / I) <= o < ceil((i + 1) * O / I).
    const int64_t oh0 = (ih * g.oh) / g.h, oh1 = ((ih + 1) * g.oh + g.h - 1) / g.h;
    const int64_t ow0 = (iw * g.ow) / g.w, ow1 = ((iw + 1) * g.ow + g.w - 1) / g.w;
    const T* gyp = gy + p * g.oh * g.ow;
    A acc = 0;
    for (int64_t oh = oh0; oh < oh1; ++oh) {
      const int64_t hn = adaptive_end(oh, g.h, g.oh) - adaptive_start(oh, g.h, g.oh);
      for (int64_t ow = ow0; ow < ow1; ++ow) {
        const int64_t wn = adaptive_end(ow, g.w, g.ow) - adaptive_start(ow, g.w, g.ow);
        acc += A(gyp[oh * g.ow + ow]) / A(hn * wn);
      }
    }
    gx[k] = T(acc);
  }
}

// ---- launchers
void max_pool2d_fwd(DType dtype, const void* x, void* y, int64_t* idx, const PoolGeometry& g,
                    cudaStream_t stream) {
  const int64_t total = g.planes * g.oh * g.ow;
  EMBER_DISPATCH_FLOAT(dtype, "max_pool2d", [&] {
    launch_split(max_fwd_kernel<scalar_t, true>, max_fwd_kernel<scalar_t, false>, total, stream,
                 static_cast<const scalar_t*>(x), static_cast<scalar_t*>(y), idx, g, total);
    EMBER_CUDA_CHECK_LAUNCH();
  });
}

void max_pool2d_bwd(DType dtype, const void* gy, const int64_t* idx, void* gx, const PoolGeometry& g,
                    cudaStream_t stream) {
  const int64_t total = g.planes * g.h * g.w;
  EMBER_DISPATCH_FLOAT(dtype, "max_pool2d backward", [&] {
    launch_split(max_bwd_kernel<scalar_t, true>, max_bwd_kernel<scalar_t, false>, total, stream,
                 static_cast<const scalar_t*>(gy), idx, static_cast<scalar_t*>(gx), g, total);
    EMBER_CUDA_CHECK_LAUNCH();
  });
}

void avg_pool2d_fwd(DType dtype, const void* x, void* y, const PoolGeometry& g, bool count_include_pad,
                    cudaStream_t stream) {
  const int64_t total = g.planes * g.oh * g.ow;
  EMBER_DISPATCH_FLOAT(dtype, "avg_pool2d", [&] {
    launch_split(avg_fwd_kernel<scalar_t, true>, avg_fwd_kernel<scalar_t, false>, total, stream,
                 static_cast<const scalar_t*>(x), static_cast<scalar_t*>(y), g, count_include_pad, total);
    EMBER_CUDA_CHECK_LAUNCH();
  });
}

void avg_pool2d_bwd(DType dtype, const void* gy, void* gx, const PoolGeometry& g,
                    bool count_include_pad, cudaStream_t stream) {
  const int64_t total = g.planes * g.h * g.w;
  EMBER_DISPATCH_FLOAT(dtype, "avg_pool2d backward", [&] {
    launch_split(avg_bwd_kernel<scalar_t, true>, avg_bwd_kernel<scalar_t, false>, total, stream,
                 static_cast<const scalar_t*>(gy), static_cast<scalar_t*>(gx), g, count_include_pad, total);
    EMBER_CUDA_CHECK_LAUNCH();
  });
}

void adaptive_avg_pool2d_fwd(DType dtype, const void* x, void* y, const PoolGeometry& g,
                             cudaStream_t stream) {
  const int64_t total = g.planes * g.oh * g.ow;
  EMBER_DISPATCH_FLOAT(dtype, "adaptive_avg_pool2d", [&] {
    launch_split(adaptive_fwd_kernel<scalar_t, true>, adaptive_fwd_kernel<scalar_t, false>, total, stream,
                 static_cast<const scalar_t*>(x), static_cast<scalar_t*>(y), g, total);
    EMBER_CUDA_CHECK_LAUNCH();
  });
}

void adaptive_avg_pool2d_bwd(DType dtype, const void* gy, void* gx, const PoolGeometry& g,
                             cudaStream_t stream) {
  const int64_t total = g.planes * g.h * g.w;
  EMBER_DISPATCH_FLOAT(dtype, "adaptive_avg_pool2d backward", [&] {
    launch_split(adaptive_bwd_kernel<scalar_t, true>, adaptive_bwd_kernel<scalar_t, false>, total, stream,
                 static_cast<const scalar_t*>(gy), static_cast<scalar_t*>(gx), g, total);
    EMBER_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace ember::cuda
