// End to end: the mnist app on real MNIST (../shared/data/mnist), short runs. Training
// lowers the loss and passes an accuracy bar, a run cut at iteration k and resumed ends with
// the same weights as the uninterrupted one, --evaluate reproduces the logged accuracy, and
// every bad input gets its exit status and a message.

#include <cstdio>
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
  return test::run_command(std::string(EMBER_BINARY_DIR) + "/apps/mnist " + args);
}

std::string mnist_dir() { return test::shared_data_dir() + "/mnist"; }

#define REQUIRE_MNIST() \
  if (!fs::exists(mnist_dir())) GTEST_SKIP() << "no MNIST at " << mnist_dir() << " (set EMBER_DATA_DIR)"


fs::path scratch(const std::string& name) { return test::scratch_dir("mnist_app_" + name); }

std::vector<json> read_metrics(const fs::path& out) {
  std::vector<json> rows;
  std::ifstream f(out / "metrics.jsonl");
  std::string line;
  while (std::getline(f, line)) rows.push_back(json::parse(line));
  return rows;
}

std::string common(const fs::path& out) {
  return "--data " + mnist_dir() + " --out " + out.string() + " --device cpu --log-interval 10 ";
}

}  // namespace

TEST(MnistApp, ShortRunLearnsAndWritesItsFiles) {
  REQUIRE_MNIST();
  fs::path out = scratch("short");
  test::CommandResult r = run(common(out) + "--epochs 2 --limit-train 3000 --limit-test 1000 --batch-size 32 --lr 0.05");
  ASSERT_EQ(r.status, 0) << r.output;
  for (const char* f : {"args.yaml", "train.log", "metrics.jsonl", "best.safetensors", "last.ckpt"})
    EXPECT_TRUE(fs::exists(out / f)) << f;
  std::vector<json> m = read_metrics(out);
  ASSERT_EQ(m.size(), 2u);
  for (const char* k : {"epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "epoch_seconds",
                        "train_images_per_second"})
    EXPECT_TRUE(m[0].contains(k)) << k;
  EXPECT_LT(m[1]["train_loss"].get<double>(), m[0]["train_loss"].get<double>());
  EXPECT_LT(m[1]["train_loss"].get<double>(), 1.0);
  EXPECT_GT(m[1]["test_acc"].get<double>(), 85.0);  // percent, on 1000 real test images
  // Cosine annealing over 2 epochs: epoch 2 runs at lr0 * (1 + cos(pi/2)) / 2.
  EXPECT_NEAR(m[1]["lr"].get<double>(), 0.025, 1e-9);
  // The console showed progress and the log file got the same lines.
  std::ifstream log(out / "train.log");
  std::string text((std::istreambuf_iterator<char>(log)), {});
  EXPECT_NE(text.find("epoch 2/2"), std::string::npos) << text;
  // The resolved configuration is saved.
  std::ifstream args(out / "args.yaml");
  std::string a((std::istreambuf_iterator<char>(args)), {});
  EXPECT_NE(a.find("batch-size: 32"), std::string::npos) << a;
  // --evaluate on the best weights gives the best logged accuracy.
  double best = 0;
  for (const json& row : m) best = std::max(best, row["test_acc"].get<double>());
  test::CommandResult e = run("--evaluate " + (out / "best.safetensors").string() + " --data " + mnist_dir() +
              " --limit-test 1000 --device cpu");
  ASSERT_EQ(e.status, 0) << e.output;
  json ev = json::parse(e.output.substr(e.output.find('{')));
  EXPECT_DOUBLE_EQ(ev["test_acc"].get<double>(), best);
  // --evaluate also takes the training checkpoint (its model part): the last epoch's figures.
  test::CommandResult c = run("--evaluate " + (out / "last.ckpt").string() + " --data " + mnist_dir() +
                              " --limit-test 1000 --device cpu");
  ASSERT_EQ(c.status, 0) << c.output;
  json cv = json::parse(c.output.substr(c.output.find('{')));
  EXPECT_DOUBLE_EQ(cv["test_acc"].get<double>(), m[1]["test_acc"].get<double>());
  EXPECT_NEAR(cv["test_loss"].get<double>(), m[1]["test_loss"].get<double>(), 1e-9);
}

