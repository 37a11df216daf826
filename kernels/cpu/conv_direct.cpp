// Direct f32 convolution for stride-1 convolutions (Note [Direct convolution] in
// kernels/cpu/conv_direct.h). AVX2 + FMA, compiled per function (the library itself
// targets baseline x86-64) and used only after a runtime CPU check.
#include "kernels/cpu/conv_direct.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define EMBER_CONV_DIRECT 1
#include <immintrin.h>
#else
#define EMBER_CONV_DIRECT 0
#endif

namespace ember::cpu::direct {

namespace {

/// Smallest share of a tiling's vector lanes that must hold real outputs. Measured
/// (bench_nn conv2d/fwd, one thread): rows of 10 in 16-wide tiles (62%) still beat im2col
/// + OpenBLAS by 1.6x, rows of 8 (50%) and 4 lose to it.
constexpr double kMinFill = 0.6;
/// Floats of slack after a padded image: a 16-wide read that starts in the last row's
/// valid columns ends at most 15 floats past the row.
constexpr int64_t kSlack = 32;
/// Images whose padded copies and transposed output gradients the channels-tiled weight
/// gradient keeps at once (its accumulators live across them).
constexpr int64_t kGradWeightChunk = 8;

int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }
double fill(int64_t used, int64_t lanes) { return double(used) / double(round_up(used, lanes)); }

bool cpu_has_avx2_fma();

bool direct_shape(const ConvGeometry& g) {
  return g.sh == 1 && g.sw == 1 && g.groups == 1 && g.ow > 0 && g.c_out > 0 && cpu_has_avx2_fma();
}

/// The better-filled of the two tilings (rows when tied), or none below kMinFill.
Tiling pick(double rows, double channels) {
  if (std::max(rows, channels) < kMinFill) return Tiling::none;
  return rows >= channels ? Tiling::rows : Tiling::channels;
}

/// Tap offsets into a padded image (rows of wp, planes of hp * wp), in (c, i, j) order or,
/// with rows_first, (i, c, j).
std::vector<int64_t> tap_offsets(const ConvGeometry& g, int64_t hp, int64_t wp, bool rows_first) {
  std::vector<int64_t> off;
  off.reserve(size_t(g.c_in * g.kh * g.kw));
  auto at = [&](int64_t c, int64_t i, int64_t j) { return c * hp * wp + i * g.dh * wp + j * g.dw; };
  if (rows_first) {
    for (int64_t i = 0; i < g.kh; ++i)
      for (int64_t c = 0; c < g.c_in; ++c)
        for (int64_t j = 0; j < g.kw; ++j) off.push_back(at(c, i, j));
  } else {
    for (int64_t c = 0; c < g.c_in; ++c)
      for (int64_t i = 0; i < g.kh; ++i)
        for (int64_t j = 0; j < g.kw; ++j) off.push_back(at(c, i, j));
  }
  return off;
}

/// Copies image x (C_in, H, W) into the interior of xp (C_in, H + 2 ph, W + 2 pw); the
/// border is left as it is (zero).
void pad_image(const float* x, float* xp, const ConvGeometry& g) {
  const int64_t hp = g.h + 2 * g.ph, wp = g.w + 2 * g.pw;
  for (int64_t c = 0; c < g.c_in; ++c)
    for (int64_t r = 0; r < g.h; ++r)
      std::memcpy(xp + (c * hp + r + g.ph) * wp + g.pw, x + (c * g.h + r) * g.w, size_t(g.w) * sizeof(float));
}

/// Kernel rows [i0, i1) that read inside the image for output row oh (the rest read padding).
void live_kernel_rows(const ConvGeometry& g, int64_t oh, int64_t& i0, int64_t& i1) {
  i0 = 0, i1 = g.kh;
  while (i0 < i1 && oh + i0 * g.dh < g.ph) ++i0;
  while (i1 > i0 && oh + (i1 - 1) * g.dh >= g.ph + g.h) --i1;
}

}  // namespace

