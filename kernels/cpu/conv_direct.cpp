// Direct f32 convolution for stride-1, few-tap convolutions (Note [Direct convolution] in
// kernels/cpu/conv_direct.h). AVX2 + FMA, compiled per function (the library itself
// targets baseline x86-64) and used only after a runtime CPU check.
#include "kernels/cpu/conv_direct.h"

#include <algorithm>
#include <cstring>

#include "tensor/error.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define EMBER_CONV_DIRECT 1
#include <immintrin.h>
#else
#define EMBER_CONV_DIRECT 0
#endif

namespace ember::cpu::direct {

namespace {

/// Smallest share of the 16-wide forward tiles that must be real output columns. Measured
/// (bench_nn conv2d/fwd, one thread): rows of 10 (62%) still beat im2col + OpenBLAS by
/// 1.6x, rows of 8 (50%) and 4 lose to it.
constexpr double kMinRowFill = 0.6;
/// Floats of slack after the padded image: a 16-wide read that starts in the last row's
/// valid columns ends at most 15 floats past the row.
constexpr int64_t kSlack = 32;

}  // namespace

Workspace::Workspace(const ConvGeometry& g)
    : hp(g.h + 2 * g.ph), wp(g.w + 2 * g.pw), xp(size_t(g.c_in * hp * wp + kSlack), 0.0f) {
  off.reserve(size_t(g.c_in * g.kh * g.kw));
  offr.reserve(size_t(g.c_in * g.kh * g.kw));
  for (int64_t c = 0; c < g.c_in; ++c)
    for (int64_t i = 0; i < g.kh; ++i)
      for (int64_t j = 0; j < g.kw; ++j) off.push_back(c * hp * wp + i * g.dh * wp + j * g.dw);
  for (int64_t i = 0; i < g.kh; ++i)
    for (int64_t c = 0; c < g.c_in; ++c)
      for (int64_t j = 0; j < g.kw; ++j) offr.push_back(c * hp * wp + i * g.dh * wp + j * g.dw);
}

std::vector<float> fwd_weights(const float* w, const ConvGeometry& g) {
  std::vector<float> r(size_t(g.c_out * g.c_in * g.kh * g.kw));
  for (int64_t co = 0; co < g.c_out; ++co)
    for (int64_t c = 0; c < g.c_in; ++c)
      for (int64_t i = 0; i < g.kh; ++i)
        for (int64_t j = 0; j < g.kw; ++j)
          r[size_t(((co * g.kh + i) * g.c_in + c) * g.kw + j)] = w[((co * g.c_in + c) * g.kh + i) * g.kw + j];
  return r;
}

namespace {

/// Copies image x (C_in, H, W) into the interior of ws.xp; the border stays zero.
void pad_image(const float* x, const ConvGeometry& g, Workspace& ws) {
  for (int64_t c = 0; c < g.c_in; ++c)
    for (int64_t r = 0; r < g.h; ++r)
      std::memcpy(ws.xp.data() + (c * ws.hp + r + g.ph) * ws.wp + g.pw, x + (c * g.h + r) * g.w,
                  size_t(g.w) * sizeof(float));
}

}  // namespace

ConvGeometry grad_input_geometry(const ConvGeometry& g) {
  ConvGeometry t = g;
  t.c_in = g.c_out, t.h = g.oh, t.w = g.ow;
  t.c_out = g.c_in, t.oh = g.h, t.ow = g.w;
  t.ph = g.dh * (g.kh - 1) - g.ph, t.pw = g.dw * (g.kw - 1) - g.pw;
  return t;
}

bool eligible_grad_input(const ConvGeometry& g) {
  if (g.sh != 1 || g.sw != 1 || g.groups != 1) return false;
  ConvGeometry t = grad_input_geometry(g);
  return t.ph >= 0 && t.pw >= 0 && eligible(t);
}

std::vector<float> grad_input_weights(const float* w, const ConvGeometry& g) {
  std::vector<float> f(size_t(g.c_in * g.c_out * g.kh * g.kw));
  for (int64_t co = 0; co < g.c_out; ++co)
    for (int64_t c = 0; c < g.c_in; ++c)
      for (int64_t i = 0; i < g.kh; ++i)
        for (int64_t j = 0; j < g.kw; ++j)
          f[size_t(((c * g.kh + (g.kh - 1 - i)) * g.c_out + co) * g.kw + (g.kw - 1 - j))] =
              w[((co * g.c_in + c) * g.kh + i) * g.kw + j];
  return f;
}

#if EMBER_CONV_DIRECT

namespace {

#define EMBER_AVX2 __attribute__((target("avx2,fma")))

EMBER_AVX2 inline __m256i lane_mask(int64_t n) {  // lanes [0, n) set, n in [0, 8]
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(int(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

EMBER_AVX2 inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}

// Forward tile: MR output channels x 16 output columns of one row, over nt taps. xr points
// at the padded input of the tile's first column; w at the first channel's weight for the
// first tap (channel stride k).
template <int MR>
EMBER_AVX2 void fwd_tile(const float* xr, const int64_t* off, int64_t nt, int64_t k, const float* w,
                         const float* b, float* y, int64_t ohw, int64_t valid) {
  __m256 acc0[MR], acc1[MR];
#pragma GCC unroll 6
  for (int m = 0; m < MR; ++m) acc0[m] = acc1[m] = b ? _mm256_set1_ps(b[m]) : _mm256_setzero_ps();
  for (int64_t t = 0; t < nt; ++t) {
    const float* p = xr + off[t];
    const __m256 x0 = _mm256_loadu_ps(p), x1 = _mm256_loadu_ps(p + 8);
#pragma GCC unroll 6
    for (int m = 0; m < MR; ++m) {
      const __m256 wv = _mm256_broadcast_ss(w + m * k + t);
      acc0[m] = _mm256_fmadd_ps(wv, x0, acc0[m]);
      acc1[m] = _mm256_fmadd_ps(wv, x1, acc1[m]);
    }
  }
  if (valid == 16) {
#pragma GCC unroll 6
    for (int m = 0; m < MR; ++m) {
      _mm256_storeu_ps(y + m * ohw, acc0[m]);
      _mm256_storeu_ps(y + m * ohw + 8, acc1[m]);
    }
  } else if (valid > 8) {
    const __m256i mk = lane_mask(valid - 8);
#pragma GCC unroll 6
    for (int m = 0; m < MR; ++m) {
      _mm256_storeu_ps(y + m * ohw, acc0[m]);
      _mm256_maskstore_ps(y + m * ohw + 8, mk, acc1[m]);
    }
  } else {
    const __m256i mk = lane_mask(valid);
#pragma GCC unroll 6
    for (int m = 0; m < MR; ++m) _mm256_maskstore_ps(y + m * ohw, mk, acc0[m]);
  }
}

// Output rows of MR channels. Row oh reads padded rows oh + i * dh; kernel rows i that
// land in the top or bottom padding are skipped (their taps are contiguous in offr / w).
template <int MR>
EMBER_AVX2 void fwd_rows(const Workspace& ws, const float* w, const float* b, float* y,
                         const ConvGeometry& g, int64_t k) {
  const int64_t ohw = g.oh * g.ow, row_taps = g.c_in * g.kw;
  for (int64_t oh = 0; oh < g.oh; ++oh) {
    // Kernel rows i with oh + i * dh - ph inside [0, h).
    int64_t i0 = 0, i1 = g.kh;
    while (i0 < i1 && oh + i0 * g.dh < g.ph) ++i0;
    while (i1 > i0 && oh + (i1 - 1) * g.dh >= g.ph + g.h) --i1;
    const int64_t t0 = i0 * row_taps, nt = (i1 - i0) * row_taps;
    for (int64_t ow = 0; ow < g.ow; ow += 16)
      fwd_tile<MR>(ws.xp.data() + oh * ws.wp + ow, ws.offr.data() + t0, nt, k, w + t0, b,
                   y + oh * g.ow + ow, ohw, std::min<int64_t>(16, g.ow - ow));
  }
}

// Weight-gradient tile: partial dot products of MR channels of gY with KR taps' shifted
// input rows, over every output position of one image; added to gw[m * k + r].
template <int MR, int KR>
EMBER_AVX2 void gw_tile(const Workspace& ws, const float* gy, const int64_t* off, float* gw,
                        int64_t k, const ConvGeometry& g) {
  const int64_t ohw = g.oh * g.ow, full = g.ow / 8 * 8;
  const __m256i tail = lane_mask(g.ow - full);
  __m256 acc[MR][KR];
#pragma GCC unroll 4
  for (int m = 0; m < MR; ++m)
#pragma GCC unroll 4
    for (int r = 0; r < KR; ++r) acc[m][r] = _mm256_setzero_ps();
  for (int64_t oh = 0; oh < g.oh; ++oh) {
    const float* xr = ws.xp.data() + oh * ws.wp;
    const float* gr = gy + oh * g.ow;
    for (int64_t ow = 0; ow < full; ow += 8) {
      __m256 gv[MR];
#pragma GCC unroll 4
      for (int m = 0; m < MR; ++m) gv[m] = _mm256_loadu_ps(gr + m * ohw + ow);
#pragma GCC unroll 4
      for (int r = 0; r < KR; ++r) {
        const __m256 xv = _mm256_loadu_ps(xr + off[r] + ow);
#pragma GCC unroll 4
        for (int m = 0; m < MR; ++m) acc[m][r] = _mm256_fmadd_ps(gv[m], xv, acc[m][r]);
      }
    }
    if (full < g.ow) {  // masked: lanes past the row are zero in both operands
      __m256 gv[MR];
#pragma GCC unroll 4
      for (int m = 0; m < MR; ++m) gv[m] = _mm256_maskload_ps(gr + m * ohw + full, tail);
#pragma GCC unroll 4
      for (int r = 0; r < KR; ++r) {
        const __m256 xv = _mm256_maskload_ps(xr + off[r] + full, tail);
#pragma GCC unroll 4
        for (int m = 0; m < MR; ++m) acc[m][r] = _mm256_fmadd_ps(gv[m], xv, acc[m][r]);
      }
    }
  }
#pragma GCC unroll 4
  for (int m = 0; m < MR; ++m)
#pragma GCC unroll 4
    for (int r = 0; r < KR; ++r) gw[m * k + r] += hsum(acc[m][r]);
}

template <int MR>
EMBER_AVX2 void gw_channels(const Workspace& ws, const float* gy, float* gw, int64_t k,
                            const ConvGeometry& g) {
  int64_t t = 0;
  for (; t + 4 <= k; t += 4) gw_tile<MR, 4>(ws, gy, ws.off.data() + t, gw + t, k, g);
  switch (k - t) {
    case 3: gw_tile<MR, 3>(ws, gy, ws.off.data() + t, gw + t, k, g); break;
    case 2: gw_tile<MR, 2>(ws, gy, ws.off.data() + t, gw + t, k, g); break;
    case 1: gw_tile<MR, 1>(ws, gy, ws.off.data() + t, gw + t, k, g); break;
    default: break;
  }
}

bool cpu_has_avx2_fma() {
  static const bool yes = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }();
  return yes;
}

}  // namespace

bool eligible(const ConvGeometry& g) {
  const double fill = double(g.ow) / double((g.ow + 15) / 16 * 16);
  return g.sh == 1 && g.sw == 1 && g.groups == 1 && g.ow > 0 && fill >= kMinRowFill &&
         cpu_has_avx2_fma();
}

void fwd(const float* x, const float* w, const float* b, float* y, const ConvGeometry& g,
         int64_t n0, int64_t n1, Workspace& ws) {
  const int64_t k = g.c_in * g.kh * g.kw, ohw = g.oh * g.ow;
  for (int64_t n = n0; n < n1; ++n) {
    pad_image(x + n * g.c_in * g.h * g.w, g, ws);
    float* yn = y + n * g.c_out * ohw;
    int64_t co = 0;
    for (; co + 6 <= g.c_out; co += 6) fwd_rows<6>(ws, w + co * k, b ? b + co : nullptr, yn + co * ohw, g, k);
    const float* wr = w + co * k;
    const float* br = b ? b + co : nullptr;
    float* yr = yn + co * ohw;
    switch (g.c_out - co) {
      case 5: fwd_rows<5>(ws, wr, br, yr, g, k); break;
      case 4: fwd_rows<4>(ws, wr, br, yr, g, k); break;
      case 3: fwd_rows<3>(ws, wr, br, yr, g, k); break;
      case 2: fwd_rows<2>(ws, wr, br, yr, g, k); break;
      case 1: fwd_rows<1>(ws, wr, br, yr, g, k); break;
      default: break;
    }
  }
}

void grad_weight(const float* x, const float* gy, float* gw, const ConvGeometry& g, int64_t n0,
                 int64_t n1, Workspace& ws) {
  const int64_t k = g.c_in * g.kh * g.kw, ohw = g.oh * g.ow;
  for (int64_t n = n0; n < n1; ++n) {
    pad_image(x + n * g.c_in * g.h * g.w, g, ws);
    const float* gyn = gy + n * g.c_out * ohw;
    int64_t co = 0;
    for (; co + 3 <= g.c_out; co += 3) gw_channels<3>(ws, gyn + co * ohw, gw + co * k, k, g);
    switch (g.c_out - co) {
      case 2: gw_channels<2>(ws, gyn + co * ohw, gw + co * k, k, g); break;
      case 1: gw_channels<1>(ws, gyn + co * ohw, gw + co * k, k, g); break;
      default: break;
    }
  }
}

#else  // not x86-64 with GCC/Clang: never eligible, so the kernels are never called

bool eligible(const ConvGeometry&) { return false; }
void fwd(const float*, const float*, const float*, float*, const ConvGeometry&, int64_t, int64_t,
         Workspace&) {
  EMBER_THROW("direct convolution: not built for this CPU (x86-64 with AVX2 only)");
}
void grad_weight(const float*, const float*, float*, const ConvGeometry&, int64_t, int64_t,
                 Workspace&) {
  EMBER_THROW("direct convolution: not built for this CPU (x86-64 with AVX2 only)");
}

#endif

}  // namespace ember::cpu::direct
