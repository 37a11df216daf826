// Samplers and DataLoader on synthetic datasets: order, coverage, determinism, workers,
// resume positions, errors.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>
#include <numeric>
#include <set>

#include "data/augment.h"
#include "data/loader.h"
#include "test_util.h"

using namespace ember;
using namespace ember::data;

namespace {

// Sample i is an image (1, 2, 2) filled with i, labelled i: batches reveal what was visited.
class IndexDataset : public ImageDataset {
 public:
  explicit IndexDataset(int64_t n, int64_t fail_at = -1) : n_(n), fail_at_(fail_at) {}
  int64_t size() const override { return n_; }
  Shape image_shape() const override { return {1, 2, 2}; }
  void fill_batch(std::span<const int64_t> idx, float* images, int64_t* labels) const override {
    for (size_t b = 0; b < idx.size(); ++b) {
      EMBER_CHECK(idx[b] != fail_at_, "IndexDataset: sample ", idx[b], " is broken");
      for (int j = 0; j < 4; ++j) images[b * 4 + size_t(j)] = float(idx[b]);
      labels[b] = idx[b];
    }
    calls_ += 1;
  }
  mutable std::atomic<int64_t> calls_{0};

 private:
  int64_t n_, fail_at_;
};

std::vector<int64_t> labels_of(DataLoader& loader) {
  std::vector<int64_t> all;
  for (Batch& b : loader) {
    auto v = b.labels().to_vector<int64_t>();
    all.insert(all.end(), v.begin(), v.end());
  }
  return all;
}

TEST(Sampler, RandomPermutationIsAPermutationAndDeterministic) {
  auto p = random_permutation(1000, 7);
  std::vector<int64_t> sorted = p;
  std::sort(sorted.begin(), sorted.end());
  std::vector<int64_t> iota(1000);
  std::iota(iota.begin(), iota.end(), 0);
  EXPECT_EQ(sorted, iota);
  EXPECT_NE(p, iota);
  EXPECT_EQ(p, random_permutation(1000, 7));
  EXPECT_NE(p, random_permutation(1000, 8));
  EXPECT_TRUE(random_permutation(0, 1).empty());
  EXPECT_EQ(random_permutation(1, 1), (std::vector<int64_t>{0}));
  // Pinned values: the order must not change between builds or standard libraries
  // (Note [Shuffle RNG]); these come from this implementation of mt19937_64 + Fisher-Yates.
  EXPECT_EQ(random_permutation(8, 0), (std::vector<int64_t>{5, 7, 0, 2, 4, 1, 3, 6}));
}

TEST(Sampler, RandomSamplerDependsOnSeedPlusEpoch) {
  RandomSampler s(100, 10);
  EXPECT_EQ(s.indices(0), random_permutation(100, 10));
  EXPECT_EQ(s.indices(3), random_permutation(100, 13));
  EXPECT_NE(s.indices(0), s.indices(1));
  EXPECT_EQ(SequentialSampler(3).indices(5), (std::vector<int64_t>{0, 1, 2}));
}

TEST(Sampler, DistributedShardsAreDisjointAndCoverTheDataset) {
  for (bool shuffle : {false, true}) {
    const int64_t n = 103;
    const int world = 4;
    std::vector<int64_t> all;
    for (int r = 0; r < world; ++r) {
      DistributedSampler s(n, r, world, shuffle, 5);
      EXPECT_EQ(s.size(), 26);  // ceil(103 / 4)
      auto v = s.indices(2);
      EXPECT_EQ(int64_t(v.size()), s.size());
      EXPECT_EQ(v, s.indices(2));
      all.insert(all.end(), v.begin(), v.end());
    }
    ASSERT_EQ(all.size(), 104u);  // padded by one repeated sample
    std::set<int64_t> uniq(all.begin(), all.end());
    EXPECT_EQ(uniq.size(), 103u);
    EXPECT_EQ(*uniq.begin(), 0);
    EXPECT_EQ(*uniq.rbegin(), 102);
  }
  // Divisible: an exact partition; drop_last: cut to a multiple of the world size.
  std::set<int64_t> seen;
  for (int r = 0; r < 3; ++r) {
    for (int64_t i : DistributedSampler(99, r, 3, true, 1).indices(0)) {
      EXPECT_TRUE(seen.insert(i).second) << "index " << i << " in two shards";
    }
  }
  EXPECT_EQ(seen.size(), 99u);
  EXPECT_EQ(DistributedSampler(103, 0, 4, true, 0, true).size(), 25);
  // Same seed and epoch on every rank: rank r takes every world-th of one shared order.
  auto order = random_permutation(12, 9 + 1);
  auto r1 = DistributedSampler(12, 1, 3, true, 9).indices(1);
  EXPECT_EQ(r1, (std::vector<int64_t>{order[1], order[4], order[7], order[10]}));
  // More ranks than samples still gives each rank one.
  EXPECT_EQ(DistributedSampler(2, 4, 5, false).indices(0), (std::vector<int64_t>{0}));
  EXPECT_THROW(DistributedSampler(10, 3, 3), Error);
  EXPECT_THROW(DistributedSampler(10, 0, 0), Error);
}

TEST(DataLoader, BatchShapesAndDropLast) {
  auto ds = std::make_shared<IndexDataset>(10);
  DataLoader a(ds, {.batch_size = 4});
  EXPECT_EQ(a.num_batches(), 3);
  std::vector<int64_t> sizes;
  for (Batch& b : a) {
    EXPECT_EQ(b.images().dim(), 4);
    EXPECT_EQ(b.images().size(1), 1);
    EXPECT_EQ(b.images().dtype(), DType::f32);
    EXPECT_EQ(b.labels().dtype(), DType::i64);
    sizes.push_back(b.size());
  }
  EXPECT_EQ(sizes, (std::vector<int64_t>{4, 4, 2}));
  DataLoader d(ds, {.batch_size = 4, .drop_last = true});
  EXPECT_EQ(d.num_batches(), 2);
  EXPECT_EQ(labels_of(d), (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7}));
}

