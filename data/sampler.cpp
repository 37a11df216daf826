// Samplers and the reproducible permutation (Note [Shuffle RNG] in data/sampler.h).
#include "data/sampler.h"

#include <random>

#include "core/error.h"

namespace ember::data {

namespace {
// Uniform in [0, bound] by rejection: unbiased and independent of the standard library.
uint64_t uniform_upto(std::mt19937_64& g, uint64_t bound) {
  if (bound == 0) return 0;
  uint64_t mask = ~uint64_t(0) >> __builtin_clzll(bound);
  uint64_t x;
  do {
    x = g() & mask;
  } while (x > bound);
  return x;
}
}  // namespace

std::vector<int64_t> random_permutation(int64_t n, uint64_t seed) {
  EMBER_CHECK(n >= 0, "random_permutation: n must be >= 0, got ", n);
  std::vector<int64_t> p(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) p[size_t(i)] = i;
  std::mt19937_64 g(seed);
  for (int64_t i = n - 1; i > 0; --i) {
    auto j = int64_t(uniform_upto(g, uint64_t(i)));
    std::swap(p[size_t(i)], p[size_t(j)]);
  }
  return p;
}

SequentialSampler::SequentialSampler(int64_t n) : n_(n) {
  EMBER_CHECK(n >= 0, "SequentialSampler: size must be >= 0, got ", n);
}

std::vector<int64_t> SequentialSampler::indices(int64_t) const {
  std::vector<int64_t> v(static_cast<size_t>(n_));
  for (int64_t i = 0; i < n_; ++i) v[size_t(i)] = i;
  return v;
}

RandomSampler::RandomSampler(int64_t n, uint64_t seed) : n_(n), seed_(seed) {
  EMBER_CHECK(n >= 0, "RandomSampler: size must be >= 0, got ", n);
}

std::vector<int64_t> RandomSampler::indices(int64_t epoch) const {
  return random_permutation(n_, seed_ + uint64_t(epoch));
}

DistributedSampler::DistributedSampler(int64_t n, int rank, int world_size, bool shuffle,
                                       uint64_t seed, bool drop_last)
    : n_(n), rank_(rank), world_(world_size), shuffle_(shuffle), seed_(seed), drop_last_(drop_last) {
  EMBER_CHECK(n >= 0, "DistributedSampler: size must be >= 0, got ", n);
  EMBER_CHECK(world_size >= 1, "DistributedSampler: world_size must be >= 1, got ", world_size);
  EMBER_CHECK(rank >= 0 && rank < world_size, "DistributedSampler: rank ", rank,
              " out of range for world_size ", world_size, " (expected in [0, ", world_size - 1, "])");
  per_rank_ = drop_last ? n / world_size : (n + world_size - 1) / world_size;
}

std::vector<int64_t> DistributedSampler::indices(int64_t epoch) const {
  std::vector<int64_t> order = shuffle_ ? random_permutation(n_, seed_ + uint64_t(epoch))
                                        : SequentialSampler(n_).indices(epoch);
  const int64_t total = per_rank_ * world_;
  // Pad by repeating the head (more than once when n < world), or cut the tail.
  if (int64_t(order.size()) < total) {
    const int64_t n = n_;
    EMBER_CHECK(n > 0, "DistributedSampler: cannot pad an empty dataset");
    for (int64_t i = 0; int64_t(order.size()) < total; ++i) {
      int64_t v = order[size_t(i % n)];
      order.push_back(v);
    }
  }
  order.resize(size_t(total));
  std::vector<int64_t> mine;
  mine.reserve(size_t(per_rank_));
  for (int64_t i = rank_; i < total; i += world_) mine.push_back(order[size_t(i)]);
  return mine;
}

}  // namespace ember::data
