// Shape ops: views that only change metadata (squeeze, unsqueeze, transpose, permute,
// expand, narrow, slice, select, split, chunk), copies that assemble (cat, stack, pad), and
// flatten on top of reshape. view/reshape live in autograd/ops/view.cpp.
#include <algorithm>
#include <numeric>

#include "autograd/autocast.h"
#include "autograd/node.h"
#include "autograd/ops.h"
#include "tensor/layout.h"

namespace ember {

namespace {

// ---- raw views (not recorded): shared by the forward ops and by the backward nodes,
// which write gradients into views of a zero tensor.

Tensor alias(const Tensor& x, const Shape& sizes, const Shape& strides, int64_t offset) {
  return make_view(x, sizes, strides, offset);
}

/// Elements start, start+step, ... (`length` of them) along `dim`.
Tensor slice_raw(const Tensor& x, int64_t dim, int64_t start, int64_t length, int64_t step) {
  Shape sizes = x.shape(), strides = x.strides();
  int64_t offset = x.offset() + (length > 0 ? start * strides[size_t(dim)] : 0);
  sizes[size_t(dim)] = length;
  strides[size_t(dim)] *= step;
  return alias(x, sizes, strides, offset);
}

Tensor select_raw(const Tensor& x, int64_t dim, int64_t index) {
  Shape sizes = x.shape(), strides = x.strides();
  int64_t offset = x.offset() + index * strides[size_t(dim)];
  sizes.erase(sizes.begin() + dim);
  strides.erase(strides.begin() + dim);
  return alias(x, sizes, strides, offset);
}

TensorOptions like(const Tensor& t) { return {.dtype = t.dtype(), .device = t.device()}; }

/// Copies each xs[i] into consecutive slices of `out` along dim (out is already sized).
void cat_into(const Tensor& out, const TensorList& xs, int64_t dim) {
  int64_t at = 0;
  for (const Tensor& x : xs) {
    int64_t n = x.size(dim);
    if (n > 0) copy_into(slice_raw(out, dim, at, n, 1), x);
    at += n;
  }
}

// ---- backward nodes

/// squeeze/unsqueeze: the gradient takes the input's shape back.
struct ReshapeAliasBackward : autograd::Node {
  const char* op;
  Shape in_shape;
  ReshapeAliasBackward(const char* op, Shape in_shape) : op(op), in_shape(std::move(in_shape)) {}
  TensorList apply(TensorList&& g) override {
    if (!g[0].defined()) return {Tensor()};
    return {g[0].reshape(in_shape)};
  }
  std::string name() const override { return op; }
};

struct TransposeBackward : autograd::Node {
  int64_t d0, d1;
  TransposeBackward(int64_t d0, int64_t d1) : d0(d0), d1(d1) {}
  TensorList apply(TensorList&& g) override {
    if (!g[0].defined()) return {Tensor()};
    return {transpose(g[0], d0, d1)};
  }
  std::string name() const override { return "TransposeBackward"; }
};

struct PermuteBackward : autograd::Node {
  Shape inverse;
  explicit PermuteBackward(Shape inverse) : inverse(std::move(inverse)) {}
  TensorList apply(TensorList&& g) override {
    if (!g[0].defined()) return {Tensor()};
    return {permute(g[0], inverse)};
  }
  std::string name() const override { return "PermuteBackward"; }
};

struct ExpandBackward : autograd::Node {
  Shape in_shape;
  explicit ExpandBackward(Shape in_shape) : in_shape(std::move(in_shape)) {}
  TensorList apply(TensorList&& g) override {
    if (!g[0].defined()) return {Tensor()};
    return {autograd::sum_to(g[0], in_shape)};
  }
  std::string name() const override { return "ExpandBackward"; }
};

/// narrow/slice: zeros of the input's shape with the gradient in the sliced positions.
struct SliceBackward : autograd::Node {
  Shape in_shape;
  int64_t dim, start, length, step;
  SliceBackward(Shape in_shape, int64_t dim, int64_t start, int64_t length, int64_t step)
      : in_shape(std::move(in_shape)), dim(dim), start(start), length(length), step(step) {}
  TensorList apply(TensorList&& g) override {
    if (!g[0].defined()) return {Tensor()};
    Tensor gx = zeros(in_shape, like(g[0]));
    copy_into(slice_raw(gx, dim, start, length, step), g[0]);
    return {gx};
  }
  std::string name() const override { return "SliceBackward"; }
};

struct SelectBackward : autograd::Node {
  Shape in_shape;
  int64_t dim, index;
  SelectBackward(Shape in_shape, int64_t dim, int64_t index)
      : in_shape(std::move(in_shape)), dim(dim), index(index) {}
  TensorList apply(TensorList&& g) override {
    if (!g[0].defined()) return {Tensor()};
    Tensor gx = zeros(in_shape, like(g[0]));
    copy_into(select_raw(gx, dim, index), g[0]);
    return {gx};
  }
  std::string name() const override { return "SelectBackward"; }
};

/// cat: input i gets its slice of the gradient (a view).
struct CatBackward : autograd::Node {
  int64_t dim;
  Shape lengths;  // each input's size along dim
  CatBackward(int64_t dim, Shape lengths) : dim(dim), lengths(std::move(lengths)) {}
  TensorList apply(TensorList&& g) override {
    TensorList out(lengths.size());
    if (!g[0].defined()) return out;
    int64_t at = 0;
    for (size_t i = 0; i < lengths.size(); ++i) {
      if (next[i].valid()) out[i] = slice_raw(g[0], dim, at, lengths[i], 1);
      at += lengths[i];
    }
    return out;
  }
  std::string name() const override { return "CatBackward"; }
};

struct StackBackward : autograd::Node {
  int64_t dim;
  explicit StackBackward(int64_t dim) : dim(dim) {}
  TensorList apply(TensorList&& g) override {
    TensorList out(next.size());
    if (!g[0].defined()) return out;
    for (size_t i = 0; i < next.size(); ++i)
      if (next[i].valid()) out[i] = select_raw(g[0], dim, int64_t(i));
    return out;
  }
  std::string name() const override { return "StackBackward"; }
};

/// split/chunk: one node, one output per piece; the pieces' gradients are put back side
/// by side, with zeros where a piece got none.
struct SplitBackward : autograd::Node {
  Shape in_shape;
  int64_t dim;
  Shape lengths;
  SplitBackward(Shape in_shape, int64_t dim, Shape lengths)
      : in_shape(std::move(in_shape)), dim(dim), lengths(std::move(lengths)) {}
  TensorList apply(TensorList&& g) override {
    const Tensor* any = nullptr;
    bool all = true;
    for (const Tensor& t : g) {
      if (t.defined()) any = any ? any : &t;
      else all = false;
    }
    if (!any) return {Tensor()};
    Tensor gx = all ? empty(in_shape, like(*any)) : zeros(in_shape, like(*any));
    int64_t at = 0;
    for (size_t i = 0; i < lengths.size(); ++i) {
      if (i < g.size() && g[i].defined() && lengths[i] > 0)
        copy_into(slice_raw(gx, dim, at, lengths[i], 1), g[i]);
      at += lengths[i];
    }
    return {gx};
  }
  std::string name() const override { return "SplitBackward"; }
};

/// pad: the gradient of the kept input region; zeros where negative padding cropped.
struct PadBackward : autograd::Node {
  Shape in_shape;
  Shape in_start, out_start, kept;  // per dim: where the kept region starts, its length
  bool cropped;
  PadBackward(Shape in_shape, Shape in_start, Shape out_start, Shape kept, bool cropped)
      : in_shape(std::move(in_shape)),
        in_start(std::move(in_start)),
        out_start(std::move(out_start)),
        kept(std::move(kept)),
        cropped(cropped) {}
  TensorList apply(TensorList&& g) override {
    if (!g[0].defined()) return {Tensor()};
    Tensor region = g[0];
    for (size_t d = 0; d < kept.size(); ++d)
      region = slice_raw(region, int64_t(d), out_start[d], kept[d], 1);
    if (!cropped) return {region};
    Tensor gx = zeros(in_shape, like(g[0]));
    Tensor dst = gx;
    for (size_t d = 0; d < kept.size(); ++d) dst = slice_raw(dst, int64_t(d), in_start[d], kept[d], 1);
    copy_into(dst, region);
    return {gx};
  }
  std::string name() const override { return "PadBackward"; }
};

/// Attaches `node` (if any) to a view output.
template <class N, class... Args>
Tensor record(const Tensor& out, const Tensor& x, Args&&... args) {
  if (auto node = autograd::make_node<N>({x}, std::forward<Args>(args)...))
    autograd::set_history(out, node);
  return out;
}

void check_defined(const Tensor& x, const char* op) {
  EMBER_CHECK(x.defined(), op, ": the input tensor is undefined");
}

void check_same_kind(const TensorList& xs, const char* op) {
  EMBER_CHECK(!xs.empty(), op, ": expected a non-empty list of tensors");
  for (size_t i = 0; i < xs.size(); ++i) EMBER_CHECK(xs[i].defined(), op, ": tensor ", i, " is undefined");
  for (size_t i = 1; i < xs.size(); ++i) {
    EMBER_CHECK(xs[i].dtype() == xs[0].dtype(), op, ": tensor ", i, " has dtype ",
                dtype_name(xs[i].dtype()), " but tensor 0 has ", dtype_name(xs[0].dtype()),
                "; convert with .to() first");
    EMBER_CHECK(xs[i].device() == xs[0].device(), op, ": tensor ", i, " is on ",
                xs[i].device().str(), " but tensor 0 is on ", xs[0].device().str());
  }
}

}  // namespace

// ---- flatten, squeeze, unsqueeze

Tensor flatten(const Tensor& x, int64_t start_dim, int64_t end_dim) {
  check_defined(x, "flatten");
  if (x.dim() == 0) return reshape(x, {1});
  int64_t s = wrap_dim(start_dim, x.dim(), "flatten");
  int64_t e = wrap_dim(end_dim, x.dim(), "flatten");
  EMBER_CHECK(s <= e, "flatten: start_dim ", start_dim, " comes after end_dim ", end_dim,
              " for a tensor of shape ", x.shape_str());
  if (s == e) return x;
  Shape shape(x.shape().begin(), x.shape().begin() + s);
  int64_t n = 1;
  for (int64_t d = s; d <= e; ++d) n *= x.shape()[size_t(d)];
  shape.push_back(n);
  shape.insert(shape.end(), x.shape().begin() + e + 1, x.shape().end());
  return reshape(x, shape);
}

Tensor squeeze(const Tensor& x, std::optional<int64_t> dim) {
  check_defined(x, "squeeze");
  Shape sizes, strides;
  if (dim) {
    int64_t d = wrap_dim(*dim, x.dim(), "squeeze");
    for (int64_t i = 0; i < x.dim(); ++i) {
      if (i == d && x.shape()[size_t(i)] == 1) continue;  // a non-1 dim is kept, as PyTorch
      sizes.push_back(x.shape()[size_t(i)]);
      strides.push_back(x.strides()[size_t(i)]);
    }
  } else {
    for (int64_t i = 0; i < x.dim(); ++i) {
      if (x.shape()[size_t(i)] == 1) continue;
      sizes.push_back(x.shape()[size_t(i)]);
      strides.push_back(x.strides()[size_t(i)]);
    }
  }
  return record<ReshapeAliasBackward>(alias(x, sizes, strides, x.offset()), x, "SqueezeBackward",
                                      x.shape());
}

Tensor unsqueeze(const Tensor& x, int64_t dim) {
  check_defined(x, "unsqueeze");
  int64_t d = wrap_dim(dim, x.dim() + 1, "unsqueeze");
  Shape sizes = x.shape(), strides = x.strides();
  int64_t st = d < x.dim() ? sizes[size_t(d)] * strides[size_t(d)] : 1;
  sizes.insert(sizes.begin() + d, 1);
  strides.insert(strides.begin() + d, st);
  return record<ReshapeAliasBackward>(alias(x, sizes, strides, x.offset()), x,
                                      "UnsqueezeBackward", x.shape());
}

// ---- transpose, permute, expand

Tensor transpose(const Tensor& x, int64_t d0, int64_t d1) {
  check_defined(x, "transpose");
  int64_t a = wrap_dim(d0, x.dim(), "transpose");
  int64_t b = wrap_dim(d1, x.dim(), "transpose");
  Shape sizes = x.shape(), strides = x.strides();
  if (x.dim() > 0) {
    std::swap(sizes[size_t(a)], sizes[size_t(b)]);
    std::swap(strides[size_t(a)], strides[size_t(b)]);
  }
  return record<TransposeBackward>(alias(x, sizes, strides, x.offset()), x, a, b);
}

Tensor permute(const Tensor& x, const Shape& dims) {
  check_defined(x, "permute");
  EMBER_CHECK(int64_t(dims.size()) == x.dim(), "permute: got ", dims.size(), " dims ",
              shape_str(dims), " for a tensor of ", x.dim(), " dims (shape ", x.shape_str(), ")");
  Shape sizes(dims.size()), strides(dims.size()), inverse(dims.size(), -1);
  for (size_t i = 0; i < dims.size(); ++i) {
    int64_t d = wrap_dim(dims[i], x.dim(), "permute");
    EMBER_CHECK(inverse[size_t(d)] < 0, "permute: dim ", d, " appears twice in ", shape_str(dims),
                "; expected a permutation of 0..", x.dim() - 1);
    inverse[size_t(d)] = int64_t(i);
    sizes[i] = x.shape()[size_t(d)];
    strides[i] = x.strides()[size_t(d)];
  }
  return record<PermuteBackward>(alias(x, sizes, strides, x.offset()), x, inverse);
}

Tensor expand(const Tensor& x, const Shape& shape) {
  check_defined(x, "expand");
  int64_t nd = int64_t(shape.size());
  EMBER_CHECK(nd >= x.dim(), "expand: the target shape ", shape_str(shape), " has fewer dims than the tensor's ",
              x.shape_str());
  int64_t lead = nd - x.dim();
  Shape sizes(shape.size()), strides(shape.size());
  for (int64_t i = 0; i < nd; ++i) {
    int64_t want = shape[size_t(i)];
    if (i < lead) {
      EMBER_CHECK(want >= 0, "expand: size ", want, " at new leading dim ", i, " of ", shape_str(shape),
                  " (-1 can only keep an existing dim)");
      sizes[size_t(i)] = want;
      strides[size_t(i)] = 0;
      continue;
    }
    int64_t have = x.shape()[size_t(i - lead)];
    EMBER_CHECK(want >= -1, "expand: invalid size ", want, " in ", shape_str(shape));
    if (want == -1) want = have;
    EMBER_CHECK(want == have || have == 1, "expand: cannot expand shape ", x.shape_str(), " to ",
                shape_str(shape), ": dim ", i, " has size ", have, " (only size-1 dims can grow)");
    sizes[size_t(i)] = want;
    strides[size_t(i)] = want == have ? x.strides()[size_t(i - lead)] : 0;
  }
  return record<ExpandBackward>(alias(x, sizes, strides, x.offset()), x, x.shape());
}

// ---- narrow, slice, select

Tensor narrow(const Tensor& x, int64_t dim, int64_t start, int64_t length) {
  check_defined(x, "narrow");
  EMBER_CHECK(x.dim() > 0, "narrow: cannot narrow a 0-d tensor");
  int64_t d = wrap_dim(dim, x.dim(), "narrow");
  int64_t size = x.shape()[size_t(d)];
  EMBER_CHECK(start >= -size && start <= size, "narrow: start ", start, " out of range for dim ", d,
              " of size ", size, " (expected in [", -size, ", ", size, "])");
  if (start < 0) start += size;
  EMBER_CHECK(length >= 0 && start + length <= size, "narrow: start ", start, " + length ", length,
              " exceeds dim ", d, " of size ", size, " (shape ", x.shape_str(), ")");
  return record<SliceBackward>(slice_raw(x, d, start, length, 1), x, x.shape(), d, start, length,
                               int64_t(1));
}

Tensor slice(const Tensor& x, int64_t dim, int64_t start, int64_t end, int64_t step) {
  check_defined(x, "slice");
  EMBER_CHECK(x.dim() > 0, "slice: cannot slice a 0-d tensor");
  EMBER_CHECK(step > 0, "slice: step must be positive, got ", step);
  int64_t d = wrap_dim(dim, x.dim(), "slice");
  int64_t size = x.shape()[size_t(d)];
  // Python semantics: negative bounds count from the end, then both are clipped.
  if (start < 0) start = std::max<int64_t>(start + size, 0);
  if (end < 0) end = std::max<int64_t>(end + size, 0);
  start = std::min(start, size);
  end = std::clamp(end, start, size);
  int64_t length = ceil_div(end - start, step);
  return record<SliceBackward>(slice_raw(x, d, start, length, step), x, x.shape(), d, start, length,
                               step);
}

Tensor select(const Tensor& x, int64_t dim, int64_t index) {
  check_defined(x, "select");
  EMBER_CHECK(x.dim() > 0, "select: cannot select from a 0-d tensor");
  int64_t d = wrap_dim(dim, x.dim(), "select");
  int64_t size = x.shape()[size_t(d)];
  EMBER_CHECK(index >= -size && index < size, "select: index ", index, " out of range for dim ", d,
              " of size ", size, " (expected in [", -size, ", ", size - 1, "])");
  if (index < 0) index += size;
  return record<SelectBackward>(select_raw(x, d, index), x, x.shape(), d, index);
}

// ---- cat, stack

Tensor cat(const TensorList& xs_in, int64_t dim) {
  TensorList xs = autocast::inputs(autocast::Op::cat, xs_in);
  check_same_kind(xs, "cat");
  const Tensor& x0 = xs[0];
  EMBER_CHECK(x0.dim() > 0, "cat: cannot concatenate 0-d tensors; use stack");
  int64_t d = wrap_dim(dim, x0.dim(), "cat");
  Shape out_shape = x0.shape();
  Shape lengths;
  out_shape[size_t(d)] = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    const Tensor& x = xs[i];
    bool same = x.dim() == x0.dim();
    for (int64_t k = 0; same && k < x.dim(); ++k)
      same = k == d || x.shape()[size_t(k)] == x0.shape()[size_t(k)];
    EMBER_CHECK(same, "cat: tensor ", i, " has shape ", x.shape_str(), " but tensor 0 has shape ",
                x0.shape_str(), "; all dims but dim ", d, " must match");
    lengths.push_back(x.shape()[size_t(d)]);
    out_shape[size_t(d)] += lengths.back();
  }
  Tensor out = empty(out_shape, like(x0));
  cat_into(out, xs, d);
  if (auto node = autograd::make_node<CatBackward>(xs, d, lengths)) autograd::set_history(out, node);
  return out;
}

