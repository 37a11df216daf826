// im2col + GEMM convolution, per image and batched (Note [Batched GEMM lowering] in
// kernels/cpu/conv_gemm.h). BLAS threading is the caller's business (kernels/cpu/conv.cpp).
#include "kernels/cpu/conv_gemm.h"

#include <cblas.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "core/strided_layout.h"

namespace ember::cpu::gemm_conv {

namespace {

void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
          int64_t ldb, float beta, float* c, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, blasint(m),
              blasint(n), blasint(k), 1.0f, a, blasint(lda), b, blasint(ldb), beta, c, blasint(ldc));
}
void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const double* a, int64_t lda, const double* b,
          int64_t ldb, double beta, double* c, int64_t ldc) {
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, blasint(m),
              blasint(n), blasint(k), 1.0, a, blasint(lda), b, blasint(ldb), beta, c, blasint(ldc));
}

/// Output columns [lo, hi) whose input column (ow * sw + off) lies inside [0, w).
inline void valid_cols(int64_t off, int64_t sw, int64_t w, int64_t ow, int64_t& lo, int64_t& hi) {
  lo = off >= 0 ? 0 : ceil_div(-off, sw);
  hi = w - 1 - off >= 0 ? (w - 1 - off) / sw + 1 : 0;
  lo = std::min(lo, ow);
  hi = std::clamp(hi, lo, ow);
}

// col (C * kH * kW rows of ld, the first OH * OW of each used): row (c, i, j) holds the input
// pixel that kernel tap (i, j) of channel c sees at each output position; zeros where that
// falls in the padding. ld > OH * OW places one image's columns inside a batched matrix.
template <class T>
void im2col(const T* x, T* col, int64_t ld, const ConvGeometry& g) {
  for (int64_t c = 0; c < g.c_in; ++c) {
    const T* xc = x + c * g.h * g.w;
    for (int64_t i = 0; i < g.kh; ++i) {
      for (int64_t j = 0; j < g.kw; ++j) {
        T* row = col + ((c * g.kh + i) * g.kw + j) * ld;
        const int64_t woff = j * g.dw - g.pw;
        int64_t lo, hi;
        valid_cols(woff, g.sw, g.w, g.ow, lo, hi);
        for (int64_t oh = 0; oh < g.oh; ++oh) {
          T* r = row + oh * g.ow;
          const int64_t ih = oh * g.sh - g.ph + i * g.dh;
          if (ih < 0 || ih >= g.h) {
            std::fill(r, r + g.ow, T(0));
            continue;
          }
          const T* xr = xc + ih * g.w + woff;
          std::fill(r, r + lo, T(0));
          if (g.sw == 1) {
            std::memcpy(r + lo, xr + lo, size_t(hi - lo) * sizeof(T));
          } else {
            for (int64_t ow = lo; ow < hi; ++ow) r[ow] = xr[ow * g.sw];
          }
          std::fill(r + hi, r + g.ow, T(0));
        }
      }
    }
  }
}

// The adjoint of im2col: adds every column entry back onto the pixel it came from.
// x must be zeroed first.
template <class T>
void col2im(const T* col, int64_t ld, T* x, const ConvGeometry& g) {
  for (int64_t c = 0; c < g.c_in; ++c) {
    T* xc = x + c * g.h * g.w;
    for (int64_t i = 0; i < g.kh; ++i) {
      for (int64_t j = 0; j < g.kw; ++j) {
        const T* row = col + ((c * g.kh + i) * g.kw + j) * ld;
        const int64_t woff = j * g.dw - g.pw;
        int64_t lo, hi;
        valid_cols(woff, g.sw, g.w, g.ow, lo, hi);
        for (int64_t oh = 0; oh < g.oh; ++oh) {
          const int64_t ih = oh * g.sh - g.ph + i * g.dh;
          if (ih < 0 || ih >= g.h) continue;
          const T* r = row + oh * g.ow;
          T* xr = xc + ih * g.w + woff;
          if (g.sw == 1) {
            for (int64_t ow = lo; ow < hi; ++ow) xr[ow] += r[ow];
          } else {
            for (int64_t ow = lo; ow < hi; ++ow) xr[ow * g.sw] += r[ow];
          }
        }
      }
    }
  }
}

/// A 1x1 kernel with unit stride and no padding: the input already is its column matrix.
bool is_pointwise(const ConvGeometry& g) {
  return g.kh == 1 && g.kw == 1 && g.sh == 1 && g.sw == 1 && g.ph == 0 && g.pw == 0;
}

/// Columns a batched GEMM aims for: past ~512, OpenBLAS is at its speed on these shapes and
/// the column matrix (C_in * 9 * 512 floats: 9 MB at 512 channels) only grows.
constexpr int64_t kBatchedColumns = 512;

}  // namespace

float* scratch(int slot, int64_t n) {
  constexpr int kSlots = 6;
  EMBER_CHECK(slot >= 0 && slot < kSlots, "conv scratch: slot ", slot, " out of range");
  thread_local std::vector<float> buf[kSlots];
  if (int64_t(buf[slot].size()) < n) buf[slot].resize(size_t(n));
  return buf[slot].data();
}

