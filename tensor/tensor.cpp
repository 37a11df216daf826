// Tensor metadata, storage, dtype/device helpers and printing.
#include "tensor/tensor.h"

#include <atomic>
#include <cmath>
#include <cstring>
#include <iomanip>
#include <sstream>

#include "core/allocator.h"
#include "tensor/layout.h"

namespace ember {

namespace detail {
void throw_error(const char* file, int line, const std::string& msg) { throw Error(msg, file, line); }
}  // namespace detail

// ---- dtype
const char* dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "f32";
    case DType::f64: return "f64";
    case DType::f16: return "f16";
    case DType::bf16: return "bf16";
    case DType::i32: return "i32";
    case DType::i64: return "i64";
    case DType::u8: return "u8";
    case DType::b8: return "bool";
  }
  return "?";
}

DType promote_types(DType a, DType b) {
  if (a == b) return a;
  if (is_floating(a) != is_floating(b)) return is_floating(a) ? a : b;
  if (is_floating(a)) {
    if (a == DType::f64 || b == DType::f64) return DType::f64;
    return DType::f32;  // f32 with a 16-bit type, or f16 with bf16
  }
  auto rank = [](DType t) {
    switch (t) {
      case DType::b8: return 0;
      case DType::u8: return 1;
      case DType::i32: return 2;
      default: return 3;
    }
  };
  return rank(a) >= rank(b) ? a : b;
}

// ---- device
Device::Device(const std::string& spec) {
  if (spec == "cpu") {
    type = DeviceType::cpu;
    index = 0;
    return;
  }
  if (spec == "cuda") {
    type = DeviceType::cuda;
    index = 0;
    return;
  }
  if (spec.rfind("cuda:", 0) == 0 && spec.size() > 5) {
    const std::string num = spec.substr(5);
    bool digits = num.find_first_not_of("0123456789") == std::string::npos;
    if (digits && num.size() < 6) {
      type = DeviceType::cuda;
      index = std::stoi(num);
      return;
    }
  }
  EMBER_THROW("invalid device '", spec, "': expected cpu, cuda or cuda:N");
}

std::string Device::str() const {
  return is_cpu() ? std::string("cpu") : "cuda:" + std::to_string(index);
}

// ---- storage
namespace {
std::atomic<int64_t> g_live_storages{0};
std::atomic<int64_t> g_live_bytes{0};
}  // namespace
int64_t Storage::live_count() { return g_live_storages.load(); }
int64_t Storage::live_bytes() { return g_live_bytes.load(); }

Storage::Storage(int64_t nbytes, Device device) : nbytes_(nbytes), device_(device) {
  g_live_storages.fetch_add(1);
  g_live_bytes.fetch_add(nbytes);
  Allocator& a = allocator_for(device);
  data_ = nbytes > 0 ? a.allocate(size_t(nbytes)) : nullptr;
  deleter_ = [&a](void* p) { a.deallocate(p); };
}

Storage::Storage(void* data, int64_t nbytes, Device device, Deleter deleter)
    : data_(data), nbytes_(nbytes), device_(device), deleter_(std::move(deleter)) {
  g_live_storages.fetch_add(1);
  g_live_bytes.fetch_add(nbytes);
}

Storage::~Storage() {
  g_live_storages.fetch_sub(1);
  g_live_bytes.fetch_sub(nbytes_);
  if (data_ && deleter_) deleter_(data_);
}

// ---- shapes
// Every shape must have a product of its non-zero sizes that fits in int64: that product
// bounds the element count and every contiguous stride. It is checked even when a size is
// 0, so that [2^62, 2^62, 0] is an error here rather than an overflow in the strides or in
// a later reshape of the (empty) tensor.
int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  bool empty = false;
  for (int64_t v : s) {
    if (v == 0) {
      empty = true;
      continue;
    }
    EMBER_CHECK(!__builtin_mul_overflow(n, v, &n), "shape ", shape_str(s),
                ": the product of its sizes overflows int64 (more than 2^63 elements)");
  }
  return empty ? 0 : n;
}

Shape contiguous_strides(const Shape& sizes) {
  Shape st(sizes.size());
  int64_t acc = 1;
  for (int64_t i = int64_t(sizes.size()) - 1; i >= 0; --i) {
    st[size_t(i)] = acc;
    EMBER_CHECK(!__builtin_mul_overflow(acc, std::max<int64_t>(sizes[size_t(i)], 1), &acc),
                "shape ", shape_str(sizes), ": its strides overflow int64 (more than 2^63 elements)");
  }
  return st;
}

