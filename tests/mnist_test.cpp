// MNIST on the real files in ../shared/data/mnist, plus bad files written to a temp dir.
#include <unistd.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "data/loader.h"
#include "data/mnist.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace ember;
using namespace ember::data;

namespace {

std::string mnist_dir() { return test::shared_data_dir() + "/mnist"; }

// Loaded once for the whole program (the training set takes a few hundred ms to inflate).
const std::shared_ptr<MnistDataset>& train_set() {
  static auto ds = std::make_shared<MnistDataset>(mnist_dir(), true);
  return ds;
}
const std::shared_ptr<MnistDataset>& test_set() {
  static auto ds = std::make_shared<MnistDataset>(mnist_dir(), false);
  return ds;
}

class MnistReal : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(mnist_dir())) GTEST_SKIP() << "no MNIST at " << mnist_dir();
  }
};

TEST_F(MnistReal, CountsShapesAndFirstLabels) {
  const auto& tr = *train_set();
  const auto& te = *test_set();
  EXPECT_EQ(tr.size(), 60000);
  EXPECT_EQ(te.size(), 10000);
  EXPECT_EQ(tr.images().shape(), (Shape{60000, 28, 28}));
  EXPECT_EQ(tr.images().dtype(), DType::u8);
  EXPECT_EQ(tr.labels().dtype(), DType::i64);
  EXPECT_EQ(tr.image_shape(), (Shape{1, 28, 28}));
  auto head = [](const Tensor& t) {
    const int64_t* p = t.data<int64_t>();
    return std::vector<int64_t>(p, p + 10);
  };
  EXPECT_EQ(head(tr.labels()), (std::vector<int64_t>{5, 0, 4, 1, 9, 2, 1, 3, 1, 4}));
  EXPECT_EQ(head(te.labels()), (std::vector<int64_t>{7, 2, 1, 0, 4, 1, 4, 9, 5, 9}));
  EXPECT_NE(tr.images_path().find("train-images-idx3-ubyte"), std::string::npos);
}

TEST_F(MnistReal, PixelsMatchIndependentlyComputedSums) {
  // These numbers were computed from the same .gz files with python3's gzip module
  // (sum(data[16:16+784]) etc.), independently of ember's reader.
  const auto& tr = *train_set();
  const uint8_t* px = tr.images().data<uint8_t>();
  int64_t sum0 = 0, nonzero0 = 0, lo = 255, hi = 0;
  for (int i = 0; i < 784; ++i) {
    sum0 += px[i];
    nonzero0 += px[i] != 0;
  }
  EXPECT_EQ(sum0, 27525);
  EXPECT_EQ(nonzero0, 166);
  int64_t total = 0;
  for (int64_t i = 0; i < tr.images().numel(); ++i) {
    total += px[i];
    lo = std::min<int64_t>(lo, px[i]);
    hi = std::max<int64_t>(hi, px[i]);
  }
  EXPECT_EQ(total, 1567298545);
  EXPECT_EQ(lo, 0);
  EXPECT_EQ(hi, 255);
  int64_t last = 0;
  for (int i = 0; i < 784; ++i) last += px[59999 * 784 + i];
  EXPECT_EQ(last, 20920);
  const uint8_t* tp = test_set()->images().data<uint8_t>();
  int64_t test0 = 0;
  for (int i = 0; i < 784; ++i) test0 += tp[i];
  EXPECT_EQ(test0, 18454);
}

TEST_F(MnistReal, NormalizedSamplesAndBatches) {
  const auto& tr = *train_set();
  Example e = tr.get(0);
  EXPECT_EQ(e.label, 5);
  EXPECT_EQ(e.image.shape(), (Shape{1, 28, 28}));
  auto v = e.image.to_vector<float>();
  const uint8_t* px = tr.images().data<uint8_t>();
  const float lo = (0.0f - 0.1307f) / 0.3081f, hi = (1.0f - 0.1307f) / 0.3081f;
  double sum = 0;
  for (int i = 0; i < 784; ++i) {
    EXPECT_EQ(v[size_t(i)], (float(px[i]) / 255.0f - 0.1307f) / 0.3081f);
    EXPECT_GE(v[size_t(i)], lo);
    EXPECT_LE(v[size_t(i)], hi);
    sum += v[size_t(i)];
  }
  EXPECT_NEAR(sum, (27525.0 / 255.0 - 784 * 0.1307) / 0.3081, 1e-3);
  std::vector<int64_t> idx{59999, 0, 7};
  Batch b = tr.get_batch(idx);
  EXPECT_EQ(b.images().shape(), (Shape{3, 1, 28, 28}));
  EXPECT_EQ(b.labels().to_vector<int64_t>()[1], 5);
  EXPECT_TRUE(test::all_close(make_view(b.images(), {1, 28, 28}, {784, 28, 1}, 784), e.image, 0, 0));
}

