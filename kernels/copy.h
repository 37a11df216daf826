#pragma once
// copy/cast between any dtypes (strided source, strided destination) and fill.
#include <cstdint>

#include "core/strided_layout.h"
#include "core/dtype.h"
#if EMBER_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

namespace ember::cpu {
/// dst[i] = cast(src[i]) for the n elements both layouts describe (same sizes).
void copy(DType src_dtype, const void* src, const StridedLayout& src_l, DType dst_dtype,
          void* dst, const StridedLayout& dst_l, int64_t n);
void fill(DType dtype, void* dst, const StridedLayout& l, double value, int64_t n);
}  // namespace ember::cpu

#if EMBER_WITH_CUDA
namespace ember::cuda {
void copy(DType src_dtype, const void* src, const StridedLayout& src_l, DType dst_dtype,
          void* dst, const StridedLayout& dst_l, int64_t n, cudaStream_t stream);
void fill(DType dtype, void* dst, const StridedLayout& l, double value, int64_t n,
          cudaStream_t stream);
}  // namespace ember::cuda
#endif
