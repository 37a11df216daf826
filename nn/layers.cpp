// Parameter-free layers (ReLU, Dropout, Flatten) and Sequential.
#include <cmath>

#include "autograd/grad_mode.h"
#include "autograd/ops.h"
#include "nn/init.h"
#include "nn/layer_util.h"
#include "nn/layers.h"

namespace ember::nn {

using namespace detail;

// ---- activations, dropout, flatten

Tensor ReLU::forward(const Tensor& x) { return relu(x); }

Dropout::Dropout(double p_) : Module("Dropout"), p(p_) {
  EMBER_CHECK(p >= 0.0 && p <= 1.0, "Dropout: p must be in [0, 1], got ", p);
}

Tensor Dropout::forward(const Tensor& x) { return dropout(x, p, is_training()); }

std::string Dropout::extra_repr() const { return "p=" + num_str(p) + ", inplace=False"; }

Flatten::Flatten(int64_t s, int64_t e) : Module("Flatten"), start_dim(s), end_dim(e) {}

Tensor Flatten::forward(const Tensor& x) { return flatten(x, start_dim, end_dim); }

std::string Flatten::extra_repr() const {
  return "start_dim=" + std::to_string(start_dim) + ", end_dim=" + std::to_string(end_dim);
}

// ---- Sequential

Sequential::Sequential(std::initializer_list<ModulePtr> modules) : Module("Sequential") {
  for (const auto& m : modules) push_back(m);
}

Sequential::Sequential(const std::vector<ModulePtr>& modules) : Module("Sequential") {
  for (const auto& m : modules) push_back(m);
}

Sequential& Sequential::push_back(ModulePtr m) {
  add_child(std::to_string(modules_.size()), m);
  modules_.push_back(std::move(m));
  return *this;
}

Tensor Sequential::forward(const Tensor& x) {
  Tensor y = x;
  for (const auto& m : modules_) y = m->forward(y);
  return y;
}

const ModulePtr& Sequential::operator[](size_t i) const {
  EMBER_CHECK(i < modules_.size(), "Sequential: index ", i, " out of range for ",
              modules_.size(), " modules");
  return modules_[i];
}

}  // namespace ember::nn
