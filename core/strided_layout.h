#pragma once
// Shared kernel plumbing: host/device macro, strided layouts, ceil_div.
#include <cstdint>

#include "core/half.h"

namespace ember {

inline constexpr int kMaxDims = 10;

/// Sizes and element strides of one operand, after dims were coalesced on the host.
struct StridedLayout {
  int ndim = 0;
  int64_t sizes[kMaxDims] = {};
  int64_t strides[kMaxDims] = {};

  /// Element offset of the `linear`-th element in row-major order.
  EMBER_HD int64_t offset_of(int64_t linear) const {
    int64_t off = 0;
    for (int d = ndim - 1; d >= 0; --d) {
      int64_t s = sizes[d];
      int64_t i = linear % s;
      linear /= s;
      off += i * strides[d];
    }
    return off;
  }
  /// offset_of with 32-bit division, for `linear` and every size below 2^32 (the caller
  /// checks n): 64-bit div/mod costs several times as many instructions on a GPU.
  EMBER_HD int64_t offset_of32(uint32_t linear) const {
    int64_t off = 0;
    for (int d = ndim - 1; d >= 0; --d) {
      uint32_t s = uint32_t(sizes[d]);
      uint32_t i = linear % s;
      linear /= s;
      off += int64_t(i) * strides[d];
    }
    return off;
  }
  /// offset_of or offset_of32, picked at compile time (SMALL: n < 2^31 was checked).
  template <bool SMALL>
  EMBER_HD int64_t offset(int64_t linear) const {
    if constexpr (SMALL) {
      return offset_of32(uint32_t(linear));
    } else {
      return offset_of(linear);
    }
  }
  EMBER_HD bool is_contiguous() const {
    int64_t expect = 1;
    for (int d = ndim - 1; d >= 0; --d) {
      if (sizes[d] != 1 && strides[d] != expect) return false;
      expect *= sizes[d];
    }
    return true;
  }
};

constexpr int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace ember