TEST(DataLoader, EverySampleOncePerEpochAndShuffleIsReproducible) {
  auto ds = std::make_shared<IndexDataset>(257);
  DataLoader l(ds, {.batch_size = 16, .shuffle = true, .seed = 3});
  auto e0 = labels_of(l);
  EXPECT_EQ(l.epoch(), 1);  // a finished pass moves to the next epoch
  auto e1 = labels_of(l);
  std::set<int64_t> u0(e0.begin(), e0.end()), u1(e1.begin(), e1.end());
  EXPECT_EQ(e0.size(), 257u);
  EXPECT_EQ(u0.size(), 257u);
  EXPECT_EQ(u1.size(), 257u);
  EXPECT_NE(e0, e1);
  EXPECT_EQ(e0, random_permutation(257, 3));
  EXPECT_EQ(e1, random_permutation(257, 4));

  DataLoader again(ds, {.batch_size = 16, .shuffle = true, .seed = 3});
  again.set_epoch(1);
  EXPECT_EQ(labels_of(again), e1);
  again.set_epoch(0);
  EXPECT_EQ(labels_of(again), e0);
  DataLoader other(ds, {.batch_size = 16, .shuffle = true, .seed = 4});
  EXPECT_NE(labels_of(other), e0);
}

TEST(DataLoader, WorkersGiveTheSameBatchesInOrder) {
  auto ds = std::make_shared<IndexDataset>(1000);
  DataLoader sync(ds, {.batch_size = 7, .shuffle = true, .seed = 11});
  std::vector<Batch> ref;
  for (Batch& b : sync) ref.push_back(b);
  for (int workers : {1, 2, 4}) {
    for (int prefetch : {1, 3}) {
      DataLoader l(ds, {.batch_size = 7, .shuffle = true, .seed = 11, .num_workers = workers,
                        .prefetch_factor = prefetch});
      size_t i = 0;
      for (Batch& b : l) {
        ASSERT_LT(i, ref.size());
        EXPECT_TRUE(test::all_close(b.images(), ref[i].images(), 0, 0));
        EXPECT_EQ(b.labels().to_vector<int64_t>(), ref[i].labels().to_vector<int64_t>());
        ++i;
      }
      EXPECT_EQ(i, ref.size()) << workers << " workers";
    }
  }
}

