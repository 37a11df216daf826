#pragma once
// Internal: the backends behind ProcessGroup. The MPI and NCCL ones are defined in
// dist/mpi/ and dist/nccl/, compiled only when ember is built with them.
#include <cstddef>
#include <memory>
#include <string>

#include "dist/communicator.h"

namespace ember::dist {
class ProcessGroup;
class Store;
}

namespace ember::dist::detail {

/// Throws dist::Error unless `t` is defined, contiguous and on `device`.
void check_tensor(const Tensor& t, Device device, const char* op, const char* what);
/// "allreduce(sum) of 1024 f32 elements": names an operation in messages.
std::string describe(const std::string& op, const Tensor& t);

/// A world of one process: every collective is a copy at most; any device.
std::unique_ptr<Communicator> make_local_communicator(Device device);
/// CUDA tensors through host copies over a CPU communicator (a build without NCCL).
std::unique_ptr<Communicator> make_staged_communicator(Communicator& host, Device device);

#if EMBER_WITH_MPI
struct MpiWorld {
  int rank = 0, size = 1, local_rank = 0, local_size = 1;
};
/// MPI_Init_thread (FUNNELED) and the world/node ranks. Throws dist::Error on failure.
MpiWorld mpi_init();
bool mpi_is_initialized();
void mpi_finalize();
[[noreturn]] void mpi_abort(int code);
/// Blocking broadcast of raw bytes over MPI_COMM_WORLD (bootstraps NCCL).
void mpi_broadcast_bytes(void* data, size_t bytes, int root, double timeout_seconds);
/// CPU tensors over MPI (non-blocking collectives on a duplicate of MPI_COMM_WORLD).
std::unique_ptr<Communicator> make_mpi_communicator(ProcessGroup& group);
#endif

#if EMBER_WITH_GLOO
/// CPU tensors over Gloo's TCP transport, listening on `host` (empty: this machine's
/// hostname; GLOO_SOCKET_IFNAME names an interface instead); the peers' addresses go
/// through `store`. A collective call: every rank makes it.
std::unique_ptr<Communicator> make_gloo_communicator(ProcessGroup& group, Store& store, const std::string& host);
#endif

#if EMBER_WITH_NCCL
/// CUDA tensors of `device` over NCCL; the unique id travels through the group's store (the
/// env:// launch), else by MPI broadcast (or is made locally in a world of one).
std::unique_ptr<Communicator> make_nccl_communicator(ProcessGroup& group, int device);
#endif

}  // namespace ember::dist::detail
