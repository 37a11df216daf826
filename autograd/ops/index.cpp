// index_select and gather: gather-by-index forward, scatter-add backward
// (Note [Index layouts] in kernels/index.h).
#include "autograd/node.h"
#include "autograd/ops.h"
#include "tensor/dispatch.h"
#include "kernels/index.h"
#include "tensor/layout.h"

namespace ember {

namespace {

/// `t`'s layout over the iteration shape, with the indexed dim's stride zeroed (the index
/// supplies that coordinate).
StridedLayout indexed_layout(const Tensor& t, const Shape& iter, int64_t dim) {
  EMBER_CHECK(int64_t(iter.size()) <= kMaxDims, "index ops support at most ", kMaxDims, " dims");
  StridedLayout l;
  l.ndim = int(iter.size());
  for (size_t d = 0; d < iter.size(); ++d) {
    l.sizes[d] = iter[d];
    l.strides[d] = int64_t(d) == dim ? 0 : t.strides()[d];
  }
  return l;
}

/// index_select's index (1-D or 0-d) spread over the iteration shape: it moves only along dim.
StridedLayout select_index_layout(const Tensor& index, const Shape& iter, int64_t dim) {
  StridedLayout l;
  l.ndim = int(iter.size());
  for (size_t d = 0; d < iter.size(); ++d) {
    l.sizes[d] = iter[d];
    l.strides[d] = int64_t(d) == dim && index.dim() == 1 ? index.strides()[0] : 0;
  }
  return l;
}

void check_index(const Tensor& x, const Tensor& index, const char* op) {
  EMBER_CHECK(x.defined(), op, ": the input tensor is undefined");
  EMBER_CHECK(index.defined(), op, ": the index tensor is undefined");
  EMBER_CHECK(index.dtype() == DType::i64 || index.dtype() == DType::i32, op,
              ": expected an i64 or i32 index tensor, got ", dtype_name(index.dtype()));
  EMBER_CHECK(index.device() == x.device(), op, ": the input is on ", x.device().str(),
              " but the index is on ", index.device().str());
  check_device_available(x.device(), op);
}

std::string position_str(int64_t linear, const Shape& shape) {
  if (shape.size() <= 1) return std::to_string(linear);
  Shape idx(shape.size());
  for (size_t d = shape.size(); d-- > 0;) {
    idx[d] = linear % shape[d];
    linear /= shape[d];
  }
  return shape_str(idx);
}

std::string range_message(const std::string& op, int64_t value, const std::string& pos,
                          int64_t dim, int64_t limit) {
  return detail::str_cat(op, ": index ", value, " at position ", pos, " is out of range for dim ",
                         dim, " of size ", limit, " (expected 0 <= index < ", limit, ")");
}

/// Throws, naming the first offending index and the valid range, unless every index lies
/// in [0, limit). On CUDA the check runs on the device and is reported at the next
/// synchronization (Note [Deferred checks] in core/cuda_context.h): the host does not
/// wait here, and the kernels skip bad indices meanwhile.
void check_index_range(const Tensor& index, int64_t limit, const char* op, int64_t dim) {
  int64_t n = index.numel();
  if (n == 0) return;
  StridedLayout l = layout_of(index);
  on_device(
      index.device(), op,
      [&] {
        int64_t bad_value = 0;
        int64_t pos = cpu::find_bad_index(index.dtype(), index.data_ptr(), l, n, limit, &bad_value);
        if (pos >= 0) throw Error(range_message(op, bad_value, position_str(pos, index.shape()), dim, limit));
      },
      EMBER_ON_CUDA(
          // Freed at return: later work on this stream, the only work that may reuse the block,
          // runs after the copy out of it (Note [Streams] in core/cuda/allocator.cpp).
          const int dev = index.device().index;
          Tensor result = empty({2}, {.dtype = DType::i64, .device = index.device()});
          cuda::find_bad_index(index.dtype(), index.data_ptr(), l, n, limit, result.data<int64_t>(), stream);
          cuda::defer_check(dev, stream, result.data<int64_t>(),
                            [op = std::string(op), shape = index.shape(), dim, limit](int64_t pos, int64_t value) {
                              return range_message(op, value, position_str(pos, shape), dim, limit);
                            })));
}

/// out = src gathered along dim (out's shape is the iteration shape).
void gather_into(const Tensor& out, const Tensor& src, int64_t dim, const Tensor& index,
                 StridedLayout idx_l) {
  int64_t n = out.numel();
  if (n == 0) return;
  StridedLayout src_l = indexed_layout(src, out.shape(), dim);
  StridedLayout out_l = layout_of(out);
  int64_t dim_stride = src.strides()[size_t(dim)];
  StridedLayout* ls[3] = {&src_l, &idx_l, &out_l};
  coalesce(ls, 3);
  on_device(
      out.device(), "gather",
      [&] {
        cpu::gather(src.dtype(), src.data_ptr(), src_l, dim_stride, index.dtype(), index.data_ptr(), idx_l,
                    out.data_ptr(), out_l, n);
      },
      EMBER_ON_CUDA(cuda::gather(src.dtype(), src.data_ptr(), src_l, dim_stride, index.dtype(), index.data_ptr(),
                                 idx_l, out.data_ptr(), out_l, n, src.shape()[size_t(dim)], stream)));
}

#if EMBER_WITH_CUDA
/// The uncoalesced geometry for the deterministic CUDA kernel.
ScatterGeometry scatter_geometry(const Tensor& dst, int64_t dim, const StridedLayout& idx_l,
                                 const Tensor& src) {
  ScatterGeometry g;
  g.ndim = int(dst.dim());
  g.dim = int(dim);
  for (int d = 0; d < g.ndim; ++d) {
    g.dst_sizes[d] = dst.shape()[size_t(d)];
    g.dst_strides[d] = dst.strides()[size_t(d)];
    g.iter_sizes[d] = src.shape()[size_t(d)];
    g.idx_strides[d] = idx_l.strides[d];
    g.src_strides[d] = src.strides()[size_t(d)];
  }
  return g;
}
#endif

/// dst[..., index, ...] += src along dim (src's shape is the iteration shape).
void scatter_add_into(const Tensor& dst, int64_t dim, const Tensor& index, StridedLayout idx_l,
                      const Tensor& src) {
  int64_t n = src.numel();
  if (n == 0) return;
  if (dst.device().is_cuda() && deterministic()) {
    // Before coalescing: the kernel needs the indexed dim as it is.
    on_device(dst.device(), "scatter_add", [] {},
              EMBER_ON_CUDA(cuda::scatter_add_deterministic(dst.dtype(), dst.data_ptr(), index.dtype(),
                                                            index.data_ptr(), src.data_ptr(),
                                                            scatter_geometry(dst, dim, idx_l, src), stream)));
    return;
  }
  StridedLayout dst_l = indexed_layout(dst, src.shape(), dim);
  StridedLayout src_l = layout_of(src);
  int64_t dim_stride = dst.strides()[size_t(dim)];
  StridedLayout* ls[3] = {&dst_l, &idx_l, &src_l};
  coalesce(ls, 3);
  on_device(
      dst.device(), "scatter_add",
      [&] {
        cpu::scatter_add(dst.dtype(), dst.data_ptr(), dst_l, dim_stride, index.dtype(), index.data_ptr(), idx_l,
                         src.data_ptr(), src_l, n);
      },
      EMBER_ON_CUDA(cuda::scatter_add(dst.dtype(), dst.data_ptr(), dst_l, dim_stride, index.dtype(),
                                      index.data_ptr(), idx_l, src.data_ptr(), src_l, n, dst.shape()[size_t(dim)],
                                      stream)));
}

Tensor same_device_grad(const Tensor& g, const Tensor& like_index) {
  EMBER_CHECK(g.device() == like_index.device(), "index backward: gradient on ", g.device().str(),
              " but the index on ", like_index.device().str());
  return g;
}

/// Backward of index_select and gather: scatter-add the gradient back along `dim`. They
/// differ only in how the index maps onto the gradient's elements.
struct IndexBackward : autograd::Node {
  Shape in_shape;
  int64_t dim;
  autograd::SavedTensor index;
  bool gather;  // gather: the index has the gradient's shape; index_select: one per slice
  IndexBackward(Shape in_shape, int64_t dim, const Tensor& index, bool gather)
      : in_shape(std::move(in_shape)), dim(dim), index(index), gather(gather) {}
  TensorList apply(TensorList&& g) override {
    if (!g[0].defined()) return {Tensor()};
    Tensor ix = index.unpack(*this);
    Tensor gy = same_device_grad(g[0], ix);
    Tensor gx = zeros(in_shape, {.dtype = gy.dtype(), .device = gy.device()});
    scatter_add_into(gx, dim, ix, gather ? layout_of(ix) : select_index_layout(ix, gy.shape(), dim), gy);
    return {gx};
  }
  std::string name() const override { return gather ? "GatherBackward" : "IndexSelectBackward"; }
  void release_saved() override { index.reset(); }
};

}  // namespace

Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index) {
  check_index(x, index, "index_select");
  EMBER_CHECK(x.dim() > 0, "index_select: cannot index a 0-d tensor");
  EMBER_CHECK(index.dim() <= 1, "index_select: expected a 1-D (or 0-d) index, got shape ",
              index.shape_str());
  int64_t d = wrap_dim(dim, x.dim(), "index_select");
  check_index_range(index, x.shape()[size_t(d)], "index_select", d);
  Shape out_shape = x.shape();
  out_shape[size_t(d)] = index.numel();
  Tensor out = empty(out_shape, {.dtype = x.dtype(), .device = x.device()});
  gather_into(out, x, d, index, select_index_layout(index, out_shape, d));
  if (auto node = autograd::make_node<IndexBackward>({x}, x.shape(), d, index, false))
    autograd::set_history(out, node);
  return out;
}

Tensor gather(const Tensor& x, int64_t dim, const Tensor& index) {
  check_index(x, index, "gather");
  EMBER_CHECK(x.dim() > 0, "gather: cannot gather from a 0-d tensor");
  EMBER_CHECK(index.dim() == x.dim(), "gather: the index has ", index.dim(), " dims (shape ",
              index.shape_str(), ") but the input has ", x.dim(), " (shape ", x.shape_str(), ")");
  int64_t d = wrap_dim(dim, x.dim(), "gather");
  for (int64_t k = 0; k < x.dim(); ++k) {
    EMBER_CHECK(k == d || index.shape()[size_t(k)] <= x.shape()[size_t(k)], "gather: index shape ",
                index.shape_str(), " exceeds input shape ", x.shape_str(), " at dim ", k,
                " (only dim ", d, " may be larger)");
  }
  check_index_range(index, x.shape()[size_t(d)], "gather", d);
  Tensor out = empty(index.shape(), {.dtype = x.dtype(), .device = x.device()});
  gather_into(out, x, d, index, layout_of(index));
  if (auto node = autograd::make_node<IndexBackward>({x}, x.shape(), d, index, true))
    autograd::set_history(out, node);
  return out;
}

}  // namespace ember
