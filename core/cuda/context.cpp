// CUDA runtime queries, streams and device guards (built only with CUDA).
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/cuda/check.h"
#include "core/cuda/stream.h"
#include "core/cuda_context.h"
#include "core/host_sync.h"

namespace ember::cuda {

namespace detail {
void throw_cuda(cudaError_t e, const char* expr, const char* file, int line) {
  throw Error(std::string("CUDA error ") + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) +
              ") in " + expr + " at " + file + ":" + std::to_string(line));
}
}  // namespace detail

int device_count() {
  static int count = [] {
    int n = 0;
    // No GPU or no driver is a normal situation: report 0 and clear the sticky error.
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
      cudaGetLastError();
      return 0;
    }
    return n;
  }();
  return count;
}

bool is_available() { return device_count() > 0; }

static void check_index(int index) {
  int n = device_count();
  EMBER_CHECK(index >= 0 && index < n, "CUDA device ", index, " requested but ",
              n == 0 ? std::string("no CUDA device is available")
                     : "only " + std::to_string(n) + " device(s) exist");
}

std::string device_name(int index) {
  check_index(index);
  cudaDeviceProp p{};
  EMBER_CUDA_CHECK(cudaGetDeviceProperties(&p, index));
  return p.name;
}

std::pair<int, int> device_capability(int index) {
  check_index(index);
  int major = 0, minor = 0;
  EMBER_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, index));
  EMBER_CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, index));
  return {major, minor};
}

int sm_count(int device) {
  static std::vector<int> counts = [] {
    std::vector<int> c(size_t(device_count()), 0);
    for (size_t i = 0; i < c.size(); ++i) {
      cudaDeviceGetAttribute(&c[i], cudaDevAttrMultiProcessorCount, int(i));
    }
    return c;
  }();
  check_index(device);
  return counts[size_t(device)];
}

namespace {
std::mutex g_stream_mu;
std::vector<cudaStream_t>& streams() {
  static std::vector<cudaStream_t> s;
  return s;
}
std::vector<bool>& stream_set() {
  static std::vector<bool> s;
  return s;
}
}  // namespace

cudaStream_t current_stream(int device) {
  check_index(device);
  std::lock_guard<std::mutex> lock(g_stream_mu);
  auto& s = streams();
  auto& set = stream_set();
  if (s.empty()) {
    s.assign(size_t(device_count()), nullptr);
    set.assign(size_t(device_count()), false);
  }
  if (!set[size_t(device)]) {
    DeviceGuard g(device);
    cudaStream_t st;
    EMBER_CUDA_CHECK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
    s[size_t(device)] = st;
    set[size_t(device)] = true;
  }
  return s[size_t(device)];
}

void set_current_stream(int device, cudaStream_t stream) {
  current_stream(device);  // initializes the table
  std::lock_guard<std::mutex> lock(g_stream_mu);
  if (stream) {
    streams()[size_t(device)] = stream;
  } else {
    stream_set()[size_t(device)] = false;
  }
}

DeviceGuard::DeviceGuard(int device) {
  EMBER_CUDA_CHECK(cudaGetDevice(&prev_));
  if (prev_ != device) EMBER_CUDA_CHECK(cudaSetDevice(device));
}

DeviceGuard::~DeviceGuard() {
  int cur = -1;
  if (cudaGetDevice(&cur) == cudaSuccess && cur != prev_ && prev_ >= 0) cudaSetDevice(prev_);
}

void stream_synchronize(cudaStream_t stream) {
  ember::detail::count_host_sync();
  EMBER_CUDA_CHECK(cudaStreamSynchronize(stream));
}

void event_synchronize(cudaEvent_t event) {
  ember::detail::count_host_sync();
  EMBER_CUDA_CHECK(cudaEventSynchronize(event));
}

void synchronize(int index) {
  check_index(index);
  DeviceGuard g(index);
  stream_synchronize(current_stream(index));
  report_checks(index);
}

// ---- deferred checks (Note [Deferred checks] in core/cuda_context.h)
namespace {

std::atomic<int> g_eager{-1};  // -1: not yet read from EMBER_CUDA_EAGER_CHECKS

// Pinned result slots and events of one device, recycled. A slot (two int64) is written by
// an async copy on the device's stream and read by the host once its event completed.
class CheckResources {
 public:
  static constexpr size_t kPending = 1024;  // the queue waits for its oldest beyond this

  explicit CheckResources(int device) : device_(device) {}
  // Never destroyed (see allocator_of): the process may be exiting past the runtime.

