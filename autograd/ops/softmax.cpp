// softmax and log_softmax along a dim, with their backward nodes.
#include "autograd/autocast.h"
#include "autograd/node.h"
#include "autograd/ops.h"
#include "tensor/dispatch.h"
#include "kernels/softmax.h"
#include "tensor/layout.h"

namespace ember {

namespace {

// (outer, C, inner) of a contiguous tensor around `dim` (a 0-d tensor is one row of 1).
void split_dims(const Tensor& x, int64_t dim, int64_t* outer, int64_t* C, int64_t* inner) {
  *outer = *C = *inner = 1;
  for (int64_t d = 0; d < x.dim(); ++d) {
    if (d < dim) *outer *= x.size(d);
    else if (d == dim) *C = x.size(d);
    else *inner *= x.size(d);
  }
}

Tensor softmax_forward(const Tensor& x_in, int64_t dim, bool log) {
  Tensor x = contiguous_raw(x_in);
  int64_t outer, C, inner;
  split_dims(x, dim, &outer, &C, &inner);
  Tensor y = empty(x.shape(), {.dtype = x.dtype(), .device = x.device()});
  on_device(
      x.device(), log ? "log_softmax" : "softmax",
      [&] { cpu::softmax_fwd(x.dtype(), x.data_ptr(), y.data_ptr(), outer, C, inner, log); },
      EMBER_ON_CUDA(cuda::softmax_fwd(x.dtype(), x.data_ptr(), y.data_ptr(), outer, C, inner, log, stream)));
  return y;
}

Tensor softmax_backward(const Tensor& y, const Tensor& g_in, int64_t dim, bool log) {
  Tensor g = contiguous_raw(g_in);
  int64_t outer, C, inner;
  split_dims(y, dim, &outer, &C, &inner);
  Tensor gx = empty(y.shape(), {.dtype = y.dtype(), .device = y.device()});
  on_device(
      y.device(), "softmax backward",
      [&] { cpu::softmax_bwd(y.dtype(), y.data_ptr(), g.data_ptr(), gx.data_ptr(), outer, C, inner, log); },
      EMBER_ON_CUDA(cuda::softmax_bwd(y.dtype(), y.data_ptr(), g.data_ptr(), gx.data_ptr(), outer, C, inner, log,
                                      stream)));
  return gx;
}

// Backward from the saved output: cheaper than keeping the input and recomputing.
struct SoftmaxBackward : autograd::Node {
  autograd::SavedTensor y_;
  int64_t dim = 0;
  bool log = false;
  TensorList apply(TensorList&& grads) override {
    if (!grads[0].defined()) return {Tensor()};
    Tensor y = y_.unpack(*this);
    Tensor g = grads[0].dtype() == y.dtype() ? grads[0] : grads[0].to(y.dtype());
    return {softmax_backward(y, g, dim, log)};
  }
  std::string name() const override { return log ? "LogSoftmaxBackward" : "SoftmaxBackward"; }
  void release_saved() override { y_.reset(); }
};

Tensor softmax_op(const Tensor& x, int64_t dim, bool log) {
  const char* op = log ? "log_softmax" : "softmax";
  EMBER_CHECK(x.defined(), op, ": undefined input");
  EMBER_CHECK(is_floating(x.dtype()), op, ": expected a floating dtype (f32, f64, f16, bf16), got ",
              x.dtype());
  check_device_available(x.device(), op);
  int64_t d = wrap_dim(dim, std::max<int64_t>(x.dim(), 1), op);
  Tensor y = softmax_forward(x, d, log);
  if (auto node = autograd::make_node<SoftmaxBackward>({x})) {
    node->y_ = y;
    node->dim = d;
    node->log = log;
    autograd::set_history(y, node);
  }
  return y;
}

}  // namespace

Tensor softmax(const Tensor& x_in, int64_t dim) {
  auto [x] = autocast::inputs(autocast::Op::softmax, x_in);
  return softmax_op(x, dim, false);
}
Tensor log_softmax(const Tensor& x_in, int64_t dim) {
  auto [x] = autocast::inputs(autocast::Op::log_softmax, x_in);
  return softmax_op(x, dim, true);
}

}  // namespace ember
