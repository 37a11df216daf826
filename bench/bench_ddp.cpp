// One training step (forward, cross-entropy, backward, SGD) with and without
// DistributedDataParallel, for LeNet (MNIST-sized input) and ResNet-20 (CIFAR-sized), on the
// CPU and on this rank's GPU:
//   step_plain_<model>          the module alone (no communication at all)
//   step_ddp_<model>/overlap:1  DDP, buckets reduced while backward runs (the default)
//   step_ddp_<model>/overlap:0  DDP, every bucket after the last gradient
// Batch per process: 64 (lenet) / 32 (resnet20) on the CPU, 256 / 128 on a GPU. Run it on N
// processes (tests/dist/run_mpi.sh 2 build/bench/bench_ddp, or mpirun) to see the cost of
// communication and what the overlap hides; in a world of one it shows DDP's own overhead.
#include "bench/dist_bench_util.h"
#include "optim/sgd.h"

namespace ember::bench {
namespace {

struct Setup {
  std::string model;
  Shape input;  // one sample
  int64_t cpu_batch, gpu_batch;
};

void bm_step(benchmark::State& state, Setup s, Device d, int mode) {  // mode: 0 plain, 1 overlap, 2 no overlap
  int64_t batch = d.is_cuda() ? s.gpu_batch : s.cpu_batch;
  manual_seed(1);
  nn::ModulePtr m = nn::make_model(s.model);
  m->to(d);
  std::unique_ptr<dist::DDP> ddp;
  if (mode > 0) ddp = std::make_unique<dist::DDP>(m, dist::DDPOptions{.overlap = mode == 1});
  optim::SGD opt(m->parameters(), {.lr = 0.01, .momentum = 0.9});
  Shape shape = s.input;
  shape.insert(shape.begin(), batch);
  Tensor x = randn(shape, {.device = d});
  Tensor y = randint(0, 10, {batch}, {.dtype = DType::i64, .device = d});
  auto step = [&] {
    Tensor loss = cross_entropy(ddp ? (*ddp)(x) : (*m)(x), y);
    if (ddp) ddp->zero_grad();
    else m->zero_grad();
    loss.backward();
    if (ddp) ddp->finish();
    opt.step();
    sync(d);
  };
  step();  // warm-up: allocator, NCCL communicator, cuDNN plans
  for (auto _ : state) {
    auto t0 = std::chrono::steady_clock::now();
    step();
    state.SetIterationTime(max_over_ranks(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()));
  }
  const int n = dist::default_group().world_size();
  state.counters["images_per_s"] = benchmark::Counter(double(state.iterations()) * double(batch) * n,
                                                      benchmark::Counter::kIsRate);
  state.counters["batch_per_rank"] = double(batch);
  state.counters["ranks"] = n;
}

void register_all() {
  const std::vector<Setup> setups = {{"lenet", {1, 28, 28}, 64, 256}, {"resnet20", {3, 32, 32}, 32, 128}};
  for (Device d : dist_bench_devices()) {
    for (const Setup& s : setups) {
      const int iters = d.is_cuda() ? 50 : (s.model == "lenet" ? 20 : 3);
      for (int mode : {0, 1, 2}) {
        std::string name = (mode == 0 ? "step_plain_" : "step_ddp_") + s.model + "/" + device_tag(d);
        if (mode > 0) name += mode == 1 ? "/overlap:1" : "/overlap:0";
        benchmark::RegisterBenchmark(name.c_str(), bm_step, s, d, mode)
            ->UseManualTime()
            ->Unit(benchmark::kMillisecond)
            ->Iterations(iters);
      }
    }
  }
}

}  // namespace
}  // namespace ember::bench

EMBER_DIST_BENCH_MAIN(ember::bench::register_all)
