// Convolution through cuDNN's legacy API. Algorithms are chosen once per shape (dtype,
// device, deterministic and TF32 settings and the buffers' alignment included) and cached:
// by cudnnFind*Ex, which times them on the real buffers, or, in deterministic mode, by
// cuDNN's heuristics among the deterministic algorithms (no timing, so the same choice on
// every run). An algorithm whose execution answers NOT_SUPPORTED is replaced by the first
// heuristic choice that runs. Workspaces come from ember's caching allocator.
#include <array>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "kernels/conv.h"
#include "kernels/cudnn/check.h"
#include "core/allocator.h"
#include "core/cuda_context.h"

namespace ember::cudnn {

// Note [16-bit convolutions]: f16 and bf16 convolutions run on tensor cores with no copy or
// transpose in ember. The descriptors are NCHW in the tensors' own dtype with f32
// accumulation (CUDNN_DATA_FLOAT compute: cuDNN's "pseudo-half" configuration, the one its
// tensor-core kernels take) and CUDNN_TENSOR_OP_MATH, which permits tensor cores (set
// explicitly rather than relying on what CUDNN_DEFAULT_MATH means in a given release). Each
// algorithm's own math type, as Find or the heuristics report it, is set before it runs. autograd/ops/conv.cpp hands cuDNN the tensors as they are:
// prep() is `to(dtype)` (a no-op in the same dtype) and `contiguous()` (a no-op for the
// contiguous NCHW activations, weights and gradients the layers make); the only casts are
// autocast's f32 -> 16-bit ones, which the mixed-precision recipe needs anyway.
//
// NHWC was not added. cuDNN's fastest 16-bit kernels are NHWC, and for NCHW input it may
// transpose inside the call (its own workspace), which is what PyTorch's channels_last
// avoids (worth 10-30% on large ResNets in f16). For ember it would not pay now: (1) ember
// has no memory-format notion, so NHWC convolutions alone would need a transpose on each
// side of every convolution (two extra memory passes, more than cuDNN's internal one) unless
// batch norm, pooling, the elementwise ops and their CUDA kernels all learned an NHWC
// layout too; (2) the apps' models (LeNet on 1 channel, ResNet-20 on 16-64 channels at
// 32x32) are small enough that a step is launch-bound rather than bandwidth-bound, so the
// transpose cuDNN may do is a small share of it; (3) whether it pays at all has to be
// measured on a GPU, which this code has not had. The place to add it is a
// channels_last flag on the tensor's strides: the descriptors here would then be set with
// cudnnSetTensor4dDescriptorEx from the real strides, with no other change in this file.

namespace {

/// Most workspace an algorithm may use (and the size of the search workspace).
constexpr size_t kMaxWorkspace = size_t(512) << 20;

cudnnDataType_t data_type(DType t) {
  switch (t) {
    case DType::f32: return CUDNN_DATA_FLOAT;
    case DType::f64: return CUDNN_DATA_DOUBLE;
    case DType::f16: return CUDNN_DATA_HALF;
    case DType::bf16: return CUDNN_DATA_BFLOAT16;
    default: EMBER_THROW("conv2d (cuDNN): unsupported dtype ", dtype_name(t));
  }
}

/// Descriptors of one convolution, destroyed with it.
struct Descs {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr, b = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;  // what the settings allow (before an algorithm's own)
  Descs(DType dtype, const ConvGeometry& g) {
    cudnnDataType_t dt = data_type(dtype);
    EMBER_CUDNN_CHECK(cudnnCreateTensorDescriptor(&x));
    EMBER_CUDNN_CHECK(cudnnCreateTensorDescriptor(&y));
    EMBER_CUDNN_CHECK(cudnnCreateTensorDescriptor(&b));
    EMBER_CUDNN_CHECK(cudnnCreateFilterDescriptor(&w));
    EMBER_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&conv));
    EMBER_CUDNN_CHECK(cudnnSetTensor4dDescriptor(x, CUDNN_TENSOR_NCHW, dt, int(g.n), int(g.c_in),
                                                 int(g.h), int(g.w)));
    EMBER_CUDNN_CHECK(cudnnSetTensor4dDescriptor(y, CUDNN_TENSOR_NCHW, dt, int(g.n), int(g.c_out),
                                                 int(g.oh), int(g.ow)));
    EMBER_CUDNN_CHECK(cudnnSetTensor4dDescriptor(b, CUDNN_TENSOR_NCHW, dt, 1, int(g.c_out), 1, 1));
    EMBER_CUDNN_CHECK(cudnnSetFilter4dDescriptor(w, dt, CUDNN_TENSOR_NCHW, int(g.c_out),
                                                 int(g.c_in / g.groups), int(g.kh), int(g.kw)));
    cudnnDataType_t compute = dtype == DType::f64 ? CUDNN_DATA_DOUBLE : CUDNN_DATA_FLOAT;
    EMBER_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(conv, int(g.ph), int(g.pw), int(g.sh),
                                                      int(g.sw), int(g.dh), int(g.dw),
                                                      CUDNN_CROSS_CORRELATION, compute));
    EMBER_CUDNN_CHECK(cudnnSetConvolutionGroupCount(conv, int(g.groups)));
    // f32 stays exact FMA math unless TF32 is allowed (as for matmul); 16-bit types may
    // use tensor cores: Note [16-bit convolutions].
    if (dtype == DType::f32 && !cuda::allow_tf32()) math = CUDNN_FMA_MATH;
    if (dtype == DType::f16 || dtype == DType::bf16) math = CUDNN_TENSOR_OP_MATH;
    EMBER_CUDNN_CHECK(cudnnSetConvolutionMathType(conv, math));
  }
  ~Descs() {
    cudnnDestroyTensorDescriptor(x);
    cudnnDestroyTensorDescriptor(y);
    cudnnDestroyTensorDescriptor(b);
    cudnnDestroyFilterDescriptor(w);
    cudnnDestroyConvolutionDescriptor(conv);
  }
  Descs(const Descs&) = delete;
  Descs& operator=(const Descs&) = delete;
};

