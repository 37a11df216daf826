// nn::Module and nn::StateDict.
#include "nn/module.h"

#include <algorithm>
#include <sstream>
#include <unordered_set>

#include "autograd/grad_mode.h"
#include "autograd/ops.h"

namespace ember::nn {

// ---- StateDict

StateDict::StateDict(const std::vector<Item>& items) {
  for (const auto& [name, t] : items) insert(name, t);
}

void StateDict::insert(const std::string& name, const Tensor& t) {
  EMBER_CHECK(!contains(name), "StateDict: key '", name, "' is already present");
  index_.emplace(name, items_.size());
  items_.emplace_back(name, t);
}

void StateDict::set(const std::string& name, const Tensor& t) {
  auto it = index_.find(name);
  if (it == index_.end()) {
    insert(name, t);
  } else {
    items_[it->second].second = t;
  }
}

const Tensor& StateDict::at(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) {
    std::ostringstream os;
    size_t shown = std::min<size_t>(items_.size(), 8);
    for (size_t i = 0; i < shown; ++i) os << (i ? ", " : "") << items_[i].first;
    if (shown < items_.size()) os << ", ... (" << items_.size() << " keys)";
    EMBER_THROW("StateDict: no key '", name, "'; keys are: ", shown ? os.str() : "(none)");
  }
  return items_[it->second].second;
}

Tensor StateDict::get(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? Tensor() : items_[it->second].second;
}

std::vector<std::string> StateDict::keys() const {
  std::vector<std::string> k;
  k.reserve(items_.size());
  for (const auto& [name, t] : items_) k.push_back(name);
  return k;
}

// ---- registration

Tensor Module::forward(const Tensor&) {
  EMBER_THROW(type_name_, ": forward() is not implemented for this module");
}

void Module::check_new_name(const std::string& name, const char* what) const {
  EMBER_CHECK(!name.empty() && name.find('.') == std::string::npos, type_name_, ": ", what,
              " name '", name, "' must be non-empty and contain no '.'");
  auto taken = [&](const std::string& n) {
    for (const auto& [k, v] : params_) if (k == n) return true;
    for (const auto& b : buffers_) if (b.name == n) return true;
    for (const auto& [k, v] : children_) if (k == n) return true;
    return false;
  };
  EMBER_CHECK(!taken(name), type_name_, ": cannot register ", what, " '", name,
              "': the name is already used by a parameter, buffer or child module");
}

Tensor Module::register_parameter(const std::string& name, Tensor t, bool requires_grad) {
  if (!t.defined()) return t;
  check_new_name(name, "parameter");
  EMBER_CHECK(t.is_leaf(), type_name_, ": parameter '", name,
              "' must be a leaf tensor (detach() it first)");
  EMBER_CHECK(is_floating(t.dtype()), type_name_, ": parameter '", name,
              "' must have a floating dtype, got ", dtype_name(t.dtype()));
  t.requires_grad_(requires_grad);
  params_.emplace_back(name, t);
  return t;
}

Tensor Module::register_buffer(const std::string& name, Tensor t, bool persistent) {
  check_new_name(name, "buffer");
  EMBER_CHECK(t.defined(), type_name_, ": buffer '", name, "' is undefined");
  buffers_.push_back({name, t, persistent});
  return t;
}

void Module::add_child(const std::string& name, std::shared_ptr<Module> m) {
  EMBER_CHECK(m != nullptr, type_name_, ": child module '", name, "' is null");
  EMBER_CHECK(m.get() != this, type_name_, ": a module cannot be its own child");
  check_new_name(name, "child module");
  children_.emplace_back(name, std::move(m));
}

// ---- traversal

std::vector<std::pair<std::string, Tensor>> Module::named_parameters(bool recurse) const {
  std::vector<std::pair<std::string, Tensor>> out;
  std::unordered_set<const TensorImpl*> seen;  // shared (tied) parameters are listed once
  auto visit = [&](auto&& self, const Module& m, const std::string& prefix) -> void {
    for (const auto& [name, t] : m.params_)
      if (seen.insert(t.impl()).second) out.emplace_back(prefix + name, t);
    if (!recurse) return;
    for (const auto& [name, c] : m.children_) self(self, *c, prefix + name + ".");
  };
  visit(visit, *this, "");
  return out;
}

TensorList Module::parameters(bool recurse) const {
  TensorList out;
  for (auto& [name, t] : named_parameters(recurse)) out.push_back(t);
  return out;
}

