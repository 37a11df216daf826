// The CPU allocator (64-byte aligned, for SIMD loads; caching, Note [CPU caching
// allocator]) and the per-device registry.
//
// Note [CPU caching allocator]: glibc serves blocks above its mmap threshold with mmap and
// gives them back with munmap (and trims the top of the heap on free), so in a training loop
// every fresh activation or gradient page-faults on first touch again: about 600 faults
// (2.4 MB) per LeNet step on MNIST, a tenth of the step. So the CPU allocator keeps freed
// blocks like the CUDA one does: a CachingPool (Note [Caching allocator]) over 64-byte
// aligned segments from aligned_alloc (blocks are multiples of 512 bytes, so they stay
// 64-byte aligned). Memory a program freed stays reserved by ember for reuse.
//
// Environment: EMBER_CPU_ALLOC=direct turns caching off (every tensor is its own
// aligned_alloc, freed as soon as it dies, so AddressSanitizer and valgrind see each
// buffer's true bounds); EMBER_CPU_ALLOC=caching (or unset) is the default. Read once, at
// the first CPU allocation.
#include "core/allocator.h"

#include <cstdlib>
#include <new>
#include <string>

#include "core/caching_pool.h"
#include "core/error.h"

namespace ember {

namespace {

bool cpu_caching_from_env() {
  const char* e = std::getenv("EMBER_CPU_ALLOC");
  if (!e || !*e) return true;
  std::string v(e);
  if (v == "caching") return true;
  if (v == "direct") return false;
  EMBER_THROW("EMBER_CPU_ALLOC=", v, " is not understood: use `caching` (the default) or "
              "`direct` (plain aligned_alloc/free per tensor, for sanitizers)");
}

// Caching: segments are multiples of 64 bytes (aligned_alloc wants that). Direct: exactly
// the bytes asked for (posix_memalign takes any size), so a sanitizer flags even a read one
// byte past a tensor's end, which 64-byte rounding would hide.
void* raw_rounded(size_t n) { return std::aligned_alloc(64, (n + 63) / 64 * 64); }
void* raw_exact(size_t n) {
  void* p = nullptr;
  return posix_memalign(&p, 64, n) == 0 ? p : nullptr;
}

class CpuAllocator final : public Allocator {
  const bool caching_ = cpu_caching_from_env();  // before pool_

 public:
  CpuAllocator()
      : pool_(caching_ ? raw_rounded : raw_exact, [](void* p) { std::free(p); },
              CachingPool::Options{.caching = caching_, .device = "cpu", .describe_device = {}}) {}
  void* allocate(size_t nbytes) override { return pool_.allocate(nbytes); }
  void deallocate(void* p) override { pool_.deallocate(p); }

 private:
  CachingPool pool_;
};

}  // namespace

#if EMBER_WITH_CUDA
Allocator& cuda_allocator(int device);  // core/cuda/allocator.cpp
#endif

Allocator& allocator_for(Device d) {
  // Never destroyed: tensors held by other static objects may be freed after main returns.
  static CpuAllocator* cpu = new CpuAllocator;
  if (d.is_cpu()) return *cpu;
#if EMBER_WITH_CUDA
  return cuda_allocator(d.index);
#else
  EMBER_THROW("cannot allocate on ", d.str(), ": ember was built without CUDA (EMBER_WITH_CUDA=0)");
#endif
}

}  // namespace ember
