// CPU batch norm: channels spread over OpenMP threads; each channel's statistics are two
// passes (mean, then squared deviations) accumulated in double, which is exact enough
// for f32 and cheap next to the memory traffic.
#include <omp.h>

#include <algorithm>
#include <cmath>

#include "kernels/batch_norm.h"
#include "kernels/cpu/loops.h"
#include "core/error.h"

namespace ember::cpu {

namespace {

/// f(channel) for every channel; threads split the channels when there is enough work,
/// otherwise each channel's loops run on one thread.
template <class F>
void over_channels(int64_t n, int64_t c, int64_t s, F&& f) {
  const int64_t per_channel = n * s;
  parallel_for(c, [&](int64_t cb, int64_t ce) {
    for (int64_t ch = cb; ch < ce; ++ch) f(ch);
  }, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(1, per_channel)));
}

template <class T>
void stats(const T* x, acc_t<T>* mean, acc_t<T>* invstd, T* rm, T* rv, int64_t n, int64_t c,
           int64_t s, double momentum, double eps) {
  using A = acc_t<T>;
  const int64_t m = n * s;
  over_channels(n, c, s, [&](int64_t ch) {
    double sum = 0;
    for (int64_t i = 0; i < n; ++i) {
      const T* r = x + (i * c + ch) * s;
      double part = 0;
      for (int64_t j = 0; j < s; ++j) part += double(r[j]);
      sum += part;
    }
    const double mu = sum / double(m);
    double sq = 0;
    for (int64_t i = 0; i < n; ++i) {
      const T* r = x + (i * c + ch) * s;
      double part = 0;
      for (int64_t j = 0; j < s; ++j) {
        double d = double(r[j]) - mu;
        part += d * d;
      }
      sq += part;
    }
    const double var = sq / double(m);
    mean[ch] = A(mu);
    invstd[ch] = A(1.0 / std::sqrt(var + eps));
    if (rm) rm[ch] = T((1 - momentum) * double(rm[ch]) + momentum * mu);
    if (rv) {
      const double unbiased = m > 1 ? sq / double(m - 1) : var;
      rv[ch] = T((1 - momentum) * double(rv[ch]) + momentum * unbiased);
    }
  });
}

template <class T>
void apply(const T* x, const acc_t<T>* mean, const acc_t<T>* invstd, const T* w, const T* b, T* y,
           int64_t n, int64_t c, int64_t s) {
  using A = acc_t<T>;
  // Over (n, c) rows: every row has one scale and shift, the inner loop vectorizes.
  parallel_for(n * c, [&](int64_t rb, int64_t re) {
    for (int64_t r = rb; r < re; ++r) {
      const int64_t ch = r % c;
      const A scale = invstd[ch] * (w ? A(w[ch]) : A(1));
      const A shift = (b ? A(b[ch]) : A(0)) - mean[ch] * scale;
      const T* xr = x + r * s;
      T* yr = y + r * s;
      for (int64_t j = 0; j < s; ++j) yr[j] = T(A(xr[j]) * scale + shift);
    }
  }, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(1, s)));
}

template <class T>
void bwd(const T* x, const T* gy, const acc_t<T>* mean, const acc_t<T>* invstd, const T* w, T* gx,
         T* gw, T* gb, int64_t n, int64_t c, int64_t s, bool training) {
  using A = acc_t<T>;
  const int64_t m = n * s;
  over_channels(n, c, s, [&](int64_t ch) {
    const A mu = mean[ch], is = invstd[ch];
    // sum(gy) and sum(gy * (x - mean)), then xhat = (x - mean) * invstd.
    double sg = 0, sgx = 0;
    for (int64_t i = 0; i < n; ++i) {
      const T* xr = x + (i * c + ch) * s;
      const T* gr = gy + (i * c + ch) * s;
      A a = 0, bsum = 0;
      for (int64_t j = 0; j < s; ++j) {
        A g = A(gr[j]);
        a += g;
        bsum += g * (A(xr[j]) - mu);
      }
      sg += double(a);
      sgx += double(bsum);
    }
    const double sum_gy_xhat = sgx * double(is);
    if (gb) gb[ch] = T(sg);
    if (gw) gw[ch] = T(sum_gy_xhat);
    if (!gx) return;
    const A wv = w ? A(w[ch]) : A(1);
    const A k = wv * is;
    // training: gx = w * invstd * (gy - mean(gy) - xhat * mean(gy * xhat))
    const A mean_g = training ? A(sg / double(m)) : A(0);
    const A coef = training ? A(sum_gy_xhat / double(m)) * is : A(0);  // multiplies (x - mean)
    for (int64_t i = 0; i < n; ++i) {
      const T* xr = x + (i * c + ch) * s;
      const T* gr = gy + (i * c + ch) * s;
      T* out = gx + (i * c + ch) * s;
      for (int64_t j = 0; j < s; ++j)
        out[j] = T(k * (A(gr[j]) - mean_g - (A(xr[j]) - mu) * coef));
    }
  });
}

}  // namespace

void batch_norm_stats(DType dtype, const void* x, void* mean, void* invstd, void* running_mean,
                      void* running_var, int64_t n, int64_t c, int64_t s, double momentum,
                      double eps) {
  EMBER_DISPATCH_FLOAT(dtype, "batch_norm", [&] {
    using A = acc_t<scalar_t>;
    stats(static_cast<const scalar_t*>(x), static_cast<A*>(mean), static_cast<A*>(invstd),
          static_cast<scalar_t*>(running_mean), static_cast<scalar_t*>(running_var), n, c, s,
          momentum, eps);
  });
}

void batch_norm_apply(DType dtype, const void* x, const void* mean, const void* invstd,
                      const void* weight, const void* bias, void* y, int64_t n, int64_t c, int64_t s) {
  EMBER_DISPATCH_FLOAT(dtype, "batch_norm", [&] {
    using A = acc_t<scalar_t>;
    apply(static_cast<const scalar_t*>(x), static_cast<const A*>(mean),
          static_cast<const A*>(invstd), static_cast<const scalar_t*>(weight),
          static_cast<const scalar_t*>(bias), static_cast<scalar_t*>(y), n, c, s);
  });
}

void batch_norm_bwd(DType dtype, const void* x, const void* gy, const void* mean, const void* invstd,
                    const void* weight, void* gx, void* gw, void* gb, int64_t n, int64_t c,
                    int64_t s, bool training) {
  EMBER_DISPATCH_FLOAT(dtype, "batch_norm backward", [&] {
    using A = acc_t<scalar_t>;
    bwd(static_cast<const scalar_t*>(x), static_cast<const scalar_t*>(gy),
        static_cast<const A*>(mean), static_cast<const A*>(invstd),
        static_cast<const scalar_t*>(weight), static_cast<scalar_t*>(gx),
        static_cast<scalar_t*>(gw), static_cast<scalar_t*>(gb), n, c, s, training);
  });
}

}  // namespace ember::cpu
