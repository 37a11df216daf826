// CPU pooling: planes spread over OpenMP threads; backward scatters into each plane's own
// gradient, so no two threads write the same element.
#include <algorithm>
#include <bit>
#include <cstdint>
#include <type_traits>
#include <cmath>
#include <limits>
#include <vector>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "kernels/cpu/loops.h"
#include "kernels/pool.h"
#include "core/error.h"

namespace ember::cpu {

namespace {

/// Planes per chunk so that each chunk does about kParallelGrain element visits.
int64_t plane_grain(int64_t work_per_plane) {
  return std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(1, work_per_plane));
}

// One max window: the first maximum wins (strict >), a NaN wins and sticks, as in
// PyTorch. Which value wins is data-dependent and mispredicts as a branch, and compilers
// turn a float `take ? v : best` back into one: the selects are done on the bits.
template <class C>
struct MaxArg {
  using U = std::conditional_t<sizeof(C) == 4, uint32_t, uint64_t>;
  C best = -std::numeric_limits<C>::infinity();
  int64_t arg = 0;
  void visit(C v, int64_t at) {
    const bool take = (v > best) | ((v != v) & (best == best));
    const U m = U(0) - U(take);
    best = std::bit_cast<C>(U((std::bit_cast<U>(v) & m) | (std::bit_cast<U>(best) & ~m)));
    const int64_t mi = -int64_t(take);
    arg = (at & mi) | (arg & ~mi);
  }
};

// Windows that lie wholly inside the input (no padding): no clipping.
template <class T>
void max_fwd_interior(const T* xp, T* yp, int64_t* ip, const PoolGeometry& g) {
  using C = compute_t<T>;
  for (int64_t oh = 0; oh < g.oh; ++oh) {
    const int64_t h0 = oh * g.sh;
    for (int64_t ow = 0; ow < g.ow; ++ow) {
      const int64_t w0 = ow * g.sw;
      MaxArg<C> m;
      m.arg = h0 * g.w + w0;
      for (int64_t i = 0; i < g.kh; ++i) {
        const T* r = xp + (h0 + i) * g.w;
        for (int64_t j = 0; j < g.kw; ++j) m.visit(C(r[w0 + j]), (h0 + i) * g.w + w0 + j);
      }
      yp[oh * g.ow + ow] = T(m.best);
      ip[oh * g.ow + ow] = m.arg;
    }
  }
}

template <class T>
void max_fwd_clipped(const T* xp, T* yp, int64_t* ip, const PoolGeometry& g) {
  using C = compute_t<T>;
  for (int64_t oh = 0; oh < g.oh; ++oh) {
    const int64_t h0 = std::max<int64_t>(oh * g.sh - g.ph, 0);
    const int64_t h1 = std::min<int64_t>(oh * g.sh - g.ph + g.kh, g.h);
    for (int64_t ow = 0; ow < g.ow; ++ow) {
      const int64_t w0 = std::max<int64_t>(ow * g.sw - g.pw, 0);
      const int64_t w1 = std::min<int64_t>(ow * g.sw - g.pw + g.kw, g.w);
      MaxArg<C> m;
      m.arg = h0 * g.w + w0;
      for (int64_t ih = h0; ih < h1; ++ih)
        for (int64_t iw = w0; iw < w1; ++iw) m.visit(C(xp[ih * g.w + iw]), ih * g.w + iw);
      yp[oh * g.ow + ow] = T(m.best);
      ip[oh * g.ow + ow] = m.arg;
    }
  }
}

#if defined(__SSE2__)
// 2x2 windows at stride 2 in f32, four outputs at a time with the same rule as MaxArg:
// candidates in order a (r0[2o]), b (r0[2o+1]), c (r1[2o]), d (r1[2o+1]). Returns how
// many outputs of the row it wrote; the caller finishes the rest. A row of at least four
// outputs is done whole: its last group overlaps the one before (LeNet's rows are 14 and 5
// wide, and a scalar tail cost as much as the vector part), rewriting equal values.
int64_t max_row_2x2_sse2(const float* r0, const float* r1, float* y, int64_t* ip, int64_t ow,
                         int64_t base, int64_t w) {
  const __m128i off_b = _mm_set1_epi32(1), off_c = _mm_set1_epi32(int32_t(w));
  const __m128i off_d = _mm_set1_epi32(int32_t(w + 1)), zero = _mm_setzero_si128();
  auto group = [&](int64_t o) {
    const __m128 r0lo = _mm_loadu_ps(r0 + 2 * o), r0hi = _mm_loadu_ps(r0 + 2 * o + 4);
    const __m128 r1lo = _mm_loadu_ps(r1 + 2 * o), r1hi = _mm_loadu_ps(r1 + 2 * o + 4);
    __m128 best = _mm_shuffle_ps(r0lo, r0hi, _MM_SHUFFLE(2, 0, 2, 0));
    __m128i off = zero;
    auto visit = [&](__m128 v, __m128i at) {
      const __m128 take = _mm_or_ps(_mm_cmpgt_ps(v, best),
                                    _mm_andnot_ps(_mm_cmpunord_ps(best, best), _mm_cmpunord_ps(v, v)));
      best = _mm_or_ps(_mm_and_ps(take, v), _mm_andnot_ps(take, best));
      const __m128i t = _mm_castps_si128(take);
      off = _mm_or_si128(_mm_and_si128(t, at), _mm_andnot_si128(t, off));
    };
    visit(_mm_shuffle_ps(r0lo, r0hi, _MM_SHUFFLE(3, 1, 3, 1)), off_b);
    visit(_mm_shuffle_ps(r1lo, r1hi, _MM_SHUFFLE(2, 0, 2, 0)), off_c);
    visit(_mm_shuffle_ps(r1lo, r1hi, _MM_SHUFFLE(3, 1, 3, 1)), off_d);
    _mm_storeu_ps(y + o, best);
    // Window starts base + 2o + {0, 2, 4, 6}; indices are >= 0, so widening is a zero-extend.
    const __m128i pos = _mm_add_epi32(off, _mm_add_epi32(_mm_set1_epi32(int32_t(base + 2 * o)),
                                                         _mm_setr_epi32(0, 2, 4, 6)));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(ip + o), _mm_unpacklo_epi32(pos, zero));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(ip + o + 2), _mm_unpackhi_epi32(pos, zero));
  };
  if (ow < 4) return 0;
  int64_t o = 0;
  for (; o + 4 <= ow; o += 4) group(o);
  if (o < ow) group(ow - 4);
  return ow;
}
#endif

