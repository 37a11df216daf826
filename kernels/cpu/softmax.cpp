// CPU softmax / log_softmax forward and backward over (outer, C, inner) rows.
#include <algorithm>
#include <limits>
#include <vector>

#include "kernels/cpu/loops.h"
#include "kernels/softmax.h"
#include "core/error.h"

namespace ember::cpu {

namespace {

// Rows of one outer slice at once: inner == 1 walks each row; inner > 1 keeps `inner`
// running maxima/sums so the C x inner block is read in memory order.
template <class T>
void fwd_slice(const T* x, T* y, int64_t C, int64_t inner, bool log) {
  using A = acc_t<T>;
  if (inner == 1) {
    A mx = -std::numeric_limits<A>::infinity();
    for (int64_t c = 0; c < C; ++c) mx = std::max(mx, A(x[c]));
    A sum = 0;
    for (int64_t c = 0; c < C; ++c) sum += math::exp(A(x[c]) - mx);
    if (log) {
      A lse = mx + math::log(sum);
      for (int64_t c = 0; c < C; ++c) y[c] = T(A(x[c]) - lse);
    } else {
      A inv = A(1) / sum;
      for (int64_t c = 0; c < C; ++c) y[c] = T(math::exp(A(x[c]) - mx) * inv);
    }
    return;
  }
  std::vector<A> mx(size_t(inner), -std::numeric_limits<A>::infinity()), sum(size_t(inner), A(0));
  for (int64_t c = 0; c < C; ++c)
    for (int64_t i = 0; i < inner; ++i) mx[size_t(i)] = std::max(mx[size_t(i)], A(x[c * inner + i]));
  for (int64_t c = 0; c < C; ++c)
    for (int64_t i = 0; i < inner; ++i) sum[size_t(i)] += math::exp(A(x[c * inner + i]) - mx[size_t(i)]);
  for (int64_t i = 0; i < inner; ++i) {
    // Turn (max, sum) into what the write pass subtracts/multiplies.
    if (log) {
      mx[size_t(i)] += math::log(sum[size_t(i)]);
    } else {
      sum[size_t(i)] = A(1) / sum[size_t(i)];
    }
  }
  for (int64_t c = 0; c < C; ++c) {
    for (int64_t i = 0; i < inner; ++i) {
      A v = A(x[c * inner + i]) - mx[size_t(i)];
      y[c * inner + i] = log ? T(v) : T(math::exp(v) * sum[size_t(i)]);
    }
  }
}

template <class T>
void bwd_slice(const T* y, const T* g, T* gx, int64_t C, int64_t inner, bool log) {
  using A = acc_t<T>;
  std::vector<A> dot(size_t(inner), A(0));
  // softmax: sum(g * y); log_softmax: sum(g).
  for (int64_t c = 0; c < C; ++c)
    for (int64_t i = 0; i < inner; ++i) {
      int64_t k = c * inner + i;
      dot[size_t(i)] += log ? A(g[k]) : A(g[k]) * A(y[k]);
    }
  for (int64_t c = 0; c < C; ++c)
    for (int64_t i = 0; i < inner; ++i) {
      int64_t k = c * inner + i;
      A yv = A(y[k]), gv = A(g[k]);
      gx[k] = log ? T(gv - math::exp(yv) * dot[size_t(i)]) : T(yv * (gv - dot[size_t(i)]));
    }
}

int64_t grain_for(int64_t C, int64_t inner) {
  return std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(1, C * inner));
}

}  // namespace

void softmax_fwd(DType dtype, const void* x, void* y, int64_t outer, int64_t C, int64_t inner,
                 bool log) {
  if (outer * C * inner == 0) return;
  EMBER_DISPATCH_FLOAT(dtype, log ? "log_softmax" : "softmax", [&] {
    const scalar_t* xp = static_cast<const scalar_t*>(x);
    scalar_t* yp = static_cast<scalar_t*>(y);
    parallel_for(outer, [&](int64_t b, int64_t e) {
      for (int64_t o = b; o < e; ++o) fwd_slice(xp + o * C * inner, yp + o * C * inner, C, inner, log);
    }, grain_for(C, inner));
  });
}

void softmax_bwd(DType dtype, const void* y, const void* g, void* gx, int64_t outer, int64_t C,
                 int64_t inner, bool log) {
  if (outer * C * inner == 0) return;
  EMBER_DISPATCH_FLOAT(dtype, log ? "log_softmax backward" : "softmax backward", [&] {
    const scalar_t* yp = static_cast<const scalar_t*>(y);
    const scalar_t* gp = static_cast<const scalar_t*>(g);
    scalar_t* gxp = static_cast<scalar_t*>(gx);
    parallel_for(outer, [&](int64_t b, int64_t e) {
      for (int64_t o = b; o < e; ++o) {
        int64_t off = o * C * inner;
        bwd_slice(yp + off, gp + off, gxp + off, C, inner, log);
      }
    }, grain_for(C, inner));
  });
}

}  // namespace ember::cpu
