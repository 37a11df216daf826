#pragma once
// nn::Module: named parameters, buffers and child modules in registration order, with
// PyTorch's dotted names ("conv1.weight", "features.0.bias"), train/eval, device moves and
// state dicts that load into (and from) the same PyTorch modules.
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "tensor/tensor.h"

namespace ember::nn {

/// Named tensors in insertion order, like the OrderedDict PyTorch's state_dict() returns.
class StateDict {
 public:
  using Item = std::pair<std::string, Tensor>;

  StateDict() = default;
  /// From named tensors, e.g. a loaded safetensors file's; throws on a repeated name.
  explicit StateDict(const std::vector<Item>& items);

  /// Adds `name` (throws when it is already present).
  void insert(const std::string& name, const Tensor& t);
  /// Adds or replaces `name` (a replaced entry keeps its position).
  void set(const std::string& name, const Tensor& t);
  bool contains(const std::string& name) const { return index_.count(name) != 0; }
  /// The tensor called `name`; throws, listing a few keys, when it is absent.
  const Tensor& at(const std::string& name) const;
  /// The tensor called `name`, or an undefined tensor.
  Tensor get(const std::string& name) const;
  std::vector<std::string> keys() const;
  size_t size() const { return items_.size(); }
  bool empty() const { return items_.empty(); }
  auto begin() const { return items_.begin(); }
  auto end() const { return items_.end(); }
  /// The entries in order (the form save_safetensors takes).
  const std::vector<Item>& items() const { return items_; }

 private:
  std::vector<Item> items_;
  std::unordered_map<std::string, size_t> index_;
};

/// What a non-strict load_state_dict() skipped (PyTorch's _IncompatibleKeys).
struct LoadResult {
  std::vector<std::string> missing_keys;     // in the module, not in the state dict
  std::vector<std::string> unexpected_keys;  // in the state dict, not in the module
};

/// Clears the gradients of `params`: drops them (set_to_none) or fills them with zeros.
/// Shared by Module::zero_grad and Optimizer::zero_grad.
void zero_grad(const TensorList& params, bool set_to_none = true);

/// Base class of every layer and model. Modules are held by std::shared_ptr; a parent owns
/// its children. Subclasses register their tensors and children in their constructor and
/// implement forward().
///
/// Note [Module device moves]: to(device)/to(dtype) move each parameter and buffer *in place*:
/// the TensorImpl behind the handle gets the new storage (as `param.data = ...` in PyTorch),
/// so Tensor handles held elsewhere (layer members, an optimizer's parameter list) keep
/// seeing the moved tensor and nothing needs re-registering. Gradients move with them. The
/// version counter is bumped so a graph recorded before the move refuses to run backward.
class Module : public std::enable_shared_from_this<Module> {
 public:
  explicit Module(std::string type_name = "Module") : type_name_(std::move(type_name)) {}
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  /// The computation. The base implementation throws (a container without one).
  virtual Tensor forward(const Tensor& x);
  Tensor operator()(const Tensor& x) { return forward(x); }

  // ---- parameters, buffers, children (registration order; recurse = depth first, own
  // entries before the children's, as PyTorch)
  std::vector<std::pair<std::string, Tensor>> named_parameters(bool recurse = true) const;
  TensorList parameters(bool recurse = true) const;
  std::vector<std::pair<std::string, Tensor>> named_buffers(bool recurse = true) const;
  TensorList buffers(bool recurse = true) const;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> named_children() const;
  std::vector<std::shared_ptr<Module>> children() const;
  /// This module ("") and every descendant, with dotted names, pre-order. The module must be
  /// held by a std::shared_ptr.
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> named_modules();
  /// The direct child `name`; throws when there is none.
  std::shared_ptr<Module> child(const std::string& name) const;
  /// Number of parameter elements (all of them, or only those that require grad).
  int64_t num_parameters(bool only_trainable = false) const;

  // ---- modes
  /// Sets training mode on this module and all descendants.
  virtual Module& train(bool on = true);
  Module& eval() { return train(false); }
  bool is_training() const { return training_; }

  /// Moves every parameter and buffer in place (Note [Module device moves]).
  Module& to(Device device);
  /// Converts floating parameters and buffers in place (integer buffers keep their dtype).
  Module& to(DType dtype);
  /// The device of the first parameter or buffer (CPU for a module without any).
  Device device() const;

  /// Clears the gradients of all parameters: drops them (set_to_none, PyTorch's default)
  /// or fills them with zeros.
  void zero_grad(bool set_to_none = true);

  // ---- state dicts
  /// Parameters and persistent buffers with their dotted names, own entries first (params,
  /// then buffers), then each child's. The tensors are detached views sharing storage with
  /// the module: clone() them for a snapshot.
  StateDict state_dict() const;
  /// Copies values into the module's tensors (in place; device and floating dtype are
  /// converted). Checks everything before copying anything: keys whose shapes differ, or
  /// whose dtype is of another kind (integer or bool where the module has floating point,
  /// or the reverse), are always an error; with `strict`, so are missing and unexpected
  /// keys. One ember::Error lists them all. Without `strict`, returns the missing and
  /// unexpected keys.
  LoadResult load_state_dict(const StateDict& state, bool strict = true);

  // ---- printing
  const std::string& type_name() const { return type_name_; }
  /// The arguments shown between the parentheses, e.g. "in_features=4, out_features=2".
  virtual std::string extra_repr() const { return ""; }
  /// PyTorch-style tree: "LeNet(\n  (conv1): Conv2d(1, 6, kernel_size=(5, 5), ...)\n...)".
  std::string repr() const;

 protected:
  /// Registers a parameter (set to require grad) and returns its handle. An undefined
  /// tensor registers nothing (e.g. a layer without bias) and is returned as is.
  Tensor register_parameter(const std::string& name, Tensor t, bool requires_grad = true);
  /// Registers a buffer; non-persistent ones are left out of state_dict().
  Tensor register_buffer(const std::string& name, Tensor t, bool persistent = true);
  /// Registers a child module and returns it.
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> m) {
    add_child(name, m);
    return m;
  }
  void add_child(const std::string& name, std::shared_ptr<Module> m);

 private:
  struct Buffer {
    std::string name;
    Tensor tensor;
    bool persistent;
  };
  void check_new_name(const std::string& name, const char* what) const;
  void collect_state(const std::string& prefix,
                     std::vector<std::pair<std::string, Tensor>>& out) const;
  void repr_into(std::string& out, int indent) const;

  std::string type_name_;
  bool training_ = true;
  std::vector<std::pair<std::string, Tensor>> params_;
  std::vector<Buffer> buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
};

using ModulePtr = std::shared_ptr<Module>;

}  // namespace ember::nn
