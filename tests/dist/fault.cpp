// A helper for dist_launch_test: ranks that run collectives until one of them fails on
// purpose. Usage (under mpirun, dist_launch or the env:// variables): dist_fault MODE [ITER]
//   kill   rank 1 kills itself (SIGKILL) at iteration ITER; the others must not hang
//   stall  rank 1 stops taking part at iteration ITER (sleeps); the others time out
//          after EMBER_DIST_TIMEOUT seconds with an error naming the operation and rank
//   ddp    like stall, inside DistributedDataParallel's backward
// (any other MODE with ITER >= 50: no fault, every rank finishes)
// Exits 0 only if every rank finished 50 iterations (which a fault must prevent).
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "dist/dist.h"
#include "ember.h"

using namespace ember;

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: dist_fault kill|stall|ddp [ITER]\n");
    return 2;
  }
  const std::string mode = argv[1];
  const int at = argc > 2 ? std::atoi(argv[2]) : 5;
  try {
    dist::ProcessGroup& pg = dist::init_process_group();
    manual_seed(1);
    auto model = std::make_shared<nn::Linear>(64, 8);
    std::unique_ptr<dist::DDP> ddp;
    if (mode == "ddp") ddp = std::make_unique<dist::DDP>(model);
    for (int it = 0; it < 50; ++it) {
      if (pg.rank() == 1 && it == at) {
        if (mode == "kill") std::raise(SIGKILL);
        std::this_thread::sleep_for(std::chrono::seconds(120));
      }
      if (ddp) {
        Tensor x = randn({4, 64});
        ddp->zero_grad();
        sum((*ddp)(x)).backward();
        ddp->finish();
      } else {
        Tensor t = ones({1024});
        pg.allreduce(t)->wait();
      }
    }
    std::printf("rank %d: finished\n", pg.rank());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dist_fault: error: %s\n", e.what());
    return 1;  // exit destroys the failed group: MPI_Abort (or the launcher) ends the other ranks
  }
  return 0;
}
