// CPU gather-by-index and scatter-add (Note [Index layouts] in kernels/index.h).
#include "kernels/index.h"

#include <atomic>

#include "kernels/cpu/loops.h"
#include "core/error.h"

namespace ember::cpu {

namespace {

// Serial twin of strided_rows: scatter-add must not race on repeated indices.
template <int NL, class F>
void strided_rows_serial(int64_t n, const StridedLayout* const (&ls)[NL], F&& f) {
  const StridedLayout& l0 = *ls[0];
  if (l0.ndim == 0) {
    int64_t offs[NL] = {}, st[NL] = {};
    if (n > 0) f(offs, int64_t(1), st);
    return;
  }
  int64_t inner = l0.sizes[l0.ndim - 1];
  if (inner == 0) return;
  int64_t st[NL];
  for (int k = 0; k < NL; ++k) st[k] = ls[k]->strides[ls[k]->ndim - 1];
  for (int64_t r = 0; r < n / inner; ++r) {
    int64_t offs[NL];
    for (int k = 0; k < NL; ++k) offs[k] = ls[k]->offset_of(r * inner);
    f(offs, inner, st);
  }
}
}  // namespace

void gather(DType dtype, const void* src, const StridedLayout& src_l, int64_t dim_stride,
            DType index_dtype, const void* index, const StridedLayout& idx_l, void* out,
            const StridedLayout& out_l, int64_t n) {
  if (n == 0) return;
  dispatch_index(index_dtype, [&](auto* tag) {
    using I = std::remove_cv_t<std::remove_pointer_t<decltype(tag)>>;
    const I* ix = static_cast<const I*>(index);
    EMBER_DISPATCH_ALL(dtype, "gather", [&] {
      const scalar_t* s = static_cast<const scalar_t*>(src);
      scalar_t* o = static_cast<scalar_t*>(out);
      const StridedLayout* ls[3] = {&src_l, &idx_l, &out_l};
      strided_rows<3>(n, ls, [&](const int64_t* offs, int64_t cnt, const int64_t* st) {
        const scalar_t* sp = s + offs[0];
        const I* ip = ix + offs[1];
        scalar_t* op = o + offs[2];
        for (int64_t k = 0; k < cnt; ++k)
          op[k * st[2]] = sp[k * st[0] + int64_t(ip[k * st[1]]) * dim_stride];
      });
    });
  });
}

void scatter_add(DType dtype, void* dst, const StridedLayout& dst_l, int64_t dim_stride,
                 DType index_dtype, const void* index, const StridedLayout& idx_l,
                 const void* src, const StridedLayout& src_l, int64_t n) {
  if (n == 0) return;
  dispatch_index(index_dtype, [&](auto* tag) {
    using I = std::remove_cv_t<std::remove_pointer_t<decltype(tag)>>;
    const I* ix = static_cast<const I*>(index);
    EMBER_DISPATCH_FLOAT(dtype, "scatter_add", [&] {
      using C = compute_t<scalar_t>;
      scalar_t* d = static_cast<scalar_t*>(dst);
      const scalar_t* s = static_cast<const scalar_t*>(src);
      const StridedLayout* ls[3] = {&dst_l, &idx_l, &src_l};
      strided_rows_serial<3>(n, ls, [&](const int64_t* offs, int64_t cnt, const int64_t* st) {
        scalar_t* dp = d + offs[0];
        const I* ip = ix + offs[1];
        const scalar_t* sp = s + offs[2];
        for (int64_t k = 0; k < cnt; ++k) {
          scalar_t& slot = dp[k * st[0] + int64_t(ip[k * st[1]]) * dim_stride];
          slot = scalar_t(C(slot) + C(sp[k * st[2]]));
        }
      });
    });
  });
}

int64_t find_bad_index(DType index_dtype, const void* index, const StridedLayout& idx_l,
                       int64_t n, int64_t limit, int64_t* bad_value) {
  if (n == 0) return -1;
  std::atomic<int64_t> first{n};
  dispatch_index(index_dtype, [&](auto* tag) {
    using I = std::remove_cv_t<std::remove_pointer_t<decltype(tag)>>;
    const I* ix = static_cast<const I*>(index);
    // Each chunk stops at its first bad index; the smallest position wins, so the error
    // names the same element however the range was split.
    parallel_for(n, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        int64_t v = int64_t(ix[idx_l.offset_of(i)]);
        if (v < 0 || v >= limit) {
          int64_t cur = first.load();
          while (i < cur && !first.compare_exchange_weak(cur, i)) {
          }
          break;
        }
      }
    });
    int64_t pos = first.load();
    if (pos < n) *bad_value = int64_t(ix[idx_l.offset_of(pos)]);
  });
  int64_t pos = first.load();
  return pos < n ? pos : -1;
}

}  // namespace ember::cpu
