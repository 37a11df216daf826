#pragma once
// Autocast: mixed precision for the forward pass, as torch.autocast.
//
//   {
//     AutocastGuard amp(DType::f16);       // or DType::bf16
//     Tensor loss = cross_entropy(model(x), y);
//   }                                      // outside the scope nothing changes
//   scaler.scale(loss).backward();
//
// Under the guard each op casts its floating inputs by one policy table (autocast.cpp,
// Note [Autocast policy]): the tensor-core ops (conv2d, linear, matmul) run in the 16-bit
// type, the ops that need range or precision (softmax, losses, sums, exp/log/pow) in f32,
// the elementwise ops that mix types in the widest of their inputs; every other op runs in
// the type it is given. Parameters stay f32 (the "master weights"): an op casts them on
// the fly, and the 16-bit copy of a parameter is made once per scope and cached. The
// casts are ordinary differentiable copies, so gradients reach each leaf in its own dtype.
//
// The state is per thread. Backward runs with autocast off (each backward op computes in
// the dtype its forward op used). f64 tensors are never cast, as in PyTorch.
#include <array>
#include <cstdint>

#include "tensor/tensor.h"

namespace ember {

namespace autocast {

/// What an op does with its floating inputs under autocast.
enum class Policy : uint8_t {
  lower,   // cast f32 inputs to the autocast type (f16/bf16)
  f32,     // cast f16/bf16 inputs to f32
  widest,  // cast all floating inputs to the widest floating dtype among them
  mixed,   // takes a 16-bit input with f32 parameters as they are (batch_norm: statistics,
           // weight and bias in f32, output in the input's dtype)
};
const char* policy_name(Policy p);

/// The ops that autocast acts on (the table in autocast.cpp gives each its policy).
enum class Op : uint8_t {
  conv2d, linear, matmul, mm, bmm,
  softmax, log_softmax, cross_entropy, nll_loss, mse_loss,
  sum, mean, var, std, logsumexp,
  exp, log, pow, rsqrt, reciprocal,
  batch_norm,
  add, sub, mul, div, maximum, minimum, where, cat, stack,
  count_  // not an op
};

struct Rule {
  Op op;
  const char* name;
  Policy policy;
};
/// The policy table, one rule per Op in enum order (docs and tests read it).
const std::array<Rule, size_t(Op::count_)>& rules();
Policy policy(Op op);

namespace detail {
struct State {
  bool enabled = false;
  DType dtype = DType::f16;
  int depth = 0;  // nesting of enabled guards (the cast cache lives while > 0)
};
inline thread_local State tls;
void cast_inputs(Op op, Tensor* ts, size_t n);
void clear_cache();
}  // namespace detail

/// Whether autocast is on for this thread, and its 16-bit type.
inline bool is_enabled() { return detail::tls.enabled; }
inline DType dtype() { return detail::tls.dtype; }

/// `ts` cast by op's policy (as given when autocast is off). The op hooks of
/// autograd/ops/*.cpp call this first, so the policy stays in the table.
template <class... T>
std::array<Tensor, sizeof...(T)> inputs(Op op, const T&... ts) {
  std::array<Tensor, sizeof...(T)> r{ts...};
  if (is_enabled()) detail::cast_inputs(op, r.data(), r.size());
  return r;
}
inline TensorList inputs(Op op, const TensorList& ts) {
  TensorList r = ts;
  if (is_enabled()) detail::cast_inputs(op, r.data(), r.size());
  return r;
}

/// How many parameter casts the current scope has made and reused (tests: one cast per
/// weight per forward).
struct CacheStats {
  int64_t casts = 0, hits = 0;
};
CacheStats cache_stats();

}  // namespace autocast

/// Turns autocast on (f16 or bf16) or off for this thread until destroyed; nests. The
/// cast cache of parameters is emptied when the outermost enabled guard ends.
class AutocastGuard {
 public:
  explicit AutocastGuard(DType dtype, bool enabled = true);
  /// Autocast off inside (e.g. for an op the user wants in f32).
  static AutocastGuard disabled() { return AutocastGuard(DType::f16, false); }
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  autocast::detail::State prev_;
  bool counted_ = false;
};

}  // namespace ember
