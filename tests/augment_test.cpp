// Random crop + flip: geometry on a hand-made image, reproducibility per (seed, epoch,
// index), and the same batches from the DataLoader whatever its number of workers.
#include <set>

#include "data/augment.h"
#include "data/loader.h"
#include "test_util.h"

using namespace ember;
using namespace ember::data;

namespace {

// n images (C=2, H=5, W=6), pixel value (n * 7 + c * 3 + y * 11 + x) % 256, label n % 10.
std::shared_ptr<ImageTensorDataset> toy(int64_t n) {
  Tensor images = empty({n, 2, 5, 6}, {.dtype = DType::u8});
  Tensor labels = empty({n}, {.dtype = DType::i64});
  uint8_t* p = images.data<uint8_t>();
  for (int64_t i = 0; i < n; ++i) {
    labels.data<int64_t>()[i] = i % 10;
    for (int64_t c = 0; c < 2; ++c)
      for (int64_t y = 0; y < 5; ++y)
        for (int64_t x = 0; x < 6; ++x) p[((i * 2 + c) * 5 + y) * 6 + x] = uint8_t((i * 7 + c * 3 + y * 11 + x) % 256);
  }
  return std::make_shared<ImageTensorDataset>(images, labels, Shape{2, 5, 6});
}

}  // namespace

TEST(Augment, CropAndFlipGeometry) {
  // 1 channel, 3 x 4: value 10 * y + x + 1, padding 2, fill -1.
  std::vector<float> src(12), dst(12);
  for (int y = 0; y < 3; ++y)
    for (int x = 0; x < 4; ++x) src[size_t(y * 4 + x)] = float(10 * y + x + 1);
  const float fill = -1;
  // Offset (p, p): the identity.
  augment_image(src.data(), dst.data(), 1, 3, 4, 2, {.dx = 2, .dy = 2, .flip = false}, &fill);
  EXPECT_EQ(dst, src);
  // Flip only.
  augment_image(src.data(), dst.data(), 1, 3, 4, 2, {.dx = 2, .dy = 2, .flip = true}, &fill);
  EXPECT_EQ(dst, (std::vector<float>{4, 3, 2, 1, 14, 13, 12, 11, 24, 23, 22, 21}));
  // Crop window shifted up-left by one: out(y, x) = in(y - 1, x - 1), fill outside.
  augment_image(src.data(), dst.data(), 1, 3, 4, 2, {.dx = 1, .dy = 1, .flip = false}, &fill);
  EXPECT_EQ(dst, (std::vector<float>{-1, -1, -1, -1, -1, 1, 2, 3, -1, 11, 12, 13}));
  // Shifted right by two and down by one: out(y, x) = in(y + 1, x + 2).
  augment_image(src.data(), dst.data(), 1, 3, 4, 2, {.dx = 4, .dy = 3, .flip = false}, &fill);
  EXPECT_EQ(dst, (std::vector<float>{13, 14, -1, -1, 23, 24, -1, -1, -1, -1, -1, -1}));
  // Crop then flip (torchvision's order): the flipped version of the previous crop.
  augment_image(src.data(), dst.data(), 1, 3, 4, 2, {.dx = 4, .dy = 3, .flip = true}, &fill);
  EXPECT_EQ(dst, (std::vector<float>{-1, -1, 14, 13, -1, -1, 24, 23, -1, -1, -1, -1}));
}

