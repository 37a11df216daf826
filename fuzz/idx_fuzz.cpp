// libFuzzer target: data/mnist.cpp's idx reader, raw and gzip (the content decides), both
// the image (idx3) and the label (idx1) entry points.
#include "data/mnist.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = ember::fuzz::scratch_root() + "/input.idx";
  ember::fuzz::write_input(path, data, size);
  ember::fuzz::expect_error_or_success([&] {
    ember::Tensor t = ember::data::read_idx_images(path);
    (void)t.sum().item<double>();
  });
  ember::fuzz::expect_error_or_success([&] {
    ember::Tensor t = ember::data::read_idx_labels(path);
    (void)t.sum().item<double>();
  });
  return 0;
}
