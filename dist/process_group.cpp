// The default process group: launch detection, MPI bootstrap, communicator per device
// (Note [Launch] in dist/process_group.h).
#include "dist/process_group.h"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "dist/detail.h"
#include "core/cuda_context.h"

namespace ember::dist {

namespace {

std::mutex g_init_mu;
ProcessGroup* g_group = nullptr;  // leaked on purpose: see destroy_process_group
bool g_destroyed = false;

const char* env(const char* name) {
  const char* v = std::getenv(name);
  return v && *v ? v : nullptr;
}

int env_int(const char* name, int fallback) {
  const char* v = env(name);
  return v ? std::atoi(v) : fallback;
}

void at_exit_destroy() {
  if (g_group && !g_destroyed) destroy_process_group();
}

#if EMBER_WITH_GLOO
/// An integer environment variable that must be there and parse whole.
int env_required_int(const char* name, const char* why) {
  const char* v = env(name);
  if (!v) EMBER_THROW("dist: ", why, " but ", name, " is not set");
  char* end = nullptr;
  errno = 0;
  long n = std::strtol(v, &end, 10);
  EMBER_CHECK(errno == 0 && end && *end == '\0' && n >= 0 && n <= 1 << 30, "dist: ", name, "=", v,
              ": expected a non-negative integer");
  return int(n);
}

const char* kHowToLaunch =
    "launch with ember's own launcher (`APP --nproc-per-node N ...`; several nodes: add --nnodes M --node-rank R "
    "--master-addr HOST --master-port P) or with `mpirun -np N ...` (or srun)";
#endif

}  // namespace

bool launched_by_env() {
  return env_int("WORLD_SIZE", 1) > 1 || env("EMBER_STORE_SERVED") != nullptr;
}

#if EMBER_WITH_GLOO
namespace {

// The env:// launch (Note [Launch]): ranks from the environment, the store, Gloo.
void init_from_env(int& rank, int& world, int& local_rank, int& local_world,
                   std::unique_ptr<TcpStoreServer>& server, std::unique_ptr<Store>& store, std::string& host,
                   double timeout) {
  if (env("TORCHELASTIC_RUN_ID"))
    EMBER_THROW("dist: this process was started by torchrun (TORCHELASTIC_RUN_ID is set), whose agent serves "
                "MASTER_PORT with PyTorch's own store protocol, which ember does not speak; ", kHowToLaunch);
  const char* why = "WORLD_SIZE is set (a torchrun / torch.distributed.launch style launch)";
  world = env_required_int("WORLD_SIZE", why);
  rank = env_required_int("RANK", why);
  EMBER_CHECK(world >= 1 && rank < world, "dist: RANK=", rank, " is not a rank of WORLD_SIZE=", world);
  local_rank = env("LOCAL_RANK") ? env_required_int("LOCAL_RANK", why) : rank;
  local_world = env("LOCAL_WORLD_SIZE") ? env_required_int("LOCAL_WORLD_SIZE", why) : world;
  const char* file = env("EMBER_RDZV_FILE");
  const char* addr = env("MASTER_ADDR");
  const char* port = env("MASTER_PORT");
  if (file) {
    store = std::make_unique<FileStore>(file, rank == 0, timeout);
  } else {
    if (!addr || !port)
      EMBER_THROW("dist: WORLD_SIZE=", world, " and RANK=", rank, " are set but ", !addr ? "MASTER_ADDR" : "MASTER_PORT",
                  " is not: the processes need MASTER_ADDR and MASTER_PORT (where rank 0 serves the rendezvous "
                  "store) or EMBER_RDZV_FILE (a file store on a shared file system); ", kHowToLaunch);
    int p = env_required_int("MASTER_PORT", "MASTER_ADDR is set");
    // Rank 0 serves the store, unless node 0's launcher does (it picked the port).
    if (rank == 0 && !env("EMBER_STORE_SERVED")) server = std::make_unique<TcpStoreServer>(p);
    store = std::make_unique<TcpStore>(addr, p, timeout);
  }
  // The transports listen on the interface that routes to the master (GLOO_SOCKET_IFNAME
  // overrides it in the Gloo backend); with a file store and no MASTER_ADDR, Gloo's default.
  if (addr) host = local_address_towards(addr);
  // A peer that died leaves sockets whose writes raise SIGPIPE, which would end this process
  // without a word; as an error from the transport, it names the operation and the rank.
  std::signal(SIGPIPE, SIG_IGN);

  // Every rank checks in: two processes with one RANK (or a file store left by an earlier
  // run) and disagreeing world sizes are errors here, not a hang in the transport.
  int64_t seen = store->add("ember/rank/" + std::to_string(rank), 1);
  EMBER_CHECK(seen == 1, "dist: two processes claim RANK=", rank, " in the ", store->where(),
              file ? " (or the rendezvous file was left by an earlier run: delete it)" : "");
  if (rank == 0) store->set("ember/world_size", std::to_string(world));
  std::string w0 = store->get("ember/world_size");
  EMBER_CHECK(w0 == std::to_string(world), "dist: rank ", rank, " has WORLD_SIZE=", world, " but rank 0 has ", w0);
}

}  // namespace
#endif

const char* reduce_op_name(ReduceOp op) { return op == ReduceOp::sum ? "sum" : "average"; }

bool launched_by_mpi() {
  if (const char* force = env("EMBER_DIST_MPI")) return std::strcmp(force, "0") != 0;
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE", "MV2_COMM_WORLD_SIZE",
                        "MPI_LOCALNRANKS"})
    if (env(v)) return true;
  return false;
}