TEST(Augment, ParamsAreAFunctionOfSeedEpochIndex) {
  AugmentOptions o;  // padding 4, flip
  std::set<std::tuple<int64_t, int64_t, bool>> seen;
  int flips = 0, differ_epoch = 0, differ_seed = 0;
  for (int64_t i = 0; i < 400; ++i) {
    AugmentParams a = augment_params(7, 3, i, o), b = augment_params(7, 3, i, o);
    EXPECT_EQ(a.dx, b.dx);
    EXPECT_EQ(a.dy, b.dy);
    EXPECT_EQ(a.flip, b.flip);
    ASSERT_GE(a.dx, 0);
    ASSERT_LE(a.dx, 8);
    ASSERT_GE(a.dy, 0);
    ASSERT_LE(a.dy, 8);
    seen.insert({a.dx, a.dy, a.flip});
    flips += a.flip;
    AugmentParams e = augment_params(7, 4, i, o), s = augment_params(8, 3, i, o);
    differ_epoch += (e.dx != a.dx || e.dy != a.dy || e.flip != a.flip);
    differ_seed += (s.dx != a.dx || s.dy != a.dy || s.flip != a.flip);
  }
  EXPECT_GT(seen.size(), 100u);  // of the 162 possible choices
  EXPECT_GT(flips, 150);
  EXPECT_LT(flips, 250);
  EXPECT_GT(differ_epoch, 350);
  EXPECT_GT(differ_seed, 350);
  // Without flip and padding nothing changes.
  AugmentParams none = augment_params(7, 3, 5, {.padding = 0, .hflip = false});
  EXPECT_EQ(none.dx, 0);
  EXPECT_EQ(none.dy, 0);
  EXPECT_FALSE(none.flip);
}

TEST(Augment, DatasetAppliesTheParamsOfEachSample) {
  auto base = toy(12);
  Normalize norm{{0.5f}, {0.25f}};
  auto plain = std::make_shared<ImageTensorDataset>(base->images(), base->labels(), Shape{2, 5, 6}, norm);
  AugmentedDataset aug(plain, {.padding = 2, .hflip = true, .normalize = norm}, 99);
  const float fill = (0.0f - 0.5f) / 0.25f;  // a black pixel, normalized
  std::vector<int64_t> idx{3, 0, 11, 3};
  const int64_t row = 60;
  std::vector<float> got(idx.size() * row), want(row), raw(row);
  std::vector<int64_t> labels(idx.size()), l1(1);
  test::fill_images(aug, idx, 5, got.data(), labels.data());
  float fills[2] = {fill, fill};
  for (size_t b = 0; b < idx.size(); ++b) {
    EXPECT_EQ(labels[b], idx[b] % 10);
    plain->fill_batch(std::span<const int64_t>(&idx[b], 1), raw.data(), l1.data());
    augment_image(raw.data(), want.data(), 2, 5, 6, 2, augment_params(99, 5, idx[b], aug.options()), fills);
    EXPECT_EQ(std::vector<float>(got.begin() + b * row, got.begin() + (b + 1) * row), want) << b;
  }
  // Another epoch gives other images; get_batch (no epoch) is epoch 0.
  std::vector<float> other(idx.size() * row), zero(idx.size() * row);
  test::fill_images(aug, idx, 6, other.data(), labels.data());
  EXPECT_NE(other, got);
  test::fill_images(aug, idx, 0, zero.data(), labels.data());
  EXPECT_EQ(aug.get_batch(idx).images().to_vector<float>(), zero);
  EXPECT_ERROR(test::fill_images(aug, std::vector<int64_t>{12}, 0, got.data(), labels.data()), "out of range");
}