Tensor stack(const TensorList& xs_in, int64_t dim) {
  TensorList xs = autocast::inputs(autocast::Op::stack, xs_in);
  check_same_kind(xs, "stack");
  const Tensor& x0 = xs[0];
  int64_t d = wrap_dim(dim, x0.dim() + 1, "stack");
  for (size_t i = 1; i < xs.size(); ++i) {
    EMBER_CHECK(xs[i].shape() == x0.shape(), "stack: tensor ", i, " has shape ", xs[i].shape_str(),
                " but tensor 0 has shape ", x0.shape_str(), "; all must be equal");
  }
  Shape out_shape = x0.shape();
  out_shape.insert(out_shape.begin() + d, int64_t(xs.size()));
  Tensor out = empty(out_shape, like(x0));
  for (size_t i = 0; i < xs.size(); ++i) copy_into(select_raw(out, d, int64_t(i)), xs[i]);
  if (auto node = autograd::make_node<StackBackward>(xs, d)) autograd::set_history(out, node);
  return out;
}

// ---- split, chunk

TensorList split(const Tensor& x, int64_t split_size, int64_t dim) {
  check_defined(x, "split");
  EMBER_CHECK(x.dim() > 0, "split: cannot split a 0-d tensor");
  int64_t d = wrap_dim(dim, x.dim(), "split");
  int64_t size = x.shape()[size_t(d)];
  EMBER_CHECK(split_size > 0 || (split_size == 0 && size == 0), "split: split_size must be positive, got ",
              split_size, " for dim ", d, " of size ", size);
  Shape lengths;
  if (size == 0) {
    lengths.push_back(0);
  } else {
    for (int64_t at = 0; at < size; at += split_size) lengths.push_back(std::min(split_size, size - at));
  }
  TensorList outs;
  int64_t at = 0;
  for (int64_t n : lengths) {
    outs.push_back(slice_raw(x, d, at, n, 1));
    at += n;
  }
  if (auto node = autograd::make_node<SplitBackward>({x}, x.shape(), d, lengths))
    autograd::set_history(outs, node);
  return outs;
}

