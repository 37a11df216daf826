#pragma once
// Reductions over the middle axis of a contiguous (outer, r, inner) view:
// out[o, i] = reduce_r in[o, r, i]. The op layer brings any dims into this form.
#include <cstdint>

#include "core/dtype.h"
#if EMBER_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

namespace ember {
enum class ReduceOp : uint8_t { sum, mean, max, min, argmax, argmin };
const char* reduce_name(ReduceOp op);
/// Output dtype: sum of integers/bool -> i64, argmax/argmin -> i64, otherwise the input's.
DType reduce_out_dtype(ReduceOp op, DType in);
}  // namespace ember

namespace ember::cpu {
void reduce(ReduceOp op, DType in_dtype, const void* in, void* out, int64_t outer, int64_t r,
            int64_t inner);
}

#if EMBER_WITH_CUDA
namespace ember::cuda {
void reduce(ReduceOp op, DType in_dtype, const void* in, void* out, int64_t outer, int64_t r,
            int64_t inner, cudaStream_t stream);
}
#endif
