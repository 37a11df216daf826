// The versions of the CUDA libraries in this build, as each reports itself at run time
// (scripts/gpu_check.sh records them; bench/ember_info prints them).
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "core/cuda_context.h"

#if EMBER_WITH_CUDNN
#include <cudnn.h>
#endif
#if EMBER_WITH_NCCL
#include <nccl.h>
#endif

namespace ember::cuda {

LibraryVersions library_versions() {
  LibraryVersions v;
  v.runtime_header = CUDART_VERSION;
  if (cudaRuntimeGetVersion(&v.runtime) != cudaSuccess) v.runtime = 0;
  if (cudaDriverGetVersion(&v.driver) != cudaSuccess) v.driver = 0;
  cudaGetLastError();  // a missing driver is a normal answer here, not a sticky error
  int major = 0, minor = 0, patch = 0;
  if (cublasGetProperty(MAJOR_VERSION, &major) == CUBLAS_STATUS_SUCCESS &&
      cublasGetProperty(MINOR_VERSION, &minor) == CUBLAS_STATUS_SUCCESS &&
      cublasGetProperty(PATCH_LEVEL, &patch) == CUBLAS_STATUS_SUCCESS) {
    v.cublas = major * 10000 + minor * 100 + patch;
  }
#if EMBER_WITH_CUDNN
  v.cudnn = int(cudnnGetVersion());
  v.cudnn_header = CUDNN_VERSION;
#endif
#if EMBER_WITH_NCCL
  int n = 0;
  if (ncclGetVersion(&n) == ncclSuccess) v.nccl = n;
  v.nccl_header = NCCL_VERSION_CODE;
#endif
  return v;
}

}  // namespace ember::cuda
