#pragma once
// cuDNN plumbing: EMBER_CUDNN_CHECK (throws ember::Error with file, line and cuDNN's
// message), one handle per device and thread, bound to the device's current stream, and
// the small helpers the convolution and batch-norm calls share.
#include <cudnn.h>

#include <cstddef>
#include <cstdint>

#include "core/allocator.h"
#include "core/dtype.h"
#include "core/error.h"

namespace ember::cudnn::detail {
[[noreturn]] void throw_cudnn(cudnnStatus_t s, const char* expr, const char* file, int line);
}  // namespace ember::cudnn::detail

#define EMBER_CUDNN_CHECK(expr)                                                            \
  do {                                                                                     \
    cudnnStatus_t ember_st_ = (expr);                                                      \
    if (ember_st_ != CUDNN_STATUS_SUCCESS)                                                 \
      ::ember::cudnn::detail::throw_cudnn(ember_st_, #expr, __FILE__, __LINE__);           \
  } while (0)

namespace ember::cudnn {
/// This thread's handle for `device` (made current by the caller; made on first use,
/// destroyed when the thread ends), set to the device's current stream.
cudnnHandle_t handle(int device);

/// The alpha = 1 and beta = 0 scalars of a call, in the type cuDNN expects for `t`.
struct Scalars {
  float f1 = 1.f, f0 = 0.f;
  double d1 = 1.0, d0 = 0.0;
  bool dbl;
  explicit Scalars(DType t) : dbl(t == DType::f64) {}
  const void* one() const { return dbl ? static_cast<const void*>(&d1) : &f1; }
  const void* zero() const { return dbl ? static_cast<const void*>(&d0) : &f0; }
};

/// Device memory from the caching allocator for the scope of one call (stream order makes
/// the release right after the launches safe: Note [Streams]).
struct Workspace {
  Device dev;
  void* ptr = nullptr;
  size_t size = 0;
  Workspace(int device, size_t n) : dev(DeviceType::cuda, device), size(n) {
    if (n > 0) ptr = allocator_for(dev).allocate(n);
  }
  ~Workspace() {
    if (ptr) allocator_for(dev).deallocate(ptr);
  }
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;
};

/// The largest power of two dividing the address, capped at 256: a choice made on 256-byte
/// aligned buffers may use vector loads an offset view cannot take, so caches key on it.
inline int64_t alignment(const void* p) {
  auto a = reinterpret_cast<uintptr_t>(p);
  int64_t k = 1;
  while (k < 256 && a % uintptr_t(k * 2) == 0) k *= 2;
  return k;
}

}  // namespace ember::cudnn
