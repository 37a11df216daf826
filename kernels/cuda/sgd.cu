// CUDA fused SGD step: one grid-stride pass over param, grad and momentum buffer, 128-bit
// vectorized when all three are aligned; the arithmetic is sgd_apply (kernels/sgd_math.h).
#include "kernels/cuda/launch.h"
#include "kernels/sgd.h"
#include "kernels/sgd_math.h"

namespace ember::cuda {

// ---- kernels
template <class T, int VEC, bool HAS_BUF>
__global__ void sgd_kernel(T* __restrict__ p, const T* __restrict__ g, T* __restrict__ buf,
                           int64_t n, SgdCoeffs<compute_t<T>> k) {
  using C = compute_t<T>;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t tid = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t nvec = n / VEC;
  for (int64_t i = tid; i < nvec; i += stride) {
    Vec<T, VEC> pv = reinterpret_cast<const Vec<T, VEC>*>(p)[i];
    Vec<T, VEC> gv = reinterpret_cast<const Vec<T, VEC>*>(g)[i];
    Vec<T, VEC> bv;
    if constexpr (HAS_BUF) bv = reinterpret_cast<const Vec<T, VEC>*>(buf)[i];
#pragma unroll
    for (int j = 0; j < VEC; ++j) {
      C m = HAS_BUF ? C(bv.v[j]) : C(0);
      pv.v[j] = T(sgd_apply<C>(C(pv.v[j]), C(gv.v[j]), m, k));
      if constexpr (HAS_BUF) bv.v[j] = T(m);
    }
    reinterpret_cast<Vec<T, VEC>*>(p)[i] = pv;
    if constexpr (HAS_BUF) reinterpret_cast<Vec<T, VEC>*>(buf)[i] = bv;
  }
  for (int64_t i = nvec * VEC + tid; i < n; i += stride) {
    C m = HAS_BUF ? C(buf[i]) : C(0);
    p[i] = T(sgd_apply<C>(C(p[i]), C(g[i]), m, k));
    if constexpr (HAS_BUF) buf[i] = T(m);
  }
}

// ---- launchers
namespace {
template <class T, bool HAS_BUF>
void launch(T* p, const T* g, T* buf, int64_t n, const SgdCoeffs<compute_t<T>>& k,
            cudaStream_t s) {
  constexpr int V = vec_width<T>();
  const size_t bytes = sizeof(T) * V;
  bool aligned = aligned_to(p, bytes) && aligned_to(g, bytes) && (!HAS_BUF || aligned_to(buf, bytes));
  if (aligned) {
    sgd_kernel<T, V, HAS_BUF><<<grid_for(ceil_div(n, V)), kThreads, 0, s>>>(p, g, buf, n, k);
  } else {
    sgd_kernel<T, 1, HAS_BUF><<<grid_for(n), kThreads, 0, s>>>(p, g, buf, n, k);
  }
  EMBER_CUDA_CHECK_LAUNCH();
}
}  // namespace

void sgd_step(DType dtype, void* param, const void* grad, void* momentum_buf, int64_t n,
              const SgdStepArgs& a, cudaStream_t stream) {
  if (n == 0) return;
  EMBER_DISPATCH_FLOAT(dtype, "sgd_step", [&] {
    using C = compute_t<scalar_t>;
    const SgdCoeffs<C> k{C(a.lr),           C(a.momentum), C(1.0 - a.dampening),
                         C(a.weight_decay), a.nesterov,    momentum_buf != nullptr,
                         a.first_step,      a.maximize};
    auto* p = static_cast<scalar_t*>(param);
    auto* g = static_cast<const scalar_t*>(grad);
    auto* b = static_cast<scalar_t*>(momentum_buf);
    if (b) {
      launch<scalar_t, true>(p, g, b, n, k, stream);
    } else {
      launch<scalar_t, false>(p, g, b, n, k, stream);
    }
  });
}

}  // namespace ember::cuda
