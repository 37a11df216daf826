#pragma once
// Turning tensors into kernel layouts, and the raw (non-recording) copy used by the ops.
#include "core/strided_layout.h"
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
/// Note [In-place overlap]: an in-place op writing `out` while reading `in` is safe only
/// when every element reads the address it writes (the identical view) or memory the
/// output never touches. Anything else (x.add_(x.t()), x.copy_(x[0]) broadcast, shifted
/// slices) would read elements already overwritten, in an order that depends on the
/// device and its threads. Such ops first copy `in`: the result equals the out-of-place op.
/// True when `in`, broadcast to out's shape, shares memory with `out` without being the
/// identical view. Conservative: byte ranges that merely interleave also count.
bool overlaps_partially(const Tensor& out, const Tensor& in);
/// `in` itself, or a fresh copy of it when overlaps_partially(out, in).
Tensor unaliased_input(const Tensor& out, const Tensor& in);

/// Throws a clear error when `t` is on CUDA in a build without CUDA.
void check_device_available(Device d, const char* op);

}  // namespace ember