// --deterministic: the same run at 1 and at 2 OpenMP threads ends with the same weights,
// bit for bit (Note [Thread-count-independent sums]).
TEST(MnistApp, DeterministicRunsAgreeBitwiseAtOneAndTwoThreads) {
  REQUIRE_MNIST();
  std::vector<SafetensorsFile> w;
  for (int threads : {1, 2}) {
    fs::path out = scratch("det" + std::to_string(threads));
    test::CommandResult r = test::run_command("OMP_NUM_THREADS=" + std::to_string(threads) + " " +
                                              std::string(EMBER_BINARY_DIR) + "/apps/mnist " + common(out) +
                                              "--deterministic --epochs 1 --limit-train 512 --limit-test 100 "
                                              "--batch-size 64 --no-tensorboard");
    ASSERT_EQ(r.status, 0) << r.output;
    EXPECT_NE(r.output.find("deterministic:"), std::string::npos) << r.output;
    w.push_back(load_safetensors((out / "last.ckpt").string()));
  }
  ASSERT_EQ(w[0].tensors.size(), w[1].tensors.size());
  for (const auto& [k, t] : w[0].tensors) {
    if (k.rfind("model.", 0) != 0) continue;
    EXPECT_EQ(w[1].at(k).to_vector<double>(), t.to_vector<double>()) << k;
  }
}

TEST(MnistApp, ResumeEqualsUninterruptedBitForBit) {
  REQUIRE_MNIST();
  // 640 samples / 32 = 20 iterations per epoch; cut at iteration 25, mid-epoch 2.
  std::string base = "--epochs 2 --limit-train 640 --limit-test 200 --batch-size 32 --deterministic ";
  fs::path a = scratch("full"), b = scratch("cut");
  test::CommandResult full_run = run(common(a) + base);
  ASSERT_EQ(full_run.status, 0) << full_run.output;
  test::CommandResult cut = run(common(b) + base + "--save-every 5 --crash-iteration 25");
  ASSERT_EQ(cut.status, 3) << cut.output;
  test::CommandResult resumed = run(common(b) + base + "--resume " + (b / "last.ckpt").string());
  ASSERT_EQ(resumed.status, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("mid-epoch"), std::string::npos) << resumed.output;
  SafetensorsFile fa = load_safetensors((a / "last.ckpt").string());
  SafetensorsFile fb = load_safetensors((b / "last.ckpt").string());
  ASSERT_EQ(fa.tensors.size(), fb.tensors.size());
  for (size_t i = 0; i < fa.tensors.size(); ++i) {
    EXPECT_EQ(fa.tensors[i].first, fb.tensors[i].first);
    EXPECT_EQ(fa.tensors[i].second.to_vector<float>(), fb.tensors[i].second.to_vector<float>())
        << fa.tensors[i].first;
  }
  std::vector<json> ma = read_metrics(a), mb = read_metrics(b);
  ASSERT_EQ(ma.size(), 2u);
  ASSERT_EQ(mb.size(), 2u);
  // The epoch sums survived the cut, so the resumed epoch reports the same training loss.
  EXPECT_EQ(ma[1]["train_loss"].get<double>(), mb[1]["train_loss"].get<double>());
  EXPECT_EQ(ma[1]["test_acc"].get<double>(), mb[1]["test_acc"].get<double>());
}

TEST(MnistApp, ConfigFileAndFlagsOverrideIt) {
  REQUIRE_MNIST();
  fs::path out = scratch("cfg");
  fs::create_directories(out);
  std::ofstream(out / "c.yaml") << "model: mlp\nepochs: 1\nbatch_size: 100\nlimit-train: 500\nlimit-test: 100\nlr: 0.5\n";
  test::CommandResult r = run(common(out) + "--config " + (out / "c.yaml").string() + " --lr 0.05");
  ASSERT_EQ(r.status, 0) << r.output;
  std::ifstream args(out / "args.yaml");
  std::string a((std::istreambuf_iterator<char>(args)), {});
  EXPECT_NE(a.find("model: mlp"), std::string::npos) << a;
  EXPECT_NE(a.find("batch-size: 100"), std::string::npos) << a;
  EXPECT_NE(a.find("lr: 0.05"), std::string::npos) << a;
}

