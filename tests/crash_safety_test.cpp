// Crash-safe files (issue 15), end to end on the mnist app and real MNIST:
//  - a training run SIGKILLed at pseudo-random moments many times (checkpoints written at
//    every iteration, so many kills land inside a write) and resumed each time: OUT/last.ckpt
//    always loads as a whole ember checkpoint, never goes back in time, and the final weights
//    equal an uninterrupted run's bit for bit;
//  - a full disk (a small tmpfs) while writing a checkpoint: exit 1, a message naming the file
//    and ENOSPC, the previous last.ckpt intact and no temporary file left;
//  - an output folder that cannot be created or written: exit 1 before any training, the
//    message naming the folder.
// The mount cases need root (mount(2)); they skip visibly without it.

#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <chrono>
#include <random>
#include <thread>

#include "io/safetensors.h"
#include "test_util.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace ember;

namespace {

std::string mnist_bin() { return std::string(EMBER_BINARY_DIR) + "/apps/mnist"; }
std::string mnist_dir() { return test::shared_data_dir() + "/mnist"; }

#define REQUIRE_MNIST() \
  if (!fs::exists(mnist_dir())) GTEST_SKIP() << "no MNIST at " << mnist_dir() << " (set EMBER_DATA_DIR)"

fs::path scratch(const std::string& name) { return test::scratch_dir("crash_" + name); }

std::string common(const fs::path& out) {
  return "--data " + mnist_dir() + " --out " + out.string() +
         " --device cpu --log-interval 10 --no-tensorboard --deterministic ";
}

/// A tmpfs mounted at `dir` for the guard's lifetime (root only).
struct TmpfsMount {
  std::string dir;
  bool ok = false;
  std::string error;
  TmpfsMount(const std::string& d, const std::string& options, unsigned long flags = 0) : dir(d) {
    ok = ::mount("tmpfs", dir.c_str(), "tmpfs", flags, options.c_str()) == 0;
    if (!ok) error = std::strerror(errno);
  }
  ~TmpfsMount() {
    if (ok) ::umount2(dir.c_str(), MNT_DETACH);
  }
};

/// The "ember" metadata of a checkpoint, after loading every tensor (throws when torn).
json checkpoint_meta(const fs::path& ckpt) {
  SafetensorsFile f = load_safetensors(ckpt.string());
  EMBER_CHECK(f.metadata.count("ember"), "no ember metadata in ", ckpt.string());
  EMBER_CHECK(!f.tensors.empty(), "no tensors in ", ckpt.string());
  return json::parse(f.metadata.at("ember"));
}

std::vector<std::string> leftover_tmp_files(const fs::path& out) {
  std::vector<std::string> r;
  for (const auto& e : fs::directory_iterator(out))
    if (e.path().filename().string().find(".tmp") != std::string::npos) r.push_back(e.path().filename().string());
  return r;
}

void expect_same_model(const fs::path& a, const fs::path& b) {
  SafetensorsFile fa = load_safetensors(a.string()), fb = load_safetensors(b.string());
  ASSERT_EQ(fa.tensors.size(), fb.tensors.size());
  int compared = 0;
  for (size_t i = 0; i < fa.tensors.size(); ++i) {
    ASSERT_EQ(fa.tensors[i].first, fb.tensors[i].first);
    // Bit for bit: float == would let -0 equal +0; the raw bytes must match.
    const Tensor& ta = fa.tensors[i].second;
    const Tensor& tb = fb.tensors[i].second;
    ASSERT_EQ(ta.nbytes(), tb.nbytes()) << fa.tensors[i].first;
    EXPECT_EQ(std::memcmp(ta.data_ptr(), tb.data_ptr(), size_t(ta.nbytes())), 0) << fa.tensors[i].first;
    ++compared;
  }
  EXPECT_GT(compared, 0);
}


/// Runs `cmd` (through sh, output discarded) and SIGKILLs it the moment a temporary
/// checkpoint file shows up in `out` (a write in progress), or after `limit` seconds.
/// Returns the exit status as run_command does (137 when killed).
int run_killed_mid_write(const std::string& cmd, const fs::path& out, double limit) {
  pid_t pid = ::fork();
  if (pid == 0) {
    std::string c = "exec " + cmd + " >/dev/null 2>&1";
    ::execl("/bin/sh", "sh", "-c", c.c_str(), (char*)nullptr);
    ::_exit(127);
  }
  auto t0 = std::chrono::steady_clock::now();
  int st = 0;
  for (;;) {
    if (::waitpid(pid, &st, WNOHANG) == pid) break;
    bool writing = false;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(out, ec))
      if (e.path().filename().string().rfind("last.ckpt.tmp", 0) == 0) writing = true;
    if (writing || std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() > limit) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &st, 0);
      break;
    }
  }
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

}  // namespace