TEST_F(MnistReal, LoaderEpochShapesCoverageAndDeterminism) {
  auto ds = train_set();
  DataLoader l(ds, {.batch_size = 64, .shuffle = true, .seed = 1});
  EXPECT_EQ(l.num_batches(), 938);
  std::vector<int64_t> label_counts(10, 0);
  int64_t n = 0, batches = 0;
  double pixel_sum = 0;
  for (Batch& b : l) {
    if (batches < 937) EXPECT_EQ(b.images().shape(), (Shape{64, 1, 28, 28}));
    else EXPECT_EQ(b.images().shape(), (Shape{32, 1, 28, 28}));  // 60000 - 937 * 64
    const int64_t* lab = b.labels().data<int64_t>();
    for (int64_t i = 0; i < b.size(); ++i) label_counts[size_t(lab[i])]++;
    const float* im = b.images().data<float>();
    for (int64_t i = 0; i < b.images().numel(); ++i) pixel_sum += im[i];
    n += b.size();
    ++batches;
  }
  EXPECT_EQ(n, 60000);
  EXPECT_EQ(batches, 938);
  // Every sample exactly once: the label histogram and the pixel total of the epoch are
  // those of the whole training set (a repeated or missed sample would change them).
  std::vector<int64_t> expect(10, 0);
  const int64_t* all = ds->labels().data<int64_t>();
  for (int64_t i = 0; i < 60000; ++i) expect[size_t(all[i])]++;
  EXPECT_EQ(label_counts, expect);
  EXPECT_NEAR(pixel_sum, (1567298545.0 / 255.0 - 60000 * 784 * 0.1307) / 0.3081,
              std::abs(pixel_sum) * 1e-6 + 1.0);

  // Shuffle order: a function of seed + epoch only.
  auto first_labels = [&](uint64_t seed, int64_t epoch) {
    DataLoader x(ds, {.batch_size = 64, .shuffle = true, .seed = seed});
    x.set_epoch(epoch);
    return x.next()->labels().to_vector<int64_t>();
  };
  EXPECT_EQ(first_labels(1, 0), first_labels(1, 0));
  EXPECT_NE(first_labels(1, 0), first_labels(1, 1));
  EXPECT_NE(first_labels(1, 0), first_labels(2, 0));
  DataLoader drop(ds, {.batch_size = 64, .drop_last = true});
  EXPECT_EQ(drop.num_batches(), 937);
}

TEST_F(MnistReal, PrefetchWorkersMatchSynchronousBatches) {
  auto ds = Subset::head(train_set(), 6000);
  DataLoader sync(ds, {.batch_size = 100, .shuffle = true, .seed = 5});
  DataLoader pre(ds, {.batch_size = 100, .shuffle = true, .seed = 5, .num_workers = 3});
  for (int epoch = 0; epoch < 2; ++epoch) {
    int64_t count = 0;
    for (auto a = sync.next(), b = pre.next(); a || b; a = sync.next(), b = pre.next()) {
      ASSERT_TRUE(a && b);
      EXPECT_TRUE(test::all_close(b->images(), a->images(), 0, 0));
      EXPECT_EQ(b->labels().to_vector<int64_t>(), a->labels().to_vector<int64_t>());
      ++count;
    }
    EXPECT_EQ(count, 60);
  }
}

// ---- bad files

class MnistBadFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("ember_mnist_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  static std::string be32(uint32_t v) {
    return {char(v >> 24), char(v >> 16), char(v >> 8), char(v)};
  }
  static std::string images(uint32_t n, uint32_t rows = 28, uint32_t cols = 28,
                            uint32_t magic = 0x803) {
    std::string s = be32(magic) + be32(n) + be32(rows) + be32(cols);
    for (uint32_t i = 0; i < n * rows * cols; ++i) s.push_back(char(i % 251));
    return s;
  }
  static std::string labels(uint32_t n, uint32_t magic = 0x801) {
    std::string s = be32(magic) + be32(n);
    for (uint32_t i = 0; i < n; ++i) s.push_back(char(i % 10));
    return s;
  }
  std::string write(const std::string& name, const std::string& bytes) const {
    std::string p = (dir_ / name).string();
    std::ofstream f(p, std::ios::binary | std::ios::trunc);
    f.write(bytes.data(), std::streamsize(bytes.size()));
    return p;
  }
  std::string write_gz(const std::string& name, const std::string& bytes) const {
    std::string p = (dir_ / name).string();
    gzFile g = gzopen(p.c_str(), "wb");
    gzwrite(g, bytes.data(), unsigned(bytes.size()));
    gzclose(g);
    return p;
  }
  static std::string read(const std::string& p) {
    std::ifstream f(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
  }
  // Expects MnistDataset(dir) to fail with a message containing `file` and `what`.
  void expect_error(const std::string& file, const std::string& what, bool train = true) {
    try {
      MnistDataset ds(dir_.string(), train);
      ADD_FAILURE() << "no error (expected '" << what << "')";
    } catch (const Error& e) {
      std::string msg = e.what();
      EXPECT_NE(msg.find(file), std::string::npos) << "file not named in: " << msg;
      EXPECT_NE(msg.find(what), std::string::npos) << "expected '" << what << "' in: " << msg;
    }
  }
  fs::path dir_;
};

