#pragma once
// CachingPool: the bookkeeping of a caching device allocator (segments, blocks, split and
// merge, best-fit search, free-cache-and-retry, statistics), independent of CUDA. The CUDA
// allocator (core/cuda/allocator.cpp) plugs cudaMalloc/cudaFree into it; the tests plug
// std::malloc and failing fakes into it, so the logic is tested on machines without a GPU.
//
// Note [Caching allocator]: memory is taken from the backend in segments and handed out
// as blocks carved from them.
//  - Request sizes are rounded up to a multiple of 512 bytes (kMinBlock).
//  - Small requests (<= 1 MiB) come from the small pool, whose segments are 2 MiB; large
//    requests come from the large pool, whose segments are 20 MiB for requests under 10 MiB
//    and the request rounded up to 2 MiB otherwise (the sizes PyTorch uses: they keep the
//    number of backend calls low without wasting much).
//  - A request takes the smallest free block of its pool that fits (best fit). The rest of
//    that block is split off as a new free block when it is worth keeping: >= 512 bytes in
//    the small pool, > 1 MiB in the large one.
//  - A freed block goes straight back to its pool and merges with free neighbours of the
//    same segment, so a segment whose blocks are all free is one block again.
//  - When the backend runs out of memory, every wholly free segment is returned to it and
//    the request retried once; if that fails too the error says how much was asked for,
//    allocated and cached.
//  - With `caching = false` every request is one backend call of exactly its size and every
//    free returns it at once (EMBER_CUDA_ALLOC=direct: lets compute-sanitizer see each
//    buffer's real bounds).
#include <cstddef>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <unordered_map>

#include "core/allocator.h"

namespace ember {

class CachingPool {
 public:
  /// Backend allocation: returns nullptr when out of memory (other failures may throw).
  using RawAlloc = std::function<void*(size_t nbytes)>;
  using RawFree = std::function<void(void* p)>;

  static constexpr size_t kMinBlock = 512;              // size granularity
  static constexpr size_t kSmallLimit = 1 << 20;        // largest small-pool request
  static constexpr size_t kSmallSegment = 2 << 20;      // small-pool segment size
  static constexpr size_t kLargeSegment = 20 << 20;     // segment for requests < kMidLimit
  static constexpr size_t kMidLimit = 10 << 20;
  static constexpr size_t kLargeRound = 2 << 20;        // rounding of bigger segments

  struct Options {
    bool caching = true;
    /// Names the device in error messages, e.g. "cuda:0".
    std::string device = "device";
    /// Optional extra sentence for the OOM message (e.g. the GPU's free/total memory).
    std::function<std::string()> describe_device;
  };

  CachingPool(RawAlloc raw_alloc, RawFree raw_free, Options opt);
  /// Returns every segment to the backend (blocks still in use included).
  ~CachingPool();
  CachingPool(const CachingPool&) = delete;
  CachingPool& operator=(const CachingPool&) = delete;

  /// A block of at least `nbytes` (nullptr for 0). Throws ember::Error when the backend is
  /// out of memory even after the cache was emptied.
  void* allocate(size_t nbytes);
  /// Returns a block from allocate() to the cache (or the backend when not caching).
  void deallocate(void* p);
  /// Returns every wholly free segment to the backend.
  void empty_cache();

  MemoryStats stats() const;
  /// Sets peak to the bytes allocated now.
  void reset_peak();
  bool caching() const { return opt_.caching; }

  /// The size a request is rounded to, and the segment size a miss asks the backend for.
  static size_t round_size(size_t nbytes);
  static size_t segment_size(size_t rounded);

 private:
  struct Block {
    char* ptr = nullptr;
    size_t size = 0;
    bool small = false;      // which pool its segment belongs to
    bool allocated = false;
    Block* prev = nullptr;   // neighbours inside the same segment
    Block* next = nullptr;
  };
  struct BySizeThenAddress {
    bool operator()(const Block* a, const Block* b) const {
      return a->size != b->size ? a->size < b->size : a->ptr < b->ptr;
    }
  };
  using FreeSet = std::set<Block*, BySizeThenAddress>;

  FreeSet& pool_of(bool small) { return small ? small_free_ : large_free_; }
  Block* find_free(size_t size, bool small);
  Block* new_segment(size_t size, bool small, size_t requested);
  void* raw_alloc_with_retry(size_t nbytes, size_t requested);
  void release_free_segments();
  [[noreturn]] void throw_oom(size_t requested, size_t attempted) const;
  void record_alloc(Block* b);

  RawAlloc raw_alloc_;
  RawFree raw_free_;
  Options opt_;
  mutable std::mutex mu_;
  FreeSet small_free_, large_free_;
  std::unordered_map<void*, Block*> active_;
  MemoryStats stats_;
};

}  // namespace ember
