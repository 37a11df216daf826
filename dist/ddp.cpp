// DistributedDataParallel (Note [Gradient buckets] in dist/ddp.h).
#include "dist/ddp.h"

#include <algorithm>
#include <map>
#include <unordered_set>

#include "autograd/grad_mode.h"
#include "autograd/node.h"
#include "autograd/ops.h"

namespace ember::dist {

GradCompression parse_grad_compression(const std::string& s) {
  if (s == "none") return GradCompression::none;
  if (s == "fp16") return GradCompression::fp16;
  EMBER_THROW("gradient compression '", s, "' is not known: expected none or fp16");
}

std::vector<std::vector<size_t>> assign_buckets(const std::vector<int64_t>& nbytes,
                                                const std::vector<std::string>& keys,
                                                int64_t first_cap_bytes, int64_t cap_bytes) {
  EMBER_CHECK(nbytes.size() == keys.size(), "assign_buckets: ", nbytes.size(), " sizes but ", keys.size(), " keys");
  EMBER_CHECK(first_cap_bytes > 0 && cap_bytes > 0, "assign_buckets: bucket caps must be positive, got ",
              first_cap_bytes, " and ", cap_bytes, " bytes");
  struct Open {
    std::vector<size_t> idx;
    int64_t bytes = 0;
    bool first = true;
  };
  std::map<std::string, Open> open;
  std::vector<std::vector<size_t>> out;
  for (size_t k = nbytes.size(); k-- > 0;) {
    Open& o = open[keys[k]];
    o.idx.push_back(k);
    o.bytes += nbytes[k];
    if (o.bytes >= (o.first ? first_cap_bytes : cap_bytes)) {
      out.push_back(std::move(o.idx));
      o.idx.clear();
      o.bytes = 0;
      o.first = false;
    }
  }
  for (auto& [key, o] : open)
    if (!o.idx.empty()) out.push_back(std::move(o.idx));
  // In the order backward fills them: by their first (highest-index) tensor, descending.
  std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a[0] > b[0]; });
  return out;
}

void broadcast_coalesced(ProcessGroup& group, const TensorList& tensors, int root, int64_t chunk_bytes) {
  if (group.world_size() == 1 || tensors.empty()) return;
  NoGradGuard no_grad;
  // Chunks of consecutive tensors sharing device and dtype.
  std::map<std::string, std::vector<Tensor>> groups;
  std::vector<std::string> order;
  for (const Tensor& t : tensors) {
    if (!t.defined() || t.numel() == 0) continue;
    std::string key = t.device().str() + "/" + dtype_name(t.dtype());
    if (!groups.count(key)) order.push_back(key);
    groups[key].push_back(t);
  }
  for (const std::string& key : order) {
    const auto& ts = groups[key];
    size_t i = 0;
    while (i < ts.size()) {
      size_t j = i;
      int64_t n = 0;
      do {
        n += ts[j].numel();
        ++j;
      } while (j < ts.size() && (n + ts[j].numel()) * ts[j].element_size() <= chunk_bytes);
      Tensor flat = empty({n}, {.dtype = ts[i].dtype(), .device = ts[i].device()});
      int64_t off = 0;
      if (group.rank() == root) {
        for (size_t k = i; k < j; ++k) {
          flat.narrow(0, off, ts[k].numel()).copy_(ts[k].detach().reshape({ts[k].numel()}));
          off += ts[k].numel();
        }
      }
      group.broadcast(flat, root)->wait();
      if (group.rank() != root) {
        off = 0;
        for (size_t k = i; k < j; ++k) {
          Tensor dst = ts[k].detach();
          dst.copy_(flat.narrow(0, off, ts[k].numel()).view(ts[k].shape()));
          off += ts[k].numel();
        }
      }
      i = j;
    }
  }
}

