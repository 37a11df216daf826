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

// One thread per output pixel (grid-stride). Each thread draws its sample's choice itself
// (ten Philox rounds: cheaper than a second pass or a host upload of the choices).
__global__ void crop_flip_kernel(const float* __restrict__ in, float* __restrict__ out,
                                 const int64_t* __restrict__ keys, int64_t batch,
                                 int64_t channels, int64_t height, int64_t width,
                                 CropFlipArgs a, const float* __restrict__ fill) {
  const int64_t plane = height * width, row = channels * plane, n = batch * row;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < n; e += stride) {
    const int64_t b = e / row, k = e - b * row;
    const int64_t c = k / plane, j = k - c * plane;
    const int64_t y = j / width, x = j - y * width;
    const CropFlip choice = crop_flip_choice(a.seed, a.epoch, keys[b], a.padding, a.hflip);
    const int64_t s = crop_flip_source(y, x, height, width, a.padding, choice);
    out[e] = s < 0 ? fill[c] : in[e - j + s];
  }
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

void crop_flip(const float* in, float* out, const int64_t* keys, int64_t batch, int64_t channels,
               int64_t height, int64_t width, const CropFlipArgs& args, const float* fill,
               cudaStream_t stream) {
  const int64_t n = batch * channels * height * width;
  if (n == 0) return;
  crop_flip_kernel<<<grid_for(n), kThreads, 0, stream>>>(in, out, keys, batch, channels, height,
                                                         width, args, fill);
  EMBER_CUDA_CHECK_LAUNCH();
}

}  // namespace ember::cuda
