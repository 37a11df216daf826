#pragma once
// ImageFolderDataset: the torchvision ImageFolder layout, root/<class>/<image file>, decoded
// once into memory.
#include <string>
#include <vector>

#include "data/dataset.h"

namespace ember::data {

/// Images under `root`/<class>/ with extension .jpg, .jpeg, .png, .bmp, .ppm or .pgm (any
/// case; other files are ignored). Classes are the sorted sub-folder names, labelled 0..C-1;
/// within a class the files are taken in sorted name order. Every image is decoded (in
/// parallel) to `channels` channels (3: RGB, gray images are expanded; 1: gray) and stored
/// as u8 (N, channels, H, W); all images must have the same size. Throws naming the path
/// when the root is missing, holds no class folder, a class folder holds no image, a file
/// cannot be decoded or its size differs from the first image's.
class ImageFolderDataset : public ImageTensorDataset {
 public:
  explicit ImageFolderDataset(const std::string& root, Normalize normalize = Normalize::none(),
                              int channels = 3);
  /// Class names in label order.
  const std::vector<std::string>& classes() const { return classes_; }
  /// The image files in sample order.
  const std::vector<std::string>& files() const { return files_; }

 private:
  struct Loaded;
  static Loaded load(const std::string& root, int channels);
  ImageFolderDataset(Loaded&& loaded, Normalize normalize);
  std::vector<std::string> classes_, files_;
};

}  // namespace ember::data
