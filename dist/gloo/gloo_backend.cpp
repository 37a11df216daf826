// Gloo: CPU collectives over TCP for a job launched without MPI (Note [Launch] in
// dist/process_group.h). The peers exchange their addresses through the job's store
// (dist/store.h) behind Gloo's rendezvous::Store interface and connect a full mesh.
//
// Note [Gloo worker]: Gloo's collectives block the calling thread. Each communicator runs
// them, in the order they were issued, on one worker thread, so that allreduce() returns a
// Work at once (DDP overlaps bucket allreduces with backward) and every rank runs the same
// sequence. Gloo enforces the group's timeout itself (its context timeout): a collective
// that a peer never joins ends in gloo::IoException, reported by wait() as
// dist::TimeoutError; a peer that dies closes its sockets, which fails the collective at
// once. Either way the group is marked failed, later collectives are refused, and
// destroy_process_group() ends the process without unwinding the communicator. wait() itself also gives up a little after the timeout, should Gloo not.
#include <gloo/allgather.h>
#include <gloo/allreduce.h>
#include <gloo/barrier.h>
#include <gloo/broadcast.h>
#include <gloo/rendezvous/context.h>
#include <gloo/rendezvous/store.h>
#include <gloo/transport/tcp/device.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

#include "autograd/grad_mode.h"
#include "dist/detail.h"
#include "dist/process_group.h"
#include "dist/store.h"
#include "core/half.h"

namespace ember::dist::detail {

namespace {

using Clock = std::chrono::steady_clock;

std::string secs(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", s);
  return buf;
}

/// Gloo's rendezvous over ember's store, its keys under `prefix`.
class StoreAdapter : public gloo::rendezvous::Store {
 public:
  StoreAdapter(dist::Store& store, std::string prefix) : store_(store), prefix_(std::move(prefix)) {}
  void set(const std::string& key, const std::vector<char>& data) override {
    store_.set(prefix_ + key, std::string(data.begin(), data.end()));
  }
  std::vector<char> get(const std::string& key) override {
    std::string v = store_.get(prefix_ + key);
    return std::vector<char>(v.begin(), v.end());
  }
  void wait(const std::vector<std::string>& keys) override { wait(keys, std::chrono::milliseconds(0)); }
  void wait(const std::vector<std::string>& keys, const std::chrono::milliseconds& timeout) override {
    std::vector<std::string> full;
    for (const auto& k : keys) full.push_back(prefix_ + k);
    store_.wait(full, double(timeout.count()) / 1000.0);
  }

 private:
  dist::Store& store_;
  std::string prefix_;
};

template <class T>
void sum_into(void* c, const void* a, const void* b, size_t n) {
  auto* out = static_cast<T*>(c);
  auto* x = static_cast<const T*>(a);
  auto* y = static_cast<const T*>(b);
  for (size_t i = 0; i < n; ++i) out[i] = T(x[i] + y[i]);
}
template <class T>
void sum16_into(void* c, const void* a, const void* b, size_t n) {  // 16-bit floats add in float
  auto* out = static_cast<T*>(c);
  auto* x = static_cast<const T*>(a);
  auto* y = static_cast<const T*>(b);
  for (size_t i = 0; i < n; ++i) out[i] = T(float(x[i]) + float(y[i]));
}

/// Calls f(T*) with the tensor's data as its C++ element type, and the matching sum.
template <class F>
void with_type(const Tensor& t, const char* op, F&& f) {
  void* p = t.data_ptr();
  switch (t.dtype()) {
    case DType::f32: return f(static_cast<float*>(p), &sum_into<float>);
    case DType::f64: return f(static_cast<double*>(p), &sum_into<double>);
    case DType::f16: return f(static_cast<Half*>(p), &sum16_into<Half>);
    case DType::bf16: return f(static_cast<BFloat16*>(p), &sum16_into<BFloat16>);
    case DType::i32: return f(static_cast<int32_t*>(p), &sum_into<int32_t>);
    case DType::i64: return f(static_cast<int64_t*>(p), &sum_into<int64_t>);
    case DType::u8: return f(static_cast<uint8_t*>(p), &sum_into<uint8_t>);
    case DType::b8: return f(static_cast<uint8_t*>(p), nullptr);
  }
  throw Error(std::string("dist: ") + op + ": unsupported dtype");
}

void check_reduce(const Tensor& t, ReduceOp op, const char* name) {
  if (t.dtype() == DType::b8)
    throw Error(std::string("dist: ") + name + ": cannot sum bool tensors; convert to u8 or i64");
  if (op == ReduceOp::average && !is_floating(t.dtype()))
    throw Error(std::string("dist: ") + name + "(average) needs a floating dtype, got " + dtype_name(t.dtype()));
}

void divide(const Tensor& t, int n) {
  NoGradGuard no_grad;
  Tensor d = t.detach();
  d.mul_(1.0 / double(n));
}

class GlooWork : public Work {
 public:
  GlooWork(ProcessGroup& group, std::string name, std::string what, TensorList keep)
      : group_(group), name_(std::move(name)), what_(std::move(what)), keep_(std::move(keep)), start_(Clock::now()) {}

