// CachingPool (the CUDA caching allocator's bookkeeping) on fake CPU backends: size
// classes, split/merge, best fit, statistics, free-cache-and-retry and the OOM message.
#include "core/caching_pool.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <random>
#include <thread>
#include <vector>

#include "core/error.h"

namespace ember {
namespace {

constexpr size_t KiB = 1024, MiB = 1024 * 1024;

// std::malloc that counts calls and live bytes, and fails once `limit` live bytes would be
// exceeded (a device with `limit` bytes of memory).
struct FakeBackend {
  size_t limit = SIZE_MAX;
  size_t live = 0;
  int allocs = 0, frees = 0, failures = 0;
  std::vector<size_t> sizes;  // every successful request, in order
  std::map<void*, size_t> blocks;

  CachingPool::RawAlloc alloc_fn() {
    return [this](size_t n) -> void* {
      if (live + n > limit) {
        ++failures;
        return nullptr;
      }
      void* p = std::malloc(n);
      ++allocs;
      live += n;
      sizes.push_back(n);
      blocks[p] = n;
      return p;
    };
  }
  CachingPool::RawFree free_fn() {
    return [this](void* p) {
      auto it = blocks.find(p);
      ASSERT_NE(it, blocks.end()) << "backend asked to free a pointer it never gave out";
      live -= it->second;
      blocks.erase(it);
      ++frees;
      std::free(p);
    };
  }
};

CachingPool make_pool(FakeBackend& be, bool caching = true) {
  return CachingPool(be.alloc_fn(), be.free_fn(),
                     {.caching = caching, .device = "fake:0", .describe_device = {}});
}

TEST(CachingPool, RoundsSizesAndPicksSegments) {
  EXPECT_EQ(CachingPool::round_size(1), 512u);
  EXPECT_EQ(CachingPool::round_size(512), 512u);
  EXPECT_EQ(CachingPool::round_size(513), 1024u);
  EXPECT_EQ(CachingPool::segment_size(512), 2 * MiB);
  EXPECT_EQ(CachingPool::segment_size(1 * MiB), 2 * MiB);
  EXPECT_EQ(CachingPool::segment_size(1 * MiB + 512), 20 * MiB);
  EXPECT_EQ(CachingPool::segment_size(10 * MiB - 512), 20 * MiB);
  EXPECT_EQ(CachingPool::segment_size(10 * MiB), 10 * MiB);
  EXPECT_EQ(CachingPool::segment_size(15 * MiB), 16 * MiB);
}

TEST(CachingPool, ZeroBytesIsNull) {
  FakeBackend be;
  CachingPool pool = make_pool(be);
  EXPECT_EQ(pool.allocate(0), nullptr);
  pool.deallocate(nullptr);
  EXPECT_EQ(be.allocs, 0);
}

TEST(CachingPool, SmallRequestsShareOneSegment) {
  FakeBackend be;
  CachingPool pool = make_pool(be);
  char* a = static_cast<char*>(pool.allocate(1));
  char* b = static_cast<char*>(pool.allocate(700));
  char* c = static_cast<char*>(pool.allocate(1 * MiB));
  EXPECT_EQ(be.allocs, 1);
  EXPECT_EQ(be.sizes[0], 2 * MiB);
  // Carved one after another from the start of the segment (best fit takes the tail).
  EXPECT_EQ(b, a + 512);
  EXPECT_EQ(c, b + 1024);
  MemoryStats s = pool.stats();
  EXPECT_EQ(s.allocated, int64_t(512 + 1024 + 1 * MiB));
  EXPECT_EQ(s.reserved, int64_t(2 * MiB));
  EXPECT_EQ(s.num_allocs, 3);
  pool.deallocate(a);
  pool.deallocate(b);
  pool.deallocate(c);
  EXPECT_EQ(pool.stats().allocated, 0);
  EXPECT_EQ(pool.stats().reserved, int64_t(2 * MiB));  // cached, not returned
  EXPECT_EQ(be.frees, 0);
}

TEST(CachingPool, FreedBlockIsReusedByBestFit) {
  FakeBackend be;
  CachingPool pool = make_pool(be);
  void* a = pool.allocate(4 * KiB);
  void* keep = pool.allocate(512);  // separates a's block from the segment's free tail
  pool.deallocate(a);
  // A 4 KiB request takes a's exact-size block, not the larger tail.
  void* a2 = pool.allocate(4 * KiB);
  EXPECT_EQ(a2, a);
  // A smaller one also prefers the smaller free block (best fit), splitting it.
  pool.deallocate(a2);
  void* d = pool.allocate(1 * KiB);
  EXPECT_EQ(d, a);
  void* e = pool.allocate(3 * KiB);  // the remainder of a's block
  EXPECT_EQ(static_cast<char*>(e), static_cast<char*>(a) + 1 * KiB);
  EXPECT_EQ(be.allocs, 1);
  pool.deallocate(d);
  pool.deallocate(e);
  pool.deallocate(keep);
}

TEST(CachingPool, FreeNeighboursMergeBackIntoTheSegment) {
  FakeBackend be;
  CachingPool pool = make_pool(be);
  void* a = pool.allocate(512 * KiB);
  void* b = pool.allocate(512 * KiB);
  void* c = pool.allocate(512 * KiB);
  void* d = pool.allocate(512 * KiB);  // fills the 2 MiB segment exactly
  EXPECT_EQ(be.allocs, 1);
  // Free in an order that exercises merging with the previous, the next, and both.
  pool.deallocate(a);
  pool.deallocate(c);
  pool.deallocate(b);  // merges with a (before) and c (after)
  // a+b+c is one 1.5 MiB block again: a 1 MiB request fits without a new segment.
  void* big = pool.allocate(1 * MiB);
  EXPECT_EQ(big, a);
  EXPECT_EQ(be.allocs, 1);
  pool.deallocate(big);
  // While d is in use the segment cannot be returned.
  pool.empty_cache();
  EXPECT_EQ(be.frees, 0);
  EXPECT_EQ(pool.stats().reserved, int64_t(2 * MiB));
  pool.deallocate(d);
  pool.empty_cache();
  EXPECT_EQ(be.frees, 1);
  EXPECT_EQ(be.live, 0u);
  EXPECT_EQ(pool.stats().reserved, 0);
}

TEST(CachingPool, LargeRequestsUseLargeSegments) {
  FakeBackend be;
  CachingPool pool = make_pool(be);
  void* a = pool.allocate(3 * MiB);
  void* b = pool.allocate(3 * MiB);
  EXPECT_EQ(be.allocs, 1);
  EXPECT_EQ(be.sizes[0], 20 * MiB);
  EXPECT_EQ(static_cast<char*>(b), static_cast<char*>(a) + 3 * MiB);
  // 14 MiB are left in the segment: 15 MiB needs a new one, rounded to 2 MiB.
  void* c = pool.allocate(15 * MiB);
  EXPECT_EQ(be.allocs, 2);
  EXPECT_EQ(be.sizes[1], 16 * MiB);
  // Its 1 MiB remainder is too small to split off in the large pool: c holds 16 MiB.
  MemoryStats s = pool.stats();
  EXPECT_EQ(s.allocated, int64_t(3 * MiB + 3 * MiB + 16 * MiB));
  EXPECT_EQ(s.reserved, int64_t(36 * MiB));
  pool.deallocate(a);
  pool.deallocate(b);
  pool.deallocate(c);
  // Small requests never come from large segments.
  void* small = pool.allocate(100);
  EXPECT_EQ(be.allocs, 3);
  EXPECT_EQ(be.sizes[2], 2 * MiB);
  pool.deallocate(small);
  pool.empty_cache();
  EXPECT_EQ(be.live, 0u);
  EXPECT_EQ(pool.stats().reserved, 0);
}

TEST(CachingPool, PeakAndReset) {
  FakeBackend be;
  CachingPool pool = make_pool(be);
  void* a = pool.allocate(2 * MiB);
  void* b = pool.allocate(4 * MiB);
  pool.deallocate(b);
  MemoryStats s = pool.stats();
  EXPECT_EQ(s.allocated, int64_t(2 * MiB));
  EXPECT_EQ(s.peak, int64_t(6 * MiB));
  pool.reset_peak();
  EXPECT_EQ(pool.stats().peak, int64_t(2 * MiB));
  pool.deallocate(a);
  EXPECT_EQ(pool.stats().peak, int64_t(2 * MiB));
  EXPECT_EQ(pool.stats().num_allocs, 2);
}

TEST(CachingPool, OutOfMemoryEmptiesTheCacheAndRetries) {
  FakeBackend be;
  be.limit = 21 * MiB;  // room for one 20 MiB large segment, not for it and a small one
  CachingPool pool = make_pool(be);
  pool.deallocate(pool.allocate(3 * MiB));  // a cached, wholly free 20 MiB segment
  EXPECT_EQ(pool.stats().reserved, int64_t(20 * MiB));
  void* p = pool.allocate(512);  // needs 2 MiB: fails, frees the 20 MiB, succeeds
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(be.failures, 1);
  EXPECT_EQ(be.frees, 1);
  MemoryStats s = pool.stats();
  EXPECT_EQ(s.num_ooms, 1);
  EXPECT_EQ(s.reserved, int64_t(2 * MiB));
  EXPECT_EQ(s.allocated, 512);
  pool.deallocate(p);
}

TEST(CachingPool, OutOfMemoryMessageSaysAskedAllocatedAndCached) {
  FakeBackend be;
  be.limit = 21 * MiB;
  CachingPool pool(be.alloc_fn(), be.free_fn(),
                   {.caching = true, .device = "fake:3",
                    .describe_device = [] { return std::string("the fake has 1 MiB free"); }});
  void* held = pool.allocate(3 * MiB);  // 3 MiB allocated, 20 MiB reserved, 17 MiB cached
  try {
    pool.allocate(30 * MiB);
    FAIL() << "expected an out-of-memory error";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("out of memory on fake:3"), std::string::npos) << m;
    EXPECT_NE(m.find("tried to allocate 30.00 MiB (31457280 bytes)"), std::string::npos) << m;
    EXPECT_NE(m.find("3.00 MiB (3145728 bytes) allocated"), std::string::npos) << m;
    EXPECT_NE(m.find("20.00 MiB (20971520 bytes) reserved"), std::string::npos) << m;
    EXPECT_NE(m.find("17.00 MiB (17825792 bytes) cached and free"), std::string::npos) << m;
    EXPECT_NE(m.find("the fake has 1 MiB free"), std::string::npos) << m;
  }
  // Two backend failures (first try, retry after the cache was emptied), nothing leaked,
  // and the pool still works.
  EXPECT_EQ(be.failures, 2);
  EXPECT_EQ(pool.stats().num_ooms, 1);
  EXPECT_EQ(pool.stats().allocated, int64_t(3 * MiB));
  pool.deallocate(held);
  void* again = pool.allocate(1 * MiB);
  EXPECT_NE(again, nullptr);
  pool.deallocate(again);
}

TEST(CachingPool, DirectModeCallsTheBackendEveryTime) {
  FakeBackend be;
  CachingPool pool = make_pool(be, /*caching=*/false);
  EXPECT_FALSE(pool.caching());
  void* a = pool.allocate(100);
  void* b = pool.allocate(100);
  EXPECT_EQ(be.allocs, 2);
  EXPECT_EQ(be.sizes[0], 100u);  // exact size: no rounding, so sanitizers see true bounds
  MemoryStats s = pool.stats();
  EXPECT_EQ(s.allocated, 200);
  EXPECT_EQ(s.reserved, 200);
  pool.deallocate(a);
  EXPECT_EQ(be.frees, 1);
  EXPECT_EQ(pool.stats().reserved, 100);
  pool.deallocate(b);
  EXPECT_EQ(be.live, 0u);
  EXPECT_EQ(pool.stats().peak, 200);
}

TEST(CachingPool, DirectModeOutOfMemoryMessage) {
  FakeBackend be;
  be.limit = 1000;
  CachingPool pool = make_pool(be, /*caching=*/false);
  try {
    pool.allocate(5000);
    FAIL() << "expected an out-of-memory error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tried to allocate 4.88 KiB (5000 bytes)"),
              std::string::npos)
        << e.what();
  }
}