  int64_t* take_slot() {
    std::lock_guard<std::mutex> lock(mu_);
    if (free_slots_.empty()) {
      // One pinned block per kPending + 1 slots: the queue holds at most kPending, plus the
      // one being made.
      DeviceGuard g(device_);
      void* p = nullptr;
      const size_t n = kPending + 1;
      EMBER_CUDA_CHECK(cudaHostAlloc(&p, n * 2 * sizeof(int64_t), cudaHostAllocPortable));
      auto* base = static_cast<int64_t*>(p);
      for (size_t i = 0; i < n; ++i) free_slots_.push_back(base + 2 * i);
    }
    int64_t* s = free_slots_.back();
    free_slots_.pop_back();
    return s;
  }
  void give_slot(int64_t* s) {
    std::lock_guard<std::mutex> lock(mu_);
    free_slots_.push_back(s);
  }
  cudaEvent_t take_event() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!free_events_.empty()) {
        cudaEvent_t e = free_events_.back();
        free_events_.pop_back();
        return e;
      }
    }
    DeviceGuard g(device_);
    cudaEvent_t e = nullptr;
    EMBER_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
    return e;
  }
  void give_event(cudaEvent_t e) {
    std::lock_guard<std::mutex> lock(mu_);
    free_events_.push_back(e);
  }
  ember::detail::DeferredChecks& queue() { return queue_; }

 private:
  int device_;
  std::mutex mu_;
  std::vector<int64_t*> free_slots_;
  std::vector<cudaEvent_t> free_events_;
  ember::detail::DeferredChecks queue_{kPending};
};

CheckResources& resources_of(int device) {
  check_index(device);
  static std::mutex mu;
  static auto* table = new std::vector<std::unique_ptr<CheckResources>>(size_t(device_count()));
  std::lock_guard<std::mutex> lock(mu);
  auto& r = (*table)[size_t(device)];
  if (!r) r = std::make_unique<CheckResources>(device);
  return *r;
}

class CudaCheck final : public ember::detail::DeferredCheck {
 public:
  CudaCheck(CheckResources& res, int64_t* slot, cudaEvent_t ev,
            std::function<std::string(int64_t, int64_t)> msg)
      : res_(res), slot_(slot), ev_(ev), msg_(std::move(msg)) {}
  ~CudaCheck() override {
    res_.give_slot(slot_);
    res_.give_event(ev_);
  }
  bool ready() override {
    cudaError_t e = cudaEventQuery(ev_);
    if (e == cudaErrorNotReady) {
      return false;
    }
    EMBER_CUDA_CHECK(e);  // a faulted context: its own error says more than ours
    return true;
  }
  void wait() override { event_synchronize(ev_); }
  std::string verdict() override {
    if (slot_[0] < 0) return {};
    return msg_(slot_[0], slot_[1]) +
           " (found on the GPU and reported at the next synchronization; set "
           "EMBER_CUDA_EAGER_CHECKS=1 to stop at the op that received it)";
  }

 private:
  CheckResources& res_;
  int64_t* slot_;
  cudaEvent_t ev_;
  std::function<std::string(int64_t, int64_t)> msg_;
};

}  // namespace

void set_eager_checks(bool on) { g_eager = on ? 1 : 0; }

bool eager_checks() {
  int v = g_eager.load();
  if (v < 0) {
    const char* e = std::getenv("EMBER_CUDA_EAGER_CHECKS");
    v = e && *e && std::strcmp(e, "0") != 0 ? 1 : 0;
    g_eager = v;
  }
  return v == 1;
}

void defer_check(int device, cudaStream_t stream, const int64_t* result,
                 std::function<std::string(int64_t, int64_t)> message) {
  CheckResources& res = resources_of(device);
  DeviceGuard g(device);
  int64_t* slot = res.take_slot();
  cudaEvent_t ev = nullptr;
  try {
    ev = res.take_event();
    // Pinned destination: truly asynchronous, ordered after the kernels that wrote `result`.
    EMBER_CUDA_CHECK(cudaMemcpyAsync(slot, result, 2 * sizeof(int64_t), cudaMemcpyDeviceToHost, stream));
    EMBER_CUDA_CHECK(cudaEventRecord(ev, stream));
  } catch (...) {
    res.give_slot(slot);
    if (ev) res.give_event(ev);
    throw;
  }
  res.queue().push(std::make_unique<CudaCheck>(res, slot, ev, std::move(message)));
  if (eager_checks()) res.queue().report_all();
}

void report_checks(int device) { resources_of(device).queue().report(); }

namespace {
bool g_allow_tf32 = false;
}
void set_allow_tf32(bool allow) { g_allow_tf32 = allow; }
bool allow_tf32() { return g_allow_tf32; }

}  // namespace ember::cuda
