// Reductions: sum, mean, max, min, argmax, argmin over all or chosen dims (keepdim).
// Any set of dims is brought into the kernels' contiguous (outer, r, inner) form.
#include <algorithm>

#include "autograd/autocast.h"
#include "autograd/node.h"
#include "autograd/ops.h"
#include "tensor/dispatch.h"
#include "kernels/reduce.h"
#include "tensor/layout.h"

namespace ember {

namespace {

/// Sorted, unique, wrapped dims; empty input = all dims.
Shape normalize_dims(const Tensor& x, const Shape& dims, const char* op) {
  Shape d;
  if (dims.empty()) {
    for (int64_t i = 0; i < x.dim(); ++i) d.push_back(i);
    return d;
  }
  for (int64_t v : dims) d.push_back(wrap_dim(v, x.dim(), op));
  std::sort(d.begin(), d.end());
  EMBER_CHECK(std::adjacent_find(d.begin(), d.end()) == d.end(), op, ": dim listed twice in ",
              shape_str(dims));
  if (x.dim() == 0) d.clear();
  return d;
}

Shape reduced_shape(const Tensor& x, const Shape& dims, bool keepdim) {
  Shape out;
  for (int64_t i = 0; i < x.dim(); ++i) {
    bool red = std::binary_search(dims.begin(), dims.end(), i);
    if (!red) out.push_back(x.size(i));
    else if (keepdim) out.push_back(1);
  }
  return out;
}

/// Raw reduction (no autograd). `dims` normalized.
Tensor reduce_raw(ReduceOp op, const Tensor& x_in, const Shape& dims, bool keepdim) {
  check_device_available(x_in.device(), reduce_name(op));
  Tensor x = x_in.detach();
  Shape out_shape = reduced_shape(x, dims, keepdim);
  DType od = reduce_out_dtype(op, x.dtype());
  if (op == ReduceOp::mean) {
    EMBER_CHECK(is_floating(x.dtype()), "mean: needs a floating dtype, got ", dtype_name(x.dtype()),
                "; convert with to(DType::f32)");
  }
  int64_t r = 1;
  for (int64_t d : dims) r *= x.size(d);
  if (r == 0) {
    EMBER_CHECK(op == ReduceOp::sum || op == ReduceOp::mean, reduce_name(op),
                ": cannot reduce over an empty dimension (shape ", x.shape_str(), ")");
  }
  Tensor out = empty(out_shape, {.dtype = od, .device = x.device()});
  if (out.numel() == 0) return out;

  // (outer, r, inner): direct when the reduced dims are one contiguous run of a contiguous
  // tensor; otherwise move kept dims to the front and reduced dims to the back.
  int64_t outer = 1, inner = 1;
  bool run = !dims.empty() && dims.back() - dims.front() + 1 == int64_t(dims.size());
  if (run && x.is_contiguous()) {
    for (int64_t i = 0; i < dims.front(); ++i) outer *= x.size(i);
    for (int64_t i = dims.back() + 1; i < x.dim(); ++i) inner *= x.size(i);
  } else {
    Shape perm_sizes, perm_strides;
    for (int64_t i = 0; i < x.dim(); ++i) {
      if (!std::binary_search(dims.begin(), dims.end(), i)) {
        perm_sizes.push_back(x.size(i));
        perm_strides.push_back(x.stride(i));
        outer *= x.size(i);
      }
    }
    for (int64_t d : dims) {
      perm_sizes.push_back(x.size(d));
      perm_strides.push_back(x.stride(d));
    }
    x = make_view(x, perm_sizes, perm_strides, x.offset()).contiguous();
  }
  on_device(
      out.device(), "reduction", [&] { cpu::reduce(op, x.dtype(), x.data_ptr(), out.data_ptr(), outer, r, inner); },
      EMBER_ON_CUDA(cuda::reduce(op, x.dtype(), x.data_ptr(), out.data_ptr(), outer, r, inner, stream)));
  return out;
}

/// A view of a reduced tensor `t` (keepdim or not) broadcast back to `full`.
Tensor expand_back(const Tensor& t, const Shape& full, const Shape& dims) {
  Shape keep_shape = full, strides(full.size(), 0);
  for (int64_t d : dims) keep_shape[size_t(d)] = 1;
  Tensor k = t.is_contiguous() ? t : t.contiguous();
  Shape ks = contiguous_strides(keep_shape);
  for (size_t i = 0; i < full.size(); ++i) strides[i] = keep_shape[i] == 1 ? 0 : ks[i];
  return make_view(k, full, strides, k.offset());
}

struct SumMeanBackward : autograd::Node {
  bool is_mean = false;
  Shape in_shape, dims;
  int64_t count = 1;
  std::string name() const override { return is_mean ? "MeanBackward" : "SumBackward"; }
  TensorList apply(TensorList&& grads) override {
    Tensor g = grads[0];
    if (!g.defined()) return {Tensor()};
    if (is_mean) g = g / double(count);
    return {expand_back(g, in_shape, dims)};
  }
};

struct MaxMinBackward : autograd::Node {
  bool is_max = true;
  autograd::SavedTensor x, out;
  Shape dims;
  std::string name() const override { return is_max ? "MaxBackward" : "MinBackward"; }
  void release_saved() override {
    x.reset();
    out.reset();
  }
  TensorList apply(TensorList&& grads) override {
    const Tensor& g = grads[0];
    if (!g.defined()) return {Tensor()};
    Tensor X = x.unpack(*this), O = out.unpack(*this);
    // Ties share the gradient evenly.
    Tensor mask = eq(X, expand_back(O, X.shape(), dims)).to(g.dtype());
    Tensor count = reduce_raw(ReduceOp::sum, mask, dims, true);
    Tensor share = div(expand_back(g, X.shape(), dims), expand_back(count, X.shape(), dims));
    return {mul(mask, share)};
  }
};

Tensor reduce_op(ReduceOp op, const Tensor& x, const Shape& dims_in, bool keepdim) {
  EMBER_CHECK(x.defined(), reduce_name(op), ": undefined input");
  Shape dims = normalize_dims(x, dims_in, reduce_name(op));
  Tensor out = reduce_raw(op, x, dims, keepdim);
  if (!is_floating(out.dtype())) return out;
  if (op == ReduceOp::sum || op == ReduceOp::mean) {
    if (auto node = autograd::make_node<SumMeanBackward>({x})) {
      node->is_mean = op == ReduceOp::mean;
      node->in_shape = x.shape();
      node->dims = dims;
      node->count = std::max<int64_t>(1, x.numel() / std::max<int64_t>(1, out.numel()));
      autograd::set_history(out, node);
    }
  } else if (op == ReduceOp::max || op == ReduceOp::min) {
    if (auto node = autograd::make_node<MaxMinBackward>({x})) {
      node->is_max = op == ReduceOp::max;
      node->x = x;
      node->out = out;
      node->dims = dims;
      autograd::set_history(out, node);
    }
  }
  return out;
}

}  // namespace

Tensor sum(const Tensor& x_in, const Shape& dims, bool keepdim) {
  auto [x] = autocast::inputs(autocast::Op::sum, x_in);
  return reduce_op(ReduceOp::sum, x, dims, keepdim);
}
Tensor mean(const Tensor& x_in, const Shape& dims, bool keepdim) {
  auto [x] = autocast::inputs(autocast::Op::mean, x_in);
  return reduce_op(ReduceOp::mean, x, dims, keepdim);
}
Tensor max(const Tensor& x, const Shape& dims, bool keepdim) { return reduce_op(ReduceOp::max, x, dims, keepdim); }
Tensor min(const Tensor& x, const Shape& dims, bool keepdim) { return reduce_op(ReduceOp::min, x, dims, keepdim); }

Tensor argmax(const Tensor& x, std::optional<int64_t> dim, bool keepdim) {
  if (!dim) return reduce_op(ReduceOp::argmax, x.reshape({x.numel()}), {}, false);
  return reduce_op(ReduceOp::argmax, x, {*dim}, keepdim);
}
Tensor argmin(const Tensor& x, std::optional<int64_t> dim, bool keepdim) {
  if (!dim) return reduce_op(ReduceOp::argmin, x.reshape({x.numel()}), {}, false);
  return reduce_op(ReduceOp::argmin, x, {*dim}, keepdim);
}

Tensor Tensor::sum() const { return ember::sum(*this); }
Tensor Tensor::sum(const Shape& dims, bool keepdim) const { return ember::sum(*this, dims, keepdim); }
Tensor Tensor::mean() const { return ember::mean(*this); }
Tensor Tensor::mean(const Shape& dims, bool keepdim) const { return ember::mean(*this, dims, keepdim); }

}  // namespace ember
