// nn::BatchNorm2d: PyTorch's parameters, running statistics and momentum rules.
#include <cmath>

#include "autograd/grad_mode.h"
#include "autograd/ops.h"
#include "nn/init.h"
#include "nn/layer_util.h"
#include "nn/layers.h"

namespace ember::nn {

using namespace detail;

// ---- BatchNorm2d

BatchNorm2d::BatchNorm2d(int64_t c, BatchNormOptions opt)
    : Module("BatchNorm2d"), num_features(c), options(opt) {
  check_positive(c, "BatchNorm2d", "num_features");
  EMBER_CHECK(opt.eps > 0, "BatchNorm2d: eps must be positive, got ", opt.eps);
  if (opt.affine) {
    weight = register_parameter("weight", empty({c}));
    bias = register_parameter("bias", empty({c}));
  }
  if (opt.track_running_stats) {
    running_mean = register_buffer("running_mean", zeros({c}));
    running_var = register_buffer("running_var", ones({c}));
    num_batches_tracked = register_buffer("num_batches_tracked", zeros({}, {.dtype = DType::i64}));
  }
  reset_parameters();
}

void BatchNorm2d::reset_running_stats() {
  if (!options.track_running_stats) return;
  NoGradGuard no_grad;
  running_mean.zero_();
  running_var.fill_(1.0);
  num_batches_tracked.zero_();
}

void BatchNorm2d::reset_parameters() {
  reset_running_stats();
  if (options.affine) {
    init::ones_(weight);
    init::zeros_(bias);
  }
}

Tensor BatchNorm2d::forward(const Tensor& x) {
  EMBER_CHECK(x.dim() == 4 && x.size(1) == num_features, "BatchNorm2d: expected input (N, ",
              num_features, ", H, W), got ", x.shape_str());
  double factor = options.momentum.value_or(0.0);
  if (is_training() && options.track_running_stats) {
    NoGradGuard no_grad;
    num_batches_tracked.add_(1.0);
    // Cumulative moving average: the n-th batch gets weight 1/n (reads the counter).
    if (!options.momentum) factor = 1.0 / num_batches_tracked.item<double>();
  }
  // Without running statistics, eval mode also normalizes with the batch's own.
  bool use_batch_stats = is_training() || !options.track_running_stats;
  return batch_norm(x, running_mean, running_var, weight, bias, use_batch_stats, factor,
                    options.eps);
}

std::string BatchNorm2d::extra_repr() const {
  return std::to_string(num_features) + ", eps=" + num_str(options.eps) + ", momentum=" +
         (options.momentum ? num_str(*options.momentum) : std::string("None")) +
         ", affine=" + py_bool(options.affine) +
         ", track_running_stats=" + py_bool(options.track_running_stats);
}

}  // namespace ember::nn
