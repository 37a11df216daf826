// Winograd F(4x4, 3x3) (Note [Winograd F(4x4, 3x3)] in kernels/cpu/conv_winograd.h).
#include "kernels/cpu/conv_winograd.h"

#include <cblas.h>

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "core/strided_layout.h"
#include "kernels/cpu/conv_gemm.h"

namespace ember::cpu::winograd {

const double kAT[4][6] = {{1, 1, 1, 1, 1, 0}, {0, 1, -1, 2, -2, 0}, {0, 1, 1, 4, 4, 0}, {0, 1, -1, 8, -8, 1}};
const double kBT[6][6] = {{4, 0, -5, 0, 1, 0},  {0, -4, -4, 1, 1, 0}, {0, 4, -4, -1, 1, 0},
                          {0, -2, -1, 2, 1, 0}, {0, 2, -1, -2, 1, 0}, {0, 4, 0, -5, 0, 1}};
const double kG[6][3] = {{1.0 / 4, 0, 0},
                         {-1.0 / 6, -1.0 / 6, -1.0 / 6},
                         {-1.0 / 6, 1.0 / 6, -1.0 / 6},
                         {1.0 / 24, 1.0 / 12, 1.0 / 6},
                         {1.0 / 24, -1.0 / 12, 1.0 / 6},
                         {0, 0, 1}};

namespace {

/// Tiles whose transforms one block of GEMMs takes: 256 columns keep OpenBLAS near its speed
/// while V and M (36 * C * 256 floats each: 19 MB at 512 channels) stay bounded.
constexpr int64_t kWinogradTiles = 256;

int64_t round_up_to(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

#if defined(__GNUC__) || defined(__clang__)
#define EMBER_ALWAYS_INLINE_T __attribute__((always_inline)) inline
#else
#define EMBER_ALWAYS_INLINE_T inline
#endif

/// Eight tiles side by side: the transforms run on all eight lanes at once (GCC/Clang vector
/// extension: AVX where the compiler may use it, two SSE halves otherwise).
constexpr int kLanes = 8;
typedef float v8 __attribute__((vector_size(32)));

/// Floats added to the distance between the 36 positions' matrices in V and M: with C * T a
/// power of two the 36 streams of one tile would fall into one cache set.
constexpr int64_t kPositionPad = 16;

// The 1-D transforms, written out: the matrices' zeros and ones cost nothing and the
// repeated sums are shared. r[k * rs] = (B^T d)[k] for d[k * s].
EMBER_ALWAYS_INLINE_T void bt6(const v8* d, int s, v8* r, int rs) {
  const v8 d0 = d[0], d1 = d[s], d2 = d[2 * s], d3 = d[3 * s], d4 = d[4 * s], d5 = d[5 * s];
  r[0] = 4.0f * d0 - 5.0f * d2 + d4;
  r[rs] = (d3 + d4) - 4.0f * (d1 + d2);
  r[2 * rs] = (d4 - d3) + 4.0f * (d1 - d2);
  r[3 * rs] = (d4 - d2) + 2.0f * (d3 - d1);
  r[4 * rs] = (d4 - d2) - 2.0f * (d3 - d1);
  r[5 * rs] = 4.0f * d1 - 5.0f * d3 + d5;
}
// r[k * rs] = (A^T m)[k] for m[k * s].
EMBER_ALWAYS_INLINE_T void at6(const v8* m, int s, v8* r, int rs) {
  const v8 m0 = m[0], m1 = m[s], m2 = m[2 * s], m3 = m[3 * s], m4 = m[4 * s], m5 = m[5 * s];
  const v8 p12 = m1 + m2, d12 = m1 - m2, p34 = m3 + m4, d34 = m3 - m4;
  r[0] = m0 + p12 + p34;
  r[rs] = d12 + 2.0f * d34;
  r[2 * rs] = p12 + 4.0f * p34;
  r[3 * rs] = d12 + 8.0f * d34 + m5;
}

/// Where tile t of a block (image-major, then tile rows) sits.
struct TilePos {
  int64_t image, oh0, ow0;
};
EMBER_ALWAYS_INLINE_T TilePos tile_pos(int64_t t, int64_t tpi, int64_t tw) {
  const int64_t i = t / tpi, r = t % tpi;
  return {i, 4 * (r / tw), 4 * (r % tw)};
}

}  // namespace

bool eligible(const ConvGeometry& g) {
  return g.kh == 3 && g.kw == 3 && g.sh == 1 && g.sw == 1 && g.dh == 1 && g.dw == 1 && g.groups == 1 &&
         g.oh > 0 && g.ow > 0 && g.ph >= 0 && g.pw >= 0;
}

bool eligible_grad_input(const ConvGeometry& g) { return eligible(g) && g.ph <= 2 && g.pw <= 2; }

const float* transform_weights(const float* w, const ConvGeometry& g) {
  EMBER_CHECK(eligible(g), "winograd convolution: geometry not eligible");
  const int64_t C = g.c_in, O = g.c_out;
  float* u = gemm_conv::scratch(4, 36 * O * C);
  // 16 input channels at a time, so that each of the 36 output streams (C_out * C_in floats
  // apart: a power of two at ResNet's widths, one cache set) gets whole cache lines.
  constexpr int64_t kBlock = 16;
  for (int64_t co = 0; co < O; ++co)
    for (int64_t c0 = 0; c0 < C; c0 += kBlock) {
      const int64_t cn = std::min(kBlock, C - c0);
      float out[36][kBlock];
      for (int64_t ci = 0; ci < cn; ++ci) {
        const float* k = w + (co * C + c0 + ci) * 9;
        double t[6][3];  // G g
        for (int p = 0; p < 6; ++p)
          for (int j = 0; j < 3; ++j) t[p][j] = kG[p][0] * k[j] + kG[p][1] * k[3 + j] + kG[p][2] * k[6 + j];
        for (int p = 0; p < 6; ++p)
          for (int q = 0; q < 6; ++q) out[p * 6 + q][ci] = float(t[p][0] * kG[q][0] + t[p][1] * kG[q][1] + t[p][2] * kG[q][2]);
      }
      for (int pq = 0; pq < 36; ++pq)
        std::copy(out[pq], out[pq] + cn, u + (pq * O + co) * C + c0);
    }
  return u;
}

namespace {

// The body of fwd, compiled twice: for AVX2 + FMA (8-lane vectors in one register, chosen at
// run time) and for baseline x86-64.
#if defined(__GNUC__) || defined(__clang__)
#define EMBER_ALWAYS_INLINE __attribute__((always_inline)) inline
#else
#define EMBER_ALWAYS_INLINE inline
#endif
EMBER_ALWAYS_INLINE void fwd_body(const float* x, const float* u, const float* b, float* y, const ConvGeometry& g,
                                  int64_t n0, int64_t n1) {
  const int64_t th = ceil_div(g.oh, int64_t(4)), tw = ceil_div(g.ow, int64_t(4)), tpi = th * tw;
  const int64_t bmax = std::max<int64_t>(1, ceil_div(kWinogradTiles, tpi));
  const int64_t C = g.c_in, O = g.c_out, ohw = g.oh * g.ow, hw = g.h * g.w;
  // Each position's matrix has rows of ld (the tiles rounded up to whole vectors; the GEMMs
  // use the first T columns), and the positions are pv / pm floats apart.
  const int64_t ldmax = round_up_to(bmax * tpi, kLanes);
  float* V = gemm_conv::scratch(2, 36 * (C * ldmax + kPositionPad));
  float* M = gemm_conv::scratch(3, 36 * (O * ldmax + kPositionPad));
  for (int64_t n = n0; n < n1; n += bmax) {
    const int64_t nb = std::min(bmax, n1 - n), T = nb * tpi, ld = round_up_to(T, kLanes);
    const int64_t pv = C * ld + kPositionPad, pm = O * ld + kPositionPad;
    // V_p (C, T) = (B^T d B)_p for every channel and tile, eight tiles at a time.
    for (int64_t t0 = 0; t0 < ld; t0 += kLanes) {
      TilePos pos[kLanes];
      bool interior = true;
      for (int l = 0; l < kLanes; ++l) {
        pos[l] = tile_pos(std::min(t0 + l, T - 1), tpi, tw);  // lanes past T repeat the last tile
        const int64_t r0 = pos[l].oh0 - g.ph, c0 = pos[l].ow0 - g.pw;
        interior = interior && r0 >= 0 && c0 >= 0 && r0 + 6 <= g.h && c0 + 6 <= g.w;
      }
      for (int64_t c = 0; c < C; ++c) {
        v8 d[36], t[36];
        for (int l = 0; l < kLanes; ++l) {
          const float* xc = x + ((n + pos[l].image) * C + c) * hw;
          const int64_t r0 = pos[l].oh0 - g.ph, c0 = pos[l].ow0 - g.pw;
          if (interior) {
            for (int r = 0; r < 6; ++r)
              for (int q = 0; q < 6; ++q) d[r * 6 + q][l] = xc[(r0 + r) * g.w + c0 + q];
          } else {  // reads outside the plane are the zero padding
            for (int r = 0; r < 6; ++r)
              for (int q = 0; q < 6; ++q) {
                const int64_t ih = r0 + r, iw = c0 + q;
                d[r * 6 + q][l] = ih >= 0 && ih < g.h && iw >= 0 && iw < g.w ? xc[ih * g.w + iw] : 0.0f;
              }
          }
        }
        for (int q = 0; q < 6; ++q) bt6(d + q, 6, t + q, 6);  // columns: B^T d
        float* v = V + c * ld + t0;
        for (int r = 0; r < 6; ++r) {  // rows: (B^T d) B, to V_{r*6+q}
          v8 row[6];
          bt6(t + r * 6, 1, row, 1);
          for (int q = 0; q < 6; ++q) std::memcpy(v + (r * 6 + q) * pv, &row[q], sizeof(v8));
        }
      }
    }
    for (int64_t p = 0; p < 36; ++p)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, blasint(O), blasint(T), blasint(C), 1.0f, u + p * O * C,
                  blasint(C), V + p * pv, blasint(ld), 0.0f, M + p * pm, blasint(ld));
    // Y = A^T M A per output channel and tile, cut to the plane.
    for (int64_t t0 = 0; t0 < T; t0 += kLanes) {
      const int lanes = int(std::min<int64_t>(kLanes, T - t0));
      TilePos pos[kLanes];
      for (int l = 0; l < lanes; ++l) pos[l] = tile_pos(t0 + l, tpi, tw);
      for (int64_t co = 0; co < O; ++co) {
        v8 mm[36], t[24], out[16];
        const float* m = M + co * ld + t0;
        for (int p = 0; p < 36; ++p) std::memcpy(&mm[p], m + p * pm, sizeof(v8));
        for (int q = 0; q < 6; ++q) at6(mm + q, 6, t + q, 6);  // columns: A^T m (4x6)
        for (int r = 0; r < 4; ++r) at6(t + r * 6, 1, out + r * 4, 1);
        const float bias = b ? b[co] : 0.0f;
        for (int l = 0; l < lanes; ++l) {
          float* yt = y + ((n + pos[l].image) * O + co) * ohw + pos[l].oh0 * g.ow + pos[l].ow0;
          const int64_t rh = std::min<int64_t>(4, g.oh - pos[l].oh0), rw = std::min<int64_t>(4, g.ow - pos[l].ow0);
          if (rh == 4 && rw == 4) {  // a whole tile
            for (int r = 0; r < 4; ++r)
              for (int q = 0; q < 4; ++q) yt[r * g.ow + q] = out[r * 4 + q][l] + bias;
          } else {
            for (int64_t r = 0; r < rh; ++r)
              for (int64_t q = 0; q < rw; ++q) yt[r * g.ow + q] = out[r * 4 + q][l] + bias;
          }
        }
      }
    }
  }
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
__attribute__((target("avx2,fma"))) void fwd_avx2(const float* x, const float* u, const float* b, float* y,
                                                  const ConvGeometry& g, int64_t n0, int64_t n1) {
  fwd_body(x, u, b, y, g, n0, n1);
}
bool cpu_has_avx2_fma() {
  static const bool yes = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return yes;
}
#endif
void fwd_base(const float* x, const float* u, const float* b, float* y, const ConvGeometry& g, int64_t n0,
              int64_t n1) {
  fwd_body(x, u, b, y, g, n0, n1);
}

}  // namespace

void fwd(const float* x, const float* u, const float* b, float* y, const ConvGeometry& g, int64_t n0, int64_t n1) {
  EMBER_CHECK(eligible(g), "winograd convolution: geometry not eligible");
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  if (cpu_has_avx2_fma()) return fwd_avx2(x, u, b, y, g, n0, n1);
#endif
  fwd_base(x, u, b, y, g, n0, n1);
}

}  // namespace ember::cpu::winograd
