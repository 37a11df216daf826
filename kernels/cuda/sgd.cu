// CUDA fused SGD step: one grid-stride pass over param, grad and momentum buffer, 128-bit
// vectorized when all three are aligned; the arithmetic is sgd_apply (kernels/sgd_math.h).
// The multi-tensor form covers many parameters per launch: each block takes one chunk of
// one tensor (PyTorch's multi_tensor_apply layout), so a model's step is a few launches.
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

// Multi-tensor: kernel parameters list the tensors and, per block, which chunk it takes.
constexpr int kMultiTensors = 36;     // keeps the parameter struct under 4 KB
constexpr int kMultiBlocks = 320;
constexpr int64_t kMultiChunk = 16384;  // a multiple of every vector width

template <class T>
struct MultiArgs {
  T* p[kMultiTensors];
  const T* g[kMultiTensors];
  T* buf[kMultiTensors];
  int64_t n[kMultiTensors];
  unsigned char tensor_of[kMultiBlocks];
  int chunk_of[kMultiBlocks];
};

template <class T, bool HAS_BUF>
__device__ __forceinline__ void sgd_one(T* p, const T* g, T* buf, int64_t i,
                                        const SgdCoeffs<compute_t<T>>& k) {
  using C = compute_t<T>;
  C m = HAS_BUF ? C(buf[i]) : C(0);
  p[i] = T(sgd_apply<C>(C(p[i]), C(g[i]), m, k));
  if constexpr (HAS_BUF) buf[i] = T(m);
}

template <class T, bool HAS_BUF>
__global__ void sgd_multi_kernel(MultiArgs<T> a, SgdCoeffs<compute_t<T>> k) {
  using C = compute_t<T>;
  constexpr int V = vec_width<T>();
  const int t = a.tensor_of[blockIdx.x];
  const int64_t begin = int64_t(a.chunk_of[blockIdx.x]) * kMultiChunk;
  const int64_t end = min(a.n[t], begin + kMultiChunk);
  T* p = a.p[t];
  const T* g = a.g[t];
  T* buf = a.buf[t];
  // Chunks start at multiples of kMultiChunk, so a chunk is aligned when its tensor is.
  const size_t bytes = sizeof(T) * V;
  const bool vec = reinterpret_cast<uintptr_t>(p) % bytes == 0 && reinterpret_cast<uintptr_t>(g) % bytes == 0 &&
                   (!HAS_BUF || reinterpret_cast<uintptr_t>(buf) % bytes == 0);
  int64_t scalar_from = begin;
  if (vec) {
    const int64_t nvec = (end - begin) / V;
    for (int64_t i = threadIdx.x; i < nvec; i += blockDim.x) {
      const int64_t e = begin + i * V;
      Vec<T, V> pv = *reinterpret_cast<const Vec<T, V>*>(p + e);
      Vec<T, V> gv = *reinterpret_cast<const Vec<T, V>*>(g + e);
      Vec<T, V> bv;
      if constexpr (HAS_BUF) bv = *reinterpret_cast<const Vec<T, V>*>(buf + e);
#pragma unroll
      for (int j = 0; j < V; ++j) {
        C m = HAS_BUF ? C(bv.v[j]) : C(0);
        pv.v[j] = T(sgd_apply<C>(C(pv.v[j]), C(gv.v[j]), m, k));
        if constexpr (HAS_BUF) bv.v[j] = T(m);
      }
      *reinterpret_cast<Vec<T, V>*>(p + e) = pv;
      if constexpr (HAS_BUF) *reinterpret_cast<Vec<T, V>*>(buf + e) = bv;
    }
    scalar_from = begin + nvec * V;
  }
  for (int64_t i = scalar_from + threadIdx.x; i < end; i += blockDim.x) sgd_one<T, HAS_BUF>(p, g, buf, i, k);
}

// ---- launchers
namespace {
template <class T, bool HAS_BUF>
void launch_multi(const std::vector<SgdSlice>& slices, const SgdCoeffs<compute_t<T>>& k, cudaStream_t s) {
  MultiArgs<T> a{};
  int nt = 0, nb = 0;
  auto flush = [&] {
    if (nb > 0) {
      sgd_multi_kernel<T, HAS_BUF><<<nb, kThreads, 0, s>>>(a, k);
      EMBER_CUDA_CHECK_LAUNCH();
    }
    nt = 0;
    nb = 0;
  };
  auto put = [&](const SgdSlice& x) {  // x becomes tensor slot nt
    a.p[nt] = static_cast<T*>(x.param);
    a.g[nt] = static_cast<const T*>(x.grad);
    a.buf[nt] = static_cast<T*>(x.buf);
    a.n[nt] = x.n;
  };
  for (const SgdSlice& x : slices) {
    if (x.n == 0) continue;
    if (nt == kMultiTensors) flush();
    put(x);
    const int64_t chunks = ceil_div(x.n, kMultiChunk);
    for (int64_t c = 0; c < chunks; ++c) {
      if (nb == kMultiBlocks) {
        flush();  // the rest of this tensor starts the next launch, again as slot 0
        put(x);
      }
      a.tensor_of[nb] = static_cast<unsigned char>(nt);
      a.chunk_of[nb] = int(c);
      ++nb;
    }
    ++nt;
  }
  flush();
}

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

void sgd_step_multi(DType dtype, const std::vector<SgdSlice>& slices, const SgdStepArgs& a,
                    cudaStream_t stream) {
  if (slices.empty()) return;
  const bool has_buf = slices.front().buf != nullptr;
  for (const SgdSlice& x : slices)
    EMBER_CHECK((x.buf != nullptr) == has_buf, "sgd_step_multi: every slice needs a momentum buffer, or none");
  EMBER_DISPATCH_FLOAT(dtype, "sgd_step", [&] {
    using C = compute_t<scalar_t>;
    const SgdCoeffs<C> k{C(a.lr),           C(a.momentum), C(1.0 - a.dampening),
                         C(a.weight_decay), a.nesterov,    has_buf,
                         a.first_step,      a.maximize};
    if (has_buf) {
      launch_multi<scalar_t, true>(slices, k, stream);
    } else {
      launch_multi<scalar_t, false>(slices, k, stream);
    }
  });
}

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
