#pragma once
// Helpers shared by the tests: comparisons with tolerances, device lists, data paths.
#include <gtest/gtest.h>

#include <functional>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ember.h"

namespace ember::test {

/// |a - b| <= atol + rtol * |b| elementwise (b is the reference); shapes must match.
::testing::AssertionResult all_close(const Tensor& a, const Tensor& b, double rtol = 1e-5,
                                     double atol = 1e-8);

/// Every device this machine can run: cpu, plus cuda:0 when a GPU is present.
std::vector<Device> devices();

/// Skips the current test (visibly) unless a CUDA device is present.
#define EMBER_REQUIRE_GPU()                                                                  \
  do {                                                                                       \
    if (!::ember::cuda::is_available())                                                      \
      GTEST_SKIP() << (EMBER_WITH_CUDA ? "no CUDA device on this machine"                    \
                                       : "ember was built without CUDA");                  \
  } while (0)

/// Runs gradcheck and asserts that it compared something and everything matched.
void expect_gradcheck(const std::function<Tensor(const TensorList&)>& fn, const TensorList& in);

/// Expects an ember::Error whose message contains `needle`.
#define EXPECT_ERROR(stmt, needle)                                                         \
  do {                                                                                     \
    try {                                                                                  \
      (void)(stmt);                                                                        \
      ADD_FAILURE() << "expected an ember::Error from " #stmt;                             \
    } catch (const ::ember::Error& e) {                                                    \
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos)                     \
          << "message: " << e.what();                                                      \
    }                                                                                      \
  } while (0)

/// A shell command's exit status (128 + signal when killed), its stdout and stderr
/// together, and its wall time.
struct CommandResult {
  int status = -1;
  std::string output;
  double seconds = 0;
};
CommandResult run_command(const std::string& cmd);

/// An empty folder under the temp dir, unique to this process (several checkouts may run
/// the suite at once on one machine): temp/ember_<name>_<pid>.
std::string scratch_dir(const std::string& name);

/// ../shared/data (or $EMBER_DATA_DIR when set).
std::string shared_data_dir();

/// A small CIFAR-10 image folder: the first 10 JPEGs of each class of the train and test
/// splits, unpacked once per process from ../shared/data/cifar10-jpg.tar.gz. Returns the
/// folder holding train/ and test/, or "" with `why` set when that is impossible.
std::string small_cifar_folder(std::string& why);

/// The raw bytes of t's elements in row-major order, copied to the CPU (for bit-exact
/// comparisons across devices).
std::vector<unsigned char> bytes_of(const Tensor& t);

/// The "image" and "label" fields of the samples `indices` in `epoch` (Dataset::get_batch_on on
/// the CPU), written to raw buffers: B*C*H*W floats and B labels.
void fill_images(const data::Dataset& ds, std::span<const int64_t> indices, int64_t epoch, float* images,
                 int64_t* labels);

/// The rows of OUT/metrics.jsonl (what the apps and train::Trainer write), one per epoch.
std::vector<nlohmann::json> read_metrics(const std::string& out_dir);

}  // namespace ember::test
