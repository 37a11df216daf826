// CPU fused SGD step: the sgd_apply functor over contiguous buffers, OpenMP across chunks.
#include "kernels/cpu/loops.h"
#include "kernels/sgd.h"
#include "kernels/sgd_math.h"
#include "core/error.h"

namespace ember::cpu {

namespace {

// The options as template arguments: with them constant, sgd_apply inlines to straight-line
// arithmetic the compiler vectorizes (with the checks per element it ran ~4x slower).
template <bool Momentum, bool First, bool Nesterov, bool Maximize, class T>
void sgd_loop_fixed(T* p, const T* g, T* buf, int64_t n, const SgdStepArgs& a) {
  using C = compute_t<T>;
  const C lr = C(a.lr), mom = C(a.momentum), damp1 = C(1.0 - a.dampening), wd = C(a.weight_decay);
  parallel_for(n, [&](int64_t b, int64_t e) {
    // Built here, not captured: the flags must be constants where the loop is compiled.
    const SgdCoeffs<C> k{lr, mom, damp1, wd, Nesterov, Momentum, First, Maximize};
    if constexpr (Momentum) {
      for (int64_t i = b; i < e; ++i) {
        C m = C(buf[i]);
        p[i] = T(sgd_apply<C>(C(p[i]), C(g[i]), m, k));
        buf[i] = T(m);
      }
    } else {
      for (int64_t i = b; i < e; ++i) {
        C unused = C(0);
        p[i] = T(sgd_apply<C>(C(p[i]), C(g[i]), unused, k));
      }
    }
  });
}

template <class T>
void sgd_loop(T* p, const T* g, T* buf, int64_t n, const SgdStepArgs& a) {
  const bool mom = buf != nullptr;
  // The common configurations get their own loops; the rest share the fully general one.
  if (mom && !a.first_step && !a.nesterov && !a.maximize) return sgd_loop_fixed<true, false, false, false>(p, g, buf, n, a);
  if (mom && a.first_step && !a.nesterov && !a.maximize) return sgd_loop_fixed<true, true, false, false>(p, g, buf, n, a);
  if (!mom && !a.maximize) return sgd_loop_fixed<false, false, false, false>(p, g, buf, n, a);
  using C = compute_t<T>;
  const SgdCoeffs<C> k{C(a.lr),        C(a.momentum),     C(1.0 - a.dampening),
                       C(a.weight_decay), a.nesterov,     mom,
                       a.first_step,   a.maximize};
  parallel_for(n, [&](int64_t b, int64_t e) {
    if (buf) {
      for (int64_t i = b; i < e; ++i) {
        C m = C(buf[i]);
        p[i] = T(sgd_apply<C>(C(p[i]), C(g[i]), m, k));
        buf[i] = T(m);
      }
    } else {
      C unused = C(0);
      for (int64_t i = b; i < e; ++i) p[i] = T(sgd_apply<C>(C(p[i]), C(g[i]), unused, k));
    }
  });
}

}  // namespace

void sgd_step(DType dtype, void* param, const void* grad, void* momentum_buf, int64_t n,
              const SgdStepArgs& args) {
  if (n == 0) return;
  EMBER_DISPATCH_FLOAT(dtype, "sgd_step", [&] {
    sgd_loop<scalar_t>(static_cast<scalar_t*>(param), static_cast<const scalar_t*>(grad),
                       static_cast<scalar_t*>(momentum_buf), n, args);
  });
}

}  // namespace ember::cpu