TEST(CrashSafety, KilledAtRandomMomentsAndResumedEndsBitForBitEqual) {
  REQUIRE_MNIST();
  // 480 samples / 32 = 15 iterations per epoch, 3 epochs, a checkpoint after every iteration.
  const std::string base = "--epochs 3 --limit-train 480 --limit-test 100 --batch-size 32 --save-every 1 --workers 0 ";
  fs::path ref = scratch("ref"), out = scratch("killed");
  test::CommandResult full = test::run_command(mnist_bin() + " " + common(ref) + base);
  ASSERT_EQ(full.status, 0) << full.output;
  const double t_full = full.seconds;

  std::mt19937 rng(15);  // fixed: the same kill moments every run of the suite
  // From just after start-up to a third of the whole run: early kills hit start-up, loading
  // the checkpoint or the first write; later ones land in iterations and checkpoint writes,
  // and each run gets a little further, so that 12 kills come before the end.
  std::uniform_real_distribution<double> delay(0.05, std::max(0.3, 0.3 * t_full));
  const int kKills = 12;
  int killed = 0, finished_early = 0, torn_tmp_seen = 0;
  int64_t last_iteration = -1;
  std::string log;
  for (int k = 0; k < kKills; ++k) {
    double d = delay(rng);
    std::string resume = fs::exists(out / "last.ckpt") ? "--resume " + (out / "last.ckpt").string() + " " : "";
    char t[32];
    std::snprintf(t, sizeof t, "%.3f", d);
    // Every third kill waits for a checkpoint write to begin and kills inside it.
    const bool mid_write = k % 3 == 2;
    test::CommandResult r;
    if (mid_write) {
      r.status = run_killed_mid_write(mnist_bin() + " " + common(out) + base + resume, out, 2 * t_full);
      std::snprintf(t, sizeof t, "mid-write");
    } else {
      r = test::run_command("timeout -s KILL " + std::string(t) + " " + mnist_bin() + " " + common(out) + base + resume);
    }
    log += "kill " + std::to_string(k) + (mid_write ? " " : " after ") + t + (mid_write ? "" : " s") + ": status " +
           std::to_string(r.status);
    if (r.status == 0) {  // the run completed before its kill: it must still be exact
      ++finished_early;
      log += " (completed)\n";
      break;
    }
    ASSERT_EQ(r.status, 137) << "killed run " << k << " failed on its own:\n" << r.output;
    ++killed;
    std::vector<std::string> tmp = leftover_tmp_files(out);
    torn_tmp_seen += tmp.empty() ? 0 : 1;
    if (fs::exists(out / "last.ckpt")) {
      json meta;
      ASSERT_NO_THROW(meta = checkpoint_meta(out / "last.ckpt")) << "after kill " << k << " (" << t << " s)";
      int64_t it = meta.at("iteration").get<int64_t>();
      EXPECT_GE(it, last_iteration) << "last.ckpt went back in time after kill " << k;
      last_iteration = it;
      log += ", last.ckpt at iteration " + std::to_string(it);
    } else {
      EXPECT_EQ(last_iteration, -1) << "last.ckpt disappeared after kill " << k;
      log += ", no checkpoint yet";
    }
    if (!tmp.empty()) log += " (a torn temporary file " + tmp[0] + " was left beside it)";
    log += "\n";
  }
  if (!finished_early) {
    std::string resume = fs::exists(out / "last.ckpt") ? "--resume " + (out / "last.ckpt").string() + " " : "";
    test::CommandResult r = test::run_command(mnist_bin() + " " + common(out) + base + resume);
    ASSERT_EQ(r.status, 0) << r.output;
  }
  std::printf("uninterrupted run %.2f s; %d kills, %d left a torn temporary file\n%s", t_full, killed,
              torn_tmp_seen, log.c_str());
  EXPECT_GE(killed, 8) << log;
  // A kill inside a write is the case the atomic writer exists for; at least one must land.
  EXPECT_GT(torn_tmp_seen, 0) << log;
  EXPECT_GT(last_iteration, 0) << "no kill came after the first checkpoint\n" << log;
  expect_same_model(ref / "last.ckpt", out / "last.ckpt");
  expect_same_model(ref / "best.safetensors", out / "best.safetensors");
  // Start-up removes what a killed writer left behind.
  EXPECT_TRUE(leftover_tmp_files(out).empty());
}

