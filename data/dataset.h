#pragma once
// Datasets of named tensors (Note [Named fields]), the image-classification case, the
// u8 -> f32 normalization, in-memory datasets and subsets.
//
// Note [Named fields]: a sample is a set of named tensors, its fields: for image
// classification "image" (C, H, W) f32 and "label" () i64; for a regression, say "x" and
// "y"; for a model with two inputs, both inputs and the target. A Dataset says which fields
// its samples have (fields(): name, dtype, per-sample shape) and writes the fields of a list
// of samples into one preallocated (B, ...) tensor per field (fill()). The DataLoader only
// ever sees fields, so it batches, shuffles, prefetches, pins and uploads any dataset.
// ImageDataset is the image-classification case: it keeps the raw-pointer fill_batch the
// image datasets (MNIST, CIFAR-10, image folders) implement, and AugmentedDataset crops and
// flips the "image" field of whatever it wraps. The Trainer trains classifiers, so it reads
// the "image" and "label" fields (Batch::images(), Batch::labels()).
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tensor/tensor.h"

namespace ember::data {

/// One field of a sample: its name, dtype and shape (without the batch dim).
struct Field {
  std::string name;
  DType dtype = DType::f32;
  Shape shape;
  bool operator==(const Field&) const = default;
};

/// A batch: named tensors (Note [Named fields]) whose first dim is the batch, in the
/// dataset's field order.
class Batch {
 public:
  Batch() = default;
  /// Image classification's batch: "image" (B, C, H, W) f32 and "label" (B) i64.
  Batch(Tensor images, Tensor labels);
  /// The field `name`; throws naming the fields there are when it is missing.
  Tensor& operator[](std::string_view name);
  const Tensor& operator[](std::string_view name) const;
  bool has(std::string_view name) const;
  /// Adds the field, or replaces the tensor of an existing one (keeping its place).
  void set(std::string name, Tensor t);
  const std::vector<std::pair<std::string, Tensor>>& fields() const { return fields_; }
  std::vector<std::pair<std::string, Tensor>>& fields() { return fields_; }
  /// The "image" and "label" fields of an image-classification batch.
  Tensor& images() { return (*this)["image"]; }
  const Tensor& images() const { return (*this)["image"]; }
  Tensor& labels() { return (*this)["label"]; }
  const Tensor& labels() const { return (*this)["label"]; }
  /// Samples in the batch (the first dim of its first field; 0 for an empty batch).
  int64_t size() const;
  /// Every field moved to `device` (Tensor::to; the same tensors on their own device).
  Batch to(Device device) const;

 private:
  std::vector<std::pair<std::string, Tensor>> fields_;
};

/// One image-classification sample: a normalized f32 image (C, H, W) and its class.
struct Example {
  Tensor image;  // (C, H, W) f32
  int64_t label = 0;
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

/// A source of samples made of named fields (Note [Named fields]). Implementations must
/// allow concurrent calls to the const members (DataLoader workers call fill from several
/// threads).
class Dataset {
 public:
  virtual ~Dataset() = default;
  /// Number of samples.
  virtual int64_t size() const = 0;
  /// The fields of every sample, in the order fill() writes them.
  virtual std::vector<Field> fields() const = 0;
  /// Writes the samples of `indices` for training epoch `epoch` into `out`: one contiguous
  /// CPU tensor per field, in fields() order, each (B, field shape...) of the field's dtype.
  /// Datasets whose samples depend on the epoch (random augmentation) use it; others ignore
  /// it. The loader's hot path: it passes the epoch of the batch it makes (so prefetching
  /// workers never read an epoch from shared state).
  virtual void fill(std::span<const int64_t> indices, int64_t epoch, const TensorList& out) const = 0;
  /// The field `name` (throws naming the fields there are when it is missing).
  Field field(std::string_view name) const;
  /// The samples of `indices` (epoch 0), stacked on the CPU.
  Batch get_batch(std::span<const int64_t> indices) const;
  /// Whether get_batch_on gathers on the device itself, from a copy of the whole dataset
  /// kept there (no per-batch host work or transfer beyond the indices).
  virtual bool supports_device_batches() const { return false; }
  /// The batch of `indices` for `epoch` (as fill makes it) on `device`. By default made on
  /// the CPU and copied to the device.
  virtual Batch get_batch_on(std::span<const int64_t> indices, int64_t epoch, Device device) const;

