// CUDA paths of data/ and io/: pinned, asynchronous batch copies and saving CUDA tensors.
#include <unistd.h>

#include <filesystem>

#include "data/loader.h"
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
