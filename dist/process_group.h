#pragma once
// The process group: who this process is in a data-parallel job (rank, world size, local
// rank on its node), which device it computes on, and the communicators of the job.
//
// Note [Launch]: one interface, three ways in, tried in this order:
// - MPI: under `mpirun -np N` (or srun, or any launcher that sets OMPI_COMM_WORLD_SIZE,
//   PMIX_RANK, PMI_RANK/PMI_SIZE, MV2_COMM_WORLD_SIZE or MPI_LOCALNRANKS) MPI is initialized
//   and gives rank and world size; the local rank comes from MPI's shared-memory split
//   (MPI_Comm_split_type) and picks the GPU. CPU collectives go over MPI, NCCL's unique id
//   by MPI broadcast.
// - env:// (torchrun's names): RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE and either
//   MASTER_ADDR/MASTER_PORT (a TCP store, served by rank 0, or by node 0's launcher when
//   EMBER_STORE_SERVED=1) or EMBER_RDZV_FILE (a file store on a shared file system;
//   dist/store.h). ember's own launcher (`--nproc-per-node`, dist/launch.h) sets them.
//   CPU collectives go over Gloo's TCP transport, NCCL's unique id through the store. A
//   build without Gloo, or torchrun itself (its agent owns MASTER_PORT and speaks PyTorch's
//   store protocol), is an error that says how to launch instead, never N silent copies.
// - Nothing: a world of one that touches neither MPI nor a store. An OpenMPI singleton
//   MPI_Init would fork a helper daemon (~0.3 s per start, and it needs
//   --allow-run-as-root-like settings in containers), and nothing in a world of one needs
//   it. EMBER_DIST_MPI=1 forces MPI_Init (a singleton), EMBER_DIST_MPI=0 never initializes
//   it.
#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "dist/communicator.h"
#include "dist/store.h"

namespace ember::dist {

struct ProcessGroupOptions {
  /// Seconds a collective may take before it is an error (Note [Collective timeout]);
  /// <= 0: EMBER_DIST_TIMEOUT from the environment, else 300.
  double timeout_seconds = 0;
};

class ProcessGroup {
 public:
  ~ProcessGroup();
  ProcessGroup(const ProcessGroup&) = delete;
  ProcessGroup& operator=(const ProcessGroup&) = delete;

  int rank() const { return rank_; }
  int world_size() const { return world_; }
  /// Rank among the processes of this node, and their number.
  int local_rank() const { return local_rank_; }
  int local_world_size() const { return local_world_; }
  bool is_main() const { return rank_ == 0; }
  /// Whether MPI was initialized (Note [Launch]).
  bool uses_mpi() const { return uses_mpi_; }
  /// "mpi", "env" (RANK/WORLD_SIZE and a store) or "none" (a world of one).
  const std::string& launch() const { return launch_; }
  /// The job's rendezvous store (the env:// launch); null otherwise.
  Store* store() const { return store_.get(); }
  /// A fresh key suffix for a communicator's bootstrap (every rank counts the same).
  int next_bootstrap_id() { return bootstrap_ids_++; }
  double timeout_seconds() const { return timeout_; }

  /// The device this process should compute on: cuda:(local rank mod GPUs) when a GPU is
  /// present, else the CPU.
  Device default_device() const;

  /// The communicator for tensors on `device` (created on first use; for CUDA devices this
  /// is a collective call: every rank must make it, e.g. by its first CUDA collective).
  Communicator& communicator(Device device);

  /// The collectives of Communicator, on the communicator of the tensor's device.
  WorkPtr allreduce(const Tensor& t, ReduceOp op = ReduceOp::sum);
  WorkPtr broadcast(const Tensor& t, int root = 0);
  WorkPtr allgather(const Tensor& in, const Tensor& out);
  WorkPtr reduce_scatter(const Tensor& in, const Tensor& out, ReduceOp op = ReduceOp::sum);
  /// Blocks until every rank arrived (through the CPU communicator).
  void barrier();

  /// Set after a timeout or a transport failure: destroy_process_group() then aborts the
  /// job instead of finalizing MPI (a pending collective would block MPI_Finalize).
  void mark_failed() { failed_ = true; }
  bool failed() const { return failed_; }

 private:
  friend ProcessGroup& init_process_group(const ProcessGroupOptions&);
  friend void destroy_process_group();
  ProcessGroup() = default;

  int rank_ = 0, world_ = 1, local_rank_ = 0, local_world_ = 1;
  bool uses_mpi_ = false;
  std::string launch_ = "none";
  std::atomic<bool> failed_{false};  // set by Gloo's worker thread too
  double timeout_ = 300;
  std::mutex mu_;
  std::unique_ptr<TcpStoreServer> server_;  // rank 0's, when it serves the TCP store
  std::unique_ptr<Store> store_;
  std::string transport_host_;  // where this process's Gloo transport listens
  int bootstrap_ids_ = 0;
  std::unique_ptr<Communicator> cpu_;
  std::vector<std::unique_ptr<Communicator>> cuda_;  // by device index
};

/// Initializes the default group from the environment (Note [Launch]); later calls return
/// the same group (their options are ignored).
ProcessGroup& init_process_group(const ProcessGroupOptions& options = {});
bool is_initialized();
/// The default group, initialized with default options when needed.
ProcessGroup& default_group();
/// Tears the group down: destroys its communicators and finalizes MPI (or, when the group
/// failed, aborts the job so that no rank waits forever: MPI_Abort under MPI; without MPI
/// this process ends with status 1, and the launcher ends the others). Called at exit when
/// not before.
/// MPI cannot be initialized again in the same process.
void destroy_process_group();
/// Ends every process of the job with `code` (MPI_Abort under MPI, else this process).
[[noreturn]] void abort_job(int code);

/// Whether the environment says a launcher (mpirun, srun) started this process.
bool launched_by_mpi();
/// Whether the environment holds a world of several processes without MPI (WORLD_SIZE > 1,
/// or ember's launcher's EMBER_STORE_SERVED), i.e. the env:// launch of Note [Launch].
bool launched_by_env();
/// EMBER_DIST_TIMEOUT in seconds (300 when unset); throws on a malformed value.
double timeout_from_env();

}  // namespace ember::dist
