#pragma once
// Batch assembly for in-memory u8 image datasets: gather rows by index and normalize them
// through a per-channel 256-entry table, in one pass; gather their labels alongside.
#include <cstdint>

#include "core/strided_layout.h"
#include "kernels/image_batch_math.h"
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

/// For b < batch, c < channels, y < height, x < width, with choice = crop_flip_choice(
/// args.seed, args.epoch, keys[b], args.padding, args.hflip) and s = crop_flip_source(y, x,
/// height, width, args.padding, choice):
///   out[b, c, y, x] = s < 0 ? fill[c] : in[b, c, s]
/// `in` and `out` are (batch, channels, height, width) and must not overlap.
void crop_flip(const float* in, float* out, const int64_t* keys, int64_t batch, int64_t channels,
               int64_t height, int64_t width, const CropFlipArgs& args, const float* fill);
}  // namespace ember::cpu

#if EMBER_WITH_CUDA
namespace ember::cuda {
/// The same on the device: every pointer is device memory (idx included).
void gather_normalize_u8(const uint8_t* images, const int64_t* labels, const int64_t* idx,
                         int64_t batch, int64_t channels, int64_t plane, const float* table,
                         float* out, int64_t* out_labels, cudaStream_t stream);

/// The same on the device: in, out, keys and fill are device memory.
void crop_flip(const float* in, float* out, const int64_t* keys, int64_t batch, int64_t channels,
               int64_t height, int64_t width, const CropFlipArgs& args, const float* fill,
               cudaStream_t stream);
}  // namespace ember::cuda
#endif
