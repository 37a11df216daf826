#pragma once
// Allocators: a 64-byte-aligned CPU allocator and the per-device registry.
// The CUDA caching allocator lives in core/cuda/allocator.cpp.
#include <cstddef>
#include <cstdint>
#include <functional>

#include "core/device.h"

namespace ember {

/// Raw memory for one device. `allocate` throws ember::Error when memory runs out.
class Allocator {
 public:
  virtual ~Allocator() = default;
  virtual void* allocate(size_t nbytes) = 0;
  virtual void deallocate(void* p) = 0;
};

/// The allocator for a device (CPU: 64-byte aligned; CUDA: the caching allocator).
Allocator& allocator_for(Device d);

/// Bytes in use / reserved from the system / peak in use, for one device.
struct MemoryStats {
  int64_t allocated = 0;
  int64_t reserved = 0;
  int64_t peak = 0;
  int64_t num_allocs = 0;  // successful allocate() calls
  int64_t num_ooms = 0;    // OOMs that emptied the cache and retried
};

}  // namespace ember
