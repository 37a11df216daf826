#pragma once
// Gather-by-index along one dim and its adjoint, scatter-add; the kernels behind
// index_select and gather (and their backwards).
//
// Note [Index layouts]: both ops are written as one loop over the n elements of an
// "iteration shape" (the output's shape for gather, the gradient's for scatter-add). Every
// operand gets a StridedLayout over that shape. The indexed operand's layout has stride 0
// in the indexed dim; the index value picked for element i is multiplied by `dim_stride`
// and added. index_select is the case where the index layout has stride 0 in every dim
// but the indexed one, so one kernel serves both ops.
#include <cstdint>

#include "core/strided_layout.h"
#include "core/dtype.h"
#include "core/error.h"
#if EMBER_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

namespace ember {
/// Calls f with a null `const int64_t*` or `const int32_t*` telling the index type.
template <class F>
void dispatch_index(DType index_dtype, F&& f) {
  switch (index_dtype) {
    case DType::i64: f(static_cast<const int64_t*>(nullptr)); break;
    case DType::i32: f(static_cast<const int32_t*>(nullptr)); break;
    default: EMBER_THROW("index: expected an i64 or i32 index tensor, got ", dtype_name(index_dtype));
  }
}
}  // namespace ember

namespace ember::cpu {
/// out[out_l(i)] = src[src_l(i) + index[idx_l(i)] * dim_stride] for i in [0, n).
/// Index dtype i64 or i32; indices must have been checked with find_bad_index.
void gather(DType dtype, const void* src, const StridedLayout& src_l, int64_t dim_stride,
            DType index_dtype, const void* index, const StridedLayout& idx_l, void* out,
            const StridedLayout& out_l, int64_t n);
/// dst[dst_l(i) + index[idx_l(i)] * dim_stride] += src[src_l(i)] for i in [0, n).
/// Floating dtypes only (it is the backward of gather).
void scatter_add(DType dtype, void* dst, const StridedLayout& dst_l, int64_t dim_stride,
                 DType index_dtype, const void* index, const StridedLayout& idx_l,
                 const void* src, const StridedLayout& src_l, int64_t n);
/// The first i in [0, n) whose index[idx_l(i)] lies outside [0, limit), or -1 when all are
/// in range; `*bad_value` receives that index value.
int64_t find_bad_index(DType index_dtype, const void* index, const StridedLayout& idx_l,
                       int64_t n, int64_t limit, int64_t* bad_value);
}  // namespace ember::cpu

namespace ember {
/// The uncoalesced geometry of a scatter-add, for the deterministic kernel that gives each
/// destination element to one thread: dst has `dst_sizes`; the iteration shape (the
/// gradient's) is `iter_sizes`, equal to dst_sizes except along `dim` and possibly smaller
/// elsewhere (gather); index and src are strided over the iteration shape.
struct ScatterGeometry {
  int ndim = 0;
  int dim = 0;
  int64_t dst_sizes[kMaxDims] = {}, dst_strides[kMaxDims] = {};
  int64_t iter_sizes[kMaxDims] = {}, idx_strides[kMaxDims] = {}, src_strides[kMaxDims] = {};
};
}  // namespace ember

#if EMBER_WITH_CUDA
namespace ember::cuda {
/// As the CPU one. Index values outside [0, limit) read as 0 instead of faulting: the
/// range check is deferred (Note [Deferred checks] in core/cuda_context.h) and reports them.
void gather(DType dtype, const void* src, const StridedLayout& src_l, int64_t dim_stride,
            DType index_dtype, const void* index, const StridedLayout& idx_l, void* out,
            const StridedLayout& out_l, int64_t n, int64_t limit, cudaStream_t stream);
/// atomicAdd for f32, f64, f16 and bf16: fast, but the order of the additions (and so the
/// rounding) varies from run to run. Index values outside [0, limit) are skipped.
void scatter_add(DType dtype, void* dst, const StridedLayout& dst_l, int64_t dim_stride,
                 DType index_dtype, const void* index, const StridedLayout& idx_l,
                 const void* src, const StridedLayout& src_l, int64_t n, int64_t limit,
                 cudaStream_t stream);
/// The deterministic twin (deterministic mode): one thread per destination element walks
/// the indexed dim in order and adds the matching source elements, rounding after each
/// add as the CPU does: bit-identical to cpu::scatter_add. Costs dst elements x the
/// iteration length along dim, so it is slow for large vocabularies.
void scatter_add_deterministic(DType dtype, void* dst, DType index_dtype, const void* index,
                               const void* src, const ScatterGeometry& g, cudaStream_t stream);
/// The range check on the device, without waiting: `result` (two int64 of device memory the
/// caller owns until the work is done) receives {first bad position, its value}, or {-1, 0}.
void find_bad_index(DType index_dtype, const void* index, const StridedLayout& idx_l,
                    int64_t n, int64_t limit, int64_t* result, cudaStream_t stream);
/// result[0] holds a candidate position p, read as unsigned (p >= n: none). Rewrites
/// result as {p, index value at p}, or {-1, 0}. Shared by find_bad_index and the losses.
void resolve_bad_index(DType index_dtype, const void* index, const StridedLayout& idx_l,
                       int64_t n, int64_t* result, cudaStream_t stream);
}  // namespace ember::cuda
#endif
