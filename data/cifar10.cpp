// CIFAR-10 binary reader and dataset.
#include "data/cifar10.h"

#include <errno.h>

#include <cstdio>
#include <cstring>
#include <filesystem>

namespace ember::data {

namespace {
constexpr int64_t kPixels = 3 * 32 * 32;
constexpr int64_t kRecord = 1 + kPixels;
}  // namespace

const std::vector<std::string>& cifar10_classes() {
  static const std::vector<std::string> names{"airplane", "automobile", "bird",  "cat",  "deer",
                                              "dog",      "frog",       "horse", "ship", "truck"};
  return names;
}

std::pair<Tensor, Tensor> read_cifar10_file(const std::string& path) {
  std::error_code ec;
  auto size = std::filesystem::file_size(path, ec);
  EMBER_CHECK(!ec, "CIFAR-10 file '", path, "': cannot read: ", ec.message());
  EMBER_CHECK(size > 0 && size % kRecord == 0, "CIFAR-10 file '", path, "': ", size,
              " bytes is not a whole number of 3073-byte records (1 label + 3072 pixels)",
              size % kRecord ? ": truncated or not a CIFAR-10 binary file" : "");
  const int64_t n = int64_t(size / kRecord);
  std::vector<uint8_t> raw(size);
  std::FILE* f = std::fopen(path.c_str(), "rb");
  EMBER_CHECK(f, "CIFAR-10 file '", path, "': cannot open: ", std::strerror(errno));
  size_t got = std::fread(raw.data(), 1, raw.size(), f);
  std::fclose(f);
  EMBER_CHECK(got == raw.size(), "CIFAR-10 file '", path, "': read ", got, " of ", size, " bytes");

  Tensor images = empty({n, 3, 32, 32}, {.dtype = DType::u8});
  Tensor labels = empty({n}, {.dtype = DType::i64});
  uint8_t* img = images.data<uint8_t>();
  int64_t* lab = labels.data<int64_t>();
  for (int64_t i = 0; i < n; ++i) {
    const uint8_t* rec = raw.data() + i * kRecord;
    EMBER_CHECK(rec[0] < 10, "CIFAR-10 file '", path, "': record ", i, " has label ", int(rec[0]),
                ", expected a class in [0, 9]: corrupt or not a CIFAR-10 file");
    lab[i] = rec[0];
    std::memcpy(img + i * kPixels, rec + 1, kPixels);
  }
  return {images, labels};
}

struct Cifar10Dataset::Loaded {
  std::vector<std::string> files;
  Tensor images, labels;
};

Cifar10Dataset::Loaded Cifar10Dataset::load(const std::string& dir, bool train) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path base = dir;
  if (!fs::exists(base / (train ? "data_batch_1.bin" : "test_batch.bin"), ec) &&
      fs::is_directory(base / "cifar-10-batches-bin", ec)) {
    base /= "cifar-10-batches-bin";
  }
  std::vector<std::string> names;
  if (train) {
    for (int i = 1; i <= 5; ++i) names.push_back("data_batch_" + std::to_string(i) + ".bin");
  } else {
    names.push_back("test_batch.bin");
  }
  Loaded l;
  std::vector<std::pair<Tensor, Tensor>> parts;
  int64_t total = 0;
  for (const auto& name : names) {
    fs::path p = base / name;
    EMBER_CHECK(fs::is_regular_file(p, ec), "cifar10: ", name, " is missing from '", base.string(),
                "' (get the data with scripts/get_data.sh cifar10 ", dir, ")");
    l.files.push_back(p.string());
    parts.push_back(read_cifar10_file(p.string()));
    total += parts.back().second.numel();
  }
  l.images = empty({total, 3, 32, 32}, {.dtype = DType::u8});
  l.labels = empty({total}, {.dtype = DType::i64});
  int64_t at = 0;
  for (const auto& [x, y] : parts) {
    int64_t n = y.numel();
    std::memcpy(l.images.data<uint8_t>() + at * kPixels, x.data_ptr(), size_t(n * kPixels));
    std::memcpy(l.labels.data<int64_t>() + at, y.data_ptr(), size_t(n) * sizeof(int64_t));
    at += n;
  }
  return l;
}

Cifar10Dataset::Cifar10Dataset(const std::string& dir, bool train, Normalize normalize)
    : Cifar10Dataset(load(dir, train), std::move(normalize)) {}

Cifar10Dataset::Cifar10Dataset(Loaded&& l, Normalize normalize)
    : ImageTensorDataset(l.images, l.labels, {3, 32, 32}, std::move(normalize)),
      files_(std::move(l.files)) {}

}  // namespace ember::data
