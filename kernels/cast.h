#pragma once
// The element conversion every copy/cast uses, on CPU and CUDA alike, so both give the
// same bits: 16-bit floats go through float, bool is "not zero".
#include <type_traits>

#include "core/half.h"

namespace ember {

template <class D, class S>
EMBER_HD D cast_to(S v) {
  if constexpr (std::is_same_v<D, bool>) {
    return static_cast<float>(v) != 0.0f;
  } else if constexpr (std::is_same_v<S, Half> || std::is_same_v<S, BFloat16>) {
    return static_cast<D>(static_cast<float>(v));
  } else if constexpr (std::is_same_v<D, Half> || std::is_same_v<D, BFloat16>) {
    return D(static_cast<float>(v));
  } else {
    return static_cast<D>(v);
  }
}

}  // namespace ember
