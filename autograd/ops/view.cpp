// view and reshape: metadata-only when the strides allow it (reshape copies otherwise).
#include "autograd/node.h"
#include "autograd/ops.h"

namespace ember {

namespace {

/// Resolves one -1 and checks the element count.
Shape infer_shape(const Shape& shape, int64_t numel, const char* op) {
  Shape out = shape;
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] == -1) {
      EMBER_CHECK(infer < 0, op, ": only one dimension can be -1, got ", shape_str(shape));
      infer = int64_t(i);
    } else {
      EMBER_CHECK(out[i] >= 0, op, ": invalid dimension ", out[i], " in ", shape_str(shape));
      known *= out[i];
    }
  }
  if (infer >= 0) {
    EMBER_CHECK(known != 0 && numel % known == 0, op, ": shape ", shape_str(shape),
                " is invalid for a tensor of ", numel, " elements");
    out[size_t(infer)] = numel / known;
  }
  EMBER_CHECK(shape_numel(out) == numel, op, ": shape ", shape_str(shape),
              " is invalid for a tensor of ", numel, " elements");
  return out;
}

/// Strides for viewing (sizes, strides) as `shape` without copying, if possible: each run
/// of old dims that is contiguous in memory may be re-split freely.
bool view_strides(const Shape& sizes, const Shape& strides, const Shape& shape, Shape& out) {
  out.assign(shape.size(), 0);
  if (shape_numel(sizes) == 0) {
    out = contiguous_strides(shape);
    return true;
  }
  int64_t view_d = int64_t(shape.size()) - 1;
  int64_t chunk_base_stride = strides.empty() ? 1 : strides.back();
  int64_t tensor_numel = 1, view_numel = 1;
  for (int64_t d = int64_t(sizes.size()) - 1; d >= 0; --d) {
    tensor_numel *= sizes[size_t(d)];
    // End of a contiguous chunk: when dim d is not contiguous with dim d-1.
    if (d == 0 || (sizes[size_t(d - 1)] != 1 &&
                   strides[size_t(d - 1)] != tensor_numel * chunk_base_stride)) {
      while (view_d >= 0 && (view_numel < tensor_numel || shape[size_t(view_d)] == 1)) {
        out[size_t(view_d)] = view_numel * chunk_base_stride;
        view_numel *= shape[size_t(view_d)];
        --view_d;
      }
      if (view_numel != tensor_numel) return false;
      if (d > 0) {
        chunk_base_stride = strides[size_t(d - 1)];
        tensor_numel = 1;
        view_numel = 1;
      }
    }
  }
  return view_d == -1;
}

struct ViewBackward : autograd::Node {
  Shape in_shape;
  std::string name() const override { return "ViewBackward"; }
  TensorList apply(TensorList&& grads) override {
    if (!grads[0].defined()) return {Tensor()};
    return {grads[0].reshape(in_shape)};
  }
};

Tensor view_impl(const Tensor& x, const Shape& shape, const Shape& strides) {
  Tensor out = make_view(x, shape, strides, x.offset());
  if (auto node = autograd::make_node<ViewBackward>({x})) {
    node->in_shape = x.shape();
    autograd::set_history(out, node);
  }
  return out;
}

}  // namespace

Tensor view(const Tensor& x, const Shape& shape_in) {
  EMBER_CHECK(x.defined(), "view: undefined input");
  Shape shape = infer_shape(shape_in, x.numel(), "view");
  Shape strides;
  EMBER_CHECK(view_strides(x.shape(), x.strides(), shape, strides), "view: a tensor of shape ",
              x.shape_str(), " and strides ", shape_str(x.strides()), " cannot be viewed as ",
              shape_str(shape), " without a copy; use reshape()");
  return view_impl(x, shape, strides);
}

Tensor reshape(const Tensor& x, const Shape& shape_in) {
  EMBER_CHECK(x.defined(), "reshape: undefined input");
  Shape shape = infer_shape(shape_in, x.numel(), "reshape");
  if (shape == x.shape()) return x;
  Shape strides;
  if (view_strides(x.shape(), x.strides(), shape, strides)) return view_impl(x, shape, strides);
  Tensor c = x.contiguous();
  return view_impl(c, shape, contiguous_strides(shape));
}

Tensor Tensor::view(const Shape& shape) const { return ember::view(*this, shape); }
Tensor Tensor::reshape(const Shape& shape) const { return ember::reshape(*this, shape); }

}  // namespace ember
