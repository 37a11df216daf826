// libFuzzer target: data/cifar10.cpp's binary batch reader.
#include "data/cifar10.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = ember::fuzz::scratch_root() + "/input.bin";
  ember::fuzz::write_input(path, data, size);
  ember::fuzz::expect_error_or_success([&] {
    auto [images, labels] = ember::data::read_cifar10_file(path);
    (void)images.sum().item<double>();
    (void)labels.sum().item<double>();
  });
  return 0;
}
