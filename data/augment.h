#pragma once
// Random crop with zero padding and random horizontal flip (the standard CIFAR training
// augmentation), reproducible: Note [Augmentation randomness].
//
// Note [Augmentation randomness]: the crop offsets and the flip of a sample are drawn from
// philox4x32(seed, counter = epoch << 32 | index), with index the sample's index in the
// wrapped dataset. They depend on nothing else: not on the batch, the number of loader
// workers or the order batches are made in, so a resumed run (which restores the loader's
// epoch and batch) sees exactly the augmented images the uninterrupted run would have seen.
// The epoch reaches the dataset through Dataset::fill, which the DataLoader
// calls with the epoch of each batch's pass; there is no mutable epoch in the dataset that
// prefetching workers could read at the wrong time.
//
// Note [Batches on the device]: a batch of an AugmentedDataset is, in one place
// (AugmentedDataset::get_batch_on, and fill for the CPU loader's buffers),
//   plain = base.get_batch_on(indices, epoch, device)   // gather + normalize
//   out   = crop_flip(plain, seed, epoch, keys = indices, fill = normalized black)
// on whichever device the batch is made. The CPU and CUDA crop_flip
// (kernels/image_batch.h) share the choice and the pixel source (kernels/image_batch_math.h)
// and only move floats, so the two devices give the same bits: a run whose data stays on
// the GPU (DataLoaderOptions::dataset_on_device, the apps' default on CUDA) sees exactly the
// images a CPU-augmented run sees, and resume stays exact either way. Cropping after the
// normalization equals torchvision's pad-then-normalize because padding pixels are filled
// with the normalized value of black (the table's entry 0). augment_params/augment_image
// below are the original per-image reference; tests check the batch kernels against them.
#include <cstdint>
#include <memory>
#include <mutex>

#include "data/dataset.h"
#include "autograd/ops.h"  // CropFlipArgs, crop_flip_into

namespace ember::data {

struct AugmentOptions {
  /// Pad each side with this many pixels, then crop back to the original size at a random
  /// offset (0: no crop).
  int64_t padding = 4;
  /// Mirror left-right with probability 1/2.
  bool hflip = true;
  /// The normalization the wrapped dataset applies: padding pixels are black u8 pixels
  /// normalized with it (as torchvision pads before ToTensor/Normalize).
  Normalize normalize = Normalize::none();
};

/// The random choices for one sample.
struct AugmentParams {
  int64_t dx = 0, dy = 0;  // crop offset within the padded image, in [0, 2 * padding]
  bool flip = false;
};

/// The choices for sample `index` in `epoch` (Note [Augmentation randomness]).
AugmentParams augment_params(uint64_t seed, int64_t epoch, int64_t index, const AugmentOptions& options);

/// Writes the augmented `src` (C, H, W) to `dst` (C, H, W): out(c, y, x) = in(c, y + dy - p,
/// x' + dx - p) with x' = W - 1 - x when flipped else x, and fill[c] outside the image.
void augment_image(const float* src, float* dst, int64_t channels, int64_t height, int64_t width,
                   int64_t padding, const AugmentParams& params, const float* fill);

/// `base` with the "image" field of every sample (f32 (C, H, W)) randomly cropped and
/// flipped, differently each epoch; its other fields pass through unchanged.
class AugmentedDataset : public Dataset {
 public:
  AugmentedDataset(std::shared_ptr<const Dataset> base, AugmentOptions options, uint64_t seed);
  int64_t size() const override { return base_->size(); }
  std::vector<Field> fields() const override { return base_->fields(); }
  void fill(std::span<const int64_t> indices, int64_t epoch, const TensorList& out) const override;
  /// On the device when the base gathers there (Note [Batches on the device]).
  bool supports_device_batches() const override { return base_->supports_device_batches(); }
  Batch get_batch_on(std::span<const int64_t> indices, int64_t epoch, Device device) const override;
  const AugmentOptions& options() const { return options_; }
  uint64_t seed() const { return seed_; }

 private:
  CropFlipArgs args(int64_t epoch) const;
  Tensor fill_on(Device device) const;  // fill_ on `device`, uploaded once
  std::shared_ptr<const Dataset> base_;
  size_t image_field_ = 0;  // the position of "image" in the base's fields
  AugmentOptions options_;
  uint64_t seed_;
  std::vector<float> fill_;  // per channel
  mutable std::mutex fill_mu_;
  mutable std::vector<Tensor> device_fills_;
};

}  // namespace ember::data
