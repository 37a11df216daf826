// Allreduce bus bandwidth over message sizes (f32, 4 KiB to 64 MiB on the CPU, 256 MiB on a
// GPU): MPI for CPU tensors, NCCL for this rank's GPU. Run it on N processes:
//   tests/dist/run_mpi.sh 2 build/bench/bench_allreduce      (or mpirun -np N ...)
// Each iteration is one allreduce(sum) completed (and, on a GPU, synchronized); its time is
// the slowest rank's. `algbw` = bytes / time; `busbw` = algbw * 2(N-1)/N, the bytes each
// link carries in a ring allreduce (NCCL's convention), comparable across N. In a world of
// one the communicator copies nothing (busbw 0): the figures then show the call overhead.
#include "bench/dist_bench_util.h"

namespace ember::bench {
namespace {

void bm_allreduce(benchmark::State& state, Device d) {
  int64_t bytes = state.range(0);
  dist::ProcessGroup& pg = dist::default_group();
  Tensor t = ones({bytes / 4}, {.device = d});
  for (int i = 0; i < 2; ++i) {  // warm-up (NCCL creates its communicator on first use)
    pg.allreduce(t)->wait();
    sync(d);
  }
  for (auto _ : state) {
    auto t0 = std::chrono::steady_clock::now();
    pg.allreduce(t)->wait();
    sync(d);
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    state.SetIterationTime(max_over_ranks(s));
  }
  const int n = pg.world_size();
  state.SetBytesProcessed(state.iterations() * bytes);
  state.counters["algbw_GBps"] = benchmark::Counter(double(state.iterations()) * double(bytes) / 1e9,
                                                    benchmark::Counter::kIsRate);
  state.counters["busbw_GBps"] = benchmark::Counter(
      double(state.iterations()) * double(bytes) * 2.0 * (n - 1) / n / 1e9, benchmark::Counter::kIsRate);
  state.counters["ranks"] = n;
}

void register_all() {
  for (Device d : dist_bench_devices()) {
    std::string name = "allreduce_f32_" + dist::default_group().communicator(d).backend() + "/" + device_tag(d);
    auto* b = benchmark::RegisterBenchmark(name.c_str(), bm_allreduce, d);
    const int64_t cap = max_bytes(d);
    for (int64_t s = 4096; s <= cap; s *= 4) {
      b->Arg(s);
    }
    b->ArgName("bytes")->UseManualTime()->Unit(benchmark::kMicrosecond);
    // Fixed counts: every rank must run the same number of collectives.
    b->Iterations(20);
  }
}

}  // namespace
}  // namespace ember::bench

EMBER_DIST_BENCH_MAIN(ember::bench::register_all)