std::vector<std::pair<std::string, Tensor>> Module::named_buffers(bool recurse) const {
  std::vector<std::pair<std::string, Tensor>> out;
  auto visit = [&](auto&& self, const Module& m, const std::string& prefix) -> void {
    for (const auto& b : m.buffers_) out.emplace_back(prefix + b.name, b.tensor);
    if (!recurse) return;
    for (const auto& [name, c] : m.children_) self(self, *c, prefix + name + ".");
  };
  visit(visit, *this, "");
  return out;
}

TensorList Module::buffers(bool recurse) const {
  TensorList out;
  for (auto& [name, t] : named_buffers(recurse)) out.push_back(t);
  return out;
}

std::vector<std::pair<std::string, std::shared_ptr<Module>>> Module::named_children() const {
  return children_;
}

std::vector<std::shared_ptr<Module>> Module::children() const {
  std::vector<std::shared_ptr<Module>> out;
  for (const auto& [name, c] : children_) out.push_back(c);
  return out;
}

std::vector<std::pair<std::string, std::shared_ptr<Module>>> Module::named_modules() {
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> out;
  auto visit = [&](auto&& self, const std::shared_ptr<Module>& m, const std::string& name) -> void {
    out.emplace_back(name, m);
    for (const auto& [cn, c] : m->children_) self(self, c, name.empty() ? cn : name + "." + cn);
  };
  auto self = weak_from_this().lock();
  EMBER_CHECK(self != nullptr, type_name_, ".named_modules(): the module must be held by a "
              "std::shared_ptr (create it with std::make_shared)");
  visit(visit, self, "");
  return out;
}

std::shared_ptr<Module> Module::child(const std::string& name) const {
  for (const auto& [n, c] : children_)
    if (n == name) return c;
  std::string names;
  for (const auto& [n, c] : children_) names += (names.empty() ? "" : ", ") + n;
  EMBER_THROW(type_name_, ": no child module '", name, "'; children are: ",
              names.empty() ? "(none)" : names);
}

int64_t Module::num_parameters(bool only_trainable) const {
  int64_t n = 0;
  for (const auto& [name, t] : named_parameters())
    if (!only_trainable || t.requires_grad()) n += t.numel();
  return n;
}

// ---- modes, moves, gradients

Module& Module::train(bool on) {
  training_ = on;
  for (auto& [name, c] : children_) c->train(on);
  return *this;
}

namespace {
// Points `t`'s TensorImpl at `src`'s data (Note [Module device moves]).
void replace_data(const Tensor& t, const Tensor& src) {
  TensorImpl* impl = t.impl();
  // Tensors saved for backward before the move still point at the old storage: bumping its
  // version makes that backward refuse to run (Note [Version counter]) instead of computing
  // on the old data and sending gradients to a leaf that has moved.
  if (impl->storage) impl->storage->bump_version();
  const TensorImpl* s = src.impl();
  impl->storage = s->storage;
  impl->sizes = s->sizes;
  impl->strides = s->strides;
  impl->offset = s->offset;
  impl->dtype = s->dtype;
  impl->refresh();
}

// Applies `convert` to every parameter (and its grad) and buffer of the tree, once each;
// `convert` returns an undefined tensor when nothing needs to change.
template <class F>
void convert_all(const Module& root, F&& convert) {
  NoGradGuard no_grad;
  std::unordered_set<const TensorImpl*> seen;
  auto apply = [&](const Tensor& t) {
    if (!seen.insert(t.impl()).second) return;
    Tensor moved = convert(t);
    if (moved.defined()) replace_data(t, moved);
    Tensor g = t.grad();
    if (g.defined()) {
      Tensor gm = convert(g);
      if (gm.defined()) t.set_grad(gm);
    }
  };
  for (const auto& [name, p] : root.named_parameters()) apply(p);
  for (const auto& [name, b] : root.named_buffers()) apply(b);
}
}  // namespace

Module& Module::to(Device device) {
  convert_all(*this, [&](const Tensor& t) {
    return t.device() == device ? Tensor() : t.detach().to(device);
  });
  return *this;
}

Module& Module::to(DType dtype) {
  EMBER_CHECK(is_floating(dtype), type_name_, ".to(", dtype_name(dtype),
              "): modules convert to a floating dtype only");
  convert_all(*this, [&](const Tensor& t) {
    return (!is_floating(t.dtype()) || t.dtype() == dtype) ? Tensor() : t.detach().to(dtype);
  });
  return *this;
}

