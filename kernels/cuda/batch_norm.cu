// CUDA batch norm, our own kernels: one block per channel for the statistics (two passes:
// mean, then squared deviations) and for backward (sums, then gx); the normalization
// itself is a grid-stride elementwise pass.
#include "kernels/batch_norm.h"
#include "kernels/cuda/block_sum.cuh"
#include "kernels/cuda/launch.h"

namespace ember::cuda {

namespace {
constexpr int kBnThreads = 512;
}

// ---- kernels
/// Calls f(offset) for every element of channel ch in (n, c, s): rows of s along the batch.
template <class F>
__device__ void for_channel(int64_t ch, int64_t n, int64_t c, int64_t s, F&& f) {
  if (s >= blockDim.x) {
    for (int64_t i = 0; i < n; ++i) {
      const int64_t base = (i * c + ch) * s;
      for (int64_t j = threadIdx.x; j < s; j += blockDim.x) f(base + j);
    }
  } else {
    for (int64_t m = threadIdx.x; m < n * s; m += blockDim.x) {
      const int64_t i = m / s, j = m - i * s;
      f((i * c + ch) * s + j);
    }
  }
}

template <class T, class A>
__global__ void bn_stats_kernel(const T* __restrict__ x, A* __restrict__ mean, A* __restrict__ invstd,
                                T* __restrict__ rm, T* __restrict__ rv, int64_t n, int64_t c, int64_t s,
                                double momentum, double eps) {
  const int64_t m = n * s;
  for (int64_t ch = blockIdx.x; ch < c; ch += gridDim.x) {
    A v[1] = {A(0)};
    for_channel(ch, n, c, s, [&](int64_t o) { v[0] += A(x[o]); });
    block_sum<1>(v);
    const A mu = v[0] / A(m);
    A q[1] = {A(0)};
    for_channel(ch, n, c, s, [&](int64_t o) {
      const A d = A(x[o]) - mu;
      q[0] += d * d;
    });
    block_sum<1>(q);
    if (threadIdx.x == 0) {
      const A var = q[0] / A(m);
      mean[ch] = mu;
      invstd[ch] = A(1) / sqrt(var + A(eps));
      if (rm) rm[ch] = T(A(1 - momentum) * A(rm[ch]) + A(momentum) * mu);
      if (rv) {
        const A unbiased = m > 1 ? q[0] / A(m - 1) : var;
        rv[ch] = T(A(1 - momentum) * A(rv[ch]) + A(momentum) * unbiased);
      }
    }
  }
}

template <class T, class A>
__global__ void bn_apply_kernel(const T* __restrict__ x, const A* __restrict__ mean,
                                const A* __restrict__ invstd, const T* __restrict__ w,
                                const T* __restrict__ b, T* __restrict__ y, int64_t c, int64_t s,
                                int64_t total) {
  for (int64_t k = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; k < total;
       k += int64_t(gridDim.x) * blockDim.x) {
    const int64_t ch = (k / s) % c;
    const A scale = invstd[ch] * (w ? A(w[ch]) : A(1));
    y[k] = T((A(x[k]) - mean[ch]) * scale + (b ? A(b[ch]) : A(0)));
  }
}

template <class T, class A>
__global__ void bn_bwd_kernel(const T* __restrict__ x, const T* __restrict__ gy,
                              const A* __restrict__ mean, const A* __restrict__ invstd,
                              const T* __restrict__ w, T* __restrict__ gx, T* __restrict__ gw,
                              T* __restrict__ gb, int64_t n, int64_t c, int64_t s, bool training) {
  const int64_t m = n * s;
  for (int64_t ch = blockIdx.x; ch < c; ch += gridDim.x) {
    const A mu = mean[ch], is = invstd[ch];
    A v[2] = {A(0), A(0)};  // sum(gy), sum(gy * (x - mean))
    for_channel(ch, n, c, s, [&](int64_t o) {
      const A g = A(gy[o]);
      v[0] += g;
      v[1] += g * (A(x[o]) - mu);
    });
    block_sum<2>(v);
    const A sum_gy_xhat = v[1] * is;
    if (threadIdx.x == 0) {
      if (gb) gb[ch] = T(v[0]);
      if (gw) gw[ch] = T(sum_gy_xhat);
    }
    if (gx) {
      const A k = (w ? A(w[ch]) : A(1)) * is;
      const A mean_g = training ? v[0] / A(m) : A(0);
      const A coef = training ? sum_gy_xhat / A(m) * is : A(0);
      for_channel(ch, n, c, s, [&](int64_t o) {
        gx[o] = T(k * (A(gy[o]) - mean_g - (A(x[o]) - mu) * coef));
      });
    }
  }
}

// ---- launchers
void batch_norm_stats(DType dtype, const void* x, void* mean, void* invstd, void* running_mean,
                      void* running_var, int64_t n, int64_t c, int64_t s, double momentum,
                      double eps, cudaStream_t stream) {
  const int blocks = int(std::min<int64_t>(c, 65535));
  if (blocks == 0 || n * s == 0) return;
  EMBER_DISPATCH_FLOAT(dtype, "batch_norm", [&] {
    using A = acc_t<scalar_t>;
    bn_stats_kernel<scalar_t, A><<<blocks, kBnThreads, 0, stream>>>(
        static_cast<const scalar_t*>(x), static_cast<A*>(mean), static_cast<A*>(invstd),
        static_cast<scalar_t*>(running_mean), static_cast<scalar_t*>(running_var), n, c, s,
        momentum, eps);
    EMBER_CUDA_CHECK_LAUNCH();
  });
}

void batch_norm_apply(DType dtype, const void* x, const void* mean, const void* invstd,
                      const void* weight, const void* bias, void* y, int64_t n, int64_t c,
                      int64_t s, cudaStream_t stream) {
  const int64_t total = n * c * s;
  EMBER_DISPATCH_FLOAT(dtype, "batch_norm", [&] {
    using A = acc_t<scalar_t>;
    bn_apply_kernel<scalar_t, A><<<grid_for(total), kThreads, 0, stream>>>(
        static_cast<const scalar_t*>(x), static_cast<const A*>(mean), static_cast<const A*>(invstd),
        static_cast<const scalar_t*>(weight), static_cast<const scalar_t*>(bias),
        static_cast<scalar_t*>(y), c, s, total);
    EMBER_CUDA_CHECK_LAUNCH();
  });
}

void batch_norm_bwd(DType dtype, const void* x, const void* gy, const void* mean, const void* invstd,
                    const void* weight, void* gx, void* gw, void* gb, int64_t n, int64_t c,
                    int64_t s, bool training, cudaStream_t stream) {
  const int blocks = int(std::min<int64_t>(c, 65535));
  if (blocks == 0) return;
  EMBER_DISPATCH_FLOAT(dtype, "batch_norm backward", [&] {
    using A = acc_t<scalar_t>;
    bn_bwd_kernel<scalar_t, A><<<blocks, kBnThreads, 0, stream>>>(
        static_cast<const scalar_t*>(x), static_cast<const scalar_t*>(gy),
        static_cast<const A*>(mean), static_cast<const A*>(invstd),
        static_cast<const scalar_t*>(weight), static_cast<scalar_t*>(gx),
        static_cast<scalar_t*>(gw), static_cast<scalar_t*>(gb), n, c, s, training);
    EMBER_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace ember::cuda