TEST(MnistApp, BadInputsGiveStatusAndMessage) {
  REQUIRE_MNIST();
  fs::path out = scratch("bad");
  struct Case {
    std::string args;
    int status;
    std::string message;
  };
  fs::create_directories(out / "corrupt");
  std::ofstream(out / "corrupt" / "train-images-idx3-ubyte") << "not an idx file";
  std::ofstream(out / "corrupt" / "train-labels-idx1-ubyte") << "nor this";
  std::ofstream(out / "bad.yaml") << "epochs: 1\nno_such_option: 3\n";
  std::ofstream(out / "junk.ckpt") << "garbage";
  std::vector<Case> cases = {
      {"--model resnet9000", 2, "unknown model"},
      {"--epochs -1", 2, "epochs"},
      {"--no-such-flag", 2, "no-such-flag"},
      {"--config " + (out / "bad.yaml").string(), 2, "no_such_option"},
      {"--config " + (out / "bad.yaml").string(), 2, "bad.yaml"},
      {"--config " + (out / "missing.yaml").string(), 2, "cannot open"},
      {"--data " + (out / "nowhere").string(), 1, "no such directory"},
      {"--data " + (out / "corrupt").string(), 1, "train-images"},
      {"--data " + mnist_dir() + " --resume " + (out / "junk.ckpt").string(), 1, "junk.ckpt"},
      {"--data " + mnist_dir() + " --evaluate " + (out / "none.safetensors").string(), 1, "none.safetensors"},
      {"--data " + mnist_dir() + " --dataset cifar", 2, "cifar"},
  };
  if (!cuda::is_available()) cases.push_back({"--data " + mnist_dir() + " --device cuda", 1, "CUDA"});
  for (const Case& c : cases) {
    test::CommandResult r = run("--out " + (out / "o").string() + " --epochs 1 --limit-train 64 --limit-test 64 " + c.args);
    EXPECT_EQ(r.status, c.status) << c.args << "\n" << r.output;
    EXPECT_NE(r.output.find(c.message), std::string::npos) << c.args << "\n" << r.output;
  }
}

namespace {
std::string read_text(const fs::path& p) {
  std::ifstream f(p);
  return std::string((std::istreambuf_iterator<char>(f)), {});
}
}  // namespace

TEST(MnistApp, SavedArgsYamlAsConfigReproducesTheRun) {
  REQUIRE_MNIST();
  fs::path a = scratch("args_a"), b = scratch("args_b");
  // Non-default values of many kinds, and the empty strings args.yaml writes (resume,
  // evaluate, tensorboard).
  test::CommandResult first = run(common(a) + "--epochs 2 --limit-train 320 --limit-test 100 --batch-size 32 --model mlp "
                                  "--scheduler multistep --milestones 1 --gamma 0.5 --warmup-epochs 0 --nesterov "
                                  "--deterministic --seed 5 --workers 0 --image-every 2 --sched-unit epoch");
  ASSERT_EQ(first.status, 0) << first.output;
  test::CommandResult again = run("--config " + (a / "args.yaml").string() + " --out " + b.string());
  ASSERT_EQ(again.status, 0) << again.output;
  std::string ya = read_text(a / "args.yaml"), yb = read_text(b / "args.yaml");
  EXPECT_NE(ya.find("resume: \"\""), std::string::npos) << ya;  // an empty string went through
  // The same options, but for the output folder.
  auto without_out = [](std::string y) {
    size_t p = y.find("\nout: ");
    return y.erase(p, y.find('\n', p + 1) - p);
  };
  EXPECT_EQ(without_out(ya), without_out(yb));
  std::vector<json> ma = read_metrics(a), mb = read_metrics(b);
  ASSERT_EQ(ma.size(), 2u);
  ASSERT_EQ(mb.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(ma[i]["train_loss"].get<double>(), mb[i]["train_loss"].get<double>());
    EXPECT_EQ(ma[i]["lr"].get<double>(), mb[i]["lr"].get<double>());
  }
  EXPECT_DOUBLE_EQ(ma[1]["lr"].get<double>(), 0.005);  // multistep at epoch 1, gamma 0.5
}