double timeout_from_env() {
  const char* v = env("EMBER_DIST_TIMEOUT");
  if (!v) return 300.0;
  char* end = nullptr;
  errno = 0;
  double s = std::strtod(v, &end);
  EMBER_CHECK(errno == 0 && end && *end == '\0' && s > 0, "EMBER_DIST_TIMEOUT=", v,
              ": expected a positive number of seconds");
  return s;
}

ProcessGroup& init_process_group(const ProcessGroupOptions& options) {
  std::lock_guard<std::mutex> lock(g_init_mu);
  if (g_group) return *g_group;
  EMBER_CHECK(!g_destroyed, "dist: the process group was destroyed; MPI cannot be initialized twice "
              "in one process");
  auto* pg = new ProcessGroup();
  pg->timeout_ = options.timeout_seconds > 0 ? options.timeout_seconds : timeout_from_env();
  if (launched_by_mpi()) {
#if EMBER_WITH_MPI
    detail::MpiWorld w = detail::mpi_init();
    pg->rank_ = w.rank;
    pg->world_ = w.size;
    pg->local_rank_ = w.local_rank;
    pg->local_world_ = w.local_size;
    pg->uses_mpi_ = true;
    pg->launch_ = "mpi";
    // srun without an MPI plugin starts N singletons: N independent trainings, not one job.
    int slurm_tasks = env("SLURM_STEP_ID") ? env_int("SLURM_NTASKS", 1) : 1;
    if (slurm_tasks > 1 && w.size == 1) {
      delete pg;
      EMBER_THROW("dist: srun started ", slurm_tasks, " tasks but MPI sees a world of 1: run srun with "
                  "an MPI plugin (srun --mpi=pmix) or launch with mpirun");
    }
#else
    int n = env_int("OMPI_COMM_WORLD_SIZE", env_int("PMI_SIZE", 1));
    if (n > 1) {
      delete pg;
      EMBER_THROW("dist: started by an MPI launcher with ", n, " processes, but this build of ember has "
                  "no MPI: install libopenmpi-dev and rebuild (EMBER_MPI=ON), or run a single process");
    }
#endif
  }
  if (!pg->uses_mpi_ && launched_by_env()) {
#if EMBER_WITH_GLOO
    try {
      init_from_env(pg->rank_, pg->world_, pg->local_rank_, pg->local_world_, pg->server_, pg->store_,
                    pg->transport_host_, pg->timeout_);
      pg->launch_ = "env";
      // Connect the CPU transport now: a rank that never comes is an error at start-up.
      pg->cpu_ = detail::make_gloo_communicator(*pg, *pg->store_, pg->transport_host_);
    } catch (...) {
      delete pg;
      throw;
    }
#else
    // torchrun / torch.distributed.launch start N plain processes with WORLD_SIZE, RANK and
    // LOCAL_RANK set; without Gloo ember cannot join such a world, and running on as a world
    // of one would train N separate models on one GPU into one output folder.
    std::string rank = env("RANK") ? env("RANK") : "?";
    int n = env_int("WORLD_SIZE", 1);
    delete pg;
    EMBER_THROW("dist: WORLD_SIZE=", n, " and RANK=", rank,
                " are set (a torchrun / torch.distributed.launch world), but this build of ember has no Gloo to "
                "join it: install libgloo-dev and rebuild (EMBER_GLOO=ON), or launch the N processes with "
                "`mpirun -np ", n, " ...` (or srun), or unset WORLD_SIZE to run a single process");
#endif
  }
  g_group = pg;
  std::atexit(at_exit_destroy);
  return *pg;
}

bool is_initialized() {
  std::lock_guard<std::mutex> lock(g_init_mu);
  return g_group != nullptr && !g_destroyed;
}

ProcessGroup& default_group() {
  {
    std::lock_guard<std::mutex> lock(g_init_mu);
    if (g_group && !g_destroyed) return *g_group;
  }
  return init_process_group();
}