TEST(DataLoader, ResumesFromAnExactPosition) {
  auto ds = std::make_shared<IndexDataset>(100);
  for (int workers : {0, 2}) {
    DataLoaderOptions opt{.batch_size = 8, .shuffle = true, .seed = 21, .num_workers = workers};
    // The uninterrupted run: epoch 0 in full, then 5 batches of epoch 1.
    DataLoader full(ds, opt);
    labels_of(full);
    std::vector<int64_t> expect;
    for (int i = 0; i < 5; ++i) full.next();
    LoaderState st = full.state();
    EXPECT_EQ(st, (LoaderState{1, 5, 21}));
    for (auto b = full.next(); b; b = full.next()) {
      auto v = b->labels().to_vector<int64_t>();
      expect.insert(expect.end(), v.begin(), v.end());
    }
    // A new process continues from the saved state.
    DataLoader resumed(ds, {.batch_size = 8, .shuffle = true, .seed = 0, .num_workers = workers});
    resumed.load_state(st);
    EXPECT_EQ(resumed.state(), st);
    EXPECT_EQ(labels_of(resumed), expect);
    EXPECT_EQ(resumed.state(), (LoaderState{2, 0, 21}));
    // skip() is the same thing by hand.
    DataLoader skipped(ds, opt);
    skipped.set_epoch(1);
    skipped.skip(5);
    EXPECT_EQ(labels_of(skipped), expect);
  }
  DataLoader l(ds, {.batch_size = 8});
  EXPECT_THROW(l.skip(14), Error);
  EXPECT_THROW(l.load_state({0, 20, 0}), Error);
  // Skipping to the end leaves an empty rest of the epoch.
  l.skip(13);
  EXPECT_FALSE(l.next().has_value());
  EXPECT_EQ(l.state(), (LoaderState{1, 0, 0}));
}

TEST(DataLoader, BreakingOutContinuesWhereItStopped) {
  auto ds = std::make_shared<IndexDataset>(20);
  DataLoader l(ds, {.batch_size = 5, .num_workers = 2});
  for (Batch& b : l) {
    EXPECT_EQ(b.labels().to_vector<int64_t>()[0], 0);
    break;
  }
  EXPECT_EQ(l.state().batch, 1);
  EXPECT_EQ(labels_of(l), (std::vector<int64_t>{5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19}));
}

TEST(DataLoader, CustomSamplerAndSeedChecks) {
  auto ds = std::make_shared<IndexDataset>(10);
  auto shard = std::make_shared<DistributedSampler>(10, 1, 2, false);
  DataLoader l(ds, {.batch_size = 2}, shard);
  EXPECT_EQ(l.num_samples(), 5);
  EXPECT_EQ(labels_of(l), (std::vector<int64_t>{1, 3, 5, 7, 9}));
  EXPECT_THROW(l.load_state({0, 0, 99}), Error);  // the sampler's seed is not ours to change
}

TEST(DataLoader, WorkerErrorsReachTheCaller) {
  auto ds = std::make_shared<IndexDataset>(50, /*fail_at=*/23);
  for (int workers : {0, 3}) {
    DataLoader l(ds, {.batch_size = 5, .num_workers = workers});
    int ok = 0;
    try {
      for (Batch& b : l) {
        (void)b;
        ++ok;
      }
      ADD_FAILURE() << "expected an error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("sample 23 is broken"), std::string::npos) << e.what();
    }
    EXPECT_EQ(ok, 4);
    EXPECT_EQ(l.state().batch, 4);  // the failed batch was not consumed
  }
}

