#pragma once
// The seeded random stream. Note [Counter-based RNG]: every random op reserves a range of
// Philox4x32-10 counters from the generator (seed, offset); element i of the op reads
// counter offset + i / k. Its numbers depend only on (seed, offset, i), never on the device
// or the thread layout, so a seeded run is reproducible on CPU and CUDA alike.
#include <cstdint>
#include <mutex>

namespace ember {

struct GeneratorState {
  uint64_t seed = 0;
  uint64_t offset = 0;  // the next unused Philox counter
};

class Generator {
 public:
  explicit Generator(uint64_t seed = 0x5eed) : state_{seed, 0} {}
  void manual_seed(uint64_t seed);
  GeneratorState state() const;
  void set_state(GeneratorState s);
  /// Reserves `counters` consecutive Philox counters; returns {seed, first counter}.
  GeneratorState reserve(uint64_t counters);

 private:
  mutable std::mutex mu_;
  GeneratorState state_;
};

/// The process-wide default generator used by rand/randn/dropout/init.
Generator& default_generator();
/// Seeds the default generator.
void manual_seed(uint64_t seed);

}  // namespace ember