void destroy_process_group() {
  std::lock_guard<std::mutex> lock(g_init_mu);
  if (!g_group || g_destroyed) return;
  g_destroyed = true;
  ProcessGroup* pg = g_group;
  if (pg->failed_) {
    std::fprintf(stderr, "ember dist: rank %d: the process group failed; %s\n", pg->rank_,
                 pg->uses_mpi_ ? "aborting the job" : "ending this process (the launcher ends the others)");
    std::fflush(stdout);
    std::fflush(stderr);
#if EMBER_WITH_MPI
    if (pg->uses_mpi_) detail::mpi_abort(1);
#endif
    // A collective may still be in flight on a transport thread: end without unwinding.
    std::_Exit(1);
  }
  // The communicators go first (NCCL's need MPI alive for nothing, MPI's free their comm).
  // The group object itself stays allocated: references handed out stay valid (and say
  // world size etc.), only its communicators are gone.
  pg->cpu_.reset();
  pg->cuda_.clear();
  if (pg->store_) {
    // Leave through the store: the last one out removes the rendezvous file; the server
    // (rank 0) stays up until everyone has left, so no rank loses it mid-request.
    try {
      const double t = std::min(pg->timeout_, 30.0);
      if (pg->store_->add("ember/left", 1) == pg->world_) pg->store_->set("ember/all_left", "1");
      if (pg->server_ || dynamic_cast<FileStore*>(pg->store_.get())) pg->store_->wait({"ember/all_left"}, t);
      if (pg->rank_ == 0)
        if (auto* f = dynamic_cast<FileStore*>(pg->store_.get())) f->remove();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "ember dist: rank %d: leaving the %s: %s\n", pg->rank_, pg->store_->where().c_str(),
                   e.what());
    }
    pg->store_.reset();
    pg->server_.reset();
  }
#if EMBER_WITH_MPI
  if (pg->uses_mpi_) detail::mpi_finalize();
#endif
}

[[noreturn]] void abort_job(int code) {
#if EMBER_WITH_MPI
  if (detail::mpi_is_initialized()) detail::mpi_abort(code);
#endif
  std::fflush(stdout);
  std::fflush(stderr);
  std::_Exit(code);
}

ProcessGroup::~ProcessGroup() = default;

Device ProcessGroup::default_device() const {
  int n = cuda::device_count();
  if (n == 0) return kCPU;
  return Device(DeviceType::cuda, local_rank_ % n);
}

Communicator& ProcessGroup::communicator(Device device) {
  std::lock_guard<std::mutex> lock(mu_);
  EMBER_CHECK(!g_destroyed, "dist: the process group was destroyed");
  EMBER_CHECK(!failed_, "dist: rank ", rank_, ": the process group failed earlier (a collective timed out "
              "or the transport reported an error); no further collectives can run");
  if (!cpu_) {  // (the env:// launch made its Gloo communicator at init)
#if EMBER_WITH_MPI
    cpu_ = uses_mpi_ ? detail::make_mpi_communicator(*this) : detail::make_local_communicator(kCPU);
#else
    cpu_ = detail::make_local_communicator(kCPU);
#endif
  }
  if (device.is_cpu()) return *cpu_;
  EMBER_CHECK(device.index < cuda::device_count(), "dist: no communicator for ", device.str(), ": ",
              cuda::device_count(), " CUDA device(s) present");
  if (cuda_.size() <= size_t(device.index)) cuda_.resize(size_t(device.index) + 1);
  auto& c = cuda_[size_t(device.index)];
  if (!c) {
#if EMBER_WITH_NCCL
    c = detail::make_nccl_communicator(*this, device.index);
#else
    c = world_ == 1 ? detail::make_local_communicator(device) : detail::make_staged_communicator(*cpu_, device);
#endif
  }
  return *c;
}

WorkPtr ProcessGroup::allreduce(const Tensor& t, ReduceOp op) {
  EMBER_CHECK(t.defined(), "dist: allreduce of an undefined tensor");
  return communicator(t.device()).allreduce(t, op);
}
WorkPtr ProcessGroup::broadcast(const Tensor& t, int root) {
  EMBER_CHECK(t.defined(), "dist: broadcast of an undefined tensor");
  return communicator(t.device()).broadcast(t, root);
}
WorkPtr ProcessGroup::allgather(const Tensor& in, const Tensor& out) {
  EMBER_CHECK(in.defined(), "dist: allgather of an undefined tensor");
  return communicator(in.device()).allgather(in, out);
}
WorkPtr ProcessGroup::reduce_scatter(const Tensor& in, const Tensor& out, ReduceOp op) {
  EMBER_CHECK(in.defined(), "dist: reduce_scatter of an undefined tensor");
  return communicator(in.device()).reduce_scatter(in, out, op);
}
void ProcessGroup::barrier() { communicator(kCPU).barrier()->wait(); }

}  // namespace ember::dist
