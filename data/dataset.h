#pragma once
// The Dataset interface, the u8 -> f32 normalization, in-memory image datasets and subsets.
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <vector>

#include "tensor/tensor.h"

namespace ember::data {

/// One sample: a normalized f32 image (C, H, W) and its class.
struct Example {
  Tensor image;  // (C, H, W) f32
  int64_t label = 0;
};

/// A batch: stacked normalized images and their classes.
struct Batch {
  Tensor images;  // (B, C, H, W) f32
  Tensor labels;  // (B) i64
  int64_t size() const { return labels.defined() ? labels.size(0) : 0; }
};

/// Per-channel normalization of u8 pixels: (x / 255 - mean[c]) / std[c], evaluated in f32
/// in exactly that order (as torchvision's ToTensor + Normalize do), through a 256-entry
/// table per channel. One mean/std entry applies to every channel.
struct Normalize {
  std::vector<float> mean{0.0f};
  std::vector<float> std{1.0f};

  /// MNIST: mean 0.1307, std 0.3081.
  static Normalize mnist() { return {{0.1307f}, {0.3081f}}; }
  /// Fashion-MNIST: mean 0.2860, std 0.3530.
  static Normalize fashion_mnist() { return {{0.2860f}, {0.3530f}}; }
  /// CIFAR-10 per-channel (R, G, B) mean and std of the training set.
  static Normalize cifar10() { return {{0.4914f, 0.4822f, 0.4465f}, {0.2470f, 0.2435f, 0.2616f}}; }
  /// x / 255 only.
  static Normalize none() { return {{0.0f}, {1.0f}}; }

  /// The lookup table: `channels` rows of 256 floats. Throws when the channel counts
  /// do not fit or a std is not positive.
  std::vector<float> table(int64_t channels) const;
};

/// A source of labelled images. Implementations must allow concurrent calls to the const
/// members (DataLoader workers call fill_batch from several threads).
class Dataset {
 public:
  virtual ~Dataset() = default;
  /// Number of samples.
  virtual int64_t size() const = 0;
  /// The shape of one image, (C, H, W).
  virtual Shape image_shape() const = 0;
  /// Writes the normalized images of `indices` into `images` (B*C*H*W floats, row-major)
  /// and their labels into `labels` (B values). The loader's hot path: no tensors.
  virtual void fill_batch(std::span<const int64_t> indices, float* images,
                          int64_t* labels) const = 0;
  /// fill_batch for the samples of training epoch `epoch`: datasets whose samples depend on
  /// the epoch (random augmentation) override it; by default the epoch is ignored. The
  /// DataLoader calls this one, passing the epoch of the batch it makes (so prefetching
  /// workers never read an epoch from shared state).
  virtual void fill_batch_epoch(std::span<const int64_t> indices, int64_t epoch, float* images,
                                int64_t* labels) const {
    (void)epoch;
    fill_batch(indices, images, labels);
  }
  /// Sample i, normalized like a batch row.
  virtual Example get(int64_t i) const;
  /// The samples of `indices`, stacked: images (B, C, H, W) f32, labels (B) i64.
  Batch get_batch(std::span<const int64_t> indices) const;
  /// Whether get_batch_on gathers on the device itself, from a copy of the whole dataset
  /// kept there (no per-batch host work or transfer beyond the indices).
  virtual bool supports_device_batches() const { return false; }
  /// The batch of `indices` for `epoch` (as fill_batch_epoch makes it) on `device`. By
  /// default made on the CPU and copied to the device.
  virtual Batch get_batch_on(std::span<const int64_t> indices, int64_t epoch, Device device) const;

 protected:
  void check_index(int64_t i, const char* who) const;
};

/// A dataset held in memory as u8 images (N, ...) with i64 labels (N): batches gather rows
/// and normalize them in one pass. Base of MNIST and CIFAR-10.
class ImageTensorDataset : public Dataset {
 public:
  /// `images`: u8, N rows that each reshape to `image_shape` (C, H, W); `labels`: i64 (N).
  ImageTensorDataset(Tensor images, Tensor labels, Shape image_shape,
                     Normalize normalize = Normalize::none());
  int64_t size() const override { return labels_.numel(); }
  Shape image_shape() const override { return image_shape_; }
  void fill_batch(std::span<const int64_t> indices, float* images,
                  int64_t* labels) const override;
  /// On a CUDA device: gathers and normalizes there from a resident copy of the images,
  /// labels and table, uploaded on first use (or by upload()).
  bool supports_device_batches() const override { return true; }
  Batch get_batch_on(std::span<const int64_t> indices, int64_t epoch, Device device) const override;
  /// Copies the whole dataset to `device` now (get_batch_on would on first use).
  void upload(Device device) const;

  /// The raw u8 images as loaded, e.g. (N, 28, 28) for MNIST.
  const Tensor& images() const { return images_; }
  const Tensor& labels() const { return labels_; }
  const Normalize& normalize() const { return normalize_; }

 protected:
  Tensor images_;  // u8, contiguous
  Tensor labels_;  // (N) i64, contiguous
  Shape image_shape_;
  Normalize normalize_;
  Tensor table_;  // (C, 256) f32
  int64_t row_ = 0;           // C*H*W

 private:
  struct DeviceCopy {
    Device device;
    Tensor images, labels, table;
  };
  const DeviceCopy& device_copy(Device device) const;
  void check_indices(std::span<const int64_t> indices, const char* who) const;
  mutable std::mutex device_mu_;
  mutable std::vector<std::unique_ptr<DeviceCopy>> device_copies_;
};

/// The samples of `base` at `indices` (e.g. the first n for a quick run).
class Subset : public Dataset {
 public:
  Subset(std::shared_ptr<const Dataset> base, std::vector<int64_t> indices);
  /// The first min(n, size) samples.
  static std::shared_ptr<Subset> head(std::shared_ptr<const Dataset> base, int64_t n);
  int64_t size() const override { return int64_t(indices_.size()); }
  Shape image_shape() const override { return base_->image_shape(); }
  void fill_batch(std::span<const int64_t> indices, float* images,
                  int64_t* labels) const override;
  void fill_batch_epoch(std::span<const int64_t> indices, int64_t epoch, float* images,
                        int64_t* labels) const override;
  Example get(int64_t i) const override;
  bool supports_device_batches() const override { return base_->supports_device_batches(); }
  Batch get_batch_on(std::span<const int64_t> indices, int64_t epoch, Device device) const override;

 private:
  std::vector<int64_t> map(std::span<const int64_t> indices) const;
  std::shared_ptr<const Dataset> base_;
  std::vector<int64_t> indices_;
};

}  // namespace ember::data
