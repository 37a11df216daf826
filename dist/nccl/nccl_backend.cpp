// NCCL: collectives on CUDA tensors. Note [Communication stream]: each device's
// communicator owns a non-blocking stream. A collective records an event on the compute
// stream (cuda::current_stream) and makes the communication stream wait for it, so NCCL
// reads the tensor only after the kernels that wrote it; it then records a `done` event
// that Work::wait() makes the compute stream wait for. No host synchronization anywhere.
// The Work keeps its tensors alive until that wait is queued: the caching allocator
// (Note [Streams] in core/cuda/allocator.cpp) may hand a freed block to later compute
// work only, which the wait orders after the collective. A watchdog thread polls the
// `done` events against the timeout (Note [Collective timeout] in dist/communicator.h).
#include <cuda_runtime_api.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <list>
#include <mutex>
#include <thread>

#include "dist/detail.h"
#include "dist/nccl/nccl_check.h"
#include "dist/process_group.h"
#include "core/cuda/check.h"
#include "core/cuda/stream.h"
#include "core/host_sync.h"

// A collective call on the communicator, completed under the timeout (enqueued() below).
#define ENQUEUED(expr) enqueued((expr), #expr, __LINE__)

namespace ember::dist::detail {

namespace {

using Clock = std::chrono::steady_clock;

ncclDataType_t nccl_type(DType t, const char* op) {
  switch (t) {
    case DType::f32: return ncclFloat32;
    case DType::f64: return ncclFloat64;
    case DType::f16: return ncclFloat16;
    case DType::bf16: return ncclBfloat16;
    case DType::i32: return ncclInt32;
    case DType::i64: return ncclInt64;
    case DType::u8: case DType::b8: return ncclUint8;
  }
  throw Error(std::string("dist: ") + op + ": unsupported dtype");
}

ncclRedOp_t nccl_op(const Tensor& t, ReduceOp op, const char* name) {
  if (t.dtype() == DType::b8) throw Error(std::string("dist: ") + name + ": cannot reduce bool tensors");
  if (op == ReduceOp::sum) return ncclSum;
  if (!is_floating(t.dtype()))
    throw Error(std::string("dist: ") + name + "(average) needs a floating dtype, got " + dtype_name(t.dtype()));
  return ncclAvg;
}

/// One collective in flight, shared by its Work and the watchdog.
struct Pending {
  cudaEvent_t done = nullptr;
  Clock::time_point deadline;
  std::string what;
  ~Pending() {
    if (done) cudaEventDestroy(done);  // safe while pending: released once it completes
  }
};

class NcclCommunicator;

class NcclWork : public Work {
 public:
  NcclWork(std::shared_ptr<Pending> p, int device, std::string name, TensorList keep, bool host_wait,
           double timeout)
      : p_(std::move(p)), device_(device), name_(std::move(name)), keep_(std::move(keep)),
        host_wait_(host_wait), timeout_(timeout) {}
  ~NcclWork() override {
    if (!queued_) {
      // Dropped without wait(): still order later compute work (which may reuse the
      // tensors' blocks) after the collective. Destructors must not throw.
      try {
        cuda::DeviceGuard g(device_);
        cudaStreamWaitEvent(cuda::current_stream(device_), p_->done, 0);
      } catch (...) {
      }
    }
  }
  void wait() override {
    if (!queued_) {
      cuda::DeviceGuard g(device_);
      EMBER_CUDA_CHECK(cudaStreamWaitEvent(cuda::current_stream(device_), p_->done, 0));
      queued_ = true;
      keep_.clear();
    }
    if (host_wait_) {  // barrier: the host itself waits, with the deadline
      ember::detail::count_host_sync();
      while (!test()) {
        if (Clock::now() > p_->deadline) {
          char secs[32];
          std::snprintf(secs, sizeof secs, "%g", timeout_);
          throw TimeoutError("dist: " + p_->what + " did not complete within " + secs + " s (EMBER_DIST_TIMEOUT)");
        }
        std::this_thread::sleep_for(std::chrono::microseconds(50));
      }
    }
  }
  bool test() override {
    cudaError_t e = cudaEventQuery(p_->done);
    if (e == cudaSuccess) return true;
    if (e == cudaErrorNotReady) return false;
    cudaGetLastError();
    throw Error("dist: " + p_->what + ": " + cudaGetErrorString(e));
  }
  std::string name() const override { return name_; }

