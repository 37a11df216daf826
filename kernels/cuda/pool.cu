// CUDA pooling: one thread per output in forward; one thread per input in backward,
// gathering from the outputs whose windows cover it (no atomics: deterministic).
#include "kernels/cuda/launch.h"
#include "kernels/pool.h"

namespace ember::cuda {

// ---- kernels
template <class T>
__global__ void max_fwd_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t* __restrict__ idx,
                               PoolGeometry g, int64_t total) {
  using A = acc_t<T>;
  for (int64_t k = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; k < total;
       k += int64_t(gridDim.x) * blockDim.x) {
    const int64_t ow = k % g.ow, oh = (k / g.ow) % g.oh, p = k / (g.ow * g.oh);
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

template <class T>
__global__ void max_bwd_kernel(const T* __restrict__ gy, const int64_t* __restrict__ idx,
                               T* __restrict__ gx, PoolGeometry g, int64_t total) {
  using A = acc_t<T>;
  for (int64_t k = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; k < total;
       k += int64_t(gridDim.x) * blockDim.x) {
    const int64_t iw = k % g.w, ih = (k / g.w) % g.h, p = k / (g.w * g.h);
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

template <class T>
__global__ void avg_fwd_kernel(const T* __restrict__ x, T* __restrict__ y, PoolGeometry g,
                               bool include_pad, int64_t total) {
  using A = acc_t<T>;
  for (int64_t k = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; k < total;
       k += int64_t(gridDim.x) * blockDim.x) {
    const int64_t ow = k % g.ow, oh = (k / g.ow) % g.oh, p = k / (g.ow * g.oh);
    const T* xp = x + p * g.h * g.w;
    AvgWindow wd = avg_window(g, oh, ow, include_pad);
    A s = 0;
    for (int64_t ih = wd.h0; ih < wd.h1; ++ih)
      for (int64_t iw = wd.w0; iw < wd.w1; ++iw) s += A(xp[ih * g.w + iw]);
    y[k] = T(s / A(wd.div));
  }
}

template <class T>
__global__ void avg_bwd_kernel(const T* __restrict__ gy, T* __restrict__ gx, PoolGeometry g,
                               bool include_pad, int64_t total) {
  using A = acc_t<T>;
  for (int64_t k = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; k < total;
       k += int64_t(gridDim.x) * blockDim.x) {
    const int64_t iw = k % g.w, ih = (k / g.w) % g.h, p = k / (g.w * g.h);
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

template <class T>
__global__ void adaptive_fwd_kernel(const T* __restrict__ x, T* __restrict__ y, PoolGeometry g,
                                    int64_t total) {
  using A = acc_t<T>;
  for (int64_t k = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; k < total;
       k += int64_t(gridDim.x) * blockDim.x) {
    const int64_t ow = k % g.ow, oh = (k / g.ow) % g.oh, p = k / (g.ow * g.oh);
    const T* xp = x + p * g.h * g.w;
    const int64_t h0 = adaptive_start(oh, g.h, g.oh), h1 = adaptive_end(oh, g.h, g.oh);
    const int64_t w0 = adaptive_start(ow, g.w, g.ow), w1 = adaptive_end(ow, g.w, g.ow);
    A s = 0;
    for (int64_t ih = h0; ih < h1; ++ih)
      for (int64_t iw = w0; iw < w1; ++iw) s += A(xp[ih * g.w + iw]);
    y[k] = T(s / A((h1 - h0) * (w1 - w0)));
  }
}

template <class T>
__global__ void adaptive_bwd_kernel(const T* __restrict__ gy, T* __restrict__ gx, PoolGeometry g,
                                    int64_t total) {
  using A = acc_t<T>;
  for (int64_t k = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; k < total;
       k += int64_t(gridDim.x) * blockDim.x) {
    const int64_t iw = k % g.w, ih = (k / g.w) % g.h, p = k / (g.w * g.h);
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
    max_fwd_kernel<scalar_t><<<grid_for(total), kThreads, 0, stream>>>(
        static_cast<const scalar_t*>(x), static_cast<scalar_t*>(y), idx, g, total);
    EMBER_CUDA_CHECK_LAUNCH();
  });
}

void max_pool2d_bwd(DType dtype, const void* gy, const int64_t* idx, void* gx, const PoolGeometry& g,
                    cudaStream_t stream) {
  const int64_t total = g.planes * g.h * g.w;
  EMBER_DISPATCH_FLOAT(dtype, "max_pool2d backward", [&] {
    max_bwd_kernel<scalar_t><<<grid_for(total), kThreads, 0, stream>>>(
        static_cast<const scalar_t*>(gy), idx, static_cast<scalar_t*>(gx), g, total);
    EMBER_CUDA_CHECK_LAUNCH();
  });
}

void avg_pool2d_fwd(DType dtype, const void* x, void* y, const PoolGeometry& g, bool count_include_pad,
                    cudaStream_t stream) {
  const int64_t total = g.planes * g.oh * g.ow;
  EMBER_DISPATCH_FLOAT(dtype, "avg_pool2d", [&] {
    avg_fwd_kernel<scalar_t><<<grid_for(total), kThreads, 0, stream>>>(
        static_cast<const scalar_t*>(x), static_cast<scalar_t*>(y), g, count_include_pad, total);
    EMBER_CUDA_CHECK_LAUNCH();
  });
}

void avg_pool2d_bwd(DType dtype, const void* gy, void* gx, const PoolGeometry& g,
                    bool count_include_pad, cudaStream_t stream) {
  const int64_t total = g.planes * g.h * g.w;
  EMBER_DISPATCH_FLOAT(dtype, "avg_pool2d backward", [&] {
    avg_bwd_kernel<scalar_t><<<grid_for(total), kThreads, 0, stream>>>(
        static_cast<const scalar_t*>(gy), static_cast<scalar_t*>(gx), g, count_include_pad, total);
    EMBER_CUDA_CHECK_LAUNCH();
  });
}

void adaptive_avg_pool2d_fwd(DType dtype, const void* x, void* y, const PoolGeometry& g,
                             cudaStream_t stream) {
  const int64_t total = g.planes * g.oh * g.ow;
  EMBER_DISPATCH_FLOAT(dtype, "adaptive_avg_pool2d", [&] {
    adaptive_fwd_kernel<scalar_t><<<grid_for(total), kThreads, 0, stream>>>(
        static_cast<const scalar_t*>(x), static_cast<scalar_t*>(y), g, total);
    EMBER_CUDA_CHECK_LAUNCH();
  });
}

void adaptive_avg_pool2d_bwd(DType dtype, const void* gy, void* gx, const PoolGeometry& g,
                             cudaStream_t stream) {
  const int64_t total = g.planes * g.h * g.w;
  EMBER_DISPATCH_FLOAT(dtype, "adaptive_avg_pool2d backward", [&] {
    adaptive_bwd_kernel<scalar_t><<<grid_for(total), kThreads, 0, stream>>>(
        static_cast<const scalar_t*>(gy), static_cast<scalar_t*>(gx), g, total);
    EMBER_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace ember::cuda
