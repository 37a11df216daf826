// CPU fused cross-entropy and NLL, forward and backward.
#include <algorithm>
#include <atomic>
#include <limits>

#include "kernels/cpu/loops.h"
#include "kernels/loss.h"
#include "kernels/softmax.h"
#include "core/error.h"

namespace ember::cpu {

namespace {

void lower_to(std::atomic<int64_t>& a, int64_t v) {
  int64_t cur = a.load(std::memory_order_relaxed);
  while (v < cur && !a.compare_exchange_weak(cur, v, std::memory_order_relaxed)) {
  }
}

int64_t row_grain(int64_t C) { return std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(C, 1)); }

}  // namespace

void cross_entropy_fwd(DType dtype, const void* logits, const int64_t* labels, void* loss,
                       void* valid, void* lse, const LossShape& s, double smoothing,
                       int64_t ignore_index, int64_t* bad_row) {
  std::atomic<int64_t> bad{*bad_row};
  EMBER_DISPATCH_FLOAT(dtype, "cross_entropy", [&] {
    using T = scalar_t;
    using A = acc_t<T>;
    const T* x = static_cast<const T*>(logits);
    A* lo = static_cast<A*>(loss);
    A* va = static_cast<A*>(valid);
    A* ls = static_cast<A*>(lse);
    const A eps = A(smoothing), C = A(s.C);
    parallel_for(s.rows(), [&](int64_t rb, int64_t re) {
      for (int64_t r = rb; r < re; ++r) {
        int64_t y = labels[r];
        lo[r] = 0;
        va[r] = 0;
        ls[r] = 0;
        if (y == ignore_index) continue;
        if (y < 0 || y >= s.C) {
          lower_to(bad, r);
          continue;
        }
        const T* xr = x + (r / s.inner) * s.C * s.inner + r % s.inner;
        A mx = -std::numeric_limits<A>::infinity();
        for (int64_t c = 0; c < s.C; ++c) mx = std::max(mx, A(xr[c * s.inner]));
        A se = 0, sx = 0;
        for (int64_t c = 0; c < s.C; ++c) {
          A v = A(xr[c * s.inner]);
          se += math::exp(v - mx);
          sx += v;
        }
        A l = mx + math::log(se);
        ls[r] = l;
        lo[r] = l - (A(1) - eps) * A(xr[y * s.inner]) - eps * sx / C;
        va[r] = 1;
      }
    }, row_grain(s.C));
  });
  *bad_row = bad.load();
}

void cross_entropy_bwd(DType dtype, const void* logits, const int64_t* labels, const void* lse,
                       const void* g, int64_t g_stride, void* gx, const LossShape& s,
                       double smoothing, int64_t ignore_index) {
  EMBER_DISPATCH_FLOAT(dtype, "cross_entropy backward", [&] {
    using T = scalar_t;
    using A = acc_t<T>;
    const T* x = static_cast<const T*>(logits);
    const A* ls = static_cast<const A*>(lse);
    const A* gp = static_cast<const A*>(g);
    T* out = static_cast<T*>(gx);
    const A eps = A(smoothing), off = A(smoothing) / A(s.C);
    parallel_for(s.rows(), [&](int64_t rb, int64_t re) {
      for (int64_t r = rb; r < re; ++r) {
        int64_t base = (r / s.inner) * s.C * s.inner + r % s.inner;
        int64_t y = labels[r];
        bool live = y != ignore_index && y >= 0 && y < s.C;
        A gr = live ? gp[r * g_stride] : A(0);
        for (int64_t c = 0; c < s.C; ++c) {
          int64_t k = base + c * s.inner;
          A v = live ? math::exp(A(x[k]) - ls[r]) - off - (c == y ? A(1) - eps : A(0)) : A(0);
          out[k] = T(v * gr);
        }
      }
    }, row_grain(s.C));
  });
}

void nll_fwd(DType dtype, const void* log_probs, const int64_t* labels, void* loss, void* valid,
             const LossShape& s, int64_t ignore_index, int64_t* bad_row) {
  std::atomic<int64_t> bad{*bad_row};
  EMBER_DISPATCH_FLOAT(dtype, "nll_loss", [&] {
    using T = scalar_t;
    using A = acc_t<T>;
    const T* x = static_cast<const T*>(log_probs);
    A* lo = static_cast<A*>(loss);
    A* va = static_cast<A*>(valid);
    parallel_for(s.rows(), [&](int64_t rb, int64_t re) {
      for (int64_t r = rb; r < re; ++r) {
        int64_t y = labels[r];
        lo[r] = 0;
        va[r] = 0;
        if (y == ignore_index) continue;
        if (y < 0 || y >= s.C) {
          lower_to(bad, r);
          continue;
        }
        lo[r] = -A(x[(r / s.inner) * s.C * s.inner + y * s.inner + r % s.inner]);
        va[r] = 1;
      }
    });
  });
  *bad_row = bad.load();
}

void nll_bwd(DType dtype, const int64_t* labels, const void* g, int64_t g_stride, void* gx,
             const LossShape& s, int64_t ignore_index) {
  EMBER_DISPATCH_FLOAT(dtype, "nll_loss backward", [&] {
    using T = scalar_t;
    using A = acc_t<T>;
    const A* gp = static_cast<const A*>(g);
    T* out = static_cast<T*>(gx);
    parallel_for(s.rows(), [&](int64_t rb, int64_t re) {
      for (int64_t r = rb; r < re; ++r) {
        int64_t base = (r / s.inner) * s.C * s.inner + r % s.inner;
        int64_t y = labels[r];
        for (int64_t c = 0; c < s.C; ++c) out[base + c * s.inner] = T(0.0f);
        if (y != ignore_index && y >= 0 && y < s.C) out[base + y * s.inner] = T(-gp[r * g_stride]);
      }
    }, row_grain(s.C));
  });
}

}  // namespace ember::cpu
