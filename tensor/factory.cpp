// Tensor factories: empty/zeros/ones/full/arange/linspace, from memory, and random.
#include <cmath>

#include "kernels/copy.h"
#include "kernels/random.h"
#include "tensor/generator.h"
#include "tensor/dispatch.h"
#include "tensor/layout.h"
#if EMBER_WITH_CUDA
#include "core/cuda/stream.h"
#endif

namespace ember {

namespace {
void check_shape(const Shape& shape, const char* op) {
  for (int64_t s : shape) {
    EMBER_CHECK(s >= 0, op, ": negative dimension in shape ", shape_str(shape));
  }
}

std::shared_ptr<TensorImpl> make_impl(std::shared_ptr<Storage> st, const Shape& sizes,
                                      const Shape& strides, int64_t offset, DType dtype) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::move(st);
  impl->sizes = sizes;
  impl->strides = strides;
  impl->offset = offset;
  impl->dtype = dtype;
  impl->refresh();
  return impl;
}
}  // namespace

Tensor empty(const Shape& shape, TensorOptions opt) {
  check_shape(shape, "empty");
  check_device_available(opt.device, "empty");
  int64_t n = shape_numel(shape);
  int64_t nbytes = 0;
  EMBER_CHECK(!__builtin_mul_overflow(n, int64_t(dtype_size(opt.dtype)), &nbytes), "empty: shape ",
              shape_str(shape), " of ", dtype_name(opt.dtype), " needs more than 2^63 bytes");
  auto st = std::make_shared<Storage>(nbytes, opt.device);
  Tensor t(make_impl(std::move(st), shape, contiguous_strides(shape), 0, opt.dtype));
  if (opt.requires_grad) t.requires_grad_(true);
  return t;
}

Tensor make_view(const Tensor& base, const Shape& sizes, const Shape& strides, int64_t offset) {
  return Tensor(make_impl(base.storage(), sizes, strides, offset, base.dtype()));
}

Tensor full(const Shape& shape, double value, TensorOptions opt) {
  bool rg = opt.requires_grad;
  opt.requires_grad = false;
  Tensor t = empty(shape, opt);
  t.fill_(value);
  if (rg) t.requires_grad_(true);
  return t;
}
Tensor zeros(const Shape& shape, TensorOptions opt) { return full(shape, 0.0, opt); }
Tensor ones(const Shape& shape, TensorOptions opt) { return full(shape, 1.0, opt); }
Tensor empty_like(const Tensor& t) { return empty(t.shape(), {.dtype = t.dtype(), .device = t.device()}); }
Tensor zeros_like(const Tensor& t) { return zeros(t.shape(), {.dtype = t.dtype(), .device = t.device()}); }
Tensor ones_like(const Tensor& t) { return ones(t.shape(), {.dtype = t.dtype(), .device = t.device()}); }
Tensor full_like(const Tensor& t, double v) { return full(t.shape(), v, {.dtype = t.dtype(), .device = t.device()}); }
Tensor scalar_tensor(double value, TensorOptions opt) { return full({}, value, opt); }

Tensor arange(double start, double end, double step, TensorOptions opt) {
  EMBER_CHECK(step != 0.0, "arange: step must be non-zero");
  EMBER_CHECK((end - start) / step >= 0, "arange: the range [", start, ", ", end,
              ") is empty or points against step ", step);
  int64_t n = int64_t(std::ceil((end - start) / step));
  std::vector<double> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[size_t(i)] = start + double(i) * step;
  return from_vector(v, {n}, opt);
}

Tensor arange(int64_t end, TensorOptions opt) { return arange(0.0, double(end), 1.0, opt); }

Tensor linspace(double start, double end, int64_t steps, TensorOptions opt) {
  EMBER_CHECK(steps >= 0, "linspace: steps must be >= 0, got ", steps);
  std::vector<double> v(static_cast<size_t>(steps));
  double step = steps > 1 ? (end - start) / double(steps - 1) : 0.0;
  for (int64_t i = 0; i < steps; ++i) {
    // Fill from both ends so the last value is exactly `end`, as PyTorch does.
    v[size_t(i)] = i < steps / 2 ? start + step * double(i) : end - step * double(steps - 1 - i);
  }
  return from_vector(v, {steps}, opt);
}

