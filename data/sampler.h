#pragma once
// Samplers: which dataset indices an epoch visits, in which order.
//
// Note [Shuffle RNG]: shuffles use std::mt19937_64 seeded with `seed + epoch` (as PyTorch's
// DistributedSampler seeds with seed + epoch) and our own Fisher-Yates with rejection
// sampling. mt19937_64's output is fixed by the C++ standard, while std::shuffle and
// std::uniform_int_distribution are not, so the same seed gives the same order with every
// compiler and standard library. An order is a pure function of (n, seed, epoch): resuming
// needs only those numbers.
#include <cstdint>
#include <vector>

namespace ember::data {

/// A random permutation of [0, n), a pure function of (n, seed). See Note [Shuffle RNG].
std::vector<int64_t> random_permutation(int64_t n, uint64_t seed);

class Sampler {
 public:
  virtual ~Sampler() = default;
  /// Indices per epoch.
  virtual int64_t size() const = 0;
  /// The dataset indices `epoch` visits, in order. Depends on nothing but the epoch.
  virtual std::vector<int64_t> indices(int64_t epoch) const = 0;
};

/// 0, 1, ..., n-1 every epoch.
class SequentialSampler : public Sampler {
 public:
  explicit SequentialSampler(int64_t n);
  int64_t size() const override { return n_; }
  std::vector<int64_t> indices(int64_t epoch) const override;

 private:
  int64_t n_;
};

/// A fresh permutation each epoch: random_permutation(n, seed + epoch).
class RandomSampler : public Sampler {
 public:
  RandomSampler(int64_t n, uint64_t seed);
  int64_t size() const override { return n_; }
  std::vector<int64_t> indices(int64_t epoch) const override;
  uint64_t seed() const { return seed_; }

 private:
  int64_t n_;
  uint64_t seed_;
};

/// One rank's shard for data-parallel training, as PyTorch's DistributedSampler: the
/// epoch's order (shuffled with seed + epoch, identical on every rank) is padded by
/// repeating its head to a multiple of world_size (or cut down to one, with drop_last),
/// and rank r takes positions r, r + world, r + 2*world, ... Every rank gets the same
/// number of indices; without padding the shards are disjoint and cover the dataset.
class DistributedSampler : public Sampler {
 public:
  DistributedSampler(int64_t n, int rank, int world_size, bool shuffle = true, uint64_t seed = 0,
                     bool drop_last = false);
  int64_t size() const override { return per_rank_; }
  std::vector<int64_t> indices(int64_t epoch) const override;
  int rank() const { return rank_; }
  int world_size() const { return world_; }

 private:
  int64_t n_;
  int rank_, world_;
  bool shuffle_;
  uint64_t seed_;
  bool drop_last_;
  int64_t per_rank_;
};

}  // namespace ember::data
