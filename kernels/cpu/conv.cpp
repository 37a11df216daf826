// CPU convolution: f32 stride-1 convolutions run the direct AVX2 kernels where they win
// (kernels/cpu/conv_direct.h); the rest im2col + GEMM through OpenBLAS. Images are spread over
// OpenMP threads, each running single-threaded GEMMs on its own column buffer (small per-image
// GEMMs thread badly inside BLAS). BLAS is on one thread by default anyway (Note [One thread pool]
// in kernels/cpu/threads.cpp); a user-set OPENBLAS_NUM_THREADS threads a single image's GEMMs.
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "kernels/conv.h"
#include "kernels/cpu/conv_direct.h"
#include "kernels/cpu/conv_dnnl.h"
#include "kernels/cpu/threads.h"
#include "core/strided_layout.h"
#include "core/error.h"

namespace ember::cpu {

namespace {

void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
          const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
              blasint(m), blasint(n), blasint(k), 1.0f, a, blasint(lda), b, blasint(ldb), beta, c,
              blasint(ldc));
}
void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const double* a, int64_t lda,
          const double* b, int64_t ldb, double beta, double* c, int64_t ldc) {
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
              blasint(m), blasint(n), blasint(k), 1.0, a, blasint(lda), b, blasint(ldb), beta, c,
              blasint(ldc));
}

/// Sets OpenBLAS's thread count for a scope: 1 while our own threads each run GEMMs.
class BlasThreads {
 public:
  explicit BlasThreads(int n) : prev_(openblas_get_num_threads()) {
    if (prev_ != n) openblas_set_num_threads(n);
  }
  ~BlasThreads() {
    if (openblas_get_num_threads() != prev_) openblas_set_num_threads(prev_);
  }
  BlasThreads(const BlasThreads&) = delete;
  BlasThreads& operator=(const BlasThreads&) = delete;

 private:
  int prev_;
};

/// Output columns [lo, hi) whose input column (ow * sw + off) lies inside [0, w).
inline void valid_cols(int64_t off, int64_t sw, int64_t w, int64_t ow, int64_t& lo, int64_t& hi) {
  lo = off >= 0 ? 0 : ceil_div(-off, sw);
  hi = w - 1 - off >= 0 ? (w - 1 - off) / sw + 1 : 0;
  lo = std::min(lo, ow);
  hi = std::clamp(hi, lo, ow);
}

