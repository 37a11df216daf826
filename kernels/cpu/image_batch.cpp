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

}  // namespace ember::cpu
