// The CUDA caching allocator: one CachingPool per device fed by cudaMalloc/cudaFree
// (Note [Caching allocator] in core/caching_pool.h), and the memory_stats/empty_cache API.
//
// Environment: EMBER_CUDA_ALLOC=direct turns caching off: every tensor is its own
// cudaMalloc and is cudaFree'd as soon as it dies, so compute-sanitizer memcheck sees each
// buffer's true bounds (an overrun into a neighbouring cached block is invisible otherwise).
// EMBER_CUDA_ALLOC=caching (or unset) is the default. Read once, at the first CUDA allocation.
//
// Note [Streams]: blocks go back to the cache the moment their tensor dies, without an
// event. That is safe only because every op on a device runs on that device's one current
// stream (core/cuda/stream.h): work queued later on the same stream, which is the only
// work that can reuse the block, runs after the work that last used it. Once a second
// stream touches a tensor (DDP's communication stream), the allocator must learn about it
// (a `record_stream(ptr, stream)` that records an event on that stream at free time, and a
// pool that hands the block out again only after the event completed), or reuse could race
// with the pending communication.
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/cuda/check.h"
#include "core/caching_pool.h"
#include "core/cuda/stream.h"
#include "core/cuda_context.h"

namespace ember {

namespace {

bool caching_enabled_from_env() {
  const char* e = std::getenv("EMBER_CUDA_ALLOC");
  if (!e || !*e) return true;
  std::string v(e);
  if (v == "caching") return true;
  if (v == "direct") return false;
  EMBER_THROW("EMBER_CUDA_ALLOC=", v, " is not understood: use `caching` (the default) or "
              "`direct` (plain cudaMalloc/cudaFree per tensor, for compute-sanitizer)");
}

// Frees run from tensor destructors, also while an exception unwinds after a CUDA error and
// at process exit: they must not throw. A failure (the sticky error of a faulted kernel, the
// runtime already unloaded) is reported once and the memory left to the driver.
void free_segment(void* p) {
  cudaError_t e = cudaFree(p);
  if (e == cudaSuccess) return;
  cudaGetLastError();
  static std::once_flag warned;
  std::call_once(warned, [e] {
    if (e != cudaErrorCudartUnloading) {
      std::fprintf(stderr, "ember: cudaFree failed (%s: %s); leaving the memory to the driver\n",
                   cudaGetErrorName(e), cudaGetErrorString(e));
    }
  });
}

class CudaAllocator final : public Allocator {
 public:
  explicit CudaAllocator(int device)
      : device_(device),
        pool_(
            [](size_t n) -> void* {
              void* p = nullptr;
              cudaError_t e = cudaMalloc(&p, n);
              if (e == cudaErrorMemoryAllocation) {
                cudaGetLastError();  // clear it, or the next launch check would report it
                return nullptr;
              }
              EMBER_CUDA_CHECK(e);
              return p;
            },
            free_segment,
            CachingPool::Options{
                .caching = caching_enabled_from_env(),
                .device = "cuda:" + std::to_string(device),
                .describe_device = [] {
                  size_t free_b = 0, total_b = 0;
                  if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) {
                    cudaGetLastError();
                    return std::string();
                  }
                  return "the GPU has " + std::to_string(free_b >> 20) + " MiB free of " +
                         std::to_string(total_b >> 20) + " MiB";
                }}) {}

  void* allocate(size_t nbytes) override {
    cuda::DeviceGuard g(device_);
    return pool_.allocate(nbytes);
  }
  void deallocate(void* p) override {
    if (pool_.caching()) {  // bookkeeping only: no CUDA call, nothing that can fail
      pool_.deallocate(p);
      return;
    }
    // Direct mode frees at once, on this device; never throws (see free_segment).
    int prev = -1;
    bool switched = false;
    if (cudaGetDevice(&prev) != cudaSuccess) {
      cudaGetLastError();
    } else if (prev != device_) {
      switched = cudaSetDevice(device_) == cudaSuccess;
      if (!switched) cudaGetLastError();
    }
    pool_.deallocate(p);
    if (switched) cudaSetDevice(prev);
  }
  CachingPool& pool() { return pool_; }

 private:
  int device_;
  CachingPool pool_;
};

std::mutex g_alloc_mu;

void check_device(int device) {
  int n = cuda::device_count();
  EMBER_CHECK(device >= 0 && device < n, "CUDA allocator: device ", device, " requested but ",
              n == 0 ? std::string("no CUDA device is available")
                     : "only " + std::to_string(n) + " device(s) exist");
}

CudaAllocator& allocator_of(int device) {
  check_device(device);
  std::lock_guard<std::mutex> lock(g_alloc_mu);
  // Never destroyed: tensors held by other static objects may be freed after main returns,
  // and cudaFree during the runtime's own teardown fails. The driver reclaims it all at exit.
  static std::vector<CudaAllocator*>* table =
      new std::vector<CudaAllocator*>(size_t(cuda::device_count()), nullptr);
  CudaAllocator*& a = (*table)[size_t(device)];
  if (!a) a = new CudaAllocator(device);
  return *a;
}

}  // namespace

Allocator& cuda_allocator(int device) { return allocator_of(device); }

namespace cuda {

MemoryStats memory_stats(int index) { return allocator_of(index).pool().stats(); }

void reset_peak_memory_stats(int index) { allocator_of(index).pool().reset_peak(); }

void empty_cache(int index) {
  CudaAllocator& a = allocator_of(index);
  DeviceGuard g(index);
  a.pool().empty_cache();  // cudaFree waits for the device, so pending kernels finish first
}

}  // namespace cuda

}  // namespace ember
