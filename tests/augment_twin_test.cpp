// Note [Batches on the device] (data/augment.h): the batch crop + flip kernel's CPU twin
// (kernels/cpu/image_batch.cpp, the reference the CUDA kernel is tested against in
// data_gpu_test) equals the original per-image augmentation (augment_params +
// augment_image) bit for bit, on real CIFAR-10 JPEGs and MNIST digits; and the loader's
// dataset_on_device path (AugmentedDataset::get_batch_on) gives the batches of the usual
// path, resume included.
#include <cstdlib>
#include <filesystem>
#include <set>

#include "data/augment.h"
#include "data/image_folder.h"
#include "data/loader.h"
#include "data/mnist.h"
#include "kernels/image_batch.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace ember;
using namespace ember::data;

namespace {

// 10 JPEGs of each class of the training set (test::small_cifar_folder); empty with `why`
// set when impossible.
fs::path small_cifar(std::string& why) {
  const std::string root = test::small_cifar_folder(why);
  return root.empty() ? fs::path() : fs::path(root) / "train";
}

// The reference: each sample of `idx` through augment_params + augment_image.
std::vector<float> reference_batch(const ImageDataset& plain, const AugmentedDataset& aug, std::span<const int64_t> idx,
                                   int64_t epoch) {
  Shape s = plain.image_shape();
  const int64_t row = s[0] * s[1] * s[2];
  std::vector<float> table = aug.options().normalize.table(s[0]), fill;
  std::vector<float> raw(static_cast<size_t>(row));
  for (int64_t c = 0; c < s[0]; ++c) fill.push_back(table[size_t(c * 256)]);
  std::vector<float> out(idx.size() * size_t(row));
  int64_t label = 0;
  for (size_t b = 0; b < idx.size(); ++b) {
    plain.fill_batch(idx.subspan(b, 1), raw.data(), &label);
    augment_image(raw.data(), out.data() + b * size_t(row), s[0], s[1], s[2], aug.options().padding,
                  augment_params(aug.seed(), epoch, idx[b], aug.options()), fill.data());
  }
  return out;
}

std::vector<unsigned char> bytes(const std::vector<float>& v) {
  const auto* p = reinterpret_cast<const unsigned char*>(v.data());
  return {p, p + v.size() * sizeof(float)};
}

// The twin against the reference, for several epochs, through fill_batch_epoch (the CPU
// loader's path) and get_batch_on (the dataset_on_device path).
void check_twin(std::shared_ptr<const ImageTensorDataset> plain, const AugmentOptions& o, uint64_t seed) {
  AugmentedDataset aug(plain, o, seed);
  Shape s = plain->image_shape();
  std::vector<int64_t> idx;
  for (int64_t i = 0; i < plain->size(); ++i) idx.push_back((i * 37 + 11) % plain->size());
  idx.push_back(idx.front());  // a repeat
  for (int64_t epoch : {int64_t(0), int64_t(1), int64_t(29), (int64_t(1) << 31) + 5}) {
    std::vector<float> want = reference_batch(*plain, aug, idx, epoch);
    std::vector<float> got(want.size());
    std::vector<int64_t> labels(idx.size());
    test::fill_images(aug, idx, epoch, got.data(), labels.data());
    EXPECT_EQ(bytes(got), bytes(want)) << "fill_batch_epoch, epoch " << epoch;
    Batch b = aug.get_batch_on(idx, epoch, kCPU);
    EXPECT_EQ(b.images().shape(), (Shape{int64_t(idx.size()), s[0], s[1], s[2]}));
    EXPECT_EQ(test::bytes_of(b.images()), bytes(want)) << "get_batch_on, epoch " << epoch;
    for (size_t k = 0; k < idx.size(); ++k)
      EXPECT_EQ(b.labels().to_vector<int64_t>()[k], plain->labels().to_vector<int64_t>()[size_t(idx[k])]);
    // The batch kernel itself, on the plain batch.
    Batch p = plain->get_batch(idx);
    std::vector<float> direct(want.size());
    std::vector<float> fill;
    std::vector<float> table = o.normalize.table(s[0]);
    for (int64_t c = 0; c < s[0]; ++c) fill.push_back(table[size_t(c * 256)]);
    cpu::crop_flip(p.images().data<float>(), direct.data(), idx.data(), int64_t(idx.size()), s[0], s[1], s[2],
                   {.seed = seed, .epoch = epoch, .padding = o.padding, .hflip = o.hflip}, fill.data());
    EXPECT_EQ(bytes(direct), bytes(want)) << "cpu::crop_flip, epoch " << epoch;
    EXPECT_NE(bytes(want), bytes(std::vector<float>(p.images().to_vector<float>())));  // it did augment
  }
}

}  // namespace

