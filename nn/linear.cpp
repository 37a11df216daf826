// nn::Linear: linear() with PyTorch's default initialization.
#include <cmath>

#include "autograd/grad_mode.h"
#include "autograd/ops.h"
#include "nn/init.h"
#include "nn/layer_util.h"
#include "nn/layers.h"

namespace ember::nn {

using namespace detail;

// ---- Linear

Linear::Linear(int64_t in, int64_t out, bool with_bias)
    : Module("Linear"), in_features(in), out_features(out) {
  EMBER_CHECK(in >= 0 && out >= 0, "Linear: feature counts must be >= 0, got in_features=", in,
              ", out_features=", out);
  weight = register_parameter("weight", empty({out, in}));
  if (with_bias) bias = register_parameter("bias", empty({out}));
  reset_parameters();
}

void Linear::reset_parameters() {
  init::kaiming_uniform_(weight, std::sqrt(5.0));
  init_bias(bias, weight);
}

Tensor Linear::forward(const Tensor& x) {
  EMBER_CHECK(x.dim() >= 1 && x.size(-1) == in_features, "Linear: expected input (..., ",
              in_features, "), got ", x.shape_str());
  return linear(x, weight, bias);
}

std::string Linear::extra_repr() const {
  return "in_features=" + std::to_string(in_features) + ", out_features=" +
         std::to_string(out_features) + ", bias=" + py_bool(bias.defined());
}

}  // namespace ember::nn