 private:
  std::shared_ptr<Pending> p_;
  int device_;
  std::string name_;
  TensorList keep_;
  bool host_wait_;
  double timeout_;
  bool queued_ = false;
};

class NcclCommunicator : public Communicator {
 public:
  NcclCommunicator(ProcessGroup& group, int device) : group_(group), device_(device) {
    rank_ = group.rank();
    size_ = group.world_size();
    ncclUniqueId id;
    if (rank_ == 0) EMBER_NCCL_CHECK(ncclGetUniqueId(&id));
    if (Store* store = group.store()) {
      // The env:// launch: rank 0 puts the id in the job's store (a world of one too, so
      // that the GPU check exercises this path on one GPU).
      const std::string key = "ember/nccl_id/" + std::to_string(group.next_bootstrap_id());
      if (rank_ == 0) {
        store->set(key, std::string(reinterpret_cast<const char*>(&id), sizeof id));
      } else {
        std::string v = store->get(key);
        if (v.size() != sizeof id)
          throw Error("dist: the NCCL unique id under '" + key + "' in the " + store->where() + " has " +
                      std::to_string(v.size()) + " bytes, expected " + std::to_string(sizeof id));
        std::memcpy(&id, v.data(), sizeof id);
      }
    } else if (size_ > 1) {
#if EMBER_WITH_MPI
      mpi_broadcast_bytes(&id, sizeof id, 0, group.timeout_seconds());
#else
      throw Error("dist: NCCL with several processes needs MPI or the env:// launch (a store) to share its "
                  "unique id");
#endif
    }
    cuda::DeviceGuard g(device_);
    init_comm(id);
    int lo = 0, hi = 0;
    EMBER_CUDA_CHECK(cudaDeviceGetStreamPriorityRange(&lo, &hi));
    // Highest priority: a bucket's allreduce should not queue behind backward's kernels.
    EMBER_CUDA_CHECK(cudaStreamCreateWithPriority(&stream_, cudaStreamNonBlocking, hi));
    EMBER_CUDA_CHECK(cudaMalloc(&barrier_buf_, sizeof(float)));
    watchdog_ = std::thread([this] { watch(); });
  }

  ~NcclCommunicator() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (watchdog_.joinable()) watchdog_.join();
    cuda::DeviceGuard g(device_);
    // Teardown can run at exit after the CUDA runtime: ignore errors, never throw. A
    // non-blocking communicator is finalized first; one that does not quiesce within the
    // timeout is aborted rather than waited for.
    if (comm_) {
      ncclResult_t r = ncclCommFinalize(comm_);
      bool quiet = (r == ncclSuccess || r == ncclInProgress) &&
                   poll_comm(deadline_in(group_.timeout_seconds())) == ncclSuccess;
      if (quiet) {
        ncclCommDestroy(comm_);
      } else {
        ncclCommAbort(comm_);
      }
    }
    if (stream_) cudaStreamDestroy(stream_);
    if (barrier_buf_) cudaFree(barrier_buf_);
    cudaGetLastError();
  }

  int rank() const override { return rank_; }
  int world_size() const override { return size_; }
  std::string backend() const override { return "nccl"; }

  WorkPtr allreduce(const Tensor& t, ReduceOp op) override {
    check_tensor(t, dev(), "allreduce", "input");
    ncclRedOp_t rop = nccl_op(t, op, "allreduce");
    ncclDataType_t dt = nccl_type(t.dtype(), "allreduce");
    return launch("allreduce", describe(std::string("allreduce(") + reduce_op_name(op) + ")", t), {t}, false,
                  [&](cudaStream_t s) {
                    ENQUEUED(ncclAllReduce(t.data_ptr(), t.data_ptr(), size_t(t.numel()), dt, rop, comm_, s));
                  });
  }

  WorkPtr broadcast(const Tensor& t, int root) override {
    check_tensor(t, dev(), "broadcast", "input");
    if (root < 0 || root >= size_)
      throw Error("dist: broadcast root " + std::to_string(root) + " is not a rank of a world of " + std::to_string(size_));
    ncclDataType_t dt = nccl_type(t.dtype(), "broadcast");
    return launch("broadcast", describe("broadcast from rank " + std::to_string(root), t), {t}, false,
                  [&](cudaStream_t s) {
                    ENQUEUED(ncclBroadcast(t.data_ptr(), t.data_ptr(), size_t(t.numel()), dt, root, comm_, s));
                  });
  }

