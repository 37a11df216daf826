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

BatchNorm2d::BatchNorm2d(int64_t c, BatchNormOptions opt) : BatchNorm2d("BatchNorm2d", c, opt) {}

BatchNorm2d::BatchNorm2d(std::string type_name, int64_t c, BatchNormOptions opt)
    : Module(std::move(type_name)), num_features(c), options(opt) {
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
  if (use_batch_stats && sync && sync->world_size() > 1) return synchronized_forward(x, factor);
  return batch_norm(x, running_mean, running_var, weight, bias, use_batch_stats, factor,
                    options.eps);
}

// Note [SyncBatchNorm statistics]: each process sends its count n_r, mean m_r and centred
// sum of squares M2_r per channel (one collective: the rows of a (world, 2C + 1) tensor, each
// process filling its own row, summed over the group); the group's statistics are combined
// with Chan's parallel formula, n = sum n_r, mean = sum n_r m_r / n,
// M2 = sum (M2_r + n_r (m_r - mean)^2), which keeps f32 accurate where sum(x^2) - n mean^2
// would cancel. Everything is built from differentiable ops and CrossProcessSum, so backward
// sums the statistics' gradients over the group (PyTorch's sum_dy and sum_dy_xmu allreduce)
// without a hand-written kernel. Uneven per-process batches are fine (an empty one adds 0).
Tensor BatchNorm2d::synchronized_forward(const Tensor& x_in, double factor) {
  const int64_t C = num_features;
  const int world = sync->world_size(), rank = sync->rank();
  // 16-bit inputs keep their statistics in f32, as batch_norm does.
  DType stat_dtype = x_in.dtype() == DType::f64 ? DType::f64 : DType::f32;
  Tensor x = x_in.dtype() == stat_dtype ? x_in : x_in.to(stat_dtype);
  const int64_t n_local = x.size(0) * x.size(2) * x.size(3);
  Tensor m_local, m2_local;
  if (n_local > 0) {
    m_local = mean(x, {0, 2, 3});
    m2_local = sum(square(x - m_local.view({1, C, 1, 1})), {0, 2, 3});
  } else {
    m_local = zeros({C}, {.dtype = stat_dtype, .device = x.device()});
    m2_local = zeros({C}, {.dtype = stat_dtype, .device = x.device()});
  }
  Tensor count = full({1}, double(n_local), {.dtype = stat_dtype, .device = x.device()});
  Tensor row = cat({m_local, m2_local, count}).view({1, 2 * C + 1});
  TensorList rows;
  auto zero_rows = [&](int64_t k) { return zeros({k, 2 * C + 1}, {.dtype = stat_dtype, .device = x.device()}); };
  if (rank > 0) rows.push_back(zero_rows(rank));
  rows.push_back(row);
  if (rank < world - 1) rows.push_back(zero_rows(world - 1 - rank));
  Tensor all = sync->sum(cat(rows, 0));  // (world, 2C + 1): every process's row
  Tensor means = narrow(all, 1, 0, C), m2s = narrow(all, 1, C, C), counts = narrow(all, 1, 2 * C, 1).detach();
  const double n = sum(counts).item();
  EMBER_CHECK(n > 0, "SyncBatchNorm: the group's batch is empty");
  Tensor mu = sum(means * counts, {0}) / n;  // (C)
  Tensor m2 = sum(m2s + counts * square(means - mu.view({1, C})), {0});
  Tensor var = m2 / n;  // biased, for normalization
  if (options.track_running_stats) {
    NoGradGuard no_grad;
    EMBER_CHECK(n > 1, "SyncBatchNorm: expected more than 1 value per channel when training, got ", n);
    Tensor unbiased = m2.detach() / (n - 1);
    running_mean.copy_(running_mean * (1 - factor) + mu.detach().to(running_mean.dtype()) * factor);
    running_var.copy_(running_var * (1 - factor) + unbiased.to(running_var.dtype()) * factor);
  }
  Tensor scale = rsqrt(var + options.eps);
  Tensor shift = -mu * scale;
  if (weight.defined()) {
    scale = scale * weight.to(stat_dtype);
    shift = shift * weight.to(stat_dtype) + bias.to(stat_dtype);
  }
  Tensor y = x * scale.view({1, C, 1, 1}) + shift.view({1, C, 1, 1});
  return y.dtype() == x_in.dtype() ? y : y.to(x_in.dtype());
}

std::string BatchNorm2d::extra_repr() const {
  return std::to_string(num_features) + ", eps=" + num_str(options.eps) + ", momentum=" +
         (options.momentum ? num_str(*options.momentum) : std::string("None")) +
         ", affine=" + py_bool(options.affine) +
         ", track_running_stats=" + py_bool(options.track_running_stats);
}

}  // namespace ember::nn