TEST(DataLoader, BoundedPrefetch) {
  auto ds = std::make_shared<IndexDataset>(1000);
  DataLoader l(ds, {.batch_size = 1, .num_workers = 2, .prefetch_factor = 2});
  ASSERT_TRUE(l.next().has_value());
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  // Consumed 1, at most 2 * 2 more may be prepared ahead.
  EXPECT_LE(ds->calls_.load(), 1 + 4);
}

TEST(DataLoader, OptionErrors) {
  auto ds = std::make_shared<IndexDataset>(10);
  EXPECT_THROW(DataLoader(ds, {.batch_size = 0}), Error);
  EXPECT_THROW(DataLoader(ds, {.num_workers = -1}), Error);
  EXPECT_THROW(DataLoader(nullptr), Error);
  if (!cuda::is_available()) {
    EXPECT_THROW(DataLoader(ds, {.device = Device("cuda")}), Error);
  }
}

TEST(Dataset, SubsetAndGet) {
  auto ds = std::make_shared<IndexDataset>(10);
  auto sub = Subset::head(ds, 3);
  EXPECT_EQ(sub->size(), 3);
  EXPECT_EQ(Subset::head(ds, 50)->size(), 10);
  Example e = ds->get(2);
  EXPECT_EQ(e.label, 2);
  EXPECT_EQ(e.image.shape(), (Shape{1, 2, 2}));
  EXPECT_EQ(sub->fields(), ds->fields());
  std::vector<int64_t> two{2};
  EXPECT_EQ(sub->get_batch(two).labels().to_vector<int64_t>(), (std::vector<int64_t>{2}));
  std::vector<int64_t> three{3};
  EXPECT_ERROR(sub->get_batch(three), "out of range");
  Subset odd(ds, {9, 7});
  std::vector<int64_t> idx{1, 0};
  Batch b = odd.get_batch(idx);
  EXPECT_EQ(b.labels().to_vector<int64_t>(), (std::vector<int64_t>{7, 9}));
  EXPECT_THROW(Subset(ds, {10}), Error);
}

// A small u8 dataset: 3 channels of 2x2, sample i's pixels (7 * i + k) % 256, label i % 10.
std::shared_ptr<ImageTensorDataset> small_images(int64_t n) {
  std::vector<uint8_t> px(static_cast<size_t>(n * 12));
  for (size_t k = 0; k < px.size(); ++k) px[k] = uint8_t((7 * k) % 256);
  std::vector<int64_t> lab(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) lab[size_t(i)] = i % 10;
  return std::make_shared<ImageTensorDataset>(
      from_vector(px, {n, 3, 2, 2}, {.dtype = DType::u8}), from_vector(lab, {n}),
      Shape{3, 2, 2}, Normalize::cifar10());
}

TEST(Dataset, ImageTensorDatasetGathersAndNormalizes) {
  auto ds = small_images(30);
  std::vector<int64_t> idx{29, 3, 3};
  Batch b = ds->get_batch(idx);
  EXPECT_EQ(b.images().shape(), (Shape{3, 3, 2, 2}));
  auto v = b.images().to_vector<float>();
  // Row 0 is sample 29: pixel (c=2, j=1) is byte 29*12 + 2*4 + 1.
  EXPECT_EQ(v[9], (float((7 * (29 * 12 + 9)) % 256) / 255.0f - 0.4465f) / 0.2616f);
  EXPECT_EQ(b.labels().to_vector<int64_t>(), (std::vector<int64_t>{9, 3, 3}));
  EXPECT_THROW(ds->get_batch(std::vector<int64_t>{30}), Error);
  // On the CPU, "on the device" is the ordinary batch.
  Batch c = ds->get_batch_on(idx, 0, kCPU);
  EXPECT_TRUE(test::all_close(c.images(), b.images(), 0, 0));
  EXPECT_TRUE(ds->supports_device_batches());
  EXPECT_TRUE(Subset::head(ds, 5)->supports_device_batches());
  EXPECT_FALSE(IndexDataset(3).supports_device_batches());
  EXPECT_THROW(ImageTensorDataset(ones({4, 12}), zeros({4}, {.dtype = DType::i64}), {3, 2, 2}),
               Error);  // images must be u8
  EXPECT_THROW(ImageTensorDataset(zeros({4, 12}, {.dtype = DType::u8}),
                                  zeros({3}, {.dtype = DType::i64}), {3, 2, 2}),
               Error);  // counts differ
}

