// The default Philox generator (Note [Counter-based RNG]).
#include "tensor/generator.h"

namespace ember {

void Generator::manual_seed(uint64_t seed) {
  std::lock_guard<std::mutex> lock(mu_);
  state_ = GeneratorState{seed, 0};
}

GeneratorState Generator::state() const {
  std::lock_guard<std::mutex> lock(mu_);
  return state_;
}

void Generator::set_state(GeneratorState s) {
  std::lock_guard<std::mutex> lock(mu_);
  state_ = s;
}

GeneratorState Generator::reserve(uint64_t counters) {
  std::lock_guard<std::mutex> lock(mu_);
  GeneratorState s = state_;
  state_.offset += counters;
  return s;
}

Generator& default_generator() {
  static Generator g;
  return g;
}

void manual_seed(uint64_t seed) { default_generator().manual_seed(seed); }

}  // namespace ember
