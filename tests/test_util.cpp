#include "test_util.h"

#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <cmath>
#include <cstdlib>
#include <sstream>

namespace ember::test {

::testing::AssertionResult all_close(const Tensor& a, const Tensor& b, double rtol, double atol) {
  if (a.shape() != b.shape()) {
    return ::testing::AssertionFailure() << "shape " << a.shape_str() << " vs " << b.shape_str();
  }
  std::vector<double> va = a.to_vector<double>(), vb = b.to_vector<double>();
  int bad = 0;
  std::ostringstream os;
  double worst = 0;
  for (size_t i = 0; i < va.size(); ++i) {
    bool both_nan = std::isnan(va[i]) && std::isnan(vb[i]);
    bool same_inf = std::isinf(va[i]) && va[i] == vb[i];
    double err = std::fabs(va[i] - vb[i]);
    if (both_nan || same_inf) continue;
    if (!(err <= atol + rtol * std::fabs(vb[i]))) {
      if (bad < 5) os << "\n  [" << i << "] " << va[i] << " vs " << vb[i];
      ++bad;
      worst = std::max(worst, err);
    }
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << bad << " of " << va.size()
                                       << " elements differ (worst abs err " << worst << ")"
                                       << os.str();
}

std::vector<Device> devices() {
  std::vector<Device> d{kCPU};
  if (cuda::is_available()) d.emplace_back(DeviceType::cuda, 0);
  return d;
}

void expect_gradcheck(const std::function<Tensor(const TensorList&)>& fn, const TensorList& in) {
  GradcheckResult r = gradcheck(fn, in);
  EXPECT_TRUE(r.ok) << r.message;
  EXPECT_GT(r.checked, 0);
}

CommandResult run_command(const std::string& cmd) {
  CommandResult r;
  auto t0 = std::chrono::steady_clock::now();
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return r;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, p)) r.output.append(buf, n);
  int st = pclose(p);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  return r;
}

std::string scratch_dir(const std::string& name) {
  std::filesystem::path p =
      std::filesystem::temp_directory_path() / ("ember_" + name + "_" + std::to_string(getpid()));
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  return p.string();
}

std::vector<unsigned char> bytes_of(const Tensor& t) {
  Tensor c = t.cpu().contiguous();
  std::vector<unsigned char> b(size_t(c.nbytes()));
  if (!b.empty()) std::memcpy(b.data(), c.data_ptr(), b.size());
  return b;
}

std::vector<nlohmann::json> read_metrics(const std::string& out_dir) {
  std::vector<nlohmann::json> rows;
  std::ifstream f(std::filesystem::path(out_dir) / "metrics.jsonl");
  std::string line;
  while (std::getline(f, line)) rows.push_back(nlohmann::json::parse(line));
  return rows;
}

std::string shared_data_dir() {
  if (const char* e = std::getenv("EMBER_DATA_DIR")) return e;
  return EMBER_SHARED_DATA;
}

void fill_images(const data::Dataset& ds, std::span<const int64_t> indices, int64_t epoch, float* images,
                 int64_t* labels) {
  data::Batch b = ds.get_batch_on(indices, epoch, kCPU);
  const Tensor x = b.images().contiguous(), y = b.labels().contiguous();
  std::copy(x.data<float>(), x.data<float>() + x.numel(), images);
  std::copy(y.data<int64_t>(), y.data<int64_t>() + y.numel(), labels);
}

std::string small_cifar_folder(std::string& why) {
  static std::string reason;
  static const std::string dir = [] {
    const std::string tarball = shared_data_dir() + "/cifar10-jpg.tar.gz";
    if (!std::filesystem::exists(tarball)) {
      reason = "no " + tarball + " (set EMBER_DATA_DIR)";
      return std::string();
    }
    if (std::system("tar --version > /dev/null 2>&1") != 0) {
      reason = "no tar on this machine";
      return std::string();
    }
    const std::string d = scratch_dir("small_cifar");
    const std::string cmd = "tar -xzf '" + tarball + "' -C '" + d +
                            "' --wildcards 'cifar10-jpg/train/*/000*' 'cifar10-jpg/test/*/000*'";
    if (std::system(cmd.c_str()) != 0) {
      reason = "failed: " + cmd;
      return std::string();
    }
    return d + "/cifar10-jpg";
  }();
  why = reason;
  return dir;
}

}  // namespace ember::test