/// 2x2 windows at stride 2, no padding.
template <class T>
void max_fwd_2x2(const T* xp, T* yp, int64_t* ip, const PoolGeometry& g) {
  using C = compute_t<T>;
  for (int64_t oh = 0; oh < g.oh; ++oh) {
    const int64_t base = 2 * oh * g.w;
    const T* r0 = xp + base;
    const T* r1 = r0 + g.w;
    T* y = yp + oh * g.ow;
    int64_t* ir = ip + oh * g.ow;
    int64_t o = 0;
#if defined(__SSE2__)
    // Plane offsets must fit the 32-bit lanes.
    if constexpr (std::is_same_v<T, float>) {
      if (g.h * g.w <= std::numeric_limits<int32_t>::max()) o = max_row_2x2_sse2(r0, r1, y, ir, g.ow, base, g.w);
    }
#endif
    for (; o < g.ow; ++o) {
      MaxArg<C> m;
      m.arg = base + 2 * o;
      m.visit(C(r0[2 * o]), base + 2 * o);
      m.visit(C(r0[2 * o + 1]), base + 2 * o + 1);
      m.visit(C(r1[2 * o]), base + g.w + 2 * o);
      m.visit(C(r1[2 * o + 1]), base + g.w + 2 * o + 1);
      y[o] = T(m.best);
      ir[o] = m.arg;
    }
  }
}

template <class T>
void max_fwd(const T* x, T* y, int64_t* idx, const PoolGeometry& g) {
  // Without padding every window lies inside the input (floor mode).
  const bool interior = g.ph == 0 && g.pw == 0;
  const bool k2s2 = interior && g.kh == 2 && g.kw == 2 && g.sh == 2 && g.sw == 2;
  parallel_for(g.planes, [&](int64_t pb, int64_t pe) {
    for (int64_t p = pb; p < pe; ++p) {
      const T* xp = x + p * g.h * g.w;
      T* yp = y + p * g.oh * g.ow;
      int64_t* ip = idx + p * g.oh * g.ow;
      if (k2s2) {
        max_fwd_2x2(xp, yp, ip, g);
      } else if (interior) {
        max_fwd_interior(xp, yp, ip, g);
      } else {
        max_fwd_clipped(xp, yp, ip, g);
      }
    }
  }, plane_grain(g.oh * g.ow * g.kh * g.kw));
}

template <class T>
void max_bwd(const T* gy, const int64_t* idx, T* gx, const PoolGeometry& g) {
  using C = compute_t<T>;
  if constexpr (std::is_same_v<C, T>) {  // f32, f64: accumulate in place
    parallel_for(g.planes, [&](int64_t pb, int64_t pe) {
      std::fill(gx + pb * g.h * g.w, gx + pe * g.h * g.w, T(0));
      for (int64_t p = pb; p < pe; ++p) {
        const T* gyp = gy + p * g.oh * g.ow;
        const int64_t* ip = idx + p * g.oh * g.ow;
        T* gxp = gx + p * g.h * g.w;
        for (int64_t o = 0; o < g.oh * g.ow; ++o) gxp[ip[o]] += gyp[o];
      }
    }, plane_grain(g.h * g.w + g.oh * g.ow));
    return;
  }
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
