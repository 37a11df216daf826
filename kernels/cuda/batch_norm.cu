// CUDA batch norm, our own kernels: one block per channel for the statistics (two passes:
// mean, then squared deviations) and for backward (sums, then gx); the normalization
// itself is a grid-stride elementwise pass. With few channels (16-64 of 132 SMs busy) a
// (channel x range) grid with per-range partials combined in order takes over.
// Speed unmeasured (no GPU run yet), and not yet compared with cuDNN's batch norm.
#include <algorithm>

#include "kernels/batch_norm.h"
#include "kernels/cuda/block_sum.cuh"
#include "kernels/cuda/launch.h"
#include "core/allocator.h"

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

// ---- (channel x chunk) grid: when there are few channels, each channel's m = n * s
// elements are cut into `chunks` ranges, one block each; per-range partials are combined
// per channel in range order (deterministic), then the elementwise passes run on a full grid.

/// Element q of channel ch (q in [0, n * s)).
__device__ __forceinline__ int64_t channel_offset(int64_t q, int64_t ch, int64_t c, int64_t s) {
  return ((q / s) * c + ch) * s + q % s;
}

/// One range's count, mean and sum of squared deviations from that mean (two passes over
/// the range, as the one-block kernel does over the channel).
template <class A>
struct BnPartial {
  A count, mean, m2;
};

template <class T, class A>
__global__ void bn_partial_stats_kernel(const T* __restrict__ x, BnPartial<A>* __restrict__ part,
                                        int64_t n, int64_t c, int64_t s, int64_t chunks) {
  const int64_t m = n * s;
  for (int64_t blk = blockIdx.x; blk < c * chunks; blk += gridDim.x) {
    const int64_t ch = blk / chunks, k = blk % chunks;
    const int64_t q0 = m * k / chunks, q1 = m * (k + 1) / chunks;
    A v[1] = {A(0)};
    for (int64_t q = q0 + threadIdx.x; q < q1; q += blockDim.x) v[0] += A(x[channel_offset(q, ch, c, s)]);
    block_sum<1>(v);
    const A cnt = A(q1 - q0);
    const A mu = cnt > A(0) ? v[0] / cnt : A(0);
    A d2[1] = {A(0)};
    for (int64_t q = q0 + threadIdx.x; q < q1; q += blockDim.x) {
      const A d = A(x[channel_offset(q, ch, c, s)]) - mu;
      d2[0] += d * d;
    }
    block_sum<1>(d2);
    if (threadIdx.x == 0) part[blk] = BnPartial<A>{cnt, mu, d2[0]};
  }
}

// A thread per channel: Chan et al.'s pairwise combination of the ranges, in order.
template <class T, class A>
__global__ void bn_finish_stats_kernel(const BnPartial<A>* __restrict__ part, A* __restrict__ mean,
                                       A* __restrict__ invstd, T* __restrict__ rm, T* __restrict__ rv,
                                       int64_t c, int64_t chunks, double momentum, double eps) {
  for (int64_t ch = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; ch < c;
       ch += int64_t(gridDim.x) * blockDim.x) {
    BnPartial<A> acc = part[ch * chunks];
    for (int64_t k = 1; k < chunks; ++k) {
      const BnPartial<A> b = part[ch * chunks + k];
      if (b.count == A(0)) continue;
      const A tot = acc.count + b.count, delta = b.mean - acc.mean;
      acc.mean += delta * (b.count / tot);
      acc.m2 += b.m2 + delta * delta * (acc.count * b.count / tot);
      acc.count = tot;
    }
    const A var = acc.m2 / acc.count;
    mean[ch] = acc.mean;
    invstd[ch] = A(1) / sqrt(var + A(eps));
    if (rm) rm[ch] = T(A(1 - momentum) * A(rm[ch]) + A(momentum) * acc.mean);
    if (rv) {
      const A unbiased = acc.count > A(1) ? acc.m2 / (acc.count - A(1)) : var;
      rv[ch] = T(A(1 - momentum) * A(rv[ch]) + A(momentum) * unbiased);
    }
  }
}