Tiling fwd_tiling(const ConvGeometry& g) {
  if (!direct_shape(g)) return Tiling::none;
  return pick(fill(g.ow, 16), fill(g.c_out, 16));
}

Tiling grad_weight_tiling(const ConvGeometry& g) {
  if (!direct_shape(g)) return Tiling::none;
  return pick(fill(g.ow, 8), fill(g.c_out, 16));
}

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
          f[size_t(((c * g.c_out + co) * g.kh + (g.kh - 1 - i)) * g.kw + (g.kw - 1 - j))] =
              w[((co * g.c_in + c) * g.kh + i) * g.kw + j];
  return f;
}

std::vector<float> fwd_weights(const float* w, const ConvGeometry& g) {
  const int64_t k = g.c_in * g.kh * g.kw;
  const bool channels = fwd_tiling(g) == Tiling::channels;
  const int64_t cp = round_up(g.c_out, 16);
  std::vector<float> r(size_t(channels ? k * cp : g.c_out * k), 0.0f);
  for (int64_t co = 0; co < g.c_out; ++co)
    for (int64_t c = 0; c < g.c_in; ++c)
      for (int64_t i = 0; i < g.kh; ++i)
        for (int64_t j = 0; j < g.kw; ++j) {
          const int64_t t = (i * g.c_in + c) * g.kw + j;  // tap index in (i, c, j) order
          r[size_t(channels ? t * cp + co : co * k + t)] = w[((co * g.c_in + c) * g.kh + i) * g.kw + j];
        }
  return r;
}

Workspace::Workspace(const ConvGeometry& g)
    : tiling(fwd_tiling(g)),
      hp(g.h + 2 * g.ph),
      wp(g.w + 2 * g.pw),
      cp(round_up(g.c_out, 16)),
      offr(tap_offsets(g, hp, wp, true)),
      xp(size_t(g.c_in * hp * wp + kSlack), 0.0f) {
  if (tiling == Tiling::channels) {
    bias.assign(size_t(cp), 0.0f);
    yt.assign(size_t(g.oh * g.ow * cp), 0.0f);
  }
}

#if EMBER_CONV_DIRECT

namespace {

#define EMBER_AVX2 __attribute__((target("avx2,fma")))

bool cpu_has_avx2_fma() {
  static const bool yes = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }();
  return yes;
}

