#pragma once
// What the CUDA runtime offers, asked safely: zero devices when there is no GPU or driver.
#include <cstdint>
#include <string>
#include <utility>

#include "core/allocator.h"

namespace ember::cuda {

/// Number of usable GPUs; 0 in a build without CUDA or on a machine without GPU/driver.
int device_count();
bool is_available();
/// The device's name, e.g. "NVIDIA H100 80GB HBM3"; throws when it does not exist.
std::string device_name(int index);
/// The device's compute capability (major, minor), e.g. (9, 0) for an H100; throws when it
/// does not exist.
std::pair<int, int> device_capability(int index);
/// Waits for all work queued on the device's current stream.
void synchronize(int index = 0);
/// Allocator statistics of the caching allocator for one device.
MemoryStats memory_stats(int index = 0);
void reset_peak_memory_stats(int index = 0);
/// Returns cached, unused blocks to the driver.
void empty_cache(int index = 0);
/// How many times ember itself has made the host wait for a GPU: every stream or device
/// synchronize, blocking copy and event wait in the library goes through one counted
/// wrapper (core/cuda/stream.h). A training step should add at most one (its item()).
/// Always 0 in a build without CUDA.
int64_t sync_count();
/// Note [Deferred checks]: index and label range checks run on the device and are reported
/// at the next point where the host waits anyway (item(), a copy to the host,
/// synchronize(), the optimizer step), so a step never stalls for them. With eager checks
/// (set_eager_checks(true) or EMBER_CUDA_EAGER_CHECKS=1) each check waits at once and
/// throws from the op that found the bad value: slower, for debugging.
void set_eager_checks(bool on);
bool eager_checks();
/// TF32 for f32 GEMMs on Ampere+ (off by default, like PyTorch's matmul default).
void set_allow_tf32(bool allow);
bool allow_tf32();

/// Versions of the CUDA libraries this build uses, as they report themselves at run time
/// (each as its library encodes it: CUDA 13.0 is 13000, cuDNN 9.13.0 is 91300, NCCL 2.28.3
/// is 22803); 0 where the build has no such library (EMBER_WITH_* off) or the query failed.
/// The `*_header` fields are the versions of the headers the build was compiled against.
/// Safe without a GPU: the driver field is then 0.
struct LibraryVersions {
  int runtime = 0, runtime_header = 0;  // cudaRuntimeGetVersion, CUDART_VERSION
  int driver = 0;                       // cudaDriverGetVersion (0: no driver)
  int cublas = 0;                       // cublasGetProperty (major*10000+minor*100+patch)
  int cudnn = 0, cudnn_header = 0;      // cudnnGetVersion, CUDNN_VERSION
  int nccl = 0, nccl_header = 0;        // ncclGetVersion, NCCL_VERSION_CODE
};
LibraryVersions library_versions();

}  // namespace ember::cuda