TEST(Augment, LoaderWorkersGiveTheSameBatchesAsNone) {
  auto aug = std::make_shared<AugmentedDataset>(toy(50), AugmentOptions{.padding = 2}, 3);
  auto run = [&](int workers) {
    DataLoader loader(aug, {.batch_size = 8, .shuffle = true, .seed = 11, .num_workers = workers});
    std::vector<std::vector<float>> out;
    for (int64_t e = 0; e < 3; ++e) {
      loader.set_epoch(e);
      for (Batch& b : loader) out.push_back(b.images().to_vector<float>());
    }
    // Resume mid-epoch: position (2, 3) delivers the same batches.
    DataLoader resumed(aug, {.batch_size = 8, .shuffle = true, .seed = 11, .num_workers = workers});
    resumed.load_state({2, 3, 11});
    for (Batch& b : resumed) out.push_back(b.images().to_vector<float>());
    return out;
  };
  auto sync = run(0);
  ASSERT_EQ(sync.size(), 3u * 7u + 4u);
  EXPECT_EQ(run(2), sync);
  EXPECT_EQ(run(3), sync);
  // The resumed tail equals the uninterrupted epoch 2's batches 3..6.
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(sync[21 + i], sync[14 + 3 + i]) << i;
  // The loader hands each batch its own epoch (with and without workers).
  for (int workers : {0, 2}) {
    DataLoader seq(aug, {.batch_size = 8, .num_workers = workers});
    seq.set_epoch(4);
    std::vector<int64_t> first{0, 1, 2, 3, 4, 5, 6, 7}, labels(8);
    std::vector<float> want(8 * 60);
    test::fill_images(*aug, first, 4, want.data(), labels.data());
    EXPECT_EQ(seq.next()->images().to_vector<float>(), want) << workers;
    test::fill_images(*aug, first, 0, want.data(), labels.data());
    EXPECT_NE(seq.next()->images().to_vector<float>(), want) << workers;  // batch 1, not epoch 0's batch 0
  }
}

TEST(Augment, SubsetPassesTheEpochThrough) {
  auto aug = std::make_shared<AugmentedDataset>(toy(20), AugmentOptions{}, 5);
  auto sub = Subset::head(aug, 10);
  std::vector<int64_t> idx{4, 9};
  std::vector<float> a(120), b(120);
  std::vector<int64_t> l(2);
  test::fill_images(*sub, idx, 7, a.data(), l.data());
  test::fill_images(*aug, idx, 7, b.data(), l.data());
  EXPECT_EQ(a, b);
}

// The batch-transform ops under the datasets (autograd/ops/image_batch.cpp): bad arguments
// are errors saying what was expected.
TEST(BatchOps, BadArgumentsAreErrors) {
  Tensor u8 = zeros({5, 1, 2, 2}).to(DType::u8), labels = zeros({5}).to(DType::i64);
  Tensor idx = from_vector(std::vector<int64_t>{0, 4}), table = zeros({256});
  Tensor out = empty({2, 1, 2, 2}), out_labels = empty({2}, {.dtype = DType::i64});
  gather_normalize_into(u8, labels, idx, table, out, out_labels);  // fine
  EXPECT_ERROR(gather_normalize_into(u8.to(DType::f32), labels, idx, table, out, out_labels),
               "expected images to be a contiguous u8 tensor on cpu, got f32");
  EXPECT_ERROR(gather_normalize_into(u8, labels.narrow(0, 0, 4), idx, table, out, out_labels), "5 images but 4 labels");
  EXPECT_ERROR(gather_normalize_into(u8, labels, idx, zeros({3 * 256}), out, out_labels),
               "256 entries per channel (256), got 768");
  EXPECT_ERROR(gather_normalize_into(u8, labels, idx, table, empty({3, 1, 2, 2}), out_labels), "out must hold 2 rows");
  Tensor keys = from_vector(std::vector<int64_t>{0, 1}), fill = zeros({1});
  Tensor img = zeros({2, 1, 2, 2});
  crop_flip_into(img, keys, CropFlipArgs{.padding = 1, .hflip = true}, fill, out);  // fine
  EXPECT_ERROR(crop_flip_into(img, keys, {}, fill, img), "must not share memory");
  EXPECT_ERROR(crop_flip_into(img, keys.narrow(0, 0, 1), {}, fill, out), "2 images but 1 keys");
  EXPECT_ERROR(crop_flip_into(img, keys, {}, zeros({3}), out), "one value per channel (1), got 3");
  EXPECT_ERROR(crop_flip_into(img, keys, CropFlipArgs{.padding = -1}, fill, out), "padding must be >= 0");
  EXPECT_ERROR(crop_flip_into(img.reshape({2, 4}), keys, {}, fill, out), "(B, C, H, W)");
}
