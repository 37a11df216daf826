// contiguous, clone, to(device/dtype), copy_, fill_, zero_: copies that autograd sees.
#include "autograd/node.h"
#include "autograd/ops.h"
#include "tensor/dispatch.h"
#include "kernels/copy.h"
#include "tensor/layout.h"

namespace ember {

namespace {
// The gradient of a copy is the incoming gradient moved back to the input's device/dtype.
struct CopyBackward : autograd::Node {
  Device src_device;
  DType src_dtype;
  TensorList apply(TensorList&& g) override {
    if (!g[0].defined()) return {Tensor()};
    return {g[0].to(src_device, src_dtype)};
  }
  std::string name() const override { return "CopyBackward"; }
};

Tensor copy_to(const Tensor& x, Device device, DType dtype) {
  Tensor out = empty(x.shape(), {.dtype = dtype, .device = device});
  copy_into(out, x);
  if (is_floating(dtype) && is_floating(x.dtype())) {
    if (auto node = autograd::make_node<CopyBackward>({x})) {
      node->src_device = x.device();
      node->src_dtype = x.dtype();
      autograd::set_history(out, node);
    }
  }
  return out;
}
}  // namespace

Tensor Tensor::contiguous() const {
  if (is_contiguous()) return *this;
  return copy_to(*this, device(), dtype());
}

Tensor Tensor::clone() const { return copy_to(*this, device(), dtype()); }

Tensor Tensor::to(Device d) const { return to(d, dtype()); }
Tensor Tensor::to(DType t) const { return to(device(), t); }
Tensor Tensor::to(Device d, DType t) const {
  if (d == device() && t == dtype()) return *this;
  return copy_to(*this, d, t);
}

namespace {
void check_inplace_allowed(const Tensor& t, const char* op) {
  EMBER_CHECK(!(GradMode::is_enabled() && t.requires_grad() && t.is_leaf()), op,
              ": in-place modification of a leaf that requires grad; wrap it in NoGradGuard");
}
}  // namespace

Tensor& Tensor::fill_(double value) {
  check_inplace_allowed(*this, "fill_");
  StridedLayout l = layout_of(*this);
  StridedLayout* ls[1] = {&l};
  coalesce(ls, 1);
  if (numel() > 0) {
    on_device(
        device(), "fill_", [&] { cpu::fill(dtype(), data_ptr(), l, value, numel()); },
        EMBER_ON_CUDA(cuda::fill(dtype(), data_ptr(), l, value, numel(), stream)));
  }
  bump_version();
  return *this;
}

Tensor& Tensor::zero_() { return fill_(0.0); }

Tensor& Tensor::copy_(const Tensor& src) {
  check_inplace_allowed(*this, "copy_");
  EMBER_CHECK(src.defined(), "copy_: source is undefined");
  broadcast_shapes(shape(), src.shape());  // throws with both shapes when incompatible
  EMBER_CHECK(src.dim() <= dim(), "copy_: cannot copy a tensor of shape ", src.shape_str(),
              " into one of shape ", shape_str());
  copy_into(*this, unaliased_input(*this, src));  // Note [In-place overlap] in tensor/layout.h
  bump_version();
  return *this;
}

}  // namespace ember
