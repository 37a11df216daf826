// End to end: the cifar app on 200 real CIFAR-10 JPEGs (10 per class and split) unpacked
// from ../shared/data/cifar10-jpg.tar.gz: one short epoch of ResNet-20 with augmentation,
// exact resume, and the messages for missing data and a wrong dataset name.

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "io/safetensors.h"
#include "test_util.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace ember;

namespace {

test::CommandResult run(const std::string& args) {
  return test::run_command(std::string(EMBER_BINARY_DIR) + "/apps/cifar " + args);
}

fs::path scratch(const std::string& name) { return test::scratch_dir("cifar_app_" + name); }

#define REQUIRE_SMALL_CIFAR(dir)                    \
  std::string why_;                                 \
  const fs::path dir = test::small_cifar_folder(why_); \
  if (dir.empty()) GTEST_SKIP() << why_

std::vector<json> read_metrics(const fs::path& out) { return test::read_metrics(out.string()); }

}  // namespace

TEST(CifarApp, OneEpochOnRealImages) {
  REQUIRE_SMALL_CIFAR(data);
  fs::path out = scratch("short");
  test::CommandResult r = run("--data " + data.string() + " --out " + out.string() +
                 " --device cpu --epochs 1 --batch-size 25 --test-batch-size 50 --workers 1 --log-interval 2");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("resnet20"), std::string::npos) << r.output;  // the default model
  EXPECT_NE(r.output.find("100 training / 100 test samples"), std::string::npos) << r.output;
  for (const char* f : {"args.yaml", "train.log", "metrics.jsonl", "best.safetensors", "last.ckpt"})
    EXPECT_TRUE(fs::exists(out / f)) << f;
  std::vector<json> m = read_metrics(out);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_TRUE(std::isfinite(m[0]["train_loss"].get<double>()));
  EXPECT_TRUE(std::isfinite(m[0]["test_loss"].get<double>()));
  EXPECT_GT(m[0]["train_loss"].get<double>(), 0.5);  // 10 classes, one epoch: nowhere near fit
  EXPECT_EQ(m[0]["train_samples"].get<int64_t>(), 100);
  EXPECT_EQ(m[0]["test_samples"].get<int64_t>(), 100);
  EXPECT_DOUBLE_EQ(m[0]["lr"].get<double>(), 0.1);  // the default
  std::ifstream args(out / "args.yaml");
  std::string a((std::istreambuf_iterator<char>(args)), {});
  EXPECT_NE(a.find("weight-decay: 0.0005"), std::string::npos) << a;
  fs::remove_all(out);
}

TEST(CifarApp, ResumeWithAugmentationIsExact) {
  REQUIRE_SMALL_CIFAR(data);
  // 60 samples / 20 = 3 iterations per epoch; cut at iteration 4, mid-epoch 2.
  std::string base = "--data " + data.string() +
                     " --device cpu --epochs 2 --limit-train 60 --limit-test 20 --batch-size 20 --deterministic "
                     "--workers 2 ";
  fs::path a = scratch("full"), b = scratch("cut");
  test::CommandResult full_run = run(base + "--out " + a.string());
  ASSERT_EQ(full_run.status, 0) << full_run.output;
  test::CommandResult cut = run(base + "--out " + b.string() + " --save-every 1 --crash-iteration 4");
  ASSERT_EQ(cut.status, 3) << cut.output;
  test::CommandResult resumed = run(base + "--out " + b.string() + " --resume " + (b / "last.ckpt").string());
  ASSERT_EQ(resumed.status, 0) << resumed.output;
  SafetensorsFile fa = load_safetensors((a / "last.ckpt").string());
  SafetensorsFile fb = load_safetensors((b / "last.ckpt").string());
  ASSERT_EQ(fa.tensors.size(), fb.tensors.size());
  for (size_t i = 0; i < fa.tensors.size(); ++i) {
    if (fa.tensors[i].second.dtype() != DType::f32) continue;
    EXPECT_EQ(fa.tensors[i].second.to_vector<float>(), fb.tensors[i].second.to_vector<float>())
        << fa.tensors[i].first;
  }
  fs::remove_all(a);
  fs::remove_all(b);
}