TEST_F(MnistBadFiles, SmallValidFilesRawAndGzip) {
  write("t10k-images-idx3-ubyte", images(3));
  write_gz("t10k-labels-idx1-ubyte.gz", labels(3));
  MnistDataset ds(dir_.string(), false);
  EXPECT_EQ(ds.size(), 3);
  EXPECT_EQ(ds.labels().to_vector<int64_t>(), (std::vector<int64_t>{0, 1, 2}));
  EXPECT_EQ(ds.images().data<uint8_t>()[784 + 5], uint8_t((784 + 5) % 251));
  // Raw and gzip copies of one file read the same.
  write_gz("t10k-images-idx3-ubyte.gz", images(3));
  EXPECT_EQ(read_idx_images((dir_ / "t10k-images-idx3-ubyte.gz").string()).to_vector<uint8_t>(),
            ds.images().to_vector<uint8_t>());
}

TEST_F(MnistBadFiles, MissingFiles) {
  try {
    MnistDataset ds((dir_ / "nope").string());
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("does not exist"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("get_data.sh"), std::string::npos) << e.what();
  }
  expect_error("train-images-idx3-ubyte", "neither train-images-idx3-ubyte nor");
  write("train-images-idx3-ubyte", images(2));
  expect_error("train-labels-idx1-ubyte", "neither train-labels-idx1-ubyte nor");
}

TEST_F(MnistBadFiles, BadMagicAndSwappedFiles) {
  write("train-images-idx3-ubyte", labels(2));  // a label file where images belong
  write("train-labels-idx1-ubyte", labels(2));
  expect_error("train-images-idx3-ubyte", "bad magic number 0x00000801, expected 0x00000803");
  write("train-images-idx3-ubyte", images(2, 28, 28, 0x12345678));
  expect_error("train-images-idx3-ubyte", "bad magic number 0x12345678");
  write("train-images-idx3-ubyte", images(2));
  write("train-labels-idx1-ubyte", images(2));
  expect_error("train-labels-idx1-ubyte", "this is an idx3 image file");
}

TEST_F(MnistBadFiles, TruncatedAndTrailing) {
  write("train-labels-idx1-ubyte", labels(4));
  std::string full = images(4);
  write("train-images-idx3-ubyte", full.substr(0, 10));
  expect_error("train-images-idx3-ubyte", "too short for the 16-byte header");
  write("train-images-idx3-ubyte", full.substr(0, full.size() - 1));
  expect_error("train-images-idx3-ubyte", "truncated");
  write("train-images-idx3-ubyte", full + "x");
  expect_error("train-images-idx3-ubyte", "trailing bytes");
  // The same inside gzip streams.
  fs::remove(dir_ / "train-images-idx3-ubyte");
  write_gz("train-images-idx3-ubyte.gz", full.substr(0, full.size() - 100));
  expect_error("train-images-idx3-ubyte.gz", "truncated");
  write_gz("train-images-idx3-ubyte.gz", full + "xyz");
  expect_error("train-images-idx3-ubyte.gz", "trailing bytes");
}

TEST_F(MnistBadFiles, CorruptGzip) {
  write("train-labels-idx1-ubyte", labels(40));
  const std::string p = write_gz("train-images-idx3-ubyte.gz", images(40));
  std::string gz = read(p);
  // A gzip file cut in the middle of its deflate stream.
  write("train-images-idx3-ubyte.gz", gz.substr(0, gz.size() / 2));
  expect_error("train-images-idx3-ubyte.gz", "truncated");
  // Damaged deflate data or checksum.
  std::string bad = gz;
  for (size_t i = gz.size() / 2; i < gz.size() / 2 + 16; ++i) bad[i] = char(bad[i] ^ 0x5a);
  write("train-images-idx3-ubyte.gz", bad);
  expect_error("train-images-idx3-ubyte.gz", "");
}

TEST_F(MnistBadFiles, DimsCountsAndLabels) {
  write("train-images-idx3-ubyte", images(2, 27, 28));
  write("train-labels-idx1-ubyte", labels(2));
  expect_error("train-images-idx3-ubyte", "27x28, expected 28x28");
  write("train-images-idx3-ubyte", images(3));
  expect_error("train-labels-idx1-ubyte", "holds 3 images but");
  write("train-images-idx3-ubyte", images(2));
  std::string l = labels(2);
  l[9] = char(12);
  write("train-labels-idx1-ubyte", l);
  expect_error("train-labels-idx1-ubyte", "label 12 at index 1");
  // A header that claims a huge count is refused before allocating.
  std::string huge = images(1);
  huge.replace(4, 4, be32(0xffffffffu));
  write("train-images-idx3-ubyte", huge);
  expect_error("train-images-idx3-ubyte", "corrupt header");
}

}  // namespace
