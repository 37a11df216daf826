// Random crop + flip augmentation (Note [Augmentation randomness] in data/augment.h).
#include "data/augment.h"

#include <vector>

#include "kernels/philox.h"

namespace ember::data {

AugmentParams augment_params(uint64_t seed, int64_t epoch, int64_t index, const AugmentOptions& o) {
  EMBER_CHECK(epoch >= 0 && index >= 0 && index < (int64_t(1) << 32), "augment_params: epoch ", epoch,
              " / index ", index, " out of range");
  Philox4 r = philox4x32(seed, (uint64_t(epoch) << 32) | uint64_t(index));
  AugmentParams p;
  const uint32_t choices = uint32_t(2 * o.padding + 1);
  p.dx = int64_t(r.v[0] % choices);
  p.dy = int64_t(r.v[1] % choices);
  p.flip = o.hflip && (r.v[2] & 1u);
  return p;
}

void augment_image(const float* src, float* dst, int64_t channels, int64_t height, int64_t width,
                   int64_t padding, const AugmentParams& p, const float* fill) {
  const int64_t oy = p.dy - padding, ox = p.dx - padding;
  for (int64_t c = 0; c < channels; ++c) {
    const float* in = src + c * height * width;
    float* out = dst + c * height * width;
    for (int64_t y = 0; y < height; ++y) {
      const int64_t sy = y + oy;
      float* orow = out + y * width;
      if (sy < 0 || sy >= height) {
        for (int64_t x = 0; x < width; ++x) orow[x] = fill[c];
        continue;
      }
      const float* irow = in + sy * width;
      for (int64_t x = 0; x < width; ++x) {
        const int64_t sx = (p.flip ? width - 1 - x : x) + ox;
        orow[x] = (sx < 0 || sx >= width) ? fill[c] : irow[sx];
      }
    }
  }
}

AugmentedDataset::AugmentedDataset(std::shared_ptr<const Dataset> base, AugmentOptions options, uint64_t seed)
    : base_(std::move(base)), options_(std::move(options)), seed_(seed) {
  EMBER_CHECK(base_ != nullptr, "AugmentedDataset: no base dataset");
  EMBER_CHECK(options_.padding >= 0, "AugmentedDataset: padding must be >= 0, got ", options_.padding);
  Shape s = base_->image_shape();
  EMBER_CHECK(s.size() == 3, "AugmentedDataset: expected images of shape (C, H, W), got rank ", s.size());
  // Normalized value of a black pixel (u8 0) per channel: entry 0 of each channel's table.
  std::vector<float> table = options_.normalize.table(s[0]);
  for (int64_t c = 0; c < s[0]; ++c) fill_.push_back(table[size_t(c * 256)]);
}

void AugmentedDataset::fill_batch(std::span<const int64_t> indices, float* images, int64_t* labels) const {
  fill_batch_epoch(indices, 0, images, labels);
}

void AugmentedDataset::fill_batch_epoch(std::span<const int64_t> indices, int64_t epoch, float* images,
                                        int64_t* labels) const {
  Shape s = base_->image_shape();
  const int64_t row = s[0] * s[1] * s[2];
  for (int64_t i : indices)
    EMBER_CHECK(i >= 0 && i < size(), "AugmentedDataset: index ", i, " out of range for a dataset of ", size(),
                " samples");
  std::vector<float> plain(indices.size() * size_t(row));
  base_->fill_batch_epoch(indices, epoch, plain.data(), labels);
  for (size_t b = 0; b < indices.size(); ++b) {
    AugmentParams p = augment_params(seed_, epoch, indices[b], options_);
    augment_image(plain.data() + b * size_t(row), images + b * size_t(row), s[0], s[1], s[2], options_.padding, p,
                  fill_.data());
  }
}

}  // namespace ember::data
