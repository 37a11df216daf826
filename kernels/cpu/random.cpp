// CPU random fills: the same per-element arithmetic as the CUDA kernel (random_math.h).
#include "kernels/cpu/loops.h"
#include "kernels/random_math.h"
#include "core/error.h"

namespace ember::cpu {

void random_fill(RandomKind kind, DType dtype, void* out, int64_t n, uint64_t seed,
                 uint64_t offset, double a, double b) {
  bool f64 = dtype == DType::f64;
  EMBER_DISPATCH_ALL(dtype, "random", [&] {
    scalar_t* o = static_cast<scalar_t*>(out);
    parallel_for(n, [&](int64_t bgn, int64_t end) {
      for (int64_t i = bgn; i < end; ++i) {
        double v = random_value(kind, f64, i, seed, offset, a, b);
        if constexpr (std::is_same_v<scalar_t, Half> || std::is_same_v<scalar_t, BFloat16>) {
          o[i] = scalar_t(float(v));
        } else {
          o[i] = static_cast<scalar_t>(v);
        }
      }
    }, 4096);
  });
}

}  // namespace ember::cpu
