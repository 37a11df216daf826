#pragma once
// Note [One dispatch]: how an op runs its kernel on the tensor's device. Every op (in
// autograd/ops, and the copies and random fills of tensor/) writes
//
//   on_device(x.device(), "relu",
//             [&] { cpu::unary(op, ...); },
//             EMBER_ON_CUDA(cuda::unary(op, ..., stream)));
//
// The CPU lambda runs for CPU tensors. For CUDA tensors the helper makes the tensor's GPU
// current (DeviceGuard) and gives the CUDA code that device's current stream as `stream`.
// In a build without CUDA the CUDA code is not compiled at all (EMBER_ON_CUDA drops it) and a
// CUDA tensor gets check_device_available's error naming the op ("built without CUDA").
// Autocast's casts come before, at the op's entry
// (autocast::inputs, Note [Autocast policy]): by the time an op dispatches, its inputs have
// the dtypes it computes in.
#include <utility>

#include "tensor/layout.h"
#include "tensor/tensor.h"
#if EMBER_WITH_CUDA
#include "core/cuda/stream.h"
#endif

namespace ember {

namespace detail {
/// What EMBER_ON_CUDA gives in a build without CUDA: never called.
struct NoCudaCode {};
}  // namespace detail

#if EMBER_WITH_CUDA
/// The CUDA half of an on_device call: statements that may use `stream` (the current
/// stream of the tensor's device, already made current).
#define EMBER_ON_CUDA(...) [&](cudaStream_t stream) { __VA_ARGS__; }
#else
#define EMBER_ON_CUDA(...) ::ember::detail::NoCudaCode{}
#endif

template <class CpuFn, class CudaFn>
void on_device(Device d, const char* op, CpuFn&& cpu_fn, CudaFn&& cuda_fn) {
  if (d.is_cpu()) {
    std::forward<CpuFn>(cpu_fn)();
    return;
  }
  check_device_available(d, op);  // throws in a build without CUDA
#if EMBER_WITH_CUDA
  cuda::DeviceGuard guard(d.index);
  std::forward<CudaFn>(cuda_fn)(cuda::current_stream(d.index));
#else
  (void)cuda_fn;
#endif
}

}  // namespace ember
