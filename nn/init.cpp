// torch.nn.init equivalents on ember's seeded generator.
#include "nn/init.h"

#include <cmath>

#include "autograd/grad_mode.h"
#include "autograd/ops.h"

namespace ember::nn::init {

std::pair<int64_t, int64_t> calculate_fan_in_and_fan_out(const Tensor& t) {
  EMBER_CHECK(t.defined() && t.dim() >= 2,
              "init: fan in and fan out need a tensor with at least 2 dims, got ",
              t.defined() ? t.shape_str() : std::string("an undefined tensor"));
  int64_t receptive = 1;
  for (int64_t d = 2; d < t.dim(); ++d) receptive *= t.size(d);
  return {t.size(1) * receptive, t.size(0) * receptive};
}

double calculate_gain(const std::string& nl, double param) {
  if (nl == "linear" || nl == "identity" || nl == "sigmoid" || nl == "conv1d" ||
      nl == "conv2d" || nl == "conv3d")
    return 1.0;
  if (nl == "tanh") return 5.0 / 3.0;
  if (nl == "relu") return std::sqrt(2.0);
  if (nl == "leaky_relu") return std::sqrt(2.0 / (1.0 + param * param));
  if (nl == "selu") return 0.75;
  EMBER_THROW("init: unknown nonlinearity '", nl,
              "'; expected linear, identity, conv1d, conv2d, conv3d, sigmoid, tanh, relu, "
              "leaky_relu or selu");
}

namespace {
void check_floating(const Tensor& t, const char* fn) {
  EMBER_CHECK(t.defined(), "init.", fn, ": the tensor is undefined");
  EMBER_CHECK(is_floating(t.dtype()), "init.", fn, ": needs a floating tensor, got ",
              dtype_name(t.dtype()));
}
int64_t fan_of(const Tensor& t, FanMode mode) {
  auto [fin, fout] = calculate_fan_in_and_fan_out(t);
  return mode == FanMode::fan_in ? fin : fout;
}
}  // namespace

Tensor& uniform_(Tensor& t, double low, double high) {
  check_floating(t, "uniform_");
  EMBER_CHECK(low <= high, "init.uniform_: low (", low, ") must not exceed high (", high, ")");
  NoGradGuard no_grad;
  if (t.numel() == 0) return t;
  if (low == high) {
    t.fill_(low);
  } else {
    t.copy_(uniform(t.shape(), low, high, {.dtype = t.dtype(), .device = t.device()}));
  }
  return t;
}

Tensor& normal_(Tensor& t, double mean, double std) {
  check_floating(t, "normal_");
  NoGradGuard no_grad;
  if (t.numel() == 0) return t;
  t.copy_(normal(t.shape(), mean, std, {.dtype = t.dtype(), .device = t.device()}));
  return t;
}

Tensor& constant_(Tensor& t, double value) {
  EMBER_CHECK(t.defined(), "init.constant_: the tensor is undefined");
  NoGradGuard no_grad;
  t.fill_(value);
  return t;
}
Tensor& zeros_(Tensor& t) { return constant_(t, 0.0); }
Tensor& ones_(Tensor& t) { return constant_(t, 1.0); }

Tensor& kaiming_uniform_(Tensor& t, double a, FanMode mode, const std::string& nonlinearity) {
  check_floating(t, "kaiming_uniform_");
  int64_t fan = fan_of(t, mode);
  if (fan == 0) return t;  // an empty tensor: nothing to draw (PyTorch warns and returns)
  double bound = calculate_gain(nonlinearity, a) * std::sqrt(3.0 / double(fan));
  return uniform_(t, -bound, bound);
}

Tensor& kaiming_normal_(Tensor& t, double a, FanMode mode, const std::string& nonlinearity) {
  check_floating(t, "kaiming_normal_");
  int64_t fan = fan_of(t, mode);
  if (fan == 0) return t;
  return normal_(t, 0.0, calculate_gain(nonlinearity, a) / std::sqrt(double(fan)));
}

Tensor& xavier_uniform_(Tensor& t, double gain) {
  check_floating(t, "xavier_uniform_");
  auto [fin, fout] = calculate_fan_in_and_fan_out(t);
  if (fin + fout == 0) return t;
  double bound = gain * std::sqrt(6.0 / double(fin + fout));
  return uniform_(t, -bound, bound);
}

Tensor& xavier_normal_(Tensor& t, double gain) {
  check_floating(t, "xavier_normal_");
  auto [fin, fout] = calculate_fan_in_and_fan_out(t);
  if (fin + fout == 0) return t;
  return normal_(t, 0.0, gain * std::sqrt(2.0 / double(fin + fout)));
}

}  // namespace ember::nn::init
