#pragma once
// Shared kernel plumbing: host/device macro, strided layouts, ceil_div.
#include <cstdint>

#include "tensor/half.h"

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
