// libFuzzer target: the image decode path of data/image_folder.cpp (its guard in front of
// stb_image, then stb), through the public ImageFolderDataset on a one-image folder. The
// first input byte picks the file extension; the rest is the file.
#include "data/image_folder.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  static const char* kExt[] = {".jpg", ".png", ".bmp", ".ppm", ".pgm", ".jpeg"};
  static const std::string root = ember::fuzz::scratch_root() + "/folder";
  std::filesystem::remove_all(root);
  std::filesystem::create_directories(root + "/a");
  std::string path = root + "/a/img" + kExt[data[0] % 6];
  ember::fuzz::write_input(path, data + 1, size - 1);
  ember::fuzz::expect_error_or_success([&] {
    ember::data::ImageFolderDataset ds(root);
    (void)ds.size();
  });
  return 0;
}