// col (C * kH * kW, OH * OW): row (c, i, j) holds the input pixel that kernel tap (i, j)
// of channel c sees at each output position; zeros where that falls in the padding.
template <class T>
void im2col(const T* x, T* col, const ConvGeometry& g) {
  const int64_t ohw = g.oh * g.ow;
  for (int64_t c = 0; c < g.c_in; ++c) {
    const T* xc = x + c * g.h * g.w;
    for (int64_t i = 0; i < g.kh; ++i) {
      for (int64_t j = 0; j < g.kw; ++j) {
        T* row = col + ((c * g.kh + i) * g.kw + j) * ohw;
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
void col2im(const T* col, T* x, const ConvGeometry& g) {
  const int64_t ohw = g.oh * g.ow;
  for (int64_t c = 0; c < g.c_in; ++c) {
    T* xc = x + c * g.h * g.w;
    for (int64_t i = 0; i < g.kh; ++i) {
      for (int64_t j = 0; j < g.kw; ++j) {
        const T* row = col + ((c * g.kh + i) * g.kw + j) * ohw;
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

/// Sum of n contiguous values in 8 interleaved partial sums: a single running sum is one
/// long chain of dependent adds (4 cycles each) that the compiler may not reorder.
template <class T>
T sum_contiguous(const T* r, int64_t n) {
  T part[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k) part[k] += r[i + k];
  for (; i < n; ++i) part[i % 8] += r[i];
  return ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
}

/// A 1x1 kernel with unit stride and no padding: the input already is its column matrix.
bool is_pointwise(const ConvGeometry& g) {
  return g.kh == 1 && g.kw == 1 && g.sh == 1 && g.sw == 1 && g.ph == 0 && g.pw == 0;
}

/// Below this many multiply-adds a convolution runs on one thread: waking threads costs
/// more, and much more on a loaded machine.
constexpr int64_t kMinParallelMacs = int64_t(1) << 20;

int64_t macs(const ConvGeometry& g) {
  return g.n * g.c_out * g.oh * g.ow * (g.c_in / g.groups) * g.kh * g.kw;
}

/// Threads to spread the images over (1: all images on this thread, where BLAS threads only
/// if the user gave it threads).
int threads_for(const ConvGeometry& g) {
  int nt = omp_in_parallel() ? 1 : omp_get_max_threads();
  if (g.n < 2 || nt < 2 || macs(g) < kMinParallelMacs) return 1;
  return int(std::min<int64_t>(nt, g.n));
}

/// Runs f(thread, image_begin, image_end) over the batch: one block of images per thread
/// with single-threaded BLAS, or all images on this thread with threaded BLAS.
template <class F>
void over_images(const ConvGeometry& g, F&& f) {
  const int64_t n = g.n;
  int nt = threads_for(g);
  if (nt > 1) {
    BlasThreads one(1);
#pragma omp parallel num_threads(nt)
    {
      // The team may be smaller than asked (OMP_DYNAMIC, thread limits): split over the
      // threads that did start, or the images of the missing ones would be skipped.
      const int t = omp_get_thread_num(), team = omp_get_num_threads();
      f(t, n * t / team, n * (t + 1) / team);
    }
  } else {
    f(0, int64_t(0), n);
  }
}

// Note [Thread-count-independent sums]: the weight and bias gradients are sums over the
// images, kept as one partial sum per block of images and added in block order. By
// default a block is one thread's share of the batch, so the rounding depends on the
// thread count. In deterministic mode (ember::set_deterministic) the blocks depend on the
// batch size alone (kDeterministicBlocks of them at most), the threads take whole blocks,
// and BLAS runs on one thread inside them: the result is bitwise the same at any thread
// count, for the price of a few more partial buffers.
constexpr int64_t kDeterministicBlocks = 8;

/// f(block, image_begin, image_end) over `blocks` fixed blocks of the batch, spread over the
/// threads that threads_for gives, each with single-threaded BLAS.
template <class F>
void over_fixed_blocks(const ConvGeometry& g, int64_t blocks, F&& f) {
  const int64_t n = g.n;
  const int nt = int(std::min<int64_t>(threads_for(g), blocks));
  BlasThreads one(1);
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
  for (int64_t b = 0; b < blocks; ++b) f(int(b), n * b / blocks, n * (b + 1) / blocks);
}

/// Whether the f32 direct kernels (Note [Direct convolution]) take this convolution.
template <class T>
bool use_direct(const ConvGeometry& g) {
  return std::is_same_v<T, float> && direct::eligible(g);
}

template <class T>
void fwd(const T* x, const T* w, const T* b, T* y, const ConvGeometry& g) {
  if constexpr (std::is_same_v<T, float>) {
    if (use_direct<T>(g)) {
      const std::vector<float> wr = direct::fwd_weights(w, g);
      over_images(g, [&](int, int64_t nb, int64_t ne) {
        direct::Workspace ws(g);
        direct::fwd(x, wr.data(), b, y, g, nb, ne, ws);
      });
      return;
    }
  }
  const int64_t ohw = g.oh * g.ow, cin_g = g.c_in / g.groups, cout_g = g.c_out / g.groups;
  const int64_t k_g = cin_g * g.kh * g.kw;
  const bool pointwise = is_pointwise(g);
  over_images(g, [&](int, int64_t nb, int64_t ne) {
    std::vector<T> col(pointwise ? 0 : size_t(g.c_in * g.kh * g.kw * ohw));
    for (int64_t n = nb; n < ne; ++n) {
      const T* xn = x + n * g.c_in * g.h * g.w;
      T* yn = y + n * g.c_out * ohw;
      const T* cols = xn;
      if (!pointwise) {
        im2col(xn, col.data(), g);
        cols = col.data();
      }
      if (b) {
        for (int64_t c = 0; c < g.c_out; ++c) std::fill(yn + c * ohw, yn + (c + 1) * ohw, b[c]);
      }
      for (int64_t gi = 0; gi < g.groups; ++gi) {
        gemm(false, false, cout_g, ohw, k_g, w + gi * cout_g * k_g, k_g, cols + gi * k_g * ohw, ohw,
             b ? T(1) : T(0), yn + gi * cout_g * ohw, ohw);
      }
    }
  });
}

template <class T>
void bwd(const T* x, const T* w, const T* gy, T* gx, T* gw, T* gb, const ConvGeometry& g, bool deterministic) {
  const int64_t ohw = g.oh * g.ow, cin_g = g.c_in / g.groups, cout_g = g.c_out / g.groups;
  const int64_t k_g = cin_g * g.kh * g.kw, wsize = g.c_out * k_g;
  const bool pointwise = is_pointwise(g);
  // The weight gradient from the direct kernel (in (C_out, K) order) or from im2col + GEMM
  // (in transposed (K_g, C_out/g) blocks); the input gradient from the direct forward
  // kernel (a convolution of gy) or from GEMM + col2im.
  const bool direct_gw = gw && std::is_same_v<T, float> && direct::eligible_grad_weight(g);
  const bool direct_gx = gx && std::is_same_v<T, float> && direct::eligible_grad_input(g);
  const bool need_col = !pointwise && ((gx && !direct_gx) || (gw && !direct_gw));
  [[maybe_unused]] std::vector<float> w_flip;  // the direct input gradient's weights
  [[maybe_unused]] ConvGeometry gt;            // and its geometry
  if constexpr (std::is_same_v<T, float>) {
    if (direct_gx) {
      gt = direct::grad_input_geometry(g);
      w_flip = direct::fwd_weights(direct::grad_input_weights(w, g).data(), gt);
    }
  }
  // Partial sums of the weight and bias gradients per block of images, added in block
  // order (Note [Thread-count-independent sums]).
  const int nt = deterministic ? int(std::max<int64_t>(1, std::min(g.n, kDeterministicBlocks))) : threads_for(g);
  std::vector<T> gw_part(gw ? size_t(nt * wsize) : 0, T(0));
  std::vector<T> gb_part(gb ? size_t(nt * g.c_out) : 0, T(0));
  auto block = [&](int t, int64_t nb, int64_t ne) {
    std::vector<T> col(need_col ? size_t(g.c_in * g.kh * g.kw * ohw) : 0);
    T* gwt = gw ? gw_part.data() + t * wsize : nullptr;
    T* gbt = gb ? gb_part.data() + t * g.c_out : nullptr;
    if constexpr (std::is_same_v<T, float>) {
      if (direct_gw) direct::grad_weight(x, gy, gwt, g, nb, ne);
      if (direct_gx) {
        direct::Workspace ws(gt);
        direct::fwd(gy, w_flip.data(), nullptr, gx, gt, nb, ne, ws);
      }
    }
    for (int64_t n = nb; n < ne; ++n) {
      const T* gyn = gy + n * g.c_out * ohw;
      if (gw && !direct_gw) {
        const T* xn = x + n * g.c_in * g.h * g.w;
        const T* cols = xn;
        if (!pointwise) {
          im2col(xn, col.data(), g);
          cols = col.data();
        }
        // gW_g^T (K_g, C_out/g) += col_g (K_g, OHW) @ gY_g^T (OHW, C_out/g): the same
        // product as gY_g @ col_g^T, in the operand order OpenBLAS runs ~1.8x faster at
        // LeNet's shapes (gwt holds the transposed blocks; see the sum below).
        for (int64_t gi = 0; gi < g.groups; ++gi) {
          gemm(false, true, k_g, cout_g, ohw, cols + gi * k_g * ohw, ohw, gyn + gi * cout_g * ohw,
               ohw, T(1), gwt + gi * cout_g * k_g, cout_g);
        }
      }
      if (gb) {
        for (int64_t c = 0; c < g.c_out; ++c) gbt[c] += sum_contiguous(gyn + c * ohw, ohw);
      }
      if (gx && !direct_gx) {
        T* gxn = gx + n * g.c_in * g.h * g.w;
        // gcol_g (K_g, OHW) = W_g^T (K_g, C_out/g) @ gY_g (C_out/g, OHW)
        T* gcol = pointwise ? gxn : col.data();
        for (int64_t gi = 0; gi < g.groups; ++gi) {
          gemm(true, false, k_g, ohw, cout_g, w + gi * cout_g * k_g, k_g, gyn + gi * cout_g * ohw,
               ohw, T(0), gcol + gi * k_g * ohw, ohw);
        }
        if (!pointwise) {
          std::fill(gxn, gxn + g.c_in * g.h * g.w, T(0));
          col2im(gcol, gxn, g);
        }
      }
    }
  };
  if (deterministic) over_fixed_blocks(g, nt, block);
  else over_images(g, block);
  if (gw) {
    // Threads' partial sums in thread order; GEMM blocks transposed back to (C_out/g, K_g).
    for (int t = 1; t < nt; ++t)
      for (int64_t i = 0; i < wsize; ++i) gw_part[size_t(i)] += gw_part[size_t(t * wsize + i)];
    if (direct_gw) {
      std::copy(gw_part.begin(), gw_part.begin() + wsize, gw);
    } else {
      for (int64_t gi = 0; gi < g.groups; ++gi) {
        const T* src = gw_part.data() + gi * cout_g * k_g;  // (K_g, C_out/g)
        T* dst = gw + gi * cout_g * k_g;                     // (C_out/g, K_g)
        for (int64_t k = 0; k < k_g; ++k)
          for (int64_t c = 0; c < cout_g; ++c) dst[c * k_g + k] = src[k * cout_g + c];
      }
    }
  }
  if (gb) {
    std::copy(gb_part.begin(), gb_part.begin() + g.c_out, gb);
    for (int t = 1; t < nt; ++t)
      for (int64_t c = 0; c < g.c_out; ++c) gb[c] += gb_part[size_t(t * g.c_out + c)];
  }
}

}  // namespace

void conv2d_fwd(DType dtype, const void* x, const void* w, const void* b, void* y,
                const ConvGeometry& g) {
  // Forced oneDNN (EMBER_CPU_CONV_BACKEND=dnnl); deterministic mode pins BLAS (blas_pinned).
  if (use_dnnl_conv(dtype, g, blas_pinned()) && dnnl_conv2d_fwd(dtype, x, w, b, y, g)) return;
  switch (dtype) {
    case DType::f32:
      fwd(static_cast<const float*>(x), static_cast<const float*>(w),
          static_cast<const float*>(b), static_cast<float*>(y), g);
      break;
    case DType::f64:
      fwd(static_cast<const double*>(x), static_cast<const double*>(w),
          static_cast<const double*>(b), static_cast<double*>(y), g);
      break;
    default: EMBER_THROW("conv2d (cpu): expected f32 or f64, got ", dtype_name(dtype));
  }
}

void conv2d_bwd(DType dtype, const void* x, const void* w, const void* gy, void* gx, void* gw,
                void* gb, const ConvGeometry& g, bool deterministic) {
  if (use_dnnl_conv(dtype, g, deterministic) && dnnl_conv2d_bwd(dtype, x, w, gy, gx, gw, gb, g)) return;
  switch (dtype) {
    case DType::f32:
      bwd(static_cast<const float*>(x), static_cast<const float*>(w),
          static_cast<const float*>(gy), static_cast<float*>(gx), static_cast<float*>(gw),
          static_cast<float*>(gb), g, deterministic);
      break;
    case DType::f64:
      bwd(static_cast<const double*>(x), static_cast<const double*>(w),
          static_cast<const double*>(gy), static_cast<double*>(gx), static_cast<double*>(gw),
          static_cast<double*>(gb), g, deterministic);
      break;
    default: EMBER_THROW("conv2d backward (cpu): expected f32 or f64, got ", dtype_name(dtype));
  }
}

}  // namespace ember::cpu