std::string shape_str(const Shape& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

int64_t wrap_dim(int64_t dim, int64_t ndim, const char* op) {
  int64_t n = std::max<int64_t>(ndim, 1);
  EMBER_CHECK(dim >= -n && dim < n, op, (*op ? ": " : ""), "dimension ", dim,
              " out of range for a tensor of ", ndim, " dims (expected in [", -n, ", ", n - 1, "])");
  return dim < 0 ? dim + n : dim;
}

void TensorImpl::refresh() {
  numel = shape_numel(sizes);
  contiguous = true;
  int64_t expect = 1;
  for (int64_t i = int64_t(sizes.size()) - 1; i >= 0; --i) {
    if (sizes[size_t(i)] != 1 && strides[size_t(i)] != expect) {
      contiguous = false;
      break;
    }
    expect *= sizes[size_t(i)];
  }
}

// ---- Tensor accessors
#define EMBER_DEFINED_CHECK() EMBER_CHECK(impl_, "operation on an undefined tensor")

const Shape& Tensor::shape() const { EMBER_DEFINED_CHECK(); return impl_->sizes; }
const Shape& Tensor::strides() const { EMBER_DEFINED_CHECK(); return impl_->strides; }
int64_t Tensor::dim() const { EMBER_DEFINED_CHECK(); return int64_t(impl_->sizes.size()); }
int64_t Tensor::numel() const { EMBER_DEFINED_CHECK(); return impl_->numel; }
int64_t Tensor::offset() const { EMBER_DEFINED_CHECK(); return impl_->offset; }
DType Tensor::dtype() const { EMBER_DEFINED_CHECK(); return impl_->dtype; }
Device Tensor::device() const { EMBER_DEFINED_CHECK(); return impl_->storage->device(); }
bool Tensor::is_contiguous() const { EMBER_DEFINED_CHECK(); return impl_->contiguous; }
const std::shared_ptr<Storage>& Tensor::storage() const { EMBER_DEFINED_CHECK(); return impl_->storage; }

int64_t Tensor::size(int64_t d) const {
  EMBER_CHECK(dim() > 0, "size(", d, ") called on a 0-d tensor");
  return impl_->sizes[size_t(wrap_dim(d, dim(), "size"))];
}
int64_t Tensor::stride(int64_t d) const {
  EMBER_CHECK(dim() > 0, "stride(", d, ") called on a 0-d tensor");
  return impl_->strides[size_t(wrap_dim(d, dim(), "stride"))];
}

void* Tensor::data_ptr() const {
  EMBER_DEFINED_CHECK();
  return static_cast<char*>(impl_->storage->data()) + impl_->offset * dtype_size(impl_->dtype);
}

std::string Tensor::shape_str() const { return ember::shape_str(shape()); }

void Tensor::bump_version() const { EMBER_DEFINED_CHECK(); impl_->storage->bump_version(); }
uint64_t Tensor::version() const { EMBER_DEFINED_CHECK(); return impl_->storage->version(); }

template <class T>
std::vector<T> Tensor::to_vector() const {
  EMBER_DEFINED_CHECK();
  Tensor c = detach().to(kCPU, dtype_of<T>::value).contiguous();
  const T* p = static_cast<const T*>(c.data_ptr());
  return std::vector<T>(p, p + c.numel());
}

template <class T>
T Tensor::item() const {
  EMBER_CHECK(numel() == 1, "item() needs a tensor with one element, got shape ", shape_str());
  if constexpr (std::is_same_v<T, double> || std::is_same_v<T, float>) {
    return T(to_vector<double>()[0]);
  } else if constexpr (std::is_same_v<T, bool>) {
    return to_vector<double>()[0] != 0.0;
  } else {
    return T(to_vector<int64_t>()[0]);
  }
}

#define EMBER_INSTANTIATE_T(T) \
  template std::vector<T> Tensor::to_vector<T>() const; \
  template T Tensor::item<T>() const;
EMBER_INSTANTIATE_T(float)
EMBER_INSTANTIATE_T(double)
EMBER_INSTANTIATE_T(int32_t)
EMBER_INSTANTIATE_T(int64_t)
EMBER_INSTANTIATE_T(uint8_t)
EMBER_INSTANTIATE_T(bool)
template std::vector<Half> Tensor::to_vector<Half>() const;
template std::vector<BFloat16> Tensor::to_vector<BFloat16>() const;

// ---- layouts and raw copy
StridedLayout layout_of(const Tensor& t, const Shape& sizes_in) {
  const Shape& sizes = sizes_in.empty() ? t.shape() : sizes_in;
  int64_t nd = int64_t(sizes.size());
  EMBER_CHECK(nd <= kMaxDims, "tensors of more than ", kMaxDims, " dims are not supported (got ",
              nd, ")");
  StridedLayout l;
  l.ndim = int(nd);
  int64_t off = nd - t.dim();  // leading broadcast dims
  EMBER_CHECK(off >= 0, "cannot view shape ", t.shape_str(), " as ", shape_str(sizes));
  for (int64_t i = 0; i < nd; ++i) {
    l.sizes[i] = sizes[size_t(i)];
    if (i < off) {
      l.strides[i] = 0;
    } else {
      int64_t ts = t.shape()[size_t(i - off)];
      EMBER_CHECK(ts == sizes[size_t(i)] || ts == 1, "cannot broadcast shape ", t.shape_str(),
                  " to ", shape_str(sizes));
      l.strides[i] = ts == sizes[size_t(i)] ? t.strides()[size_t(i - off)] : 0;
    }
  }
  return l;
}

void coalesce(StridedLayout* const* ls, int n) {
  StridedLayout& l0 = *ls[0];
  if (l0.ndim <= 1) return;
  // Drop size-1 dims first, then merge neighbours (d, d+1) when every layout has
  // stride[d] == stride[d+1] * size[d+1].
  int nd = 0;
  for (int d = 0; d < l0.ndim; ++d) {
    if (l0.sizes[d] == 1) continue;
    for (int k = 0; k < n; ++k) {
      ls[k]->sizes[nd] = ls[k]->sizes[d];
      ls[k]->strides[nd] = ls[k]->strides[d];
    }
    ++nd;
  }
  if (nd == 0) {
    for (int k = 0; k < n; ++k) {
      ls[k]->ndim = 1;
      ls[k]->sizes[0] = 1;
      ls[k]->strides[0] = 1;
    }
    return;
  }
  int out = 0;
  for (int d = 1; d < nd; ++d) {
    bool merge = true;
    for (int k = 0; k < n; ++k) {
      if (ls[k]->strides[out] != ls[k]->strides[d] * ls[k]->sizes[d]) merge = false;
    }
    for (int k = 0; k < n; ++k) {
      if (merge) {
        ls[k]->sizes[out] *= ls[k]->sizes[d];
        ls[k]->strides[out] = ls[k]->strides[d];
      } else {
        ls[k]->sizes[out + 1] = ls[k]->sizes[d];
        ls[k]->strides[out + 1] = ls[k]->strides[d];
      }
    }
    if (!merge) ++out;
  }
  for (int k = 0; k < n; ++k) ls[k]->ndim = out + 1;
}

// ---- printing
namespace {
void print_rec(std::ostream& os, const std::vector<double>& v, const Shape& s, size_t dim,
               int64_t& idx, bool integral, int indent) {
  if (s.empty()) {
    os << v[0];
    return;
  }
  os << "[";
  int64_t n = s[dim];
  bool elide = n > 12;
  for (int64_t i = 0; i < n; ++i) {
    if (elide && i == 3) {
      int64_t skip = n - 6;
      int64_t inner = 1;
      for (size_t d = dim + 1; d < s.size(); ++d) inner *= s[d];
      idx += skip * inner;
      i += skip - 1;
      os << (dim + 1 == s.size() ? " ...," : "\n" + std::string(size_t(indent + 1), ' ') + "...,");
      if (dim + 1 < s.size()) os << "\n" << std::string(size_t(indent + 1), ' ');
      continue;
    }
    if (dim + 1 == s.size()) {
      double x = v[size_t(idx++)];
      if (integral) os << std::setw(1) << int64_t(x);
      else os << std::setw(10) << x;
    } else {
      print_rec(os, v, s, dim + 1, idx, integral, indent + 1);
    }
    if (i + 1 < n) os << (dim + 1 == s.size() ? ", " : ",\n" + std::string(size_t(indent + 1), ' '));
  }
  os << "]";
}
}  // namespace

std::ostream& operator<<(std::ostream& os, const Tensor& t) {
  if (!t.defined()) return os << "Tensor(undefined)";
  std::vector<double> v = t.to_vector<double>();
  std::ostringstream body;
  body << std::setprecision(6);
  int64_t idx = 0;
  print_rec(body, v, t.shape(), 0, idx, is_integral(t.dtype()), 7);
  os << "tensor(" << body.str() << ", shape=" << t.shape_str() << ", dtype=" << t.dtype();
  if (!t.device().is_cpu()) os << ", device=" << t.device();
  if (t.requires_grad()) os << ", requires_grad";
  return os << ")";
}

std::string Tensor::str() const {
  std::ostringstream os;
  os << *this;
  return os.str();
}

}  // namespace ember
