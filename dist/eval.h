#pragma once
// Distributed evaluation: every test sample counted exactly once. Each rank evaluates an
// unpadded shard (DistributedSampler pads the last round with repeated samples, which
// would be counted twice), then the sums are added over ranks.
#include <vector>

#include "data/sampler.h"
#include "dist/process_group.h"

namespace ember::dist {

/// Rank r's share of [0, n): r, r + world, r + 2 * world, ... in order. The shards are
/// disjoint and cover [0, n); their sizes differ by at most one (no padding, no shuffle).
class ShardSampler : public data::Sampler {
 public:
  ShardSampler(int64_t n, int rank, int world_size);
  int64_t size() const override { return size_; }
  std::vector<int64_t> indices(int64_t epoch) const override;

 private:
  int64_t n_;
  int rank_, world_;
  int64_t size_;
};

/// The element-wise sum of `values` over all ranks (in f64; blocking).
std::vector<double> allreduce_sum(ProcessGroup& group, const std::vector<double>& values);

}  // namespace ember::dist
