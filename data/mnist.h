#pragma once
// MNIST and Fashion-MNIST: the idx file format (raw or gzip) and the dataset.
#include <string>

#include "data/dataset.h"

namespace ember::data {

/// Reads an idx3 image file (magic 0x00000803; raw or gzip-compressed, detected from the
/// content): u8 (N, rows, cols). Errors name the file and say what is wrong (missing,
/// bad magic, truncated, trailing bytes, corrupt gzip stream).
Tensor read_idx_images(const std::string& path);
/// Reads an idx1 label file (magic 0x00000801; raw or gzip): i64 (N).
Tensor read_idx_labels(const std::string& path);

/// MNIST or Fashion-MNIST (same files and format) from `dir`, which holds
/// {train,t10k}-{images-idx3,labels-idx1}-ubyte, each optionally with a .gz suffix.
/// Images are kept as u8 (N, 28, 28); batches are (B, 1, 28, 28) f32, normalized.
class MnistDataset : public ImageTensorDataset {
 public:
  explicit MnistDataset(const std::string& dir, bool train = true,
                        Normalize normalize = Normalize::mnist());
  /// The two files this dataset was read from.
  const std::string& images_path() const { return images_path_; }
  const std::string& labels_path() const { return labels_path_; }

 private:
  struct Loaded;
  static Loaded load(const std::string& dir, bool train);
  MnistDataset(Loaded&& loaded, Normalize normalize);
  std::string images_path_, labels_path_;
};

/// The path of `name` or `name.gz` in `dir` (the first that exists); throws an error that
/// names both and the directory, and how to get the data, when neither exists.
std::string find_data_file(const std::string& dir, const std::string& name,
                           const std::string& dataset);

}  // namespace ember::data