/// The largest search workspace we can get, halving on out-of-memory.
std::unique_ptr<Workspace> search_workspace(int device) {
  for (size_t n = kMaxWorkspace; n >= (size_t(1) << 20); n /= 2) {
    try {
      return std::make_unique<Workspace>(device, n);
    } catch (const Error&) {
    }
  }
  return std::make_unique<Workspace>(device, 0);
}

struct Algo {
  int algo = 0;
  size_t workspace = 0;
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;
};

enum class Pass { fwd, bwd_data, bwd_filter };
using Key = std::array<int64_t, 24>;

Key make_key(Pass pass, DType dtype, const ConvGeometry& g, int device, bool det,
             std::array<const void*, 3> bufs) {
  return {int64_t(pass), int64_t(dtype), device, det ? 1 : 0, cuda::allow_tf32() ? 1 : 0,
          g.n, g.c_in, g.h, g.w, g.c_out, g.kh, g.kw, g.oh, g.ow, g.sh, g.sw, g.ph, g.pw,
          g.dh, g.dw, g.groups, alignment(bufs[0]), alignment(bufs[1]), alignment(bufs[2])};
}

std::mutex cache_mutex;
std::map<Key, Algo>& cache() {
  static std::map<Key, Algo> c;
  return c;
}

/// The successful results that fit the workspace cap, in cuDNN's order (fastest first for
/// Find, most promising first for the heuristics), deterministic ones only when asked.
template <class Perf>
std::vector<Algo> usable(const Perf* perf, int count, bool det) {
  std::vector<Algo> out;
  for (int i = 0; i < count; ++i) {
    if (perf[i].status != CUDNN_STATUS_SUCCESS) continue;
    if (det && perf[i].determinism != CUDNN_DETERMINISTIC) continue;
    if (perf[i].memory > kMaxWorkspace) continue;
    out.push_back({int(perf[i].algo), perf[i].memory, perf[i].mathType});
  }
  return out;
}

[[noreturn]] void throw_none(bool det, const char* what, const ConvGeometry& g) {
  EMBER_THROW("conv2d (cuDNN): no ", det ? "deterministic " : "", what,
              " algorithm fits for input [", g.n, ", ", g.c_in, ", ", g.h, ", ", g.w,
              "] and weight [", g.c_out, ", ", g.c_in / g.groups, ", ", g.kh, ", ", g.kw, "]");
}

