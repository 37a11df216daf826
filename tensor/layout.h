#pragma once
// Turning tensors into kernel layouts, and the raw (non-recording) copy used by the ops.
#include "kernels/common.h"
#include "tensor/tensor.h"

namespace ember {

/// Layout of `t` viewed with `sizes` (default: its own); broadcast dims get stride 0.
StridedLayout layout_of(const Tensor& t, const Shape& sizes = {});
/// Merges adjacent dims that are contiguous in every layout (all share sizes); fewer dims
/// mean cheaper index math in the kernels.
void coalesce(StridedLayout* const* ls, int n);

/// Copies src (broadcast to dst's shape, any dtype/device) into dst's memory. Not recorded
/// by autograd; the building block of contiguous(), to(), copy_().
void copy_into(const Tensor& dst, const Tensor& src);
/// `t` itself when contiguous, else a contiguous copy; not recorded by autograd (for ops
/// whose kernels want dense memory and whose backward is their own node).
Tensor contiguous_raw(const Tensor& t);
/// Throws a clear error when `t` is on CUDA in a build without CUDA.
void check_device_available(Device d, const char* op);

}  // namespace ember
