// The CUDA queries in a build without CUDA: no devices, and a clear error for anything more.
#include "core/cuda_context.h"
#include "core/error.h"

#if !EMBER_WITH_CUDA
namespace ember::cuda {

static constexpr const char* kNoCuda =
    "ember was built without CUDA (EMBER_WITH_CUDA=0): rebuild with -DEMBER_CUDA=ON on a machine "
    "with the CUDA toolkit";

int device_count() { return 0; }
bool is_available() { return false; }
std::string device_name(int) { EMBER_THROW(kNoCuda); }
std::pair<int, int> device_capability(int) { EMBER_THROW(kNoCuda); }
void synchronize(int) { EMBER_THROW(kNoCuda); }
MemoryStats memory_stats(int) { EMBER_THROW(kNoCuda); }
void reset_peak_memory_stats(int) { EMBER_THROW(kNoCuda); }
void empty_cache(int) { EMBER_THROW(kNoCuda); }
void set_eager_checks(bool) {}
bool eager_checks() { return false; }
void set_allow_tf32(bool) {}
bool allow_tf32() { return false; }
LibraryVersions library_versions() { return {}; }

}  // namespace ember::cuda
#endif