template <class T>
void fwd_images(const T* x, const T* w, const T* b, T* y, const ConvGeometry& g, int64_t n0, int64_t n1) {
  const int64_t ohw = g.oh * g.ow, cin_g = g.c_in / g.groups, cout_g = g.c_out / g.groups;
  const int64_t k_g = cin_g * g.kh * g.kw;
  const bool pointwise = is_pointwise(g);
  std::vector<T> col(pointwise ? 0 : size_t(g.c_in * g.kh * g.kw * ohw));
  for (int64_t n = n0; n < n1; ++n) {
    const T* xn = x + n * g.c_in * g.h * g.w;
    T* yn = y + n * g.c_out * ohw;
    const T* cols = xn;
    if (!pointwise) {
      im2col(xn, col.data(), ohw, g);
      cols = col.data();
    }
    if (b) {
      for (int64_t c = 0; c < g.c_out; ++c) std::fill(yn + c * ohw, yn + (c + 1) * ohw, b[c]);
    }
    for (int64_t gi = 0; gi < g.groups; ++gi) {
      gemm(false, false, cout_g, ohw, k_g, w + gi * cout_g * k_g, k_g, cols + gi * k_g * ohw, ohw, b ? T(1) : T(0),
           yn + gi * cout_g * ohw, ohw);
    }
  }
}

template <class T>
void grad_input_images(const T* w, const T* gy, T* gx, const ConvGeometry& g, int64_t n0, int64_t n1) {
  const int64_t ohw = g.oh * g.ow, cin_g = g.c_in / g.groups, cout_g = g.c_out / g.groups;
  const int64_t k_g = cin_g * g.kh * g.kw;
  const bool pointwise = is_pointwise(g);
  std::vector<T> col(pointwise ? 0 : size_t(g.c_in * g.kh * g.kw * ohw));
  for (int64_t n = n0; n < n1; ++n) {
    const T* gyn = gy + n * g.c_out * ohw;
    T* gxn = gx + n * g.c_in * g.h * g.w;
    // gcol_g (K_g, OHW) = W_g^T (K_g, C_out/g) @ gY_g (C_out/g, OHW)
    T* gcol = pointwise ? gxn : col.data();
    for (int64_t gi = 0; gi < g.groups; ++gi) {
      gemm(true, false, k_g, ohw, cout_g, w + gi * cout_g * k_g, k_g, gyn + gi * cout_g * ohw, ohw, T(0),
           gcol + gi * k_g * ohw, ohw);
    }
    if (!pointwise) {
      std::fill(gxn, gxn + g.c_in * g.h * g.w, T(0));
      col2im(gcol, ohw, gxn, g);
    }
  }
}

template <class T>
void grad_weight_images(const T* x, const T* gy, T* gwt, const ConvGeometry& g, int64_t n0, int64_t n1) {
  const int64_t ohw = g.oh * g.ow, cin_g = g.c_in / g.groups, cout_g = g.c_out / g.groups;
  const int64_t k_g = cin_g * g.kh * g.kw;
  const bool pointwise = is_pointwise(g);
  std::vector<T> col(pointwise ? 0 : size_t(g.c_in * g.kh * g.kw * ohw));
  for (int64_t n = n0; n < n1; ++n) {
    const T* gyn = gy + n * g.c_out * ohw;
    const T* xn = x + n * g.c_in * g.h * g.w;
    const T* cols = xn;
    if (!pointwise) {
      im2col(xn, col.data(), ohw, g);
      cols = col.data();
    }
    // gW_g^T (K_g, C_out/g) += col_g (K_g, OHW) @ gY_g^T (OHW, C_out/g): the same product as
    // gY_g @ col_g^T, in the operand order OpenBLAS runs ~1.8x faster at LeNet's shapes.
    for (int64_t gi = 0; gi < g.groups; ++gi) {
      gemm(false, true, k_g, cout_g, ohw, cols + gi * k_g * ohw, ohw, gyn + gi * cout_g * ohw, ohw, T(1),
           gwt + gi * cout_g * k_g, cout_g);
    }
  }
}

template <class T>
void transpose_weight_blocks(const T* gwt, T* gw, const ConvGeometry& g) {
  const int64_t cout_g = g.c_out / g.groups, k_g = g.c_in / g.groups * g.kh * g.kw;
  for (int64_t gi = 0; gi < g.groups; ++gi) {
    const T* src = gwt + gi * cout_g * k_g;  // (K_g, C_out/g)
    T* dst = gw + gi * cout_g * k_g;         // (C_out/g, K_g)
    for (int64_t k = 0; k < k_g; ++k)
      for (int64_t c = 0; c < cout_g; ++c) dst[c * k_g + k] = src[k * cout_g + c];
  }
}

template void fwd_images<float>(const float*, const float*, const float*, float*, const ConvGeometry&, int64_t,
                                int64_t);
template void fwd_images<double>(const double*, const double*, const double*, double*, const ConvGeometry&,
                                 int64_t, int64_t);
