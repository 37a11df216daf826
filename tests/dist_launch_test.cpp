// Data parallel, launched for real: mpirun with 2 processes (through tests/dist/run_mpi.sh)
// and ember's own launcher (--nproc-per-node; dist_launch for the helper programs), one
// "node" or two over 127.0.0.1, with the TCP store or a rendezvous file. A rank killed
// mid-run or a stalled collective ends the whole job, non-zero, in bounded time, naming the
// operation and the rank; the mnist app trains, evaluates and resumes on 2 ranks and ends
// with the same weights under every launcher. Skips (visibly) without MPI/mpirun or Gloo.

#include <sched.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "dist/store.h"
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
/// app_args for runs compared bit for bit across separately launched jobs: each process
/// of a default run picks its CPU convolution algorithms by timing (Note [Choosing a CPU
/// convolution algorithm]), so two jobs may round differently; --deterministic picks by a
/// fixed rule, the same in every process.
std::string exact_args(const fs::path& out) { return app_args(out) + "--deterministic "; }

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
  LaunchResult a = mpirun("", 2, mnist(), exact_args(full) + "--epochs 2");
  EMBER_REQUIRE_MPIRUN(a);
  ASSERT_EQ(a.status, 0) << a.output;
  // 16 iterations per epoch: stop mid-epoch 2, resume.
  LaunchResult b = mpirun("", 2, mnist(), exact_args(cut) + "--epochs 2 --save-every 5 --crash-iteration 20");
  ASSERT_NE(b.status, 0) << b.output;
  LaunchResult c = mpirun("", 2, mnist(), exact_args(cut) + "--epochs 2 --resume " + (cut / "last.ckpt").string());
  ASSERT_EQ(c.status, 0) << c.output;
  SafetensorsFile x = load_safetensors((full / "last.ckpt").string());
  SafetensorsFile y = load_safetensors((cut / "last.ckpt").string());
  ASSERT_EQ(x.tensors.size(), y.tensors.size());
  for (size_t i = 0; i < x.tensors.size(); ++i)
    EXPECT_TRUE(test::all_close(y.tensors[i].second, x.tensors[i].second, 0, 0)) << x.tensors[i].first;
}

}  // namespace

// ---- ember's own launcher (Gloo over the TCP store or a rendezvous file)

