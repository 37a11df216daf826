// Unpadded evaluation shards and the sum of metrics over ranks (dist/eval.h).
#include "dist/eval.h"

namespace ember::dist {

ShardSampler::ShardSampler(int64_t n, int rank, int world_size) : n_(n), rank_(rank), world_(world_size) {
  EMBER_CHECK(n >= 0, "ShardSampler: size must be >= 0, got ", n);
  EMBER_CHECK(world_size >= 1, "ShardSampler: world_size must be >= 1, got ", world_size);
  EMBER_CHECK(rank >= 0 && rank < world_size, "ShardSampler: rank ", rank, " out of range for world_size ",
              world_size, " (expected in [0, ", world_size - 1, "])");
  size_ = n > rank ? (n - rank + world_size - 1) / world_size : 0;
}

std::vector<int64_t> ShardSampler::indices(int64_t) const {
  std::vector<int64_t> v;
  v.reserve(size_t(size_));
  for (int64_t i = rank_; i < n_; i += world_) v.push_back(i);
  return v;
}

std::vector<double> allreduce_sum(ProcessGroup& group, const std::vector<double>& values) {
  if (group.world_size() == 1 || values.empty()) return values;
  Tensor t = from_vector(values);
  group.allreduce(t, ReduceOp::sum)->wait();
  return t.to_vector<double>();
}

}  // namespace ember::dist
