#pragma once
// Shared by the data-parallel benchmarks (bench_allreduce, bench_ddp), which may run under
// mpirun: every rank registers the same benchmarks with fixed iteration counts (so all ranks
// issue the same collectives), each iteration's time is the slowest rank's (manual time),
// and only rank 0 reports.
#include <algorithm>
#include <chrono>
#include <cstring>
#include <string>
#include <vector>

#include "bench/bench_util.h"
#include "dist/dist.h"

namespace ember::bench {

/// The slowest rank's seconds (a CPU collective; outside the timed region).
inline double max_over_ranks(double seconds) {
  dist::ProcessGroup& pg = dist::default_group();
  if (pg.world_size() == 1) return seconds;
  Tensor t = zeros({pg.world_size()}, {.dtype = DType::f64});
  Tensor mine = scalar_tensor(seconds, {.dtype = DType::f64}).reshape({1});
  pg.allgather(mine, t)->wait();
  auto v = t.to_vector<double>();
  return *std::max_element(v.begin(), v.end());
}

/// cpu, plus this rank's GPU when present.
inline std::vector<Device> dist_bench_devices() {
  std::vector<Device> d{kCPU};
  Device g = dist::default_group().default_device();
  if (g.is_cuda()) d.push_back(g);
  return d;
}

class NullReporter : public benchmark::BenchmarkReporter {
 public:
  bool ReportContext(const Context&) override { return true; }
  void ReportRuns(const std::vector<Run>&) override {}
};

}  // namespace ember::bench

/// main(): the process group first; ranks > 0 run silently (and write no --benchmark_out).
#define EMBER_DIST_BENCH_MAIN(register_all)                                                   \
  int main(int argc, char** argv) {                                                           \
    ::ember::dist::ProcessGroup& pg = ::ember::dist::init_process_group();                   \
    std::vector<char*> args;                                                                  \
    for (int i = 0; i < argc; ++i)                                                            \
      if (pg.rank() == 0 || std::strncmp(argv[i], "--benchmark_out", 15) != 0) args.push_back(argv[i]); \
    int n = int(args.size());                                                                 \
    benchmark::Initialize(&n, args.data());                                                   \
    if (benchmark::ReportUnrecognizedArguments(n, args.data())) return 1;                     \
    ::ember::bench::add_context();                                                            \
    benchmark::AddCustomContext("ember_world_size", std::to_string(pg.world_size()));         \
    register_all();                                                                           \
    if (pg.rank() == 0) {                                                                     \
      benchmark::RunSpecifiedBenchmarks();                                                    \
    } else {                                                                                  \
      ::ember::bench::NullReporter quiet;                                                     \
      benchmark::RunSpecifiedBenchmarks(&quiet);                                              \
    }                                                                                         \
    benchmark::Shutdown();                                                                    \
    ::ember::dist::destroy_process_group();                                                   \
    return 0;                                                                                 \
  }