// Per range: sum(gy) and sum(gy * (x - mean)).
template <class T, class A>
__global__ void bn_partial_bwd_kernel(const T* __restrict__ x, const T* __restrict__ gy,
                                      const A* __restrict__ mean, A* __restrict__ part, int64_t n,
                                      int64_t c, int64_t s, int64_t chunks) {
  const int64_t m = n * s;
  for (int64_t blk = blockIdx.x; blk < c * chunks; blk += gridDim.x) {
    const int64_t ch = blk / chunks, k = blk % chunks;
    const int64_t q0 = m * k / chunks, q1 = m * (k + 1) / chunks;
    const A mu = mean[ch];
    A v[2] = {A(0), A(0)};
    for (int64_t q = q0 + threadIdx.x; q < q1; q += blockDim.x) {
      const int64_t o = channel_offset(q, ch, c, s);
      const A g = A(gy[o]);
      v[0] += g;
      v[1] += g * (A(x[o]) - mu);
    }
    block_sum<2>(v);
    if (threadIdx.x == 0) {
      part[2 * blk] = v[0];
      part[2 * blk + 1] = v[1];
    }
  }
}

// A thread per channel: the ranges' sums in order; gb and gw; sums kept for gx.
template <class T, class A>
__global__ void bn_finish_bwd_kernel(const A* __restrict__ part, const A* __restrict__ invstd,
                                     A* __restrict__ sums, T* __restrict__ gw, T* __restrict__ gb,
                                     int64_t c, int64_t chunks) {
  for (int64_t ch = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; ch < c;
       ch += int64_t(gridDim.x) * blockDim.x) {
    A sg = A(0), sgx = A(0);
    for (int64_t k = 0; k < chunks; ++k) {
      sg += part[2 * (ch * chunks + k)];
      sgx += part[2 * (ch * chunks + k) + 1];
    }
    sums[2 * ch] = sg;
    sums[2 * ch + 1] = sgx;
    if (gb) gb[ch] = T(sg);
    if (gw) gw[ch] = T(sgx * invstd[ch]);
  }
}

// Elementwise gx from the per-channel sums (the formula of bn_bwd_kernel).
template <class T, class A>
__global__ void bn_gx_kernel(const T* __restrict__ x, const T* __restrict__ gy,
                             const A* __restrict__ mean, const A* __restrict__ invstd,
                             const T* __restrict__ w, const A* __restrict__ sums, T* __restrict__ gx,
                             int64_t c, int64_t s, int64_t total, int64_t m, bool training) {
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total;
       e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t ch = (e / s) % c;
    const A is = invstd[ch];
    const A k = (w ? A(w[ch]) : A(1)) * is;
    const A mean_g = training ? sums[2 * ch] / A(m) : A(0);
    const A coef = training ? sums[2 * ch + 1] * is / A(m) * is : A(0);
    gx[e] = T(k * (A(gy[e]) - mean_g - (A(x[e]) - mean[ch]) * coef));
  }
}

namespace {
/// Ranges per channel: 1 (one block per channel) when the channels fill the GPU or are
/// short; else enough to give ~4 blocks per SM, each range at least 4096 elements.
int64_t bn_chunks(int64_t n, int64_t c, int64_t s) {
  int dev = 0;
  EMBER_CUDA_CHECK(cudaGetDevice(&dev));
  const int64_t target = int64_t(sm_count(dev)) * 4;
  if (c >= target) return 1;
  return std::max<int64_t>(1, std::min(ceil_div(target, c), (n * s) / 4096));
}

void* scratch(int64_t bytes) {
  int dev = 0;
  EMBER_CUDA_CHECK(cudaGetDevice(&dev));
  // Stream order makes the free right after the launches safe (Note [Streams]).
  return allocator_for(Device(DeviceType::cuda, dev)).allocate(size_t(bytes));
}
void release(void* p) {
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) cudaGetLastError();
  allocator_for(Device(DeviceType::cuda, dev)).deallocate(p);
}
}  // namespace

