// CPU strided-batched GEMM through OpenBLAS (16-bit floats via f32 buffers).
#include <cblas.h>

#include <algorithm>
#include <climits>
#include <vector>

#include "kernels/cpu/loops.h"
#include "kernels/cpu/threads.h"
#include "kernels/matmul.h"
#include "core/error.h"
#include "core/thread_pool.h"

namespace ember::cpu {

namespace {

// Below this many multiply-adds per GEMM, OpenBLAS runs single-threaded anyway, so the
// batch loop itself is what should be spread over the cores.
constexpr int64_t kSmallGemm = int64_t(1) << 18;

// From this many multiply-adds a single GEMM is split over ember's OpenMP team, each thread
// running single-threaded BLAS on a block of C (Note [One thread pool] in threads.cpp).
constexpr int64_t kSplitGemm = int64_t(1) << 20;

template <class T>
void blas_gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, T alpha, const T* a,
               int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc) {
  auto opa = ta ? CblasTrans : CblasNoTrans;
  auto opb = tb ? CblasTrans : CblasNoTrans;
  if constexpr (std::is_same_v<T, float>) {
    cblas_sgemm(CblasRowMajor, opa, opb, blasint(m), blasint(n), blasint(k), alpha, a,
                blasint(lda), b, blasint(ldb), beta, c, blasint(ldc));
  } else {
    cblas_dgemm(CblasRowMajor, opa, opb, blasint(m), blasint(n), blasint(k), alpha, a,
                blasint(lda), b, blasint(ldb), beta, c, blasint(ldc));
  }
}

// C = beta * C for k == 0 (BLAS would want lda >= 1 for an empty operand).
template <class T>
void scale_c(T* c, int64_t m, int64_t n, int64_t ldc, double beta) {
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      T& v = c[i * ldc + j];
      v = beta == 0.0 ? T(0.0f) : T(float(double(float(v)) * beta));
    }
  }
}
template <>
void scale_c<double>(double* c, int64_t m, int64_t n, int64_t ldc, double beta) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) c[i * ldc + j] = beta == 0.0 ? 0.0 : c[i * ldc + j] * beta;
}

// Copies a (rows, cols) matrix with leading dimension ld into a dense float buffer.
template <class T>
void to_f32(const T* src, int64_t rows, int64_t cols, int64_t ld, float* dst) {
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) dst[i * cols + j] = float(src[i * ld + j]);
}

template <class T>
void one_gemm(const T* a, const T* b, T* c, const GemmParams& p) {
  if (p.k == 0) {
    scale_c(c, p.m, p.n, p.ldc, p.beta);
    return;
  }
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
    blas_gemm<T>(p.trans_a, p.trans_b, p.m, p.n, p.k, T(p.alpha), a, p.lda, b, p.ldb, T(p.beta),
                 c, p.ldc);
  } else {
    // 16-bit floats: no BLAS kernel, so widen the operands, multiply in f32, round once.
    int64_t ra = p.trans_a ? p.k : p.m, ca = p.trans_a ? p.m : p.k;
    int64_t rb = p.trans_b ? p.n : p.k, cb = p.trans_b ? p.k : p.n;
    std::vector<float> fa(size_t(ra * ca)), fb(size_t(rb * cb)), fc(size_t(p.m * p.n));
    to_f32(a, ra, ca, p.lda, fa.data());
    to_f32(b, rb, cb, p.ldb, fb.data());
    if (p.beta != 0.0) to_f32(c, p.m, p.n, p.ldc, fc.data());
    blas_gemm<float>(p.trans_a, p.trans_b, p.m, p.n, p.k, float(p.alpha), fa.data(), ca,
                     fb.data(), cb, float(p.beta), fc.data(), p.n);
    for (int64_t i = 0; i < p.m; ++i)
      for (int64_t j = 0; j < p.n; ++j) c[i * p.ldc + j] = T(fc[size_t(i * p.n + j)]);
  }
}