TEST(DataLoader, DatasetOnDeviceOption) {
  auto ds = small_images(50);
  DataLoader plain(ds, {.batch_size = 8, .shuffle = true, .seed = 2});
  DataLoader resident(Subset::head(ds, 50),
                      {.batch_size = 8, .shuffle = true, .seed = 2, .num_workers = 2,
                       .dataset_on_device = true});
  for (auto a = plain.next(), b = resident.next(); a || b; a = plain.next(), b = resident.next()) {
    ASSERT_TRUE(a && b);
    EXPECT_TRUE(test::all_close(b->images(), a->images(), 0, 0));
    EXPECT_EQ(b->labels().to_vector<int64_t>(), a->labels().to_vector<int64_t>());
  }
  EXPECT_THROW(DataLoader(std::make_shared<IndexDataset>(4), {.dataset_on_device = true}), Error);
}

TEST(Dataset, NormalizeTable) {
  auto t = Normalize::mnist().table(1);
  ASSERT_EQ(t.size(), 256u);
  EXPECT_EQ(t[0], (0.0f - 0.1307f) / 0.3081f);
  EXPECT_EQ(t[255], (255.0f / 255.0f - 0.1307f) / 0.3081f);
  auto c = Normalize::cifar10().table(3);
  EXPECT_EQ(c[256 + 128], (128.0f / 255.0f - 0.4822f) / 0.2435f);
  EXPECT_THROW(Normalize::cifar10().table(1), Error);
  EXPECT_THROW((Normalize{{0.5f}, {0.0f}}.table(1)), Error);
}

}  // namespace

// ---- named fields (Note [Named fields]): data that is not image classification

TEST(NamedFields, TensorDatasetBatchesEveryFieldInLoaderOrder) {
  // A regression with two inputs: x (N, 3) f32, t (N) i32, y (N, 2) f64.
  const int64_t n = 23;
  Tensor x = arange(0.0, double(n * 3), 1.0).reshape({n, 3});
  Tensor t = arange(0.0, double(n), 1.0).to(DType::i32) * 10;
  Tensor y = arange(0.0, double(n * 2), 1.0, {.dtype = DType::f64}).reshape({n, 2}) / 4.0;
  auto ds = std::make_shared<TensorDataset>(std::vector<std::pair<std::string, Tensor>>{{"x", x}, {"t", t}, {"y", y}});
  ASSERT_EQ(ds->size(), n);
  std::vector<Field> f = ds->fields();
  ASSERT_EQ(f.size(), 3u);
  EXPECT_EQ(f[0], (Field{"x", DType::f32, {3}}));
  EXPECT_EQ(f[1], (Field{"t", DType::i32, {}}));
  EXPECT_EQ(f[2], (Field{"y", DType::f64, {2}}));
  for (int workers : {0, 2}) {
    DataLoader loader(ds, {.batch_size = 5, .shuffle = true, .seed = 3, .num_workers = workers});
    std::vector<int64_t> seen;
    for (Batch& b : loader) {
      ASSERT_EQ(b.fields().size(), 3u);
      EXPECT_EQ(b.fields()[0].first, "x");  // the dataset's field order
      const std::vector<int32_t> tv = b["t"].to_vector<int32_t>();
      const std::vector<float> xv = b["x"].to_vector<float>();
      const std::vector<double> yv = b["y"].to_vector<double>();
      EXPECT_EQ(b["y"].dtype(), DType::f64);
      for (size_t r = 0; r < tv.size(); ++r) {
        const int64_t i = tv[r] / 10;  // the sample this row came from
        seen.push_back(i);
        for (int c = 0; c < 3; ++c) EXPECT_EQ(xv[r * 3 + size_t(c)], float(i * 3 + c)) << i;
        for (int c = 0; c < 2; ++c) EXPECT_EQ(yv[r * 2 + size_t(c)], double(i * 2 + c) / 4.0) << i;
      }
    }
    std::sort(seen.begin(), seen.end());
    std::vector<int64_t> all(static_cast<size_t>(n));
    std::iota(all.begin(), all.end(), 0);
    EXPECT_EQ(seen, all) << "workers " << workers;  // every sample once per epoch
  }
}

