#pragma once
// The per-sample choices and per-pixel source of the random crop + flip augmentation,
// shared by the CPU loop and the CUDA kernel (kernels/cpu/image_batch.cpp,
// kernels/cuda/image_batch.cu), so the GPU draws and moves exactly what the CPU does:
// Note [Augmentation randomness] in data/augment.h, Note [Batches on the device] there.
#include <cstdint>

#include "kernels/philox.h"

namespace ember {

/// The crop offset (within the padded image, in [0, 2 * padding]) and flip of one sample.
struct CropFlip {
  int64_t dx = 0, dy = 0;
  bool flip = false;
};

/// The choice for the sample with key `key` (its index in the augmented dataset) in
/// `epoch`: philox4x32(seed, epoch << 32 | key), words 0, 1, 2 give dx, dy, flip.
EMBER_HD CropFlip crop_flip_choice(uint64_t seed, int64_t epoch, int64_t key, int64_t padding, bool hflip) {
  Philox4 r = philox4x32(seed, (uint64_t(epoch) << 32) | uint64_t(key));
  const uint32_t choices = uint32_t(2 * padding + 1);
  CropFlip p;
  p.dx = int64_t(r.v[0] % choices);
  p.dy = int64_t(r.v[1] % choices);
  p.flip = hflip && (r.v[2] & 1u);
  return p;
}

/// Where output pixel (y, x) of an augmented height x width plane comes from: the offset
/// y' * width + x' in the source plane, or -1 for padding (the fill value). With
/// p = padding: y' = y + dy - p, x' = (flip ? width - 1 - x : x) + dx - p.
EMBER_HD int64_t crop_flip_source(int64_t y, int64_t x, int64_t height, int64_t width, int64_t padding,
                                  const CropFlip& c) {
  const int64_t sy = y + c.dy - padding;
  const int64_t sx = (c.flip ? width - 1 - x : x) + c.dx - padding;
  return (sy < 0 || sy >= height || sx < 0 || sx >= width) ? -1 : sy * width + sx;
}

/// The arguments of one crop + flip batch.
struct CropFlipArgs {
  uint64_t seed = 0;
  int64_t epoch = 0;
  int64_t padding = 0;
  bool hflip = false;
};

}  // namespace ember
