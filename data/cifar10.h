#pragma once
// CIFAR-10 in its binary release (cifar-10-binary.tar.gz): data_batch_1..5.bin and
// test_batch.bin, each a sequence of 3073-byte records: 1 label byte, then 3072 pixel
// bytes (1024 red, 1024 green, 1024 blue; each 32x32 row-major).
#include <string>
#include <vector>

#include "data/dataset.h"

namespace ember::data {

/// Reads one CIFAR-10 binary file: images u8 (N, 3, 32, 32), labels i64 (N). Checks that
/// the size is a non-zero multiple of 3073 and every label is in [0, 9].
std::pair<Tensor, Tensor> read_cifar10_file(const std::string& path);

/// CIFAR-10 from `dir` or `dir/cifar-10-batches-bin` (where the tarball unpacks):
/// train = data_batch_1..5.bin, test = test_batch.bin. Batches are (B, 3, 32, 32) f32.
class Cifar10Dataset : public ImageTensorDataset {
 public:
  explicit Cifar10Dataset(const std::string& dir, bool train = true,
                          Normalize normalize = Normalize::cifar10());
  const std::vector<std::string>& files() const { return files_; }

 private:
  struct Loaded;
  static Loaded load(const std::string& dir, bool train);
  Cifar10Dataset(Loaded&& loaded, Normalize normalize);
  std::vector<std::string> files_;
};

/// The class names in label order: airplane, automobile, bird, ..., truck.
const std::vector<std::string>& cifar10_classes();

}  // namespace ember::data