DistributedDataParallel::DistributedDataParallel(nn::ModulePtr module, DDPOptions options, ProcessGroup* group)
    : module_(std::move(module)), opt_(options), group_(group ? group : &default_group()) {
  EMBER_CHECK(module_, "DistributedDataParallel: the module is null");
  EMBER_CHECK(opt_.first_bucket_mb > 0 && opt_.bucket_mb > 0, "DistributedDataParallel: bucket caps must be "
              "positive, got first_bucket_mb=", opt_.first_bucket_mb, " bucket_mb=", opt_.bucket_mb);
  NoGradGuard no_grad;

  // Every rank starts from rank 0's weights and buffers.
  TensorList everything = module_->parameters();
  for (const Tensor& b : module_->buffers()) everything.push_back(b);
  broadcast_coalesced(*group_, everything, 0);

  std::unordered_set<const TensorImpl*> seen;
  for (const auto& [name, p] : module_->named_parameters()) {
    if (!p.requires_grad() || !seen.insert(p.impl()).second) continue;
    EMBER_CHECK(is_floating(p.dtype()), "DistributedDataParallel: parameter '", name, "' has dtype ",
                dtype_name(p.dtype()), "; trainable parameters must be floating");
    if (!names_.empty())
      EMBER_CHECK(p.device() == names_[0].second.device(), "DistributedDataParallel: parameter '", name, "' is on ",
                  p.device().str(), " but '", names_[0].first, "' is on ", names_[0].second.device().str(),
                  "; put the whole module on one device (each process drives one device)");
    names_.emplace_back(name, p);
  }

  std::vector<int64_t> nbytes;
  std::vector<std::string> keys;
  for (const auto& [name, p] : names_) {
    nbytes.push_back(p.nbytes());
    keys.push_back(std::string(dtype_name(p.dtype())));
  }
  auto mb = [](double m) { return std::max<int64_t>(1, int64_t(m * 1024.0 * 1024.0)); };
  auto assignment = assign_buckets(nbytes, keys, mb(opt_.first_bucket_mb), mb(opt_.bucket_mb));

  params_.resize(names_.size());
  for (size_t i = 0; i < names_.size(); ++i) params_[i].tensor = names_[i].second;
  buckets_.resize(assignment.size());
  for (size_t b = 0; b < assignment.size(); ++b) {
    Bucket& bk = buckets_[b];
    bk.params = assignment[b];
    int64_t total = 0;
    for (size_t i : bk.params) total += params_[i].tensor.numel();
    const Tensor& first = params_[bk.params[0]].tensor;
    bk.buffer = zeros({total}, {.dtype = first.dtype(), .device = first.device()});
    int64_t off = 0;
    for (size_t i : bk.params) {
      Param& p = params_[i];
      p.bucket = b;
      p.view = make_view(bk.buffer, p.tensor.shape(), contiguous_strides(p.tensor.shape()), off);
      off += p.tensor.numel();
      Tensor g = p.tensor.grad();
      if (g.defined()) p.view.copy_(g);
      p.tensor.set_grad(p.view);
    }
  }
  for (size_t i = 0; i < params_.size(); ++i)
    params_[i].hook = params_[i].tensor.register_grad_ready_hook([this, i](const Tensor&) { on_grad_ready(i); });
}

DistributedDataParallel::~DistributedDataParallel() {
  for (Param& p : params_) p.tensor.remove_hook(p.hook);
  // Collectives still in flight must finish before their buffers go (CUDA work orders
  // itself; CPU work is waited for). A failure here has been or will be reported elsewhere.
  for (Bucket& b : buckets_) {
    if (b.started && b.work) {
      try {
        b.work->wait();
      } catch (...) {
      }
    }
  }
}

std::vector<std::vector<size_t>> DistributedDataParallel::bucket_assignment() const {
  std::vector<std::vector<size_t>> out;
  for (const Bucket& b : buckets_) out.push_back(b.params);
  return out;
}

Tensor DistributedDataParallel::forward(const Tensor& x) {
  bool training = GradMode::is_enabled() && module_->is_training();
  if (!training) return module_->forward(x);
  if (active_ && sync_) {
    bool any = std::any_of(params_.begin(), params_.end(), [](const Param& p) { return p.ready; });
    if (any) {
      active_ = false;
      std::string missing;
      for (size_t i = 0; i < params_.size(); ++i)
        if (!params_[i].ready) missing += (missing.empty() ? "'" : ", '") + names_[i].first + "'";
      throw Error("DistributedDataParallel: the gradient sync of the previous iteration did not finish: "
                  "parameter(s) " + missing + " got no gradient. Call finish() after backward to get this "
                  "error there, and pass find_unused_parameters=true if some parameters may be unused");
    }
  }
  if (opt_.broadcast_buffers) sync_buffers();
  Tensor out = module_->forward(x);
  prepare(no_sync_depth_ == 0, &out);
  return out;
}

void DistributedDataParallel::sync_buffers() {
  if (group_->world_size() == 1) return;
  TensorList bufs = module_->buffers();
  if (!bufs.empty()) broadcast_coalesced(*group_, bufs, 0);
}

void DistributedDataParallel::prepare(bool sync, const Tensor* output) {
  active_ = true;
  sync_ = sync;
  next_bucket_ = 0;
  finished_buckets_ = 0;
  for (Param& p : params_) p.ready = false;
  for (Bucket& b : buckets_) {
    b.pending = int64_t(b.params.size());
    b.started = false;
    b.work.reset();
  }
  if (!sync || !opt_.find_unused_parameters || !output || !output->defined()) return;
  // The leaves forward's graph reaches; every other parameter gets no gradient this time.
  std::unordered_set<const TensorImpl*> reached;
  std::unordered_set<const autograd::Node*> visited;
  std::vector<autograd::Node*> stack;
  if (output->grad_fn()) stack.push_back(output->grad_fn().get());
  else reached.insert(output->impl());
  while (!stack.empty()) {
    autograd::Node* n = stack.back();
    stack.pop_back();
    if (!visited.insert(n).second) continue;
    if (auto* acc = dynamic_cast<autograd::AccumulateGrad*>(n)) reached.insert(acc->leaf.get());
    for (const autograd::Edge& e : n->next)
      if (e.valid()) stack.push_back(e.fn.get());
  }
  NoGradGuard no_grad;
  for (size_t i = 0; i < params_.size(); ++i) {
    Param& p = params_[i];
    if (reached.count(p.tensor.impl())) continue;
    bind_grad(p);  // keeps a locally accumulated value (zero after zero_grad)
    p.ready = true;
    --buckets_[p.bucket].pending;
  }
}

