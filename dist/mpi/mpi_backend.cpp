// MPI: the launch bootstrap (world, node-local ranks) and the CPU communicator, built on
// MPI's non-blocking collectives (MPI_Iallreduce, ...). Work handles poll MPI_Test against
// the group's deadline (Note [Collective timeout] in dist/communicator.h).
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdio>
#include <thread>

#include "autograd/grad_mode.h"
#include "dist/detail.h"
#include "dist/process_group.h"
#include "core/half.h"

namespace ember::dist::detail {

namespace {

using Clock = std::chrono::steady_clock;

std::string mpi_error_string(int code) {
  char buf[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(code, buf, &len) != MPI_SUCCESS) return "MPI error " + std::to_string(code);
  return std::string(buf, size_t(len));
}

// ---- 16-bit floats: a 2-byte type and sum operations that add in float.
MPI_Datatype g_half_type = MPI_DATATYPE_NULL;
MPI_Op g_half_sum = MPI_OP_NULL, g_bf16_sum = MPI_OP_NULL;

template <class T>
void sum16(void* in, void* inout, int* len, MPI_Datatype*) {
  auto* a = static_cast<const T*>(in);
  auto* b = static_cast<T*>(inout);
  for (int i = 0; i < *len; ++i) b[i] = T(float(a[i]) + float(b[i]));
}

void create_types() {
  if (g_half_type != MPI_DATATYPE_NULL) return;
  MPI_Type_contiguous(2, MPI_BYTE, &g_half_type);
  MPI_Type_commit(&g_half_type);
  MPI_Op_create(&sum16<Half>, /*commute=*/1, &g_half_sum);
  MPI_Op_create(&sum16<BFloat16>, 1, &g_bf16_sum);
}

MPI_Datatype mpi_type(DType t, const char* op) {
  switch (t) {
    case DType::f32: return MPI_FLOAT;
    case DType::f64: return MPI_DOUBLE;
    case DType::f16: case DType::bf16: return g_half_type;
    case DType::i32: return MPI_INT32_T;
    case DType::i64: return MPI_INT64_T;
    case DType::u8: case DType::b8: return MPI_UINT8_T;
  }
  throw Error(std::string("dist: ") + op + ": unsupported dtype");
}

MPI_Op mpi_sum(DType t, const char* op) {
  switch (t) {
    case DType::f16: return g_half_sum;
    case DType::bf16: return g_bf16_sum;
    case DType::b8: throw Error(std::string("dist: ") + op + ": cannot sum bool tensors; convert to u8 or i64");
    default: return MPI_SUM;
  }
}

int count_of(const Tensor& t, const char* op) {
  if (t.numel() > INT_MAX)
    throw Error(std::string("dist: ") + op + ": " + std::to_string(t.numel()) +
                " elements is more than the MPI backend's limit of 2^31-1 per call; split the tensor");
  return int(t.numel());
}

void check_reduce(const Tensor& t, ReduceOp op, const char* name) {
  if (op == ReduceOp::average && !is_floating(t.dtype()))
    throw Error(std::string("dist: ") + name + "(average) needs a floating dtype, got " + dtype_name(t.dtype()));
}

class MpiWork : public Work {
 public:
  MpiWork(ProcessGroup& group, std::string name, std::string what, TensorList keep)
      : group_(group), name_(std::move(name)), what_(std::move(what)), keep_(std::move(keep)),
        start_(Clock::now()) {}
  ~MpiWork() override {
    // A request never completed stays with MPI (freeing it would let MPI write into memory
    // we no longer hold); the group is failed or the caller dropped it, and MPI_Abort or
    // MPI_Finalize settles it.
  }
  MPI_Request* request() { return &req_; }
  void on_done(std::function<void()> f) { done_fn_ = std::move(f); }

  bool test() override {
    if (done_) return true;
    int flag = 0;
    int rc = MPI_Test(&req_, &flag, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS) {
      group_.mark_failed();
      throw Error("dist: rank " + std::to_string(group_.rank()) + " of " + std::to_string(group_.world_size()) +
                  ": " + what_ + " failed in MPI: " + mpi_error_string(rc));
    }
    if (flag) {
      done_ = true;
      if (done_fn_) done_fn_();
      keep_.clear();
    }
    return done_;
  }

