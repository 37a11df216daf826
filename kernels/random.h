#pragma once
// Counter-based random fills (Note [Counter-based RNG] in tensor/generator.h).
// Element i uses Philox counter `offset + i / 4` (uniform, bernoulli, randint) or
// `offset + i / 2` (normal, Box-Muller pairs); the caller reserves the counters.
#include <cstdint>

#include "core/dtype.h"
#if EMBER_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

namespace ember {
enum class RandomKind : uint8_t { uniform, normal, bernoulli, randint };
/// Counters a random fill of n elements consumes.
inline uint64_t random_counters(RandomKind k, int64_t n) {
  return uint64_t(k == RandomKind::normal ? (n + 1) / 2 : (n + 3) / 4);
}
}  // namespace ember

namespace ember::cpu {
/// uniform: [a, b); normal: mean a, std b; bernoulli: 1 with probability a; randint: [a, b).
void random_fill(RandomKind kind, DType dtype, void* out, int64_t n, uint64_t seed,
                 uint64_t offset, double a, double b);
}  // namespace ember::cpu

#if EMBER_WITH_CUDA
namespace ember::cuda {
void random_fill(RandomKind kind, DType dtype, void* out, int64_t n, uint64_t seed,
                 uint64_t offset, double a, double b, cudaStream_t stream);
}  // namespace ember::cuda
#endif