TEST(NamedFields, BadFieldsAndBatchLookupsAreClearErrors) {
  Tensor a = zeros({4, 2}), b = zeros({5});
  using F = std::vector<std::pair<std::string, Tensor>>;
  EXPECT_ERROR(TensorDataset(F{{"a", a}, {"b", b}}), "has 5 samples");
  EXPECT_ERROR(TensorDataset(F{{"a", a}, {"a", a}}), "given twice");
  EXPECT_ERROR(TensorDataset(F{{"", a}}), "empty name");
  EXPECT_ERROR(TensorDataset(F{{"s", scalar_tensor(1.0)}}), "first (sample) dim");
  TensorDataset ds(F{{"a", a}});
  EXPECT_ERROR(ds.field("image"), "no field 'image' (its fields: a)");
  std::vector<int64_t> idx{0, 3};
  Batch batch = ds.get_batch(idx);
  EXPECT_ERROR(batch.images(), "no field 'image' (its fields: a)");
  EXPECT_ERROR(ds.fill(idx, 0, {zeros({2, 3})}), "field 'a' needs a contiguous CPU f32 tensor of shape [2, 2]");
  std::vector<int64_t> bad{4};
  EXPECT_ERROR(ds.get_batch(bad), "out of range");
  // An augmentation needs an image field.
  EXPECT_ERROR(AugmentedDataset(std::make_shared<TensorDataset>(F{{"a", a}}), AugmentOptions{}, 1), "no field 'image'");
}

TEST(NamedFields, AugmentationCropsTheImageFieldAndPassesTheOthersThrough) {
  // Images with an extra per-sample field: the augmentation must move the extra field along
  // untouched, and crop/flip the images exactly as it does for an image dataset.
  const int64_t n = 6;
  Tensor u8 = (arange(0.0, double(n * 2 * 5 * 5), 1.0) - 0.0).to(DType::u8).reshape({n, 2, 5, 5});
  Tensor labels = arange(0.0, double(n), 1.0).to(DType::i64);
  auto images = std::make_shared<ImageTensorDataset>(u8, labels, Shape{2, 5, 5});
  std::vector<int64_t> all{0, 1, 2, 3, 4, 5};
  Tensor imgs = images->get_batch(all).images();
  Tensor weight = arange(0.0, double(n), 1.0, {.dtype = DType::f64}) * 0.5;
  using F = std::vector<std::pair<std::string, Tensor>>;
  auto named = std::make_shared<TensorDataset>(F{{"image", imgs}, {"label", labels}, {"weight", weight}});
  const AugmentOptions o{.padding = 1, .hflip = true};
  AugmentedDataset aug_named(named, o, 17), aug_images(images, o, 17);
  std::vector<int64_t> idx{5, 0, 3};
  for (int64_t epoch : {0, 4}) {
    Batch a = aug_named.get_batch_on(idx, epoch, kCPU), b = aug_images.get_batch_on(idx, epoch, kCPU);
    EXPECT_EQ(test::bytes_of(a.images()), test::bytes_of(b.images())) << epoch;
    EXPECT_EQ(a.labels().to_vector<int64_t>(), b.labels().to_vector<int64_t>());
    EXPECT_EQ(a["weight"].to_vector<double>(), (std::vector<double>{2.5, 0.0, 1.5}));
  }
}
