#pragma once
// Element types, their sizes and names, and type promotion.
#include <cstdint>
#include <ostream>
#include <string>

#include "core/half.h"

namespace ember {

enum class DType : uint8_t { f32, f64, f16, bf16, i32, i64, u8, b8 };
inline constexpr int kNumDTypes = 8;

constexpr int64_t dtype_size(DType t) {
  switch (t) {
    case DType::f64: case DType::i64: return 8;
    case DType::f32: case DType::i32: return 4;
    case DType::f16: case DType::bf16: return 2;
    case DType::u8: case DType::b8: return 1;
  }
  return 0;
}
constexpr bool is_floating(DType t) {
  return t == DType::f32 || t == DType::f64 || t == DType::f16 || t == DType::bf16;
}
constexpr bool is_integral(DType t) { return !is_floating(t); }
const char* dtype_name(DType t);  // "f32", "f64", ...
inline std::ostream& operator<<(std::ostream& os, DType t) { return os << dtype_name(t); }

/// The dtype both operands are converted to by a binary op (floating beats integer,
/// wider beats narrower; f16 with bf16 gives f32), as PyTorch promotes tensors.
DType promote_types(DType a, DType b);

template <class T> struct dtype_of;
template <> struct dtype_of<float> { static constexpr DType value = DType::f32; };
template <> struct dtype_of<double> { static constexpr DType value = DType::f64; };
template <> struct dtype_of<Half> { static constexpr DType value = DType::f16; };
template <> struct dtype_of<BFloat16> { static constexpr DType value = DType::bf16; };
template <> struct dtype_of<int32_t> { static constexpr DType value = DType::i32; };
template <> struct dtype_of<int64_t> { static constexpr DType value = DType::i64; };
template <> struct dtype_of<uint8_t> { static constexpr DType value = DType::u8; };
template <> struct dtype_of<bool> { static constexpr DType value = DType::b8; };

/// Accumulation type: f16/bf16/f32 accumulate in f32, f64 in f64, integers in i64.
template <class T> struct acc_type { using type = T; };
template <> struct acc_type<Half> { using type = float; };
template <> struct acc_type<BFloat16> { using type = float; };
template <> struct acc_type<int32_t> { using type = int64_t; };
template <> struct acc_type<uint8_t> { using type = int64_t; };
template <> struct acc_type<bool> { using type = int64_t; };
template <class T> using acc_t = typename acc_type<T>::type;

/// Compute type for elementwise math: 16-bit floats compute in float.
template <class T> struct compute_type { using type = T; };
template <> struct compute_type<Half> { using type = float; };
template <> struct compute_type<BFloat16> { using type = float; };
template <class T> using compute_t = typename compute_type<T>::type;

}  // namespace ember

// Dispatch on a runtime dtype: the body sees `scalar_t`. Usable in .cpp and .cu files.
#define EMBER_DTYPE_CASE(DT, T, ...) \
  case ::ember::DType::DT: {         \
    using scalar_t = T;              \
    __VA_ARGS__();                   \
    break;                           \
  }
#define EMBER_DISPATCH_ALL(dt, name, ...)                                              \
  switch (dt) {                                                                        \
    EMBER_DTYPE_CASE(f32, float, __VA_ARGS__)                                          \
    EMBER_DTYPE_CASE(f64, double, __VA_ARGS__)                                         \
    EMBER_DTYPE_CASE(f16, ::ember::Half, __VA_ARGS__)                                  \
    EMBER_DTYPE_CASE(bf16, ::ember::BFloat16, __VA_ARGS__)                             \
    EMBER_DTYPE_CASE(i32, int32_t, __VA_ARGS__)                                        \
    EMBER_DTYPE_CASE(i64, int64_t, __VA_ARGS__)                                        \
    EMBER_DTYPE_CASE(u8, uint8_t, __VA_ARGS__)                                         \
    EMBER_DTYPE_CASE(b8, bool, __VA_ARGS__)                                            \
    default: EMBER_THROW(name, ": unsupported dtype ", ::ember::dtype_name(dt));       \
  }
#define EMBER_DISPATCH_FLOAT(dt, name, ...)                                            \
  switch (dt) {                                                                        \
    EMBER_DTYPE_CASE(f32, float, __VA_ARGS__)                                          \
    EMBER_DTYPE_CASE(f64, double, __VA_ARGS__)                                         \
    EMBER_DTYPE_CASE(f16, ::ember::Half, __VA_ARGS__)                                  \
    EMBER_DTYPE_CASE(bf16, ::ember::BFloat16, __VA_ARGS__)                             \
    default: EMBER_THROW(name, ": expected a floating dtype (f32, f64, f16, bf16), got ", \
                         ::ember::dtype_name(dt));                                    \
  }
// Numeric dtypes (no bool): for arithmetic.
#define EMBER_DISPATCH_NUMERIC(dt, name, ...)                                          \
  switch (dt) {                                                                        \
    EMBER_DTYPE_CASE(f32, float, __VA_ARGS__)                                          \
    EMBER_DTYPE_CASE(f64, double, __VA_ARGS__)                                         \
    EMBER_DTYPE_CASE(f16, ::ember::Half, __VA_ARGS__)                                  \
    EMBER_DTYPE_CASE(bf16, ::ember::BFloat16, __VA_ARGS__)                             \
    EMBER_DTYPE_CASE(i32, int32_t, __VA_ARGS__)                                        \
    EMBER_DTYPE_CASE(i64, int64_t, __VA_ARGS__)                                        \
    EMBER_DTYPE_CASE(u8, uint8_t, __VA_ARGS__)                                         \
    default: EMBER_THROW(name, ": unsupported dtype ", ::ember::dtype_name(dt));       \
  }
