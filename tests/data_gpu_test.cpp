// CUDA paths of data/ and io/: pinned, asynchronous batch copies and saving CUDA tensors.
#include <unistd.h>

#include <filesystem>

#include "data/augment.h"
#include "data/loader.h"
#include "kernels/image_batch.h"
#if EMBER_WITH_CUDA
#include "core/cuda/stream.h"
#endif
#include "io/safetensors.h"
#include "test_util.h"

using namespace ember;
using namespace ember::data;

namespace {

// Sample i: an image (1, 3, 3) of i + pixel / 10, labelled i.
class RampDataset : public ImageDataset {
 public:
  int64_t size() const override { return 203; }
  Shape image_shape() const override { return {1, 3, 3}; }
  void fill_batch(std::span<const int64_t> idx, float* images, int64_t* labels) const override {
    for (size_t b = 0; b < idx.size(); ++b) {
      for (int j = 0; j < 9; ++j) images[b * 9 + size_t(j)] = float(idx[b]) + float(j) / 10.0f;
      labels[b] = idx[b];
    }
  }
};

TEST(DataGpu, LoaderBatchesOnTheGpuEqualCpuBatches) {
  EMBER_REQUIRE_GPU();
  auto ds = std::make_shared<RampDataset>();
  for (bool pin : {true, false}) {
    for (int workers : {0, 2}) {
      DataLoader cpu_loader(ds, {.batch_size = 16, .shuffle = true, .seed = 4});
      DataLoader gpu_loader(ds, {.batch_size = 16, .shuffle = true, .seed = 4,
                                 .num_workers = workers, .device = Device("cuda:0"),
                                 .pin_memory = pin});
      for (int epoch = 0; epoch < 2; ++epoch) {  // the second epoch reuses pinned buffers
        int64_t n = 0;
        for (auto a = cpu_loader.next(), g = gpu_loader.next(); a || g;
             a = cpu_loader.next(), g = gpu_loader.next()) {
          ASSERT_TRUE(a && g);
          EXPECT_TRUE(g->images().is_cuda());
          EXPECT_TRUE(g->labels().is_cuda());
          EXPECT_TRUE(test::all_close(g->images().cpu(), a->images(), 0, 0));
          EXPECT_EQ(g->labels().to_vector<int64_t>(), a->labels().to_vector<int64_t>());
          ++n;
        }
        EXPECT_EQ(n, 13);
      }
    }
  }
}

TEST(DataGpu, GatherNormalizeKernelMatchesCpu) {
  EMBER_REQUIRE_GPU();
  const int64_t n = 37, channels = 3, plane = 33, row = channels * plane, batch = 19;
  Tensor images = randint(0, 256, {n, row}).to(DType::u8);
  Tensor labels = randint(0, 10, {n});
  std::vector<int64_t> idx;
  for (int64_t b = 0; b < batch; ++b) idx.push_back((b * 13 + 5) % n);  // repeats too
  std::vector<float> table = Normalize::cifar10().table(channels);
  std::vector<float> out(static_cast<size_t>(batch * row));
  std::vector<int64_t> out_labels(static_cast<size_t>(batch));
  cpu::gather_normalize_u8(images.data<uint8_t>(), labels.data<int64_t>(), idx.data(), batch,
                           channels, plane, table.data(), out.data(), out_labels.data());

#if EMBER_WITH_CUDA
  Device dev("cuda:0");
  Tensor d_images = images.to(dev), d_labels = labels.to(dev);
  Tensor d_idx = from_vector(idx).to(dev), d_table = from_vector(table).to(dev);
  Tensor d_out = empty({batch, row}, {.device = dev});
  Tensor d_out_labels = empty({batch}, {.dtype = DType::i64, .device = dev});
  cuda::gather_normalize_u8(d_images.data<uint8_t>(), d_labels.data<int64_t>(),
                            d_idx.data<int64_t>(), batch, channels, plane,
                            d_table.data<float>(), d_out.data<float>(),
                            d_out_labels.data<int64_t>(), cuda::current_stream(0));
  EXPECT_EQ(d_out.to_vector<float>(), out);
  EXPECT_EQ(d_out_labels.to_vector<int64_t>(), out_labels);
#endif
}

TEST(DataGpu, DatasetOnDeviceBatchesEqualCpuBatches) {
  EMBER_REQUIRE_GPU();
  const int64_t n = 301;
  Tensor images = randint(0, 256, {n, 1, 28, 28}).to(DType::u8);
  Tensor labels = randint(0, 10, {n});
  auto ds = std::make_shared<ImageTensorDataset>(images, labels, Shape{1, 28, 28},
                                                 Normalize::mnist());
  DataLoader cpu_loader(ds, {.batch_size = 64, .shuffle = true, .seed = 8});
  DataLoader gpu_loader(Subset::head(ds, n), {.batch_size = 64, .shuffle = true, .seed = 8,
                                              .device = Device("cuda:0"),
                                              .dataset_on_device = true});
  int64_t count = 0;
  for (auto a = cpu_loader.next(), g = gpu_loader.next(); a || g;
       a = cpu_loader.next(), g = gpu_loader.next()) {
    ASSERT_TRUE(a && g);
    EXPECT_TRUE(g->images().is_cuda());
    EXPECT_EQ(g->images().shape(), a->images().shape());
    EXPECT_TRUE(test::all_close(g->images().cpu(), a->images(), 0, 0));
    EXPECT_EQ(g->labels().to_vector<int64_t>(), a->labels().to_vector<int64_t>());
    ++count;
  }
  EXPECT_EQ(count, 5);
}

// Note [Batches on the device] (data/augment.h): the CUDA crop + flip equals its CPU twin
// bit for bit (and the twin equals the original CPU augmentation: augment_twin_test).
TEST(DataGpu, CropFlipKernelMatchesCpuTwin) {
  EMBER_REQUIRE_GPU();
  struct Case { int64_t batch, channels, height, width, padding; bool hflip; };
  for (Case k : {Case{131, 3, 32, 32, 4, true}, Case{7, 1, 28, 28, 4, true}, Case{5, 2, 5, 7, 2, false},
                 Case{3, 3, 4, 4, 0, true}, Case{0, 3, 8, 8, 4, true}}) {
    const int64_t row = k.channels * k.height * k.width;
    Tensor in = randn({k.batch, row});
    std::vector<int64_t> keys;
    for (int64_t b = 0; b < k.batch; ++b) keys.push_back((b * 7919 + 3) % 50000);
    std::vector<float> fill;
    for (int64_t c = 0; c < k.channels; ++c) fill.push_back(-1.5f - float(c));
    for (int64_t epoch : {int64_t(0), int64_t(3), (int64_t(1) << 31) + 7}) {
      const CropFlipArgs a{.seed = 123, .epoch = epoch, .padding = k.padding, .hflip = k.hflip};
      std::vector<float> want(size_t(k.batch * row));
      cpu::crop_flip(in.data<float>(), want.data(), keys.data(), k.batch, k.channels, k.height, k.width, a,
                     fill.data());
#if EMBER_WITH_CUDA
      Device dev("cuda:0");
      Tensor d_in = in.to(dev), d_keys = from_vector(keys).to(dev), d_fill = from_vector(fill).to(dev);
      Tensor d_out = empty({k.batch, row}, {.device = dev});
      cuda::crop_flip(d_in.data<float>(), d_out.data<float>(), d_keys.data<int64_t>(), k.batch, k.channels,
                      k.height, k.width, a, d_fill.data<float>(), cuda::current_stream(0));
      EXPECT_EQ(test::bytes_of(d_out), test::bytes_of(from_vector(want, {k.batch, row})))
          << k.batch << "x" << k.channels << "x" << k.height << "x" << k.width << " p" << k.padding << " epoch " << epoch;
#endif
    }
  }
}

// The whole pipeline: an augmented dataset kept on the GPU (what the apps do on CUDA) gives
// the CPU loader's batches bit for bit, over two epochs and after a resume.
TEST(DataGpu, AugmentedDatasetOnDeviceEqualsCpuBatches) {
  EMBER_REQUIRE_GPU();
  const int64_t n = 333;
  Tensor images = randint(0, 256, {n, 3, 32, 32}).to(DType::u8);
  Tensor labels = randint(0, 10, {n});
  auto plain = std::make_shared<ImageTensorDataset>(images, labels, Shape{3, 32, 32}, Normalize::cifar10());
  auto aug = std::make_shared<AugmentedDataset>(
      plain, AugmentOptions{.padding = 4, .hflip = true, .normalize = Normalize::cifar10()}, 17);
  auto sub = Subset::head(aug, 300);
  DataLoader cpu_loader(sub, {.batch_size = 64, .shuffle = true, .seed = 8, .num_workers = 2});
  DataLoader gpu_loader(sub, {.batch_size = 64, .shuffle = true, .seed = 8, .device = Device("cuda:0"),
                              .dataset_on_device = true});
  std::vector<std::vector<unsigned char>> epoch1;
  for (int e = 0; e < 2; ++e) {
    int64_t count = 0;
    for (auto a = cpu_loader.next(), g = gpu_loader.next(); a || g;
         a = cpu_loader.next(), g = gpu_loader.next()) {
      ASSERT_TRUE(a && g);
      EXPECT_TRUE(g->images().is_cuda());
      EXPECT_TRUE(g->labels().is_cuda());
      EXPECT_EQ(test::bytes_of(g->images()), test::bytes_of(a->images())) << e << " " << count;
      EXPECT_EQ(g->labels().to_vector<int64_t>(), a->labels().to_vector<int64_t>());
      if (e == 1) epoch1.push_back(test::bytes_of(a->images()));
      ++count;
    }
    EXPECT_EQ(count, 5);
  }
  DataLoader resumed(sub, {.batch_size = 64, .shuffle = true, .seed = 8, .device = Device("cuda:0"),
                           .dataset_on_device = true});
  resumed.load_state({1, 3, 8});
  size_t k = 3;
  for (Batch& b : resumed) EXPECT_EQ(test::bytes_of(b.images()), epoch1.at(k++));
  EXPECT_EQ(k, 5u);
}

TEST(DataGpu, SaveSafetensorsCopiesCudaTensorsToTheCpu) {
  EMBER_REQUIRE_GPU();
  auto path = (std::filesystem::temp_directory_path() /
               ("ember_gpu_st_" + std::to_string(::getpid()) + ".safetensors"))
                  .string();
  Tensor x = randn({4, 5}).cuda();
  Tensor xt = make_view(x, {5, 4}, {1, 5}, 0);  // non-contiguous, on the GPU
  save_safetensors(path, {{"x", x}, {"xt", xt}});
  SafetensorsFile f = load_safetensors(path);
  std::filesystem::remove(path);
  EXPECT_TRUE(test::all_close(f.at("x"), x.cpu(), 0, 0));
  EXPECT_TRUE(test::all_close(f.at("xt"), xt.cpu(), 0, 0));
  EXPECT_TRUE(f.at("x").device().is_cpu());
}

}  // namespace
