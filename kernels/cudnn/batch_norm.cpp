// CUDA batch norm in training, by ember's kernels (kernels/cuda/batch_norm.cu) or by cuDNN's
// spatial batch norm, whichever is faster for the shape: Note [Batch norm: ours or cuDNN's].
#include <array>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>

#include "kernels/batch_norm.h"
#include "kernels/cudnn/check.h"
#include "core/allocator.h"
#include "core/cuda/check.h"
#include "core/cuda/stream.h"

// cuDNN 9 marks its legacy batch-norm calls deprecated in favor of the graph API; they are
// still what PyTorch calls, and they are all this file needs.
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

namespace ember::cudnn {

// Note [Batch norm: ours or cuDNN's]: issue 10 asks to measure ember's batch norm against
// cuDNN's and keep the faster. Which wins depends on the GPU, the cuDNN release and the
// shape (ours has a (channel x range) grid for few channels; cuDNN's kernels are tuned for
// many), so the choice is made the way cuDNN's Find chooses convolution algorithms: the
// first training call of each shape (dtype, device, N, C, H*W, which outputs, buffer
// alignment) times both on the real buffers, three runs each after a warm-up, and caches
// the faster; every later call of that shape runs it with no timing. The timing runs write
// only the call's own outputs (y, mean, invstd, gradients) and never the running
// statistics, so the real call that follows leaves exactly one update. The timing waits for
// the GPU once per shape (counted in cuda::sync_count()).
// - Both save the batch mean and invstd = 1/sqrt(biased var + eps) in the same layout (f32,
//   or f64 for f64 input), so a forward by one and a backward by the other are consistent.
// - Both update running_var with the unbiased variance, as PyTorch does.
// - cuDNN's is used only where it takes the call: f32 or f64 with a weight and a bias (its
//   scale and shift are not optional), running statistics both given or both absent, and an
//   input gradient asked for in backward. 16-bit inputs reach the kernels as f32 under
//   autocast (Note [Mixed batch norm]); pure 16-bit parameters stay with ours. A cuDNN error
//   while timing (NOT_SUPPORTED for a shape, say) makes the choice ours, with the reason.
// - Deterministic mode never times: it runs ours, whose sums are combined in a fixed order,
//   so results repeat from run to run. The timed choice is not saved with checkpoints (as
//   cuDNN's convolution choices are not): on the GPU, exact resume needs --deterministic.
// - EMBER_CUDA_BATCH_NORM=ember|cudnn|auto (or set_batch_norm_impl) forces one; with
//   EMBER_CUDA_BATCH_NORM_VERBOSE=1 each timed choice is printed to stderr.
//
// Eval mode (fixed statistics) and its backward are one elementwise pass each and stay ours.

namespace {

std::atomic<int> g_impl{-1};  // -1: not read from the environment yet

BatchNormImpl impl_from_env() {
  const char* e = std::getenv("EMBER_CUDA_BATCH_NORM");
  if (!e || !*e) return BatchNormImpl::automatic;
  const std::string v = e;
  if (v == "ember") return BatchNormImpl::ember;
  if (v == "cudnn") return BatchNormImpl::cudnn;
  if (v == "auto") return BatchNormImpl::automatic;
  EMBER_THROW("EMBER_CUDA_BATCH_NORM must be ember, cudnn or auto, got '", v, "'");
}

bool verbose() {
  static const bool v = [] {
    const char* e = std::getenv("EMBER_CUDA_BATCH_NORM_VERBOSE");
    return e && *e && std::string(e) != "0";
  }();
  return v;
}

enum class Pass { fwd, bwd };
using Key = std::array<int64_t, 12>;

struct Choice {
  bool use_cudnn = false;
  double ember_ms = -1, cudnn_ms = -1;  // -1: not timed
  std::string why;                      // for an untimed choice
};

std::atomic<int64_t> g_cudnn_calls{0};
std::mutex g_mutex;
std::map<Key, Choice>& choices() {
  static std::map<Key, Choice> c;
  return c;
}

/// cuDNN tensor descriptors for (n, c, s) as NCHW (n, c, s, 1) and its (1, c, 1, 1) parameters.
struct Descs {
  cudnnTensorDescriptor_t x = nullptr, p = nullptr;
  Descs(DType dtype, int64_t n, int64_t c, int64_t s) {
    const cudnnDataType_t dt = dtype == DType::f64 ? CUDNN_DATA_DOUBLE : CUDNN_DATA_FLOAT;
    EMBER_CUDNN_CHECK(cudnnCreateTensorDescriptor(&x));
    EMBER_CUDNN_CHECK(cudnnCreateTensorDescriptor(&p));
    EMBER_CUDNN_CHECK(cudnnSetTensor4dDescriptor(x, CUDNN_TENSOR_NCHW, dt, int(n), int(c), int(s), 1));
    EMBER_CUDNN_CHECK(cudnnDeriveBNTensorDescriptor(p, x, CUDNN_BATCHNORM_SPATIAL));
  }
  ~Descs() {
    cudnnDestroyTensorDescriptor(x);
    cudnnDestroyTensorDescriptor(p);
  }
  Descs(const Descs&) = delete;
  Descs& operator=(const Descs&) = delete;
};

/// Mean milliseconds of three runs of f on `stream`, after one warm-up run.
template <class F>
double time_ms(cudaStream_t stream, F&& f) {
  f();
  struct Events {
    cudaEvent_t a = nullptr, b = nullptr;
    Events() {
      EMBER_CUDA_CHECK(cudaEventCreate(&a));
      EMBER_CUDA_CHECK(cudaEventCreate(&b));
    }
    ~Events() {
      cudaEventDestroy(a);
      cudaEventDestroy(b);
    }
  } ev;
  EMBER_CUDA_CHECK(cudaEventRecord(ev.a, stream));
  for (int i = 0; i < 3; ++i) f();
  EMBER_CUDA_CHECK(cudaEventRecord(ev.b, stream));
  cuda::event_synchronize(ev.b);
  float ms = 0;
  EMBER_CUDA_CHECK(cudaEventElapsedTime(&ms, ev.a, ev.b));
  return double(ms) / 3;
}

/// The choice for `key`: a cached one, a forced or untimed one, or both timed now.
template <class Ember, class Cudnn>
Choice choose(const Key& key, bool cudnn_ok, bool deterministic, cudaStream_t stream, Ember&& ours,
              Cudnn&& theirs) {
  const BatchNormImpl forced = batch_norm_impl();
  if (!cudnn_ok) return {false, -1, -1, "cuDNN does not take this call"};
  if (forced == BatchNormImpl::ember) return {false, -1, -1, "forced"};
  if (forced == BatchNormImpl::cudnn) return {true, -1, -1, "forced"};
  if (deterministic) return {false, -1, -1, "deterministic mode"};
  std::lock_guard<std::mutex> lock(g_mutex);
  auto it = choices().find(key);
  if (it != choices().end()) return it->second;
  Choice c;
  c.ember_ms = time_ms(stream, ours);
  try {
    c.cudnn_ms = time_ms(stream, theirs);
    c.use_cudnn = c.cudnn_ms < c.ember_ms;
  } catch (const Error& e) {  // e.g. NOT_SUPPORTED for this shape: ours, which runs anything
    c.why = e.what();
  }
  choices()[key] = c;
  if (verbose())
    std::fprintf(stderr, "ember: CUDA batch norm %s n=%lld c=%lld s=%lld %s: ember %.4f ms, cuDNN %.4f ms -> %s\n",
                 key[0] == int64_t(Pass::fwd) ? "forward" : "backward", (long long)key[3], (long long)key[4],
                 (long long)key[5], dtype_name(DType(key[1])), c.ember_ms, c.cudnn_ms,
                 c.use_cudnn ? "cuDNN" : c.why.empty() ? "ember" : ("ember (" + c.why + ")").c_str());
  return c;
}

bool cudnn_dtype(DType t) { return t == DType::f32 || t == DType::f64; }
bool fits_int(int64_t n, int64_t c, int64_t s) {
  constexpr int64_t kMax = 0x7fffffff;
  return n <= kMax && c <= kMax && s <= kMax && n * c * s <= kMax;
}

}  // namespace

void set_batch_norm_impl(BatchNormImpl impl) { g_impl = int(impl); }

BatchNormImpl batch_norm_impl() {
  int v = g_impl.load();
  if (v < 0) {
    v = int(impl_from_env());
    g_impl = v;
  }
  return BatchNormImpl(v);
}

void batch_norm_train_fwd(DType dtype, const void* x, const void* w, const void* b, void* y, void* mean,
                          void* invstd, void* running_mean, void* running_var, int64_t n, int64_t c, int64_t s,
                          double momentum, double eps, int device, bool deterministic) {
  cudaStream_t stream = cuda::current_stream(device);
  auto ours = [&](void* rm, void* rv) {
    cuda::batch_norm_stats(dtype, x, mean, invstd, rm, rv, n, c, s, momentum, eps, stream);
    cuda::batch_norm_apply(dtype, x, mean, invstd, w, b, y, n, c, s, stream);
  };
  const bool ok = cudnn_dtype(dtype) && w && b && (running_mean == nullptr) == (running_var == nullptr) &&
                  eps >= CUDNN_BN_MIN_EPSILON && fits_int(n, c, s) && n * s > 1;
  std::unique_ptr<Descs> d;  // made when cuDNN runs
  Scalars one(dtype);
  auto theirs = [&](void* rm, void* rv) {
    if (!d) d = std::make_unique<Descs>(dtype, n, c, s);
    EMBER_CUDNN_CHECK(cudnnBatchNormalizationForwardTraining(
        handle(device), CUDNN_BATCHNORM_SPATIAL, one.one(), one.zero(), d->x, x, d->x, y, d->p, w, b, momentum,
        rm, rv, eps, mean, invstd));
  };
  const Key key{int64_t(Pass::fwd), int64_t(dtype), device, n, c, s, running_mean ? 1 : 0, 0, 0,
                alignment(x), alignment(y), 0};
  const Choice ch = choose(key, ok, deterministic, stream, [&] { ours(nullptr, nullptr); },
                           [&] { theirs(nullptr, nullptr); });
  if (ch.use_cudnn) {
    theirs(running_mean, running_var);
    ++g_cudnn_calls;
  } else
    ours(running_mean, running_var);
}

void batch_norm_train_bwd(DType dtype, const void* x, const void* gy, const void* mean, const void* invstd,
                          const void* w, void* gx, void* gw, void* gb, int64_t n, int64_t c, int64_t s, double eps,
                          int device, bool deterministic) {
  cudaStream_t stream = cuda::current_stream(device);
  auto ours = [&] { cuda::batch_norm_bwd(dtype, x, gy, mean, invstd, w, gx, gw, gb, n, c, s, true, stream); };
  const bool ok = cudnn_dtype(dtype) && w && gx && eps >= CUDNN_BN_MIN_EPSILON && fits_int(n, c, s) && n * s > 1;
  std::unique_ptr<Descs> d;         // made when cuDNN runs
  std::unique_ptr<Workspace> spare;  // cuDNN always writes both parameter gradients
  Scalars one(dtype);
  void *dw = gw, *db = gb;
  auto theirs = [&] {
    if (!d) {
      d = std::make_unique<Descs>(dtype, n, c, s);
      const size_t bytes = size_t(c) * dtype_size(dtype);
      if (!dw || !db) spare = std::make_unique<Workspace>(device, bytes * 2);
      if (!dw) dw = spare->ptr;
      if (!db) db = static_cast<char*>(spare->ptr) + bytes;
    }
    EMBER_CUDNN_CHECK(cudnnBatchNormalizationBackward(handle(device), CUDNN_BATCHNORM_SPATIAL, one.one(),
                                                      one.zero(), one.one(), one.zero(), d->x, x, d->x, gy, d->x,
                                                      gx, d->p, w, dw, db, eps, mean, invstd));
  };
  const Key key{int64_t(Pass::bwd), int64_t(dtype), device, n, c, s, gw ? 1 : 0, gb ? 1 : 0, 0,
                alignment(x), alignment(gy), alignment(gx)};
  const Choice ch = choose(key, ok, deterministic, stream, ours, theirs);
  if (ch.use_cudnn) {
    theirs();
    ++g_cudnn_calls;
  } else
    ours();
}

std::string batch_norm_choices() {
  std::lock_guard<std::mutex> lock(g_mutex);
  std::ostringstream o;
  for (const auto& [k, c] : choices()) {
    o << (k[0] == int64_t(Pass::fwd) ? "forward" : "backward") << ' ' << dtype_name(DType(k[1])) << " cuda:" << k[2]
      << " n=" << k[3] << " c=" << k[4] << " s=" << k[5] << ": ember " << c.ember_ms << " ms, cuDNN " << c.cudnn_ms
      << " ms -> " << (c.use_cudnn ? "cudnn" : "ember") << (c.why.empty() ? "" : " (" + c.why + ")") << '\n';
  }
  return o.str();
}

int64_t batch_norm_cudnn_calls() { return g_cudnn_calls.load(); }

void clear_batch_norm_choices() {
  std::lock_guard<std::mutex> lock(g_mutex);
  choices().clear();
}

}  // namespace ember::cudnn
