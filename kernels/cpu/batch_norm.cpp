// CPU batch norm: channels spread over the worker threads; each channel's statistics are two
// passes (mean, then squared deviations) accumulated in double, which is exact enough
// for f32 and cheap next to the memory traffic. Every sum over a row keeps eight
// independent partial sums: one running sum is a chain of dependent adds, four cycles
// each, and a row of 1024 then cost several times its memory traffic (batch norm was 18% of
// a ResNet-20 step).
#include <algorithm>
#include <cmath>

#include "kernels/batch_norm.h"
#include "kernels/cpu/loops.h"
#include "core/error.h"

namespace ember::cpu {

namespace {

constexpr int kLanes = 8;

template <class A>
A add_lanes(const A (&p)[kLanes]) {
  return ((p[0] + p[1]) + (p[2] + p[3])) + ((p[4] + p[5]) + (p[6] + p[7]));
}

/// sum of r[0, s) in double.
template <class T>
double row_sum(const T* r, int64_t s) {
  double p[kLanes] = {};
  int64_t j = 0;
  for (; j + kLanes <= s; j += kLanes)
    for (int k = 0; k < kLanes; ++k) p[k] += double(r[j + k]);
  double tail = 0;
  for (; j < s; ++j) tail += double(r[j]);
  return add_lanes(p) + tail;
}

/// sum of (r[j] - mu)^2 over [0, s) in double.
template <class T>
double row_sq_dev(const T* r, int64_t s, double mu) {
  double p[kLanes] = {};
  int64_t j = 0;
  for (; j + kLanes <= s; j += kLanes)
    for (int k = 0; k < kLanes; ++k) {
      const double d = double(r[j + k]) - mu;
      p[k] += d * d;
    }
  double tail = 0;
  for (; j < s; ++j) {
    const double d = double(r[j]) - mu;
    tail += d * d;
  }
  return add_lanes(p) + tail;
}

/// sum of gy and of gy * (x - mu) over a row, in A.
template <class A, class T>
void row_grad_sums(const T* xr, const T* gr, int64_t s, A mu, A& sum_g, A& sum_gx) {
  A pg[kLanes] = {}, px[kLanes] = {};
  int64_t j = 0;
  for (; j + kLanes <= s; j += kLanes)
    for (int k = 0; k < kLanes; ++k) {
      const A g = A(gr[j + k]);
      pg[k] += g;
      px[k] += g * (A(xr[j + k]) - mu);
    }
  A tg = 0, tx = 0;
  for (; j < s; ++j) {
    const A g = A(gr[j]);
    tg += g;
    tx += g * (A(xr[j]) - mu);
  }
  sum_g = add_lanes(pg) + tg;
  sum_gx = add_lanes(px) + tx;
}

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
    for (int64_t i = 0; i < n; ++i) sum += row_sum(x + (i * c + ch) * s, s);
    const double mu = sum / double(m);
    double sq = 0;
    for (int64_t i = 0; i < n; ++i) sq += row_sq_dev(x + (i * c + ch) * s, s, mu);
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
      row_grad_sums(xr, gr, s, mu, a, bsum);
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
