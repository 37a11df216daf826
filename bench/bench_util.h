#pragma once
// Shared by the bench programs: which devices to run, size caps, stream sync, registration.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "ember.h"

namespace ember::bench {

/// cpu, plus cuda:0 when this build has CUDA and a GPU is present.
inline std::vector<Device> bench_devices() {
  std::vector<Device> d{kCPU};
  if (cuda::is_available()) d.emplace_back(DeviceType::cuda, 0);
  return d;
}

/// Largest tensor, in bytes, a benchmark allocates on `d`: 256 MiB on CUDA, `cpu_default`
/// on the CPU (keeps a run on a small box short). EMBER_BENCH_MAX_MB overrides both.
inline int64_t max_bytes(Device d, int64_t cpu_default = int64_t(64) << 20) {
  if (const char* e = std::getenv("EMBER_BENCH_MAX_MB")) {
    long long mb = std::atoll(e);
    if (mb > 0) return int64_t(mb) << 20;
  }
  return d.is_cuda() ? int64_t(256) << 20 : cpu_default;
}

/// Waits for the device's queued work, so that each timed iteration is the op's full cost.
inline void sync(Device d) {
  if (d.is_cuda()) cuda::synchronize(d.index);
}

inline std::string device_tag(Device d) { return d.is_cuda() ? "cuda" : "cpu"; }

/// Records what ran where in the benchmark's context (and so in its JSON output).
inline void add_context() {
  benchmark::AddCustomContext("ember_cuda_build", EMBER_WITH_CUDA ? "yes" : "no");
  if (cuda::is_available()) benchmark::AddCustomContext("ember_gpu", cuda::device_name(0));
  if (const char* e = std::getenv("EMBER_BENCH_MAX_MB")) {
    benchmark::AddCustomContext("ember_bench_max_mb", e);
  }
}

}  // namespace ember::bench

/// main() for the bench programs: registers through `register_all()`, then runs.
#define EMBER_BENCH_MAIN(register_all)                            \
  int main(int argc, char** argv) {                               \
    benchmark::Initialize(&argc, argv);                           \
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1; \
    ::ember::bench::add_context();                                \
    register_all();                                               \
    benchmark::RunSpecifiedBenchmarks();                          \
    benchmark::Shutdown();                                        \
    return 0;                                                     \
  }