  /// Called by the worker: the outcome (an empty error: success).
  void finish(std::string error, bool timed_out) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      done_ = true;
      error_ = std::move(error);
      timed_out_ = timed_out;
    }
    cv_.notify_all();
  }
  const std::string& what() const { return what_; }

  void wait() override {
    std::unique_lock<std::mutex> lock(mu_);
    const double t = group_.timeout_seconds();
    // Gloo times the collective out itself; this is the backstop (Note [Gloo worker]).
    const auto deadline =
        start_ + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(t + 10));
    if (!cv_.wait_until(lock, deadline, [&] { return done_; })) {
      group_.mark_failed();
      throw TimeoutError(prefix() + what_ + " did not complete within " + secs(t) +
                         " s (EMBER_DIST_TIMEOUT); another rank died, stalled, or issued different collectives");
    }
    keep_.clear();
    raise();
  }
  bool test() override {
    std::lock_guard<std::mutex> lock(mu_);
    if (done_) raise();
    return done_;
  }
  std::string name() const override { return name_; }

 private:
  std::string prefix() const {
    return "dist: rank " + std::to_string(group_.rank()) + " of " + std::to_string(group_.world_size()) + ": ";
  }
  void raise() {
    if (error_.empty()) return;
    if (timed_out_) throw TimeoutError(error_);
    throw Error(error_);
  }
  ProcessGroup& group_;
  std::string name_, what_;
  TensorList keep_;
  Clock::time_point start_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false, timed_out_ = false;
  std::string error_;
};

class GlooCommunicator : public Communicator {
 public:
  GlooCommunicator(ProcessGroup& group, dist::Store& store, const std::string& host)
      : group_(group), rank_(group.rank()), size_(group.world_size()) {
    const auto timeout = std::chrono::milliseconds(int64_t(group.timeout_seconds() * 1000));
    try {
      gloo::transport::tcp::attr attr;
      if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"); ifname && *ifname) attr.iface = ifname;
      else if (!host.empty()) attr.hostname = host;  // else Gloo resolves this machine's hostname
      device_ = gloo::transport::tcp::CreateDevice(attr);
      auto ctx = std::make_shared<gloo::rendezvous::Context>(rank_, size_);
      ctx->setTimeout(timeout);
      StoreAdapter adapter(store, "gloo/cpu/");
      ctx->connectFullMesh(adapter, device_);
      context_ = ctx;
    } catch (const std::exception& e) {
      throw Error("dist: rank " + std::to_string(rank_) + " of " + std::to_string(size_) +
                  ": connecting Gloo's TCP transport (through the " + store.where() + ") failed: " + e.what());
    }
    worker_ = std::thread([this] { run(); });
  }

