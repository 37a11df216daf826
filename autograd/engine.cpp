// The reverse-mode engine: dependency counting from the roots, gradient buffers summed per
// node input, nodes run latest-created first, saved tensors freed as nodes finish.
#include <algorithm>
#include <atomic>
#include <mutex>
#include <queue>
#include <unordered_map>
#include <unordered_set>

#include "autograd/autocast.h"
#include "autograd/node.h"
#include "autograd/ops.h"

namespace ember {

namespace {
thread_local bool g_grad_enabled = true;
std::atomic<uint64_t> g_next_seq{0};

// Graphs recorded at once on several threads share the leaves (one model's parameters):
// a leaf's AccumulateGrad node is made once, under this lock, so that every graph points at
// the same node (unlocked, two threads each made their own, and autograd::grad on one
// thread's graph then found the parameter "not used").
std::mutex g_accumulator_mutex;
std::atomic<int> g_next_hook_id{1};
}  // namespace

bool GradMode::is_enabled() { return g_grad_enabled; }
void GradMode::set_enabled(bool enabled) { g_grad_enabled = enabled; }

namespace autograd {

// ---- saved tensors
SavedTensor::SavedTensor(const Tensor& t) {
  if (t.defined()) {
    // Detached: saving an op's own output must not form a cycle output -> node -> output.
    t_ = t.detach();
    version_ = t.version();
  }
}

Tensor SavedTensor::unpack(const Node& owner) const {
  if (t_.defined() && t_.version() != version_) {
    EMBER_THROW("autograd: a tensor saved for the backward of ", owner.name(),
                " was modified in place (or its module was moved with to()) after it was saved (version ",
                version_, " -> ", t_.version(),
                "); clone it before the in-place op, use the out-of-place op, or run forward again after to()");
  }
  return t_;
}

Node::Node() : seq(g_next_seq.fetch_add(1, std::memory_order_relaxed)) {}

// ---- graph wiring
Edge gradient_edge(const Tensor& t) {
  TensorImpl* impl = t.impl();
  if (impl->grad_fn) return Edge{impl->grad_fn, impl->output_nr};
  if (!impl->requires_grad) return Edge{};
  std::lock_guard<std::mutex> lock(g_accumulator_mutex);
  std::shared_ptr<Node> acc = impl->grad_accumulator.lock();
  if (!acc) {
    acc = std::make_shared<AccumulateGrad>(t.impl_ptr());
    impl->grad_accumulator = acc;
  }
  return Edge{acc, 0};
}

bool needs_grad(std::initializer_list<const Tensor*> inputs) {
  if (!GradMode::is_enabled()) return false;
  for (const Tensor* t : inputs)
    if (t->defined() && t->requires_grad()) return true;
  return false;
}

bool needs_grad(const TensorList& inputs) {
  if (!GradMode::is_enabled()) return false;
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

void set_history(const TensorList& outputs, const std::shared_ptr<Node>& node) {
  if (!node) return;
  node->num_outputs = uint32_t(outputs.size());
  for (size_t k = 0; k < outputs.size(); ++k) {
    const Tensor& o = outputs[k];
    if (!o.defined()) continue;
    o.impl()->grad_fn = node;
    o.impl()->output_nr = uint32_t(k);
    o.impl()->requires_grad = true;
  }
}

void set_history(const Tensor& output, const std::shared_ptr<Node>& node) {
  set_history(TensorList{output}, node);
}

Tensor sum_to(const Tensor& grad, const Shape& shape) {
  if (grad.shape() == shape) return grad;
  int64_t lead = grad.dim() - int64_t(shape.size());
  EMBER_CHECK(lead >= 0, "sum_to: cannot reduce shape ", grad.shape_str(), " to ", shape_str(shape));
  Shape dims;
  for (int64_t i = 0; i < grad.dim(); ++i) {
    if (i < lead) {
      dims.push_back(i);
    } else if (shape[size_t(i - lead)] == 1 && grad.shape()[size_t(i)] != 1) {
      dims.push_back(i);
    }
  }
  Tensor r = dims.empty() ? grad : sum(grad, dims, /*keepdim=*/true);
  return r.reshape(shape);
}

// ---- leaves
TensorList AccumulateGrad::apply(TensorList&& grads) {
  Tensor g = std::move(grads[0]);
  if (!g.defined()) return {};
  Tensor self(leaf);
  for (auto& [id, hook] : leaf->hooks) {
    Tensor r = hook(g);
    if (r.defined()) g = r;
  }
  EMBER_CHECK(g.shape() == leaf->sizes, "autograd: gradient of shape ", g.shape_str(),
              " does not match the leaf's shape ", shape_str(leaf->sizes));
  EMBER_CHECK(g.device() == self.device(), "autograd: a gradient on ", g.device().str(),
              " arrived for a leaf on ", self.device().str(),
              " (was the leaf moved after the graph was recorded? run forward again)");
  if (g.dtype() != leaf->dtype) g = g.to(leaf->dtype);
  std::lock_guard<std::mutex> lock(mutex);  // backward on several threads into one leaf
  if (!leaf->grad.defined()) {
    // Take the buffer when nothing else can see it; otherwise copy, so that a later
    // in-place accumulation cannot write into another tensor's gradient.
    bool unique = g.impl_ptr().use_count() == 1 && g.storage().use_count() == 1 && g.is_contiguous();
    leaf->grad = unique ? g : g.clone();
  } else {
    leaf->grad.add_(g);
  }
  for (auto& [id, hook] : leaf->grad_ready_hooks) hook(self);
  return {};
}

// ---- the engine
namespace {

struct NodeKey {
  Node* node;
  uint32_t input;
  bool operator==(const NodeKey& o) const { return node == o.node && input == o.input; }
};
struct NodeKeyHash {
  size_t operator()(const NodeKey& k) const {
    return std::hash<Node*>()(k.node) ^ (size_t(k.input) * 0x9E3779B97F4A7C15ull);
  }
};

void accumulate(Tensor& slot, Tensor g) {
  if (!g.defined()) return;
  if (!slot.defined()) {
    slot = std::move(g);
  } else {
    slot = add(slot, g);
  }
}

/// Runs the graph. `captures` maps node inputs to result slots (autograd::grad); when it
/// is non-empty, AccumulateGrad nodes are not run.
void run_engine(const TensorList& roots, const TensorList& grads_in, bool retain_graph,
                const std::unordered_map<NodeKey, size_t, NodeKeyHash>* captures,
                TensorList* results) {
  NoGradGuard no_grad;
  // Backward ops compute in the dtypes their forward ops used (autograd/autocast.h).
  AutocastGuard no_autocast(DType::f16, /*enabled=*/false);
  EMBER_CHECK(grads_in.empty() || grads_in.size() == roots.size(), "backward: got ",
              grads_in.size(), " gradients for ", roots.size(), " outputs");
  std::vector<Edge> root_edges;
  TensorList root_grads;
  for (size_t i = 0; i < roots.size(); ++i) {
    const Tensor& r = roots[i];
    EMBER_CHECK(r.defined(), "backward: output ", i, " is undefined");
    Edge e = gradient_edge(r);
    EMBER_CHECK(e.valid(), "backward: output ", i, " (shape ", r.shape_str(),
                ") does not require grad and has no grad_fn");
    Tensor g = i < grads_in.size() ? grads_in[i] : Tensor();
    if (!g.defined()) {
      EMBER_CHECK(r.numel() == 1, "backward: a gradient can be implied only for an output with one "
                  "element; output ", i, " has shape ", r.shape_str(), ", pass its gradient");
      g = ones_like(r);
    } else {
      EMBER_CHECK(g.shape() == r.shape(), "backward: gradient of shape ", g.shape_str(),
                  " for an output of shape ", r.shape_str());
      EMBER_CHECK(g.device() == r.device(), "backward: gradient on ", g.device(),
                  " for an output on ", r.device());
    }
    root_edges.push_back(e);
    root_grads.push_back(g.detach());
  }

  // Dependency counts over the reachable graph.
  std::unordered_map<Node*, int> deps;
  std::unordered_map<Node*, std::shared_ptr<Node>> keep;  // holds nodes while we run
  std::vector<Node*> stack;
  for (const Edge& e : root_edges) {
    if (!keep.count(e.fn.get())) {
      keep[e.fn.get()] = e.fn;
      deps[e.fn.get()];
      stack.push_back(e.fn.get());
    }
  }
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    for (const Edge& e : n->next) {
      if (!e.valid()) continue;
      Node* m = e.fn.get();
      ++deps[m];
      if (!keep.count(m)) {
        keep[m] = e.fn;
        stack.push_back(m);
      }
    }
  }

  std::unordered_map<Node*, TensorList> buffers;
  auto buffer_of = [&](Node* n) -> TensorList& {
    TensorList& b = buffers[n];
    if (b.size() < n->num_outputs) b.resize(n->num_outputs);
    return b;
  };
  for (size_t i = 0; i < root_edges.size(); ++i) {
    accumulate(buffer_of(root_edges[i].fn.get())[root_edges[i].input_nr], root_grads[i]);
  }

  auto later_first = [](Node* a, Node* b) { return a->seq < b->seq; };
  std::priority_queue<Node*, std::vector<Node*>, decltype(later_first)> ready(later_first);
  for (auto& [n, d] : deps)
    if (d == 0) ready.push(n);

  while (!ready.empty()) {
    Node* n = ready.top();
    ready.pop();
    TensorList grads = std::move(buffer_of(n));
    buffers.erase(n);
    for (auto& [k, id, hook] : n->pre_hooks) {
      if (k < grads.size() && grads[k].defined()) {
        Tensor r = hook(grads[k]);
        if (r.defined()) grads[k] = r;
      }
    }
    bool is_acc = dynamic_cast<AccumulateGrad*>(n) != nullptr;
    if (captures) {
      for (uint32_t k = 0; k < grads.size(); ++k) {
        auto it = captures->find(NodeKey{n, k});
        if (it != captures->end()) (*results)[it->second] = grads[k];
      }
      if (is_acc) continue;
    }
    EMBER_CHECK(!n->released, "autograd: backward through ", n->name(), " a second time, but its "
                "saved tensors were freed after the first; pass retain_graph=true to the first backward");
    TensorList outs = n->apply(std::move(grads));
    if (!retain_graph) {
      n->release_saved();
      n->released = !is_acc;
    }
    EMBER_CHECK(outs.size() == n->next.size() || is_acc, "autograd: ", n->name(), " returned ",
                outs.size(), " gradients for ", n->next.size(), " inputs");
    for (size_t i = 0; i < n->next.size(); ++i) {
      const Edge& e = n->next[i];
      if (!e.valid()) continue;
      Node* m = e.fn.get();
      if (i < outs.size() && outs[i].defined()) accumulate(buffer_of(m)[e.input_nr], std::move(outs[i]));
      if (--deps[m] == 0) ready.push(m);
    }
  }
}

}  // namespace

void backward(const TensorList& roots, const TensorList& grads, bool retain_graph) {
  run_engine(roots, grads, retain_graph, nullptr, nullptr);
}

TensorList grad(const TensorList& outputs, const TensorList& inputs,
                const TensorList& grad_outputs, bool retain_graph, bool allow_unused) {
  std::unordered_map<NodeKey, size_t, NodeKeyHash> captures;
  for (size_t i = 0; i < inputs.size(); ++i) {
    EMBER_CHECK(inputs[i].defined() && inputs[i].requires_grad(), "autograd::grad: input ", i,
                " does not require grad");
    Edge e = gradient_edge(inputs[i]);
    captures[NodeKey{e.fn.get(), e.input_nr}] = i;
  }
  TensorList results(inputs.size());
  run_engine(outputs, grad_outputs, retain_graph, &captures, &results);
  for (size_t i = 0; i < results.size(); ++i) {
    EMBER_CHECK(results[i].defined() || allow_unused, "autograd::grad: input ", i,
                " (shape ", inputs[i].shape_str(), ") was not used to compute the outputs; "
                "pass allow_unused=true to get an undefined gradient for it");
  }
  return results;
}

}  // namespace autograd

// ---- Tensor's autograd accessors
bool Tensor::requires_grad() const { return impl_ && impl_->requires_grad; }

Tensor& Tensor::requires_grad_(bool value) {
  EMBER_CHECK(impl_, "requires_grad_ on an undefined tensor");
  EMBER_CHECK(!impl_->grad_fn || value, "requires_grad_(false) is only allowed on leaves; use detach()");
  EMBER_CHECK(!value || is_floating(dtype()), "only floating tensors can require gradients, got ",
              dtype_name(dtype()));
  impl_->requires_grad = value;
  return *this;
}

Tensor Tensor::grad() const { return impl_ ? impl_->grad : Tensor(); }
void Tensor::set_grad(const Tensor& g) const {
  EMBER_CHECK(impl_, "set_grad on an undefined tensor");
  EMBER_CHECK(!g.defined() || g.shape() == shape(), "set_grad: gradient shape ", g.shape_str(),
              " does not match ", shape_str());
  impl_->grad = g;
}

const std::shared_ptr<autograd::Node>& Tensor::grad_fn() const {
  static const std::shared_ptr<autograd::Node> none;
  return impl_ ? impl_->grad_fn : none;
}
bool Tensor::is_leaf() const { return !impl_ || !impl_->grad_fn; }

Tensor Tensor::detach() const {
  EMBER_CHECK(impl_, "detach on an undefined tensor");
  auto d = std::make_shared<TensorImpl>();
  d->storage = impl_->storage;
  d->sizes = impl_->sizes;
  d->strides = impl_->strides;
  d->offset = impl_->offset;
  d->dtype = impl_->dtype;
  d->numel = impl_->numel;
  d->contiguous = impl_->contiguous;
  return Tensor(std::move(d));
}

void Tensor::backward(const Tensor& g, bool retain_graph) const {
  autograd::backward({*this}, {g}, retain_graph);
}

int Tensor::register_hook(std::function<Tensor(const Tensor&)> hook) const {
  EMBER_CHECK(requires_grad(), "register_hook on a tensor that does not require grad");
  int id = g_next_hook_id.fetch_add(1);
  if (impl_->grad_fn) {
    impl_->grad_fn->pre_hooks.emplace_back(impl_->output_nr, id, std::move(hook));
  } else {
    impl_->hooks.emplace_back(id, std::move(hook));
  }
  return id;
}

void Tensor::remove_hook(int id) const {
  if (!impl_) return;
  std::erase_if(impl_->hooks, [id](const auto& h) { return h.first == id; });
  std::erase_if(impl_->grad_ready_hooks, [id](const auto& h) { return h.first == id; });
  if (impl_->grad_fn)
    std::erase_if(impl_->grad_fn->pre_hooks, [id](const auto& h) { return std::get<1>(h) == id; });
}

int Tensor::register_grad_ready_hook(std::function<void(const Tensor&)> hook) const {
  EMBER_CHECK(impl_ && is_leaf() && requires_grad(),
              "register_grad_ready_hook needs a leaf tensor that requires grad");
  int id = g_next_hook_id.fetch_add(1);
  impl_->grad_ready_hooks.emplace_back(id, std::move(hook));
  return id;
}

}  // namespace ember
