// Pooling layers over max_pool2d, avg_pool2d and adaptive_avg_pool2d.
#include <cmath>

#include "autograd/grad_mode.h"
#include "autograd/ops.h"
#include "nn/init.h"
#include "nn/layer_util.h"
#include "nn/layers.h"

namespace ember::nn {

using namespace detail;

// ---- pooling

MaxPool2d::MaxPool2d(std::array<int64_t, 2> k, std::optional<std::array<int64_t, 2>> s,
                     std::array<int64_t, 2> p)
    : Module("MaxPool2d"), kernel_size(k), stride(s.value_or(k)), padding(p) {
  check_positive(kernel_size, "MaxPool2d", "kernel_size");
  check_positive(stride, "MaxPool2d", "stride");
}

Tensor MaxPool2d::forward(const Tensor& x) { return max_pool2d(x, kernel_size, stride, padding); }

std::string MaxPool2d::extra_repr() const {
  return "kernel_size=" + size_str(kernel_size) + ", stride=" + size_str(stride) +
         ", padding=" + size_str(padding) + ", dilation=1, ceil_mode=False";
}

AvgPool2d::AvgPool2d(std::array<int64_t, 2> k, std::optional<std::array<int64_t, 2>> s,
                     std::array<int64_t, 2> p)
    : Module("AvgPool2d"), kernel_size(k), stride(s.value_or(k)), padding(p) {
  check_positive(kernel_size, "AvgPool2d", "kernel_size");
  check_positive(stride, "AvgPool2d", "stride");
}

Tensor AvgPool2d::forward(const Tensor& x) { return avg_pool2d(x, kernel_size, stride, padding); }

std::string AvgPool2d::extra_repr() const {
  return "kernel_size=" + size_str(kernel_size) + ", stride=" + size_str(stride) +
         ", padding=" + size_str(padding);
}

AdaptiveAvgPool2d::AdaptiveAvgPool2d(std::array<int64_t, 2> out)
    : Module("AdaptiveAvgPool2d"), output_size(out) {
  check_positive(out, "AdaptiveAvgPool2d", "output_size");
}

Tensor AdaptiveAvgPool2d::forward(const Tensor& x) { return adaptive_avg_pool2d(x, output_size); }

std::string AdaptiveAvgPool2d::extra_repr() const { return "output_size=" + pair_str(output_size); }

}  // namespace ember::nn
