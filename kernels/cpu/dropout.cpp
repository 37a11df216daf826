// CPU dropout: the shared keep rule (kernels/dropout.h) applied elementwise.
#include <algorithm>

#include "kernels/cpu/loops.h"
#include "kernels/dropout.h"
#include "core/error.h"

namespace ember::cpu {

void dropout(DType dtype, const void* x, void* y, int64_t n, uint64_t seed, uint64_t offset,
             double p, double scale) {
  EMBER_DISPATCH_FLOAT(dtype, "dropout", [&] {
    using T = scalar_t;
    using C = compute_t<T>;
    const T* xp = static_cast<const T*>(x);
    T* yp = static_cast<T*>(y);
    const C s = C(scale);
    // Groups of 4 elements share one Philox call.
    parallel_for(ceil_div(n, 4), [&](int64_t b, int64_t e) {
      for (int64_t q = b; q < e; ++q) {
        unsigned keep = dropout_keep4(q, seed, offset, p);
        for (int64_t i = q * 4, j = 0; i < std::min(n, q * 4 + 4); ++i, ++j)
          yp[i] = (keep >> j) & 1u ? T(C(xp[i]) * s) : T(C(0));
      }
    }, 1024);
  });
}

}  // namespace ember::cpu
