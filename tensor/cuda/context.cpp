// CUDA runtime queries, streams and device guards (built only with CUDA).
#include <mutex>
#include <string>
#include <vector>

#include "kernels/cuda/check.h"
#include "tensor/cuda/stream.h"
#include "tensor/cuda_context.h"

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

void synchronize(int index) {
  check_index(index);
  DeviceGuard g(index);
  EMBER_CUDA_CHECK(cudaStreamSynchronize(current_stream(index)));
}

namespace {
bool g_allow_tf32 = false;
}
void set_allow_tf32(bool allow) { g_allow_tf32 = allow; }
bool allow_tf32() { return g_allow_tf32; }

}  // namespace ember::cuda
