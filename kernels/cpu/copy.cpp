// CPU copy/cast between dtypes and fill.
#include "kernels/copy.h"

#include <cstring>

#include "kernels/cast.h"
#include "kernels/cpu/loops.h"
#include "tensor/error.h"

namespace ember::cpu {


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
