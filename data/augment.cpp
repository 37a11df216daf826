// Random crop + flip augmentation (Note [Augmentation randomness] in data/augment.h).
#include "data/augment.h"

#include <vector>

#include "autograd/ops.h"
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
  const std::vector<Field> fs = base_->fields();
  const Field image = base_->field("image");  // throws naming the fields when there is none
  for (size_t k = 0; k < fs.size(); ++k)
    if (fs[k].name == "image") image_field_ = k;
  const Shape& s = image.shape;
  EMBER_CHECK(image.dtype == DType::f32 && s.size() == 3, "AugmentedDataset: expected an 'image' field of f32 (C, H, W), got ",
              dtype_name(image.dtype), " ", shape_str(s));
  EMBER_CHECK(base_->size() <= (int64_t(1) << 32), "AugmentedDataset: at most 2^32 samples (the Philox counter's "
              "index half), got ", base_->size());
  // Normalized value of a black pixel (u8 0) per channel: entry 0 of each channel's table.
  std::vector<float> table = options_.normalize.table(s[0]);
  for (int64_t c = 0; c < s[0]; ++c) fill_.push_back(table[size_t(c * 256)]);
}

CropFlipArgs AugmentedDataset::args(int64_t epoch) const {
  EMBER_CHECK(epoch >= 0, "AugmentedDataset: epoch must be >= 0, got ", epoch);
  return {.seed = seed_, .epoch = epoch, .padding = options_.padding, .hflip = options_.hflip};
}

void AugmentedDataset::fill(std::span<const int64_t> indices, int64_t epoch, const TensorList& out) const {
  check_indices(indices, "AugmentedDataset");
  check_out(int64_t(indices.size()), out, "AugmentedDataset::fill");
  const CropFlipArgs a = args(epoch);
  // The base writes every field in place but the image, which goes to a scratch buffer
  // first: crop + flip reads it whole while writing the loader's buffer.
  TensorList base_out = out;
  Tensor& plain = base_out[image_field_];
  plain = empty(plain.shape());
  base_->fill(indices, epoch, base_out);
  const int64_t n = int64_t(indices.size());
  // The loader's index list, viewed as a tensor (no copy) for the op.
  crop_flip_into(plain, from_blob(const_cast<int64_t*>(indices.data()), {n}, {.dtype = DType::i64}), a, fill_on(kCPU),
                 out[image_field_]);
}

Tensor AugmentedDataset::fill_on(Device device) const {
  std::lock_guard<std::mutex> lock(fill_mu_);
  for (const Tensor& t : device_fills_)
    if (t.device() == device) return t;
  device_fills_.push_back(from_vector(fill_).to(device));
  return device_fills_.back();
}

Batch AugmentedDataset::get_batch_on(std::span<const int64_t> indices, int64_t epoch, Device device) const {
  check_indices(indices, "AugmentedDataset");
  if (device.is_cpu()) return Dataset::get_batch_on(indices, epoch, device);  // fill
  const CropFlipArgs a = args(epoch);
  Batch b = base_->get_batch_on(indices, epoch, device);
  Tensor keys = from_vector(std::vector<int64_t>(indices.begin(), indices.end())).to(device);
  Tensor& image = b["image"];
  Tensor out = empty(image.shape(), {.device = device});
  crop_flip_into(image, keys, a, fill_on(device), out);
  image = out;
  return b;
}

}  // namespace ember::data