EMBER_AVX2 inline __m256i lane_mask(int64_t n) {  // lanes [0, n) set, n in [0, 8]
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(int(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

EMBER_AVX2 inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}

// dst (cols, rows) = src (rows, cols)^T, leading dims lds and ldd: 8x8 blocks in registers,
// the edges element by element (strided scalar copies of whole planes were 6% of a step).
EMBER_AVX2 void transpose(const float* src, int64_t rows, int64_t cols, int64_t lds, float* dst,
                          int64_t ldd) {
  int64_t r = 0;
  for (; r + 8 <= rows; r += 8) {
    int64_t c = 0;
    for (; c + 8 <= cols; c += 8) {
      __m256 v[8];
#pragma GCC unroll 8
      for (int i = 0; i < 8; ++i) v[i] = _mm256_loadu_ps(src + (r + i) * lds + c);
      const __m256 t0 = _mm256_unpacklo_ps(v[0], v[1]), t1 = _mm256_unpackhi_ps(v[0], v[1]);
      const __m256 t2 = _mm256_unpacklo_ps(v[2], v[3]), t3 = _mm256_unpackhi_ps(v[2], v[3]);
      const __m256 t4 = _mm256_unpacklo_ps(v[4], v[5]), t5 = _mm256_unpackhi_ps(v[4], v[5]);
      const __m256 t6 = _mm256_unpacklo_ps(v[6], v[7]), t7 = _mm256_unpackhi_ps(v[6], v[7]);
      const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
      const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
      const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
      const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
      const __m256 o[8] = {_mm256_permute2f128_ps(u0, u4, 0x20), _mm256_permute2f128_ps(u1, u5, 0x20),
                           _mm256_permute2f128_ps(u2, u6, 0x20), _mm256_permute2f128_ps(u3, u7, 0x20),
                           _mm256_permute2f128_ps(u0, u4, 0x31), _mm256_permute2f128_ps(u1, u5, 0x31),
                           _mm256_permute2f128_ps(u2, u6, 0x31), _mm256_permute2f128_ps(u3, u7, 0x31)};
#pragma GCC unroll 8
      for (int i = 0; i < 8; ++i) _mm256_storeu_ps(dst + (c + i) * ldd + r, o[i]);
    }
    for (; c < cols; ++c)
      for (int64_t i = 0; i < 8; ++i) dst[c * ldd + r + i] = src[(r + i) * lds + c];
  }
  for (; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) dst[c * ldd + r] = src[r * lds + c];
}

// ---- forward, rows tiling

// MR output channels x 16 output columns of one row, over nt taps. xr points at the padded
// input of the tile's first column; w at the first channel's weight for the first tap
// (channel stride k).
template <int MR>
EMBER_AVX2 void fwd_rows_tile(const float* xr, const int64_t* off, int64_t nt, int64_t k,
                              const float* w, const float* b, float* y, int64_t ohw, int64_t valid) {
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

template <int MR>
EMBER_AVX2 void fwd_rows_block(const Workspace& ws, const float* w, const float* b, float* y,
                               const ConvGeometry& g, int64_t k) {
  const int64_t ohw = g.oh * g.ow, row_taps = g.c_in * g.kw;
  for (int64_t oh = 0; oh < g.oh; ++oh) {
    int64_t i0, i1;
    live_kernel_rows(g, oh, i0, i1);
    const int64_t t0 = i0 * row_taps, nt = (i1 - i0) * row_taps;
    for (int64_t ow = 0; ow < g.ow; ow += 16)
      fwd_rows_tile<MR>(ws.xp.data() + oh * ws.wp + ow, ws.offr.data() + t0, nt, k, w + t0, b,
                        y + oh * g.ow + ow, ohw, std::min<int64_t>(16, g.ow - ow));
  }
}

void fwd_rows(const Workspace& ws, const float* w, const float* b, float* yn, const ConvGeometry& g) {
  const int64_t k = g.c_in * g.kh * g.kw, ohw = g.oh * g.ow;
  int64_t co = 0;
  for (; co + 6 <= g.c_out; co += 6) fwd_rows_block<6>(ws, w + co * k, b ? b + co : nullptr, yn + co * ohw, g, k);
  const float* wr = w + co * k;
  const float* br = b ? b + co : nullptr;
  float* yr = yn + co * ohw;
  switch (g.c_out - co) {
    case 5: fwd_rows_block<5>(ws, wr, br, yr, g, k); break;
    case 4: fwd_rows_block<4>(ws, wr, br, yr, g, k); break;
    case 3: fwd_rows_block<3>(ws, wr, br, yr, g, k); break;
    case 2: fwd_rows_block<2>(ws, wr, br, yr, g, k); break;
    case 1: fwd_rows_block<1>(ws, wr, br, yr, g, k); break;
    default: break;
  }
}

// ---- forward, channels tiling

// PR consecutive output positions of one row x 16 output channels, over nt taps. wt points
// at the transposed weights of the first tap and channel (row stride cp); yt at the
// position's row of the (positions, cp) output.
template <int PR>
EMBER_AVX2 void fwd_channels_tile(const float* xr, const int64_t* off, int64_t nt, const float* wt,
                                  int64_t cp, const float* b, float* yt) {
  __m256 acc0[PR], acc1[PR];
  const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
#pragma GCC unroll 6
  for (int r = 0; r < PR; ++r) acc0[r] = b0, acc1[r] = b1;
  for (int64_t t = 0; t < nt; ++t) {
    const __m256 w0 = _mm256_loadu_ps(wt + t * cp), w1 = _mm256_loadu_ps(wt + t * cp + 8);
    const float* p = xr + off[t];
#pragma GCC unroll 6
    for (int r = 0; r < PR; ++r) {
      const __m256 xv = _mm256_broadcast_ss(p + r);
      acc0[r] = _mm256_fmadd_ps(xv, w0, acc0[r]);
      acc1[r] = _mm256_fmadd_ps(xv, w1, acc1[r]);
    }
  }
#pragma GCC unroll 6
  for (int r = 0; r < PR; ++r) {
    _mm256_storeu_ps(yt + r * cp, acc0[r]);
    _mm256_storeu_ps(yt + r * cp + 8, acc1[r]);
  }
}

EMBER_AVX2 void fwd_channels(Workspace& ws, const float* wt, float* yn, const ConvGeometry& g) {
  const int64_t cp = ws.cp, row_taps = g.c_in * g.kw, ohw = g.oh * g.ow;
  for (int64_t oh = 0; oh < g.oh; ++oh) {
    int64_t i0, i1;
    live_kernel_rows(g, oh, i0, i1);
    const int64_t t0 = i0 * row_taps, nt = (i1 - i0) * row_taps;
    for (int64_t cb = 0; cb < cp; cb += 16) {
      for (int64_t ow = 0; ow < g.ow; ow += 6) {
        const float* xr = ws.xp.data() + oh * ws.wp + ow;
        const int64_t* off = ws.offr.data() + t0;
        const float* w = wt + t0 * cp + cb;
        const float* b = ws.bias.data() + cb;
        float* yt = ws.yt.data() + (oh * g.ow + ow) * cp + cb;
        switch (std::min<int64_t>(6, g.ow - ow)) {
          case 6: fwd_channels_tile<6>(xr, off, nt, w, cp, b, yt); break;
          case 5: fwd_channels_tile<5>(xr, off, nt, w, cp, b, yt); break;
          case 4: fwd_channels_tile<4>(xr, off, nt, w, cp, b, yt); break;
          case 3: fwd_channels_tile<3>(xr, off, nt, w, cp, b, yt); break;
          case 2: fwd_channels_tile<2>(xr, off, nt, w, cp, b, yt); break;
          default: fwd_channels_tile<1>(xr, off, nt, w, cp, b, yt); break;
        }
      }
    }
  }
  transpose(ws.yt.data(), ohw, g.c_out, cp, yn, ohw);  // (positions, cp) -> (C_out, positions)
}

// ---- weight gradient, rows tiling

// Partial dot products of MR channels of gY with KR taps' shifted input rows, over every
// output position of one image; added to gw[m * k + r].
template <int MR, int KR>
EMBER_AVX2 void gw_rows_tile(const float* xp, int64_t wp, const float* gy, const int64_t* off,
                             float* gw, int64_t k, const ConvGeometry& g) {
  const int64_t ohw = g.oh * g.ow, full = g.ow / 8 * 8;
  const __m256i tail = lane_mask(g.ow - full);
  __m256 acc[MR][KR];
#pragma GCC unroll 4
  for (int m = 0; m < MR; ++m)
#pragma GCC unroll 4
    for (int r = 0; r < KR; ++r) acc[m][r] = _mm256_setzero_ps();
  for (int64_t oh = 0; oh < g.oh; ++oh) {
    const float* xr = xp + oh * wp;
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
EMBER_AVX2 void gw_rows_block(const float* xp, int64_t wp, const int64_t* off, const float* gy,
                              float* gw, int64_t k, const ConvGeometry& g) {
  int64_t t = 0;
  for (; t + 4 <= k; t += 4) gw_rows_tile<MR, 4>(xp, wp, gy, off + t, gw + t, k, g);
  switch (k - t) {
    case 3: gw_rows_tile<MR, 3>(xp, wp, gy, off + t, gw + t, k, g); break;
    case 2: gw_rows_tile<MR, 2>(xp, wp, gy, off + t, gw + t, k, g); break;
    case 1: gw_rows_tile<MR, 1>(xp, wp, gy, off + t, gw + t, k, g); break;
    default: break;
  }
}

void grad_weight_rows(const float* x, const float* gy, float* gw, const ConvGeometry& g,
                      int64_t n0, int64_t n1) {
  const int64_t k = g.c_in * g.kh * g.kw, ohw = g.oh * g.ow;
  const int64_t hp = g.h + 2 * g.ph, wp = g.w + 2 * g.pw;
  const std::vector<int64_t> off = tap_offsets(g, hp, wp, false);
  std::vector<float> xp(size_t(g.c_in * hp * wp + kSlack), 0.0f);
  for (int64_t n = n0; n < n1; ++n) {
    pad_image(x + n * g.c_in * g.h * g.w, xp.data(), g);
    const float* gyn = gy + n * g.c_out * ohw;
    int64_t co = 0;
    for (; co + 3 <= g.c_out; co += 3) gw_rows_block<3>(xp.data(), wp, off.data(), gyn + co * ohw, gw + co * k, k, g);
    switch (g.c_out - co) {
      case 2: gw_rows_block<2>(xp.data(), wp, off.data(), gyn + co * ohw, gw + co * k, k, g); break;
      case 1: gw_rows_block<1>(xp.data(), wp, off.data(), gyn + co * ohw, gw + co * k, k, g); break;
      default: break;
    }
  }
}

// ---- weight gradient, channels tiling

// KR taps x 16 output channels, summed over every output position of nb images: xp holds
// their padded copies (stride xs), gyt their transposed output gradients (stride gs, rows
// of cp, starting at the tile's first channel). Adds channels [0, valid) to gw[c * k + r].
template <int KR>
EMBER_AVX2 void gw_channels_tile(const float* xp, int64_t xs, int64_t wp, const float* gyt, int64_t gs,
                                 int64_t cp, int64_t nb, const int64_t* off, float* gw, int64_t k,
                                 int64_t valid, const ConvGeometry& g) {
  __m256 acc0[KR], acc1[KR];
#pragma GCC unroll 6
  for (int r = 0; r < KR; ++r) acc0[r] = acc1[r] = _mm256_setzero_ps();
  for (int64_t n = 0; n < nb; ++n) {
    for (int64_t oh = 0; oh < g.oh; ++oh) {
      const float* xr = xp + n * xs + oh * wp;
      const float* gr = gyt + n * gs + oh * g.ow * cp;
      for (int64_t ow = 0; ow < g.ow; ++ow) {
        const __m256 g0 = _mm256_loadu_ps(gr + ow * cp), g1 = _mm256_loadu_ps(gr + ow * cp + 8);
#pragma GCC unroll 6
        for (int r = 0; r < KR; ++r) {
          const __m256 xv = _mm256_broadcast_ss(xr + off[r] + ow);
          acc0[r] = _mm256_fmadd_ps(xv, g0, acc0[r]);
          acc1[r] = _mm256_fmadd_ps(xv, g1, acc1[r]);
        }
      }
    }
  }
  alignas(32) float lanes[16];
#pragma GCC unroll 6
  for (int r = 0; r < KR; ++r) {
    _mm256_store_ps(lanes, acc0[r]);
    _mm256_store_ps(lanes + 8, acc1[r]);
    for (int64_t c = 0; c < valid; ++c) gw[c * k + r] += lanes[c];
  }
}

void grad_weight_channels(const float* x, const float* gy, float* gw, const ConvGeometry& g,
                          int64_t n0, int64_t n1) {
  const int64_t k = g.c_in * g.kh * g.kw, ohw = g.oh * g.ow, cp = round_up(g.c_out, 16);
  const int64_t hp = g.h + 2 * g.ph, wp = g.w + 2 * g.pw;
  const int64_t xs = g.c_in * hp * wp, gs = ohw * cp;
  const std::vector<int64_t> off = tap_offsets(g, hp, wp, false);
  // Zero borders and zero channels past C_out stay zero: only interiors are rewritten.
  std::vector<float> xp(size_t(kGradWeightChunk * xs + kSlack), 0.0f);
  std::vector<float> gyt(size_t(kGradWeightChunk * gs), 0.0f);
  for (int64_t nc = n0; nc < n1; nc += kGradWeightChunk) {
    const int64_t nb = std::min(kGradWeightChunk, n1 - nc);
    for (int64_t n = 0; n < nb; ++n) {
      pad_image(x + (nc + n) * g.c_in * g.h * g.w, xp.data() + n * xs, g);
      const float* gyn = gy + (nc + n) * g.c_out * ohw;
      transpose(gyn, g.c_out, ohw, ohw, gyt.data() + n * gs, cp);  // -> (positions, cp)
    }
    for (int64_t cb = 0; cb < g.c_out; cb += 16) {
      const int64_t valid = std::min<int64_t>(16, g.c_out - cb);
      for (int64_t t = 0; t < k; t += 6) {
        const float* gt = gyt.data() + cb;
        float* out = gw + cb * k + t;
        switch (std::min<int64_t>(6, k - t)) {
          case 6: gw_channels_tile<6>(xp.data(), xs, wp, gt, gs, cp, nb, off.data() + t, out, k, valid, g); break;
          case 5: gw_channels_tile<5>(xp.data(), xs, wp, gt, gs, cp, nb, off.data() + t, out, k, valid, g); break;
          case 4: gw_channels_tile<4>(xp.data(), xs, wp, gt, gs, cp, nb, off.data() + t, out, k, valid, g); break;
          case 3: gw_channels_tile<3>(xp.data(), xs, wp, gt, gs, cp, nb, off.data() + t, out, k, valid, g); break;
          case 2: gw_channels_tile<2>(xp.data(), xs, wp, gt, gs, cp, nb, off.data() + t, out, k, valid, g); break;
          default: gw_channels_tile<1>(xp.data(), xs, wp, gt, gs, cp, nb, off.data() + t, out, k, valid, g); break;
        }
      }
    }
  }
}

}  // namespace

void fwd(const float* x, const float* w, const float* b, float* y, const ConvGeometry& g,
         int64_t n0, int64_t n1, Workspace& ws) {
  EMBER_CHECK(ws.tiling != Tiling::none, "direct convolution: geometry not eligible");
  const int64_t ohw = g.oh * g.ow;
  if (ws.tiling == Tiling::channels && b) std::copy(b, b + g.c_out, ws.bias.begin());
  for (int64_t n = n0; n < n1; ++n) {
    pad_image(x + n * g.c_in * g.h * g.w, ws.xp.data(), g);
    float* yn = y + n * g.c_out * ohw;
    if (ws.tiling == Tiling::rows) {
      fwd_rows(ws, w, b, yn, g);
    } else {
      fwd_channels(ws, w, yn, g);
    }
  }
}

void grad_weight(const float* x, const float* gy, float* gw, const ConvGeometry& g, int64_t n0,
                 int64_t n1) {
  switch (grad_weight_tiling(g)) {
    case Tiling::rows: grad_weight_rows(x, gy, gw, g, n0, n1); break;
    case Tiling::channels: grad_weight_channels(x, gy, gw, g, n0, n1); break;
    case Tiling::none: EMBER_THROW("direct convolution: weight gradient geometry not eligible");
  }
}

#else  // not x86-64 with GCC/Clang: never eligible, so the kernels are never called

namespace {
bool cpu_has_avx2_fma() { return false; }
}  // namespace

void fwd(const float*, const float*, const float*, float*, const ConvGeometry&, int64_t, int64_t,
         Workspace&) {
  EMBER_THROW("direct convolution: not built for this CPU (x86-64 with AVX2 only)");
}
void grad_weight(const float*, const float*, float*, const ConvGeometry&, int64_t, int64_t) {
  EMBER_THROW("direct convolution: not built for this CPU (x86-64 with AVX2 only)");
}

#endif

}  // namespace ember::cpu::direct