Device Module::device() const {
  auto ps = named_parameters();
  if (!ps.empty()) return ps.front().second.device();
  auto bs = named_buffers();
  if (!bs.empty()) return bs.front().second.device();
  return kCPU;
}

void zero_grad(const TensorList& params, bool set_to_none) {
  NoGradGuard no_grad;
  for (const Tensor& p : params) {
    Tensor g = p.grad();
    if (!g.defined()) continue;
    if (set_to_none) {
      p.set_grad(Tensor());
    } else {
      g.zero_();
    }
  }
}

void Module::zero_grad(bool set_to_none) { nn::zero_grad(parameters(), set_to_none); }

// ---- state dicts

void Module::collect_state(const std::string& prefix,
                           std::vector<std::pair<std::string, Tensor>>& out) const {
  for (const auto& [name, t] : params_) out.emplace_back(prefix + name, t);
  for (const auto& b : buffers_)
    if (b.persistent) out.emplace_back(prefix + b.name, b.tensor);
  for (const auto& [name, c] : children_) c->collect_state(prefix + name + ".", out);
}

StateDict Module::state_dict() const {
  std::vector<std::pair<std::string, Tensor>> entries;
  collect_state("", entries);
  StateDict sd;
  for (const auto& [name, t] : entries) sd.insert(name, t.detach());
  return sd;
}

namespace {
// 0: bool, 1: integer, 2: floating point.
int dtype_kind(DType d) { return is_floating(d) ? 2 : d == DType::b8 ? 0 : 1; }
}  // namespace

LoadResult Module::load_state_dict(const StateDict& state, bool strict) {
  std::vector<std::pair<std::string, Tensor>> own;
  collect_state("", own);
  LoadResult res;
  std::vector<std::string> mismatched, wrong_dtype;
  std::unordered_set<std::string> own_names;
  for (const auto& [name, t] : own) {
    own_names.insert(name);
    Tensor src = state.get(name);
    if (!src.defined()) {
      res.missing_keys.push_back(name);
    } else if (src.shape() != t.shape()) {
      mismatched.push_back(name + " (expected " + t.shape_str() + ", got " + src.shape_str() + ")");
    } else if (dtype_kind(src.dtype()) != dtype_kind(t.dtype())) {
      // Floating dtypes convert (f64 or f16 weights into an f32 model, as PyTorch); a change
      // of kind would hide a wrong file (i32 read into f32 weights: values of 1e9).
      wrong_dtype.push_back(name + " (expected " + dtype_name(t.dtype()) + ", got " +
                            dtype_name(src.dtype()) + ")");
    }
  }
  for (const auto& [name, t] : state)
    if (!own_names.count(name)) res.unexpected_keys.push_back(name);

  bool fail = !mismatched.empty() || !wrong_dtype.empty() || (strict && (!res.missing_keys.empty() || !res.unexpected_keys.empty()));
  if (fail) {
    std::ostringstream os;
    os << "Error(s) in loading state_dict for " << type_name_ << ":";
    auto list = [&](const char* what, const std::vector<std::string>& keys) {
      if (keys.empty()) return;
      os << "\n  " << what << " (" << keys.size() << "): ";
      for (size_t i = 0; i < keys.size(); ++i) os << (i ? ", " : "") << keys[i];
    };
    if (strict) {
      list("missing keys", res.missing_keys);
      list("unexpected keys", res.unexpected_keys);
    }
    list("size mismatch", mismatched);
    list("dtype mismatch", wrong_dtype);
    EMBER_THROW(os.str());
  }

  NoGradGuard no_grad;
  for (const auto& [name, t] : own) {
    Tensor src = state.get(name);
    if (!src.defined() || src.is_same(t)) continue;
    Tensor dst = t;
    dst.copy_(src);
  }
  return res;
}

// ---- printing

void Module::repr_into(std::string& out, int indent) const {
  out += type_name_ + "(";
  std::string extra = extra_repr();
  if (children_.empty()) {
    out += extra + ")";
    return;
  }
  std::string pad(size_t(indent + 2), ' ');
  if (!extra.empty()) out += "\n" + pad + extra;
  for (const auto& [name, c] : children_) {
    out += "\n" + pad + "(" + name + "): ";
    c->repr_into(out, indent + 2);
  }
  out += "\n" + std::string(size_t(indent), ' ') + ")";
}

std::string Module::repr() const {
  std::string out;
  repr_into(out, 0);
  return out;
}

}  // namespace ember::nn
