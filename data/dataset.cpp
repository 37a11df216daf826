// Dataset defaults, normalization tables, in-memory image datasets and subsets.
#include "data/dataset.h"

#include <cmath>
#include <cstring>
#include <set>
#include <type_traits>

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

// ---- Batch

Batch::Batch(Tensor images, Tensor labels) {
  fields_.emplace_back("image", std::move(images));
  fields_.emplace_back("label", std::move(labels));
}

namespace {
template <class Fields>
std::string field_names(const Fields& fields) {
  std::string s;
  for (const auto& f : fields) {
    if (!s.empty()) s += ", ";
    if constexpr (std::is_same_v<std::decay_t<decltype(f)>, Field>) s += f.name;
    else s += f.first;
  }
  return s.empty() ? "none" : s;
}
}  // namespace

Tensor& Batch::operator[](std::string_view name) {
  for (auto& [n, t] : fields_)
    if (n == name) return t;
  EMBER_THROW("Batch: no field '", name, "' (its fields: ", field_names(fields_), ")");
}
const Tensor& Batch::operator[](std::string_view name) const { return const_cast<Batch&>(*this)[name]; }

bool Batch::has(std::string_view name) const {
  for (const auto& f : fields_)
    if (f.first == name) return true;
  return false;
}

void Batch::set(std::string name, Tensor t) {
  for (auto& [n, old] : fields_) {
    if (n == name) {
      old = std::move(t);
      return;
    }
  }
  fields_.emplace_back(std::move(name), std::move(t));
}

int64_t Batch::size() const {
  if (fields_.empty() || !fields_[0].second.defined() || fields_[0].second.dim() == 0) return 0;
  return fields_[0].second.size(0);
}

Batch Batch::to(Device device) const {
  Batch b;
  for (const auto& [n, t] : fields_) b.fields_.emplace_back(n, t.defined() ? t.to(device) : t);
  return b;
}

// ---- Dataset

void Dataset::check_index(int64_t i, const char* who) const {
  EMBER_CHECK(i >= 0 && i < size(), who, ": index ", i, " out of range for a dataset of ", size(),
              " samples");
}

void Dataset::check_indices(std::span<const int64_t> indices, const char* who) const {
  for (int64_t i : indices) check_index(i, who);
}

Field Dataset::field(std::string_view name) const {
  const std::vector<Field> fs = fields();
  for (const Field& f : fs)
    if (f.name == name) return f;
  EMBER_THROW("Dataset: no field '", name, "' (its fields: ", field_names(fs), ")");
}

TensorList Dataset::allocate(int64_t batch) const {
  TensorList out;
  for (const Field& f : fields()) {
    Shape s = f.shape;
    s.insert(s.begin(), batch);
    out.push_back(empty(s, {.dtype = f.dtype}));
  }
  return out;
}

void Dataset::check_out(int64_t batch, const TensorList& out, const char* who) const {
  const std::vector<Field> fields = this->fields();
  EMBER_CHECK(out.size() == fields.size(), who, ": expected ", fields.size(), " output tensors (", field_names(fields),
              "), got ", out.size());
  for (size_t k = 0; k < fields.size(); ++k) {
    const Field& f = fields[k];
    Shape s = f.shape;
    s.insert(s.begin(), batch);
    const Tensor& t = out[k];
    EMBER_CHECK(t.defined() && t.device().is_cpu() && t.dtype() == f.dtype && t.shape() == s && t.is_contiguous(),
                who, ": field '", f.name, "' needs a contiguous CPU ", dtype_name(f.dtype), " tensor of shape ",
                shape_str(s), ", got ",
                t.defined() ? std::string(dtype_name(t.dtype())) + " " + t.shape_str() + " on " + t.device().str()
                            : std::string("an undefined tensor"));
  }
}

Batch Dataset::get_batch(std::span<const int64_t> indices) const {
  return Dataset::get_batch_on(indices, 0, kCPU);
}

Batch Dataset::get_batch_on(std::span<const int64_t> indices, int64_t epoch, Device device) const {
  check_indices(indices, "Dataset::get_batch_on");
  const std::vector<Field> fs = fields();
  TensorList out = allocate(int64_t(indices.size()));
  fill(indices, epoch, out);
  Batch b;
  for (size_t k = 0; k < fs.size(); ++k) b.set(fs[k].name, out[k]);
  return device.is_cpu() ? b : b.to(device);
}

// ---- ImageDataset

