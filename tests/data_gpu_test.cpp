// CUDA paths of data/ and io/: pinned, asynchronous batch copies and saving CUDA tensors.
#include <unistd.h>

#include <filesystem>

#include "data/loader.h"
#include "kernels/image_batch.h"
#if EMBER_WITH_CUDA
#include "tensor/cuda/stream.h"
#endif
#include "io/safetensors.h"
#include "test_util.h"

using namespace ember;
using namespace ember::data;

namespace {

// Sample i: an image (1, 3, 3) of i + pixel / 10, labelled i.
class RampDataset : public Dataset {
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
          EXPECT_TRUE(g->images.is_cuda());
          EXPECT_TRUE(g->labels.is_cuda());
          EXPECT_TRUE(test::all_close(g->images.cpu(), a->images, 0, 0));
          EXPECT_EQ(g->labels.to_vector<int64_t>(), a->labels.to_vector<int64_t>());
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
    EXPECT_TRUE(g->images.is_cuda());
    EXPECT_EQ(g->images.shape(), a->images.shape());
    EXPECT_TRUE(test::all_close(g->images.cpu(), a->images, 0, 0));
    EXPECT_EQ(g->labels.to_vector<int64_t>(), a->labels.to_vector<int64_t>());
    ++count;
  }
  EXPECT_EQ(count, 5);
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
