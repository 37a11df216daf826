#pragma once
// The autograd graph: Node (a backward function), Edge (where its input gradients go),
// SavedTensor (a tensor kept for backward, with its version checked on use).
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "autograd/grad_mode.h"
#include "tensor/tensor.h"

namespace ember::autograd {

struct Node;

/// Where a gradient flows: input `input_nr` of node `fn` (null fn: nowhere).
struct Edge {
  std::shared_ptr<Node> fn;
  uint32_t input_nr = 0;
  bool valid() const { return fn != nullptr; }
};

/// A tensor saved for backward. Note [Version counter]: unpack() throws if the tensor was
/// modified in place after it was saved, naming the op, instead of giving a wrong gradient.
class SavedTensor {
 public:
  SavedTensor() = default;
  SavedTensor(const Tensor& t);  // NOLINT: implicit by design, `saved_x = x;`
  Tensor unpack(const Node& owner) const;
  void reset() { t_ = Tensor(); }
  bool defined() const { return t_.defined(); }

 private:
  Tensor t_;
  uint64_t version_ = 0;
};

struct Node : std::enable_shared_from_this<Node> {
  Node();
  virtual ~Node() = default;
  /// Gradients of the inputs (one per `next` edge; undefined = none) from the gradients of
  /// the outputs (undefined = zero).
  virtual TensorList apply(TensorList&& grad_outputs) = 0;
  virtual std::string name() const = 0;
  /// Drops saved tensors after the node ran (unless the graph is retained).
  virtual void release_saved() {}

  std::vector<Edge> next;
  uint64_t seq;  // creation order: later nodes run first among those ready
  uint32_t num_outputs = 1;
  bool released = false;  // saved tensors freed: a second backward needs retain_graph
  // Hooks on the gradient of output k (for non-leaf tensor.register_hook).
  std::vector<std::tuple<uint32_t, int, std::function<Tensor(const Tensor&)>>> pre_hooks;
};

/// The node that adds the incoming gradient into a leaf's .grad, then runs its hooks.
struct AccumulateGrad : Node {
  explicit AccumulateGrad(std::shared_ptr<TensorImpl> leaf) : leaf(std::move(leaf)) {}
  TensorList apply(TensorList&& grads) override;
  std::string name() const override { return "AccumulateGrad"; }
  std::shared_ptr<TensorImpl> leaf;
  std::mutex mutex;  // guards leaf->grad while it is accumulated
};

/// The edge a gradient for `t` should flow into (its grad_fn, or its leaf accumulator).
Edge gradient_edge(const Tensor& t);

/// True when grad mode is on and any defined input requires grad.
bool needs_grad(std::initializer_list<const Tensor*> inputs);
bool needs_grad(const TensorList& inputs);

/// Creates node N for an op with these differentiable inputs, or returns null when nothing
/// needs a gradient. Wire outputs with set_history().
template <class N, class... Args>
std::shared_ptr<N> make_node(const TensorList& inputs, Args&&... args) {
  if (!needs_grad(inputs)) return nullptr;
  auto n = std::make_shared<N>(std::forward<Args>(args)...);
  n->next.reserve(inputs.size());
  for (const Tensor& t : inputs) n->next.push_back(t.defined() ? gradient_edge(t) : Edge{});
  return n;
}

/// Makes `outputs` results of `node` (output k is node output k); no-op for a null node.
void set_history(const TensorList& outputs, const std::shared_ptr<Node>& node);
void set_history(const Tensor& output, const std::shared_ptr<Node>& node);

/// Reduces a broadcast gradient back to `shape` (sums the broadcast dims).
Tensor sum_to(const Tensor& grad, const Shape& shape);

/// Runs backward from `roots` with `grads` (undefined: ones, only for one-element roots).
void backward(const TensorList& roots, const TensorList& grads = {}, bool retain_graph = false);

/// Gradients of `outputs` with respect to `inputs`, without touching any .grad.
/// `allow_unused`: an input the outputs do not depend on gets an undefined tensor
/// instead of an error.
TensorList grad(const TensorList& outputs, const TensorList& inputs,
                const TensorList& grad_outputs = {}, bool retain_graph = false,
                bool allow_unused = false);

}  // namespace ember::autograd