  WorkPtr allgather(const Tensor& in, const Tensor& out) override {
    check_tensor(in, dev(), "allgather", "input");
    check_tensor(out, dev(), "allgather", "output");
    check_sizes(out, in, "allgather");
    ncclDataType_t dt = nccl_type(in.dtype(), "allgather");
    return launch("allgather", describe("allgather", in), {in, out}, false, [&](cudaStream_t s) {
      ENQUEUED(ncclAllGather(in.data_ptr(), out.data_ptr(), size_t(in.numel()), dt, comm_, s));
    });
  }

  WorkPtr reduce_scatter(const Tensor& in, const Tensor& out, ReduceOp op) override {
    check_tensor(in, dev(), "reduce_scatter", "input");
    check_tensor(out, dev(), "reduce_scatter", "output");
    check_sizes(in, out, "reduce_scatter");
    ncclRedOp_t rop = nccl_op(out, op, "reduce_scatter");
    ncclDataType_t dt = nccl_type(in.dtype(), "reduce_scatter");
    return launch("reduce_scatter", describe(std::string("reduce_scatter(") + reduce_op_name(op) + ")", in),
                  {in, out}, false, [&](cudaStream_t s) {
                    ENQUEUED(
                        ncclReduceScatter(in.data_ptr(), out.data_ptr(), size_t(out.numel()), dt, rop, comm_, s));
                  });
  }

  WorkPtr barrier() override {
    return launch("barrier", "barrier", {}, true, [&](cudaStream_t s) {
      ENQUEUED(ncclAllReduce(barrier_buf_, barrier_buf_, 1, ncclFloat32, ncclSum, comm_, s));
    });
  }

 private:
  Device dev() const { return Device(DeviceType::cuda, device_); }

  static Clock::time_point deadline_in(double seconds) {
    return Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  }

  std::string where() const {
    return "rank " + std::to_string(rank_) + " of " + std::to_string(size_) + " on cuda:" + std::to_string(device_);
  }

  // The communicator's state once it is no longer ncclInProgress, or ncclInProgress itself
  // when `deadline` passed first.
  ncclResult_t poll_comm(Clock::time_point deadline) {
    for (;;) {
      ncclResult_t state = ncclInProgress;
      ncclResult_t q = ncclCommGetAsyncError(comm_, &state);
      if (q != ncclSuccess) return q;
      if (state != ncclInProgress) return state;
      if (Clock::now() > deadline) return ncclInProgress;
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  }

  std::string secs() const {
    char b[32];
    std::snprintf(b, sizeof b, "%g", group_.timeout_seconds());
    return b;
  }

  // Non-blocking creation (config.blocking = 0) polled under the group's timeout: a rank
  // that never arrives ends in a TimeoutError here instead of a hang before the watchdog
  // exists. The communicator is aborted on every failure, so nothing leaks or stays stuck.
  void init_comm(const ncclUniqueId& id) {
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    ncclResult_t r = ncclCommInitRankConfig(&comm_, size_, id, rank_, &config);
    if (r == ncclSuccess || r == ncclInProgress) r = poll_comm(deadline_in(group_.timeout_seconds()));
    if (r == ncclSuccess) return;
    std::string why = r == ncclInProgress
                          ? "did not complete within " + secs() + " s (EMBER_DIST_TIMEOUT): a rank is missing or stalled"
                          : detail::nccl_error_text(r, "ncclCommInitRankConfig", __FILE__, __LINE__);
    if (comm_) ncclCommAbort(comm_);
    comm_ = nullptr;
    std::string msg = "dist: " + where() + ": NCCL communicator creation " + why;
    group_.mark_failed();  // the other ranks may be stuck in it: end the job, not MPI_Finalize
    if (r == ncclInProgress) throw TimeoutError(msg);
    throw Error(msg);
  }

  // A collective on a non-blocking communicator may return ncclInProgress while NCCL
  // finishes enqueueing it (connection setup); no other NCCL call may come before it is done.
  void enqueued(ncclResult_t r, const char* expr, int line) {
    if (r == ncclInProgress) r = poll_comm(deadline_in(group_.timeout_seconds()));
    if (r == ncclSuccess) return;
    if (r == ncclInProgress)
      fail("dist: " + where() + ": NCCL could not enqueue " + expr + " within " + secs() + " s (EMBER_DIST_TIMEOUT)");
    throw Error("dist: " + where() + ": " + detail::nccl_error_text(r, expr, __FILE__, line));
  }

  void check_sizes(const Tensor& big, const Tensor& small, const char* op) const {
    if (big.dtype() != small.dtype())
      throw Error(std::string("dist: ") + op + ": input and output dtypes differ");
    if (big.numel() != small.numel() * size_)
      throw Error(std::string("dist: ") + op + ": expected " + std::to_string(small.numel() * size_) +
                  " elements (world size x " + std::to_string(small.numel()) + "), got " +
                  std::to_string(big.numel()));
  }

  template <class F>
  WorkPtr launch(const char* name, const std::string& what, TensorList keep, bool host_wait, F&& call) {
    cuda::DeviceGuard g(device_);
    cudaStream_t compute = cuda::current_stream(device_);
    cudaEvent_t ready;
    EMBER_CUDA_CHECK(cudaEventCreateWithFlags(&ready, cudaEventDisableTiming));
    EMBER_CUDA_CHECK(cudaEventRecord(ready, compute));
    EMBER_CUDA_CHECK(cudaStreamWaitEvent(stream_, ready, 0));
    EMBER_CUDA_CHECK(cudaEventDestroy(ready));
    call(stream_);
    auto p = std::make_shared<Pending>();
    EMBER_CUDA_CHECK(cudaEventCreateWithFlags(&p->done, cudaEventDisableTiming));
    EMBER_CUDA_CHECK(cudaEventRecord(p->done, stream_));
    p->what = "rank " + std::to_string(rank_) + " of " + std::to_string(size_) + ": NCCL " + what + " on cuda:" +
              std::to_string(device_);
    p->deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                     std::chrono::duration<double>(group_.timeout_seconds()));
    {
      std::lock_guard<std::mutex> lock(mu_);
      pending_.push_back(p);
    }
    return std::make_shared<NcclWork>(p, device_, name, std::move(keep), host_wait, group_.timeout_seconds());
  }

