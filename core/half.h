#pragma once
// 16-bit float storage types (IEEE half and bfloat16), usable on host and device.
// Bit-compatible with CUDA's __half / __nv_bfloat16; arithmetic goes through float.
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define EMBER_HD __host__ __device__ __forceinline__
#else
#define EMBER_HD inline
#endif

namespace ember {

namespace detail {
EMBER_HD uint32_t f32_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
#endif
}
EMBER_HD float bits_f32(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, 4);
  return f;
#endif
}
}  // namespace detail

struct alignas(2) Half {
  uint16_t bits = 0;
  Half() = default;
  EMBER_HD Half(float f) : bits(from_float(f)) {}
  EMBER_HD operator float() const { return to_float(bits); }

  // Round-to-nearest-even float -> half, with overflow to inf and subnormals.
  static EMBER_HD uint16_t from_float(float f) {
    uint32_t x = detail::f32_bits(f);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) return uint16_t(sign | (ax > 0x7f800000u ? 0x7e00u : 0x7c00u));
    if (ax >= 0x477ff000u) return uint16_t(sign | 0x7c00u);  // rounds to >= 65520: inf
    if (ax < 0x38800000u) {                                  // below 2^-14: subnormal or zero
      if (ax < 0x33000000u) return uint16_t(sign);          // below 2^-25 rounds to 0
      uint32_t e = ax >> 23;
      uint32_t m = (ax & 0x7fffffu) | 0x800000u;
      uint32_t shift = 126 - e;  // 14 + (127 - e) - 1 ... m >> (shift) gives 10-bit mantissa
      uint32_t r = m >> shift;
      uint32_t rem = m & ((1u << shift) - 1);
      uint32_t half = 1u << (shift - 1);
      if (rem > half || (rem == half && (r & 1))) ++r;
      return uint16_t(sign | r);
    }
    uint32_t r = ((ax - 0x38000000u) >> 13);
    uint32_t rem = ax & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (r & 1))) ++r;
    return uint16_t(sign | r);
  }
  static EMBER_HD float to_float(uint16_t h) {
    uint32_t sign = uint32_t(h & 0x8000u) << 16;
    uint32_t e = (h >> 10) & 0x1f, m = h & 0x3ffu;
    if (e == 0x1f) return detail::bits_f32(sign | 0x7f800000u | (m << 13));
    if (e == 0) {
      if (m == 0) return detail::bits_f32(sign);
      float v = float(m) * (1.0f / 16777216.0f);  // m * 2^-24
      return sign ? -v : v;
    }
    return detail::bits_f32(sign | ((e + 112) << 23) | (m << 13));
  }
};

struct alignas(2) BFloat16 {
  uint16_t bits = 0;
  BFloat16() = default;
  EMBER_HD BFloat16(float f) : bits(from_float(f)) {}
  EMBER_HD operator float() const { return detail::bits_f32(uint32_t(bits) << 16); }
  static EMBER_HD uint16_t from_float(float f) {
    uint32_t x = detail::f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return uint16_t((x >> 16) | 0x40);  // quiet NaN
    uint32_t lsb = (x >> 16) & 1u;
    return uint16_t((x + 0x7fffu + lsb) >> 16);  // round to nearest even
  }
};

}  // namespace ember
