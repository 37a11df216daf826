// Dataset defaults, normalization tables, in-memory image datasets and subsets.
#include "data/dataset.h"

#include <cmath>

#include "autograd/ops.h"
#include "tensor/layout.h"  // check_device_available

namespace ember::data {

std::vector<float> Normalize::table(int64_t channels) const {
  EMBER_CHECK(!mean.empty() && mean.size() == std.size(), "Normalize: ", mean.size(),
              " means and ", std.size(), " stds (expected the same non-zero number)");
  EMBER_CHECK(mean.size() == 1 || int64_t(mean.size()) == channels, "Normalize: ", mean.size(),
              " means/stds for images with ", channels, " channels (expected 1 or ", channels, ")");
  std::vector<float> t(size_t(channels) * 256);
  for (int64_t c = 0; c < channels; ++c) {
    size_t k = mean.size() == 1 ? 0 : size_t(c);
    float m = mean[k], s = std[k];
    EMBER_CHECK(s > 0.0f && std::isfinite(s), "Normalize: std must be positive, got ", s);
    for (int v = 0; v < 256; ++v) t[size_t(c) * 256 + size_t(v)] = (float(v) / 255.0f - m) / s;
  }
  return t;
}

void Dataset::check_index(int64_t i, const char* who) const {
  EMBER_CHECK(i >= 0 && i < size(), who, ": index ", i, " out of range for a dataset of ", size(),
              " samples");
}

Example Dataset::get(int64_t i) const {
  check_index(i, "Dataset::get");
  Tensor img = empty(image_shape());
  int64_t label = 0;
  fill_batch(std::span<const int64_t>(&i, 1), img.data<float>(), &label);
  return {img, label};
}

Batch Dataset::get_batch(std::span<const int64_t> indices) const {
  for (int64_t i : indices) check_index(i, "Dataset::get_batch");
  Shape s = image_shape();
  s.insert(s.begin(), int64_t(indices.size()));
  Batch b{empty(s), empty({int64_t(indices.size())}, {.dtype = DType::i64})};
  fill_batch(indices, b.images.data<float>(), b.labels.data<int64_t>());
  return b;
}

Batch Dataset::get_batch_on(std::span<const int64_t> indices, int64_t epoch, Device device) const {
  for (int64_t i : indices) check_index(i, "Dataset::get_batch_on");
  Shape s = image_shape();
  s.insert(s.begin(), int64_t(indices.size()));
  Batch b{empty(s), empty({int64_t(indices.size())}, {.dtype = DType::i64})};
  fill_batch_epoch(indices, epoch, b.images.data<float>(), b.labels.data<int64_t>());
  if (device.is_cpu()) return b;
  return {b.images.to(device), b.labels.to(device)};
}

// ---- ImageTensorDataset

ImageTensorDataset::ImageTensorDataset(Tensor images, Tensor labels, Shape image_shape,
                                       Normalize normalize)
    : image_shape_(std::move(image_shape)), normalize_(std::move(normalize)) {
  EMBER_CHECK(images.defined() && labels.defined(), "ImageTensorDataset: undefined tensors");
  EMBER_CHECK(images.dtype() == DType::u8, "ImageTensorDataset: images must be u8, got ",
              dtype_name(images.dtype()));
  EMBER_CHECK(labels.dtype() == DType::i64 && labels.dim() == 1,
              "ImageTensorDataset: labels must be an i64 vector, got ", dtype_name(labels.dtype()),
              " of shape ", labels.shape_str());
  EMBER_CHECK(image_shape_.size() == 3, "ImageTensorDataset: image shape must be (C, H, W), got ",
              shape_str(image_shape_));
  EMBER_CHECK(images.dim() >= 1 && images.size(0) == labels.size(0), "ImageTensorDataset: ",
              images.dim() >= 1 ? images.size(0) : 0, " images but ", labels.size(0), " labels");
  row_ = shape_numel(image_shape_);
  EMBER_CHECK(images.numel() == images.size(0) * row_, "ImageTensorDataset: images of shape ",
              images.shape_str(), " do not split into rows of shape ", shape_str(image_shape_));
  images_ = images.cpu().contiguous();
  labels_ = labels.cpu().contiguous();
  table_ = from_vector(normalize_.table(image_shape_[0]));
}

void ImageTensorDataset::check_indices(std::span<const int64_t> indices, const char* who) const {
  const int64_t n = size();
  for (int64_t i : indices) {
    EMBER_CHECK(i >= 0 && i < n, who, ": index ", i, " out of range for a dataset of ", n,
                " samples");
  }
}

void ImageTensorDataset::fill_batch(std::span<const int64_t> indices, float* images,
                                    int64_t* labels) const {
  check_indices(indices, "fill_batch");
  const int64_t batch = int64_t(indices.size());
  Shape s = image_shape_;
  s.insert(s.begin(), batch);
  // The loader's buffers, viewed as tensors (no copy) for the op.
  Tensor idx = from_blob(const_cast<int64_t*>(indices.data()), {batch}, {.dtype = DType::i64});
  gather_normalize_into(images_, labels_, idx, table_, from_blob(images, s),
                        from_blob(labels, {batch}, {.dtype = DType::i64}));
}

const ImageTensorDataset::DeviceCopy& ImageTensorDataset::device_copy(Device device) const {
  std::lock_guard<std::mutex> lock(device_mu_);
  for (const auto& c : device_copies_) {
    if (c->device == device) return *c;
  }
  auto c = std::make_unique<DeviceCopy>();
  c->device = device;
  c->images = images_.to(device);
  c->labels = labels_.to(device);
  c->table = table_.to(device);
  device_copies_.push_back(std::move(c));
  return *device_copies_.back();
}

void ImageTensorDataset::upload(Device device) const {
  check_device_available(device, "ImageTensorDataset::upload");
  if (device.is_cuda()) device_copy(device);
}

Batch ImageTensorDataset::get_batch_on(std::span<const int64_t> indices, int64_t epoch, Device device) const {
  check_indices(indices, "get_batch_on");
  if (device.is_cpu()) return Dataset::get_batch_on(indices, epoch, device);
  check_device_available(device, "get_batch_on");
  const DeviceCopy& dc = device_copy(device);
  const int64_t batch = int64_t(indices.size());
  Tensor idx = from_vector(std::vector<int64_t>(indices.begin(), indices.end())).to(device);
  Shape s = image_shape_;
  s.insert(s.begin(), batch);
  Batch out{empty(s, {.device = device}), empty({batch}, {.dtype = DType::i64, .device = device})};
  gather_normalize_into(dc.images, dc.labels, idx, dc.table, out.images, out.labels);
  return out;
}

// ---- Subset

Subset::Subset(std::shared_ptr<const Dataset> base, std::vector<int64_t> indices)
    : base_(std::move(base)), indices_(std::move(indices)) {
  EMBER_CHECK(base_ != nullptr, "Subset: no base dataset");
  for (int64_t i : indices_) {
    EMBER_CHECK(i >= 0 && i < base_->size(), "Subset: index ", i,
                " out of range for a dataset of ", base_->size(), " samples");
  }
}

std::shared_ptr<Subset> Subset::head(std::shared_ptr<const Dataset> base, int64_t n) {
  EMBER_CHECK(base != nullptr, "Subset::head: no base dataset");
  EMBER_CHECK(n >= 0, "Subset::head: n must be >= 0, got ", n);
  std::vector<int64_t> idx(size_t(std::min(n, base->size())));
  for (size_t i = 0; i < idx.size(); ++i) idx[i] = int64_t(i);
  return std::make_shared<Subset>(std::move(base), std::move(idx));
}

std::vector<int64_t> Subset::map(std::span<const int64_t> indices) const {
  std::vector<int64_t> mapped(indices.size());
  for (size_t b = 0; b < indices.size(); ++b) {
    int64_t i = indices[b];
    EMBER_CHECK(i >= 0 && i < size(), "Subset: index ", i, " out of range for a subset of ",
                size(), " samples");
    mapped[b] = indices_[size_t(i)];
  }
  return mapped;
}

void Subset::fill_batch(std::span<const int64_t> indices, float* images, int64_t* labels) const {
  base_->fill_batch(map(indices), images, labels);
}

void Subset::fill_batch_epoch(std::span<const int64_t> indices, int64_t epoch, float* images,
                              int64_t* labels) const {
  base_->fill_batch_epoch(map(indices), epoch, images, labels);
}

Batch Subset::get_batch_on(std::span<const int64_t> indices, int64_t epoch, Device device) const {
  return base_->get_batch_on(map(indices), epoch, device);
}

Example Subset::get(int64_t i) const {
  check_index(i, "Subset::get");
  return base_->get(indices_[size_t(i)]);
}

}  // namespace ember::data