std::vector<Field> ImageDataset::fields() const {
  return {{"image", DType::f32, image_shape()}, {"label", DType::i64, {}}};
}

void ImageDataset::fill(std::span<const int64_t> indices, int64_t epoch, const TensorList& out) const {
  check_out(int64_t(indices.size()), out, "ImageDataset::fill");
  fill_batch_epoch(indices, epoch, out[0].data<float>(), out[1].data<int64_t>());
}

Example ImageDataset::get(int64_t i) const {
  check_index(i, "ImageDataset::get");
  Tensor img = empty(image_shape());
  int64_t label = 0;
  fill_batch(std::span<const int64_t>(&i, 1), img.data<float>(), &label);
  return {img, label};
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
  gather_normalize_into(dc.images, dc.labels, idx, dc.table, out.images(), out.labels());
  return out;
}

// ---- TensorDataset

TensorDataset::TensorDataset(std::vector<std::pair<std::string, Tensor>> fields) {
  EMBER_CHECK(!fields.empty(), "TensorDataset: no fields");
  std::set<std::string> names;
  for (auto& [name, t] : fields) {
    EMBER_CHECK(!name.empty(), "TensorDataset: a field has an empty name");
    EMBER_CHECK(names.insert(name).second, "TensorDataset: field '", name, "' given twice");
    EMBER_CHECK(t.defined() && t.dim() >= 1, "TensorDataset: field '", name,
                "' must be a tensor with a first (sample) dim, got ", t.defined() ? t.shape_str() : "undefined");
    if (names.size() == 1) n_ = t.size(0);
    EMBER_CHECK(t.size(0) == n_, "TensorDataset: field '", name, "' has ", t.size(0), " samples, the first field ",
                n_);
    fields_.emplace_back(name, t.detach().cpu().contiguous());
  }
}

std::vector<Field> TensorDataset::fields() const {
  std::vector<Field> out;
  for (const auto& [name, t] : fields_) {
    Shape s = t.shape();
    s.erase(s.begin());
    out.push_back({name, t.dtype(), s});
  }
  return out;
}

const Tensor& TensorDataset::tensor(std::string_view name) const {
  for (const auto& [n, t] : fields_)
    if (n == name) return t;
  EMBER_THROW("TensorDataset: no field '", name, "' (its fields: ", field_names(fields_), ")");
}

void TensorDataset::fill(std::span<const int64_t> indices, int64_t epoch, const TensorList& out) const {
  (void)epoch;
  check_indices(indices, "TensorDataset::fill");
  check_out(int64_t(indices.size()), out, "TensorDataset::fill");
  for (size_t k = 0; k < fields_.size(); ++k) {
    const Tensor& t = fields_[k].second;
    const size_t row = size_t(n_ > 0 ? t.nbytes() / n_ : 0);
    const char* src = static_cast<const char*>(t.data_ptr());
    char* dst = static_cast<char*>(out[k].data_ptr());
    for (size_t b = 0; b < indices.size(); ++b) std::memcpy(dst + b * row, src + size_t(indices[b]) * row, row);
  }
}

const TensorList& TensorDataset::on_device(Device device) const {
  std::lock_guard<std::mutex> lock(device_mu_);
  for (const auto& [d, copies] : device_copies_)
    if (d == device) return copies;
  TensorList copies;
  for (const auto& f : fields_) copies.push_back(f.second.to(device));
  device_copies_.emplace_back(device, std::move(copies));
  return device_copies_.back().second;
}

Batch TensorDataset::get_batch_on(std::span<const int64_t> indices, int64_t epoch, Device device) const {
  if (device.is_cpu()) return Dataset::get_batch_on(indices, epoch, device);
  check_indices(indices, "TensorDataset::get_batch_on");
  check_device_available(device, "TensorDataset::get_batch_on");
  const TensorList& copies = on_device(device);
  Tensor idx = from_vector(std::vector<int64_t>(indices.begin(), indices.end())).to(device);
  Batch b;
  for (size_t k = 0; k < fields_.size(); ++k) b.set(fields_[k].first, index_select(copies[k], 0, idx));
  return b;
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

void Subset::fill(std::span<const int64_t> indices, int64_t epoch, const TensorList& out) const {
  base_->fill(map(indices), epoch, out);
}

Batch Subset::get_batch_on(std::span<const int64_t> indices, int64_t epoch, Device device) const {
  return base_->get_batch_on(map(indices), epoch, device);
}

}  // namespace ember::data
