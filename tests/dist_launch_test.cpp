// Data parallel, launched for real: mpirun with 2 processes (through tests/dist/run_mpi.sh).
// A rank killed mid-run or a stalled collective ends the whole job, non-zero, in bounded
// time, naming the operation and the rank; the mnist app trains, evaluates and resumes on
// 2 ranks. Skips (visibly) without MPI or mpirun.

#include <chrono>
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

using LaunchResult = test::CommandResult;

/// `env` (VAR=value ...) and run_mpi.sh NP PROGRAM ARGS, stdout and stderr together.
LaunchResult mpirun(const std::string& env, int np, const std::string& program, const std::string& args) {
  std::string cmd = env + " " + std::string(EMBER_SOURCE_DIR) + "/tests/dist/run_mpi.sh " + std::to_string(np) +
                    " " + program + " " + args;
  return test::run_command(cmd);
}

#define EMBER_REQUIRE_MPIRUN(run)                                            \
  do {                                                                       \
    if (!EMBER_WITH_MPI) GTEST_SKIP() << "ember was built without MPI";      \
    if ((run).status == 77) GTEST_SKIP() << (run).output;                    \
  } while (0)

std::string fault() { return std::string(EMBER_BINARY_DIR) + "/tests/dist_fault"; }
std::string mnist() { return std::string(EMBER_BINARY_DIR) + "/apps/mnist"; }

TEST(DistLaunch, AKilledRankEndsTheJobNonZero) {
  LaunchResult r = mpirun("EMBER_DIST_TIMEOUT=20", 2, fault(), "kill 5");
  EMBER_REQUIRE_MPIRUN(r);
  EXPECT_NE(r.status, 0) << r.output;
  EXPECT_EQ(r.output.find("finished"), std::string::npos) << r.output;
  EXPECT_LT(r.seconds, 60) << r.output;
}

TEST(DistLaunch, AStalledCollectiveTimesOutNamingOperationAndRank) {
  LaunchResult r = mpirun("EMBER_DIST_TIMEOUT=2", 2, fault(), "stall 3");
  EMBER_REQUIRE_MPIRUN(r);
  EXPECT_NE(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("rank 0 of 2: allreduce(sum) of 1024 f32 elements did not complete within 2 s"),
            std::string::npos)
      << r.output;
  // Rank 1 sleeps for 120 s: only the abort ends it this early.
  EXPECT_LT(r.seconds, 60) << r.output;
}

TEST(DistLaunch, AStalledRankInsideDdpBackwardTimesOut) {
  LaunchResult r = mpirun("EMBER_DIST_TIMEOUT=2", 2, fault(), "ddp 3");
  EMBER_REQUIRE_MPIRUN(r);
  EXPECT_NE(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("rank 0 of 2: allreduce(average)"), std::string::npos) << r.output;
  EXPECT_LT(r.seconds, 60) << r.output;
}

// ---- the mnist app on 2 ranks
std::string mnist_dir() { return test::shared_data_dir() + "/mnist"; }

// Unique to this process: suites of several checkouts may run on one machine at once (a
// fixed /tmp/ember_dist_launch_<name> was removed under a running test by another one).
fs::path scratch(const std::string& name) {
  fs::path p = test::scratch_dir("dist_launch_" + name);
  fs::remove_all(p);
  return p;
}

std::string app_args(const fs::path& out) {
  return "--data " + mnist_dir() + " --out " + out.string() +
         " --device cpu --workers 0 --limit-train 1024 --limit-test 501 --batch-size 32 --lr 0.05 --log-interval 4 ";
}

