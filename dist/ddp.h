#pragma once
// DistributedDataParallel: the same model on every rank, each on its own share of the
// batch; gradients averaged over ranks while backward still runs.
//
// Note [Gradient buckets]: the parameters are grouped into buckets in reverse registration
// order (the order backward produces their gradients), per (device, dtype); a bucket closes
// once it holds `first_bucket_mb` (the first one, small so that communication starts early)
// or `bucket_mb` (the others). Each bucket is one flat buffer and every parameter's .grad is
// a view into it, so autograd accumulates straight into the buffer (AccumulateGrad adds in
// place into an existing .grad) and the allreduce needs no packing. A grad-ready hook on
// every parameter counts down its bucket; the moment a bucket's last gradient is in, its
// allreduce starts, overlapping the rest of backward. Buckets start strictly in index order,
// so every rank issues the same collectives in the same order. When the last bucket has
// started (still inside backward), the hook waits for all of them: when backward returns,
// the gradients are averaged. finish() checks that, and names the parameters that got no
// gradient (an error unless find_unused_parameters).
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "dist/process_group.h"
#include "nn/module.h"

namespace ember::dist {

enum class GradCompression { none, fp16 };
/// "none" or "fp16"; throws on anything else.
GradCompression parse_grad_compression(const std::string& s);

struct DDPOptions {
  /// Cap of the first bucket and of the others, in MiB (Note [Gradient buckets]).
  double first_bucket_mb = 1.0;
  double bucket_mb = 25.0;
  /// Parameters that may get no gradient in an iteration (found by walking the graph of
  /// forward's output); their slots keep their local value (zero after zero_grad()) and
  /// their buckets are still reduced. Without it such a parameter is an error naming it.
  bool find_unused_parameters = false;
  /// Copy rank 0's buffers (e.g. batch-norm statistics) to every rank before each
  /// training forward (they are always broadcast at construction).
  bool broadcast_buffers = true;
  /// fp16: buckets travel as f16 (divided by the world size first, so the sum cannot
  /// overflow where the mean would not), halving the bytes; the result is written back in
  /// the parameters' dtype.
  GradCompression compression = GradCompression::none;
  /// false: no bucket starts before the last gradient is ready (for measuring the overlap).
  bool overlap = true;
};

/// Events for tests and profiling (set_observer).
struct DDPEvent {
  enum Kind { grad_ready, bucket_started, bucket_finished } kind;
  int64_t index;  // the parameter index (grad_ready) or the bucket index
};

class DistributedDataParallel {
 public:
  /// Broadcasts rank 0's parameters and buffers to every rank, builds the buckets and
  /// points each parameter's .grad into them. Move the module to its device first. The
  /// module's trainable parameters must all be on one device.
  explicit DistributedDataParallel(nn::ModulePtr module, DDPOptions options = {},
                                   ProcessGroup* group = nullptr);
  ~DistributedDataParallel();
  DistributedDataParallel(const DistributedDataParallel&) = delete;
  DistributedDataParallel& operator=(const DistributedDataParallel&) = delete;

  /// The module's forward; in training mode with grad enabled it also prepares the
  /// gradient sync of the backward that follows (or, inside no_sync(), local accumulation).
  Tensor forward(const Tensor& x);
  Tensor operator()(const Tensor& x) { return forward(x); }

  /// Completes the gradient sync of the last backward: waits for every bucket (nothing to
  /// do when backward already did), then the gradients are the average over ranks. Throws
  /// dist::Error naming the parameters that got no gradient (without find_unused_parameters).
  /// Call it between backward and the optimizer step.
  void finish();

  /// Zero-fills the gradient buckets; the .grad views stay (use this rather than
  /// Module::zero_grad(), whose default set_to_none drops them: that still works, at the
  /// cost of a copy per parameter in the next backward).
  void zero_grad();

  /// While the guard lives, forward/backward only accumulate gradients locally (gradient
  /// accumulation); the first backward after it reduces the accumulated sum.
  class NoSyncGuard {
   public:
    explicit NoSyncGuard(DistributedDataParallel& d) : d_(&d) { ++d_->no_sync_depth_; }
    ~NoSyncGuard() {
      if (d_) --d_->no_sync_depth_;
    }
    NoSyncGuard(NoSyncGuard&& o) noexcept : d_(o.d_) { o.d_ = nullptr; }
    NoSyncGuard(const NoSyncGuard&) = delete;
    NoSyncGuard& operator=(const NoSyncGuard&) = delete;
    NoSyncGuard& operator=(NoSyncGuard&&) = delete;

   private:
    DistributedDataParallel* d_;
  };
  [[nodiscard]] NoSyncGuard no_sync() { return NoSyncGuard(*this); }

  nn::Module& module() { return *module_; }
  const nn::ModulePtr& module_ptr() const { return module_; }
  ProcessGroup& process_group() { return *group_; }
  const DDPOptions& options() const { return opt_; }

  /// Bucket b's parameters, as indices into params() (Note [Gradient buckets]).
  std::vector<std::vector<size_t>> bucket_assignment() const;
  /// The bucketed parameters with their names, in registration order.
  const std::vector<std::pair<std::string, Tensor>>& params() const { return names_; }
  /// Receives every DDPEvent (tests check the overlap with it); null to stop.
  void set_observer(std::function<void(const DDPEvent&)> observer) { observer_ = std::move(observer); }

 private:
  struct Bucket {
    std::vector<size_t> params;
    Tensor buffer;  // (numel) flat, the parameters' dtype and device
    Tensor comm;    // the f16 copy sent when compressing
    int64_t pending = 0;
    bool started = false;
    WorkPtr work;
  };
  struct Param {
    Tensor tensor;
    Tensor view;  // its .grad: a view of its bucket's buffer
    size_t bucket = 0;
    int hook = 0;
    bool ready = false;
  };

  void prepare(bool sync, const Tensor* output);
  void on_grad_ready(size_t index);
  void bind_grad(Param& p);
  void start_ready_buckets();
  void start_bucket(size_t b);
  void wait_all();
  void sync_buffers();
  void emit(DDPEvent::Kind kind, int64_t index) {
    if (observer_) observer_({kind, index});
  }

  nn::ModulePtr module_;
  DDPOptions opt_;
  ProcessGroup* group_;
  std::vector<std::pair<std::string, Tensor>> names_;
  std::vector<Param> params_;
  std::vector<Bucket> buckets_;
  std::function<void(const DDPEvent&)> observer_;
  int no_sync_depth_ = 0;
  // The iteration in progress: prepared by forward (or the first hook), ended by the wait.
  bool active_ = false;
  bool sync_ = true;
  size_t next_bucket_ = 0;
  size_t finished_buckets_ = 0;
};

using DDP = DistributedDataParallel;

/// Bucket assignment (Note [Gradient buckets]) for tensors of these sizes in bytes and
/// keys (tensors with different keys never share a bucket), in registration order: returns
/// the buckets as lists of indices, in the order they fill during backward.
std::vector<std::vector<size_t>> assign_buckets(const std::vector<int64_t>& nbytes,
                                                const std::vector<std::string>& keys,
                                                int64_t first_cap_bytes, int64_t cap_bytes);

/// Broadcasts `tensors` from `root` in place, packed per device and dtype into flat
/// buffers of at most `chunk_bytes`, so that many small tensors cost few collectives.
void broadcast_coalesced(ProcessGroup& group, const TensorList& tensors, int root = 0,
                         int64_t chunk_bytes = int64_t(25) << 20);

}  // namespace ember::dist
