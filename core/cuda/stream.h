#pragma once
// The current stream of each device and device guards.
#include <cuda_runtime_api.h>

#include <cstdint>
#include <functional>
#include <string>

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

/// The host waits of the library, each counted in sync_count() (core/cuda_context.h):
/// call these, never the CUDA functions directly, so the count stays honest.
void stream_synchronize(cudaStream_t stream);
void event_synchronize(cudaEvent_t event);

/// Queues a device check (Note [Deferred checks]): `result` is two int64 of device memory
/// written by work already queued on `stream`: a position (negative when the check passed)
/// and the offending value. They are copied to pinned host memory on `stream`; once landed,
/// message(position, value) builds the error that report_checks() throws.
void defer_check(int device, cudaStream_t stream, const int64_t* result,
                 std::function<std::string(int64_t, int64_t)> message);
/// Throws the first failure among the completed checks of `device`; waits for none.
/// Called where the host has just waited anyway, and by the optimizer step.
void report_checks(int device);

/// The number of SMs of a device (to size grid-stride launches).
int sm_count(int device);

}  // namespace ember::cuda
