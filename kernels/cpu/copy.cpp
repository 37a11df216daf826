// CPU copy/cast between dtypes and fill.
#include "kernels/copy.h"

#include <cstring>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "kernels/cast.h"
#include "kernels/cpu/loops.h"
#include "core/error.h"

namespace ember::cpu {

namespace {
// Contiguous f32 <-> f16 with the F16C instructions (8 values per instruction): autocast's
// casts of activations and weights (autograd/autocast.h) are most of what fp16 costs on the
// CPU, and Half's portable per-element conversion is several times slower. Same
// round-to-nearest-even as Half::from_float for every finite value and infinity (NaNs keep
// more of their payload).
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
// Every x86 CPU with AVX2 has F16C (Intel since Haswell, AMD since Piledriver); asking for
// AVX2 works with both gcc and clang ("f16c" is not a feature name clang's builtin knows).
bool has_f16c() {
  static const bool yes = __builtin_cpu_supports("avx2");
  return yes;
}
__attribute__((target("avx,f16c"))) void f32_to_f16(const float* s, uint16_t* d, int64_t b, int64_t e) {
  int64_t i = b;
  for (; i + 8 <= e; i += 8)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(d + i),
                     _mm256_cvtps_ph(_mm256_loadu_ps(s + i), _MM_FROUND_TO_NEAREST_INT));
  for (; i < e; ++i) d[i] = Half::from_float(s[i]);
}
__attribute__((target("avx,f16c"))) void f16_to_f32(const uint16_t* s, float* d, int64_t b, int64_t e) {
  int64_t i = b;
  for (; i + 8 <= e; i += 8)
    _mm256_storeu_ps(d + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i))));
  for (; i < e; ++i) d[i] = Half::to_float(s[i]);
}
bool fast_half_copy(DType sd, const void* src, DType dd, void* dst, int64_t n) {
  if (!has_f16c()) return false;
  if (sd == DType::f32 && dd == DType::f16) {
    parallel_for(n, [&](int64_t b, int64_t e) {
      f32_to_f16(static_cast<const float*>(src), static_cast<uint16_t*>(dst), b, e);
    }, int64_t(1) << 16);
    return true;
  }
  if (sd == DType::f16 && dd == DType::f32) {
    parallel_for(n, [&](int64_t b, int64_t e) {
      f16_to_f32(static_cast<const uint16_t*>(src), static_cast<float*>(dst), b, e);
    }, int64_t(1) << 16);
    return true;
  }
  return false;
}
#else
bool fast_half_copy(DType, const void*, DType, void*, int64_t) { return false; }
#endif
}  // namespace

void copy(DType src_dtype, const void* src, const StridedLayout& src_l, DType dst_dtype,
          void* dst, const StridedLayout& dst_l, int64_t n) {
  if (n == 0) return;
  bool both_contig = src_l.is_contiguous() && dst_l.is_contiguous();
  if (both_contig && src_dtype == dst_dtype) {
    int64_t es = dtype_size(src_dtype);
    parallel_for(n * es, [&](int64_t b, int64_t e) {
      std::memcpy(static_cast<char*>(dst) + b, static_cast<const char*>(src) + b, size_t(e - b));
    }, int64_t(1) << 20);
    return;
  }
  if (both_contig && fast_half_copy(src_dtype, src, dst_dtype, dst, n)) return;
  EMBER_DISPATCH_ALL(src_dtype, "copy", [&] {
    using S = scalar_t;
    EMBER_DISPATCH_ALL(dst_dtype, "copy", [&] {
      using D = scalar_t;
      const S* s = static_cast<const S*>(src);
      D* d = static_cast<D*>(dst);
      if (both_contig) {
        parallel_for(n, [&](int64_t b, int64_t e) {
          for (int64_t i = b; i < e; ++i) d[i] = cast_to<D>(s[i]);
        });
        return;
      }
      const StridedLayout* ls[2] = {&src_l, &dst_l};
      strided_rows<2>(n, ls, [&](const int64_t* offs, int64_t cnt, const int64_t* st) {
        const S* sp = s + offs[0];
        D* dp = d + offs[1];
        for (int64_t i = 0; i < cnt; ++i) dp[i * st[1]] = cast_to<D>(sp[i * st[0]]);
      });
    });
  });
}

void fill(DType dtype, void* dst, const StridedLayout& l, double value, int64_t n) {
  EMBER_DISPATCH_ALL(dtype, "fill", [&] {
    scalar_t v = cast_to<scalar_t>(value);
    scalar_t* d = static_cast<scalar_t*>(dst);
    if (l.is_contiguous()) {
      parallel_for(n, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) d[i] = v;
      });
      return;
    }
    const StridedLayout* ls[1] = {&l};
    strided_rows<1>(n, ls, [&](const int64_t* offs, int64_t cnt, const int64_t* st) {
      for (int64_t i = 0; i < cnt; ++i) d[offs[0] + i * st[0]] = v;
    });
  });
}

}  // namespace ember::cpu
