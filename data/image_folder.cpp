// ImageFolderDataset: listing, parallel decoding with stb_image, CHW packing.
#include "data/image_folder.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <mutex>
#include <thread>

// stb_image's functions stay internal to this file (no clash with another copy in the process).
#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#include <stb/stb_image.h>

namespace fs = std::filesystem;

namespace ember::data {

namespace {

bool is_image_file(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png" || ext == ".bmp" || ext == ".ppm" ||
         ext == ".pgm";
}

struct Decoded {
  std::vector<uint8_t> pixels;  // CHW
  int width = 0, height = 0;
};

Decoded decode(const std::string& path, int channels) {
  std::ifstream f(path, std::ios::binary);
  EMBER_CHECK(f.good(), "ImageFolderDataset: cannot open '", path, "'");
  std::vector<unsigned char> bytes((std::istreambuf_iterator<char>(f)), {});
  int w = 0, h = 0, native = 0;
  stbi_uc* hwc = stbi_load_from_memory(bytes.data(), int(bytes.size()), &w, &h, &native, channels);
  EMBER_CHECK(hwc != nullptr, "ImageFolderDataset: cannot decode '", path, "': ",
              stbi_failure_reason() ? stbi_failure_reason() : "unknown error");
  Decoded d;
  d.width = w;
  d.height = h;
  d.pixels.resize(size_t(w) * size_t(h) * size_t(channels));
  // stb gives interleaved HWC; the datasets keep planar CHW.
  const size_t plane = size_t(w) * size_t(h);
  for (size_t p = 0; p < plane; ++p)
    for (int c = 0; c < channels; ++c) d.pixels[size_t(c) * plane + p] = hwc[p * size_t(channels) + size_t(c)];
  stbi_image_free(hwc);
  return d;
}

}  // namespace

struct ImageFolderDataset::Loaded {
  std::vector<std::string> classes, files;
  Tensor images, labels;
  Shape shape;
};

ImageFolderDataset::Loaded ImageFolderDataset::load(const std::string& root, int channels) {
  EMBER_CHECK(channels == 1 || channels == 3, "ImageFolderDataset: channels must be 1 or 3, got ", channels);
  std::error_code ec;
  EMBER_CHECK(fs::is_directory(root, ec), "ImageFolderDataset: '", root, "' is not a directory");
  Loaded l;
  for (const auto& e : fs::directory_iterator(root))
    if (e.is_directory()) l.classes.push_back(e.path().filename().string());
  std::sort(l.classes.begin(), l.classes.end());
  EMBER_CHECK(!l.classes.empty(), "ImageFolderDataset: '", root,
              "' has no class folders (expected root/<class>/<image>)");
  std::vector<int64_t> labels;
  for (size_t c = 0; c < l.classes.size(); ++c) {
    fs::path dir = fs::path(root) / l.classes[c];
    std::vector<std::string> files;
    for (const auto& e : fs::directory_iterator(dir))
      if (e.is_regular_file() && is_image_file(e.path())) files.push_back(e.path().string());
    EMBER_CHECK(!files.empty(), "ImageFolderDataset: class folder '", dir.string(),
                "' holds no image (.jpg, .jpeg, .png, .bmp, .ppm, .pgm)");
    std::sort(files.begin(), files.end());
    for (auto& f : files) {
      l.files.push_back(std::move(f));
      labels.push_back(int64_t(c));
    }
  }
  const int64_t n = int64_t(l.files.size());

  // The first image fixes the size; the rest are decoded in parallel straight into place.
  Decoded first = decode(l.files[0], channels);
  const int64_t row = int64_t(first.pixels.size());
  l.shape = {channels, first.height, first.width};
  l.images = empty({n, channels, first.height, first.width}, {.dtype = DType::u8});
  uint8_t* out = l.images.data<uint8_t>();
  std::memcpy(out, first.pixels.data(), size_t(row));

  std::atomic<int64_t> next{1};
  std::atomic<bool> failed{false};
  std::exception_ptr error;
  std::atomic<int64_t> error_at{n};
  std::mutex error_mu;
  auto work = [&] {
    for (int64_t i; !failed.load() && (i = next.fetch_add(1)) < n;) {
      try {
        Decoded d = decode(l.files[size_t(i)], channels);
        EMBER_CHECK(d.width == first.width && d.height == first.height, "ImageFolderDataset: '",
                    l.files[size_t(i)], "' is ", d.width, "x", d.height, " but '", l.files[0], "' is ",
                    first.width, "x", first.height, "; all images must have the same size");
        std::memcpy(out + i * row, d.pixels.data(), size_t(row));
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mu);
        if (i < error_at) {  // report the first bad file in order, whatever thread saw it
          error_at = i;
          error = std::current_exception();
        }
        failed = true;
      }
    }
  };
  unsigned hw = std::max(1u, std::thread::hardware_concurrency());
  int64_t threads = std::min<int64_t>(std::min<int64_t>(hw, 16), n - 1);
  std::vector<std::thread> pool;
  for (int64_t t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  if (error) std::rethrow_exception(error);

  l.labels = empty({n}, {.dtype = DType::i64});
  std::copy(labels.begin(), labels.end(), l.labels.data<int64_t>());
  return l;
}

ImageFolderDataset::ImageFolderDataset(const std::string& root, Normalize normalize, int channels)
    : ImageFolderDataset(load(root, channels), std::move(normalize)) {}

ImageFolderDataset::ImageFolderDataset(Loaded&& l, Normalize normalize)
    : ImageTensorDataset(l.images, l.labels, l.shape, std::move(normalize)),
      classes_(std::move(l.classes)),
      files_(std::move(l.files)) {}

}  // namespace ember::data
