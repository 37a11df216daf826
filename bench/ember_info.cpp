// Prints what this build of ember is and what it finds at run time, one `key: value` line
// each: the EMBER_WITH_* flags, the CUDA libraries' versions as they report themselves (and
// the header versions compiled against), and the GPUs. Runs without a GPU too (then
// `gpus: 0`). scripts/gpu_check.sh puts these lines into its summary.
#include <cstdio>
#include <string>

#include "ember.h"

namespace {
std::string dotted(int code, int major_div, int minor_div, int minor_mod) {  // 0 -> "none"
  if (code <= 0) return "none";
  std::string s = std::to_string(code / major_div) + "." + std::to_string(code / minor_div % minor_mod);
  if (minor_div > 1) s += "." + std::to_string(code % minor_div);
  return s;
}
std::string cuda_version(int code) {  // 13000 -> 13.0
  return code <= 0 ? "none" : std::to_string(code / 1000) + "." + std::to_string(code % 1000 / 10);
}
std::string mmp(int code) { return dotted(code, 10000, 100, 100); }  // 91300 -> 9.13.0
}  // namespace

int main() {
  using namespace ember;
  std::printf("EMBER_WITH_CUDA: %d\nEMBER_WITH_CUDNN: %d\nEMBER_WITH_NCCL: %d\nEMBER_WITH_MPI: %d\n"
              "EMBER_WITH_GLOO: %d\nEMBER_WITH_DNNL: %d\n",
              EMBER_WITH_CUDA, EMBER_WITH_CUDNN, EMBER_WITH_NCCL, EMBER_WITH_MPI, EMBER_WITH_GLOO, EMBER_WITH_DNNL);
  cuda::LibraryVersions v = cuda::library_versions();
  std::printf("cuda_runtime: %s (headers %s)\n", cuda_version(v.runtime).c_str(),
              cuda_version(v.runtime_header).c_str());
  std::printf("cuda_driver_api: %s\n", cuda_version(v.driver).c_str());
  std::printf("cublas: %s\n", mmp(v.cublas).c_str());
  std::printf("cudnn: %s (headers %s)\n", mmp(v.cudnn).c_str(), mmp(v.cudnn_header).c_str());
  std::printf("nccl: %s (headers %s)\n", mmp(v.nccl).c_str(), mmp(v.nccl_header).c_str());
  int n = cuda::device_count();
  std::printf("gpus: %d\n", n);
  for (int i = 0; i < n; ++i) std::printf("gpu%d: %s\n", i, cuda::device_name(i).c_str());
  return 0;
}