template <class Perf>
Algo pick(const Perf* perf, int count, bool det, const char* what, const ConvGeometry& g) {
  std::vector<Algo> u = usable(perf, count, det);
  if (u.empty()) throw_none(det, what, g);
  return u.front();
}

/// The cached algorithm for `key`, or choose() run once to choose it.
template <class Choose>
Algo lookup(const Key& key, Choose&& choose) {
  std::lock_guard<std::mutex> lock(cache_mutex);
  auto it = cache().find(key);
  if (it != cache().end()) return it->second;
  Algo a = choose();
  cache()[key] = a;
  return a;
}

/// Runs exec(algo, workspace) with `a`. On NOT_SUPPORTED, tries the heuristic candidates
/// (`fallbacks()`) in order, and caches the first that runs for `key`.
template <class Exec, class Fallbacks>
void run_algo(const Key& key, Algo a, const Descs& d, int device, bool det, const char* what,
              const ConvGeometry& g, Exec&& exec, Fallbacks&& fallbacks) {
  auto attempt = [&](const Algo& x) {
    EMBER_CUDNN_CHECK(cudnnSetConvolutionMathType(d.conv, x.math));
    Workspace ws(device, x.workspace);
    return exec(x, ws);
  };
  cudnnStatus_t st = attempt(a);
  if (st == CUDNN_STATUS_SUCCESS) return;
  if (st != CUDNN_STATUS_NOT_SUPPORTED) EMBER_CUDNN_CHECK(st);
  // Ask the heuristics under the settings' math type, not the failed algorithm's.
  EMBER_CUDNN_CHECK(cudnnSetConvolutionMathType(d.conv, d.math));
  for (const Algo& c : fallbacks()) {
    if (c.algo == a.algo && c.math == a.math) continue;
    st = attempt(c);
    if (st == CUDNN_STATUS_SUCCESS) {
      std::lock_guard<std::mutex> lock(cache_mutex);
      cache()[key] = c;
      return;
    }
    if (st != CUDNN_STATUS_NOT_SUPPORTED) EMBER_CUDNN_CHECK(st);
  }
  throw_none(det, what, g);
}

}  // namespace

void conv2d_fwd(DType dtype, const void* x, const void* w, const void* b, void* y,
                const ConvGeometry& g, int device, bool deterministic) {
  cudnnHandle_t h = handle(device);
  Descs d(dtype, g);
  Scalars s(dtype);
  constexpr int kMax = CUDNN_CONVOLUTION_FWD_ALGO_COUNT;
  auto heuristics = [&] {
    cudnnConvolutionFwdAlgoPerf_t perf[kMax];
    int n = 0;
    EMBER_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(h, d.x, d.w, d.conv, d.y, kMax, &n, perf));
    return usable(perf, n, deterministic);
  };
  Key key = make_key(Pass::fwd, dtype, g, device, deterministic, {x, w, y});
  Algo a = lookup(key, [&] {
    if (deterministic) {
      std::vector<Algo> u = heuristics();
      if (u.empty()) throw_none(true, "forward", g);
      return u.front();
    }
    cudnnConvolutionFwdAlgoPerf_t perf[kMax];
    int n = 0;
    std::unique_ptr<Workspace> ws = search_workspace(device);  // timing needs room
    EMBER_CUDNN_CHECK(cudnnFindConvolutionForwardAlgorithmEx(h, d.x, x, d.w, w, d.conv, d.y, y, kMax,
                                                             &n, perf, ws->ptr, ws->size));
    return pick(perf, n, false, "forward", g);
  });
  run_algo(key, a, d, device, deterministic, "forward", g,
           [&](const Algo& x_, Workspace& ws) {
             return cudnnConvolutionForward(h, s.one(), d.x, x, d.w, w, d.conv,
                                            cudnnConvolutionFwdAlgo_t(x_.algo), ws.ptr, ws.size,
                                            s.zero(), d.y, y);
           },
           heuristics);
  if (b) EMBER_CUDNN_CHECK(cudnnAddTensor(h, s.one(), d.b, b, s.one(), d.y, y));
}

