#pragma once
// Collective communication: one interface (Communicator) with a backend per kind of tensor:
// NCCL for CUDA tensors, MPI or Gloo for CPU tensors (MPI under mpirun/srun, Gloo for the
// env:// launch), and a local one for a world of one process.
// Every operation is asynchronous and returns a Work handle; wait() completes it.
//
// Note [Collective timeout]: a collective that does not finish within the process group's
// timeout (EMBER_DIST_TIMEOUT seconds, default 300) is an error naming the operation and the
// rank, never a silent hang. CPU (MPI) work is completed by the host polling MPI_Test, so
// wait() throws dist::TimeoutError and marks the group failed; destroy_process_group() on a
// failed group calls MPI_Abort, which makes mpirun end every other rank. NCCL work is
// completed on the GPU (wait() only orders the compute stream after it), so a watchdog
// thread polls its events: past the timeout it prints the error, aborts the NCCL
// communicator and aborts the process (the one place where ember ends a process by itself:
// the host may be blocked in a CUDA call that no exception can reach). A rank that dies is
// noticed by mpirun, which ends the others; the timeout covers what mpirun cannot see.
// Gloo (the env:// launch) times its collectives out itself; wait() throws TimeoutError
// and marks the group failed, a dead peer's closed sockets fail the collective at once, and
// destroy_process_group() on a failed group ends the process with status 1, upon which
// ember's launcher ends the other workers (Note [Gloo worker] in dist/gloo/gloo_backend.cpp,
// Note [Local launcher] in dist/launch.h).
#include <memory>
#include <string>

#include "tensor/tensor.h"

namespace ember::dist {

/// Errors of the dist layer (an ember::Error).
class Error : public ember::Error {
 public:
  using ember::Error::Error;
};

/// A collective that did not finish within the timeout (Note [Collective timeout]).
class TimeoutError : public Error {
 public:
  using Error::Error;
};

enum class ReduceOp { sum, average };
const char* reduce_op_name(ReduceOp op);

/// A pending collective. wait() completes it: afterwards the outputs hold the result for
/// any later use on their device (for CUDA tensors: work queued on the device's current
/// stream after wait() sees the result; the host does not block). The Work keeps its
/// tensors alive until then. Destroying a Work without wait() is allowed but does not
/// complete the operation for the host (CPU) — call wait().
class Work {
 public:
  virtual ~Work() = default;
  /// Completes the operation; throws dist::TimeoutError past the timeout, dist::Error when
  /// the transport reports a failure.
  virtual void wait() = 0;
  /// True once the operation has completed (for CPU work this also drives MPI's progress).
  virtual bool test() = 0;
  /// "allreduce", "broadcast", ... (for messages).
  virtual std::string name() const = 0;
};
using WorkPtr = std::shared_ptr<Work>;

/// The collectives of one group of processes over one kind of memory. All tensors must be
/// contiguous and on the communicator's device; every rank must issue the same collectives
/// in the same order with matching shapes and dtypes.
class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  /// "mpi", "gloo", "nccl", "local", "staged-mpi", "staged-gloo".
  virtual std::string backend() const = 0;

  /// In place: every rank's `t` becomes the sum (or mean) over ranks.
  virtual WorkPtr allreduce(const Tensor& t, ReduceOp op = ReduceOp::sum) = 0;
  /// In place: every rank's `t` becomes root's.
  virtual WorkPtr broadcast(const Tensor& t, int root = 0) = 0;
  /// `out` (world_size * in.numel() elements, rank-major) gets every rank's `in`.
  virtual WorkPtr allgather(const Tensor& in, const Tensor& out) = 0;
  /// `in` holds world_size chunks of out.numel() elements; rank r's `out` becomes the sum
  /// (or mean) over ranks of chunk r.
  virtual WorkPtr reduce_scatter(const Tensor& in, const Tensor& out, ReduceOp op = ReduceOp::sum) = 0;
  /// Completes once every rank has entered it.
  virtual WorkPtr barrier() = 0;
};

/// A Work that is complete from the start (local and host-synchronous operations).
class CompletedWork : public Work {
 public:
  explicit CompletedWork(std::string name) : name_(std::move(name)) {}
  void wait() override {}
  bool test() override { return true; }
  std::string name() const override { return name_; }

 private:
  std::string name_;
};

}  // namespace ember::dist