// --amp on ResNet-20 (batch norm takes the 16-bit activations with its f32 parameters):
// both 16-bit types train an epoch on real images with finite losses; the weights, running
// statistics and checkpoint stay f32; --clip-grad-norm combines with the loss scaler.
TEST(CifarApp, AmpTrainsResNetWithF32MasterWeights) {
  REQUIRE_SMALL_CIFAR(data);
  for (const char* amp : {"bf16", "fp16"}) {
    fs::path out = scratch(std::string("amp_") + amp);
    test::CommandResult r = run("--data " + data.string() + " --out " + out.string() + " --amp " + amp +
                                " --device cpu --epochs 1 --batch-size 25 --test-batch-size 50 --workers 1"
                                " --clip-grad-norm 5 --no-tensorboard --image-every 0");
    ASSERT_EQ(r.status, 0) << r.output;
    std::vector<json> m = read_metrics(out);
    ASSERT_EQ(m.size(), 1u);
    EXPECT_TRUE(std::isfinite(m[0]["train_loss"].get<double>())) << amp;
    EXPECT_TRUE(std::isfinite(m[0]["test_loss"].get<double>())) << amp;
    EXPECT_EQ(m[0].contains("loss_scale"), std::string(amp) == "fp16");
    SafetensorsFile f = load_safetensors((out / "last.ckpt").string());
    for (const auto& [name, t] : f.tensors) {
      if (name.find("num_batches_tracked") != std::string::npos) continue;
      EXPECT_EQ(t.dtype(), DType::f32) << name;
    }
    fs::remove_all(out);
  }
}

TEST(CifarApp, BadInputsGiveStatusAndMessage) {
  fs::path empty = scratch("empty");
  test::CommandResult r = run("--data " + empty.string() + " --device cpu");
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("data_batch_1.bin"), std::string::npos) << r.output;  // neither layout found
  test::CommandResult d = run("--dataset mnist --data " + empty.string());
  EXPECT_EQ(d.status, 2) << d.output;
  EXPECT_NE(d.output.find("expected cifar10"), std::string::npos) << d.output;
  test::CommandResult m = run("--model nosuchnet --data " + empty.string());
  EXPECT_EQ(m.status, 2) << m.output;
  EXPECT_NE(m.output.find("resnet20"), std::string::npos) << m.output;  // listed among the models
  fs::remove_all(empty);
}

TEST(CifarApp, ConfigFileStartsFromTheCifarDefaults) {
  REQUIRE_SMALL_CIFAR(data);
  fs::path out = scratch("config");
  fs::create_directories(out);
  std::ofstream(out / "c.yaml") << "epochs: 1\nlimit-train: 20\nlimit-test: 20\nbatch-size: 20\nworkers: 0\n";
  test::CommandResult r = run("--config " + (out / "c.yaml").string() + " --data " + data.string() + " --out " +
                              out.string() + " --device cpu --no-tensorboard");
  ASSERT_EQ(r.status, 0) << r.output;
  std::ifstream args(out / "args.yaml");
  std::string a((std::istreambuf_iterator<char>(args)), {});
  for (const char* line : {"model: resnet20", "dataset: cifar10", "lr: 0.1", "batch-size: 20", "epochs: 1"})
    EXPECT_NE(a.find(line), std::string::npos) << line << "\n" << a;
  fs::remove_all(out);
}

TEST(CifarApp, HelpAndErrorsListTheCifarModels) {
  test::CommandResult h = run("--help");
  EXPECT_EQ(h.status, 0) << h.output;
  EXPECT_NE(h.output.find("models: resnet20, resnet32, resnet44, resnet56, resnet110"), std::string::npos) << h.output;
  EXPECT_NE(h.output.find("resnet18"), std::string::npos) << h.output;
  EXPECT_NE(h.output.find("datasets: cifar10"), std::string::npos) << h.output;
  EXPECT_EQ(h.output.find("lenet"), std::string::npos) << h.output;
  EXPECT_EQ(h.output.find("fashion-mnist"), std::string::npos) << h.output;
  test::CommandResult m = run("--model lenet");
  EXPECT_EQ(m.status, 2) << m.output;
  EXPECT_NE(m.output.find("resnet20"), std::string::npos) << m.output;
}
