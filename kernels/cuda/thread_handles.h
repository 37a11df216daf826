#pragma once
// Per-thread library handles (cuBLAS, cuDNN), one per device, destroyed when their thread
// ends: Note [Library handles].
//
// Note [Library handles]: a cuBLAS or cuDNN handle must not be used by two threads at once
// (its stream and workspace belong to the handle), so each thread has its own per device,
// made on first use and pointed at the caller's stream on every call. A thread's handles are
// destroyed when the thread ends, so worker threads (DDP's, a user's) do not leak one each.
// The exception is the end of the process: destroying a handle once the CUDA runtime has
// begun its own teardown (an atexit handler of its own) can crash. The main thread's
// thread_local objects are destroyed before any atexit handler runs, so its handles are
// destroyed normally; an atexit handler registered when the first handle is made (after the
// runtime registered its own, hence run before it) marks the process as exiting, and the
// handles of threads that end after that are left to the driver.
#include <atomic>
#include <cstdlib>
#include <vector>

#include <cuda_runtime_api.h>

namespace ember::cuda {

namespace detail {
inline std::atomic<bool> process_exiting{false};
/// Registers (once) the atexit handler that sets process_exiting.
inline void watch_process_exit() {
  static const bool registered = [] { return std::atexit(+[] { process_exiting.store(true); }) == 0; }();
  (void)registered;
}
}  // namespace detail

/// The handles of one thread, by device. `destroy` is called (with the handle's device
/// current; it must not throw) for each handle when the thread ends, unless the process is
/// exiting.
template <class Handle>
class ThreadHandles {
 public:
  using Destroy = void (*)(Handle);
  explicit ThreadHandles(Destroy destroy) : destroy_(destroy) {}
  ThreadHandles(const ThreadHandles&) = delete;
  ThreadHandles& operator=(const ThreadHandles&) = delete;
  ~ThreadHandles() {
    if (detail::process_exiting.load()) return;
    int current = -1;
    const bool restore = cudaGetDevice(&current) == cudaSuccess;
    for (size_t d = 0; d < handles_.size(); ++d) {
      if (handles_[d] && cudaSetDevice(int(d)) == cudaSuccess) destroy_(handles_[d]);
    }
    if (restore) (void)cudaSetDevice(current);
  }
  /// The slot of `device` (null until the caller creates the handle; call
  /// detail::watch_process_exit() before creating one).
  Handle& slot(int device) {
    if (handles_.size() <= size_t(device)) handles_.resize(size_t(device) + 1, Handle{});
    return handles_[size_t(device)];
  }

 private:
  std::vector<Handle> handles_;
  Destroy destroy_;
};

}  // namespace ember::cuda