TEST(CrashSafety, FullDiskWhileCheckpointingKeepsThePreviousCheckpoint) {
  REQUIRE_MNIST();
  // How big is a checkpoint? Write one on the ordinary disk.
  const std::string base = "--epochs 1 --limit-train 640 --limit-test 100 --batch-size 32 --workers 0 ";
  fs::path probe = scratch("size");
  test::CommandResult p = test::run_command(mnist_bin() + " " + common(probe) + base + "--save-every 5 --crash-iteration 5");
  ASSERT_EQ(p.status, 3) << p.output;
  const uintmax_t ckpt = fs::file_size(probe / "last.ckpt");

  // Room for one checkpoint and the logs, not for the temporary copy beside it: the first
  // checkpoint (iteration 5) fits, the second (iteration 10) hits ENOSPC halfway.
  fs::path root = scratch("fulldisk");
  fs::path mnt = root / "mnt";
  fs::create_directories(mnt);
  const uintmax_t size = ckpt + ckpt / 2 + 64 * 1024;
  TmpfsMount m(mnt.string(), "size=" + std::to_string(size));
  if (!m.ok) GTEST_SKIP() << "cannot mount a tmpfs at " << mnt << " (" << m.error << "; needs root)";
  test::CommandResult r = test::run_command(mnist_bin() + " " + common(mnt) + base + "--save-every 5");
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("No space left on device"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find((mnt / "last.ckpt").string()), std::string::npos) << r.output;
  // The previous checkpoint is whole and is the one of iteration 5; nothing was left beside it.
  json meta;
  ASSERT_NO_THROW(meta = checkpoint_meta(mnt / "last.ckpt"));
  EXPECT_EQ(meta.at("iteration").get<int64_t>(), 5);
  EXPECT_TRUE(leftover_tmp_files(mnt).empty());
  expect_same_model(probe / "last.ckpt", mnt / "last.ckpt");
}

TEST(CrashSafety, UncreatableOutputFolderFailsBeforeTraining) {
  REQUIRE_MNIST();
  fs::path root = scratch("uncreatable");
  std::ofstream(root / "file") << "not a folder";
  fs::path out = root / "file" / "out";
  test::CommandResult r = test::run_command(mnist_bin() + " " + common(out) + "--epochs 1 --limit-train 320");
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("output folder '" + out.string() + "' cannot be created"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("epoch 1/1"), std::string::npos) << "it trained first:\n" << r.output;
}

TEST(CrashSafety, ReadOnlyOutputFolderFailsBeforeTraining) {
  REQUIRE_MNIST();
  fs::path root = scratch("readonly");
  fs::path mnt = root / "mnt";
  fs::create_directories(mnt);
  std::vector<std::pair<fs::path, std::string>> cases;
  std::unique_ptr<TmpfsMount> m;
  if (::geteuid() == 0) {
    // Root ignores permission bits: a read-only mount is what stops it.
    m = std::make_unique<TmpfsMount>(mnt.string(), "size=1m", MS_RDONLY);
    if (!m->ok) GTEST_SKIP() << "cannot mount a read-only tmpfs at " << mnt << " (" << m->error << ")";
  } else {
    fs::permissions(mnt, fs::perms::owner_read | fs::perms::owner_exec);
  }
  cases.push_back({mnt, "is not writable"});             // exists, read-only
  cases.push_back({mnt / "sub", "cannot be created"});   // missing, in a read-only folder
  for (const auto& [out, message] : cases) {
    test::CommandResult r = test::run_command(mnist_bin() + " " + common(out) + "--epochs 1 --limit-train 320");
    EXPECT_EQ(r.status, 1) << r.output;
    EXPECT_NE(r.output.find("output folder '" + out.string() + "' " + message), std::string::npos) << r.output;
    EXPECT_NE(r.output.find(::geteuid() == 0 ? "Read-only file system" : "Permission denied"), std::string::npos)
        << r.output;
    EXPECT_EQ(r.output.find("epoch 1/1"), std::string::npos) << "it trained first:\n" << r.output;
  }
  m.reset();
  if (::geteuid() != 0) fs::permissions(mnt, fs::perms::owner_all);
}
