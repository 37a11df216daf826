#pragma once
// Layers with PyTorch's parameter names, shapes and default initializations:
// Linear, Conv2d, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, ReLU, Dropout, Flatten,
// BatchNorm2d, Identity and Sequential.
#include <array>
#include <initializer_list>
#include <optional>

#include "nn/module.h"

namespace ember::nn {

/// y = x W^T + b. weight (out, in), bias (out); both U(-1/sqrt(in), 1/sqrt(in)) as PyTorch
/// (kaiming_uniform with a = sqrt(5) for the weight).
class Linear : public Module {
 public:
  Linear(int64_t in_features, int64_t out_features, bool bias = true);
  Tensor forward(const Tensor& x) override;  // (..., in) -> (..., out)
  std::string extra_repr() const override;
  /// Re-draws weight and bias with the default initialization.
  void reset_parameters();

  int64_t in_features, out_features;
  Tensor weight;  // (out, in)
  Tensor bias;    // (out) or undefined
};

struct Conv2dOptions {
  std::array<int64_t, 2> stride{1, 1};
  std::array<int64_t, 2> padding{0, 0};
  std::array<int64_t, 2> dilation{1, 1};
  int64_t groups = 1;
  bool bias = true;
};

/// 2-D convolution over NCHW. weight (out, in / groups, kH, kW), bias (out), initialized
/// as PyTorch: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in = in / groups * kH * kW.
/// `Conv2d(1, 6, 5, {.padding = {2, 2}})`.
class Conv2d : public Module {
 public:
  Conv2d(int64_t in_channels, int64_t out_channels, std::array<int64_t, 2> kernel_size,
         Conv2dOptions opt = {});
  Conv2d(int64_t in_channels, int64_t out_channels, int64_t kernel_size, Conv2dOptions opt = {})
      : Conv2d(in_channels, out_channels, {kernel_size, kernel_size}, opt) {}
  Tensor forward(const Tensor& x) override;  // (N, C_in, H, W) -> (N, C_out, H', W')
  std::string extra_repr() const override;
  void reset_parameters();

  int64_t in_channels, out_channels;
  std::array<int64_t, 2> kernel_size;
  Conv2dOptions options;
  Tensor weight;  // (out, in / groups, kH, kW)
  Tensor bias;    // (out) or undefined
};

/// Max pooling; the stride defaults to the kernel size.
class MaxPool2d : public Module {
 public:
  explicit MaxPool2d(std::array<int64_t, 2> kernel_size,
                     std::optional<std::array<int64_t, 2>> stride = std::nullopt,
                     std::array<int64_t, 2> padding = {0, 0});
  explicit MaxPool2d(int64_t kernel_size) : MaxPool2d({kernel_size, kernel_size}) {}
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;

  std::array<int64_t, 2> kernel_size, stride, padding;
};

/// Average pooling (count_include_pad as PyTorch's default); stride defaults to the kernel.
class AvgPool2d : public Module {
 public:
  explicit AvgPool2d(std::array<int64_t, 2> kernel_size,
                     std::optional<std::array<int64_t, 2>> stride = std::nullopt,
                     std::array<int64_t, 2> padding = {0, 0});
  explicit AvgPool2d(int64_t kernel_size) : AvgPool2d({kernel_size, kernel_size}) {}
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;

  std::array<int64_t, 2> kernel_size, stride, padding;
};

class AdaptiveAvgPool2d : public Module {
 public:
  explicit AdaptiveAvgPool2d(std::array<int64_t, 2> output_size);
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;

  std::array<int64_t, 2> output_size;
};

class ReLU : public Module {
 public:
  ReLU() : Module("ReLU") {}
  Tensor forward(const Tensor& x) override;
};

class Identity : public Module {
 public:
  Identity() : Module("Identity") {}
  Tensor forward(const Tensor& x) override { return x; }
};

/// Zeroes elements with probability p and scales the rest by 1 / (1 - p) in training mode;
/// the identity in eval mode. Draws from ember's default generator.
class Dropout : public Module {
 public:
  explicit Dropout(double p = 0.5);
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;

  double p;
};

/// Flattens dims start_dim..end_dim (by default all but the batch dim).
class Flatten : public Module {
 public:
  explicit Flatten(int64_t start_dim = 1, int64_t end_dim = -1);
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;

  int64_t start_dim, end_dim;
};

struct BatchNormOptions {
  double eps = 1e-5;
  /// Running-statistics momentum; nullopt = cumulative moving average (1 / batches seen).
  std::optional<double> momentum = 0.1;
  bool affine = true;
  bool track_running_stats = true;
};

/// A sum over the processes of a data-parallel group, differentiable (the gradient of each
/// process's input is the sum of the output gradients over the group). What turns a
/// BatchNorm2d into a synchronized one; dist::SyncBatchNorm2d supplies it (nn sits below dist).
struct CrossProcessSum {
  virtual ~CrossProcessSum() = default;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  /// Every process calls it with a tensor of the same shape and dtype, at the same point.
  virtual Tensor sum(const Tensor& t) = 0;
};

/// Batch norm over (N, C, H, W) with PyTorch's state: weight (C) = 1, bias (C) = 0,
/// running_mean (C) = 0, running_var (C) = 1, num_batches_tracked (i64, 0-d) = 0.
/// Training mode normalizes with batch statistics and updates the running ones; eval mode
/// uses the running statistics (when tracked).
class BatchNorm2d : public Module {
 public:
  explicit BatchNorm2d(int64_t num_features, BatchNormOptions opt = {});
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;
  void reset_running_stats();
  void reset_parameters();

  int64_t num_features;
  BatchNormOptions options;
  Tensor weight, bias;                                   // (C) or undefined without affine
  Tensor running_mean, running_var, num_batches_tracked;  // undefined without tracking
  /// When set and its group has more than one process, training-mode statistics (count,
  /// mean, variance) are those of the whole group's batch (SyncBatchNorm; see
  /// dist/sync_batch_norm.h). Unset, or a group of one: plain BatchNorm2d.
  std::shared_ptr<CrossProcessSum> sync;

 protected:
  BatchNorm2d(std::string type_name, int64_t num_features, BatchNormOptions opt);

 private:
  Tensor synchronized_forward(const Tensor& x, double factor);
};

/// Runs its children in order; they are named "0", "1", ... as in PyTorch.
class Sequential : public Module {
 public:
  Sequential() : Module("Sequential") {}
  Sequential(std::initializer_list<ModulePtr> modules);
  explicit Sequential(const std::vector<ModulePtr>& modules);
  /// Appends a module named by its position.
  Sequential& push_back(ModulePtr m);
  Tensor forward(const Tensor& x) override;
  size_t size() const { return modules_.size(); }
  const ModulePtr& operator[](size_t i) const;

 private:
  std::vector<ModulePtr> modules_;
};

}  // namespace ember::nn