TEST(AugmentTwin, ChoicesEqualAugmentParams) {
  for (int64_t padding : {0, 1, 4}) {
    for (bool hflip : {false, true}) {
      AugmentOptions o{.padding = padding, .hflip = hflip};
      std::set<int64_t> dxs;
      int flips = 0;
      for (int64_t epoch : {int64_t(0), int64_t(3), (int64_t(1) << 31) + 1}) {
        for (int64_t i = 0; i < 2000; ++i) {
          AugmentParams want = augment_params(42, epoch, i, o);
          CropFlip got = crop_flip_choice(42, epoch, i, padding, hflip);
          ASSERT_EQ(got.dx, want.dx);
          ASSERT_EQ(got.dy, want.dy);
          ASSERT_EQ(got.flip, want.flip);
          dxs.insert(got.dx);
          flips += got.flip;
        }
      }
      EXPECT_EQ(int64_t(dxs.size()), 2 * padding + 1);
      EXPECT_EQ(flips > 0, hflip);
    }
  }
}

TEST(AugmentTwin, EqualsTheReferenceOnCifarJpegs) {
  std::string why;
  const fs::path dir = small_cifar(why);
  if (dir.empty()) GTEST_SKIP() << why;
  auto cifar = std::make_shared<ImageFolderDataset>(dir.string(), Normalize::cifar10());
  ASSERT_EQ(cifar->size(), 100);
  ASSERT_EQ(cifar->image_shape(), (Shape{3, 32, 32}));
  check_twin(cifar, {.padding = 4, .hflip = true, .normalize = Normalize::cifar10()}, 1);       // the app's
  check_twin(cifar, {.padding = 2, .hflip = false, .normalize = Normalize::cifar10()}, 77);
}

TEST(AugmentTwin, EqualsTheReferenceOnMnist) {
  fs::path dir = fs::path(test::shared_data_dir()) / "mnist";
  if (!fs::exists(dir / "t10k-images-idx3-ubyte.gz")) GTEST_SKIP() << "no " << dir.string();
  auto test_set = std::make_shared<MnistDataset>(dir.string(), false);
  // 300 digits: an ImageTensorDataset of the first rows of the real test set.
  const int64_t n = 300;
  Tensor images = test_set->images().narrow(0, 0, n).contiguous();
  Tensor labels = test_set->labels().narrow(0, 0, n).contiguous();
  auto head = std::make_shared<ImageTensorDataset>(images.reshape({n, 1, 28, 28}), labels, Shape{1, 28, 28},
                                                   Normalize::mnist());
  check_twin(head, {.padding = 4, .hflip = true, .normalize = Normalize::mnist()}, 5);
}

TEST(AugmentTwin, LoaderWithTheDatasetOnTheDeviceGivesTheSameBatches) {
  // On the CPU, dataset_on_device takes the get_batch_on path: the batches (and a resumed
  // run's) equal those of the usual fill_batch_epoch path.
  std::vector<uint8_t> px(size_t(90 * 3 * 8 * 8));
  for (size_t k = 0; k < px.size(); ++k) px[k] = uint8_t((k * 2654435761u) >> 13);
  std::vector<int64_t> lab(90);
  for (int64_t i = 0; i < 90; ++i) lab[size_t(i)] = i % 10;
  auto plain = std::make_shared<ImageTensorDataset>(from_vector(px, {90, 3, 8, 8}, {.dtype = DType::u8}),
                                                    from_vector(lab, {90}), Shape{3, 8, 8}, Normalize::cifar10());
  auto aug = std::make_shared<AugmentedDataset>(
      plain, AugmentOptions{.padding = 3, .hflip = true, .normalize = Normalize::cifar10()}, 9);
  auto sub = Subset::head(aug, 80);
  ASSERT_TRUE(sub->supports_device_batches());
  DataLoader usual(sub, {.batch_size = 16, .shuffle = true, .seed = 3, .num_workers = 2});
  DataLoader resident(sub, {.batch_size = 16, .shuffle = true, .seed = 3, .dataset_on_device = true});
  DataLoader resumed(sub, {.batch_size = 16, .shuffle = true, .seed = 3, .dataset_on_device = true});
  resumed.load_state({1, 2, 3});
  std::vector<std::vector<unsigned char>> epoch1;
  for (int64_t e = 0; e < 2; ++e) {
    int64_t n = 0;
    for (auto a = usual.next(), b = resident.next(); a || b; a = usual.next(), b = resident.next(), ++n) {
      ASSERT_TRUE(a && b);
      EXPECT_EQ(test::bytes_of(b->images()), test::bytes_of(a->images())) << e << " " << n;
      EXPECT_EQ(b->labels().to_vector<int64_t>(), a->labels().to_vector<int64_t>());
      if (e == 1) epoch1.push_back(test::bytes_of(a->images()));
    }
    EXPECT_EQ(n, 5);
  }
  size_t k = 2;
  for (Batch& b : resumed) EXPECT_EQ(test::bytes_of(b.images()), epoch1.at(k++));
  EXPECT_EQ(k, 5u);
}
