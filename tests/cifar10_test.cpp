// CIFAR-10 binary reader on tiny files the test writes itself.
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "data/cifar10.h"
#include "data/loader.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace ember;
using namespace ember::data;

namespace {

class Cifar10Test : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("ember_cifar_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Record k of a file with seed s: label (s + k) % 10, pixel j of channel c = (s*7 + k + 3*j + c*50) % 256.
  static std::string records(int n, int s) {
    std::string out;
    for (int k = 0; k < n; ++k) {
      out.push_back(char((s + k) % 10));
      for (int c = 0; c < 3; ++c) {
        for (int j = 0; j < 1024; ++j) out.push_back(char((s * 7 + k + 3 * j + c * 50) % 256));
      }
    }
    return out;
  }
  void write(const fs::path& p, const std::string& bytes) {
    fs::create_directories(p.parent_path());
    std::ofstream f(p, std::ios::binary | std::ios::trunc);
    f.write(bytes.data(), std::streamsize(bytes.size()));
  }
  void write_all(const fs::path& dir) {
    for (int i = 1; i <= 5; ++i) write(dir / ("data_batch_" + std::to_string(i) + ".bin"), records(i, i));
    write(dir / "test_batch.bin", records(4, 100));
  }
  fs::path dir_;
};

TEST_F(Cifar10Test, ReadsTrainAndTestSplits) {
  write_all(dir_);
  Cifar10Dataset train(dir_.string(), true);
  EXPECT_EQ(train.size(), 1 + 2 + 3 + 4 + 5);
  EXPECT_EQ(train.images().shape(), (Shape{15, 3, 32, 32}));
  EXPECT_EQ(train.files().size(), 5u);
  // Sample 3 is record 0 of data_batch_3 (after 1 + 2 records).
  EXPECT_EQ(train.labels().to_vector<int64_t>()[3], 3);
  const uint8_t* px = train.images().data<uint8_t>() + 3 * 3072;
  EXPECT_EQ(px[0], 21);                                // c 0, j 0
  EXPECT_EQ(px[1024 + 5], (21 + 15 + 50) % 256);      // green plane, pixel 5
  EXPECT_EQ(px[2048 + 1023], (21 + 3069 + 100) % 256);  // blue plane, last pixel
  Cifar10Dataset test(dir_.string(), false);
  EXPECT_EQ(test.size(), 4);
  EXPECT_EQ(test.labels().to_vector<int64_t>(), (std::vector<int64_t>{0, 1, 2, 3}));
  EXPECT_EQ(cifar10_classes()[9], "truck");
}

TEST_F(Cifar10Test, FindsTheTarballFolderAndNormalizesPerChannel) {
  write_all(dir_ / "cifar-10-batches-bin");
  auto ds = std::make_shared<Cifar10Dataset>(dir_.string(), false);
  Example e = ds->get(1);
  EXPECT_EQ(e.image.shape(), (Shape{3, 32, 32}));
  auto v = e.image.to_vector<float>();
  const uint8_t* px = ds->images().data<uint8_t>() + 3072;
  const float mean[3] = {0.4914f, 0.4822f, 0.4465f}, std_[3] = {0.2470f, 0.2435f, 0.2616f};
  for (int c = 0; c < 3; ++c) {
    for (int j : {0, 77, 1023}) {
      EXPECT_EQ(v[size_t(c * 1024 + j)], (float(px[c * 1024 + j]) / 255.0f - mean[c]) / std_[c]);
    }
  }
  DataLoader l(ds, {.batch_size = 3});
  auto b = l.next();
  ASSERT_TRUE(b);
  EXPECT_EQ(b->images().shape(), (Shape{3, 3, 32, 32}));
  EXPECT_EQ(l.next()->size(), 1);
}

TEST_F(Cifar10Test, BadFilesAreClearErrors) {
  write_all(dir_);
  auto expect_error = [&](bool train, const std::string& file, const std::string& what) {
    try {
      Cifar10Dataset ds(dir_.string(), train);
      ADD_FAILURE() << "no error (expected '" << what << "')";
    } catch (const Error& e) {
      std::string msg = e.what();
      EXPECT_NE(msg.find(file), std::string::npos) << msg;
      EXPECT_NE(msg.find(what), std::string::npos) << "expected '" << what << "' in: " << msg;
    }
  };
  std::string rec = records(2, 0);
  write(dir_ / "test_batch.bin", rec.substr(0, rec.size() - 1));
  expect_error(false, "test_batch.bin", "not a whole number of 3073-byte records");
  write(dir_ / "test_batch.bin", "");
  expect_error(false, "test_batch.bin", "0 bytes");
  rec[3073] = char(10);
  write(dir_ / "test_batch.bin", rec);
  expect_error(false, "test_batch.bin", "record 1 has label 10");
  fs::remove(dir_ / "data_batch_4.bin");
  expect_error(true, "data_batch_4.bin", "is missing");
}

}  // namespace
