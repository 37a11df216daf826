// Convolution through cuDNN's legacy API. Algorithms are chosen once per shape (dtype,
// device, deterministic and TF32 settings included) with cudnnFind*Ex, which times them
// on the real buffers, and cached; workspaces come from ember's caching allocator.
#include <array>
#include <map>
#include <memory>
#include <mutex>

#include "kernels/conv.h"
#include "kernels/cudnn/check.h"
#include "tensor/allocator.h"
#include "tensor/cuda_context.h"

namespace ember::cudnn {

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
    // use tensor cores.
    cudnnMathType_t math = CUDNN_DEFAULT_MATH;
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

/// Device memory from the caching allocator for the scope of one call.
struct Workspace {
  Device dev;
  void* ptr = nullptr;
  size_t size = 0;
  Workspace(int device, size_t n) : dev(DeviceType::cuda, device), size(n) {
    if (n > 0) ptr = allocator_for(dev).allocate(n);
  }
  ~Workspace() {
    if (ptr) allocator_for(dev).deallocate(ptr);
  }
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;
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
using Key = std::array<int64_t, 22>;

Key make_key(Pass pass, DType dtype, const ConvGeometry& g, int device, bool det) {
  return {int64_t(pass), int64_t(dtype), device, det ? 1 : 0, cuda::allow_tf32() ? 1 : 0,
          g.n, g.c_in, g.h, g.w, g.c_out, g.kh, g.kw, g.oh, g.ow, g.sh, g.sw, g.ph, g.pw,
          g.dh, g.dw, g.groups, 0};
}

std::mutex cache_mutex;
std::map<Key, Algo>& cache() {
  static std::map<Key, Algo> c;
  return c;
}

/// The fastest successful result, deterministic ones only when asked.
template <class Perf>
Algo pick(const Perf* perf, int count, bool det, const char* what, const ConvGeometry& g) {
  for (int i = 0; i < count; ++i) {
    if (perf[i].status != CUDNN_STATUS_SUCCESS) continue;
    if (det && perf[i].determinism != CUDNN_DETERMINISTIC) continue;
    return {int(perf[i].algo), perf[i].memory, perf[i].mathType};
  }
  EMBER_THROW("conv2d (cuDNN): no ", det ? "deterministic " : "", what,
              " algorithm fits for input [", g.n, ", ", g.c_in, ", ", g.h, ", ", g.w,
              "] and weight [", g.c_out, ", ", g.c_in / g.groups, ", ", g.kh, ", ", g.kw, "]");
}

/// The cached algorithm for `key`, or find(ws) run once to choose it.
template <class Find>
Algo lookup(const Key& key, int device, Find&& find) {
  std::lock_guard<std::mutex> lock(cache_mutex);
  auto it = cache().find(key);
  if (it != cache().end()) return it->second;
  std::unique_ptr<Workspace> ws = search_workspace(device);
  Algo a = find(*ws);
  cache()[key] = a;
  return a;
}

struct Scalars {
  float f1 = 1.f, f0 = 0.f;
  double d1 = 1.0, d0 = 0.0;
  bool dbl;
  explicit Scalars(DType t) : dbl(t == DType::f64) {}
  const void* one() const { return dbl ? static_cast<const void*>(&d1) : &f1; }
  const void* zero() const { return dbl ? static_cast<const void*>(&d0) : &f0; }
};

}  // namespace

void conv2d_fwd(DType dtype, const void* x, const void* w, const void* b, void* y,
                const ConvGeometry& g, int device, bool deterministic) {
  cudnnHandle_t h = handle(device);
  Descs d(dtype, g);
  Scalars s(dtype);
  Algo a = lookup(make_key(Pass::fwd, dtype, g, device, deterministic), device, [&](Workspace& ws) {
    constexpr int kMax = CUDNN_CONVOLUTION_FWD_ALGO_COUNT;
    cudnnConvolutionFwdAlgoPerf_t perf[kMax];
    int n = 0;
    EMBER_CUDNN_CHECK(cudnnFindConvolutionForwardAlgorithmEx(h, d.x, x, d.w, w, d.conv, d.y, y, kMax,
                                                             &n, perf, ws.ptr, ws.size));
    return pick(perf, n, deterministic, "forward", g);
  });
  EMBER_CUDNN_CHECK(cudnnSetConvolutionMathType(d.conv, a.math));
  Workspace ws(device, a.workspace);
  EMBER_CUDNN_CHECK(cudnnConvolutionForward(h, s.one(), d.x, x, d.w, w, d.conv,
                                            cudnnConvolutionFwdAlgo_t(a.algo), ws.ptr, ws.size,
                                            s.zero(), d.y, y));
  if (b) EMBER_CUDNN_CHECK(cudnnAddTensor(h, s.one(), d.b, b, s.one(), d.y, y));
}

void conv2d_bwd(DType dtype, const void* x, const void* w, const void* gy, void* gx, void* gw,
                void* gb, const ConvGeometry& g, int device, bool deterministic) {
  cudnnHandle_t h = handle(device);
  Descs d(dtype, g);
  Scalars s(dtype);
  if (gx) {
    Algo a = lookup(make_key(Pass::bwd_data, dtype, g, device, deterministic), device, [&](Workspace& ws) {
      constexpr int kMax = CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT;
      cudnnConvolutionBwdDataAlgoPerf_t perf[kMax];
      int n = 0;
      EMBER_CUDNN_CHECK(cudnnFindConvolutionBackwardDataAlgorithmEx(h, d.w, w, d.y, gy, d.conv, d.x, gx,
                                                                    kMax, &n, perf, ws.ptr, ws.size));
      return pick(perf, n, deterministic, "backward-data", g);
    });
    EMBER_CUDNN_CHECK(cudnnSetConvolutionMathType(d.conv, a.math));
    Workspace ws(device, a.workspace);
    EMBER_CUDNN_CHECK(cudnnConvolutionBackwardData(h, s.one(), d.w, w, d.y, gy, d.conv,
                                                   cudnnConvolutionBwdDataAlgo_t(a.algo), ws.ptr,
                                                   ws.size, s.zero(), d.x, gx));
  }
  if (gw) {
    Algo a = lookup(make_key(Pass::bwd_filter, dtype, g, device, deterministic), device, [&](Workspace& ws) {
      constexpr int kMax = CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT;
      cudnnConvolutionBwdFilterAlgoPerf_t perf[kMax];
      int n = 0;
      EMBER_CUDNN_CHECK(cudnnFindConvolutionBackwardFilterAlgorithmEx(h, d.x, x, d.y, gy, d.conv, d.w, gw,
                                                                      kMax, &n, perf, ws.ptr, ws.size));
      return pick(perf, n, deterministic, "backward-filter", g);
    });
    EMBER_CUDNN_CHECK(cudnnSetConvolutionMathType(d.conv, a.math));
    Workspace ws(device, a.workspace);
    EMBER_CUDNN_CHECK(cudnnConvolutionBackwardFilter(h, s.one(), d.x, x, d.y, gy, d.conv,
                                                     cudnnConvolutionBwdFilterAlgo_t(a.algo), ws.ptr,
                                                     ws.size, s.zero(), d.w, gw));
  }
  if (gb) EMBER_CUDNN_CHECK(cudnnConvolutionBackwardBias(h, s.one(), d.y, gy, s.zero(), d.b, gb));
}

}  // namespace ember::cudnn
