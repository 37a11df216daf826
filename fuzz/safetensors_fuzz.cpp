// libFuzzer target: io/safetensors.cpp's reader (header JSON, dtypes, shapes, offsets).
#include "fuzz_common.h"
#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = ember::fuzz::scratch_root() + "/input.safetensors";
  ember::fuzz::write_input(path, data, size);
  ember::fuzz::expect_error_or_success([&] {
    ember::SafetensorsFile f = ember::load_safetensors(path);
    // Touch every byte the reader claims to hold.
    for (const auto& [name, t] : f.tensors) {
      const auto* p = static_cast<const volatile uint8_t*>(t.data_ptr());
      uint8_t acc = 0;
      for (int64_t i = 0; i < t.nbytes(); ++i) acc ^= p[i];
      (void)acc;
    }
  });
  return 0;
}
