// Optimizer base and SGD.
#include "optim/sgd.h"

#include <unordered_set>

#include "autograd/grad_mode.h"
#include "autograd/ops.h"
#include "nn/module.h"

namespace ember::optim {

// ---- Optimizer

Optimizer::Optimizer(TensorList params) : params_(std::move(params)) {
  EMBER_CHECK(!params_.empty(), "optimizer got an empty parameter list");
  std::unordered_set<const TensorImpl*> seen;
  for (size_t i = 0; i < params_.size(); ++i) {
    const Tensor& p = params_[i];
    EMBER_CHECK(p.defined(), "optimizer: parameter ", i, " is undefined");
    EMBER_CHECK(is_floating(p.dtype()), "optimizer: parameter ", i,
                " must have a floating dtype, got ", dtype_name(p.dtype()));
    EMBER_CHECK(p.is_leaf(), "optimizer: parameter ", i, " is not a leaf tensor");
    EMBER_CHECK(seen.insert(p.impl()).second, "optimizer: parameter ", i,
                " appears more than once in the parameter list");
  }
}

void Optimizer::zero_grad(bool set_to_none) { nn::zero_grad(params_, set_to_none); }

// ---- SGD

namespace {
void check_options(const SGDOptions& o) {
  EMBER_CHECK(o.lr >= 0.0, "SGD: lr must be >= 0, got ", o.lr);
  EMBER_CHECK(o.momentum >= 0.0, "SGD: momentum must be >= 0, got ", o.momentum);
  EMBER_CHECK(o.weight_decay >= 0.0, "SGD: weight_decay must be >= 0, got ", o.weight_decay);
  EMBER_CHECK(!o.nesterov || (o.momentum > 0.0 && o.dampening == 0.0),
              "SGD: nesterov needs momentum > 0 and dampening = 0, got momentum ", o.momentum,
              " and dampening ", o.dampening);
}
}  // namespace

SGD::SGD(TensorList params, SGDOptions options)
    : Optimizer(std::move(params)),
      options_(options),
      buffers_(params_.size()),
      masters_(params_.size()),
      master_versions_(params_.size(), 0) {
  check_options(options_);
}

void SGD::set_lr(double lr) {
  EMBER_CHECK(lr >= 0.0, "SGD: lr must be >= 0, got ", lr);
  options_.lr = lr;
}

const Tensor& SGD::momentum_buffer(size_t i) const {
  EMBER_CHECK(i < buffers_.size(), "SGD: parameter index ", i, " out of range for ",
              buffers_.size(), " parameters");
  return buffers_[i];
}

const Tensor& SGD::master(size_t i) const {
  EMBER_CHECK(i < masters_.size(), "SGD: parameter index ", i, " out of range for ",
              masters_.size(), " parameters");
  return masters_[i];
}

namespace {
bool is_16bit(DType t) { return t == DType::f16 || t == DType::bf16; }
}  // namespace

Tensor& SGD::update_target(size_t i) {
  Tensor& p = params_[i];
  if (!is_16bit(p.dtype())) {
    masters_[i] = Tensor();
    return p;
  }
  Tensor& m = masters_[i];
  if (!m.defined() || m.device() != p.device() || master_versions_[i] != p.version() ||
      m.shape() != p.shape()) {
    m = p.detach().to(DType::f32).contiguous();
    if (m.is_same(p)) m = m.clone();
  }
  return m;
}

void SGD::step() {
  NoGradGuard no_grad;
  const bool use_momentum = options_.momentum != 0.0;
  // Checks first, so a bad parameter changes nothing (no half-applied step, no momentum
  // buffer left uninitialized).
  for (size_t i = 0; i < params_.size(); ++i) {
    const Tensor& p = params_[i];
    const Tensor& g = p.grad();
    if (!g.defined()) continue;
    EMBER_CHECK(g.shape() == p.shape() && g.dtype() == p.dtype() && g.device() == p.device(),
                "SGD: the gradient of parameter ", i, " (", g.shape_str(), ", ",
                dtype_name(g.dtype()), ", ", g.device().str(), ") does not match it (",
                p.shape_str(), ", ", dtype_name(p.dtype()), ", ", p.device().str(), ")");
    // Parameters are contiguous when made by nn layers; the fused update needs that.
    EMBER_CHECK(p.is_contiguous(), "SGD: parameter ", i, " ", p.shape_str(),
                " must be contiguous for the fused update");
  }
  // One fused update over every parameter with a gradient (sgd_update_, one dispatch).
  TensorList targets, grads, bufs;
  std::vector<bool> first;
  std::vector<size_t> rounded;  // 16-bit parameters, written from their masters at the end
  for (size_t i = 0; i < params_.size(); ++i) {
    const Tensor& param = params_[i];
    Tensor g = param.grad();
    if (!g.defined()) continue;
    Tensor& p = update_target(i);  // Note [16-bit parameters]
    if (!p.is_same(param)) rounded.push_back(i);
    Tensor& buf = buffers_[i];
    // The parameter moved (Module::to) since the buffer was made: the buffer follows it.
    if (buf.defined() && (buf.device() != p.device() || buf.dtype() != p.dtype()))
      buf = buf.to(p.device(), p.dtype()).contiguous();
    bool is_new = false;
    if (use_momentum && !buf.defined()) {
      buf = empty(p.shape(), {.dtype = p.dtype(), .device = p.device()});
      is_new = true;
    }
    targets.push_back(p);
    grads.push_back(g.to(p.dtype()).contiguous());
    bufs.push_back(use_momentum ? buf : Tensor());
    first.push_back(is_new);
  }
  sgd_update_(targets, grads, bufs, first, options_);
  // Round the masters into their 16-bit parameters (queued after the updates on CUDA).
  for (size_t i : rounded) {
    params_[i].copy_(masters_[i]);
    master_versions_[i] = params_[i].version();
  }
}

OptimizerState SGD::state_dict() const {
  OptimizerState s;
  for (size_t i = 0; i < buffers_.size(); ++i)
    if (buffers_[i].defined())
      s.tensors.insert("state." + std::to_string(i) + ".momentum_buffer", buffers_[i]);
  for (size_t i = 0; i < masters_.size(); ++i)
    if (masters_[i].defined()) s.tensors.insert("state." + std::to_string(i) + ".master", masters_[i]);
  s.scalars = {{"lr", options_.lr},
               {"momentum", options_.momentum},
               {"dampening", options_.dampening},
               {"weight_decay", options_.weight_decay},
               {"nesterov", options_.nesterov ? 1.0 : 0.0},
               {"maximize", options_.maximize ? 1.0 : 0.0},
               {"num_params", double(params_.size())}};
  return s;
}

void SGD::load_state_dict(const OptimizerState& state) {
  auto scalar = [&](const char* key) {
    auto it = state.scalars.find(key);
    EMBER_CHECK(it != state.scalars.end(), "SGD.load_state_dict: the state has no '", key,
                "' entry");
    return it->second;
  };
  double n = scalar("num_params");
  EMBER_CHECK(n == double(params_.size()), "SGD.load_state_dict: the state is for ", n,
              " parameters, this optimizer has ", params_.size());
  SGDOptions o{scalar("lr"), scalar("momentum"), scalar("dampening"), scalar("weight_decay"),
               scalar("nesterov") != 0.0, scalar("maximize") != 0.0};
  check_options(o);
  // Validate every buffer before changing anything.
  std::vector<Tensor> bufs(params_.size()), masters(params_.size());
  size_t matched = 0;
  for (size_t i = 0; i < params_.size(); ++i) {
    Tensor m = state.tensors.get("state." + std::to_string(i) + ".master");
    if (m.defined()) {
      ++matched;
      EMBER_CHECK(is_16bit(params_[i].dtype()) && m.shape() == params_[i].shape() && is_floating(m.dtype()),
                  "SGD.load_state_dict: master copy ", i, " (", m.shape_str(), ", ", dtype_name(m.dtype()),
                  ") does not fit parameter ", i, " (", params_[i].shape_str(), ", ",
                  dtype_name(params_[i].dtype()), "; only 16-bit parameters have one)");
      masters[i] = m;
    }
    Tensor b = state.tensors.get("state." + std::to_string(i) + ".momentum_buffer");
    if (!b.defined()) continue;
    ++matched;
    EMBER_CHECK(b.shape() == params_[i].shape(), "SGD.load_state_dict: momentum buffer ", i,
                " has shape ", b.shape_str(), ", its parameter has ", params_[i].shape_str());
    EMBER_CHECK(is_floating(b.dtype()), "SGD.load_state_dict: momentum buffer ", i, " is ",
                dtype_name(b.dtype()), ", expected a floating dtype (its parameter is ",
                dtype_name(params_[i].dtype()), ")");
    bufs[i] = b;
  }
  EMBER_CHECK(matched == state.tensors.size(), "SGD.load_state_dict: ",
              state.tensors.size() - matched, " tensor(s) in the state are not momentum buffers "
              "or master copies of this optimizer's parameters (expected keys "
              "state.<i>.momentum_buffer or state.<i>.master, i < ",
              params_.size(), ")");
  NoGradGuard no_grad;
  for (size_t i = 0; i < params_.size(); ++i) {
    const Tensor& p = params_[i];
    // Buffers of 16-bit parameters are f32, as their masters (Note [16-bit parameters]).
    const DType dt = is_16bit(p.dtype()) ? DType::f32 : p.dtype();
    masters_[i] = Tensor();
    if (masters[i].defined()) {
      masters_[i] = empty(p.shape(), {.dtype = DType::f32, .device = p.device()});
      masters_[i].copy_(masters[i]);
      master_versions_[i] = p.version();
    }
    if (!bufs[i].defined()) {
      buffers_[i] = Tensor();
      continue;
    }
    // A private copy on the parameter's device and dtype (the state may be on the CPU).
    Tensor b = empty(p.shape(), {.dtype = dt, .device = p.device()});
    b.copy_(bufs[i]);
    buffers_[i] = b;
  }
  options_ = o;
}

}  // namespace ember::optim