TEST(MnistApp, OffersOnlyItsModelsAndNamesTheFileOfAnUnknownKey) {
  fs::path out = scratch("models");
  test::CommandResult r = run("--model resnet20 --out " + out.string());
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("lenet, mlp, convnet"), std::string::npos) << r.output;
  test::CommandResult h = run("--help");
  EXPECT_EQ(h.status, 0) << h.output;
  EXPECT_NE(h.output.find("models: lenet, mlp, convnet"), std::string::npos) << h.output;
  EXPECT_NE(h.output.find("datasets: mnist, fashion-mnist"), std::string::npos) << h.output;
  EXPECT_EQ(h.output.find("resnet"), std::string::npos) << h.output;
  fs::create_directories(out);
  std::ofstream(out / "typo.yaml") << "epochs: 1\nlearning_rate: 3\n";
  test::CommandResult c = run("--config " + (out / "typo.yaml").string());
  EXPECT_EQ(c.status, 2) << c.output;
  EXPECT_NE(c.output.find("learning_rate"), std::string::npos) << c.output;
  EXPECT_NE(c.output.find((out / "typo.yaml").string()), std::string::npos) << c.output;
  test::CommandResult m = run("--scheduler multistep --milestones 3,x");
  EXPECT_EQ(m.status, 2) << m.output;
  EXPECT_NE(m.output.find("--milestones"), std::string::npos) << m.output;
}

TEST(MnistApp, SchedulesPerEpochAndPerIterationGiveTheClosedFormLrs) {
  REQUIRE_MNIST();
  // 640 samples / 32 = 20 iterations per epoch; metrics.jsonl's lr is the lr each epoch starts with.
  std::string base = "--epochs 3 --limit-train 640 --limit-test 100 --batch-size 32 --no-tensorboard --image-every 0 ";
  struct Case {
    std::string flags;
    std::vector<double> lrs;
  };
  std::vector<Case> cases = {
      {"--scheduler step --step-size 2 --gamma 0.1", {0.01, 0.01, 0.001}},
      {"--scheduler multistep --milestones 1,2 --gamma 0.5", {0.01, 0.005, 0.0025}},
      {"--scheduler none --warmup-epochs 1", {0.01 / 3, 0.01, 0.01}},
      // The CIFAR script's schedule, per iteration: 0 -> lr over epoch 1, then -> 0 at the end.
      {"--scheduler linear --warmup-epochs 1 --sched-unit iteration", {0.0, 0.01, 0.005}},
      // Per iteration, cosine over 60 iterations: epoch 2 starts at step 20.
      {"--scheduler cosine --sched-unit iteration", {0.01, 0.0075, 0.0025}},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    fs::path out = scratch("sched" + std::to_string(i));
    test::CommandResult r = run(common(out) + base + cases[i].flags);
    ASSERT_EQ(r.status, 0) << cases[i].flags << "\n" << r.output;
    std::vector<json> m = read_metrics(out);
    ASSERT_EQ(m.size(), 3u) << cases[i].flags;
    for (size_t e = 0; e < 3; ++e) EXPECT_NEAR(m[e]["lr"].get<double>(), cases[i].lrs[e], 1e-12) << cases[i].flags << " epoch " << e + 1;
  }
}

TEST(MnistApp, TensorBoardAndPicturesByDefault) {
  REQUIRE_MNIST();
  fs::path out = scratch("tb");
  test::CommandResult r = run(common(out) + "--epochs 1 --limit-train 320 --limit-test 100 --batch-size 32");
  ASSERT_EQ(r.status, 0) << r.output;
  int files = 0;
  for (const auto& e : fs::directory_iterator(out / "tb")) {
    ++files;
    std::vector<train::EventRecord> ev = train::read_events(e.path().string());
    ASSERT_FALSE(ev.empty());
    EXPECT_EQ(ev[0].file_version, "brain.Event:2");
  }
  EXPECT_EQ(files, 1);
  EXPECT_TRUE(fs::exists(out / "images" / "epoch_1.png"));
  fs::path off = scratch("notb");
  test::CommandResult n = run(common(off) + "--epochs 1 --limit-train 64 --limit-test 64 --no-tensorboard --image-every 0");
  ASSERT_EQ(n.status, 0) << n.output;
  EXPECT_FALSE(fs::exists(off / "tb"));
  EXPECT_FALSE(fs::exists(off / "images"));
}
