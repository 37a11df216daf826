// Gather + normalize of u8 image rows on the GPU (twin of kernels/cpu/image_batch.cpp).
#include "kernels/cuda/launch.h"
#include "kernels/image_batch.h"

namespace ember::cuda {

// ---- kernels
// One thread per output pixel (grid-stride); the first `batch` threads also copy labels.
__global__ void gather_normalize_u8_kernel(const uint8_t* __restrict__ images,
                                           const int64_t* __restrict__ labels,
                                           const int64_t* __restrict__ idx, int64_t batch,
                                           int64_t plane, int64_t row,
                                           const float* __restrict__ table,
                                           float* __restrict__ out,
                                           int64_t* __restrict__ out_labels) {
  const int64_t n = batch * row;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t tid = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  for (int64_t e = tid; e < n; e += stride) {
    const int64_t b = e / row, k = e - b * row;
    const int64_t c = k / plane;
    out[e] = table[c * 256 + images[idx[b] * row + k]];
  }
  for (int64_t b = tid; b < batch; b += stride) out_labels[b] = labels[idx[b]];
}

// ---- launchers
void gather_normalize_u8(const uint8_t* images, const int64_t* labels, const int64_t* idx,
                         int64_t batch, int64_t channels, int64_t plane, const float* table,
                         float* out, int64_t* out_labels, cudaStream_t stream) {
  if (batch == 0) return;
  const int64_t row = channels * plane;
  gather_normalize_u8_kernel<<<grid_for(batch * row), kThreads, 0, stream>>>(
      images, labels, idx, batch, plane, row, table, out, out_labels);
  EMBER_CUDA_CHECK_LAUNCH();
}

}  // namespace ember::cuda
