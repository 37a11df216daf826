// ImageFolderDataset on PNG/JPEG files the test writes itself (exact pixels, CHW order,
// class order, errors) and on a few real CIFAR-10 JPEGs from the shared tarball.

#include <cstdlib>
#include <filesystem>
#include <fstream>

#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>

#include "data/image_folder.h"
#include "data/loader.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace ember;
using namespace ember::data;

namespace {

fs::path scratch(const std::string& name) { return test::scratch_dir("image_folder_" + name); }

// A w x h RGB image, interleaved as the writers want: pixel (x, y) = (r0 + x, 10 * y, 200 + x + y).
std::vector<uint8_t> pattern(int w, int h, int r0) {
  std::vector<uint8_t> px(size_t(w * h * 3));
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      uint8_t* p = &px[size_t((y * w + x) * 3)];
      p[0] = uint8_t(r0 + x);
      p[1] = uint8_t(10 * y);
      p[2] = uint8_t(200 + x + y);
    }
  return px;
}

void write_png(const fs::path& p, int w, int h, int r0) {
  fs::create_directories(p.parent_path());
  std::vector<uint8_t> px = pattern(w, h, r0);
  ASSERT_NE(stbi_write_png(p.string().c_str(), w, h, 3, px.data(), w * 3), 0) << p;
}

}  // namespace

TEST(ImageFolder, PngPixelsClassesAndChwOrder) {
  fs::path root = scratch("png");
  // Classes come out sorted whatever the creation order; files sorted within a class.
  write_png(root / "zebra" / "b.png", 4, 3, 50);
  write_png(root / "zebra" / "a.PNG", 4, 3, 40);
  write_png(root / "apple" / "x.png", 4, 3, 10);
  std::ofstream(root / "apple" / "notes.txt") << "not an image";  // ignored
  ImageFolderDataset ds(root.string());
  ASSERT_EQ(ds.size(), 3);
  EXPECT_EQ(ds.classes(), (std::vector<std::string>{"apple", "zebra"}));
  EXPECT_EQ(ds.image_shape(), Shape({3, 3, 4}));
  EXPECT_EQ(ds.labels().to_vector<int64_t>(), (std::vector<int64_t>{0, 1, 1}));
  EXPECT_EQ(fs::path(ds.files()[1]).filename(), "a.PNG");
  ASSERT_EQ(ds.images().shape(), Shape({3, 3, 3, 4}));
  const uint8_t* img = ds.images().data<uint8_t>();
  const int r0[3] = {10, 40, 50};
  for (int n = 0; n < 3; ++n)
    for (int y = 0; y < 3; ++y)
      for (int x = 0; x < 4; ++x) {
        const uint8_t* s = img + n * 36;  // (C=3, H=3, W=4), planar
        EXPECT_EQ(s[0 * 12 + y * 4 + x], r0[n] + x);
        EXPECT_EQ(s[1 * 12 + y * 4 + x], 10 * y);
        EXPECT_EQ(s[2 * 12 + y * 4 + x], 200 + x + y);
      }
  // Batches go through the normalizing fast path: x / 255 with Normalize::none().
  Batch b = ds.get_batch(std::vector<int64_t>{2});
  EXPECT_FLOAT_EQ(b.images().to_vector<float>()[1], float(51) / 255.0f);
  EXPECT_EQ(b.labels().to_vector<int64_t>(), std::vector<int64_t>{1});
  // Gray output on request.
  ImageFolderDataset gray(root.string(), Normalize::none(), 1);
  EXPECT_EQ(gray.image_shape(), Shape({1, 3, 4}));
  fs::remove_all(root);
}

TEST(ImageFolder, JpegDecodesCloseToTheSource) {
  fs::path root = scratch("jpg");
  const int w = 16, h = 16;
  std::vector<uint8_t> px(size_t(w * h * 3), 0);
  for (size_t i = 0; i < px.size(); i += 3) {  // a flat colour survives JPEG almost exactly
    px[i] = 200;
    px[i + 1] = 100;
    px[i + 2] = 50;
  }
  for (const char* cls : {"a", "b"}) {
    fs::create_directories(root / cls);
    for (const char* name : {"0.jpg", "1.jpeg"})
      ASSERT_NE(stbi_write_jpg((root / cls / name).string().c_str(), w, h, 3, px.data(), 95), 0);
  }
  ImageFolderDataset ds(root.string());
  ASSERT_EQ(ds.size(), 4);
  EXPECT_EQ(ds.labels().to_vector<int64_t>(), (std::vector<int64_t>{0, 0, 1, 1}));
  const uint8_t* img = ds.images().data<uint8_t>();
  const int want[3] = {200, 100, 50};
  for (int64_t n = 0; n < 4; ++n)
    for (int c = 0; c < 3; ++c)
      for (int p = 0; p < w * h; ++p) ASSERT_NEAR(int(img[(n * 3 + c) * w * h + p]), want[c], 3);
  fs::remove_all(root);
}