template void grad_input_images<float>(const float*, const float*, float*, const ConvGeometry&, int64_t, int64_t);
template void grad_input_images<double>(const double*, const double*, double*, const ConvGeometry&, int64_t,
                                        int64_t);
template void grad_weight_images<float>(const float*, const float*, float*, const ConvGeometry&, int64_t, int64_t);
template void grad_weight_images<double>(const double*, const double*, double*, const ConvGeometry&, int64_t,
                                         int64_t);
template void transpose_weight_blocks<float>(const float*, float*, const ConvGeometry&);
template void transpose_weight_blocks<double>(const double*, double*, const ConvGeometry&);

// ---- batched (Note [Batched GEMM lowering])

bool batched_eligible(const ConvGeometry& g) { return g.groups == 1 && g.oh * g.ow > 0; }

int64_t batched_block(const ConvGeometry& g) {
  return std::max<int64_t>(1, ceil_div(kBatchedColumns, std::max<int64_t>(1, g.oh * g.ow)));
}

namespace {

/// im2col of images [n, n + nb) into col (K, nb * OHW), image-major columns.
void im2col_block(const float* x, float* col, const ConvGeometry& g, int64_t n, int64_t nb) {
  const int64_t ohw = g.oh * g.ow;
  for (int64_t i = 0; i < nb; ++i) im2col(x + (n + i) * g.c_in * g.h * g.w, col + i * ohw, nb * ohw, g);
}

}  // namespace

void fwd_batched(const float* x, const float* w, const float* b, float* y, const ConvGeometry& g, int64_t n0,
                 int64_t n1) {
  const int64_t ohw = g.oh * g.ow, k = g.c_in * g.kh * g.kw, bmax = batched_block(g);
  float* col = scratch(0, k * bmax * ohw);
  float* yb = scratch(1, g.c_out * bmax * ohw);
  for (int64_t n = n0; n < n1; n += bmax) {
    const int64_t nb = std::min(bmax, n1 - n), cols = nb * ohw;
    im2col_block(x, col, g, n, nb);
    gemm(false, false, g.c_out, cols, k, w, k, col, cols, 0.0f, yb, cols);
    for (int64_t i = 0; i < nb; ++i) {  // (C_out, nb * OHW) -> nb images of (C_out, OHW)
      float* yn = y + (n + i) * g.c_out * ohw;
      for (int64_t c = 0; c < g.c_out; ++c) {
        const float* src = yb + c * cols + i * ohw;
        float* dst = yn + c * ohw;
        if (b) {
          for (int64_t p = 0; p < ohw; ++p) dst[p] = src[p] + b[c];
        } else {
          std::memcpy(dst, src, size_t(ohw) * sizeof(float));
        }
      }
    }
  }
}

namespace {

/// gY of images [n, n + nb) gathered into (C_out, nb * OHW).
void gather_gy(const float* gy, float* gyb, const ConvGeometry& g, int64_t n, int64_t nb) {
  const int64_t ohw = g.oh * g.ow, cols = nb * ohw;
  for (int64_t i = 0; i < nb; ++i)
    for (int64_t c = 0; c < g.c_out; ++c)
      std::memcpy(gyb + c * cols + i * ohw, gy + ((n + i) * g.c_out + c) * ohw, size_t(ohw) * sizeof(float));
}

}  // namespace

void grad_input_batched(const float* w, const float* gy, float* gx, const ConvGeometry& g, int64_t n0, int64_t n1) {
  const int64_t ohw = g.oh * g.ow, k = g.c_in * g.kh * g.kw, bmax = batched_block(g);
  float* gcol = scratch(0, k * bmax * ohw);
  float* gyb = scratch(1, g.c_out * bmax * ohw);
  for (int64_t n = n0; n < n1; n += bmax) {
    const int64_t nb = std::min(bmax, n1 - n), cols = nb * ohw;
    gather_gy(gy, gyb, g, n, nb);
    gemm(true, false, k, cols, g.c_out, w, k, gyb, cols, 0.0f, gcol, cols);
    for (int64_t i = 0; i < nb; ++i) {
      float* gxn = gx + (n + i) * g.c_in * g.h * g.w;
      std::fill(gxn, gxn + g.c_in * g.h * g.w, 0.0f);
      col2im(gcol + i * ohw, cols, gxn, g);
    }
  }
}

void grad_weight_batched(const float* x, const float* gy, float* gw, const ConvGeometry& g, int64_t n0,
                         int64_t n1) {
  const int64_t ohw = g.oh * g.ow, k = g.c_in * g.kh * g.kw, bmax = batched_block(g);
  float* col = scratch(0, k * bmax * ohw);
  float* gyb = scratch(1, g.c_out * bmax * ohw);
  for (int64_t n = n0; n < n1; n += bmax) {
    const int64_t nb = std::min(bmax, n1 - n), cols = nb * ohw;
    im2col_block(x, col, g, n, nb);
    gather_gy(gy, gyb, g, n, nb);
    // gW (C_out, K) += gY_B (C_out, cols) @ col^T (cols, K)
    gemm(false, true, g.c_out, k, cols, gyb, cols, col, cols, 1.0f, gw, k);
  }
}

}  // namespace ember::cpu::gemm_conv