void DistributedDataParallel::bind_grad(Param& p) {
  Tensor g = p.tensor.grad();
  const Bucket& b = buckets_[p.bucket];
  if (g.defined() && g.is_same(p.view) && g.storage() == b.buffer.storage()) return;
  // The gradient was replaced (zero_grad(set_to_none), a module move): copy it into the
  // bucket and point .grad back at the slot.
  NoGradGuard no_grad;
  Tensor fresh = make_view(b.buffer, p.tensor.shape(), contiguous_strides(p.tensor.shape()),
                           p.view.offset());
  if (g.defined()) {
    fresh.copy_(g);
  } else {
    fresh.zero_();
  }
  p.view = fresh;
  p.tensor.set_grad(p.view);
}

void DistributedDataParallel::on_grad_ready(size_t index) {
  Param& p = params_[index];
  bind_grad(p);
  emit(DDPEvent::grad_ready, int64_t(index));
  if (!active_) prepare(no_sync_depth_ == 0, nullptr);  // the module was called directly
  if (!sync_) return;
  if (p.ready)
    throw Error("DistributedDataParallel: the gradient of parameter '" + names_[index].first +
                "' arrived twice in one iteration (two backward passes after one forward, or a parameter "
                "declared unused that was used); call forward before each backward, and accumulate "
                "gradients under no_sync()");
  p.ready = true;
  Bucket& b = buckets_[p.bucket];
  --b.pending;
  bool all_ready = std::all_of(buckets_.begin(), buckets_.end(), [](const Bucket& x) { return x.pending == 0; });
  if (opt_.overlap ? b.pending == 0 : all_ready) start_ready_buckets();
  // Drive the transport's progress on what is in flight (MPI progresses inside its calls).
  for (size_t k = finished_buckets_; k < next_bucket_; ++k) buckets_[k].work->test();
  if (next_bucket_ == buckets_.size()) wait_all();
}

void DistributedDataParallel::start_ready_buckets() {
  while (next_bucket_ < buckets_.size() && buckets_[next_bucket_].pending == 0) start_bucket(next_bucket_++);
}

void DistributedDataParallel::start_bucket(size_t index) {
  Bucket& b = buckets_[index];
  emit(DDPEvent::bucket_started, int64_t(index));
  NoGradGuard no_grad;
  if (opt_.compression == GradCompression::fp16 && b.buffer.dtype() != DType::f16) {
    b.comm = (b.buffer * (1.0 / double(group_->world_size()))).to(DType::f16);
    b.work = group_->allreduce(b.comm, ReduceOp::sum);
  } else {
    b.work = group_->allreduce(b.buffer, ReduceOp::average);
  }
  b.started = true;
}

void DistributedDataParallel::wait_all() {
  NoGradGuard no_grad;
  for (; finished_buckets_ < buckets_.size(); ++finished_buckets_) {
    Bucket& b = buckets_[finished_buckets_];
    b.work->wait();
    if (b.comm.defined()) {
      b.buffer.copy_(b.comm);
      b.comm = Tensor();
    }
    b.work.reset();
    emit(DDPEvent::bucket_finished, int64_t(finished_buckets_));
  }
  active_ = false;
}

void DistributedDataParallel::finish() {
  if (!active_) return;
  if (!sync_) {
    active_ = false;
    return;
  }
  std::string missing;
  for (size_t i = 0; i < params_.size(); ++i) {
    Param& p = params_[i];
    if (p.ready) continue;
    if (opt_.find_unused_parameters) {
      bind_grad(p);
      p.ready = true;
      --buckets_[p.bucket].pending;
    } else {
      missing += (missing.empty() ? "'" : ", '") + names_[i].first + "'";
    }
  }
  if (!missing.empty()) {
    active_ = false;
    throw Error("DistributedDataParallel: parameter(s) " + missing +
                " got no gradient in this iteration, so their buckets cannot be reduced (every rank must "
                "reduce every bucket). If the model does not use every parameter in every iteration, "
                "pass find_unused_parameters=true");
  }
  start_ready_buckets();
  wait_all();
}

void DistributedDataParallel::zero_grad() {
  NoGradGuard no_grad;
  for (Bucket& b : buckets_) b.buffer.zero_();
  for (Param& p : params_) {
    Tensor g = p.tensor.grad();
    if (!(g.defined() && g.is_same(p.view))) p.tensor.set_grad(p.view);
  }
}

}  // namespace ember::dist