// ---- launchers
void batch_norm_stats(DType dtype, const void* x, void* mean, void* invstd, void* running_mean,
                      void* running_var, int64_t n, int64_t c, int64_t s, double momentum,
                      double eps, cudaStream_t stream) {
  const int blocks = int(std::min<int64_t>(c, 65535));
  if (blocks == 0 || n * s == 0) return;
  const int64_t chunks = bn_chunks(n, c, s);
  EMBER_DISPATCH_FLOAT(dtype, "batch_norm", [&] {
    using A = acc_t<scalar_t>;
    if (chunks == 1) {
      bn_stats_kernel<scalar_t, A><<<blocks, kBnThreads, 0, stream>>>(
          static_cast<const scalar_t*>(x), static_cast<A*>(mean), static_cast<A*>(invstd),
          static_cast<scalar_t*>(running_mean), static_cast<scalar_t*>(running_var), n, c, s,
          momentum, eps);
      EMBER_CUDA_CHECK_LAUNCH();
      return;
    }
    auto* part = static_cast<BnPartial<A>*>(scratch(c * chunks * int64_t(sizeof(BnPartial<A>))));
    const int64_t pblocks = std::min<int64_t>(c * chunks, int64_t(1) << 20);
    bn_partial_stats_kernel<scalar_t, A><<<int(pblocks), kBnThreads, 0, stream>>>(
        static_cast<const scalar_t*>(x), part, n, c, s, chunks);
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess) {
      bn_finish_stats_kernel<scalar_t, A><<<grid_for(c), kThreads, 0, stream>>>(
          part, static_cast<A*>(mean), static_cast<A*>(invstd), static_cast<scalar_t*>(running_mean),
          static_cast<scalar_t*>(running_var), c, chunks, momentum, eps);
      e = cudaGetLastError();
    }
    release(part);
    EMBER_CUDA_CHECK(e);
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
  const int64_t chunks = n * s == 0 ? 1 : bn_chunks(n, c, s);
  EMBER_DISPATCH_FLOAT(dtype, "batch_norm backward", [&] {
    using A = acc_t<scalar_t>;
    const auto* xp = static_cast<const scalar_t*>(x);
    const auto* gyp = static_cast<const scalar_t*>(gy);
    const auto* mp = static_cast<const A*>(mean);
    const auto* isp = static_cast<const A*>(invstd);
    if (chunks == 1) {
      bn_bwd_kernel<scalar_t, A><<<blocks, kBnThreads, 0, stream>>>(
          xp, gyp, mp, isp, static_cast<const scalar_t*>(weight), static_cast<scalar_t*>(gx),
          static_cast<scalar_t*>(gw), static_cast<scalar_t*>(gb), n, c, s, training);
      EMBER_CUDA_CHECK_LAUNCH();
      return;
    }
    // Partials (2 per range) and the per-channel sums (2 per channel) in one block.
    auto* part = static_cast<A*>(scratch((c * chunks + c) * 2 * int64_t(sizeof(A))));
    A* sums = part + 2 * c * chunks;
    const int64_t pblocks = std::min<int64_t>(c * chunks, int64_t(1) << 20);
    bn_partial_bwd_kernel<scalar_t, A><<<int(pblocks), kBnThreads, 0, stream>>>(xp, gyp, mp, part, n, c, s, chunks);
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess) {
      bn_finish_bwd_kernel<scalar_t, A><<<grid_for(c), kThreads, 0, stream>>>(
          part, isp, sums, static_cast<scalar_t*>(gw), static_cast<scalar_t*>(gb), c, chunks);
      e = cudaGetLastError();
    }
    if (e == cudaSuccess && gx) {
      const int64_t total = n * c * s;
      bn_gx_kernel<scalar_t, A><<<grid_for(total), kThreads, 0, stream>>>(
          xp, gyp, mp, isp, static_cast<const scalar_t*>(weight), sums, static_cast<scalar_t*>(gx), c, s,
          total, n * s, training);
      e = cudaGetLastError();
    }
    release(part);
    EMBER_CUDA_CHECK(e);
  });
}

}  // namespace ember::cuda
