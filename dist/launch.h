#pragma once
// ember's own launcher (the apps' --nproc-per-node): this node's share of a data-parallel
// job as child processes, the env:// way of Note [Launch] in dist/process_group.h.
//
// Note [Local launcher]: the launcher starts `nproc_per_node` copies of a command with
// RANK (node_rank * nproc_per_node + local rank), LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE,
// GROUP_RANK, MASTER_ADDR and MASTER_PORT set (torchrun's names), EMBER_LAUNCH_WORKER=1 (a
// worker does not launch again) and, for CPU work, OMP_NUM_THREADS = cores / nproc (at least
// 1) unless it is set already. Node 0's launcher serves the TCP store itself (so one node
// can take an ephemeral port, free by construction, and the store outlives any worker);
// the workers learn it from EMBER_STORE_SERVED=1. With a rendezvous file the workers use the
// file store instead. Then it waits: the first worker that exits non-zero or is killed by a
// signal is reported by rank, the others get SIGTERM and, after a grace period, SIGKILL
// (each worker leads its own process group, and the signals go to the group).
// The exit status is 0 when every worker succeeded, else the first failure's (128 + signal
// for a signal), as mpirun's. SIGINT and SIGTERM to the launcher go on to the workers (a
// terminal's Ctrl-C reaches only the launcher's group).
#include <string>
#include <vector>

namespace ember::dist {

struct LaunchOptions {
  int nproc_per_node = 1;
  int nnodes = 1;
  int node_rank = 0;
  /// Node 0's address as the other nodes reach it (default 127.0.0.1: one node).
  std::string master_addr;
  /// The store's port: 0 picks a free one (one node only).
  int master_port = 0;
  /// A file store on a shared file system instead of the TCP store.
  std::string rdzv_file;
  /// Seconds between SIGTERM and SIGKILL when a worker failed.
  double grace_seconds = 5;
  /// Prefix of the launcher's messages ("mnist").
  std::string name = "ember";
};

/// The absolute path of the running program (/proc/self/exe).
std::string this_executable();

/// Whether this process is a worker started by spawn_local_workers.
bool is_launched_worker();

/// Throws dist::Error unless the options make sense (several nodes need --master-port and,
/// beyond node 0, --master-addr, or a rendezvous file; node_rank < nnodes; ...).
void check_launch_options(const LaunchOptions& o);

/// Runs this node's workers of `argv` (argv[0] the program; no argv: this executable with
/// no arguments) and waits for them (Note [Local launcher]); returns the exit status.
int spawn_local_workers(const LaunchOptions& o, std::vector<std::string> argv);

}  // namespace ember::dist
