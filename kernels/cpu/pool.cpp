// CPU pooling: planes spread over OpenMP threads; backward scatters into each plane's own
// gradient, so no two threads write the same element.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/cpu/loops.h"
#include "kernels/pool.h"
#include "tensor/error.h"

namespace ember::cpu {

namespace {

/// Planes per chunk so that each chunk does about kParallelGrain element visits.
int64_t plane_grain(int64_t work_per_plane) {
  return std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(1, work_per_plane));
}

template <class T>
void max_fwd(const T* x, T* y, int64_t* idx, const PoolGeometry& g) {
  using C = compute_t<T>;
  parallel_for(g.planes, [&](int64_t pb, int64_t pe) {
    for (int64_t p = pb; p < pe; ++p) {
      const T* xp = x + p * g.h * g.w;
      T* yp = y + p * g.oh * g.ow;
      int64_t* ip = idx + p * g.oh * g.ow;
      for (int64_t oh = 0; oh < g.oh; ++oh) {
        const int64_t h0 = std::max<int64_t>(oh * g.sh - g.ph, 0);
        const int64_t h1 = std::min<int64_t>(oh * g.sh - g.ph + g.kh, g.h);
        for (int64_t ow = 0; ow < g.ow; ++ow) {
          const int64_t w0 = std::max<int64_t>(ow * g.sw - g.pw, 0);
          const int64_t w1 = std::min<int64_t>(ow * g.sw - g.pw + g.kw, g.w);
          C best = -std::numeric_limits<C>::infinity();
          int64_t arg = h0 * g.w + w0;
          for (int64_t ih = h0; ih < h1; ++ih) {
            for (int64_t iw = w0; iw < w1; ++iw) {
              C v = C(xp[ih * g.w + iw]);
              // NaN wins and sticks, as in PyTorch.
              if (v > best || std::isnan(v)) {
                best = v;
                arg = ih * g.w + iw;
                if (std::isnan(v)) goto done;
              }
            }
          }
        done:
          yp[oh * g.ow + ow] = T(best);
          ip[oh * g.ow + ow] = arg;
        }
      }
    }
  }, plane_grain(g.oh * g.ow * g.kh * g.kw));
}

template <class T>
void max_bwd(const T* gy, const int64_t* idx, T* gx, const PoolGeometry& g) {
  using C = compute_t<T>;
  parallel_for(g.planes, [&](int64_t pb, int64_t pe) {
    std::vector<C> acc(size_t(g.h * g.w));
    for (int64_t p = pb; p < pe; ++p) {
      std::fill(acc.begin(), acc.end(), C(0));
      const T* gyp = gy + p * g.oh * g.ow;
      const int64_t* ip = idx + p * g.oh * g.ow;
      for (int64_t o = 0; o < g.oh * g.ow; ++o) acc[size_t(ip[o])] += C(gyp[o]);
      T* gxp = gx + p * g.h * g.w;
      for (int64_t i = 0; i < g.h * g.w; ++i) gxp[i] = T(acc[size_t(i)]);
    }
  }, plane_grain(g.h * g.w + g.oh * g.ow));
}

template <class T>
void avg_fwd(const T* x, T* y, const PoolGeometry& g, bool include_pad) {
  using A = acc_t<T>;
  parallel_for(g.planes, [&](int64_t pb, int64_t pe) {
    for (int64_t p = pb; p < pe; ++p) {
      const T* xp = x + p * g.h * g.w;
      T* yp = y + p * g.oh * g.ow;
      for (int64_t oh = 0; oh < g.oh; ++oh) {
        for (int64_t ow = 0; ow < g.ow; ++ow) {
          AvgWindow wd = avg_window(g, oh, ow, include_pad);
          A s = 0;
          for (int64_t ih = wd.h0; ih < wd.h1; ++ih)
            for (int64_t iw = wd.w0; iw < wd.w1; ++iw) s += A(xp[ih * g.w + iw]);
          yp[oh * g.ow + ow] = T(s / A(wd.div));
        }
      }
    }
  }, plane_grain(g.oh * g.ow * g.kh * g.kw));
}

template <class T>
void avg_bwd(const T* gy, T* gx, const PoolGeometry& g, bool include_pad) {
  using A = acc_t<T>;
  parallel_for(g.planes, [&](int64_t pb, int64_t pe) {
    std::vector<A> acc(size_t(g.h * g.w));
    for (int64_t p = pb; p < pe; ++p) {
      std::fill(acc.begin(), acc.end(), A(0));
      const T* gyp = gy + p * g.oh * g.ow;
      for (int64_t oh = 0; oh < g.oh; ++oh) {
        for (int64_t ow = 0; ow < g.ow; ++ow) {
          AvgWindow wd = avg_window(g, oh, ow, include_pad);
          A v = A(gyp[oh * g.ow + ow]) / A(wd.div);
          for (int64_t ih = wd.h0; ih < wd.h1; ++ih)
            for (int64_t iw = wd.w0; iw < wd.w1; ++iw) acc[size_t(ih * g.w + iw)] += v;
        }
      }
      T* gxp = gx + p * g.h * g.w;
      for (int64_t i = 0; i < g.h * g.w; ++i) gxp[i] = T(acc[size_t(i)]);
    }
  }, plane_grain(g.oh * g.ow * g.kh * g.kw + g.h * g.w));
}

template <class T>
void adaptive_fwd(const T* x, T* y, const PoolGeometry& g) {
  using A = acc_t<T>;
  parallel_for(g.planes, [&](int64_t pb, int64_t pe) {
    for (int64_t p = pb; p < pe; ++p) {
      const T* xp = x + p * g.h * g.w;
      T* yp = y + p * g.oh * g.ow;
      for (int64_t oh = 0; oh < g.oh; ++oh) {
        int64_t h0 = adaptive_start(oh, g.h, g.oh), h1 = adaptive_end(oh, g.h, g.oh);
        for (int64_t ow = 0; ow < g.ow; ++ow) {
          int64_t w0 = adaptive_start(ow, g.w, g.ow), w1 = adaptive_end(ow, g.w, g.ow);
          A s = 0;
          for (int64_t ih = h0; ih < h1; ++ih)
            for (int64_t iw = w0; iw < w1; ++iw) s += A(xp[ih * g.w + iw]);
          yp[oh * g.ow + ow] = T(s / A((h1 - h0) * (w1 - w0)));
        }
      }
    }
  }, plane_grain(g.h * g.w + g.oh * g.ow));
}

template <class T>
void adaptive_bwd(const T* gy, T* gx, const PoolGeometry& g) {
  using A = acc_t<T>;
  parallel_for(g.planes, [&](int64_t pb, int64_t pe) {
    std::vector<A> acc(size_t(g.h * g.w));
    for (int64_t p = pb; p < pe; ++p) {
      std::fill(acc.begin(), acc.end(), A(0));
      const T* gyp = gy + p * g.oh * g.ow;
      for (int64_t oh = 0; oh < g.oh; ++oh) {
        int64_t h0 = adaptive_start(oh, g.h, g.oh), h1 = adaptive_end(oh, g.h, g.oh);
        for (int64_t ow = 0; ow < g.ow; ++ow) {
          int64_t w0 = adaptive_start(ow, g.w, g.ow), w1 = adaptive_end(ow, g.w, g.ow);
          A v = A(gyp[oh * g.ow + ow]) / A((h1 - h0) * (w1 - w0));
          for (int64_t ih = h0; ih < h1; ++ih)
            for (int64_t iw = w0; iw < w1; ++iw) acc[size_t(ih * g.w + iw)] += v;
        }
      }
      T* gxp = gx + p * g.h * g.w;
      for (int64_t i = 0; i < g.h * g.w; ++i) gxp[i] = T(acc[size_t(i)]);
    }
  }, plane_grain(2 * g.h * g.w + g.oh * g.ow));
}

}  // namespace

