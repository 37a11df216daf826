// copy_into: the raw copy (any dtype, any device, broadcasting src) that contiguous(),
// to() and copy_() are built on.
#include "kernels/copy.h"

#include <utility>

#include "tensor/dispatch.h"
#include "tensor/layout.h"
#if EMBER_WITH_CUDA
#include "core/cuda/check.h"
#include "core/cuda/stream.h"
#endif

namespace ember {

void check_device_available(Device d, const char* op) {
#if !EMBER_WITH_CUDA
  EMBER_CHECK(d.is_cpu(), op, ": tensor is on ", d.str(),
              " but ember was built without CUDA (EMBER_WITH_CUDA=0)");
#else
  (void)d;
  (void)op;
#endif
}

namespace {
void copy_same_device(const Tensor& dst, const Tensor& src) {
  StridedLayout ls = layout_of(src, dst.shape());
  StridedLayout ld = layout_of(dst);
  StridedLayout* both[2] = {&ls, &ld};
  coalesce(both, 2);
  int64_t n = dst.numel();
  on_device(
      dst.device(), "copy", [&] { cpu::copy(src.dtype(), src.data_ptr(), ls, dst.dtype(), dst.data_ptr(), ld, n); },
      EMBER_ON_CUDA(cuda::copy(src.dtype(), src.data_ptr(), ls, dst.dtype(), dst.data_ptr(), ld, n, stream)));
}

// [lowest, highest + 1) byte addresses `t` touches when viewed with layout `l`.
std::pair<uintptr_t, uintptr_t> byte_range(const Tensor& t, const StridedLayout& l) {
  auto base = reinterpret_cast<uintptr_t>(t.data_ptr());
  int64_t lo = 0, hi = 0;
  for (int d = 0; d < l.ndim; ++d) {
    int64_t span = (l.sizes[d] - 1) * l.strides[d];
    (span < 0 ? lo : hi) += span;
  }
  int64_t es = dtype_size(t.dtype());
  return {base + uintptr_t(lo * es), base + uintptr_t((hi + 1) * es)};
}
}  // namespace

bool overlaps_partially(const Tensor& out, const Tensor& in) {
  if (out.numel() == 0 || in.numel() == 0) return false;
  if (out.storage().get() != in.storage().get()) return false;
  StridedLayout lo = layout_of(out), li = layout_of(in, out.shape());
  if (out.data_ptr() == in.data_ptr() && out.dtype() == in.dtype()) {
    bool same = true;  // the identical view: every element reads what it writes
    for (int d = 0; d < lo.ndim; ++d)
      same = same && (lo.sizes[d] == 1 || lo.strides[d] == li.strides[d]);
    if (same) return false;
  }
  auto [a0, a1] = byte_range(out, lo);
  auto [b0, b1] = byte_range(in, li);
  return a0 < b1 && b0 < a1;
}

Tensor unaliased_input(const Tensor& out, const Tensor& in) {
  if (!overlaps_partially(out, in)) return in;
  Tensor copy = empty(in.shape(), {.dtype = in.dtype(), .device = in.device()});
  copy_into(copy, in);
  return copy;
}

Tensor contiguous_raw(const Tensor& t) {
  if (t.is_contiguous()) return t;
  Tensor out = empty(t.shape(), {.dtype = t.dtype(), .device = t.device()});
  copy_into(out, t);
  return out;
}

#if EMBER_WITH_CUDA
namespace {

// A block of dst's dtype and shape already: bytes can move as they are.
bool is_plain_block(const Tensor& t, const Tensor& dst) {
  return t.is_contiguous() && t.dtype() == dst.dtype() && t.shape() == dst.shape();
}

// `t` itself, or a contiguous copy of it in dst's dtype and shape on t's device.
Tensor as_block(const Tensor& t, const Tensor& dst) {
  if (is_plain_block(t, dst)) return t;
  Tensor staged = empty(dst.shape(), {.dtype = dst.dtype(), .device = t.device()});
  copy_same_device(staged, t);
  return staged;
}

// Where the bytes land: dst itself, or a contiguous block to place from.
Tensor landing_for(const Tensor& dst) {
  return dst.is_contiguous() ? dst : empty(dst.shape(), {.dtype = dst.dtype(), .device = dst.device()});
}

bool is_pinned(const void* p) {
  cudaPointerAttributes a{};
  if (cudaPointerGetAttributes(&a, p) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  return a.type == cudaMemoryTypeHost;
}

void host_to_device(const Tensor& dst, const Tensor& src) {
  Tensor host = as_block(src, dst);
  Tensor landed = landing_for(dst);
  int dev = dst.device().index;
  cuda::DeviceGuard g(dev);
  cudaStream_t s = cuda::current_stream(dev);
  EMBER_CUDA_CHECK(cudaMemcpyAsync(landed.data_ptr(), host.data_ptr(), size_t(dst.nbytes()),
                                   cudaMemcpyHostToDevice, s));
  // From pageable memory cudaMemcpyAsync returns once it has staged the bytes, so the host
  // may reuse them at once and the host does not wait. A pinned source is read later by
  // DMA: wait, so the caller may overwrite it after copy_ returns (data loaders that keep
  // their pinned buffers alive with events use copy_to_device_async instead).
  if (is_pinned(host.data_ptr())) cuda::stream_synchronize(s);
  if (!landed.is_same(dst)) copy_same_device(dst, landed);
}

void device_to_host(const Tensor& dst, const Tensor& src) {
  int dev = src.device().index;
  cuda::DeviceGuard g(dev);
  Tensor block = as_block(src, dst);  // a device kernel only when layout or dtype differ
  Tensor landed = landing_for(dst);
  cudaStream_t s = cuda::current_stream(dev);
  EMBER_CUDA_CHECK(cudaMemcpyAsync(landed.data_ptr(), block.data_ptr(), size_t(dst.nbytes()),
                                   cudaMemcpyDeviceToHost, s));
  cuda::stream_synchronize(s);
  // The host waited anyway: raise what the device checks found meanwhile.
  cuda::report_checks(dev);
  if (!landed.is_same(dst)) copy_same_device(dst, landed);
}

cudaEvent_t record_event(int device, cudaStream_t s) {
  cuda::DeviceGuard g(device);
  cudaEvent_t e = nullptr;
  EMBER_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
  cudaError_t err = cudaEventRecord(e, s);
  if (err != cudaSuccess) cudaEventDestroy(e);
  EMBER_CUDA_CHECK(err);
  return e;
}

// Device to device, without a host wait: the copy runs on the destination's stream after
// the source stream's work so far (event `ready`), and the source stream waits for the copy
// (event `done`) before anything after it, so the blocks of `src` and of the staging
// buffer, which only that stream may reuse (Note [Streams] in core/cuda/allocator.cpp),
// are not handed out while the copy still reads them.
void device_to_device(const Tensor& dst, const Tensor& src) {
  int sdev = src.device().index, ddev = dst.device().index;
  cudaStream_t ss = cuda::current_stream(sdev), ds = cuda::current_stream(ddev);
  Tensor block;
  {
    cuda::DeviceGuard g(sdev);
    block = as_block(src, dst);
  }
  Tensor landed = landing_for(dst);
  cudaEvent_t ready = record_event(sdev, ss);
  cudaEvent_t done = nullptr;
  {
    cuda::DeviceGuard g(ddev);
    cudaError_t e = cudaStreamWaitEvent(ds, ready, 0);
    cudaEventDestroy(ready);  // released once it completes; the wait is already queued
    EMBER_CUDA_CHECK(e);
    EMBER_CUDA_CHECK(cudaMemcpyPeerAsync(landed.data_ptr(), ddev, block.data_ptr(), sdev,
                                         size_t(dst.nbytes()), ds));
    done = record_event(ddev, ds);
  }
  {
    cuda::DeviceGuard g(sdev);
    cudaError_t e = cudaStreamWaitEvent(ss, done, 0);
    cudaEventDestroy(done);
    EMBER_CUDA_CHECK(e);
  }
  if (!landed.is_same(dst)) {
    cuda::DeviceGuard g(ddev);
    copy_same_device(dst, landed);  // on ds, after the copy
  }
}

}  // namespace
#endif

void copy_into(const Tensor& dst, const Tensor& src) {
  EMBER_CHECK(dst.defined() && src.defined(), "copy: undefined tensor");
  check_device_available(dst.device(), "copy");
  check_device_available(src.device(), "copy");
  if (dst.numel() == 0) return;
  if (dst.device() == src.device()) {
    copy_same_device(dst, src);
    return;
  }
#if EMBER_WITH_CUDA
  if (src.device().is_cpu()) {
    host_to_device(dst, src);
  } else if (dst.device().is_cpu()) {
    device_to_host(dst, src);
  } else {
    device_to_device(dst, src);
  }
#else
  EMBER_THROW("copy between ", src.device().str(), " and ", dst.device().str(),
              ": ember was built without CUDA");
#endif
}

}  // namespace ember
