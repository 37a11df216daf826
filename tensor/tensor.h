#pragma once
// Tensor: a cheap handle to TensorImpl (storage + sizes/strides/offset + dtype + autograd
// metadata). Views share storage; `contiguous()`, `clone()`, `to()` are ordinary ops.
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/dtype.h"
#include "core/error.h"
#include "tensor/storage.h"

namespace ember {

using Shape = std::vector<int64_t>;
class Tensor;
using TensorList = std::vector<Tensor>;

namespace autograd {
struct Node;
}

/// Options for factories: `ember::zeros({2, 3}, {.dtype = DType::f64, .device = "cuda"})`.
struct TensorOptions {
  DType dtype = DType::f32;
  Device device = kCPU;
  bool requires_grad = false;
};

struct TensorImpl;

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  bool defined() const { return impl_ != nullptr; }
  bool is_same(const Tensor& o) const { return impl_ == o.impl_; }
  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }

  // ---- metadata
  const Shape& shape() const;
  const Shape& sizes() const { return shape(); }
  const Shape& strides() const;
  int64_t size(int64_t dim) const;    // negative dims count from the end
  int64_t stride(int64_t dim) const;
  int64_t dim() const;
  int64_t numel() const;
  int64_t offset() const;  // in elements, into the storage
  DType dtype() const;
  Device device() const;
  bool is_contiguous() const;
  bool is_cuda() const { return device().is_cuda(); }
  const std::shared_ptr<Storage>& storage() const;
  int64_t element_size() const { return dtype_size(dtype()); }
  int64_t nbytes() const { return numel() * element_size(); }

  /// Pointer to the first element (storage data + offset).
  void* data_ptr() const;
  /// Typed pointer; throws when T does not match the dtype.
  template <class T>
  T* data() const {
    EMBER_CHECK(dtype_of<T>::value == dtype(), "data<", dtype_name(dtype_of<T>::value),
                ">() called on a tensor of dtype ", dtype_name(dtype()));
    return static_cast<T*>(data_ptr());
  }

  // ---- copies and conversions (differentiable)
  Tensor contiguous() const;  // itself when already contiguous
  Tensor clone() const;
  Tensor to(Device device) const;
  Tensor to(DType dtype) const;
  Tensor to(Device device, DType dtype) const;
  Tensor cpu() const { return to(kCPU); }
  Tensor cuda(int index = 0) const { return to(Device(DeviceType::cuda, index)); }

  /// The single element as T (any numeric T); throws unless numel() == 1.
  template <class T>
  T item() const;
  double item() const { return item<double>(); }
  /// All elements, converted to T, in row-major order (copies to the CPU if needed).
  template <class T>
  std::vector<T> to_vector() const;

  // ---- autograd
  bool requires_grad() const;
  Tensor& requires_grad_(bool value = true);
  /// The accumulated gradient (undefined until backward reaches this leaf).
  Tensor grad() const;
  void set_grad(const Tensor& g) const;
  const std::shared_ptr<autograd::Node>& grad_fn() const;
  bool is_leaf() const;
  /// A view of the same storage outside the graph.
  Tensor detach() const;
  /// Runs backward from this tensor. Without `grad` the tensor must hold one element.
  void backward(const Tensor& grad = Tensor(), bool retain_graph = false) const;
  /// Hook on this tensor's gradient; may return a replacement (or an undefined tensor to
  /// keep it). Returns an id for remove_hook.
  int register_hook(std::function<Tensor(const Tensor&)> hook) const;
  void remove_hook(int id) const;
  /// For leaves: called with the leaf after its .grad has been accumulated in a backward
  /// pass (data-parallel training starts bucket allreduces from here).
  int register_grad_ready_hook(std::function<void(const Tensor&)> hook) const;
  /// Bumps the storage version: called by every in-place op (Note [Version counter]).
  void bump_version() const;
  uint64_t version() const;

  // ---- views and shape ops (defined with the ops; differentiable)
  Tensor view(const Shape& shape) const;
  Tensor reshape(const Shape& shape) const;
  Tensor flatten(int64_t start_dim = 0, int64_t end_dim = -1) const;
  Tensor squeeze(int64_t dim) const;
  Tensor unsqueeze(int64_t dim) const;
  Tensor transpose(int64_t d0, int64_t d1) const;
  Tensor t() const { return transpose(0, 1); }
  Tensor permute(const Shape& dims) const;
  Tensor expand(const Shape& shape) const;
  Tensor narrow(int64_t dim, int64_t start, int64_t length) const;
  Tensor select(int64_t dim, int64_t index) const;
  Tensor operator[](int64_t index) const { return select(0, index); }

  // ---- common math as methods (see autograd/ops.h for the full list)
  Tensor sum() const;
  Tensor sum(const Shape& dims, bool keepdim = false) const;
  Tensor mean() const;
  Tensor mean(const Shape& dims, bool keepdim = false) const;
  Tensor matmul(const Tensor& other) const;

  // ---- in-place (bump the version counter)
  Tensor& zero_();
  Tensor& fill_(double value);
  Tensor& copy_(const Tensor& src);  // broadcasts src; converts dtype and device
  Tensor& add_(const Tensor& other, double alpha = 1.0);
  Tensor& sub_(const Tensor& other);
  Tensor& mul_(const Tensor& other);
  Tensor& div_(const Tensor& other);
  Tensor& add_(double value);
  Tensor& mul_(double value);

  std::string str() const;  // readable, like operator<<
  std::string shape_str() const;

 private:
  std::shared_ptr<TensorImpl> impl_;
};

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Shape sizes;
  Shape strides;  // in elements
  int64_t offset = 0;
  DType dtype = DType::f32;
  int64_t numel = 0;
  bool contiguous = true;

  // ---- autograd metadata
  bool requires_grad = false;
  Tensor grad;
  std::shared_ptr<autograd::Node> grad_fn;  // null for leaves
  uint32_t output_nr = 0;                   // which output of grad_fn this is
  std::weak_ptr<autograd::Node> grad_accumulator;  // leaves: the AccumulateGrad node
  std::vector<std::pair<int, std::function<Tensor(const Tensor&)>>> hooks;  // leaves
  std::vector<std::pair<int, std::function<void(const Tensor&)>>> grad_ready_hooks;

  void refresh();  // recomputes numel and contiguous after sizes/strides change
};

