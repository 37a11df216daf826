// Winograd F(4x4, 3x3) (Note [Winograd F(4x4, 3x3)] in kernels/cpu/conv_winograd.h).
#include "kernels/cpu/conv_winograd.h"

#include <cblas.h>

#include <algorithm>

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

// The 1-D transforms, written out: the matrices' zeros and ones cost nothing and the
// repeated sums are shared. r[k * rs] = (B^T d)[k] for d[k * s].
inline void bt6(const float* d, int64_t s, float* r, int64_t rs) {
  const float d0 = d[0], d1 = d[s], d2 = d[2 * s], d3 = d[3 * s], d4 = d[4 * s], d5 = d[5 * s];
  r[0] = 4 * d0 - 5 * d2 + d4;
  r[rs] = (d3 + d4) - 4 * (d1 + d2);
  r[2 * rs] = (d4 - d3) + 4 * (d1 - d2);
  r[3 * rs] = (d4 - d2) + 2 * (d3 - d1);
  r[4 * rs] = (d4 - d2) - 2 * (d3 - d1);
  r[5 * rs] = 4 * d1 - 5 * d3 + d5;
}
// r[k * rs] = (A^T m)[k] for m[k * s].
inline void at6(const float* m, int64_t s, float* r, int64_t rs) {
  const float m0 = m[0], m1 = m[s], m2 = m[2 * s], m3 = m[3 * s], m4 = m[4 * s], m5 = m[5 * s];
  const float p12 = m1 + m2, d12 = m1 - m2, p34 = m3 + m4, d34 = m3 - m4;
  r[0] = m0 + p12 + p34;
  r[rs] = d12 + 2 * d34;
  r[2 * rs] = p12 + 4 * p34;
  r[3 * rs] = d12 + 8 * d34 + m5;
}

}  // namespace

bool eligible(const ConvGeometry& g) {
  return g.kh == 3 && g.kw == 3 && g.sh == 1 && g.sw == 1 && g.dh == 1 && g.dw == 1 && g.groups == 1 &&
         g.oh > 0 && g.ow > 0 && g.ph >= 0 && g.pw >= 0;
}

bool eligible_grad_input(const ConvGeometry& g) { return eligible(g) && g.ph <= 2 && g.pw <= 2; }

std::vector<float> transform_weights(const float* w, const ConvGeometry& g) {
  EMBER_CHECK(eligible(g), "winograd convolution: geometry not eligible");
  std::vector<float> u(size_t(36 * g.c_out * g.c_in));
  for (int64_t co = 0; co < g.c_out; ++co)
    for (int64_t c = 0; c < g.c_in; ++c) {
      const float* k = w + (co * g.c_in + c) * 9;
      double t[6][3];  // G g
      for (int p = 0; p < 6; ++p)
        for (int j = 0; j < 3; ++j) t[p][j] = kG[p][0] * k[j] + kG[p][1] * k[3 + j] + kG[p][2] * k[6 + j];
      for (int p = 0; p < 6; ++p)
        for (int q = 0; q < 6; ++q)
          u[size_t(((p * 6 + q) * g.c_out + co) * g.c_in + c)] =
              float(t[p][0] * kG[q][0] + t[p][1] * kG[q][1] + t[p][2] * kG[q][2]);
    }
  return u;
}

void fwd(const float* x, const float* u, const float* b, float* y, const ConvGeometry& g, int64_t n0, int64_t n1) {
  EMBER_CHECK(eligible(g), "winograd convolution: geometry not eligible");
  const int64_t th = ceil_div(g.oh, int64_t(4)), tw = ceil_div(g.ow, int64_t(4)), tpi = th * tw;
  const int64_t bmax = std::max<int64_t>(1, ceil_div(kWinogradTiles, tpi));
  const int64_t C = g.c_in, O = g.c_out, ohw = g.oh * g.ow;
  float* V = gemm_conv::scratch(2, 36 * C * bmax * tpi);
  float* M = gemm_conv::scratch(3, 36 * O * bmax * tpi);
  for (int64_t n = n0; n < n1; n += bmax) {
    const int64_t nb = std::min(bmax, n1 - n), T = nb * tpi;
    // V_p (C, T) = (B^T d B)_p for every channel and tile.
    for (int64_t i = 0; i < nb; ++i)
      for (int64_t c = 0; c < C; ++c) {
        const float* xc = x + ((n + i) * C + c) * g.h * g.w;
        for (int64_t ty = 0; ty < th; ++ty)
          for (int64_t tx = 0; tx < tw; ++tx) {
            const int64_t r0 = 4 * ty - g.ph, c0 = 4 * tx - g.pw;
            float d[36], t[36];
            if (r0 >= 0 && c0 >= 0 && r0 + 6 <= g.h && c0 + 6 <= g.w) {
              for (int r = 0; r < 6; ++r)
                for (int q = 0; q < 6; ++q) d[r * 6 + q] = xc[(r0 + r) * g.w + c0 + q];
            } else {  // an edge tile: reads outside the plane are the zero padding
              for (int r = 0; r < 6; ++r)
                for (int q = 0; q < 6; ++q) {
                  const int64_t ih = r0 + r, iw = c0 + q;
                  d[r * 6 + q] = ih >= 0 && ih < g.h && iw >= 0 && iw < g.w ? xc[ih * g.w + iw] : 0.0f;
                }
            }
            for (int q = 0; q < 6; ++q) bt6(d + q, 6, t + q, 6);  // columns: B^T d
            float* v = V + c * T + i * tpi + ty * tw + tx;
            const int64_t ps = C * T;  // distance between positions p in V
            for (int r = 0; r < 6; ++r) {  // rows: (B^T d) B, scattered to V_{r*6+q}
              float row[6];
              bt6(t + r * 6, 1, row, 1);
              for (int q = 0; q < 6; ++q) v[(r * 6 + q) * ps] = row[q];
            }
          }
      }
    for (int64_t p = 0; p < 36; ++p)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, blasint(O), blasint(T), blasint(C), 1.0f, u + p * O * C,
                  blasint(C), V + p * C * T, blasint(T), 0.0f, M + p * O * T, blasint(T));
    // Y = A^T M A per output channel and tile, cut to the plane.
    for (int64_t i = 0; i < nb; ++i)
      for (int64_t co = 0; co < O; ++co) {
        float* yc = y + (n + i) * O * ohw + co * ohw;
        const float bias = b ? b[co] : 0.0f;
        for (int64_t ty = 0; ty < th; ++ty)
          for (int64_t tx = 0; tx < tw; ++tx) {
            const float* m = M + co * T + i * tpi + ty * tw + tx;
            const int64_t ps = O * T;
            float mm[36], t[24], out[16];
            for (int p = 0; p < 36; ++p) mm[p] = m[p * ps];
            for (int q = 0; q < 6; ++q) at6(mm + q, 6, t + q, 6);  // columns: A^T m (4x6)
            for (int r = 0; r < 4; ++r) at6(t + r * 6, 1, out + r * 4, 1);
            const int64_t oh0 = 4 * ty, ow0 = 4 * tx;
            const int64_t rh = std::min<int64_t>(4, g.oh - oh0), rw = std::min<int64_t>(4, g.ow - ow0);
            for (int64_t r = 0; r < rh; ++r)
              for (int64_t q = 0; q < rw; ++q) yc[(oh0 + r) * g.ow + ow0 + q] = out[r * 4 + q] + bias;
          }
      }
  }
}

}  // namespace ember::cpu::winograd
