#pragma once
// Batch assembly for in-memory u8 image datasets: gather rows by index and normalize them
// through a per-channel 256-entry table, in one pass; gather their labels alongside.
#include <cstdint>

#include "kernels/common.h"
#if EMBER_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

namespace ember::cpu {
/// For b < batch, c < channels, j < plane, with row = channels * plane:
///   out[b*row + c*plane + j] = table[c*256 + images[idx[b]*row + c*plane + j]]
///   out_labels[b] = labels[idx[b]]
/// The indices must already be valid (callers check them on the host).
void gather_normalize_u8(const uint8_t* images, const int64_t* labels, const int64_t* idx,
                         int64_t batch, int64_t channels, int64_t plane, const float* table,
                         float* out, int64_t* out_labels);
}  // namespace ember::cpu

#if EMBER_WITH_CUDA
namespace ember::cuda {
/// The same on the device: every pointer is device memory (idx included).
void gather_normalize_u8(const uint8_t* images, const int64_t* labels, const int64_t* idx,
                         int64_t batch, int64_t channels, int64_t plane, const float* table,
                         float* out, int64_t* out_labels, cudaStream_t stream);
}  // namespace ember::cuda
#endif
