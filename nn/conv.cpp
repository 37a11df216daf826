// nn::Conv2d: conv2d() with PyTorch's default initialization.
#include <cmath>

#include "autograd/grad_mode.h"
#include "autograd/ops.h"
#include "nn/init.h"
#include "nn/layer_util.h"
#include "nn/layers.h"

namespace ember::nn {

using namespace detail;

// ---- Conv2d

Conv2d::Conv2d(int64_t in, int64_t out, std::array<int64_t, 2> k, Conv2dOptions opt)
    : Module("Conv2d"), in_channels(in), out_channels(out), kernel_size(k), options(opt) {
  check_positive(in, "Conv2d", "in_channels");
  check_positive(out, "Conv2d", "out_channels");
  check_positive(k, "Conv2d", "kernel_size");
  check_positive(opt.stride, "Conv2d", "stride");
  check_positive(opt.dilation, "Conv2d", "dilation");
  EMBER_CHECK(opt.padding[0] >= 0 && opt.padding[1] >= 0, "Conv2d: padding must be >= 0, got ",
              pair_str(opt.padding));
  EMBER_CHECK(opt.groups > 0 && in % opt.groups == 0 && out % opt.groups == 0,
              "Conv2d: groups (", opt.groups, ") must divide in_channels (", in,
              ") and out_channels (", out, ")");
  weight = register_parameter("weight", empty({out, in / opt.groups, k[0], k[1]}));
  if (opt.bias) bias = register_parameter("bias", empty({out}));
  reset_parameters();
}

void Conv2d::reset_parameters() {
  init::kaiming_uniform_(weight, std::sqrt(5.0));
  init_bias(bias, weight);
}

Tensor Conv2d::forward(const Tensor& x) {
  EMBER_CHECK(x.dim() == 4 && x.size(1) == in_channels, "Conv2d: expected input (N, ",
              in_channels, ", H, W), got ", x.shape_str());
  return conv2d(x, weight, bias, options.stride, options.padding, options.dilation,
                options.groups);
}

std::string Conv2d::extra_repr() const {
  std::string s = std::to_string(in_channels) + ", " + std::to_string(out_channels) +
                  ", kernel_size=" + pair_str(kernel_size) + ", stride=" + pair_str(options.stride);
  if (options.padding != std::array<int64_t, 2>{0, 0}) s += ", padding=" + pair_str(options.padding);
  if (options.dilation != std::array<int64_t, 2>{1, 1}) s += ", dilation=" + pair_str(options.dilation);
  if (options.groups != 1) s += ", groups=" + std::to_string(options.groups);
  if (!bias.defined()) s += ", bias=False";
  return s;
}

}  // namespace ember::nn
