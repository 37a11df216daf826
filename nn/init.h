#pragma once
// Parameter initializations as torch.nn.init, drawing from ember's default generator
// (seed it with ember::manual_seed). Each fills `t` in place, outside autograd, and returns it.
#include <string>
#include <utility>

#include "tensor/tensor.h"

namespace ember::nn::init {

enum class FanMode { fan_in, fan_out };

/// (fan_in, fan_out) of a weight: dim 1 and dim 0 times the receptive field (the product of
/// the dims after the first two), as torch.nn.init._calculate_fan_in_and_fan_out. Needs
/// at least 2 dims.
std::pair<int64_t, int64_t> calculate_fan_in_and_fan_out(const Tensor& t);
/// The recommended gain of a nonlinearity: "linear", "conv2d", "sigmoid" -> 1,
/// "tanh" -> 5/3, "relu" -> sqrt(2), "leaky_relu" -> sqrt(2 / (1 + param^2)),
/// "selu" -> 3/4. Throws for other names.
double calculate_gain(const std::string& nonlinearity, double param = 0.01);

Tensor& uniform_(Tensor& t, double low = 0.0, double high = 1.0);
Tensor& normal_(Tensor& t, double mean = 0.0, double std = 1.0);
Tensor& constant_(Tensor& t, double value);
Tensor& zeros_(Tensor& t);
Tensor& ones_(Tensor& t);
/// U(-b, b) with b = gain * sqrt(3 / fan); PyTorch's layer default is a = sqrt(5),
/// fan_in, leaky_relu, which gives b = 1 / sqrt(fan_in).
Tensor& kaiming_uniform_(Tensor& t, double a = 0.0, FanMode mode = FanMode::fan_in,
                         const std::string& nonlinearity = "leaky_relu");
/// N(0, std^2) with std = gain / sqrt(fan).
Tensor& kaiming_normal_(Tensor& t, double a = 0.0, FanMode mode = FanMode::fan_in,
                        const std::string& nonlinearity = "leaky_relu");
/// U(-b, b) with b = gain * sqrt(6 / (fan_in + fan_out)).
Tensor& xavier_uniform_(Tensor& t, double gain = 1.0);
/// N(0, std^2) with std = gain * sqrt(2 / (fan_in + fan_out)).
Tensor& xavier_normal_(Tensor& t, double gain = 1.0);

}  // namespace ember::nn::init
