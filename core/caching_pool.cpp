// CachingPool: segments, blocks, split/merge and statistics (Note [Caching allocator]).
#include "core/caching_pool.h"

#include <algorithm>
#include <cstdio>
#include <vector>

#include "core/error.h"

namespace ember {

namespace {
// "1.50 GiB (1610612736 bytes)": readable and exact, for error messages.
std::string bytes_str(size_t n) {
  static const char* units[] = {"bytes", "KiB", "MiB", "GiB", "TiB", "PiB"};
  double v = double(n);
  int u = 0;
  while (v >= 1024.0 && u < 5) {
    v /= 1024.0;
    ++u;
  }
  char buf[64];
  if (u == 0) {
    std::snprintf(buf, sizeof buf, "%zu bytes", n);
  } else {
    std::snprintf(buf, sizeof buf, "%.2f %s (%zu bytes)", v, units[u], n);
  }
  return buf;
}
}  // namespace

CachingPool::CachingPool(RawAlloc raw_alloc, RawFree raw_free, Options opt)
    : raw_alloc_(std::move(raw_alloc)), raw_free_(std::move(raw_free)), opt_(std::move(opt)) {}

CachingPool::~CachingPool() {
  // Walk every segment from its first block; free blocks and blocks in use alike.
  std::vector<Block*> all(small_free_.begin(), small_free_.end());
  all.insert(all.end(), large_free_.begin(), large_free_.end());
  for (auto& kv : active_) all.push_back(kv.second);
  for (Block* b : all) {
    if (b->prev == nullptr) raw_free_(b->ptr);
  }
  for (Block* b : all) delete b;
}

size_t CachingPool::round_size(size_t nbytes) {
  if (nbytes < kMinBlock) return kMinBlock;
  return (nbytes + kMinBlock - 1) / kMinBlock * kMinBlock;
}

size_t CachingPool::segment_size(size_t rounded) {
  if (rounded <= kSmallLimit) return kSmallSegment;
  if (rounded < kMidLimit) return kLargeSegment;
  return (rounded + kLargeRound - 1) / kLargeRound * kLargeRound;
}

void CachingPool::throw_oom(size_t requested, size_t attempted) const {
  size_t allocated = size_t(stats_.allocated), reserved = size_t(stats_.reserved);
  std::string msg = "out of memory on " + opt_.device + ": tried to allocate " +
                    bytes_str(requested);
  if (attempted != requested) msg += " (a segment of " + bytes_str(attempted) + ")";
  msg += "; " + bytes_str(allocated) + " allocated by ember, " + bytes_str(reserved) +
         " reserved, of which " + bytes_str(reserved - allocated) + " cached and free";
  if (opt_.describe_device) {
    std::string extra = opt_.describe_device();
    if (!extra.empty()) msg += "; " + extra;
  }
  msg += ". Free tensors you no longer need or use smaller batches.";
  EMBER_THROW(msg);
}

void* CachingPool::raw_alloc_with_retry(size_t nbytes, size_t requested) {
  void* p = raw_alloc_(nbytes);
  if (p) return p;
  // Out of memory: give every wholly free cached segment back, then try once more.
  ++stats_.num_ooms;
  release_free_segments();
  p = raw_alloc_(nbytes);
  if (!p) throw_oom(requested, nbytes);
  return p;
}

CachingPool::Block* CachingPool::new_segment(size_t size, bool small, size_t requested) {
  void* p = raw_alloc_with_retry(size, requested);
  Block* b = new Block;
  b->ptr = static_cast<char*>(p);
  b->size = size;
  b->small = small;
  stats_.reserved += int64_t(size);
  return b;
}

CachingPool::Block* CachingPool::find_free(size_t size, bool small) {
  FreeSet& pool = pool_of(small);
  Block key;
  key.size = size;
  key.ptr = nullptr;
  auto it = pool.lower_bound(&key);
  if (it == pool.end()) return nullptr;
  Block* b = *it;
  pool.erase(it);
  return b;
}

void CachingPool::record_alloc(Block* b) {
  b->allocated = true;
  active_.emplace(b->ptr, b);
  stats_.allocated += int64_t(b->size);
  stats_.peak = std::max(stats_.peak, stats_.allocated);
  ++stats_.num_allocs;
}

void* CachingPool::allocate(size_t nbytes) {
  if (nbytes == 0) return nullptr;
  std::lock_guard<std::mutex> lock(mu_);
  if (!opt_.caching) {
    Block* b = new_segment(nbytes, false, nbytes);
    record_alloc(b);
    return b->ptr;
  }
  size_t size = round_size(nbytes);
  bool small = size <= kSmallLimit;
  Block* b = find_free(size, small);
  if (!b) b = new_segment(segment_size(size), small, nbytes);
  // Split off the tail when it is big enough to serve another request of this pool.
  size_t rest = b->size - size;
  if (small ? rest >= kMinBlock : rest > kSmallLimit) {
    Block* tail = new Block;
    tail->ptr = b->ptr + size;
    tail->size = rest;
    tail->small = small;
    tail->prev = b;
    tail->next = b->next;
    if (b->next) b->next->prev = tail;
    b->next = tail;
    b->size = size;
    pool_of(small).insert(tail);
  }
  record_alloc(b);
  return b->ptr;
}

void CachingPool::deallocate(void* p) {
  if (!p) return;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = active_.find(p);
  EMBER_CHECK(it != active_.end(), "deallocate on ", opt_.device, ": pointer ", p,
              " was not allocated by this allocator (or was freed twice)");
  Block* b = it->second;
  active_.erase(it);
  b->allocated = false;
  stats_.allocated -= int64_t(b->size);
  if (!opt_.caching) {
    raw_free_(b->ptr);
    stats_.reserved -= int64_t(b->size);
    delete b;
    return;
  }
  FreeSet& pool = pool_of(b->small);
  // Merge with free neighbours so the segment's free space stays in as few blocks as possible.
  if (Block* prev = b->prev; prev && !prev->allocated) {
    pool.erase(prev);
    prev->size += b->size;
    prev->next = b->next;
    if (b->next) b->next->prev = prev;
    delete b;
    b = prev;
  }
  if (Block* next = b->next; next && !next->allocated) {
    pool.erase(next);
    b->size += next->size;
    b->next = next->next;
    if (next->next) next->next->prev = b;
    delete next;
  }
  pool.insert(b);
}

void CachingPool::release_free_segments() {
  for (FreeSet* pool : {&small_free_, &large_free_}) {
    for (auto it = pool->begin(); it != pool->end();) {
      Block* b = *it;
      if (b->prev == nullptr && b->next == nullptr) {  // the whole segment is free
        raw_free_(b->ptr);
        stats_.reserved -= int64_t(b->size);
        delete b;
        it = pool->erase(it);
      } else {
        ++it;
      }
    }
  }
}

void CachingPool::empty_cache() {
  std::lock_guard<std::mutex> lock(mu_);
  release_free_segments();
}

MemoryStats CachingPool::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

void CachingPool::reset_peak() {
  std::lock_guard<std::mutex> lock(mu_);
  stats_.peak = stats_.allocated;
}

}  // namespace ember
