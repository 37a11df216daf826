#pragma once
// The per-element arithmetic of random fills, shared by the CPU loop and the CUDA kernel so
// both produce the same numbers.
#include <cmath>

#include "kernels/philox.h"
#include "kernels/random.h"

namespace ember {

// nvcc fuses `a + b * c` into one fma (one rounding) where the x86-64 build rounds twice;
// a product through __fmul_rn/__dmul_rn is never fused, so both devices round alike.
EMBER_HD float random_mul(float x, float y) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(x, y);
#else
  return x * y;
#endif
}
EMBER_HD double random_mul(double x, double y) {
#if defined(__CUDA_ARCH__)
  return __dmul_rn(x, y);
#else
  return x * y;
#endif
}

/// Value of element i (as double; the caller casts to the dtype) of a random fill.
/// `f64` selects 53-bit uniforms (f64 output) instead of 24-bit ones.
EMBER_HD double random_value(RandomKind kind, bool f64, int64_t i, uint64_t seed,
                             uint64_t offset, double a, double b) {
  if (kind == RandomKind::normal) {
    Philox4 r = philox4x32(seed, offset + uint64_t(i / 2));
    if (f64) {
      double u1 = 1.0 - philox_uniform_d(r.v[0], r.v[1]);  // (0, 1]
      double u2 = philox_uniform_d(r.v[2], r.v[3]);
      double rad = ::sqrt(-2.0 * ::log(u1));
      double z = (i % 2 == 0) ? rad * ::cos(6.283185307179586 * u2) : rad * ::sin(6.283185307179586 * u2);
      return a + b * z;
    }
    float u1 = 1.0f - philox_uniform_f(r.v[0]);
    float u2 = philox_uniform_f(r.v[1]);
    float rad = sqrtf(-2.0f * logf(u1));
    float z = (i % 2 == 0) ? rad * cosf(6.2831853f * u2) : rad * sinf(6.2831853f * u2);
    return double(float(a) + random_mul(float(b), z));
  }
  Philox4 r = philox4x32(seed, offset + uint64_t(i / 4));
  uint32_t x = r.v[i % 4];
  switch (kind) {
    case RandomKind::uniform: {
      if (f64) {
        Philox4 r2 = philox4x32(seed ^ 0x9E3779B97F4A7C15ull, offset + uint64_t(i / 4));
        return a + random_mul(b - a, philox_uniform_d(x, r2.v[i % 4]));
      }
      float u = philox_uniform_f(x);
      float v = float(a) + random_mul(float(b - a), u);
      return double(v < float(b) ? v : float(a));  // rounding must not reach b
    }
    case RandomKind::bernoulli:
      return (double(x) * 2.3283064365386963e-10 < a) ? 1.0 : 0.0;  // x / 2^32
    case RandomKind::randint: {
      uint64_t range = uint64_t(int64_t(b) - int64_t(a));
      Philox4 r2 = philox4x32(seed ^ 0x9E3779B97F4A7C15ull, offset + uint64_t(i / 4));
      uint64_t wide = (uint64_t(x) << 32) | r2.v[i % 4];
      return double(int64_t(a) + int64_t(wide % range));
    }
    default:
      return 0.0;
  }
}

}  // namespace ember