TensorList chunk(const Tensor& x, int64_t chunks, int64_t dim) {
  check_defined(x, "chunk");
  EMBER_CHECK(chunks > 0, "chunk: the number of chunks must be positive, got ", chunks);
  EMBER_CHECK(x.dim() > 0, "chunk: cannot chunk a 0-d tensor");
  int64_t d = wrap_dim(dim, x.dim(), "chunk");
  // As PyTorch: pieces of ceil(size / chunks), so fewer than `chunks` may come back (one
  // empty piece for an empty dim).
  return split(x, ceil_div(x.shape()[size_t(d)], chunks), d);
}

// ---- pad

Tensor pad(const Tensor& x, const Shape& pad, double value) {
  check_defined(x, "pad");
  EMBER_CHECK(pad.size() % 2 == 0, "pad: expected (before, after) pairs, got ", pad.size(),
              " values ", shape_str(pad));
  EMBER_CHECK(int64_t(pad.size() / 2) <= x.dim(), "pad: ", pad.size() / 2,
              " padded dims for a tensor of ", x.dim(), " dims (shape ", x.shape_str(), ")");
  int64_t nd = x.dim();
  Shape out_shape = x.shape();
  Shape in_start(size_t(nd), 0), out_start(size_t(nd), 0), kept = x.shape();
  bool cropped = false;
  for (size_t k = 0; k < pad.size() / 2; ++k) {
    size_t d = size_t(nd) - 1 - k;  // pairs start from the last dim
    int64_t before = pad[2 * k], after = pad[2 * k + 1];
    int64_t size = x.shape()[d];
    out_shape[d] = size + before + after;
    EMBER_CHECK(out_shape[d] >= 0, "pad: padding (", before, ", ", after, ") of dim ", d,
                " of size ", size, " gives a negative size ", out_shape[d]);
    // Negative padding crops: the kept input region shrinks on that side.
    in_start[d] = std::max<int64_t>(-before, 0);
    out_start[d] = std::max<int64_t>(before, 0);
    kept[d] = std::max<int64_t>(size - in_start[d] - std::max<int64_t>(-after, 0), 0);
    if (before < 0 || after < 0) cropped = true;
  }
  Tensor out = full(out_shape, value, like(x));
  if (shape_numel(kept) > 0) {
    Tensor src = x, dst = out;
    for (int64_t d = 0; d < nd; ++d) {
      src = slice_raw(src, d, in_start[size_t(d)], kept[size_t(d)], 1);
      dst = slice_raw(dst, d, out_start[size_t(d)], kept[size_t(d)], 1);
    }
    copy_into(dst, src);
  } else {
    cropped = true;  // nothing of the input survives: its gradient is all zeros
  }
  if (auto node = autograd::make_node<PadBackward>({x}, x.shape(), in_start, out_start, kept, cropped))
    autograd::set_history(out, node);
  return out;
}

// ---- Tensor methods that forward here

Tensor Tensor::flatten(int64_t start_dim, int64_t end_dim) const {
  return ember::flatten(*this, start_dim, end_dim);
}
Tensor Tensor::squeeze(int64_t dim) const { return ember::squeeze(*this, dim); }
Tensor Tensor::unsqueeze(int64_t dim) const { return ember::unsqueeze(*this, dim); }
Tensor Tensor::transpose(int64_t d0, int64_t d1) const { return ember::transpose(*this, d0, d1); }
Tensor Tensor::permute(const Shape& dims) const { return ember::permute(*this, dims); }
Tensor Tensor::expand(const Shape& shape) const { return ember::expand(*this, shape); }
Tensor Tensor::narrow(int64_t dim, int64_t start, int64_t length) const {
  return ember::narrow(*this, dim, start, length);
}
Tensor Tensor::select(int64_t dim, int64_t index) const { return ember::select(*this, dim, index); }

}  // namespace ember
