#pragma once
// The process group: who this process is in a data-parallel job (rank, world size, local
// rank on its node), which device it computes on, and the communicators of the job.
//
// Note [Launch]: the group is initialized from the MPI environment. Under `mpirun -np N`
// (or srun, or any launcher that sets OMPI_COMM_WORLD_SIZE, PMIX_RANK, PMI_RANK/PMI_SIZE,
// MV2_COMM_WORLD_SIZE or MPI_LOCALNRANKS) MPI is initialized and gives rank and world size;
// the local rank comes from MPI's shared-memory split (MPI_Comm_split_type) and picks the
// GPU. A process started without a launcher is a world of one and does not touch MPI at
// all: an OpenMPI singleton MPI_Init would fork a helper daemon (~0.3 s per start, and it
// needs --allow-run-as-root-like settings in containers), and nothing in a world of one needs
// it. EMBER_DIST_MPI=1 forces MPI_Init (a singleton), EMBER_DIST_MPI=0 never initializes it.
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "dist/communicator.h"

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
  bool failed_ = false;
  double timeout_ = 300;
  std::mutex mu_;
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
/// failed, aborts the job so that no rank waits forever). Called at exit when not before.
/// MPI cannot be initialized again in the same process.
void destroy_process_group();
/// Ends every process of the job with `code` (MPI_Abort under MPI, else this process).
[[noreturn]] void abort_job(int code);

/// Whether the environment says a launcher (mpirun, srun) started this process.
bool launched_by_mpi();
/// EMBER_DIST_TIMEOUT in seconds (300 when unset); throws on a malformed value.
double timeout_from_env();

}  // namespace ember::dist