  // The watchdog (Note [Collective timeout]): the host may be blocked in a CUDA call behind
  // a stalled collective, where no exception can reach it; end the process instead.
  void watch() {
    cudaSetDevice(device_);
    std::unique_lock<std::mutex> lock(mu_);
    while (!stop_) {
      cv_.wait_for(lock, std::chrono::milliseconds(100));
      auto now = Clock::now();
      for (auto it = pending_.begin(); it != pending_.end();) {
        cudaError_t e = cudaEventQuery((*it)->done);
        if (e == cudaSuccess) {
          it = pending_.erase(it);
          continue;
        }
        if (e == cudaErrorNotReady && now <= (*it)->deadline) {
          ++it;
          continue;
        }
        char secs[32];
        std::snprintf(secs, sizeof secs, "%g", group_.timeout_seconds());
        std::string why = e == cudaErrorNotReady
                              ? std::string("did not complete within ") + secs + " s (EMBER_DIST_TIMEOUT)"
                              : std::string("failed: ") + cudaGetErrorString(e);
        fail("dist: " + (*it)->what + " " + why);
      }
      ncclResult_t async = ncclSuccess;
      if (ncclCommGetAsyncError(comm_, &async) == ncclSuccess && async != ncclSuccess && async != ncclInProgress)
        fail("dist: rank " + std::to_string(rank_) + ": NCCL reported an asynchronous error on cuda:" +
             std::to_string(device_) + ": " + ncclGetErrorString(async));
    }
  }

  [[noreturn]] void fail(const std::string& msg) {
    std::fprintf(stderr, "%s; another rank died, stalled, or issued different collectives. Aborting.\n",
                 msg.c_str());
    std::fflush(stderr);
    group_.mark_failed();
    ncclCommAbort(comm_);
    std::abort();
  }

  ProcessGroup& group_;
  int device_;
  int rank_ = 0, size_ = 1;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
  void* barrier_buf_ = nullptr;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::list<std::shared_ptr<Pending>> pending_;
  std::thread watchdog_;
};
#undef ENQUEUED

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(ProcessGroup& group, int device) {
  return std::make_unique<NcclCommunicator>(group, device);
}

}  // namespace ember::dist::detail