TEST(CachingPool, ForeignOrDoubleFreeIsAnError) {
  FakeBackend be;
  CachingPool pool = make_pool(be);
  void* a = pool.allocate(64);
  int x = 0;
  EXPECT_THROW(pool.deallocate(&x), Error);
  pool.deallocate(a);
  EXPECT_THROW(pool.deallocate(a), Error);
}

TEST(CachingPool, DestructorReturnsEverySegment) {
  FakeBackend be;
  {
    CachingPool pool = make_pool(be);
    pool.allocate(100);          // still in use at destruction
    pool.allocate(5 * MiB);      // likewise
    pool.deallocate(pool.allocate(40 * MiB));  // cached
  }
  EXPECT_EQ(be.allocs, be.frees);
  EXPECT_EQ(be.live, 0u);
}

// Random allocations and frees: blocks never overlap (each is filled with its own byte and
// checked before it is freed), statistics add up, and freeing everything merges every
// segment back so empty_cache returns all memory.
TEST(CachingPool, RandomStressKeepsBlocksDisjoint) {
  FakeBackend be;
  CachingPool pool = make_pool(be);
  std::mt19937 rng(7);
  struct Live {
    unsigned char* p;
    size_t n;
    unsigned char tag;
  };
  std::vector<Live> live;
  auto check_and_free = [&](size_t i) {
    Live l = live[i];
    for (size_t k = 0; k < l.n; k += 256) ASSERT_EQ(l.p[k], l.tag) << "block was overwritten";
    ASSERT_EQ(l.p[l.n - 1], l.tag);
    pool.deallocate(l.p);
    live.erase(live.begin() + long(i));
  };
  for (int step = 0; step < 3000; ++step) {
    bool do_alloc = live.empty() || (live.size() < 64 && rng() % 2 == 0);
    if (do_alloc) {
      size_t n;
      switch (rng() % 4) {
        case 0: n = 1 + rng() % 2048; break;
        case 1: n = 1 + rng() % (1 * MiB); break;
        case 2: n = 1 * MiB + rng() % (12 * MiB); break;  // mid-size and >= 10 MiB segments
        default: n = 1 + rng() % (64 * KiB); break;
      }
      auto* p = static_cast<unsigned char*>(pool.allocate(n));
      unsigned char tag = static_cast<unsigned char>(step);
      // Every 256th byte and the last one: blocks are multiples of 512 bytes, so any
      // overlap between two live blocks is seen.
      for (size_t k = 0; k < n; k += 256) p[k] = tag;
      p[n - 1] = tag;
      live.push_back({p, n, tag});
    } else {
      check_and_free(rng() % live.size());
      if (::testing::Test::HasFatalFailure()) return;
    }
    if (step % 500 == 0) pool.empty_cache();  // drop free segments mid-way, too
  }
  MemoryStats s = pool.stats();
  int64_t want = 0;
  for (const Live& l : live) want += int64_t(CachingPool::round_size(l.n));
  EXPECT_GE(s.allocated, want);  // large blocks may keep an unsplit tail
  EXPECT_LE(s.allocated, s.reserved);
  EXPECT_EQ(s.reserved, int64_t(be.live));
  while (!live.empty()) {
    check_and_free(live.size() - 1);
    if (::testing::Test::HasFatalFailure()) return;
  }
  EXPECT_EQ(pool.stats().allocated, 0);
  pool.empty_cache();
  EXPECT_EQ(pool.stats().reserved, 0);
  EXPECT_EQ(be.live, 0u);
}

TEST(CachingPool, ConcurrentAllocateAndFree) {
  FakeBackend be;  // touched only under the pool's lock
  CachingPool pool = make_pool(be);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&pool, t] {
      std::mt19937 rng{unsigned(t)};
      std::vector<void*> mine;
      for (int i = 0; i < 2000; ++i) {
        if (mine.empty() || rng() % 2) {
          mine.push_back(pool.allocate(1 + rng() % (3 * MiB)));
        } else {
          size_t k = rng() % mine.size();
          pool.deallocate(mine[k]);
          mine.erase(mine.begin() + long(k));
        }
      }
      for (void* p : mine) pool.deallocate(p);
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(pool.stats().allocated, 0);
  pool.empty_cache();
  EXPECT_EQ(pool.stats().reserved, 0);
  EXPECT_EQ(be.live, 0u);
}

}  // namespace
}  // namespace ember
