#pragma once
// Helpers shared by the layer files (not part of the public API): PyTorch-style printing,
// argument checks and the Linear/Conv bias initialization.
#include <array>
#include <cmath>
#include <sstream>
#include <string>

#include "nn/init.h"
#include "tensor/tensor.h"

namespace ember::nn::detail {

inline std::string pair_str(const std::array<int64_t, 2>& a) {
  std::ostringstream os;
  os << "(" << a[0] << ", " << a[1] << ")";
  return os.str();
}
// PyTorch prints a pooling size given as one int as that int.
inline std::string size_str(const std::array<int64_t, 2>& a) {
  return a[0] == a[1] ? std::to_string(a[0]) : pair_str(a);
}
inline const char* py_bool(bool b) { return b ? "True" : "False"; }
inline std::string num_str(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}
inline void check_positive(int64_t v, const char* layer, const char* what) {
  EMBER_CHECK(v > 0, layer, ": ", what, " must be positive, got ", v);
}
inline void check_positive(const std::array<int64_t, 2>& v, const char* layer, const char* what) {
  EMBER_CHECK(v[0] > 0 && v[1] > 0, layer, ": ", what, " must be positive, got ", pair_str(v));
}
// U(-1/sqrt(fan_in), 1/sqrt(fan_in)): PyTorch's bias rule for Linear and Conv.
inline void init_bias(Tensor& bias, const Tensor& weight) {
  if (!bias.defined()) return;
  auto [fan_in, fan_out] = init::calculate_fan_in_and_fan_out(weight);
  double bound = fan_in > 0 ? 1.0 / std::sqrt(double(fan_in)) : 0.0;
  init::uniform_(bias, -bound, bound);
}
}  // namespace ember::nn::detail
