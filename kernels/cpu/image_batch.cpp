// Gather + normalize of u8 image rows on the CPU (the reference for the CUDA twin).
#include "kernels/image_batch.h"

namespace ember::cpu {

void gather_normalize_u8(const uint8_t* images, const int64_t* labels, const int64_t* idx,
                         int64_t batch, int64_t channels, int64_t plane, const float* table,
                         float* out, int64_t* out_labels) {
  const int64_t row = channels * plane;
  for (int64_t b = 0; b < batch; ++b) {
    const uint8_t* s = images + idx[b] * row;
    float* d = out + b * row;
    for (int64_t c = 0; c < channels; ++c) {
      const float* t = table + c * 256;
      for (int64_t j = 0; j < plane; ++j) d[c * plane + j] = t[s[c * plane + j]];
    }
    out_labels[b] = labels[idx[b]];
  }
}

void crop_flip(const float* in, float* out, const int64_t* keys, int64_t batch, int64_t channels,
               int64_t height, int64_t width, const CropFlipArgs& a, const float* fill) {
  const int64_t plane = height * width;
  for (int64_t b = 0; b < batch; ++b) {
    const CropFlip choice = crop_flip_choice(a.seed, a.epoch, keys[b], a.padding, a.hflip);
    for (int64_t c = 0; c < channels; ++c) {
      const float* src = in + (b * channels + c) * plane;
      float* dst = out + (b * channels + c) * plane;
      for (int64_t y = 0; y < height; ++y) {
        for (int64_t x = 0; x < width; ++x) {
          const int64_t s = crop_flip_source(y, x, height, width, a.padding, choice);
          dst[y * width + x] = s < 0 ? fill[c] : src[s];
        }
      }
    }
  }
}

}  // namespace ember::cpu
