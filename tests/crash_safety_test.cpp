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
#include <set>
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


/// When run_and_kill() kills its run.
struct KillAt {
  enum Kind { kSeconds, kCheckpoints, kMidWrite } kind;
  double seconds = 0;   // kSeconds: after this long (start-up, loading the checkpoint, ...)
  int checkpoints = 0;  // kCheckpoints: after this many new last.ckpt (each rename is a new inode)...
  int jitter_us = 0;    // ...and this many microseconds more (into the next iteration)
};

/// Runs `cmd` (through sh, output discarded) and SIGKILLs it at `at` (or after `limit`
/// seconds); kMidWrite kills it the moment a new last.ckpt temporary shows up (a write in
/// progress). Polling by the moment, not by wall time alone, so the kills land where they
/// are meant to however loaded the machine is. Returns the status as run_command does.
int run_and_kill(const std::string& cmd, const fs::path& out, const KillAt& at, double limit) {
  auto tmp_names = [&] {
    std::set<std::string> r;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(out, ec))
      if (e.path().filename().string().rfind("last.ckpt.tmp", 0) == 0) r.insert(e.path().filename().string());
    return r;
  };
  auto inode = [&] {
    struct stat sb;
    return ::stat((out / "last.ckpt").c_str(), &sb) == 0 ? uint64_t(sb.st_ino) : uint64_t(0);
  };
  const std::set<std::string> before = tmp_names();  // a killed run's leftovers, not a write
  uint64_t ino = inode();
  int renames = 0;
  pid_t pid = ::fork();
  if (pid == 0) {
    std::string c = "exec " + cmd + " >/dev/null 2>&1";
    ::execl("/bin/sh", "sh", "-c", c.c_str(), (char*)nullptr);
    ::_exit(127);
  }
  auto t0 = std::chrono::steady_clock::now();
  int st = 0;
  for (;;) {
    if (::waitpid(pid, &st, WNOHANG) == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    bool now = t > limit;
    if (at.kind == KillAt::kSeconds) now |= t >= at.seconds;
    if (at.kind == KillAt::kMidWrite) {
      for (const auto& n : tmp_names()) now |= !before.count(n);
    }
    if (at.kind == KillAt::kCheckpoints) {
      uint64_t i = inode();
      if (i != 0 && i != ino) {
        ino = i;
        if (++renames >= at.checkpoints) {
          std::this_thread::sleep_for(std::chrono::microseconds(at.jitter_us));
          now = true;
        }
      }
    }
    if (now) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &st, 0);
      return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    }
    if (at.kind != KillAt::kMidWrite) std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
}

}  // namespace

TEST(CrashSafety, KilledAtRandomMomentsAndResumedEndsBitForBitEqual) {
  REQUIRE_MNIST();
  // 480 samples / 32 = 15 iterations per epoch, 4 epochs, a checkpoint after every iteration.
  const std::string base = "--epochs 4 --limit-train 480 --limit-test 100 --batch-size 32 --save-every 1 --workers 0 ";
  fs::path ref = scratch("ref"), out = scratch("killed");
  test::CommandResult full = test::run_command(mnist_bin() + " " + common(ref) + base);
  ASSERT_EQ(full.status, 0) << full.output;
  const double t_full = full.seconds;

  std::mt19937 rng(15);  // fixed: the same kill plan every run of the suite
  const int kKills = 12;
  int killed = 0, finished_early = 0, torn_tmp_seen = 0;
  int64_t last_iteration = -1;
  std::string log;
  for (int k = 0; k < kKills; ++k) {
    // A third of the kills come after a random time up to a tenth of the whole run (start-up,
    // loading the checkpoint, the first iterations), a third inside a checkpoint write, a
    // third 1-3 checkpoints in plus 0-5 ms (mid-iteration). At most ~2/3 of the run is done
    // by the 12 kills however fast the machine is, so every one of them lands.
    KillAt at{KillAt::kSeconds};
    char what[64];
    if (k % 3 == 0) {
      at.seconds = std::uniform_real_distribution<double>(0.01, 0.1 * t_full)(rng);
      std::snprintf(what, sizeof what, "after %.3f s", at.seconds);
    } else if (k % 3 == 1) {
      at.kind = KillAt::kCheckpoints;
      at.checkpoints = std::uniform_int_distribution<int>(1, 3)(rng);
      at.jitter_us = std::uniform_int_distribution<int>(0, 5000)(rng);
      std::snprintf(what, sizeof what, "%d checkpoints + %d us in", at.checkpoints, at.jitter_us);
    } else {
      at.kind = KillAt::kMidWrite;
      std::snprintf(what, sizeof what, "inside a checkpoint write");
    }
    std::string resume = fs::exists(out / "last.ckpt") ? "--resume " + (out / "last.ckpt").string() + " " : "";
    std::vector<std::string> before = leftover_tmp_files(out);
    int status = run_and_kill(mnist_bin() + " " + common(out) + base + resume, out, at, 4 * t_full + 10);
    log += "kill " + std::to_string(k) + " " + what + ": status " + std::to_string(status);
    if (status == 0) {  // the run completed before its kill: it must still be exact
      ++finished_early;
      log += " (completed)\n";
      break;
    }
    ASSERT_EQ(status, 137) << "killed run " << k << " failed on its own\n" << log;
    ++killed;
    std::vector<std::string> tmp;  // what this run left (start-up removed the older ones)
    for (const auto& n : leftover_tmp_files(out))
      if (std::find(before.begin(), before.end(), n) == before.end()) tmp.push_back(n);
    torn_tmp_seen += tmp.empty() ? 0 : 1;
    if (fs::exists(out / "last.ckpt")) {
      json meta;
      ASSERT_NO_THROW(meta = checkpoint_meta(out / "last.ckpt")) << "after kill " << k << " (" << what << ")";
      int64_t it = meta.at("iteration").get<int64_t>();
      EXPECT_GE(it, last_iteration) << "last.ckpt went back in time after kill " << k;
      last_iteration = it;
      log += ", last.ckpt at iteration " + std::to_string(it);
    } else {
      EXPECT_EQ(last_iteration, -1) << "last.ckpt disappeared after kill " << k;
      log += ", no checkpoint yet";
    }
    if (!tmp.empty()) log += " (its torn temporary " + tmp[0] + " was left beside it)";
    log += "\n";
  }
  if (!finished_early) {
    std::string resume = fs::exists(out / "last.ckpt") ? "--resume " + (out / "last.ckpt").string() + " " : "";
    test::CommandResult r = test::run_command(mnist_bin() + " " + common(out) + base + resume);
    ASSERT_EQ(r.status, 0) << r.output;
  }
  std::printf("uninterrupted run %.2f s; %d kills, %d left a torn temporary file\n%s", t_full, killed,
              torn_tmp_seen, log.c_str());
  EXPECT_EQ(killed, kKills) << log;
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