  ~GlooCommunicator() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    // Bounded: a collective inside Gloo ends by its timeout at the latest, and after a
    // failure the rest of the queue is dropped at once. (A failed group never gets here:
    // destroy_process_group() ends the process first, Note [Gloo worker].)
    if (worker_.joinable()) worker_.join();
  }

  int rank() const override { return rank_; }
  int world_size() const override { return size_; }
  std::string backend() const override { return "gloo"; }

  WorkPtr allreduce(const Tensor& t, ReduceOp op) override {
    check_tensor(t, kCPU, "allreduce", "input");
    check_reduce(t, op, "allreduce");
    auto w = make("allreduce", describe(std::string("allreduce(") + reduce_op_name(op) + ")", t), {t});
    int n = size_;
    return enqueue(w, [this, t, op, n] {
      if (t.numel() == 0) return;
      with_type(t, "allreduce", [&](auto* p, gloo::AllreduceOptions::Func fn) {
        using T = std::remove_pointer_t<decltype(p)>;
        gloo::AllreduceOptions opts(context_);
        opts.setOutput<T>(p, size_t(t.numel()));
        opts.setReduceFunction(fn);
        gloo::allreduce(opts);
      });
      if (op == ReduceOp::average) divide(t, n);
    });
  }

  WorkPtr broadcast(const Tensor& t, int root) override {
    check_tensor(t, kCPU, "broadcast", "input");
    if (root < 0 || root >= size_)
      throw Error("dist: broadcast root " + std::to_string(root) + " is not a rank of a world of " +
                  std::to_string(size_));
    auto w = make("broadcast", describe("broadcast from rank " + std::to_string(root), t), {t});
    return enqueue(w, [this, t, root] {
      if (t.numel() == 0) return;
      with_type(t, "broadcast", [&](auto* p, gloo::AllreduceOptions::Func) {
        using T = std::remove_pointer_t<decltype(p)>;
        gloo::BroadcastOptions opts(context_);
        opts.setOutput<T>(p, size_t(t.numel()));
        opts.setRoot(root);
        gloo::broadcast(opts);
      });
    });
  }

  WorkPtr allgather(const Tensor& in, const Tensor& out) override {
    check_tensor(in, kCPU, "allgather", "input");
    check_tensor(out, kCPU, "allgather", "output");
    check_sizes(out, in, "allgather");
    auto w = make("allgather", describe("allgather", in), {in, out});
    return enqueue(w, [this, in, out] {
      if (in.numel() == 0) return;
      with_type(in, "allgather", [&](auto* p, gloo::AllreduceOptions::Func) {
        using T = std::remove_pointer_t<decltype(p)>;
        gloo::AllgatherOptions opts(context_);
        opts.setInput<T>(p, size_t(in.numel()));
        opts.setOutput<T>(static_cast<T*>(out.data_ptr()), size_t(out.numel()));
        gloo::allgather(opts);
      });
    });
  }

  // Gloo's option-style API has no reduce-scatter: an allreduce of the whole input, then
  // this rank's chunk (twice the traffic of a ring reduce-scatter; ember uses it for small
  // tensors only).
  WorkPtr reduce_scatter(const Tensor& in, const Tensor& out, ReduceOp op) override {
    check_tensor(in, kCPU, "reduce_scatter", "input");
    check_tensor(out, kCPU, "reduce_scatter", "output");
    check_sizes(in, out, "reduce_scatter");
    check_reduce(out, op, "reduce_scatter");
    auto w = make("reduce_scatter", describe(std::string("reduce_scatter(") + reduce_op_name(op) + ")", in),
                  {in, out});
    int n = size_, r = rank_;
    return enqueue(w, [this, in, out, op, n, r] {
      if (out.numel() == 0) return;
      NoGradGuard no_grad;
      Tensor all = in.detach().clone();
      with_type(all, "reduce_scatter", [&](auto* p, gloo::AllreduceOptions::Func fn) {
        using T = std::remove_pointer_t<decltype(p)>;
        gloo::AllreduceOptions opts(context_);
        opts.setOutput<T>(p, size_t(all.numel()));
        opts.setReduceFunction(fn);
        gloo::allreduce(opts);
      });
      Tensor o = out.detach();
      o.view({out.numel()}).copy_(all.view({all.numel()}).narrow(0, int64_t(r) * out.numel(), out.numel()));
      if (op == ReduceOp::average) divide(out, n);
    });
  }

  WorkPtr barrier() override {
    auto w = make("barrier", "barrier", {});
    return enqueue(w, [this] {
      gloo::BarrierOptions opts(context_);
      gloo::barrier(opts);
    });
  }

 private:
  std::shared_ptr<GlooWork> make(const char* name, const std::string& what, TensorList keep) {
    return std::make_shared<GlooWork>(group_, name, what, std::move(keep));
  }

  WorkPtr enqueue(std::shared_ptr<GlooWork> w, std::function<void()> fn) {
    if (group_.failed())
      throw Error("dist: rank " + std::to_string(rank_) + ": the process group failed earlier; no further "
                  "collectives can run");
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.emplace_back(w, std::move(fn));
    }
    cv_.notify_one();
    return w;
  }

  void run() {
    for (;;) {
      std::pair<std::shared_ptr<GlooWork>, std::function<void()>> job;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
        if (queue_.empty()) return;  // stop_ and nothing left
        job = std::move(queue_.front());
        queue_.pop_front();
      }
      const std::string head = "dist: rank " + std::to_string(rank_) + " of " + std::to_string(size_) + ": ";
      if (group_.failed()) {
        job.first->finish(head + job.first->what() + " was not run: an earlier collective failed", false);
        continue;
      }
      try {
        job.second();
        job.first->finish("", false);
      } catch (const std::exception& e) {
        group_.mark_failed();
        std::string m = e.what();
        // Gloo's timeout: "Timed out waiting ... for recv operation to complete" and the like.
        bool timed_out = m.find("Timed out") != std::string::npos || m.find("timed out") != std::string::npos;
        if (timed_out)
          job.first->finish(head + job.first->what() + " did not complete within " + secs(group_.timeout_seconds()) +
                                " s (EMBER_DIST_TIMEOUT); another rank died, stalled, or issued different "
                                "collectives (Gloo: " + m + ")",
                            true);
        else
          job.first->finish(head + job.first->what() + " failed in Gloo (did another rank die?): " + m, false);
      }
    }
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

  ProcessGroup& group_;
  int rank_, size_;
  std::shared_ptr<gloo::transport::Device> device_;
  std::shared_ptr<gloo::Context> context_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::pair<std::shared_ptr<GlooWork>, std::function<void()>>> queue_;
  bool stop_ = false;
  std::thread worker_;
};

}  // namespace

std::unique_ptr<Communicator> make_gloo_communicator(ProcessGroup& group, Store& store, const std::string& host) {
  return std::make_unique<GlooCommunicator>(group, store, host);
}

}  // namespace ember::dist::detail