  void wait() override {
    const auto deadline = start_ + std::chrono::duration_cast<Clock::duration>(
                                       std::chrono::duration<double>(group_.timeout_seconds()));
    // MPI's non-blocking collectives progress only inside MPI calls (a large message takes
    // many rounds), so poll often: spin for a while, yielding the core to a rank that still
    // computes, then poll every 50 us (cheap on the CPU, a small delay per round).
    const auto spin_until = Clock::now() + std::chrono::milliseconds(100);
    while (!test()) {
      auto now = Clock::now();
      if (now > deadline) {
        group_.mark_failed();
        char secs[32];
        std::snprintf(secs, sizeof secs, "%g", group_.timeout_seconds());
        throw TimeoutError("dist: rank " + std::to_string(group_.rank()) + " of " +
                           std::to_string(group_.world_size()) + ": " + what_ + " did not complete within " +
                           secs + " s (EMBER_DIST_TIMEOUT); another rank died, stalled, or issued "
                           "different collectives");
      }
      if (now < spin_until) {
        std::this_thread::yield();
      } else {
        std::this_thread::sleep_for(std::chrono::microseconds(50));
      }
    }
  }
  std::string name() const override { return name_; }

 private:
  ProcessGroup& group_;
  std::string name_, what_;
  TensorList keep_;
  Clock::time_point start_;
  MPI_Request req_ = MPI_REQUEST_NULL;
  bool done_ = false;
  std::function<void()> done_fn_;
};

class MpiCommunicator : public Communicator {
 public:
  explicit MpiCommunicator(ProcessGroup& group) : group_(group) {
    create_types();
    int rc = MPI_Comm_dup(MPI_COMM_WORLD, &comm_);
    if (rc != MPI_SUCCESS) throw Error("dist: MPI_Comm_dup failed: " + mpi_error_string(rc));
    MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
  }
  ~MpiCommunicator() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized && !group_.failed()) MPI_Comm_free(&comm_);
  }
  int rank() const override { return rank_; }
  int world_size() const override { return size_; }
  std::string backend() const override { return "mpi"; }

  WorkPtr allreduce(const Tensor& t, ReduceOp op) override {
    check_tensor(t, kCPU, "allreduce", "input");
    check_reduce(t, op, "allreduce");
    auto w = make("allreduce", describe(std::string("allreduce(") + reduce_op_name(op) + ")", t), {t});
    check(MPI_Iallreduce(MPI_IN_PLACE, t.data_ptr(), count_of(t, "allreduce"), mpi_type(t.dtype(), "allreduce"),
                         mpi_sum(t.dtype(), "allreduce"), comm_, w->request()),
          "allreduce");
    if (op == ReduceOp::average) w->on_done(divide_by_world(t));
    return w;
  }

  WorkPtr broadcast(const Tensor& t, int root) override {
    check_tensor(t, kCPU, "broadcast", "input");
    check_root(root);
    auto w = make("broadcast", describe("broadcast from rank " + std::to_string(root), t), {t});
    check(MPI_Ibcast(t.data_ptr(), count_of(t, "broadcast"), mpi_type(t.dtype(), "broadcast"), root, comm_,
                     w->request()),
          "broadcast");
    return w;
  }

  WorkPtr allgather(const Tensor& in, const Tensor& out) override {
    check_tensor(in, kCPU, "allgather", "input");
    check_tensor(out, kCPU, "allgather", "output");
    check_sizes(out, in, "allgather");
    auto w = make("allgather", describe("allgather", in), {in, out});
    MPI_Datatype dt = mpi_type(in.dtype(), "allgather");
    int n = count_of(in, "allgather");
    check(MPI_Iallgather(in.data_ptr(), n, dt, out.data_ptr(), n, dt, comm_, w->request()), "allgather");
    return w;
  }

  WorkPtr reduce_scatter(const Tensor& in, const Tensor& out, ReduceOp op) override {
    check_tensor(in, kCPU, "reduce_scatter", "input");
    check_tensor(out, kCPU, "reduce_scatter", "output");
    check_sizes(in, out, "reduce_scatter");
    check_reduce(out, op, "reduce_scatter");
    auto w = make("reduce_scatter", describe(std::string("reduce_scatter(") + reduce_op_name(op) + ")", in),
                  {in, out});
    check(MPI_Ireduce_scatter_block(in.data_ptr(), out.data_ptr(), count_of(out, "reduce_scatter"),
                                    mpi_type(in.dtype(), "reduce_scatter"), mpi_sum(in.dtype(), "reduce_scatter"),
                                    comm_, w->request()),
          "reduce_scatter");
    if (op == ReduceOp::average) w->on_done(divide_by_world(out));
    return w;
  }

