// Direct CUDA convolution: the path of builds without cuDNN (and of cudnn::set_enabled
// (false)). Forward: a thread per output; backward-data: a thread per input pixel,
// gathering the outputs it fed; weight and bias gradients: a block per element, reduced
// in a fixed order. No atomics, so results are deterministic. Correct, not fast.
#include "kernels/conv.h"
#include "kernels/cuda/block_sum.cuh"
#include "kernels/cuda/launch.h"

namespace ember::cuda {

// ---- kernels
template <class T>
__global__ void conv_fwd_kernel(const T* __restrict__ x, const T* __restrict__ w,
                                const T* __restrict__ b, T* __restrict__ y, ConvGeometry g,
                                int64_t total) {
  using A = acc_t<T>;
  const int64_t cin_g = g.c_in / g.groups, cout_g = g.c_out / g.groups;
  for (int64_t k = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; k < total;
       k += int64_t(gridDim.x) * blockDim.x) {
    const int64_t ow = k % g.ow, oh = (k / g.ow) % g.oh, o = (k / (g.ow * g.oh)) % g.c_out;
    const int64_t n = k / (g.ow * g.oh * g.c_out);
    const int64_t c0 = (o / cout_g) * cin_g;
    A acc = b ? A(b[o]) : A(0);
    for (int64_t ci = 0; ci < cin_g; ++ci) {
      const T* xc = x + (n * g.c_in + c0 + ci) * g.h * g.w;
      const T* wc = w + (o * cin_g + ci) * g.kh * g.kw;
      for (int64_t i = 0; i < g.kh; ++i) {
        const int64_t ih = oh * g.sh - g.ph + i * g.dh;
        if (ih < 0 || ih >= g.h) continue;
        for (int64_t j = 0; j < g.kw; ++j) {
          const int64_t iw = ow * g.sw - g.pw + j * g.dw;
          if (iw < 0 || iw >= g.w) continue;
          acc += A(xc[ih * g.w + iw]) * A(wc[i * g.kw + j]);
        }
      }
    }
    y[k] = T(acc);
  }
}

template <class T>
__global__ void conv_bwd_data_kernel(const T* __restrict__ w, const T* __restrict__ gy,
                                     T* __restrict__ gx, ConvGeometry g, int64_t total) {
  using A = acc_t<T>;
  const int64_t cin_g = g.c_in / g.groups, cout_g = g.c_out / g.groups;
  for (int64_t k = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; k < total;
       k += int64_t(gridDim.x) * blockDim.x) {
    const int64_t iw = k % g.w, ih = (k / g.w) % g.h, c = (k / (g.w * g.h)) % g.c_in;
    const int64_t n = k / (g.w * g.h * g.c_in);
    const int64_t grp = c / cin_g, ci = c - grp * cin_g;
    A acc = 0;
    for (int64_t o = grp * cout_g; o < (grp + 1) * cout_g; ++o) {
      const T* wc = w + (o * cin_g + ci) * g.kh * g.kw;
      const T* gyo = gy + (n * g.c_out + o) * g.oh * g.ow;
      for (int64_t i = 0; i < g.kh; ++i) {
        const int64_t th = ih + g.ph - i * g.dh;  // = oh * sh
        if (th < 0 || th % g.sh != 0 || th / g.sh >= g.oh) continue;
        for (int64_t j = 0; j < g.kw; ++j) {
          const int64_t tw = iw + g.pw - j * g.dw;
          if (tw < 0 || tw % g.sw != 0 || tw / g.sw >= g.ow) continue;
          acc += A(wc[i * g.kw + j]) * A(gyo[(th / g.sh) * g.ow + tw / g.sw]);
        }
      }
    }
    gx[k] = T(acc);
  }
}

template <class T>
__global__ void conv_bwd_filter_kernel(const T* __restrict__ x, const T* __restrict__ gy,
                                       T* __restrict__ gw, ConvGeometry g, int64_t wsize) {
  using A = acc_t<T>;
  const int64_t cin_g = g.c_in / g.groups, cout_g = g.c_out / g.groups;
  const int64_t ohw = g.oh * g.ow, m = g.n * ohw;
  for (int64_t e = blockIdx.x; e < wsize; e += gridDim.x) {
    const int64_t j = e % g.kw, i = (e / g.kw) % g.kh, ci = (e / (g.kw * g.kh)) % cin_g;
    const int64_t o = e / (g.kw * g.kh * cin_g);
    const int64_t c = (o / cout_g) * cin_g + ci;
    A v[1] = {A(0)};
    for (int64_t q = threadIdx.x; q < m; q += blockDim.x) {
      const int64_t n = q / ohw, r = q - n * ohw, oh = r / g.ow, ow = r - oh * g.ow;
      const int64_t ih = oh * g.sh - g.ph + i * g.dh, iw = ow * g.sw - g.pw + j * g.dw;
      if (ih < 0 || ih >= g.h || iw < 0 || iw >= g.w) continue;
      v[0] += A(x[((n * g.c_in + c) * g.h + ih) * g.w + iw]) * A(gy[(n * g.c_out + o) * ohw + r]);
    }
    block_sum<1>(v);
    if (threadIdx.x == 0) gw[e] = T(v[0]);
  }
}

template <class T>
__global__ void conv_bwd_bias_kernel(const T* __restrict__ gy, T* __restrict__ gb, ConvGeometry g) {
  using A = acc_t<T>;
  const int64_t ohw = g.oh * g.ow, m = g.n * ohw;
  for (int64_t o = blockIdx.x; o < g.c_out; o += gridDim.x) {
    A v[1] = {A(0)};
    for (int64_t q = threadIdx.x; q < m; q += blockDim.x) {
      const int64_t n = q / ohw, r = q - n * ohw;
      v[0] += A(gy[(n * g.c_out + o) * ohw + r]);
    }
    block_sum<1>(v);
    if (threadIdx.x == 0) gb[o] = T(v[0]);
  }
}

// ---- launchers
void conv2d_fwd(DType dtype, const void* x, const void* w, const void* b, void* y,
                const ConvGeometry& g, cudaStream_t stream) {
  const int64_t total = g.n * g.c_out * g.oh * g.ow;
  if (total == 0) return;
  EMBER_DISPATCH_FLOAT(dtype, "conv2d", [&] {
    conv_fwd_kernel<scalar_t><<<grid_for(total), kThreads, 0, stream>>>(
        static_cast<const scalar_t*>(x), static_cast<const scalar_t*>(w),
        static_cast<const scalar_t*>(b), static_cast<scalar_t*>(y), g, total);
    EMBER_CUDA_CHECK_LAUNCH();
  });
}

void conv2d_bwd(DType dtype, const void* x, const void* w, const void* gy, void* gx, void* gw,
                void* gb, const ConvGeometry& g, cudaStream_t stream) {
  EMBER_DISPATCH_FLOAT(dtype, "conv2d backward", [&] {
    using T = scalar_t;
    if (gx) {
      const int64_t total = g.n * g.c_in * g.h * g.w;
      if (total > 0) {
        conv_bwd_data_kernel<T><<<grid_for(total), kThreads, 0, stream>>>(
            static_cast<const T*>(w), static_cast<const T*>(gy), static_cast<T*>(gx), g, total);
        EMBER_CUDA_CHECK_LAUNCH();
      }
    }
    if (gw) {
      const int64_t wsize = g.c_out * (g.c_in / g.groups) * g.kh * g.kw;
      if (wsize > 0) {
        conv_bwd_filter_kernel<T><<<int(std::min<int64_t>(wsize, 65535)), kThreads, 0, stream>>>(
            static_cast<const T*>(x), static_cast<const T*>(gy), static_cast<T*>(gw), g, wsize);
        EMBER_CUDA_CHECK_LAUNCH();
      }
    }
    if (gb && g.c_out > 0) {
      conv_bwd_bias_kernel<T><<<int(std::min<int64_t>(g.c_out, 65535)), kThreads, 0, stream>>>(
          static_cast<const T*>(gy), static_cast<T*>(gb), g);
      EMBER_CUDA_CHECK_LAUNCH();
    }
  });
}

}  // namespace ember::cuda
