#pragma once
// Dropout from the counter-based stream: element i is kept when the Philox bernoulli draw
// random_value(bernoulli, ..., i, seed, offset, 1 - p) is 1 (kernels/random_math.h), so CPU
// and CUDA keep the same elements for the same (seed, offset). The same call with the
// same (seed, offset) applied to the output gradient is the backward (g * mask * scale).
#include <cstdint>

#include "kernels/random_math.h"
#include "core/dtype.h"
#if EMBER_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

namespace ember {
/// Whether element i survives dropout with drop probability p.
EMBER_HD bool dropout_keep(int64_t i, uint64_t seed, uint64_t offset, double p) {
  return random_value(RandomKind::bernoulli, false, i, seed, offset, 1.0 - p, 0.0) != 0.0;
}
/// dropout_keep for the four elements 4q .. 4q+3 from one Philox call (they share counter
/// offset + q); bit j of the result is element 4q + j.
EMBER_HD unsigned dropout_keep4(int64_t q, uint64_t seed, uint64_t offset, double p) {
  Philox4 r = philox4x32(seed, offset + uint64_t(q));
  unsigned bits = 0;
  for (int j = 0; j < 4; ++j)  // the bernoulli rule of random_value: x / 2^32 < 1 - p
    if (double(r.v[j]) * 2.3283064365386963e-10 < 1.0 - p) bits |= 1u << j;
  return bits;
}
/// Philox counters one dropout call of n elements reserves.
inline uint64_t dropout_counters(int64_t n) { return random_counters(RandomKind::bernoulli, n); }
}  // namespace ember

namespace ember::cpu {
/// y[i] = keep(i) ? x[i] * scale : 0, x and y contiguous with n elements.
void dropout(DType dtype, const void* x, void* y, int64_t n, uint64_t seed, uint64_t offset,
             double p, double scale);
}  // namespace ember::cpu

#if EMBER_WITH_CUDA
namespace ember::cuda {
void dropout(DType dtype, const void* x, void* y, int64_t n, uint64_t seed, uint64_t offset,
             double p, double scale, cudaStream_t stream);
}  // namespace ember::cuda
#endif
