// The CPU allocator (64-byte aligned, for SIMD loads) and the per-device registry.
#include "tensor/allocator.h"

#include <cstdlib>
#include <new>

#include "tensor/error.h"

namespace ember {

namespace {
class CpuAllocator final : public Allocator {
 public:
  void* allocate(size_t nbytes) override {
    size_t rounded = (nbytes + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, rounded);
    EMBER_CHECK(p, "CPU out of memory: failed to allocate ", nbytes, " bytes");
    return p;
  }
  void deallocate(void* p) override { std::free(p); }
};
}  // namespace

#if EMBER_WITH_CUDA
Allocator& cuda_allocator(int device);  // tensor/cuda/allocator.cpp
#endif

Allocator& allocator_for(Device d) {
  static CpuAllocator cpu;
  if (d.is_cpu()) return cpu;
#if EMBER_WITH_CUDA
  return cuda_allocator(d.index);
#else
  EMBER_THROW("cannot allocate on ", d.str(), ": ember was built without CUDA (EMBER_WITH_CUDA=0)");
#endif
}

}  // namespace ember
