#pragma once
// The current stream of each device, device guards and the per-device cuBLAS handle.
#include <cuda_runtime_api.h>

namespace ember::cuda {

/// The stream every op on `device` is queued on (one per device, created on first use).
cudaStream_t current_stream(int device);
/// Replaces the current stream of a device (null: back to the default one).
void set_current_stream(int device, cudaStream_t stream);

/// Makes `device` current for its scope and restores the previous one.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device);
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int prev_ = -1;
};

/// The number of SMs of a device (to size grid-stride launches).
int sm_count(int device);

}  // namespace ember::cuda