 protected:
  void check_index(int64_t i, const char* who) const;
  void check_indices(std::span<const int64_t> indices, const char* who) const;
  /// One empty (B, ...) CPU tensor per field, for fill().
  TensorList allocate(int64_t batch) const;
  /// Throws unless `out` holds one contiguous CPU (batch, ...) tensor per field, as fill()
  /// needs, saying which field differs and how.
  void check_out(int64_t batch, const TensorList& out, const char* who) const;
};

/// Image classification (Note [Named fields]): fields "image" (C, H, W) f32 and "label"
/// () i64, written through raw pointers. Base of the in-memory image datasets; implement
/// image_shape and fill_batch (and fill_batch_epoch when samples depend on the epoch).
class ImageDataset : public Dataset {
 public:
  /// The shape of one image, (C, H, W).
  virtual Shape image_shape() const = 0;
  /// Writes the normalized images of `indices` into `images` (B*C*H*W floats, row-major)
  /// and their labels into `labels` (B values).
  virtual void fill_batch(std::span<const int64_t> indices, float* images, int64_t* labels) const = 0;
  /// fill_batch for the samples of training epoch `epoch`; by default the epoch is ignored.
  virtual void fill_batch_epoch(std::span<const int64_t> indices, int64_t epoch, float* images,
                                int64_t* labels) const {
    (void)epoch;
    fill_batch(indices, images, labels);
  }
  /// Sample i, normalized like a batch row.
  virtual Example get(int64_t i) const;

  std::vector<Field> fields() const override;
  void fill(std::span<const int64_t> indices, int64_t epoch, const TensorList& out) const override;
};

/// A dataset held in memory as u8 images (N, ...) with i64 labels (N): batches gather rows
/// and normalize them in one pass. Base of MNIST and CIFAR-10.
class ImageTensorDataset : public ImageDataset {
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
  Tensor table_;    // (C, 256) f32
  int64_t row_ = 0;  // C*H*W

 private:
  struct DeviceCopy {
    Device device;
    Tensor images, labels, table;
  };
  const DeviceCopy& device_copy(Device device) const;
  mutable std::mutex device_mu_;
  mutable std::vector<std::unique_ptr<DeviceCopy>> device_copies_;
};

/// Named tensors in memory (Note [Named fields]): each field is a tensor (N, ...) of any
/// dtype, and sample i is row i of every field. For data that is not image classification:
/// regression targets, several inputs, masks. Batches gather rows (index_select); on a CUDA
/// device they are gathered there from a copy of every field made on first use.
class TensorDataset : public Dataset {
 public:
  /// Every tensor must have the same first dim N >= 0; names must be unique and non-empty.
  explicit TensorDataset(std::vector<std::pair<std::string, Tensor>> fields);
  int64_t size() const override { return n_; }
  std::vector<Field> fields() const override;
  void fill(std::span<const int64_t> indices, int64_t epoch, const TensorList& out) const override;
  bool supports_device_batches() const override { return true; }
  Batch get_batch_on(std::span<const int64_t> indices, int64_t epoch, Device device) const override;
  /// The whole tensor of field `name`, as given (on the CPU, contiguous).
  const Tensor& tensor(std::string_view name) const;

 private:
  const TensorList& on_device(Device device) const;
  std::vector<std::pair<std::string, Tensor>> fields_;  // CPU, contiguous
  int64_t n_ = 0;
  mutable std::mutex device_mu_;
  mutable std::deque<std::pair<Device, TensorList>> device_copies_;  // stable references
};

/// The samples of `base` at `indices` (e.g. the first n for a quick run), any fields.
class Subset : public Dataset {
 public:
  Subset(std::shared_ptr<const Dataset> base, std::vector<int64_t> indices);
  /// The first min(n, size) samples.
  static std::shared_ptr<Subset> head(std::shared_ptr<const Dataset> base, int64_t n);
  int64_t size() const override { return int64_t(indices_.size()); }
  std::vector<Field> fields() const override { return base_->fields(); }
  void fill(std::span<const int64_t> indices, int64_t epoch, const TensorList& out) const override;
  bool supports_device_batches() const override { return base_->supports_device_batches(); }
  Batch get_batch_on(std::span<const int64_t> indices, int64_t epoch, Device device) const override;

 private:
  std::vector<int64_t> map(std::span<const int64_t> indices) const;
  std::shared_ptr<const Dataset> base_;
  std::vector<int64_t> indices_;
};

}  // namespace ember::data