std::string shape_str(const Shape& s);  // "[2, 3]"
std::ostream& operator<<(std::ostream& os, const Tensor& t);
Shape contiguous_strides(const Shape& sizes);
int64_t shape_numel(const Shape& s);
/// Wraps a possibly negative dim into [0, ndim); throws with the valid range otherwise.
int64_t wrap_dim(int64_t dim, int64_t ndim, const char* op = "");

// ---- factories (tensor/factory.cpp)
Tensor empty(const Shape& shape, TensorOptions opt = {});
Tensor zeros(const Shape& shape, TensorOptions opt = {});
Tensor ones(const Shape& shape, TensorOptions opt = {});
Tensor full(const Shape& shape, double value, TensorOptions opt = {});
Tensor empty_like(const Tensor& t);
Tensor zeros_like(const Tensor& t);
Tensor ones_like(const Tensor& t);
Tensor full_like(const Tensor& t, double value);
/// [start, end) in steps of `step` (f32 unless opt says otherwise).
Tensor arange(double start, double end, double step = 1.0, TensorOptions opt = {});
Tensor arange(int64_t end, TensorOptions opt = {.dtype = DType::i64});
Tensor linspace(double start, double end, int64_t steps, TensorOptions opt = {});
/// A 0-d tensor holding `value`.
Tensor scalar_tensor(double value, TensorOptions opt = {});
/// Copies `values` into a new tensor of `shape` (its numel must match).
/// Without options the dtype follows T (float -> f32, int64_t -> i64, ...).
template <class T>
Tensor from_vector(const std::vector<T>& values, const Shape& shape, TensorOptions opt);
template <class T>
Tensor from_vector(const std::vector<T>& values, const Shape& shape) {
  return from_vector(values, shape, TensorOptions{.dtype = dtype_of<T>::value});
}
template <class T>
Tensor from_vector(const std::vector<T>& values) {
  return from_vector(values, Shape{int64_t(values.size())});
}
/// Wraps memory the caller owns (no copy); `deleter` (may be empty) runs when the last
/// view is gone. `opt.dtype` must describe the memory; strides default to contiguous.
Tensor from_blob(void* data, const Shape& shape, TensorOptions opt = {},
                 Storage::Deleter deleter = {}, Shape strides = {});
/// A tensor that views `storage` with the given geometry (used by the ops).
Tensor make_view(const Tensor& base, const Shape& sizes, const Shape& strides, int64_t offset);

// ---- random (counter-based Philox stream: same numbers on CPU and CUDA for one seed)
Tensor rand(const Shape& shape, TensorOptions opt = {});   // U[0, 1)
Tensor randn(const Shape& shape, TensorOptions opt = {});  // N(0, 1)
Tensor randint(int64_t low, int64_t high, const Shape& shape,
               TensorOptions opt = {.dtype = DType::i64});  // [low, high)
Tensor bernoulli(const Shape& shape, double p, TensorOptions opt = {});  // 1 with prob. p
Tensor uniform(const Shape& shape, double low, double high, TensorOptions opt = {});
Tensor normal(const Shape& shape, double mean, double std, TensorOptions opt = {});

}  // namespace ember
