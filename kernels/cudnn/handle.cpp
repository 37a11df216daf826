// cuDNN handles (one per device and thread, destroyed with the thread: Note [Library
// handles] in kernels/cuda/thread_handles.h) and the error helper behind EMBER_CUDNN_CHECK.
#include <string>
#include <vector>

#include "kernels/cuda/thread_handles.h"
#include "kernels/cudnn/check.h"
#include "core/cuda/stream.h"

namespace ember::cudnn {

namespace detail {
void throw_cudnn(cudnnStatus_t s, const char* expr, const char* file, int line) {
  throw Error(std::string("cuDNN error ") + cudnnGetErrorString(s) + " in " + expr + " at " +
              file + ":" + std::to_string(line));
}
}  // namespace detail

// One handle per thread and device: Note [Library handles] in kernels/cuda/thread_handles.h.
cudnnHandle_t handle(int device) {
  EMBER_CHECK(device >= 0, "cudnn::handle: expected a device index >= 0, got ", device);
  thread_local cuda::ThreadHandles<cudnnHandle_t> mine(+[](cudnnHandle_t h) { (void)cudnnDestroy(h); });
  cudnnHandle_t& h = mine.slot(device);
  if (!h) {
    cuda::detail::watch_process_exit();
    EMBER_CUDNN_CHECK(cudnnCreate(&h));
  }
  EMBER_CUDNN_CHECK(cudnnSetStream(h, cuda::current_stream(device)));
  return h;
}

}  // namespace ember::cudnn