void conv2d_bwd(DType dtype, const void* x, const void* w, const void* gy, void* gx, void* gw,
                void* gb, const ConvGeometry& g, int device, bool deterministic) {
  cudnnHandle_t h = handle(device);
  Descs d(dtype, g);
  Scalars s(dtype);
  if (gx) {
    constexpr int kMax = CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT;
    auto heuristics = [&] {
      cudnnConvolutionBwdDataAlgoPerf_t perf[kMax];
      int n = 0;
      EMBER_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(h, d.w, d.y, d.conv, d.x, kMax, &n, perf));
      return usable(perf, n, deterministic);
    };
    Key key = make_key(Pass::bwd_data, dtype, g, device, deterministic, {w, gy, gx});
    Algo a = lookup(key, [&] {
      // The previous pass left its algorithm's math type on the shared descriptor.
      EMBER_CUDNN_CHECK(cudnnSetConvolutionMathType(d.conv, d.math));
      if (deterministic) {
        std::vector<Algo> u = heuristics();
        if (u.empty()) throw_none(true, "backward-data", g);
        return u.front();
      }
      cudnnConvolutionBwdDataAlgoPerf_t perf[kMax];
      int n = 0;
      std::unique_ptr<Workspace> ws = search_workspace(device);  // timing needs room
      EMBER_CUDNN_CHECK(cudnnFindConvolutionBackwardDataAlgorithmEx(h, d.w, w, d.y, gy, d.conv, d.x, gx,
                                                                    kMax, &n, perf, ws->ptr, ws->size));
      return pick(perf, n, false, "backward-data", g);
    });
    run_algo(key, a, d, device, deterministic, "backward-data", g,
             [&](const Algo& x_, Workspace& ws) {
               return cudnnConvolutionBackwardData(h, s.one(), d.w, w, d.y, gy, d.conv,
                                                   cudnnConvolutionBwdDataAlgo_t(x_.algo), ws.ptr,
                                                   ws.size, s.zero(), d.x, gx);
             },
             heuristics);
  }
  if (gw) {
    constexpr int kMax = CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT;
    auto heuristics = [&] {
      cudnnConvolutionBwdFilterAlgoPerf_t perf[kMax];
      int n = 0;
      EMBER_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, d.x, d.y, d.conv, d.w, kMax, &n, perf));
      return usable(perf, n, deterministic);
    };
    Key key = make_key(Pass::bwd_filter, dtype, g, device, deterministic, {x, gy, gw});
    Algo a = lookup(key, [&] {
      // The previous pass left its algorithm's math type on the shared descriptor.
      EMBER_CUDNN_CHECK(cudnnSetConvolutionMathType(d.conv, d.math));
      if (deterministic) {
        std::vector<Algo> u = heuristics();
        if (u.empty()) throw_none(true, "backward-filter", g);
        return u.front();
      }
      cudnnConvolutionBwdFilterAlgoPerf_t perf[kMax];
      int n = 0;
      std::unique_ptr<Workspace> ws = search_workspace(device);  // timing needs room
      EMBER_CUDNN_CHECK(cudnnFindConvolutionBackwardFilterAlgorithmEx(h, d.x, x, d.y, gy, d.conv, d.w, gw,
                                                                      kMax, &n, perf, ws->ptr, ws->size));
      return pick(perf, n, false, "backward-filter", g);
    });
    run_algo(key, a, d, device, deterministic, "backward-filter", g,
             [&](const Algo& x_, Workspace& ws) {
               return cudnnConvolutionBackwardFilter(h, s.one(), d.x, x, d.y, gy, d.conv,
                                                     cudnnConvolutionBwdFilterAlgo_t(x_.algo), ws.ptr,
                                                     ws.size, s.zero(), d.w, gw);
             },
             heuristics);
  }
  if (gb) EMBER_CUDNN_CHECK(cudnnConvolutionBackwardBias(h, s.one(), d.y, gy, s.zero(), d.b, gb));
}

}  // namespace ember::cudnn