namespace {

#define EMBER_REQUIRE_GLOO() \
  do {                       \
    if (!EMBER_WITH_GLOO) GTEST_SKIP() << "ember was built without Gloo (libgloo-dev)"; \
  } while (0)

std::string launcher() { return std::string(EMBER_BINARY_DIR) + "/tests/dist_launch"; }

/// dist_launch --nproc-per-node NP -- PROGRAM ARGS, one OpenMP thread per worker.
LaunchResult launch(const std::string& env, int np, const std::string& program, const std::string& args) {
  return test::run_command("OMP_NUM_THREADS=1 " + env + " " + launcher() + " --nproc-per-node " + std::to_string(np) +
                           " --grace 2 -- " + program + " " + args);
}

/// A port that nobody listens on now (a server on an ephemeral port, gone again).
int free_port() {
  dist::TcpStoreServer s(0);
  return s.port();
}

/// The model tensors of two checkpoints agree within rtol/atol (0, 0: bit for bit).
void expect_same_model(const fs::path& a, const fs::path& b, double rtol, double atol) {
  SafetensorsFile x = load_safetensors(a.string());
  SafetensorsFile y = load_safetensors(b.string());
  ASSERT_EQ(x.tensors.size(), y.tensors.size());
  int compared = 0;
  for (size_t i = 0; i < x.tensors.size(); ++i)
    if (x.tensors[i].first.rfind("model.", 0) == 0) {
      ++compared;
      EXPECT_TRUE(test::all_close(x.tensors[i].second, y.tensors[i].second, rtol, atol)) << x.tensors[i].first;
    }
  EXPECT_GT(compared, 0);
}

TEST(DistLaunchGloo, AKilledWorkerEndsTheJobNamingItsRank) {
  EMBER_REQUIRE_GLOO();
  LaunchResult r = launch("EMBER_DIST_TIMEOUT=20", 2, fault(), "kill 5");
  EXPECT_NE(r.status, 0) << r.output;
  EXPECT_EQ(r.output.find("finished"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("worker rank 1 (pid"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("was killed by signal 9"), std::string::npos) << r.output;
  // (Rank 0 fails in Gloo as the peer's sockets close, or the launcher's SIGTERM comes first:
  // either way well before the 20 s timeout.)
  EXPECT_LT(r.seconds, 60) << r.output;
}

TEST(DistLaunchGloo, AStalledCollectiveTimesOutNamingOperationAndRank) {
  EMBER_REQUIRE_GLOO();
  LaunchResult r = launch("EMBER_DIST_TIMEOUT=2", 2, fault(), "stall 3");
  EXPECT_NE(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("rank 0 of 2: allreduce(sum) of 1024 f32 elements did not complete within 2 s"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("worker rank 0 (pid"), std::string::npos) << r.output;
  // Rank 1 sleeps for 120 s: only the launcher's SIGTERM ends it this early.
  EXPECT_LT(r.seconds, 60) << r.output;
}

TEST(DistLaunchGloo, AStalledRankInsideDdpBackwardTimesOut) {
  EMBER_REQUIRE_GLOO();
  LaunchResult r = launch("EMBER_DIST_TIMEOUT=2", 2, fault(), "ddp 3");
  EXPECT_NE(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("rank 0 of 2: allreduce(average)"), std::string::npos) << r.output;
  EXPECT_LT(r.seconds, 60) << r.output;
}

TEST(DistLaunchGloo, ARankThatNeverArrivesIsATimeoutNamingTheStore) {
  EMBER_REQUIRE_GLOO();
  // One "node" of two: node 1 never comes. Node 0's worker waits for it in Gloo's rendezvous.
  int port = free_port();
  LaunchResult r = test::run_command("EMBER_DIST_TIMEOUT=1 " + launcher() +
                                     " --nproc-per-node 1 --nnodes 2 --node-rank 0 --master-addr 127.0.0.1 --master-port " +
                                     std::to_string(port) + " -- " + fault() + " kill 100");
  EXPECT_NE(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("TCP store at 127.0.0.1:" + std::to_string(port)), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("waited 1 s for key"), std::string::npos) << r.output;
  EXPECT_LT(r.seconds, 60) << r.output;
}

TEST(DistLaunchGloo, MnistOnTwoWorkersEqualsMpirunAndOneProcessOnTheDoubledBatch) {
  EMBER_REQUIRE_GLOO();
  if (!fs::exists(mnist_dir())) GTEST_SKIP() << "no MNIST at " << mnist_dir();
  fs::path out = scratch("spawn");
  LaunchResult r = test::run_command("OMP_NUM_THREADS=1 " + mnist() + " " + exact_args(out) + "--epochs 2 --nproc-per-node 2");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("data parallel: 2 processes"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("effective batch 64"), std::string::npos) << r.output;
  size_t lines = 0;  // rank 1 is quiet
  for (size_t p = 0; (p = r.output.find("epoch 2/2:", p)) != std::string::npos; ++p) ++lines;
  EXPECT_EQ(lines, 1u) << r.output;
  std::ifstream f(out / "metrics.jsonl");
  std::vector<json> rows;
  for (std::string line; std::getline(f, line);) rows.push_back(json::parse(line));
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[1]["test_samples"].get<int64_t>(), 501);
  EXPECT_EQ(rows[1]["train_samples"].get<int64_t>(), 1024);

  // One process on the doubled batch: the same weights (as the mpirun test above).
  fs::path one = scratch("spawn_one");
  LaunchResult s = test::run_command(mnist() + " " + app_args(one) + "--epochs 2 --batch-size 64");
  ASSERT_EQ(s.status, 0) << s.output;
  expect_same_model(out / "last.ckpt", one / "last.ckpt", 1e-4, 1e-5);

  // mpirun -np 2: bit for bit (a sum of two is the same sum in either backend).
  fs::path viampi = scratch("spawn_mpi");
  LaunchResult m = mpirun("", 2, mnist(), exact_args(viampi) + "--epochs 2");
  if (!EMBER_WITH_MPI || m.status == 77) GTEST_SKIP() << "no mpirun to compare with: " << m.output;
  ASSERT_EQ(m.status, 0) << m.output;
  expect_same_model(out / "last.ckpt", viampi / "last.ckpt", 0, 0);
}

/// Two "nodes" on this machine, each `mnist ... --nnodes 2 --node-rank R --nproc-per-node 1`
/// plus `extra`, started together; both outputs, and the worse exit status.
LaunchResult two_nodes(const fs::path& out, const std::string& extra) {
  std::string base = "OMP_NUM_THREADS=1 " + mnist() + " " + exact_args(out) + "--epochs 1 --nnodes 2 --nproc-per-node 1 " + extra;
  fs::path log0 = out.string() + ".node0.log", log1 = out.string() + ".node1.log";
  std::string cmd = "(" + base + " --node-rank 1 >" + log1.string() + " 2>&1 & p=$!; " + base + " --node-rank 0 >" +
                    log0.string() + " 2>&1; a=$?; wait $p; b=$?; cat " + log0.string() + " " + log1.string() +
                    "; [ $a -eq 0 ] && [ $b -eq 0 ])";
  return test::run_command(cmd);
}

TEST(DistLaunchGloo, TwoNodesOverLoopbackEqualOneNodeWithTwoWorkers) {
  EMBER_REQUIRE_GLOO();
  if (!fs::exists(mnist_dir())) GTEST_SKIP() << "no MNIST at " << mnist_dir();
  fs::path one = scratch("node_one");
  LaunchResult a = test::run_command("OMP_NUM_THREADS=1 " + mnist() + " " + exact_args(one) + "--epochs 1 --nproc-per-node 2");
  ASSERT_EQ(a.status, 0) << a.output;

  fs::path tcp = scratch("nodes_tcp");
  LaunchResult b = two_nodes(tcp, "--master-addr 127.0.0.1 --master-port " + std::to_string(free_port()));
  ASSERT_EQ(b.status, 0) << b.output;
  EXPECT_NE(b.output.find("data parallel: 2 processes"), std::string::npos) << b.output;
  expect_same_model(tcp / "last.ckpt", one / "last.ckpt", 0, 0);

  fs::path file = scratch("nodes_file");
  fs::path rdzv = file.string() + ".rdzv";
  LaunchResult c = two_nodes(file, "--rdzv-file " + rdzv.string());
  ASSERT_EQ(c.status, 0) << c.output;
  expect_same_model(file / "last.ckpt", one / "last.ckpt", 0, 0);
  EXPECT_FALSE(fs::exists(rdzv)) << "the last worker out removes the rendezvous file";
}

TEST(DistLaunchGloo, BadLaunchOptionsAreUsageErrors) {
  fs::path out = scratch("badlaunch");
  auto run = [&](const std::string& flags) { return test::run_command(mnist() + " " + app_args(out) + flags); };
  LaunchResult a = run("--nproc-per-node 1 --nnodes 2");
  EXPECT_EQ(a.status, 2) << a.output;
  EXPECT_NE(a.output.find("need --master-port P"), std::string::npos) << a.output;
  LaunchResult b = run("--nproc-per-node 1 --nnodes 2 --node-rank 0 --master-port 29500");
  EXPECT_EQ(b.status, 2) << b.output;
  EXPECT_NE(b.output.find("node 0 needs --master-addr HOST"), std::string::npos) << b.output;
  LaunchResult c = run("--nproc-per-node 1 --nnodes 2 --node-rank 2 --master-port 29500");
  EXPECT_EQ(c.status, 2) << c.output;
  EXPECT_NE(c.output.find("--node-rank 2 is not a node of --nnodes 2"), std::string::npos) << c.output;
  LaunchResult d = run("--master-port 29500");
  EXPECT_EQ(d.status, 2) << d.output;
  EXPECT_NE(d.output.find("go with --nproc-per-node N"), std::string::npos) << d.output;
  // A port in use: the launcher says so before starting anyone.
  dist::TcpStoreServer taken(0);
  LaunchResult e = run("--epochs 1 --nproc-per-node 2 --master-port " + std::to_string(taken.port()));
  if (EMBER_WITH_GLOO) {
    EXPECT_EQ(e.status, 2) << e.output;
    EXPECT_NE(e.output.find("Address already in use"), std::string::npos) << e.output;
  }
  EXPECT_FALSE(fs::exists(out / "metrics.jsonl"));
}

TEST(DistLaunchGloo, WorkersGetTorchrunsVariablesAndAShareOfTheCores) {
  if (!fs::exists(launcher())) GTEST_SKIP() << "dist_launch not built (no MPI, no Gloo)";
  cpu_set_t set;
  CPU_ZERO(&set);
  ASSERT_EQ(sched_getaffinity(0, sizeof set, &set), 0);
  const int share = std::max(1, CPU_COUNT(&set) / 2);
  const std::string show =
      " -- /bin/sh -c 'echo \"r=$RANK l=$LOCAL_RANK w=$WORLD_SIZE lw=$LOCAL_WORLD_SIZE g=$GROUP_RANK "
      "a=$MASTER_ADDR p=$MASTER_PORT s=$EMBER_STORE_SERVED f=$EMBER_RDZV_FILE omp=$OMP_NUM_THREADS\"'";
  // Node 1 of 2 (nobody serves on node 1: the workers would find node 0's store there).
  LaunchResult r = test::run_command("env -u OMP_NUM_THREADS " + launcher() +
                                     " --nproc-per-node 2 --nnodes 2 --node-rank 1 --master-addr 10.1.2.3 "
                                     "--master-port 2222" + show);
  ASSERT_EQ(r.status, 0) << r.output;
  const std::string omp = " omp=" + std::to_string(share);
  EXPECT_NE(r.output.find("r=2 l=0 w=4 lw=2 g=1 a=10.1.2.3 p=2222 s=1 f=" + omp), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("r=3 l=1 w=4 lw=2 g=1 a=10.1.2.3 p=2222 s=1 f=" + omp), std::string::npos) << r.output;
  // A rendezvous file instead; OMP_NUM_THREADS as the user set it.
  LaunchResult f = test::run_command("OMP_NUM_THREADS=7 " + launcher() + " --nproc-per-node 1 --rdzv-file /x/y" + show);
  ASSERT_EQ(f.status, 0) << f.output;
  EXPECT_NE(f.output.find("r=0 l=0 w=1 lw=1 g=0 a= p= s= f=/x/y omp=7"), std::string::npos) << f.output;
  // Exit status as mpirun's: the first failure's, 128 + signal for a signal.
  LaunchResult e = test::run_command(launcher() + " --nproc-per-node 2 --grace 1 -- /bin/sh -c '[ $RANK = 1 ] && exit 3; sleep 100'");
  EXPECT_EQ(e.status, 3) << e.output;
  EXPECT_NE(e.output.find("worker rank 1 (pid"), std::string::npos) << e.output;
  EXPECT_NE(e.output.find("exited with status 3; ending the other workers"), std::string::npos) << e.output;
  // Rank 0's shell and its sleep (one process group) were ended, not waited for.
  EXPECT_LT(e.seconds, 60) << e.output;
}

/// Two processes started by hand with the env:// variables (as torch.distributed.launch
/// does: rank 0 serves the store at MASTER_ADDR:MASTER_PORT), each with its own `env`.
LaunchResult by_hand(const std::string& env0, const std::string& env1, const std::string& args) {
  std::string common = "OMP_NUM_THREADS=1 MASTER_ADDR=127.0.0.1 MASTER_PORT=" + std::to_string(free_port()) + " ";
  return test::run_command("(" + common + env1 + " " + fault() + " " + args + " & p=$!; " + common + env0 + " " +
                           fault() + " " + args + "; a=$?; wait $p; b=$?; [ $a -eq 0 ] && [ $b -eq 0 ])");
}

TEST(DistLaunchGloo, ByHandWithTorchsVariablesRankZeroServingTheStore) {
  EMBER_REQUIRE_GLOO();
  // Mode "none" at iteration 100: no fault, both ranks run their 50 allreduces.
  LaunchResult r = by_hand("WORLD_SIZE=2 RANK=0 LOCAL_RANK=0", "WORLD_SIZE=2 RANK=1 LOCAL_RANK=1", "none 100");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("rank 0: finished"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("rank 1: finished"), std::string::npos) << r.output;
  // Disagreeing world sizes: named at the rendezvous, not a hang in the transport.
  LaunchResult m = by_hand("EMBER_DIST_TIMEOUT=2 WORLD_SIZE=2 RANK=0", "EMBER_DIST_TIMEOUT=2 WORLD_SIZE=3 RANK=1", "none 100");
  EXPECT_NE(m.status, 0) << m.output;
  EXPECT_NE(m.output.find("rank 1 has WORLD_SIZE=3 but rank 0 has 2"), std::string::npos) << m.output;
  // Two processes with one RANK.
  LaunchResult d = by_hand("EMBER_DIST_TIMEOUT=2 WORLD_SIZE=2 RANK=0", "EMBER_DIST_TIMEOUT=2 WORLD_SIZE=2 RANK=0", "none 100");
  EXPECT_NE(d.status, 0) << d.output;
  EXPECT_TRUE(d.output.find("two processes claim RANK=0") != std::string::npos ||
              d.output.find("Address already in use") != std::string::npos)
      << d.output;
}

}  // namespace

// torchrun's variables without a world ember can join: an error saying how to launch, never
// N copies each training its own model into the same folder.
TEST(DistLaunch, TorchrunVariablesWithoutAWorldToJoinAreAnErrorSayingHowToLaunch) {
  fs::path out = scratch("torchrun");
  // No rendezvous named: nothing to join.
  LaunchResult r = test::run_command("WORLD_SIZE=2 RANK=1 LOCAL_RANK=1 " + mnist() + " " + app_args(out) + " --epochs 1");
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("WORLD_SIZE=2 and RANK=1"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("mpirun -np "), std::string::npos) << r.output;
  if (EMBER_WITH_GLOO) {
    EXPECT_NE(r.output.find("MASTER_ADDR"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("--nproc-per-node N"), std::string::npos) << r.output;
    // A master that never comes: a timeout naming the address.
    int port = free_port();
    LaunchResult m = test::run_command("EMBER_DIST_TIMEOUT=0.5 WORLD_SIZE=2 RANK=1 MASTER_ADDR=127.0.0.1 MASTER_PORT=" +
                                       std::to_string(port) + " " + mnist() + " " + app_args(out) + " --epochs 1");
    EXPECT_EQ(m.status, 1) << m.output;
    EXPECT_NE(m.output.find("cannot reach the TCP store at 127.0.0.1:" + std::to_string(port)), std::string::npos)
        << m.output;
    // torchrun itself: its agent owns MASTER_PORT.
    LaunchResult t = test::run_command("TORCHELASTIC_RUN_ID=x WORLD_SIZE=2 RANK=0 MASTER_ADDR=127.0.0.1 MASTER_PORT=" +
                                       std::to_string(port) + " " + mnist() + " " + app_args(out) + " --epochs 1");
    EXPECT_EQ(t.status, 1) << t.output;
    EXPECT_NE(t.output.find("started by torchrun"), std::string::npos) << t.output;
  }
  EXPECT_FALSE(fs::exists(out / "metrics.jsonl"));
  // A world of one from torchrun is just one process.
  LaunchResult one = test::run_command("WORLD_SIZE=1 RANK=0 " + mnist() + " " + app_args(out) +
                                       " --epochs 1 --limit-train 64 --limit-test 64");
  EXPECT_EQ(one.status, 0) << one.output;
}