template <class T>
Tensor from_vector(const std::vector<T>& values, const Shape& shape, TensorOptions opt) {
  check_shape(shape, "from_vector");
  EMBER_CHECK(int64_t(values.size()) == shape_numel(shape), "from_vector: ", values.size(),
              " values do not fill shape ", shape_str(shape), " (", shape_numel(shape), " elements)");
  // Wrap the vector's memory without copying, then convert into a fresh tensor.
  Tensor src;
  if constexpr (std::is_same_v<T, bool>) {
    std::vector<uint8_t> bytes(values.begin(), values.end());
    src = from_vector(bytes, shape, {.dtype = DType::u8}).to(DType::b8);
  } else {
    src = from_blob(const_cast<T*>(values.data()), shape, {.dtype = dtype_of<T>::value});
  }
  Tensor out = empty(shape, {.dtype = opt.dtype, .device = opt.device});
  copy_into(out, src);
  if (opt.requires_grad) out.requires_grad_(true);
  return out;
}

#define EMBER_FROM_VECTOR(T) \
  template Tensor from_vector<T>(const std::vector<T>&, const Shape&, TensorOptions);
EMBER_FROM_VECTOR(float)
EMBER_FROM_VECTOR(double)
EMBER_FROM_VECTOR(int32_t)
EMBER_FROM_VECTOR(int64_t)
EMBER_FROM_VECTOR(uint8_t)
EMBER_FROM_VECTOR(bool)
EMBER_FROM_VECTOR(Half)
EMBER_FROM_VECTOR(BFloat16)

Tensor from_blob(void* data, const Shape& shape, TensorOptions opt, Storage::Deleter deleter,
                 Shape strides) {
  check_shape(shape, "from_blob");
  if (strides.empty()) strides = contiguous_strides(shape);
  EMBER_CHECK(strides.size() == shape.size(), "from_blob: ", strides.size(),
              " strides for shape ", shape_str(shape));
  int64_t extent = 1;
  for (size_t i = 0; i < shape.size(); ++i) extent += (shape[i] - 1) * strides[i];
  if (shape_numel(shape) == 0) extent = 0;
  auto st = std::make_shared<Storage>(data, extent * dtype_size(opt.dtype), opt.device, std::move(deleter));
  Tensor t(make_impl(std::move(st), shape, strides, 0, opt.dtype));
  if (opt.requires_grad) t.requires_grad_(true);
  return t;
}

// ---- random
namespace {
Tensor random_tensor(RandomKind kind, const Shape& shape, TensorOptions opt, double a, double b,
                     const char* op) {
  bool rg = opt.requires_grad;
  opt.requires_grad = false;
  Tensor t = empty(shape, opt);
  int64_t n = t.numel();
  if (n > 0) {
    GeneratorState s = default_generator().reserve(random_counters(kind, n));
    on_device(
        opt.device, op, [&] { cpu::random_fill(kind, opt.dtype, t.data_ptr(), n, s.seed, s.offset, a, b); },
        EMBER_ON_CUDA(cuda::random_fill(kind, opt.dtype, t.data_ptr(), n, s.seed, s.offset, a, b, stream)));
  }
  if (rg) t.requires_grad_(true);
  return t;
}
}  // namespace

Tensor rand(const Shape& shape, TensorOptions opt) { return uniform(shape, 0.0, 1.0, opt); }
Tensor uniform(const Shape& shape, double low, double high, TensorOptions opt) {
  EMBER_CHECK(is_floating(opt.dtype), "rand/uniform: needs a floating dtype, got ", dtype_name(opt.dtype));
  EMBER_CHECK(low < high, "uniform: low (", low, ") must be below high (", high, ")");
  return random_tensor(RandomKind::uniform, shape, opt, low, high, "uniform");
}
Tensor randn(const Shape& shape, TensorOptions opt) { return normal(shape, 0.0, 1.0, opt); }
Tensor normal(const Shape& shape, double mean, double std, TensorOptions opt) {
  EMBER_CHECK(is_floating(opt.dtype), "randn/normal: needs a floating dtype, got ", dtype_name(opt.dtype));
  EMBER_CHECK(std >= 0, "normal: std must be >= 0, got ", std);
  return random_tensor(RandomKind::normal, shape, opt, mean, std, "normal");
}
Tensor randint(int64_t low, int64_t high, const Shape& shape, TensorOptions opt) {
  EMBER_CHECK(low < high, "randint: low (", low, ") must be below high (", high, ")");
  return random_tensor(RandomKind::randint, shape, opt, double(low), double(high), "randint");
}
Tensor bernoulli(const Shape& shape, double p, TensorOptions opt) {
  EMBER_CHECK(p >= 0.0 && p <= 1.0, "bernoulli: p must be in [0, 1], got ", p);
  return random_tensor(RandomKind::bernoulli, shape, opt, p, 0.0, "bernoulli");
}

}  // namespace ember
