// Shared helpers of the backends, the local communicator (a world of one process) and the
// staged one (CUDA tensors over a host communicator, for builds without NCCL).
#include <sstream>

#include "autograd/grad_mode.h"
#include "dist/detail.h"

namespace ember::dist::detail {

void check_tensor(const Tensor& t, Device device, const char* op, const char* what) {
  if (!t.defined()) throw Error(std::string("dist: ") + op + ": the " + what + " tensor is undefined");
  if (t.device() != device)
    throw Error(std::string("dist: ") + op + ": the " + what + " tensor is on " + t.device().str() +
                ", but this communicator works on " + device.str());
  if (!t.is_contiguous())
    throw Error(std::string("dist: ") + op + ": the " + what + " tensor (shape " + t.shape_str() +
                ") must be contiguous; call .contiguous() and copy the result back");
}

std::string describe(const std::string& op, const Tensor& t) {
  std::ostringstream os;
  os << op << " of " << t.numel() << " " << dtype_name(t.dtype()) << " elements";
  return os.str();
}

namespace {

void check_numel(int64_t got, int64_t expected, const char* op, const char* what) {
  if (got != expected)
    throw Error(std::string("dist: ") + op + ": the " + what + " tensor has " + std::to_string(got) +
                " elements, expected " + std::to_string(expected));
}

class LocalCommunicator : public Communicator {
 public:
  explicit LocalCommunicator(Device d) : device_(d) {}
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  std::string backend() const override { return "local"; }

  WorkPtr allreduce(const Tensor& t, ReduceOp) override {
    check_tensor(t, device_, "allreduce", "input");
    return std::make_shared<CompletedWork>("allreduce");  // sum and mean of one are itself
  }
  WorkPtr broadcast(const Tensor& t, int root) override {
    check_tensor(t, device_, "broadcast", "input");
    if (root != 0) throw Error("dist: broadcast from rank " + std::to_string(root) + " in a world of 1");
    return std::make_shared<CompletedWork>("broadcast");
  }
  WorkPtr allgather(const Tensor& in, const Tensor& out) override {
    check_tensor(in, device_, "allgather", "input");
    check_tensor(out, device_, "allgather", "output");
    check_numel(out.numel(), in.numel(), "allgather", "output");
    copy(out, in);
    return std::make_shared<CompletedWork>("allgather");
  }
  WorkPtr reduce_scatter(const Tensor& in, const Tensor& out, ReduceOp) override {
    check_tensor(in, device_, "reduce_scatter", "input");
    check_tensor(out, device_, "reduce_scatter", "output");
    check_numel(in.numel(), out.numel(), "reduce_scatter", "input");
    copy(out, in);
    return std::make_shared<CompletedWork>("reduce_scatter");
  }
  WorkPtr barrier() override { return std::make_shared<CompletedWork>("barrier"); }

 private:
  static void copy(const Tensor& out, const Tensor& in) {
    if (in.data_ptr() == out.data_ptr()) return;
    NoGradGuard no_grad;
    Tensor o = out.detach();
    o.view({out.numel()}).copy_(in.detach().view({in.numel()}));
  }
  Device device_;
};

/// Host copies of CUDA tensors, the host collective, and the copy back in wait().
class StagedWork : public Work {
 public:
  StagedWork(WorkPtr host, Tensor host_out, Tensor device_out)
      : host_(std::move(host)), host_out_(std::move(host_out)), device_out_(std::move(device_out)) {}
  void wait() override {
    host_->wait();
    if (device_out_.defined()) {
      NoGradGuard no_grad;
      Tensor d = device_out_.detach();
      d.copy_(host_out_);
      device_out_ = Tensor();
    }
  }
  bool test() override { return host_->test(); }
  std::string name() const override { return host_->name(); }

 private:
  WorkPtr host_;
  Tensor host_out_, device_out_;
};

class StagedCommunicator : public Communicator {
 public:
  StagedCommunicator(Communicator& host, Device d) : host_(host), device_(d) {}
  int rank() const override { return host_.rank(); }
  int world_size() const override { return host_.world_size(); }
  std::string backend() const override { return "staged-" + host_.backend(); }

  WorkPtr allreduce(const Tensor& t, ReduceOp op) override {
    check_tensor(t, device_, "allreduce", "input");
    Tensor h = t.detach().cpu();
    return std::make_shared<StagedWork>(host_.allreduce(h, op), h, t);
  }
  WorkPtr broadcast(const Tensor& t, int root) override {
    check_tensor(t, device_, "broadcast", "input");
    Tensor h = t.detach().cpu();
    return std::make_shared<StagedWork>(host_.broadcast(h, root), h, t);
  }
  WorkPtr allgather(const Tensor& in, const Tensor& out) override {
    check_tensor(in, device_, "allgather", "input");
    check_tensor(out, device_, "allgather", "output");
    Tensor hi = in.detach().cpu();
    Tensor ho = empty(out.shape(), {.dtype = out.dtype()});
    return std::make_shared<StagedWork>(host_.allgather(hi, ho), ho, out);
  }
  WorkPtr reduce_scatter(const Tensor& in, const Tensor& out, ReduceOp op) override {
    check_tensor(in, device_, "reduce_scatter", "input");
    check_tensor(out, device_, "reduce_scatter", "output");
    Tensor hi = in.detach().cpu();
    Tensor ho = empty(out.shape(), {.dtype = out.dtype()});
    return std::make_shared<StagedWork>(host_.reduce_scatter(hi, ho, op), ho, out);
  }
  WorkPtr barrier() override { return host_.barrier(); }

 private:
  Communicator& host_;
  Device device_;
};

}  // namespace

std::unique_ptr<Communicator> make_local_communicator(Device device) {
  return std::make_unique<LocalCommunicator>(device);
}

std::unique_ptr<Communicator> make_staged_communicator(Communicator& host, Device device) {
  return std::make_unique<StagedCommunicator>(host, device);
}

}  // namespace ember::dist::detail
