// copy_into: the raw copy (any dtype, any device, broadcasting src) that contiguous(),
// to() and copy_() are built on.
#include "kernels/copy.h"
#include "tensor/layout.h"
#if EMBER_WITH_CUDA
#include "kernels/cuda/check.h"
#include "tensor/cuda/stream.h"
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
  if (dst.device().is_cpu()) {
    cpu::copy(src.dtype(), src.data_ptr(), ls, dst.dtype(), dst.data_ptr(), ld, n);
    return;
  }
#if EMBER_WITH_CUDA
  int dev = dst.device().index;
  cuda::DeviceGuard g(dev);
  cuda::copy(src.dtype(), src.data_ptr(), ls, dst.dtype(), dst.data_ptr(), ld, n,
             cuda::current_stream(dev));
#endif
}
}  // namespace

Tensor contiguous_raw(const Tensor& t) {
  if (t.is_contiguous()) return t;
  Tensor out = empty(t.shape(), {.dtype = t.dtype(), .device = t.device()});
  copy_into(out, t);
  return out;
}

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
  // Across devices: make a contiguous block of dst's dtype and shape on the source side,
  // move the bytes, then place them (the final copy handles dst's strides).
  Tensor staged = empty(dst.shape(), {.dtype = dst.dtype(), .device = src.device()});
  copy_same_device(staged, src);
  Tensor landed = dst.is_contiguous() ? dst
                                      : empty(dst.shape(), {.dtype = dst.dtype(), .device = dst.device()});
  size_t nbytes = size_t(dst.nbytes());
  if (src.device().is_cpu()) {  // host -> device
    int dev = dst.device().index;
    cuda::DeviceGuard g(dev);
    cudaStream_t s = cuda::current_stream(dev);
    EMBER_CUDA_CHECK(cudaMemcpyAsync(landed.data_ptr(), staged.data_ptr(), nbytes, cudaMemcpyHostToDevice, s));
    EMBER_CUDA_CHECK(cudaStreamSynchronize(s));  // `staged` is pageable and dies here
  } else if (dst.device().is_cpu()) {  // device -> host
    int dev = src.device().index;
    cuda::DeviceGuard g(dev);
    cudaStream_t s = cuda::current_stream(dev);
    EMBER_CUDA_CHECK(cudaMemcpyAsync(landed.data_ptr(), staged.data_ptr(), nbytes, cudaMemcpyDeviceToHost, s));
    EMBER_CUDA_CHECK(cudaStreamSynchronize(s));
  } else {  // device -> device
    int sdev = src.device().index, ddev = dst.device().index;
    cuda::DeviceGuard g(sdev);
    EMBER_CUDA_CHECK(cudaStreamSynchronize(cuda::current_stream(sdev)));
    EMBER_CUDA_CHECK(cudaMemcpyPeer(landed.data_ptr(), ddev, staged.data_ptr(), sdev, nbytes));
  }
  if (!landed.is_same(dst)) copy_same_device(dst, landed);
#else
  EMBER_THROW("copy between ", src.device().str(), " and ", dst.device().str(),
              ": ember was built without CUDA");
#endif
}

}  // namespace ember
