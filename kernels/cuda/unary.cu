// CUDA unary elementwise ops: the unary_apply functor, 128-bit vectorized when aligned.
#include <type_traits>

#include "kernels/cuda/launch.h"
#include "kernels/unary_math.h"

namespace ember::cuda {

// ---- kernels
template <UnaryOp OP, class T, int VEC>
__global__ void unary_kernel(const T* __restrict__ in, T* __restrict__ out, int64_t n,
                             compute_t<T> p0, compute_t<T> p1) {
  using C = compute_t<T>;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t tid = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t nvec = n / VEC;
  for (int64_t i = tid; i < nvec; i += stride) {
    Vec<T, VEC> x = reinterpret_cast<const Vec<T, VEC>*>(in)[i];
    Vec<T, VEC> y;
#pragma unroll
    for (int k = 0; k < VEC; ++k) y.v[k] = T(unary_apply<OP, C>(C(x.v[k]), p0, p1));
    reinterpret_cast<Vec<T, VEC>*>(out)[i] = y;
  }
  for (int64_t i = nvec * VEC + tid; i < n; i += stride) out[i] = T(unary_apply<OP, C>(C(in[i]), p0, p1));
}

// ---- launchers
namespace {
template <UnaryOp OP, class T>
void launch(const T* in, T* out, int64_t n, double p0, double p1, cudaStream_t s) {
  using C = compute_t<T>;
  if constexpr (std::is_integral_v<T> && !unary_supports_integers(OP)) {
    EMBER_THROW(unary_name(OP), ": needs a floating dtype");
  } else {
    constexpr int V = vec_width<T>();
    if (aligned_to(in, sizeof(T) * V) && aligned_to(out, sizeof(T) * V)) {
      unary_kernel<OP, T, V><<<grid_for(ceil_div(n, V)), kThreads, 0, s>>>(in, out, n, C(p0), C(p1));
    } else {
      unary_kernel<OP, T, 1><<<grid_for(n), kThreads, 0, s>>>(in, out, n, C(p0), C(p1));
    }
    EMBER_CUDA_CHECK_LAUNCH();
  }
}
}  // namespace

void unary(UnaryOp op, DType dtype, const void* in, void* out, int64_t n, double p0, double p1,
           cudaStream_t stream) {
  if (n == 0) return;
  EMBER_DISPATCH_NUMERIC(dtype, unary_name(op), [&] {
    const scalar_t* x = static_cast<const scalar_t*>(in);
    scalar_t* y = static_cast<scalar_t*>(out);
    EMBER_UNARY_SWITCH(op, [&] { launch<kOp, scalar_t>(x, y, n, p0, p1, stream); });
  });
}

}  // namespace ember::cuda