// One GEMM, its C split into blocks of rows or of columns (whichever dim is larger) over the
// worker threads when it is large, BLAS is on one thread and deterministic mode is off (then a
// GEMM always runs whole, so its rounding cannot depend on the thread count).
template <class T>
void split_gemm(const T* a, const T* b, T* c, const GemmParams& p) {
  const int nt = parallel_threads();
  if (nt < 2 || p.k == 0 || p.m * p.n * p.k < kSplitGemm || blas_pinned() ||
      openblas_get_num_threads() != 1) {
    one_gemm<T>(a, b, c, p);
    return;
  }
  const bool by_rows = p.m >= p.n;
  const int64_t dim = by_rows ? p.m : p.n, align = by_rows ? 4 : 16;
  const int64_t blocks = std::min<int64_t>(nt, std::max<int64_t>(1, dim / align));
  if (blocks < 2) {
    one_gemm<T>(a, b, c, p);
    return;
  }
  parallel_tasks(int(blocks), int(blocks), [&](int t) {
    const int64_t lo = dim * t / blocks / align * align;
    const int64_t hi = t + 1 == blocks ? dim : dim * (t + 1) / blocks / align * align;
    if (lo >= hi) return;
    GemmParams q = p;
    if (by_rows) {
      q.m = hi - lo;
      one_gemm<T>(a + (p.trans_a ? lo : lo * p.lda), b, c + lo * p.ldc, q);
    } else {
      q.n = hi - lo;
      one_gemm<T>(a, b + (p.trans_b ? lo * p.ldb : lo), c + lo, q);
    }
  });
}

}  // namespace

void gemm_strided_batched(DType dtype, const void* a, const void* b, void* c,
                          const GemmParams& p) {
  EMBER_CHECK(p.m >= 0 && p.n >= 0 && p.k >= 0 && p.batch >= 0, "gemm: negative size m=", p.m,
              " n=", p.n, " k=", p.k, " batch=", p.batch);
  EMBER_CHECK(p.m < INT_MAX && p.n < INT_MAX && p.k < INT_MAX && p.lda < INT_MAX &&
                  p.ldb < INT_MAX && p.ldc < INT_MAX,
              "gemm: dimensions above 2^31 are not supported by BLAS (m=", p.m, " n=", p.n,
              " k=", p.k, ")");
  if (p.m == 0 || p.n == 0 || p.batch == 0) return;
  if (p.k > 0) {
    EMBER_CHECK(p.lda >= std::max<int64_t>(1, p.trans_a ? p.m : p.k) &&
                    p.ldb >= std::max<int64_t>(1, p.trans_b ? p.k : p.n) &&
                    p.ldc >= std::max<int64_t>(1, p.n),
                "gemm: leading dimensions too small (lda=", p.lda, " ldb=", p.ldb, " ldc=", p.ldc,
                ") for m=", p.m, " n=", p.n, " k=", p.k);
  }
  EMBER_DISPATCH_FLOAT(dtype, "matmul", [&] {
    using T = scalar_t;
    const T* pa = static_cast<const T*>(a);
    const T* pb = static_cast<const T*>(b);
    T* pc = static_cast<T*>(c);
    auto entry = [&](int64_t i) {
      one_gemm<T>(pa + i * p.stride_a, pb + i * p.stride_b, pc + i * p.stride_c, p);
    };
    if (p.batch > 1 && p.m * p.n * std::max<int64_t>(p.k, 1) < kSmallGemm) {
      // Many small GEMMs: one per thread (grain 1 entry).
      parallel_for(p.batch, [&](int64_t b0, int64_t b1) {
        for (int64_t i = b0; i < b1; ++i) entry(i);
      }, 1);
    } else {
      for (int64_t i = 0; i < p.batch; ++i)
        split_gemm<T>(pa + i * p.stride_a, pb + i * p.stride_b, pc + i * p.stride_c, p);
    }
  });
}

}  // namespace ember::cpu
