// dropout: a counter-based mask (same on CPU and CUDA for one seed), never stored: the
// backward replays the same (seed, offset) on the gradient.
#include "kernels/dropout.h"

#include "autograd/node.h"
#include "autograd/ops.h"
#include "tensor/dispatch.h"
#include "tensor/generator.h"
#include "tensor/layout.h"

namespace ember {

namespace {

// y = mask * scale * x over contiguous memory, the mask given by (seed, offset).
Tensor apply_mask(const Tensor& x_in, GeneratorState s, double p, double scale) {
  Tensor x = contiguous_raw(x_in);
  Tensor y = empty(x.shape(), {.dtype = x.dtype(), .device = x.device()});
  if (x.numel() == 0) return y;
  on_device(
      x.device(), "dropout",
      [&] { cpu::dropout(x.dtype(), x.data_ptr(), y.data_ptr(), x.numel(), s.seed, s.offset, p, scale); },
      EMBER_ON_CUDA(cuda::dropout(x.dtype(), x.data_ptr(), y.data_ptr(), x.numel(), s.seed, s.offset, p, scale,
                                  stream)));
  return y;
}

struct DropoutBackward : autograd::Node {
  GeneratorState state;
  double p = 0, scale = 1;
  DType dtype = DType::f32;
  TensorList apply(TensorList&& grads) override {
    if (!grads[0].defined()) return {Tensor()};
    Tensor g = grads[0].dtype() == dtype ? grads[0] : grads[0].to(dtype);
    return {apply_mask(g, state, p, scale)};
  }
  std::string name() const override { return "DropoutBackward"; }
};

}  // namespace

Tensor dropout(const Tensor& x, double p, bool train) {
  EMBER_CHECK(x.defined(), "dropout: undefined input");
  EMBER_CHECK(p >= 0.0 && p <= 1.0, "dropout: probability must be in [0, 1], got ", p);
  EMBER_CHECK(is_floating(x.dtype()), "dropout: expected a floating dtype, got ", x.dtype());
  check_device_available(x.device(), "dropout");
  if (!train || p == 0.0) return x;  // identity, as PyTorch in eval mode
  GeneratorState s = default_generator().reserve(dropout_counters(x.numel()));
  double scale = p < 1.0 ? 1.0 / (1.0 - p) : 0.0;  // p = 1 drops everything
  Tensor y = apply_mask(x, s, p, scale);
  if (auto node = autograd::make_node<DropoutBackward>({x})) {
    node->state = s;
    node->p = p;
    node->scale = scale;
    node->dtype = x.dtype();
    autograd::set_history(y, node);
  }
  return y;
}

}  // namespace ember