  WorkPtr barrier() override {
    auto w = make("barrier", "barrier", {});
    check(MPI_Ibarrier(comm_, w->request()), "barrier");
    return w;
  }

 private:
  std::shared_ptr<MpiWork> make(const char* name, const std::string& what, TensorList keep) {
    return std::make_shared<MpiWork>(group_, name, what, std::move(keep));
  }
  void check(int rc, const char* op) {
    if (rc == MPI_SUCCESS) return;
    group_.mark_failed();
    throw Error("dist: rank " + std::to_string(rank_) + ": starting " + op + " failed in MPI: " + mpi_error_string(rc));
  }
  void check_root(int root) const {
    if (root < 0 || root >= size_)
      throw Error("dist: broadcast root " + std::to_string(root) + " is not a rank of a world of " +
                  std::to_string(size_));
  }
  void check_sizes(const Tensor& big, const Tensor& small, const char* op) const {
    if (big.dtype() != small.dtype())
      throw Error(std::string("dist: ") + op + ": input and output dtypes differ (" + dtype_name(big.dtype()) +
                  " vs " + dtype_name(small.dtype()) + ")");
    if (big.numel() != small.numel() * size_)
      throw Error(std::string("dist: ") + op + ": expected " + std::to_string(small.numel() * size_) +
                  " elements (world size " + std::to_string(size_) + " x " + std::to_string(small.numel()) +
                  "), got " + std::to_string(big.numel()));
  }
  std::function<void()> divide_by_world(const Tensor& t) {
    int n = size_;
    return [t, n] {
      NoGradGuard no_grad;
      Tensor d = t.detach();
      d.mul_(1.0 / double(n));
    };
  }

  ProcessGroup& group_;
  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1;
};

}  // namespace

MpiWorld mpi_init() {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    int provided = 0;
    int rc = MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
    if (rc != MPI_SUCCESS) throw Error("dist: MPI_Init_thread failed: " + mpi_error_string(rc));
  }
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  MpiWorld w;
  MPI_Comm_rank(MPI_COMM_WORLD, &w.rank);
  MPI_Comm_size(MPI_COMM_WORLD, &w.size);
  MPI_Comm node;
  int rc = MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, w.rank, MPI_INFO_NULL, &node);
  if (rc != MPI_SUCCESS) throw Error("dist: MPI_Comm_split_type failed: " + mpi_error_string(rc));
  MPI_Comm_rank(node, &w.local_rank);
  MPI_Comm_size(node, &w.local_size);
  MPI_Comm_free(&node);
  return w;
}

bool mpi_is_initialized() {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  return initialized && !finalized;
}

void mpi_finalize() {
  if (!mpi_is_initialized()) return;
  if (g_half_type != MPI_DATATYPE_NULL) {
    MPI_Op_free(&g_half_sum);
    MPI_Op_free(&g_bf16_sum);
    MPI_Type_free(&g_half_type);
  }
  MPI_Finalize();
}

[[noreturn]] void mpi_abort(int code) {
  std::fflush(stdout);
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code);  // MPI_Abort does not return; this is for the compiler
}

void mpi_broadcast_bytes(void* data, size_t bytes, int root, double timeout_seconds) {
  MPI_Request req;
  int rc = MPI_Ibcast(data, int(bytes), MPI_BYTE, root, MPI_COMM_WORLD, &req);
  if (rc != MPI_SUCCESS) throw Error("dist: broadcast of the NCCL id failed in MPI: " + mpi_error_string(rc));
  auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout_seconds));
  for (;;) {
    int flag = 0;
    rc = MPI_Test(&req, &flag, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS) throw Error("dist: broadcast of the NCCL id failed in MPI: " + mpi_error_string(rc));
    if (flag) return;
    if (Clock::now() > deadline)
      throw TimeoutError("dist: the broadcast of the NCCL unique id from rank " + std::to_string(root) +
                         " did not complete within the timeout (EMBER_DIST_TIMEOUT)");
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
}

std::unique_ptr<Communicator> make_mpi_communicator(ProcessGroup& group) {
  return std::make_unique<MpiCommunicator>(group);
}

}  // namespace ember::dist::detail