TEST(ImageFolder, ManyFilesDecodedInParallelKeepTheirOrder) {
  fs::path root = scratch("many");
  for (int i = 0; i < 60; ++i) {
    char name[16];
    std::snprintf(name, sizeof name, "%03d.png", i);
    write_png(root / (i < 30 ? "c0" : "c1") / name, 5, 2, i);
  }
  ImageFolderDataset ds(root.string());
  ASSERT_EQ(ds.size(), 60);
  for (int64_t n = 0; n < 60; ++n) {
    EXPECT_EQ(ds.images().data<uint8_t>()[n * 30], uint8_t(n)) << n;  // red of pixel (0, 0)
    EXPECT_EQ(ds.labels().to_vector<int64_t>()[size_t(n)], n < 30 ? 0 : 1);
  }
  fs::remove_all(root);
}

TEST(ImageFolder, ErrorsNameThePath) {
  fs::path root = scratch("errors");
  EXPECT_ERROR(ImageFolderDataset((root / "missing").string()), "missing");
  EXPECT_ERROR(ImageFolderDataset(root.string()), "no class folders");
  fs::create_directories(root / "empty");
  EXPECT_ERROR(ImageFolderDataset(root.string()), "holds no image");
  fs::remove_all(root / "empty");
  write_png(root / "a" / "0.png", 4, 4, 0);
  std::ofstream(root / "a" / "1.png") << "garbage, not a PNG";
  EXPECT_ERROR(ImageFolderDataset(root.string()), "1.png");
  fs::remove(root / "a" / "1.png");
  write_png(root / "b" / "big.png", 5, 4, 0);
  EXPECT_ERROR(ImageFolderDataset(root.string()), "big.png");
  EXPECT_ERROR(ImageFolderDataset(root.string()), "same size");
  fs::remove_all(root);
}

// The JPEG guard (Note [Guarding stb_image]) lets valid files through: a progressive JPEG
// with restart markers and Huffman tables between its scans (jpegtran's re-encoding of a
// CIFAR-10 image), and an APP1 segment whose payload looks like a bad DHT (the walker skips
// segments by their length) decodes to the same pixels as the file without it.
TEST(ImageFolder, JpegGuardLetsValidFilesThrough) {
  fs::path root = scratch("jpeg_guard");
  fs::create_directories(root / "a");
  fs::create_directories(root / "b");
  fs::create_directories(root / "c");
  fs::copy_file(fs::path(EMBER_SOURCE_DIR) / "tests/data/progressive_restart.jpg", root / "c" / "p.jpg");
  std::vector<uint8_t> px = pattern(32, 32, 7);
  ASSERT_NE(stbi_write_jpg((root / "a" / "x.jpg").string().c_str(), 32, 32, 3, px.data(), 90), 0);
  std::ifstream in(root / "a" / "x.jpg", std::ios::binary);
  std::string jpg((std::istreambuf_iterator<char>(in)), {});
  std::string payload = std::string("Exif\0\0", 6) + "\xff\xc4\x00\x40\x00" + std::string(16, '\xff') + "\xff\xd9";
  std::string app1 = "\xff\xe1" + std::string(1, char((payload.size() + 2) >> 8)) +
                     std::string(1, char((payload.size() + 2) & 0xff)) + payload;
  std::ofstream(root / "b" / "x.jpg", std::ios::binary) << jpg.substr(0, 2) + app1 + jpg.substr(2);
  ImageFolderDataset ds(root.string());
  ASSERT_EQ(ds.size(), 3);
  EXPECT_EQ(ds.image_shape(), Shape({3, 32, 32}));
  std::vector<uint8_t> all = ds.images().to_vector<uint8_t>();
  const size_t row = 3 * 32 * 32;
  EXPECT_TRUE(std::equal(all.begin(), all.begin() + row, all.begin() + row));
  fs::remove_all(root);
}

TEST(ImageFolder, RealCifarJpegs) {
  fs::path tarball = fs::path(test::shared_data_dir()) / "cifar10-jpg.tar.gz";
  if (!fs::exists(tarball)) GTEST_SKIP() << "no " << tarball << " (set EMBER_DATA_DIR)";
  if (std::system("tar --version > /dev/null 2>&1") != 0) GTEST_SKIP() << "no tar on this machine";
  fs::path dir = scratch("real");
  std::string cmd = "tar -xzf '" + tarball.string() + "' -C '" + dir.string() +
                    "' --wildcards 'cifar10-jpg/test/airplane/000*' 'cifar10-jpg/test/ship/000*'";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  ImageFolderDataset ds((dir / "cifar10-jpg" / "test").string(), Normalize::cifar10());
  EXPECT_EQ(ds.classes(), (std::vector<std::string>{"airplane", "ship"}));
  EXPECT_EQ(ds.size(), 20);  // 0000..0009 of each
  EXPECT_EQ(ds.image_shape(), Shape({3, 32, 32}));
  EXPECT_EQ(fs::path(ds.files()[0]).filename(), "0000.jpg");
  // Real photos: the pixels vary and the normalized batch has a sane range.
  Tensor x = ds.get_batch(std::vector<int64_t>{0, 10, 19}).images();
  std::vector<float> v = x.to_vector<float>();
  float lo = *std::min_element(v.begin(), v.end()), hi = *std::max_element(v.begin(), v.end());
  EXPECT_LT(lo, -0.5f);
  EXPECT_GT(hi, 0.5f);
  EXPECT_GE(lo, (0.0f - 0.4914f) / 0.2470f - 0.2f);
  EXPECT_LE(hi, (1.0f - 0.4465f) / 0.2616f + 0.2f);
  fs::remove_all(dir);
}