void max_pool2d_fwd(DType dtype, const void* x, void* y, int64_t* idx, const PoolGeometry& g) {
  EMBER_DISPATCH_FLOAT(dtype, "max_pool2d", [&] {
    max_fwd(static_cast<const scalar_t*>(x), static_cast<scalar_t*>(y), idx, g);
  });
}
void max_pool2d_bwd(DType dtype, const void* gy, const int64_t* idx, void* gx, const PoolGeometry& g) {
  EMBER_DISPATCH_FLOAT(dtype, "max_pool2d backward", [&] {
    max_bwd(static_cast<const scalar_t*>(gy), idx, static_cast<scalar_t*>(gx), g);
  });
}
void avg_pool2d_fwd(DType dtype, const void* x, void* y, const PoolGeometry& g, bool count_include_pad) {
  EMBER_DISPATCH_FLOAT(dtype, "avg_pool2d", [&] {
    avg_fwd(static_cast<const scalar_t*>(x), static_cast<scalar_t*>(y), g, count_include_pad);
  });
}
void avg_pool2d_bwd(DType dtype, const void* gy, void* gx, const PoolGeometry& g, bool count_include_pad) {
  EMBER_DISPATCH_FLOAT(dtype, "avg_pool2d backward", [&] {
    avg_bwd(static_cast<const scalar_t*>(gy), static_cast<scalar_t*>(gx), g, count_include_pad);
  });
}
void adaptive_avg_pool2d_fwd(DType dtype, const void* x, void* y, const PoolGeometry& g) {
  EMBER_DISPATCH_FLOAT(dtype, "adaptive_avg_pool2d", [&] {
    adaptive_fwd(static_cast<const scalar_t*>(x), static_cast<scalar_t*>(y), g);
  });
}
void adaptive_avg_pool2d_bwd(DType dtype, const void* gy, void* gx, const PoolGeometry& g) {
  EMBER_DISPATCH_FLOAT(dtype, "adaptive_avg_pool2d backward", [&] {
    adaptive_bwd(static_cast<const scalar_t*>(gy), static_cast<scalar_t*>(gx), g);
  });
}

}  // namespace ember::cpu
