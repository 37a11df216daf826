// The default process group: launch detection, MPI bootstrap, communicator per device
// (Note [Launch] in dist/process_group.h).
#include "dist/process_group.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "dist/detail.h"
#include "tensor/cuda_context.h"

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

}  // namespace

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
  // torchrun / torch.distributed.launch start N plain processes with WORLD_SIZE, RANK and
  // LOCAL_RANK (and MASTER_ADDR/PORT) set; ember cannot join such a world, and running on as a
  // world of one would train N separate models on one GPU into one output folder.
  if (!pg->uses_mpi_ && env_int("WORLD_SIZE", 1) > 1) {
    std::string rank = env("RANK") ? env("RANK") : "?";
    int n = env_int("WORLD_SIZE", 1);
    delete pg;
    EMBER_THROW("dist: WORLD_SIZE=", n, " and RANK=", rank,
                " are set (a torchrun / torch.distributed.launch world), which ember cannot join; "
                "launch the N processes with `mpirun -np ", n, " ...` (or srun) instead, or unset WORLD_SIZE to "
                "run a single process");
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
#if EMBER_WITH_MPI
  if (pg->uses_mpi_ && pg->failed_) {
    std::fprintf(stderr, "ember dist: rank %d: the process group failed; aborting the job\n", pg->rank_);
    std::fflush(stderr);
    detail::mpi_abort(1);
  }
#endif
  // The communicators go first (NCCL's need MPI alive for nothing, MPI's free their comm).
  // The group object itself stays allocated: references handed out stay valid (and say
  // world size etc.), only its communicators are gone.
  pg->cpu_.reset();
  pg->cuda_.clear();
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
  if (!cpu_) {
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