TEST(DistLaunch, MnistTrainsOnTwoRanksAndRankZeroAloneWrites) {
  if (!fs::exists(mnist_dir())) GTEST_SKIP() << "no MNIST at " << mnist_dir();
  fs::path out = scratch("train");
  LaunchResult r = mpirun("", 2, mnist(), app_args(out) + "--epochs 2");
  EMBER_REQUIRE_MPIRUN(r);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("2 processes"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("effective batch 64"), std::string::npos) << r.output;
  // One log line per epoch: rank 1 is quiet.
  size_t lines = 0;
  for (size_t p = 0; (p = r.output.find("epoch 2/2:", p)) != std::string::npos; ++p) ++lines;
  EXPECT_EQ(lines, 1u) << r.output;
  std::ifstream f(out / "metrics.jsonl");
  std::vector<json> rows;
  for (std::string line; std::getline(f, line);) rows.push_back(json::parse(line));
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[1]["test_samples"].get<int64_t>(), 501) << "each test sample counted once";
  EXPECT_EQ(rows[1]["train_samples"].get<int64_t>(), 1024);
  EXPECT_GT(rows[1]["test_acc"].get<double>(), 40.0) << "32 iterations: well above chance";
  EXPECT_TRUE(fs::exists(out / "last.ckpt"));
  EXPECT_TRUE(fs::exists(out / "best.safetensors"));

  // Rank r's batch b holds positions 64b + r, 64b + r + 2, ... of the epoch's permutation:
  // together the ranks' batch b is one process's batch b at --batch-size 64. Same weights.
  fs::path one = scratch("one");
  LaunchResult s = mpirun("", 1, mnist(), app_args(one) + "--epochs 2 --batch-size 64");
  ASSERT_EQ(s.status, 0) << s.output;
  SafetensorsFile x = load_safetensors((out / "last.ckpt").string());
  SafetensorsFile y = load_safetensors((one / "last.ckpt").string());
  ASSERT_EQ(x.tensors.size(), y.tensors.size());
  for (size_t i = 0; i < x.tensors.size(); ++i)
    if (x.tensors[i].first.rfind("model.", 0) == 0)
      EXPECT_TRUE(test::all_close(x.tensors[i].second, y.tensors[i].second, 1e-4, 1e-5)) << x.tensors[i].first;

  // Distributed evaluation gives the same accuracy as one process.
  LaunchResult e2 = mpirun("", 2, mnist(), app_args(out) + "--evaluate " + (out / "best.safetensors").string());
  ASSERT_EQ(e2.status, 0) << e2.output;
  LaunchResult e1 = mpirun("", 1, mnist(), app_args(out) + "--evaluate " + (out / "best.safetensors").string());
  ASSERT_EQ(e1.status, 0) << e1.output;
  auto last_json = [](const std::string& s) {
    size_t b = s.rfind("{\"test_acc\"");
    return b == std::string::npos ? json() : json::parse(s.substr(b, s.find('\n', b) - b));
  };
  json j2 = last_json(e2.output), j1 = last_json(e1.output);
  ASSERT_FALSE(j2.is_null()) << e2.output;
  ASSERT_FALSE(j1.is_null()) << e1.output;
  EXPECT_EQ(j2["test_samples"].get<int64_t>(), 501);
  EXPECT_DOUBLE_EQ(j2["test_acc"].get<double>(), j1["test_acc"].get<double>());
  // Each rank sums its per-sample losses in f32 before the allreduce, so the split changes
  // the rounding (seen: up to 1.2e-7); the count and accuracy above are exact.
  EXPECT_NEAR(j2["test_loss"].get<double>(), j1["test_loss"].get<double>(), 1e-6);
}

TEST(DistLaunch, MnistResumesOnTwoRanksToTheSameWeights) {
  if (!fs::exists(mnist_dir())) GTEST_SKIP() << "no MNIST at " << mnist_dir();
  fs::path full = scratch("full"), cut = scratch("cut");
  LaunchResult a = mpirun("", 2, mnist(), app_args(full) + "--epochs 2");
  EMBER_REQUIRE_MPIRUN(a);
  ASSERT_EQ(a.status, 0) << a.output;
  // 16 iterations per epoch: stop mid-epoch 2, resume.
  LaunchResult b = mpirun("", 2, mnist(), app_args(cut) + "--epochs 2 --save-every 5 --crash-iteration 20");
  ASSERT_NE(b.status, 0) << b.output;
  LaunchResult c = mpirun("", 2, mnist(), app_args(cut) + "--epochs 2 --resume " + (cut / "last.ckpt").string());
  ASSERT_EQ(c.status, 0) << c.output;
  SafetensorsFile x = load_safetensors((full / "last.ckpt").string());
  SafetensorsFile y = load_safetensors((cut / "last.ckpt").string());
  ASSERT_EQ(x.tensors.size(), y.tensors.size());
  for (size_t i = 0; i < x.tensors.size(); ++i)
    EXPECT_TRUE(test::all_close(y.tensors[i].second, x.tensors[i].second, 0, 0)) << x.tensors[i].first;
}

}  // namespace

// torchrun's variables without a world ember can join: an error saying how to launch, never
// N copies each training its own model into the same folder.
TEST(DistLaunch, TorchrunVariablesWithoutMpiAreAnErrorSayingHowToLaunch) {
  fs::path out = scratch("torchrun");
  LaunchResult r = test::run_command("WORLD_SIZE=2 RANK=1 LOCAL_RANK=1 MASTER_ADDR=127.0.0.1 MASTER_PORT=29500 " +
                                     mnist() + " " + app_args(out) + " --epochs 1");
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("WORLD_SIZE=2 and RANK=1"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("mpirun -np 2"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(out / "metrics.jsonl"));
  // A world of one from torchrun is just one process.
  LaunchResult one = test::run_command("WORLD_SIZE=1 RANK=0 " + mnist() + " " + app_args(out) +
                                       " --epochs 1 --limit-train 64 --limit-test 64");
  EXPECT_EQ(one.status, 0) << one.output;
}
