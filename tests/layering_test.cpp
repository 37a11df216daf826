// The layers include downwards only (issue 11): a file in one top-level folder may include
// headers of its own folder and of the folders below it, never of one above. The order is
// the data flow of the README's architecture section:
//   core -> kernels -> tensor -> autograd -> nn -> optim -> data -> io -> dist -> train -> apps
// core/ is the foundation (dtypes, half types, errors, devices, allocators, the CUDA context
// and streams, strided layouts); kernels/ builds on core/ only; tensor/ on both. There are no
// exceptions: any upward include fails this test, naming the file and the line.
// A second rule keeps the op layer in the middle: only tensor/ and autograd/ (the ops, with
// their one dispatch, Note [One dispatch]) call kernels. Above them (nn, optim, data, ...) a
// file may include only kernels' pure math headers (*_math.h, philox.h), shared with tests and
// references; an optimizer update or a batch transform is an op (issue 11).
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

namespace fs = std::filesystem;

namespace {

const std::vector<std::string> kLayers = {"core", "kernels", "tensor", "autograd", "nn",   "optim",
                                          "data", "io",      "dist",   "train",    "apps"};

int rank_of(const std::string& layer) {
  auto it = std::find(kLayers.begin(), kLayers.end(), layer);
  return it == kLayers.end() ? -1 : int(it - kLayers.begin());
}

/// Calls f(path relative to the root, line number, line) for every line of every C++/CUDA
/// source of `layer`; returns the number of files read.
template <class F>
size_t for_each_line(const std::string& layer, F&& f) {
  const fs::path root = EMBER_SOURCE_DIR;
  size_t files = 0;
  for (const auto& e : fs::recursive_directory_iterator(root / layer)) {
    const std::string ext = e.path().extension().string();
    if (!e.is_regular_file() || (ext != ".h" && ext != ".cpp" && ext != ".cu" && ext != ".cuh")) continue;
    ++files;
    std::ifstream in(e.path());
    const std::string rel = fs::relative(e.path(), root).string();
    std::string line;
    for (int n = 1; std::getline(in, line); ++n) f(rel, n, line);
  }
  return files;
}

}  // namespace

TEST(Layering, NoFolderIncludesAHigherOne) {
  const fs::path root = EMBER_SOURCE_DIR;
  const std::regex inc(R"(^\s*#\s*include\s+"([a-z_]+)/([^"]+)\")");
  std::vector<std::string> violations;
  size_t files = 0, includes = 0;
  for (const std::string& layer : kLayers) {
    ASSERT_TRUE(fs::is_directory(root / layer)) << (root / layer);
    files += for_each_line(layer, [&](const std::string& rel, int n, const std::string& line) {
      std::smatch m;
      if (!std::regex_search(line, m, inc)) return;
      const int to = rank_of(m[1]);
      if (to < 0) return;  // generated/, a system folder, ...
      ++includes;
      const std::string target = std::string(m[1]) + "/" + std::string(m[2]);
      if (to > rank_of(layer))
        violations.push_back(rel + ":" + std::to_string(n) + " includes " + target + " (" + layer + " is below " +
                             std::string(m[1]) + ")");
    });
  }
  EXPECT_GT(files, 100u);
  EXPECT_GT(includes, 300u);
  std::string all;
  for (const std::string& v : violations) all += "\n  " + v;
  EXPECT_TRUE(violations.empty()) << violations.size() << " upward include(s):" << all;
}

TEST(Layering, OnlyTheOpLayerCallsKernels) {
  const std::regex inc(R"(^\s*#\s*include\s+"kernels/([^"]+)\")");
  const std::regex pure(R"(([a-z_]+_math|philox)\.h)");
  std::vector<std::string> violations;
  size_t checked = 0;
  for (const std::string& layer : kLayers) {
    if (rank_of(layer) <= rank_of("autograd")) continue;  // core, kernels, tensor, autograd
    checked += for_each_line(layer, [&](const std::string& rel, int n, const std::string& line) {
      std::smatch m;
      if (std::regex_search(line, m, inc) && !std::regex_match(std::string(m[1]), pure))
        violations.push_back(rel + ":" + std::to_string(n) + " includes kernels/" + std::string(m[1]) +
                             " (call the op in autograd/ops.h instead)");
    });
  }
  EXPECT_GT(checked, 50u);
  std::string all;
  for (const std::string& v : violations) all += "\n  " + v;
  EXPECT_TRUE(violations.empty()) << violations.size() << " kernel include(s) above the op layer:" << all;
}
