// cuDNN handles (one per device and thread: a handle must not be shared by threads
// running at once) and the error helper behind EMBER_CUDNN_CHECK.
#include <string>
#include <vector>

#include "kernels/cudnn/check.h"
#include "tensor/cuda/stream.h"

namespace ember::cudnn {

namespace detail {
void throw_cudnn(cudnnStatus_t s, const char* expr, const char* file, int line) {
  throw Error(std::string("cuDNN error ") + cudnnGetErrorString(s) + " in " + expr + " at " +
              file + ":" + std::to_string(line));
}
}  // namespace detail

cudnnHandle_t handle(int device) {
  // Never destroyed: at process exit the CUDA context may already be gone.
  thread_local std::vector<cudnnHandle_t> handles;
  if (int(handles.size()) <= device) handles.resize(size_t(device) + 1, nullptr);
  cudnnHandle_t& h = handles[size_t(device)];
  if (!h) EMBER_CUDNN_CHECK(cudnnCreate(&h));
  EMBER_CUDNN_CHECK(cudnnSetStream(h, cuda::current_stream(device)));
  return h;
}

}  // namespace ember::cudnn
