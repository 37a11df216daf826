#pragma once
// Shared by the libFuzzer targets: every reader takes a path, so each input is written to a
// file (one per process, reused) and the reader is called on it. An ember::Error is the
// expected answer to a bad input; anything else (a crash, a sanitizer report, another
// exception type escaping, a hang or an allocation past -rss_limit_mb) is a finding.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>

#include "ember.h"

namespace ember::fuzz {

inline std::string scratch_root() {
  static const std::string root = [] {
    auto p = std::filesystem::temp_directory_path() / ("ember_fuzz_" + std::to_string(::getpid()));
    std::filesystem::create_directories(p);
    return p.string();
  }();
  return root;
}

/// Writes the input to `path` (truncating), returns path.
inline const std::string& write_input(const std::string& path, const uint8_t* data, size_t size) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) __builtin_trap();
  if (size && std::fwrite(data, 1, size, f) != size) __builtin_trap();
  std::fclose(f);
  return path;
}

template <class F>
void expect_error_or_success(F&& f) {
  try {
    f();
  } catch (const ember::Error&) {
    // a clear error: what a bad input must get
  }
}

}  // namespace ember::fuzz
