// Autocast: the policy table and the casts (autograd/autocast.h).
#include "autograd/autocast.h"

#include <map>
#include <tuple>

#include "autograd/grad_mode.h"

namespace ember {

namespace autocast {

// Note [Autocast policy]: the one place that says what autocast does to each op (the ops
// call autocast::inputs with their Op at entry; nothing else is op-specific). It follows
// torch.autocast's lists for the ops ember has:
// - lower: the GEMM and convolution ops, which run on tensor cores (cuBLAS/cuDNN with f32
//   accumulation) and whose inputs tolerate 16-bit rounding;
// - f32: ops whose result needs f32 range or precision: softmax and the losses (exp of
//   large logits, sums of many terms), reductions (f32 accumulation and result), exp, log,
//   pow, rsqrt, reciprocal (overflow or loss of relative precision in f16);
// - widest: ops that combine tensors (residual adds, masks, concatenation) run in the
//   widest input type, so a 16-bit activation and an f32 one do not lose the f32 one;
// - mixed: batch_norm takes the 16-bit activation with its f32 weight, bias and running
//   statistics and computes the statistics in f32 (as cuDNN does); its output keeps the
//   input's type, so the activations saved for backward stay 16-bit.
// Ops not in the table (relu, pooling, dropout, views, ...) run in the type they are given,
// so a 16-bit activation stays 16-bit through them.
namespace {
constexpr std::array<Rule, size_t(Op::count_)> kRules = {{
    {Op::conv2d, "conv2d", Policy::lower},
    {Op::linear, "linear", Policy::lower},
    {Op::matmul, "matmul", Policy::lower},
    {Op::mm, "mm", Policy::lower},
    {Op::bmm, "bmm", Policy::lower},
    {Op::softmax, "softmax", Policy::f32},
    {Op::log_softmax, "log_softmax", Policy::f32},
    {Op::cross_entropy, "cross_entropy", Policy::f32},
    {Op::nll_loss, "nll_loss", Policy::f32},
    {Op::mse_loss, "mse_loss", Policy::f32},
    {Op::sum, "sum", Policy::f32},
    {Op::mean, "mean", Policy::f32},
    {Op::var, "var", Policy::f32},
    {Op::std, "std", Policy::f32},
    {Op::logsumexp, "logsumexp", Policy::f32},
    {Op::exp, "exp", Policy::f32},
    {Op::log, "log", Policy::f32},
    {Op::pow, "pow", Policy::f32},
    {Op::rsqrt, "rsqrt", Policy::f32},
    {Op::reciprocal, "reciprocal", Policy::f32},
    {Op::batch_norm, "batch_norm", Policy::mixed},
    {Op::add, "add", Policy::widest},
    {Op::sub, "sub", Policy::widest},
    {Op::mul, "mul", Policy::widest},
    {Op::div, "div", Policy::widest},
    {Op::maximum, "maximum", Policy::widest},
    {Op::minimum, "minimum", Policy::widest},
    {Op::where, "where", Policy::widest},
    {Op::cat, "cat", Policy::widest},
    {Op::stack, "stack", Policy::widest},
}};

constexpr bool rules_in_enum_order() {
  for (size_t i = 0; i < kRules.size(); ++i)
    if (size_t(kRules[i].op) != i) return false;
  return true;
}
static_assert(rules_in_enum_order(), "autocast: kRules must list every Op once, in enum order");

// Only f32/f16/bf16 take part; f64 (gradient checks) and integer tensors are left alone.
bool eligible(const Tensor& t) {
  return t.defined() && (t.dtype() == DType::f32 || t.dtype() == DType::f16 || t.dtype() == DType::bf16);
}

// The 16-bit copies of parameters made in this scope. An entry keeps its source alive (so
// its address cannot be reused by another tensor) and is valid while the source's version
// is unchanged (an optimizer step inside the scope makes a fresh copy).
struct CacheEntry {
  Tensor src, cast;
  uint64_t version;
};
using CacheKey = std::tuple<const TensorImpl*, DType, bool>;  // source, dtype, grad mode
thread_local std::map<CacheKey, CacheEntry> t_cache;
thread_local CacheStats t_stats;

Tensor cached_cast(const Tensor& t, DType to) {
  // Only leaves that require grad (parameters) are cached, as in PyTorch: activations are
  // cast once anyway, and caching them would keep them alive for the whole scope.
  if (!(t.is_leaf() && t.requires_grad())) return t.to(to);
  CacheKey key{t.impl(), to, GradMode::is_enabled()};
  auto it = t_cache.find(key);
  if (it != t_cache.end() && it->second.version == t.version()) {
    ++t_stats.hits;
    return it->second.cast;
  }
  Tensor c = t.to(to);
  ++t_stats.casts;
  t_cache[key] = CacheEntry{t, c, t.version()};
  return c;
}
}  // namespace

const char* policy_name(Policy p) {
  switch (p) {
    case Policy::lower: return "lower";
    case Policy::f32: return "f32";
    case Policy::widest: return "widest";
    case Policy::mixed: return "mixed";
  }
  return "?";
}

const std::array<Rule, size_t(Op::count_)>& rules() { return kRules; }
Policy policy(Op op) { return kRules[size_t(op)].policy; }

CacheStats cache_stats() { return t_stats; }

namespace detail {

void clear_cache() {
  t_cache.clear();
  t_stats = {};
}

void cast_inputs(Op op, Tensor* ts, size_t n) {
  switch (policy(op)) {
    case Policy::lower: {
      const DType to = tls.dtype;
      for (size_t i = 0; i < n; ++i)
        if (eligible(ts[i]) && ts[i].dtype() != to) ts[i] = cached_cast(ts[i], to);
      break;
    }
    case Policy::f32:
      for (size_t i = 0; i < n; ++i)
        if (eligible(ts[i]) && ts[i].dtype() != DType::f32) ts[i] = ts[i].to(DType::f32);
      break;
    case Policy::widest: {
      bool any = false;
      DType w = DType::f16;
      for (size_t i = 0; i < n; ++i) {
        if (!eligible(ts[i])) continue;
        w = any ? promote_types(w, ts[i].dtype()) : ts[i].dtype();
        any = true;
      }
      for (size_t i = 0; i < n; ++i)
        if (eligible(ts[i]) && ts[i].dtype() != w) ts[i] = ts[i].to(w);
      break;
    }
    case Policy::mixed:
      break;
  }
}

}  // namespace detail

}  // namespace autocast

AutocastGuard::AutocastGuard(DType dtype, bool enabled) : prev_(autocast::detail::tls) {
  auto& s = autocast::detail::tls;
  if (enabled) {
    EMBER_CHECK(dtype == DType::f16 || dtype == DType::bf16,
                "AutocastGuard: the autocast dtype must be f16 or bf16, got ", dtype_name(dtype));
    s.enabled = true;
    s.dtype = dtype;
    ++s.depth;
    counted_ = true;
  } else {
    s.enabled = false;
  }
}

AutocastGuard::~AutocastGuard() {
  auto& s = autocast::detail::tls;
  const int depth = s.depth - (counted_ ? 1 : 0);
  s = prev_;
  s.depth = depth;
  if (counted_ && depth == 0) autocast::detail::clear_cache();
}

}  // namespace ember
